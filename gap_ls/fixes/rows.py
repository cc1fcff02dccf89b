"""Fixes for an ORM lost update (GAP205): "Lock the row" and "Update atomically".

*Lock the row*: Django — `.select_for_update()` in the query (`Model.objects
.select_for_update().get(...)`, `get_object_or_404(Model.objects.select_for_update(), ...)`)
and the statements from the load to the save wrapped in `with transaction.atomic():`
(`select_for_update` needs a transaction). SQLAlchemy — `session.get(Model, id,
with_for_update=True)`, or `.with_for_update()` added to the query or `select(...)`; the
session's transaction holds the lock until `commit()`.

*Update atomically*: the field is assigned an expression the database evaluates —
`row.stock = F("stock") - qty` (Django), `row.stock = Model.stock - qty` (SQLAlchemy) —
so concurrent updates add up instead of overwriting each other.
"""

from __future__ import annotations

import libcst as cst

from gap_ls.core.model import FixHint
from gap_ls.core.nodes import dotted_name, keyword, method_name, node_positions, walk
from gap_ls.fixes.edits import FixNotApplicable, ModuleAdditions, UnitTree, todo, with_trailing_todo
from gap_ls.fixes.lock import STATEMENTS, common_block, parent_map

_LOCKING = {"select_for_update", "with_for_update", "with_lockmode"}
_TERMINALS = {"get", "first", "last", "earliest", "latest", "one", "one_or_none", "scalar", "scalar_one",
              "scalar_one_or_none", "first_or_404", "get_or_404", "one_or_404"}


def lock_row(tree: UnitTree, additions: ModuleAdditions, hint: FixHint) -> cst.Module:
    load = tree.find(hint.target, (cst.Call,))
    assert isinstance(load, cst.Call)
    if any(isinstance(n, cst.Call) and method_name(n) in _LOCKING for n in walk(load)) or _true_keyword(load, "with_for_update"):
        return tree.module  # locked already
    if hint.data.get("orm") == "django":
        return _django_lock(tree, additions, hint, load)
    return _sqlalchemy_lock(tree, load)


def _django_lock(tree: UnitTree, additions: ModuleAdditions, hint: FixHint, load: cst.Call) -> cst.Module:
    locked = _with_select_for_update(load)
    module = tree.module.deep_replace(load, locked)
    first_span, last_span = hint.spans.get("first"), hint.spans.get("last")
    if first_span is None or last_span is None:
        raise FixNotApplicable("the load and the save are not known")
    # Find the load and the save again in the changed module (same lines: the change is inside one call).
    relocated = UnitTree(tree.lines, tree.summary, tree.unit, module, node_positions(module), tree.insertion_line)
    first = relocated.find(first_span, STATEMENTS)
    last = relocated.find(last_span, STATEMENTS)
    parents = parent_map(module)
    if _in_atomic(first, parents):
        return module
    block, start, stop = common_block(first, last, parents)
    wrapped = list(block.body[start : stop + 1])
    additions.need_from_import("django.db", "transaction")
    header = cst.TrailingWhitespace(
        whitespace=cst.SimpleWhitespace("  "),
        comment=todo("the row stays locked until this block ends; every writer of the row must lock it too"),
    )
    atomic = cst.With(
        items=[cst.WithItem(item=cst.parse_expression(f"{_transaction_name(tree)}.atomic()"))],
        body=cst.IndentedBlock(body=[wrapped[0].with_changes(leading_lines=[]), *wrapped[1:]], header=header),
        leading_lines=wrapped[0].leading_lines,
    )
    new_block = block.with_changes(body=[*block.body[:start], atomic, *block.body[stop + 1 :]])
    return module.deep_replace(block, new_block)


def _with_select_for_update(load: cst.Call) -> cst.Call:
    """`M.objects.get(...)` -> `M.objects.select_for_update().get(...)`;
    `get_object_or_404(M, ...)` -> `get_object_or_404(M.objects.select_for_update(), ...)`."""
    if (dotted_name(load.func) or "").endswith(("get_object_or_404", "get_list_or_404")) and load.args:
        model = load.args[0].value
        queryset = cst.parse_expression(f"{cst.Module(body=[]).code_for_node(model)}.objects.select_for_update()")
        return load.with_changes(args=[load.args[0].with_changes(value=queryset), *load.args[1:]])
    manager = _manager_of(load)
    if manager is None:
        raise FixNotApplicable("no `.objects` manager in this query to lock with select_for_update()")
    locking = cst.Call(func=cst.Attribute(value=manager, attr=cst.Name("select_for_update")))
    return load.deep_replace(manager, locking)


def _manager_of(call: cst.Call) -> cst.Attribute | None:
    for node in walk(call):
        if isinstance(node, cst.Attribute) and node.attr.value in {"objects", "_default_manager"}:
            return node
    return None


def _sqlalchemy_lock(tree: UnitTree, load: cst.Call) -> cst.Module:
    note = "every writer of this row must lock it too; the lock is held until commit"
    if method_name(load) == "get" and len(load.args) >= 2 and keyword(load, "with_for_update") is None:
        flag = cst.Arg(keyword=cst.Name("with_for_update"), value=cst.Name("True"),
                       equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")))
        return _with_note(tree, load, load.with_changes(args=[*load.args, flag]), note)
    select = next((n for n in walk(load) if isinstance(n, cst.Call) and (dotted_name(n.func) or "").endswith("select")), None)
    target = _outermost_select_chain(load, select) if select is not None else _before_terminal(load)
    if target is None:
        raise FixNotApplicable("cannot find the query to add with_for_update() to")
    locked = cst.Call(func=cst.Attribute(value=target, attr=cst.Name("with_for_update")))
    return _with_note(tree, load, load.deep_replace(target, locked), note)


def _outermost_select_chain(load: cst.Call, select: cst.Call) -> cst.BaseExpression:
    """`select(M).where(...)` inside `session.scalars(...)`: the whole statement expression."""
    parents = parent_map(load)
    node: cst.CSTNode = select
    while True:
        parent = parents.get(id(node))
        if isinstance(parent, cst.Attribute) and parent.value is node:
            grand = parents.get(id(parent))
            if isinstance(grand, cst.Call) and grand.func is parent:
                node = grand
                continue
        return node  # type: ignore[return-value]


def _before_terminal(load: cst.Call) -> cst.BaseExpression | None:
    """`session.query(M).filter(...).first()` -> `session.query(M).filter(...)`."""
    if method_name(load) in _TERMINALS and isinstance(load.func, cst.Attribute):
        return load.func.value
    return None


def _with_note(tree: UnitTree, old: cst.Call, new: cst.Call, note: str) -> cst.Module:
    module = tree.module.deep_replace(old, new)
    for node in walk(module, enter_definitions=True):
        if isinstance(node, cst.SimpleStatementLine) and any(n is new for n in walk(node)):
            return module.deep_replace(node, with_trailing_todo(node, note))
    return module


def _in_atomic(statement: cst.CSTNode, parents: dict[int, cst.CSTNode]) -> bool:
    node: cst.CSTNode | None = statement
    while node is not None:
        if isinstance(node, cst.With) and any(
            isinstance(i.item, cst.Call) and (dotted_name(i.item.func) or "").endswith("atomic") for i in node.items
        ):
            return True
        node = parents.get(id(node))
    return False


def _transaction_name(tree: UnitTree) -> str:
    for alias, qualified in tree.summary.imports.items():
        if qualified == "django.db.transaction":
            return alias
    return "transaction"


def _true_keyword(call: cst.Call, name: str) -> bool:
    found = keyword(call, name)
    return found is not None and isinstance(found.value, cst.Name) and found.value.value == "True"


# -- Update atomically ---------------------------------------------------------------------------


def atomic_update(tree: UnitTree, additions: ModuleAdditions, hint: FixHint) -> cst.Module:
    statement = tree.find(hint.target, (cst.AugAssign, cst.Assign))
    variable, field = str(hint.data["variable"]), str(hint.data["field"])
    django = hint.data.get("orm") == "django"
    column = f'F("{field}")' if django else f"{hint.data['model']}.{field}"
    if isinstance(statement, cst.AugAssign):
        operator = _BINARY.get(type(statement.operator))
        if operator is None:
            raise FixNotApplicable("only +=, -=, *= and /= can become an expression the database evaluates")
        value = cst.BinaryOperation(left=cst.parse_expression(column), operator=operator, right=statement.value)
        new = cst.Assign(targets=[cst.AssignTarget(target=statement.target)], value=value)
    else:
        assert isinstance(statement, cst.Assign)
        reads = [n for n in walk(statement.value) if isinstance(n, cst.Attribute) and dotted_name(n) == f"{variable}.{field}"]
        if not reads:
            return tree.module  # no longer computed from the old value
        value = statement.value
        for read in reads:
            value = value.deep_replace(read, cst.parse_expression(column))
        new = statement.with_changes(value=value)
    if django:
        additions.need_from_import("django.db.models", "F")
    note = (f"`{variable}.{field}` is an expression until re-read: call {variable}.refresh_from_db() after the save"
            if django else f"re-read `{variable}.{field}` after commit (session.refresh) before using it")
    line = _line_of(tree.module, statement)
    replaced = line.deep_replace(statement, new)
    return tree.module.deep_replace(line, with_trailing_todo(replaced, note))


_BINARY = {cst.AddAssign: cst.Add(), cst.SubtractAssign: cst.Subtract(), cst.MultiplyAssign: cst.Multiply(),
           cst.DivideAssign: cst.Divide()}


def _line_of(module: cst.Module, statement: cst.CSTNode) -> cst.SimpleStatementLine:
    for node in walk(module, enter_definitions=True):
        if isinstance(node, cst.SimpleStatementLine) and any(inner is statement for inner in node.body):
            return node
    raise FixNotApplicable("the assignment is not a statement of its own")
