"""Fixes "Guard with a lock" (GAP201–GAP204) and "Hoist the lock" (GAP207).

*Guard with a lock* wraps the statements from the read to the write (or the whole
check and act) in one `with <lock>:` — `async with` in async code — reusing the lock
the finding names (the class's or module's existing lock), else creating one where the
state lives: `self._lock = threading.Lock()` at the start of `__init__` for state of an
object, a module-level lock for globals and class attributes (`asyncio.Lock()` in async
code). *Hoist the lock* moves a lock made on every call to module level, so that every
call shares it.
"""

from __future__ import annotations

import re

import libcst as cst

from gap_ls.core.model import FixHint
from gap_ls.core.nodes import children, dotted_name
from gap_ls.fixes.edits import FixNotApplicable, ModuleAdditions, UnitTree, module_alias, todo

STATEMENTS = (cst.SimpleStatementLine, cst.BaseCompoundStatement)
_LOCK_LIKE = re.compile(r"lock|mutex|semaphore|^sem$|_sem$", re.IGNORECASE)


def lock_guard(tree: UnitTree, additions: ModuleAdditions, hint: FixHint) -> cst.Module:
    first = tree.find(hint.target, STATEMENTS)
    parents = parent_map(tree.module)
    asynchronous = bool(hint.data.get("asynchronous"))
    lock, create = _choose_lock(tree, hint, asynchronous)
    if _inside_lock(first, parents, lock):
        return tree.module  # applied already
    last_span = hint.spans.get("last")
    last = tree.find(last_span, STATEMENTS) if last_span is not None else first
    block, start, stop = common_block(first, last, parents)
    create(additions)
    wrapped = list(block.body[start : stop + 1])
    state = hint.data.get("state") or "this state"
    header = cst.TrailingWhitespace(
        whitespace=cst.SimpleWhitespace("  "),
        comment=todo(f"every writer of `{state}` must hold this lock too"),
    )
    statement = cst.With(
        items=[cst.WithItem(item=cst.parse_expression(lock))],
        body=cst.IndentedBlock(body=[wrapped[0].with_changes(leading_lines=[]), *wrapped[1:]], header=header),
        asynchronous=cst.Asynchronous() if asynchronous else None,
        leading_lines=wrapped[0].leading_lines,
    )
    new_block = block.with_changes(body=[*block.body[:start], statement, *block.body[stop + 1 :]])
    return tree.module.deep_replace(block, new_block)


def _choose_lock(tree: UnitTree, hint: FixHint, asynchronous: bool):
    """The lock expression to hold, and a callable that records what must be created for it."""
    given = hint.data.get("lock")
    if given:
        return given, lambda additions: None
    kind = hint.data.get("state_kind")
    class_name = hint.data.get("class")
    constructor, module = lock_constructor(tree, asynchronous)
    if kind == "instance" and class_name:
        info = tree.summary.classes.get(class_name)
        existing = sorted(info.lock_attributes) if info is not None else []
        if existing:
            return f"self.{existing[0]}", lambda additions: None
        name = "_lock" if info is None or "_lock" not in info.methods else "_gap_lock"

        def create_instance_lock(additions: ModuleAdditions) -> None:
            if module:
                additions.need_import(module)
            additions.need_init_line(
                class_name,
                f"self.{name} = {constructor}  # TODO(gap-ls): one lock per object; hold it wherever its state changes",
                f"{name} = {constructor}  # TODO(gap-ls): one lock for every instance: create it in __init__ for one per object",
            )

        return f"self.{name}", create_instance_lock
    name = module_lock_name(tree, str(hint.data.get("state") or "state"))

    def create_module_lock(additions: ModuleAdditions) -> None:
        if name in tree.summary.defined:
            return  # made by an earlier fix for the same state
        if module:
            additions.need_import(module)
        shown = hint.data.get("state") or "this state"
        additions.need_helper(name, f"{name} = {constructor}  # TODO(gap-ls): hold it wherever `{shown}` changes")

    return name, create_module_lock


def lock_constructor(tree: UnitTree, asynchronous: bool) -> tuple[str, str | None]:
    """`threading.Lock()` (or `asyncio.Lock()`) as this file spells it, and the module to import
    if it is not imported yet."""
    module = "asyncio" if asynchronous else "threading"
    for alias, qualified in tree.summary.imports.items():
        if qualified == f"{module}.Lock":
            return f"{alias}()", None  # from threading import Lock
    alias = module_alias(tree.summary, module)
    if alias is not None:
        return f"{alias}.Lock()", None
    return f"{module}.Lock()", module


def module_lock_name(tree: UnitTree, state: str) -> str:
    """`_view_hits_lock` for `VIEW_HITS`, `_render_stats_lock` for `RenderStats.rendered`."""
    root = state.split(".")[0].split("[")[0]
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", root).lower().strip("_") or "state"
    name = f"_{snake}_lock"
    counter = 1
    while name in tree.summary.defined and name not in tree.summary.locks:
        counter += 1
        name = f"_{snake}_lock_{counter}"
    return name


def _inside_lock(statement: cst.CSTNode, parents: dict[int, cst.CSTNode], lock: str) -> bool:
    """The statement is (or sits in) a `with` on ``lock`` or on another lock."""
    node: cst.CSTNode | None = statement
    while node is not None:
        if isinstance(node, cst.With):
            for item in node.items:
                name = dotted_name(item.item)
                if name is not None and (name == lock or _LOCK_LIKE.search(name.rpartition(".")[2])):
                    return True
        if isinstance(node, cst.FunctionDef):
            return False
        node = parents.get(id(node))
    return False


def common_block(first: cst.CSTNode, last: cst.CSTNode, parents: dict[int, cst.CSTNode]):
    """The innermost block holding both statements, and the indexes of the statements of that
    block that contain them (a nested write widens the range to its enclosing statement)."""
    first_chain = _chain(first, parents)
    last_chain = _chain(last, parents)
    last_ids = {id(node) for node in last_chain}
    for index, node in enumerate(first_chain):
        if isinstance(node, (cst.IndentedBlock, cst.Module)) and id(node) in last_ids:
            start_child = first_chain[index - 1]
            stop_child = last_chain[[id(n) for n in last_chain].index(id(node)) - 1]
            body = list(node.body)
            start = next(i for i, s in enumerate(body) if s is start_child)
            stop = next(i for i, s in enumerate(body) if s is stop_child)
            return node, min(start, stop), max(start, stop)
    raise FixNotApplicable("the read and the write are not in one block")


def _chain(node: cst.CSTNode, parents: dict[int, cst.CSTNode]) -> list[cst.CSTNode]:
    chain = [node]
    while id(chain[-1]) in parents:
        chain.append(parents[id(chain[-1])])
    return chain


def parent_map(root: cst.CSTNode) -> dict[int, cst.CSTNode]:
    """Parent of every node under ``root``, by id."""
    parents: dict[int, cst.CSTNode] = {}
    stack: list[cst.CSTNode] = [root]
    while stack:
        node = stack.pop()
        for child in children(node):
            parents[id(child)] = node
            stack.append(child)
    return parents


# -- Hoist the lock (GAP207) ---------------------------------------------------------------


def hoist_lock(tree: UnitTree, additions: ModuleAdditions, hint: FixHint) -> cst.Module:
    node = tree.find(hint.target, (cst.Call, cst.Name))
    if not isinstance(node, cst.Call):
        return tree.module  # the constructor was replaced by the hoisted lock already
    reuse = hint.data.get("reuse")
    if reuse:  # the lock other code already holds around the same state
        made = cst.Module(body=[]).code_for_node(node)
        line = _line_of(tree.module, node)
        new_line = line.deep_replace(node, cst.parse_expression(reuse))
        return tree.module.deep_replace(line, _with_note(new_line, f"was `{made}`: the lock other writers of this state hold"))
    parents = parent_map(tree.module)
    parent = parents.get(id(node))
    function = str(hint.data.get("function") or "shared")
    local = None
    if isinstance(parent, cst.Assign) and len(parent.targets) == 1 and isinstance(parent.targets[0].target, cst.Name):
        local = parent.targets[0].target.value
    base = f"{function}_{local}" if local and not _LOCK_LIKE.search(local) else f"{function}_{local or 'lock'}"
    name = _free_module_name(tree, f"_{base.strip('_')}" if not base.startswith("_") else base)
    made = cst.Module(body=[]).code_for_node(node)
    additions.need_helper(
        name, f"{name} = {made}  # TODO(gap-ls): one for the whole process; for one per object use self._lock"
    )
    return tree.module.deep_replace(node, cst.Name(name))


def _free_module_name(tree: UnitTree, wanted: str) -> str:
    name, counter = wanted, 1
    while name in tree.summary.defined:
        counter += 1
        name = f"{wanted}_{counter}"
    return name


def _line_of(module: cst.Module, node: cst.CSTNode) -> cst.CSTNode:
    """The statement line (or compound statement header) holding ``node``."""
    parents = parent_map(module)
    current: cst.CSTNode | None = node
    while current is not None and not isinstance(current, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
        current = parents.get(id(current))
    if current is None:
        raise FixNotApplicable("the lock is not part of a statement")
    return current


def _with_note(statement: cst.CSTNode, note: str) -> cst.CSTNode:
    """A TODO at the end of a statement's first line (a compound statement's header)."""
    comment = cst.TrailingWhitespace(whitespace=cst.SimpleWhitespace("  "), comment=todo(note))
    if isinstance(statement, cst.SimpleStatementLine):
        return statement.with_changes(trailing_whitespace=comment)
    body = getattr(statement, "body", None)
    if isinstance(body, cst.IndentedBlock):
        return statement.with_changes(body=body.with_changes(header=comment))
    return statement
