"""What the race rules (GAP2xx) share: which state an expression names, whether a lock is
held around a node, reads and writes of the same state, and await points.

The rules work one function at a time; ``FunctionRule`` collects the functions of a unit
and hands each to ``check_function`` once every parent is known. ``Scope`` holds what one
function needs (its locals, its `global` names, the order of its nodes) and is computed
once per function.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import libcst as cst

from gap_ls.core.concurrency import MUTATING_METHODS
from gap_ls.core.model import Family
from gap_ls.core.nodes import assigned_names, dotted_name, walk
from gap_ls.core.rule import FixRequest, Rule, UnitContext
from gap_ls.core.summary import LOCK_CONSTRUCTORS

# Constructors of objects that are safe to share between threads as they are used.
THREAD_SAFE = frozenset(
    {
        "queue.Queue", "queue.LifoQueue", "queue.PriorityQueue", "queue.SimpleQueue", "collections.deque",
        "itertools.count", "threading.local", "threading.Event", "contextvars.ContextVar", "asyncio.Queue",
        "multiprocessing.Queue", "multiprocessing.Value", "threading.Barrier", "weakref.WeakValueDictionary",
    }
)
CONSTRUCTION = frozenset({"__init__", "__new__", "__post_init__", "setup", "__set_name__", "__init_subclass__"})
_LOCK_NAME = re.compile(r"lock|mutex|semaphore|^sem$|_sem$|guard|^gate$", re.IGNORECASE)
_FILE_LOCKS = re.compile(r"(^|\.)(flock|lockf|FileLock|SoftFileLock|Lock|lock|portalocker\.\w+)$")


@dataclass(frozen=True)
class State:
    """Shared state an expression refers to."""

    kind: str  # "global" (module name), "class" (class attribute), "instance" (self.attr), "object" (global.attr)
    key: str  # the container as written: "VIEW_HITS", "self.stock", "RenderStats.rendered"
    root: str  # "VIEW_HITS", "self", "RenderStats", "stats"
    attribute: str | None  # for self/class/object state

    def shown(self) -> str:
        if self.kind == "global":
            return f"module global `{self.key}`"
        if self.kind == "class":
            return f"class attribute `{self.key}`"
        if self.kind == "instance":
            return f"`{self.key}`"
        return f"`{self.key}` (an attribute of the module-level object `{self.root}`)"


class FunctionRule(Rule):
    """Base of the race rules: functions are collected while visiting, checked in finish()."""

    family: ClassVar[Family] = Family.RACE

    def __init__(self, context: UnitContext) -> None:
        super().__init__(context)
        self.functions: list[cst.FunctionDef] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions.append(node)

    def finish(self) -> None:
        for function in self.functions:
            if self.wants(function, self.context.qualname(function)):
                self.check_function(scope_of(function, self.context))

    def wants(self, function: cst.FunctionDef, qualname: str) -> bool:
        """A cheap first look, before the function is read in full (see ``Scope``)."""
        return True

    def check_function(self, scope: Scope) -> None:
        raise NotImplementedError


def scope_of(function: cst.FunctionDef, context: UnitContext) -> Scope:
    key = ("race-scope", id(function))
    if key not in context.cache:
        context.cache[key] = Scope(function, context)
    return context.cache[key]


class Scope:
    """One function, as the race rules read it."""

    def __init__(self, function: cst.FunctionDef, context: UnitContext) -> None:
        self.function = function
        self.context = context
        self.summary = context.summary
        self.qualname = context.qualname(function)
        self.name = function.name.value
        self.class_name = context.class_name(function) or self._outer_class()
        self.is_async = function.asynchronous is not None
        self.nodes = list(walk(function))
        self.order = {id(node): index for index, node in enumerate(self.nodes)}
        self.declared_global: set[str] = set()
        self.locals = self._locals()
        self._writes: list[tuple[cst.CSTNode, cst.BaseExpression]] | None = None

    def _outer_class(self) -> str | None:
        for ancestor in self.context.ancestors(self.function):
            if isinstance(ancestor, cst.FunctionDef):
                return self.context.class_name(ancestor)
        return None

    def _locals(self) -> set[str]:
        params = self.function.params
        names = {p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)}
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                names.add(star.name.value)
        for node in self.nodes:
            if isinstance(node, cst.Global):
                self.declared_global.update(n.name.value for n in node.names)
            elif isinstance(node, cst.Nonlocal):
                self.declared_global.update(n.name.value for n in node.names)  # not ours to track
            elif isinstance(node, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
                for target in (node.targets if isinstance(node, cst.Assign) else [node]):
                    names.update(assigned_names(target.target))
            elif isinstance(node, (cst.For, cst.CompFor)):
                names.update(assigned_names(node.target))
            elif isinstance(node, cst.WithItem) and node.asname is not None:
                names.update(assigned_names(node.asname.name))
            elif isinstance(node, cst.NamedExpr):
                names.update(assigned_names(node.target))
            elif isinstance(node, (cst.FunctionDef, cst.ClassDef)) and node is not self.function:
                names.add(node.name.value)
            elif isinstance(node, (cst.Import, cst.ImportFrom)) and not isinstance(node.names, cst.ImportStar):
                for alias in node.names:
                    bound = alias.asname.name if alias.asname is not None else alias.name
                    name = dotted_name(bound)
                    if name:
                        names.add(name.split(".")[0])
            elif isinstance(node, cst.ExceptHandler) and node.name is not None:
                names.update(assigned_names(node.name.name))
        return names - self.declared_global

    # -- order ------------------------------------------------------------------------------
    def index(self, node: cst.CSTNode) -> int:
        return self.order.get(id(node), -1)

    def awaits_between(self, first: cst.CSTNode, second: cst.CSTNode) -> cst.CSTNode | None:
        """An await point after ``first`` ends and before ``second`` stores its value (source
        order): an `await` in the value of an assignment runs before the store."""
        start = self.index(first) + sum(1 for _ in walk(first)) if self.index(first) >= 0 else -1
        stop = self.index(second)
        if isinstance(second, (cst.Assign, cst.AugAssign)):
            stop += sum(1 for _ in walk(second))
        for node in self.nodes[max(start, 0) : max(stop, 0)]:
            if isinstance(node, cst.Await) or (
                isinstance(node, (cst.For, cst.With)) and node.asynchronous is not None
            ):
                return node
        return None

    # -- state ------------------------------------------------------------------------------
    def state_of(self, expression: cst.BaseExpression) -> State | None:
        """The shared state ``expression`` (a target or a read) refers to, if any."""
        node = expression
        while isinstance(node, cst.Subscript):
            node = node.value
        if isinstance(node, cst.Name):
            return self._global_state(node.value)
        if not isinstance(node, cst.Attribute):
            return None
        root = node
        while isinstance(root, cst.Attribute):
            root = root.value
        key = dotted_name(node)
        if key is None:
            return None
        if isinstance(root, cst.Call) and dotted_name(root.func) == "type":
            return State("class", self.class_name or "type(self)", "type(self)", node.attr.value) if self.class_name else None
        if not isinstance(root, cst.Name):
            return None
        first = key.split(".")[1] if "." in key else None
        if root.value == "self" and self.class_name is not None and "self" not in self.declared_global:
            return State("instance", key, "self", first)
        if root.value == "cls" and self.class_name is not None:
            return State("class", f"{self.class_name}.{first}", "cls", first)
        if root.value in self.summary.classes and root.value not in self.locals:
            return State("class", key, root.value, first)
        outer = self._global_state(root.value)
        if outer is not None:
            return State("object", key, root.value, first)
        return None

    def _global_state(self, name: str) -> State | None:
        if name in self.locals or name not in self.summary.globals or name in self.summary.imports:
            return None
        if name in self.summary.locks or self._thread_safe(name):
            return None
        return State("global", name, name, None)

    def _thread_safe(self, name: str) -> bool:
        constructor = self.summary.constructed.get(name)
        return constructor is not None and self.summary.qualify(constructor) in THREAD_SAFE

    def reads(self, expression: cst.CSTNode, target: cst.BaseExpression) -> cst.CSTNode | None:
        """A read inside ``expression`` of the state ``target`` writes: the same name or
        attribute, the same `d[k]`, or `d.get(k, ...)` for a `d[k]` target."""
        wanted = dotted_name(target)
        container, key = _subscript_parts(target)
        for node in walk(expression):
            if wanted is not None and isinstance(node, (cst.Name, cst.Attribute)) and dotted_name(node) == wanted:
                return node
            if container is not None and key is not None:
                if isinstance(node, cst.Subscript) and _subscript_parts(node) == (container, key):
                    return node
                if (
                    isinstance(node, cst.Call)
                    and isinstance(node.func, cst.Attribute)
                    and node.func.attr.value in {"get", "setdefault"}
                    and dotted_name(node.func.value) == container
                    and node.args
                    and code(node.args[0].value) == key
                ):
                    return node
        return None

    def writes(self) -> list[tuple[cst.CSTNode, cst.BaseExpression]]:
        """(statement, target) for every assignment, augmented assignment, `del` and mutating
        method call in the function (not in nested definitions); computed once."""
        if self._writes is None:
            self._writes = list(self._find_writes())
        return self._writes

    def _find_writes(self) -> Iterator[tuple[cst.CSTNode, cst.BaseExpression]]:
        for node in self.nodes:
            if isinstance(node, cst.Assign):
                for target in node.targets:
                    yield node, target.target
            elif isinstance(node, (cst.AugAssign, cst.AnnAssign)) and (
                not isinstance(node, cst.AnnAssign) or node.value is not None
            ):
                yield node, node.target
            elif isinstance(node, cst.Del):
                yield node, node.target
            elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
                if node.func.attr.value in MUTATING_METHODS:
                    yield node, node.func.value

    # -- locks ------------------------------------------------------------------------------
    def lock_region(self, node: cst.CSTNode, asynchronous: bool | None = None) -> cst.With | None:
        """The innermost `with`/`async with` on a lock around ``node``."""
        for ancestor in self.context.ancestors(node):
            if ancestor is self.function:
                return None
            if isinstance(ancestor, cst.With) and (asynchronous is None or (ancestor.asynchronous is not None) == asynchronous):
                if any(self.lock_name(item.item) is not None for item in ancestor.items):
                    return ancestor
        return None

    def lock_held(self, node: cst.CSTNode, asynchronous: bool | None = None) -> str | None:
        """The lock held where ``node`` runs, as written (`self._lock`), if any: an enclosing
        `with`/`async with` on a lock, or a `lock.acquire()` earlier in an enclosing block."""
        current: cst.CSTNode = node
        for ancestor in self.context.ancestors(node):
            if isinstance(ancestor, cst.With):
                if asynchronous is None or (ancestor.asynchronous is not None) == asynchronous:
                    for item in ancestor.items:
                        name = self.lock_name(item.item)
                        if name is not None:
                            return name
            if isinstance(ancestor, cst.IndentedBlock):
                acquired = self._acquired_before(ancestor, current)
                if acquired is not None:
                    return acquired
            if isinstance(ancestor, (cst.If, cst.Else)) and current is not getattr(ancestor, "test", None):
                acquired = self._acquired_by_test(ancestor, current)
                if acquired is not None:
                    return acquired
            if ancestor is self.function:
                break
            current = ancestor
        return None

    def lock_name(self, expression: cst.BaseExpression) -> str | None:
        """``expression`` as written if it names a lock (a module or class lock, a parameter or
        attribute named like one, a file lock), else None. A lock made on the spot is not one."""
        if isinstance(expression, cst.Call):
            called = self.summary.qualify(dotted_name(expression.func) or "")
            if called in LOCK_CONSTRUCTORS:
                return None
            if _FILE_LOCKS.search(called) or (dotted_name(expression.func) or "").endswith(".lock"):
                return code(expression)  # `FileLock(path)`, `redis.lock("name")`
            return None
        name = dotted_name(expression)
        if name is None:
            return None
        if name in self.summary.locks:
            return name
        if name.startswith("self.") and self.class_name is not None:
            info = self.summary.classes.get(self.class_name)
            if info is not None and name[5:] in info.lock_attributes:
                return name
        return name if _LOCK_NAME.search(name.rpartition(".")[2]) else None

    def _acquired_by_test(self, branch: cst.If | cst.Else, current: cst.CSTNode) -> str | None:
        """`if lock.acquire(False): <held>` and `if not lock.acquire(False): ... else: <held>`."""
        if isinstance(branch, cst.If):
            test, held_in_body = branch.test, True
            if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
                test, held_in_body = test.expression, False
            if current is branch.body and held_in_body:
                return self._acquire_call(test)
            return None
        parent = self.context.parent(branch)
        if isinstance(parent, cst.If) and isinstance(parent.test, cst.UnaryOperation):
            if isinstance(parent.test.operator, cst.Not):
                return self._acquire_call(parent.test.expression)
        return None

    def _acquire_call(self, test: cst.BaseExpression) -> str | None:
        if isinstance(test, cst.Call) and isinstance(test.func, cst.Attribute) and test.func.attr.value == "acquire":
            return self.lock_name(test.func.value)
        return None

    def _acquired_before(self, block: cst.IndentedBlock, current: cst.CSTNode) -> str | None:
        held: str | None = None
        for statement in block.body:
            if statement is current:
                return held
            for small in statement.body if isinstance(statement, cst.SimpleStatementLine) else ():
                call = small.value if isinstance(small, cst.Expr) else None
                if isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute):
                    name = self.lock_name(call.func.value)
                    method = call.func.attr.value
                    if method == "acquire" and name is not None:
                        held = name
                    elif method == "release" and name == held:
                        held = None
                    elif method in {"flock", "lockf"}:
                        held = code(call)
        return None

    def caller_holds_lock(self) -> bool:
        """A private helper only ever called with the lock held, or named `*_locked`."""
        if self.name.endswith("_locked"):
            return True
        if self.class_name is None and not self.summary.locks:
            return False
        return self.name in self.context.discipline(self.class_name or "").under_lock_helpers

    # -- small helpers ------------------------------------------------------------------------
    def enclosing_statement(self, node: cst.CSTNode) -> cst.CSTNode:
        return self.context.enclosing_statement(node)

    def block_of(self, statement: cst.CSTNode) -> tuple[cst.CSTNode, ...]:
        parent = self.context.parent(statement)
        return tuple(parent.body) if isinstance(parent, (cst.IndentedBlock, cst.Module)) else (statement,)


def _subscript_parts(node: cst.CSTNode) -> tuple[str | None, str | None]:
    if not isinstance(node, cst.Subscript) or len(node.slice) != 1:
        return None, None
    element = node.slice[0].slice
    if not isinstance(element, cst.Index):
        return None, None
    return dotted_name(node.value), code(element.value)


def subscript_parts(node: cst.CSTNode) -> tuple[str | None, str | None]:
    """(container, key) as written for `d[k]`; (None, None) otherwise."""
    return _subscript_parts(node)


_EMPTY = cst.Module(body=[])


def code(node: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(node)


def lock_fix(first: cst.CSTNode, last: cst.CSTNode, scope: Scope, state: State | None, lock: str | None = None,
             title: str | None = None) -> FixRequest:
    """"Guard with a lock": wrap the statements from ``first`` to ``last`` (siblings) in one
    `with`/`async with`, reusing ``lock`` or creating one where the state lives."""
    data = {
        "lock": lock,
        "asynchronous": scope.is_async,
        "state_kind": state.kind if state is not None else "global",
        "state": state.key if state is not None else scope.name,
        "class": scope.class_name,
    }
    shown = f"`{lock}`" if lock else "a lock"
    return FixRequest("lock-guard", title or f"Guard with {shown}", first, data, nodes={"last": last})


@dataclass(frozen=True)
class Update:
    """A read-modify-write of shared state: ``read`` (an expression) then ``write`` (a statement)."""

    state: State
    target: cst.BaseExpression  # what is written, as written
    write: cst.CSTNode  # the assignment (or augmented assignment)
    read: cst.CSTNode  # where the old value is read (the write itself for `x += 1`)
    read_statement: cst.CSTNode  # the statement holding the read
    via_local: str | None  # `current = self.balance` ... `self.balance = current + n`: "current"


def concurrent_requests(context: UnitContext, qualname: str) -> str | None:
    """Why requests or tasks can run ``qualname`` at once (the rows and keys it touches are shared
    across processes too), or None: reached from a concurrency root, or in an application or
    data-store module that is not a single-writer script."""
    reach = context.reach(qualname)
    if reach is not None:
        return reach.via
    if context.single_writer(qualname) is not None:
        return None
    evidence = context.evidence()
    return evidence.application or evidence.data_store


def updates(scope: Scope) -> Iterator[Update]:
    """Every read-modify-write of shared state in the function, in source order: `x += n`,
    `x = f(x)`, `d[k] = d.get(k, 0) + 1`, and a read into a local that the write uses."""
    # local -> every (assignment, value) it derives from: its own, and those of the locals it
    # was computed from (`tokens = min(cap, tokens + refill)` keeps `tokens = d.get(k)`).
    aliases: dict[str, list[tuple[cst.CSTNode, cst.CSTNode]]] = {}
    for node in scope.nodes:
        if isinstance(node, cst.AugAssign):
            state = scope.state_of(node.target)
            if state is not None:
                yield Update(state, node.target, node, node, node, None)
        elif isinstance(node, cst.Assign) and len(node.targets) == 1:
            target = node.targets[0].target
            state = scope.state_of(target)
            if state is not None and _keeps_or_replaces(node.value, target):
                pass  # `x = y or x`: the old value is a fallback, not an input (no update is lost)
            elif state is not None:
                read = scope.reads(node.value, target)
                if read is not None:
                    yield Update(state, target, node, read, node, None)
                else:
                    used = _alias_read(scope, node.value, target, aliases)
                    if used is not None:
                        name, (assignment, _) = used
                        yield Update(state, target, node, assignment, assignment, name)
            origins = [(node, node.value)]
            # `response = await client.send(request)`: the awaited result is new data from elsewhere,
            # not computed from what `request` was built of; the chain of old values stops here.
            if not any(isinstance(used, cst.Await) for used in walk(node.value)):
                for used in walk(node.value):
                    if isinstance(used, cst.Name) and used.value in aliases:
                        origins.extend(aliases[used.value])
            for name in assigned_names(target):
                aliases[name] = origins


def _keeps_or_replaces(value: cst.BaseExpression, target: cst.BaseExpression) -> bool:
    """`value` is `new or target` / `target or new`: either the old value unchanged or another."""
    if not isinstance(value, cst.BooleanOperation):
        return False
    empty = cst.Module(body=[])
    wanted = empty.code_for_node(target)
    return wanted in (empty.code_for_node(value.left), empty.code_for_node(value.right))


def _alias_read(
    scope: Scope, value: cst.BaseExpression, target: cst.BaseExpression, aliases: dict
) -> tuple[str, tuple[cst.CSTNode, cst.CSTNode]] | None:
    """A local in ``value`` that holds the old value of ``target``, directly or through other
    locals (`current = self.token; grant = {... current.refresh ...}; self.token = f(grant)`)."""
    for node in walk(value):
        if isinstance(node, cst.Name) and node.value in aliases:
            for assignment, source in aliases[node.value]:
                if scope.reads(source, target) is not None:
                    return node.value, (assignment, source)
    return None


def statement_of(scope: Scope, node: cst.CSTNode) -> cst.CSTNode:
    """The statement line (or compound statement) that holds ``node``."""
    return scope.context.enclosing_statement(node)
