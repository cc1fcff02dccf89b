"""The module summary: facts about a whole file that rules read while analysing one unit.

Built once per file from the standard library's ``ast`` (fast), it records
imports and aliases, module globals, loggers, locks and executors, classes
with their lock attributes, every function with its decorators and a few
properties (async, never returns, handles its own errors), and names that are
observed as tasks or futures somewhere in the module. A rule analysing one
function asks the summary instead of looking at the rest of the file; that is
what lets analysis become incremental per unit.

Nothing here knows about libcst or LSP.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

LOCK_CONSTRUCTORS = frozenset(
    {
        "threading.Lock",
        "threading.RLock",
        "threading.Semaphore",
        "threading.BoundedSemaphore",
        "threading.Condition",
        "asyncio.Lock",
        "asyncio.Semaphore",
        "asyncio.BoundedSemaphore",
        "asyncio.Condition",
        "multiprocessing.Lock",
        "multiprocessing.RLock",
        "anyio.Lock",
        "trio.Lock",
    }
)

EXECUTOR_CONSTRUCTORS = frozenset(
    {
        "concurrent.futures.ThreadPoolExecutor",
        "concurrent.futures.ProcessPoolExecutor",
        "concurrent.futures.thread.ThreadPoolExecutor",
        "concurrent.futures.process.ProcessPoolExecutor",
        "multiprocessing.pool.ThreadPool",
        "multiprocessing.Pool",
    }
)

LOGGER_FACTORIES = frozenset(
    {
        "logging.getLogger",
        "logging.get_logger",
        "structlog.get_logger",
        "structlog.getLogger",
        "structlog.stdlib.get_logger",
        "loguru.logger.bind",
        "celery.utils.log.get_task_logger",
    }
)

# Objects that are loggers when imported by name.
LOGGER_OBJECTS = frozenset({"loguru.logger", "logging.root"})

NO_RETURN_ANNOTATIONS = frozenset({"NoReturn", "Never", "typing.NoReturn", "typing.Never"})

BROAD_EXCEPTIONS = frozenset({"Exception", "BaseException", "builtins.Exception", "builtins.BaseException"})

# Methods that consume a task's or future's outcome (its result or exception).
OBSERVING_CALLS = frozenset(
    {"gather", "wait", "as_completed", "wait_for", "shield", "result", "exception", "run_until_complete"}
)


@dataclass(frozen=True)
class FunctionInfo:
    qualname: str
    name: str
    line: int  # 0-based line of the `def`
    is_async: bool
    class_name: str | None
    decorators: tuple[str, ...]
    params: tuple[str, ...]
    never_returns: bool
    handles_errors: bool
    reads_outcome: bool  # calls `.result()` or `.exception()` (a done-callback that observes)


@dataclass(frozen=True)
class ClassInfo:
    qualname: str
    line: int
    bases: tuple[str, ...]
    decorators: tuple[str, ...]
    lock_attributes: frozenset[str]
    methods: frozenset[str]


@dataclass
class ModuleSummary:
    imports: dict[str, str] = field(default_factory=dict)
    defined: set[str] = field(default_factory=set)
    globals: set[str] = field(default_factory=set)
    loggers: set[str] = field(default_factory=set)
    locks: dict[str, str] = field(default_factory=dict)
    executors: set[str] = field(default_factory=set)
    functions: dict[str, FunctionInfo] = field(default_factory=dict)
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    # Names and attribute names whose task/future outcome is consumed somewhere
    # (awaited, gathered, `.result()`), e.g. "self._tasks" is recorded as "_tasks".
    observed: set[str] = field(default_factory=set)
    # Functions started on another thread or process: Thread/Timer targets and
    # executor jobs (`submit`, `map`, `run_in_executor`), as written at the call.
    entry_points: set[str] = field(default_factory=set)

    def qualify(self, dotted: str) -> str:
        """Resolve a dotted name through the module's imports ("r" -> "tenacity.retry")."""
        root, dot, rest = dotted.partition(".")
        target = self.imports.get(root)
        if target is not None:
            return target + dot + rest
        if root in _BUILTIN_NAMES and root not in self.defined:
            return "builtins." + dotted
        return dotted

    def function(self, qualname: str) -> FunctionInfo | None:
        return self.functions.get(qualname)

    def resolve_function(self, name: str, scope: str | None, class_name: str | None) -> FunctionInfo | None:
        """Find the function a bare name or ``self.name`` refers to from inside ``scope``."""
        if name.startswith(("self.", "cls.")) and class_name:
            return self.functions.get(f"{class_name}.{name.split('.', 1)[1]}")
        if "." in name:
            return self.functions.get(name)
        while scope:
            found = self.functions.get(f"{scope}.{name}")
            if found is not None:
                return found
            scope = scope.rpartition(".")[0]
        return self.functions.get(name)


_BUILTIN_NAMES = frozenset(dir(builtins))


def dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def summarize(tree: ast.Module) -> ModuleSummary:
    summary = ModuleSummary()
    _collect_imports(tree, summary)
    _collect_module_names(tree.body, summary)
    for stmt in tree.body:
        _collect_definitions(stmt, summary, scope=None, class_name=None)
    _collect_usage(tree, summary)
    return summary


def _collect_imports(tree: ast.Module, summary: ModuleSummary) -> None:
    """Module-level imports (also inside module-level try/if) win over imports in functions."""
    nested: dict[str, str] = {}

    def visit(node: ast.AST, in_definition: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                target = nested if in_definition else summary.imports
                for alias, qualified in _aliases(child):
                    target.setdefault(alias, qualified)
            elif isinstance(child, (ast.stmt, ast.ExceptHandler, ast.match_case)):
                visit(child, in_definition or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))

    visit(tree, False)
    for alias, qualified in nested.items():
        summary.imports.setdefault(alias, qualified)


def _aliases(node: ast.Import | ast.ImportFrom) -> Iterator[tuple[str, str]]:
    if isinstance(node, ast.Import):
        for name in node.names:
            if name.asname:
                yield name.asname, name.name
            else:
                root = name.name.split(".")[0]
                yield root, root
        return
    module = "." * node.level + (node.module or "")
    for name in node.names:
        if name.name == "*":
            continue
        qualified = f"{module}.{name.name}" if module and not module.endswith(".") else module + name.name
        yield name.asname or name.name, qualified


def _assigned_names(target: ast.AST) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            yield from _assigned_names(elt)
    elif isinstance(target, ast.Starred):
        yield from _assigned_names(target.value)


def _assignments(stmt: ast.stmt) -> Iterator[tuple[list[ast.AST], ast.AST | None]]:
    if isinstance(stmt, ast.Assign):
        yield stmt.targets, stmt.value
    elif isinstance(stmt, ast.AnnAssign):
        yield [stmt.target], stmt.value


def _call_name(value: ast.AST | None, summary: ModuleSummary) -> str | None:
    if isinstance(value, ast.Call):
        name = dotted(value.func)
        if name is not None:
            return summary.qualify(name)
    return None


def _collect_module_names(body: Iterable[ast.stmt], summary: ModuleSummary) -> None:
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            summary.defined.add(stmt.name)
            continue
        if isinstance(stmt, (ast.If, ast.Try)):
            _collect_module_names([*stmt.body, *getattr(stmt, "orelse", [])], summary)
            continue
        for targets, value in _assignments(stmt):
            names = [n for t in targets for n in _assigned_names(t)]
            summary.defined.update(names)
            summary.globals.update(names)
            _classify_binding(names, value, summary)


def _classify_binding(names: list[str], value: ast.AST | None, summary: ModuleSummary) -> None:
    called = _call_name(value, summary)
    if called is None and value is not None:
        referenced = dotted(value)
        if referenced is not None and summary.qualify(referenced) in LOGGER_OBJECTS:
            summary.loggers.update(names)
        return
    if called in LOGGER_FACTORIES or (called and called.endswith((".getLogger", ".get_logger"))):
        summary.loggers.update(names)
    elif called in LOCK_CONSTRUCTORS:
        for name in names:
            summary.locks[name] = called
    elif called in EXECUTOR_CONSTRUCTORS:
        summary.executors.update(names)


def _collect_definitions(stmt: ast.stmt, summary: ModuleSummary, scope: str | None, class_name: str | None) -> None:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        qualname = f"{scope}.{stmt.name}" if scope else stmt.name
        summary.functions[qualname] = FunctionInfo(
            qualname=qualname,
            name=stmt.name,
            line=stmt.lineno - 1,
            is_async=isinstance(stmt, ast.AsyncFunctionDef),
            class_name=class_name,
            decorators=tuple(_decorator_names(stmt, summary)),
            params=tuple(a.arg for a in (*stmt.args.posonlyargs, *stmt.args.args, *stmt.args.kwonlyargs)),
            never_returns=_never_returns(stmt, summary),
            handles_errors=_handles_own_errors(stmt.body, summary),
            reads_outcome=_reads_outcome(stmt),
        )
        for inner in _nested_statements(stmt.body):
            _collect_definitions(inner, summary, qualname, None)
    elif isinstance(stmt, ast.ClassDef):
        qualname = f"{scope}.{stmt.name}" if scope else stmt.name
        summary.classes[qualname] = ClassInfo(
            qualname=qualname,
            line=stmt.lineno - 1,
            bases=tuple(summary.qualify(b) for b in map(dotted, stmt.bases) if b),
            decorators=tuple(_decorator_names(stmt, summary)),
            lock_attributes=frozenset(_lock_attributes(stmt, summary)),
            methods=frozenset(
                s.name for s in stmt.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))
            ),
        )
        for inner in stmt.body:
            _collect_definitions(inner, summary, qualname, qualname)
    else:
        for inner in _nested_statements([stmt]):
            if inner is not stmt:
                _collect_definitions(inner, summary, scope, class_name)


def _nested_statements(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """Definitions reachable without entering another def/class (inside if/try/with/loops)."""
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield stmt
            continue
        for child_field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(stmt, child_field, None)
            if not children:
                continue
            for child in children:
                if isinstance(child, (ast.ExceptHandler, ast.match_case)):
                    yield from _nested_statements(child.body)
                elif isinstance(child, ast.stmt):
                    yield from _nested_statements([child])


def _decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, summary: ModuleSummary):
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = dotted(target)
        if name is not None:
            yield summary.qualify(name)


def _never_returns(fn: ast.FunctionDef | ast.AsyncFunctionDef, summary: ModuleSummary) -> bool:
    if fn.returns is not None:
        annotation = dotted(fn.returns)
        if annotation and (annotation in NO_RETURN_ANNOTATIONS or summary.qualify(annotation) in NO_RETURN_ANNOTATIONS):
            return True
    body = [s for s in fn.body if not _is_docstring(s)]
    return len(body) == 1 and isinstance(body[0], ast.Raise)


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _is_broad_handler(handler: ast.ExceptHandler, summary: ModuleSummary) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(summary.qualify(n) in BROAD_EXCEPTIONS for n in map(dotted, types) if n)


def _handles_own_errors(body: list[ast.stmt], summary: ModuleSummary) -> bool:
    """True when the body's work runs inside a broad try/except (a thread or task boundary)."""
    for stmt in body:
        if isinstance(stmt, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            if any(_is_broad_handler(h, summary) for h in stmt.handlers):
                return True
        if isinstance(stmt, (ast.While, ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)):
            if _handles_own_errors(stmt.body, summary):
                return True
    return False


def _reads_outcome(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in {"result", "exception"}
        for n in ast.walk(fn)
    )


def _lock_attributes(cls: ast.ClassDef, summary: ModuleSummary) -> Iterator[str]:
    for node in ast.walk(cls):
        for targets, value in _assignments(node) if isinstance(node, ast.stmt) else ():
            if _call_name(value, summary) not in LOCK_CONSTRUCTORS:
                continue
            for target in targets:
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                    yield target.attr
                yield from _assigned_names(target)


def _collect_usage(tree: ast.Module, summary: ModuleSummary) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Await):
            _observe(node.value, summary)
        elif isinstance(node, ast.Call):
            _collect_call_usage(node, summary)
        elif isinstance(node, (ast.For, ast.AsyncFor)) and _body_observes(node):
            _observe(node.iter, summary)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and _call_name(node.value, summary) in LOGGER_FACTORIES:
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Attribute):
                    summary.loggers.add(target.attr)


def _collect_call_usage(call: ast.Call, summary: ModuleSummary) -> None:
    func = call.func
    method = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if method in OBSERVING_CALLS:
        if method in {"result", "exception"} and isinstance(func, ast.Attribute):
            _observe(func.value, summary)
        for arg in call.args:
            _observe(arg.value if isinstance(arg, ast.Starred) else arg, summary)
    name = dotted(func)
    if name and summary.qualify(name) in {"threading.Thread", "threading.Timer"}:
        for keyword in call.keywords:
            if keyword.arg in {"target", "function"} and (target := dotted(keyword.value)):
                summary.entry_points.add(target)
        if summary.qualify(name) == "threading.Timer" and len(call.args) > 1 and (target := dotted(call.args[1])):
            summary.entry_points.add(target)
    elif method in {"submit", "map"} and call.args and (target := dotted(call.args[0])):
        summary.entry_points.add(target)
    elif method == "run_in_executor" and len(call.args) > 1 and (target := dotted(call.args[1])):
        summary.entry_points.add(target)


def _body_observes(loop: ast.For | ast.AsyncFor) -> bool:
    """`for t in tasks: await t` / `t.result()` consumes every element."""
    if not isinstance(loop.target, ast.Name):
        return False
    var = loop.target.id
    for node in ast.walk(ast.Module(body=loop.body, type_ignores=[])):
        if isinstance(node, ast.Await) and isinstance(node.value, ast.Name) and node.value.id == var:
            return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"result", "exception"}
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == var
        ):
            return True
    return False


def _observe(node: ast.AST, summary: ModuleSummary) -> None:
    if isinstance(node, ast.Call):
        return
    name = dotted(node)
    if name is None:
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            for elt in node.elts:
                _observe(elt.value if isinstance(elt, ast.Starred) else elt, summary)
        elif isinstance(node, ast.Starred):
            _observe(node.value, summary)
        return
    summary.observed.add(name)
    summary.observed.add(name.rsplit(".", 1)[-1])
