"""Where a module's code can run concurrently, and which state its locks guard.

The race rules (GAP2xx) fire only where the code shows concurrency, RacerD-style:
thread and executor entry points (``Thread(target=...)``, ``Timer``, ``submit``/``map``,
``run_in_executor``, ``to_thread``), threaded web handlers (Django and DRF views, Flask
routes, sync FastAPI endpoints), task consumers (Celery, dramatiq, huey, rq), classes
that own a lock, and everything those call in the same module. This module answers, for
a function: can it run on several threads at once, on the same ``self``, and how do we
know; for a class: which attributes its lock guards, and in which methods; for the module:
is it part of a concurrent application, or a single-writer script.

It is built lazily from the module summary and *flow facts* read from each unit's text
with ``ast`` (calls, references, accesses to ``self`` attributes and globals with the
locks held around them). Most files never need it; those that do pay one ``ast`` parse
per unit, cached by the unit's text, so an edit re-reads only the unit it touched.

Nothing here knows about libcst or LSP.
"""

from __future__ import annotations

import ast
import functools
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gap_ls.core.source import MEMBER_HEADER
from gap_ls.core.summary import dotted as dotted_name

if TYPE_CHECKING:
    from gap_ls.core.summary import FunctionInfo, ModuleSummary

# -- flow facts of one unit -------------------------------------------------------------------

# Methods that change the container they are called on.
MUTATING_METHODS = frozenset(
    {
        "append", "appendleft", "extend", "extendleft", "insert", "pop", "popleft", "popitem", "remove",
        "discard", "clear", "update", "setdefault", "add", "sort", "reverse",
    }
)
_EXECUTOR_METHODS = frozenset({"submit", "map", "imap", "imap_unordered", "starmap", "apply_async", "map_async"})
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_LOOPS = (ast.For, ast.AsyncFor, ast.While)


@dataclass(frozen=True)
class Start:
    """A call that runs a function on another thread or process."""

    call: str  # what is called, raw: "Thread", "th.Timer", "pool.submit", "loop.run_in_executor"
    method: str  # its last name: "Thread", "submit", "run_in_executor"
    receiver: str | None  # for `pool.submit(f)`: "pool"
    target: str  # the function that runs, raw: "_worker_loop", "self._watch", "upstream.send"
    where: str  # qualified name of the function holding the call; "" at module level
    repeated: bool  # inside a loop or comprehension: several threads run the target


@dataclass(frozen=True)
class Access:
    """A read or write of ``name`` (an attribute of ``self``, or a module-level name)."""

    name: str
    write: bool
    held: frozenset[str]  # what the enclosing `with` blocks hold, raw ("self._lock", "_hits_lock")
    statement: int = 0  # which statement of the unit (accesses in one statement count once)
    in_test: bool = False  # in an `if`/`while` test (a check, as in double-checked locking)


@dataclass(frozen=True)
class FunctionFlow:
    qualname: str
    class_name: str | None  # the class whose `self` this code sees (also inside nested functions)
    is_async: bool
    mentions: frozenset[str]  # dotted names referenced: calls and callbacks alike
    self_accesses: tuple[Access, ...]
    self_calls: tuple[Access, ...]  # `self.method(...)`: name is the method
    global_accesses: tuple[Access, ...]  # names not bound in the function (module-level, or builtins)
    constructed: tuple[tuple[str, str], ...]  # local name or "self.attr" -> raw constructor call
    aliases: tuple[tuple[str, str], ...] = ()  # local name -> function it holds: `work = partial(self._run, ...)`
    name_calls: tuple[Access, ...] = ()  # `helper(...)`: name is the called bare name
    annotations: tuple[tuple[str, str], ...] = ()  # parameter -> its annotation, raw: ("uploader", "Uploader")


@dataclass(frozen=True)
class UnitFlow:
    functions: tuple[FunctionFlow, ...] = ()
    starts: tuple[Start, ...] = ()
    optimistic_classes: frozenset[str] = frozenset()  # classes that declare a version column
    main_guard: bool = False  # `if __name__ == "__main__":`
    main_mentions: frozenset[str] = frozenset()  # names used under that guard
    routes: tuple[Start, ...] = ()  # `Route("/x", handler)`, `app.add_url_rule(..., view_func=f)`


def unit_flow(class_path: tuple[str, ...], text: str) -> UnitFlow:
    """The flow facts of one unit (a top-level statement, or a member of ``class_path``)."""
    try:
        tree = ast.parse(MEMBER_HEADER + text if class_path else text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return UnitFlow()  # the document reports it (GAP000); nothing flows from it
    statements = tree.body[0].body if class_path and tree.body and isinstance(tree.body[0], ast.ClassDef) else tree.body
    return flow_of_statements(statements, class_path)


def flow_of_statements(statements: Sequence[ast.stmt], class_path: tuple[str, ...]) -> UnitFlow:
    """The flow facts of a unit's statements, already parsed (members of ``class_path``)."""
    reader = _FlowReader(class_path)
    reader.block(statements, _Scope(qualname="", class_name=".".join(class_path) or None, in_class=bool(class_path)))
    return UnitFlow(
        tuple(reader.functions), tuple(reader.starts), frozenset(reader.optimistic), reader.main_guard,
        frozenset(reader.main_mentions), tuple(reader.routes),
    )


@dataclass
class _Scope:
    qualname: str  # "" at module level (or directly in a class body)
    class_name: str | None  # the class whose `self` code here sees
    in_class: bool = False  # statements directly in a class body
    function: _FunctionBuilder | None = None
    held: frozenset[str] = frozenset()
    repeated: bool = False
    statement: int = 0
    in_test: bool = False


@dataclass
class _FunctionBuilder:
    qualname: str
    class_name: str | None
    is_async: bool
    locals: set[str]  # parameters, then every name bound in the body (see build)
    mentions: set[str] = field(default_factory=set)
    self_accesses: list[Access] = field(default_factory=list)
    self_calls: list[Access] = field(default_factory=list)
    global_accesses: list[Access] = field(default_factory=list)
    constructed: list[tuple[str, str]] = field(default_factory=list)
    aliases: list[tuple[str, str]] = field(default_factory=list)
    name_calls: list[Access] = field(default_factory=list)
    annotations: tuple[tuple[str, str], ...] = ()
    declared_global: set[str] = field(default_factory=set)  # `global x` / `nonlocal x`

    def build(self) -> FunctionFlow:
        # Locals are known only once the whole body is read; a name is module-level state if
        # the function never binds it (or declares it `global`).
        local = self.locals - self.declared_global
        accesses = tuple(a for a in self.global_accesses if a.name not in local)
        return FunctionFlow(
            self.qualname, self.class_name, self.is_async, frozenset(self.mentions), tuple(self.self_accesses),
            tuple(self.self_calls), accesses, tuple(self.constructed), tuple(self.aliases),
            tuple(self.name_calls), self.annotations,
        )


class _FlowReader:
    def __init__(self, class_path: tuple[str, ...]) -> None:
        self.class_path = class_path
        self.functions: list[FunctionFlow] = []
        self.starts: list[Start] = []
        self.optimistic: set[str] = set()
        self.main_guard = False
        self.main_mentions: set[str] = set()
        self.routes: list[Start] = []
        self.statements_seen = 0

    # -- statements -------------------------------------------------------------------------
    def block(self, statements: Sequence[ast.stmt], scope: _Scope) -> None:
        held = set(scope.held)
        for statement in statements:
            self.statements_seen += 1
            here = _Scope(scope.qualname, scope.class_name, scope.in_class, scope.function, frozenset(held), scope.repeated,
                          self.statements_seen)
            self.statement(statement, here)
            held |= _acquired(statement)
            held -= _released(statement)

    def statement(self, node: ast.stmt, scope: _Scope) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.function(node, scope)
        elif isinstance(node, ast.ClassDef):
            self.class_def(node, scope)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            held = set(scope.held)
            for item in node.items:
                self.expression(item.context_expr, scope)
                if item.optional_vars is not None:
                    self.expression(item.optional_vars, scope)
                    self._note_construction(item.optional_vars, item.context_expr, scope)
                held.add(_held_name(item.context_expr))
            inner = _Scope(scope.qualname, scope.class_name, scope.in_class, scope.function, frozenset(held), scope.repeated)
            self.block(node.body, inner)
        elif isinstance(node, ast.If) and (acquired := _acquire_test(node.test)) is not None:
            # `if lock.acquire(False):` holds it in the body; `if not lock.acquire(False):` in the else.
            name, in_body = acquired
            self.expression(node.test, scope)
            held = frozenset({*scope.held, name})
            for block, holds in ((node.body, in_body), (node.orelse, not in_body)):
                self.block(block, _Scope(scope.qualname, scope.class_name, scope.in_class, scope.function,
                                         held if holds else scope.held, scope.repeated))
        else:
            if scope.function is not None:
                _note_bindings(node, scope.function)
            if scope.in_class and scope.function is None:
                self._class_level(node, scope)
            if scope.function is None and _is_main_guard(node):
                self.main_guard = True
                self.main_mentions |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    self._note_construction(target, node.value, scope)
            repeated = scope.repeated or isinstance(node, _LOOPS)
            testing = isinstance(node, (ast.If, ast.While))
            for name, value in ast.iter_fields(node):
                if name in ("body", "orelse", "finalbody", "handlers", "cases"):
                    continue
                for child in value if isinstance(value, list) else [value]:
                    if isinstance(child, ast.expr):
                        self.expression(child, _Scope(scope.qualname, scope.class_name, scope.in_class, scope.function,
                                                      scope.held, repeated, scope.statement, testing and name == "test"))
            inner = _Scope(scope.qualname, scope.class_name, scope.in_class, scope.function, scope.held, repeated)
            for block_name in ("body", "orelse", "finalbody"):
                block = getattr(node, block_name, None)
                if block and isinstance(block[0], ast.stmt):
                    self.block(block, inner)
            for handler in getattr(node, "handlers", None) or ():
                if handler.type is not None:
                    self.expression(handler.type, inner)
                if handler.name and scope.function is not None:
                    scope.function.locals.add(handler.name)
                self.block(handler.body, inner)
            for case in getattr(node, "cases", None) or ():
                self.block(case.body, inner)

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, scope: _Scope) -> None:
        for decorator in node.decorator_list:
            self.expression(decorator, scope)
        qualname = f"{scope.qualname}.{node.name}" if scope.qualname else (
            f"{scope.class_name}.{node.name}" if scope.in_class and scope.class_name else node.name
        )
        if scope.function is not None:
            scope.function.mentions.add(node.name)  # a nested function runs when its parent says so
            scope.function.locals.add(node.name)
        arguments = (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)
        parameters = {a.arg for a in arguments} | {a.arg for a in (node.args.vararg, node.args.kwarg) if a is not None}
        builder = _FunctionBuilder(qualname, scope.class_name, isinstance(node, ast.AsyncFunctionDef), parameters)
        builder.annotations = tuple(
            (a.arg, name) for a in arguments if a.annotation is not None and (name := dotted_name(a.annotation))
        )
        inner = _Scope(qualname, scope.class_name, False, builder)
        self.block(node.body, inner)
        self.functions.append(builder.build())

    def class_def(self, node: ast.ClassDef, scope: _Scope) -> None:
        for expression in (*node.bases, *node.decorator_list):
            self.expression(expression, scope)
        outer = scope.qualname or (scope.class_name if scope.in_class else "")
        qualname = f"{outer}.{node.name}" if outer else node.name
        if scope.function is not None:
            scope.function.locals.add(node.name)
        self.block(node.body, _Scope("", qualname, in_class=True))

    def _class_level(self, node: ast.stmt, scope: _Scope) -> None:
        """A class-body statement: does it declare optimistic locking (a version column)?"""
        if scope.class_name is None:
            return
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        value = getattr(node, "value", None)
        names = {t.id for t in targets if isinstance(t, ast.Name)}
        if "__mapper_args__" in names and isinstance(value, ast.Dict):
            if any(isinstance(k, ast.Constant) and k.value == "version_id_col" for k in value.keys):
                self.optimistic.add(scope.class_name)
        if isinstance(value, ast.Call) and (dotted_name(value.func) or "").endswith("VersionField"):
            self.optimistic.add(scope.class_name)  # django-concurrency

    def _note_construction(self, target: ast.expr, value: ast.expr, scope: _Scope) -> None:
        if scope.function is None:
            return
        name = dotted_name(target)
        if isinstance(name, str) and "." not in name and isinstance(value, (ast.Call, ast.Lambda)):
            held = _function_name(value) if isinstance(value, ast.Lambda) or _is_partial(value) else None
            if held is not None:
                scope.function.aliases.append((name, held))
        if not isinstance(value, ast.Call):
            return
        called = dotted_name(value.func)
        if called and name and (name.count(".") == 0 or name.startswith("self.")):
            scope.function.constructed.append((name, called))

    # -- expressions --------------------------------------------------------------------------
    def expression(self, root: ast.expr, scope: _Scope) -> None:
        stack: list[tuple[ast.AST, bool]] = [(root, scope.repeated)]
        function = scope.function
        while stack:
            node, repeated = stack.pop()
            if isinstance(node, ast.Call):
                self._call(node, scope, repeated)
                if isinstance(node.func, ast.Attribute) and node.func.attr in MUTATING_METHODS:
                    node.func.value._gap_written = True  # type: ignore[attr-defined]  # `x.append(v)` changes x
            if function is not None:
                self._access(node, scope)
                if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load):
                    name = dotted_name(node)
                    if name is not None:
                        function.mentions.add(name)
            inner_repeated = repeated or isinstance(node, _COMPREHENSIONS)
            stack.extend((child, inner_repeated) for child in ast.iter_child_nodes(node))

    def _call(self, call: ast.Call, scope: _Scope, repeated: bool) -> None:
        called = dotted_name(call.func) or ""
        method = called.rpartition(".")[2] if called else (call.func.attr if isinstance(call.func, ast.Attribute) else "")
        receiver = dotted_name(call.func.value) if isinstance(call.func, ast.Attribute) else None
        handler = _route_target(call, method)
        if handler is not None and (name := _function_name(handler)) is not None:
            self.routes.append(Start(called, method, receiver, name, scope.qualname, False))
            return
        target = _start_target(call, method)
        if target is None:
            return
        name = _function_name(target)
        if name is not None:
            self.starts.append(Start(called, method, receiver, name, scope.qualname, repeated))

    def _access(self, node: ast.AST, scope: _Scope) -> None:
        function = scope.function
        assert function is not None
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            function.self_accesses.append(Access(node.attr, _is_written(node), scope.held, scope.statement, scope.in_test))
        elif isinstance(node, ast.Name):
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                function.locals.add(node.id)
            function.global_accesses.append(  # filtered in build()
                Access(node.id, _is_written(node), scope.held, scope.statement, scope.in_test)
            )
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            if isinstance(receiver, ast.Name) and receiver.id == "self":
                function.self_calls.append(Access(node.func.attr, False, scope.held))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            function.name_calls.append(Access(node.func.id, False, scope.held))


# Parents are not kept by ast; a node's role is read from where it sits, so the reader marks
# targets as it meets them.
def _is_written(node: ast.Name | ast.Attribute) -> bool:
    return isinstance(node.ctx, (ast.Store, ast.Del)) or getattr(node, "_gap_written", False)


def _note_bindings(statement: ast.stmt, function: _FunctionBuilder) -> None:
    """Before a statement's expressions are read: names it binds without a `Name` node
    (imports, `global`), and the objects it changes in place (`x[k] = v`, `x.a = v`, `x += v`
    mark `x` as written)."""
    if isinstance(statement, (ast.Global, ast.Nonlocal)):
        function.declared_global.update(statement.names)
        return
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        function.locals.update((a.asname or a.name).split(".")[0] for a in statement.names)
        return
    if isinstance(statement, (ast.Assign, ast.Delete)):
        targets = list(statement.targets)
    elif isinstance(statement, (ast.AugAssign, ast.AnnAssign)):
        targets = [statement.target]
    else:
        return
    for target in targets:
        base = target
        while isinstance(base, (ast.Subscript, ast.Attribute)) and not _is_self_attribute(base):
            base = base.value
            base._gap_written = True  # type: ignore[attr-defined]


def _is_self_attribute(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"


def _held_name(expression: ast.expr) -> str:
    name = dotted_name(expression)
    if name is not None:
        return name
    if isinstance(expression, ast.Call):
        return f"{dotted_name(expression.func) or '?'}()"
    return "?"


def _acquired(statement: ast.stmt) -> set[str]:
    """`lock.acquire()` as a statement: the lock is held by the statements after it."""
    return _lock_calls(statement, "acquire")


def _released(statement: ast.stmt) -> set[str]:
    found = _lock_calls(statement, "release")
    if isinstance(statement, ast.Try):
        for inner in statement.finalbody:
            found |= _lock_calls(inner, "release")
    return found


def _acquire_test(test: ast.expr) -> tuple[str, bool] | None:
    """(lock, held in the body) for `if lock.acquire(...)` / `if not lock.acquire(...)`."""
    negated = isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
    call = test.operand if negated else test
    if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "acquire":
        name = dotted_name(call.func.value)
        if name is not None:
            return name, not negated
    return None


def _lock_calls(statement: ast.stmt, method: str) -> set[str]:
    value = statement.value if isinstance(statement, (ast.Expr, ast.Assign)) else None
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == method:
        name = dotted_name(value.func.value)
        return {name} if name else set()
    return set()


def _start_target(call: ast.Call, method: str) -> ast.expr | None:
    """The argument naming the function a thread/executor call runs, if ``call`` is one."""
    for keyword in call.keywords:
        if keyword.arg in {"target", "function"}:
            return keyword.value
    if method == "Timer" and len(call.args) > 1:
        return call.args[1]
    if method in _EXECUTOR_METHODS and call.args and isinstance(call.func, ast.Attribute):
        return call.args[0]
    if method == "run_in_executor" and len(call.args) > 1:
        return call.args[1]
    if method in {"to_thread", "start_new_thread", "start_new", "add_job"} and call.args:
        return call.args[0]
    return None


# Calls that register a handler without a decorator: Starlette `Route("/x", f)`, Flask
# `app.add_url_rule("/x", view_func=f)`, FastAPI `add_api_route`, aiohttp `router.add_get("/x", f)`.
_ROUTE_REGISTRATIONS = frozenset({"Route", "WebSocketRoute", "add_url_rule", "add_api_route", "add_route",
                                  "add_get", "add_post", "add_put", "add_patch", "add_delete", "add_api_websocket_route"})


def _route_target(call: ast.Call, method: str) -> ast.expr | None:
    if method not in _ROUTE_REGISTRATIONS:
        return None
    for keyword in call.keywords:
        if keyword.arg in {"endpoint", "view_func", "handler"}:
            return keyword.value
    positional = call.args[2] if method == "add_url_rule" and len(call.args) > 2 else (
        call.args[1] if method != "add_url_rule" and len(call.args) > 1 else None
    )
    return positional


def _is_partial(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and (dotted_name(node.func) or "").endswith("partial")


def _function_name(node: ast.expr) -> str | None:
    """`f`, `self.m`, `obj.m` for a function reference; unwraps `partial(f, ...)` and `lambda: f(...)`."""
    if isinstance(node, ast.Call) and (dotted_name(node.func) or "").endswith("partial") and node.args:
        return _function_name(node.args[0])
    if isinstance(node, ast.Lambda) and isinstance(node.body, ast.Call):
        return dotted_name(node.body.func)
    return dotted_name(node)


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    names = [node.test.left, *node.test.comparators]
    return any(isinstance(n, ast.Name) and n.id == "__name__" for n in names) and any(
        isinstance(n, ast.Constant) and n.value == "__main__" for n in names
    )


# -- a cheap first look (no flow facts) -------------------------------------------------------


def may_run_concurrently(summary: ModuleSummary) -> bool:
    """Whether anything in the module can be a concurrency signal: a lock, a thread or executor
    entry point, a lock-owning class, or an import of a web, task or concurrency library.
    False lets the race rules skip a module without building the model."""
    if summary.locks or summary.entry_points or summary.executors:
        return True
    if any(info.lock_attributes for info in summary.classes.values()):
        return True
    roots = {q.split(".")[0] for q in summary.imports.values()}
    return bool(roots & _SIGNAL_ROOTS)


def has_roots(summary: ModuleSummary) -> bool:
    """Whether the module may hold a root of concurrent work, read from the summary alone: a
    thread or executor entry point, a lock-owning class, a decorator that makes a handler, a
    task or a scheduled job, a Django view, a view or handler class. False means no function
    here can be reached from one, so the rules that need that skip the module's units."""
    if summary.entry_points or summary.locks or any(info.lock_attributes for info in summary.classes.values()):
        return True
    roots = {q.split(".")[0] for q in summary.imports.values()}
    web = bool(roots & set(_WEB_FRAMEWORKS))
    tasks = bool(roots & {*_TASK_FRAMEWORKS, "apscheduler"})
    for info in summary.functions.values():
        for decorator in info.decorators:
            last = decorator.rpartition(".")[2]
            if (web and last in _ROUTE_METHODS) or (tasks and last in (*_TASK_DECORATORS, "scheduled_job")):
                return True
        if web and info.params[:1] == ("request",):
            return True
    for info in summary.classes.values():
        for base in info.bases:
            qualified = summary.qualify(base)
            if (web and _VIEW_BASES.search(qualified)) or qualified.startswith(_ROOT_BASE_MODULES) or (
                "grpc" in roots and qualified.endswith("Servicer")
            ):
                return True
    return False


def imports_data_store(summary: ModuleSummary) -> bool:
    """An ORM, database driver, Redis or a shared cache is imported: rows and keys to race on."""
    roots = {q.split(".")[0] for q in summary.imports.values()}
    return bool(roots & _SHARED_STORES)


def reached(summary: ModuleSummary, qualnames: Iterable[str], memory: bool) -> bool:
    """Whether one of the functions can run concurrently (``memory``: on threads sharing this
    process's memory). Asked through ``summary.fact`` so the answer is a recorded dependency."""
    for qualname in qualnames:
        key = summary.fact(("reach", qualname))
        if key is not None and (not memory or key[1]):
            return True
    return False


# -- the model --------------------------------------------------------------------------------

THREAD_KINDS = frozenset({"thread", "web", "task", "lock-class"})  # share this process's memory

_WEB_FRAMEWORKS = ("django", "rest_framework", "flask", "fastapi", "starlette", "aiohttp", "sanic", "quart",
                   "tornado", "falcon", "bottle", "pyramid", "litestar", "channels", "ninja")
_TASK_FRAMEWORKS = ("celery", "dramatiq", "huey", "rq", "django_rq", "arq", "taskiq", "procrastinate", "kombu")
_CONCURRENCY_MODULES = ("threading", "concurrent", "multiprocessing", "asyncio", "gevent", "eventlet", "_thread",
                        "gunicorn", "uvicorn", "pika", "aiokafka", "kafka", "confluent_kafka")
_DATA_STORES = ("sqlalchemy", "redis", "django", "pymongo", "motor", "psycopg", "psycopg2", "asyncpg", "peewee",
                "tortoise", "sqlmodel", "pymysql", "aioredis", "flask_sqlalchemy", "databases", "mongoengine")
_SHARED_STORES = frozenset((*_DATA_STORES, "flask_caching", "aiocache", "pymemcache", "memcache", "django_redis",
                            "valkey", "rest_framework", "sqlalchemy_utils", "pony", "ormar", "beanie", "odmantic"))
_SCRIPT_MODULES = ("argparse", "click", "typer", "fire", "docopt", "optparse")
_SIGNAL_ROOTS = frozenset((*_WEB_FRAMEWORKS, *_TASK_FRAMEWORKS, *_CONCURRENCY_MODULES))
_ROOT_BASE_MODULES = ("threading.Thread", "multiprocessing.Process", "socketserver.", "http.server.")
_ASYNC_ONLY_FRAMEWORKS = ("aiohttp", "sanic", "quart", "tornado")
_ROUTE_METHODS = frozenset({"route", "get", "post", "put", "patch", "delete", "head", "options", "api_route",
                            "websocket", "view", "add_route"})
_VIEW_BASES = re.compile(
    r"(^|\.)(View|APIView|\w*ViewSet|Generic\w*APIView|\w+APIView|TemplateView|FormView|ListView|DetailView|"
    r"CreateView|UpdateView|DeleteView|RedirectView|MethodView|HTTPEndpoint|RequestHandler|WebSocketEndpoint)$"
)
_TASK_DECORATORS = frozenset({"task", "shared_task", "actor", "periodic_task", "db_task", "job"})
_NOT_HANDLERS = frozenset({"__init__", "__new__", "__post_init__", "setup", "as_view", "__del__", "__repr__"})
_CONSTRUCTION_METHODS = frozenset({"__init__", "__new__", "__post_init__", "setup", "__set_name__"})
# `__init__`'s body under another name (`def __init_impl(...)` then `__init__ = __init_impl`).
_INIT_BODY = re.compile(r"^_{1,2}init(ialize)?(_impl)?$")
_SINGLE_THREADED = frozenset({"__setstate__", "__reduce__", "__reduce_ex__", "__getstate__", "__copy__", "__deepcopy__"})
_FORK_HOOK = re.compile(r"after_?fork|at_?fork|_reinit", re.IGNORECASE)
_EXECUTOR_NAME = re.compile(r"executor|pool|workers", re.IGNORECASE)
_PROCESS_EXECUTORS = ("ProcessPoolExecutor", "multiprocessing.Pool", "multiprocessing.pool.Pool")


@dataclass(frozen=True)
class Reach:
    """How a function can run concurrently, and how we know."""

    kind: str  # thread | process | web | web-async | task | lock-class | lock-class-async
    memory: bool  # other threads of this process can run code touching the same memory meanwhile
    repeated: bool  # the function itself can run on several threads at once
    self_shared: bool  # ...and with the same `self`
    via: str  # for messages: "`_worker_loop` is the target of `Thread(target=_worker_loop)` in `start_workers`"

    def key(self) -> tuple:
        return (self.kind, self.memory, self.repeated, self.self_shared, self.via)


@dataclass(frozen=True)
class Evidence:
    """Whether the module is part of a concurrent application (web, tasks, threads)."""

    application: str | None  # why it is: "the module defines Flask routes", "the module imports `celery`"
    data_store: str | None  # why its data lives in a shared store: "the module imports `sqlalchemy`"
    script: str | None  # why it is a single-process script, if it looks like one

    def key(self) -> tuple:
        return (self.application, self.data_store, self.script)


@dataclass(frozen=True)
class Discipline:
    """The lock discipline of a class (or, with class "", of the module's globals)."""

    locks: frozenset[str]  # held names that are this class's locks: "self._lock"
    guarded: dict[str, frozenset[str]]  # attribute -> functions that access it holding one of the locks
    under_lock_helpers: frozenset[str]  # methods (by name) only ever called while a lock is held
    construction: frozenset[str] = frozenset()  # methods only run while the object is being built
    # Accesses per attribute, under the lock (or in a helper) and not, outside construction.
    guarded_count: dict[str, int] = field(default_factory=dict)
    unguarded_count: dict[str, int] = field(default_factory=dict)
    # attribute -> function -> the locks held around its accesses there
    locks_of: dict[str, dict[str, frozenset[str]]] = field(default_factory=dict)

    def locks_elsewhere(self, name: str, function: str) -> frozenset[str]:
        """The locks other functions hold around ``name``."""
        found: set[str] = set()
        for other, held in self.locks_of.get(name, {}).items():
            if other != function:
                found |= held
        return frozenset(found)

    def mostly_guarded(self, name: str) -> bool:
        """At least half the accesses hold the lock (CodeQL's inconsistent-synchronisation idea:
        the unlocked ones are then the exception). A statement counts once, and reads in an
        `if` test outside the lock (double-checked locking's first look) do not count."""
        return self.guarded_count.get(name, 0) >= max(self.unguarded_count.get(name, 0), 1)

    @functools.cached_property
    def _key(self) -> tuple:
        return self.key_of()

    def key(self) -> tuple:
        return self._key

    def key_of(self) -> tuple:
        return (self.locks, tuple(sorted(self.guarded.items())), self.under_lock_helpers, self.construction,
                tuple(sorted(self.guarded_count.items())), tuple(sorted(self.unguarded_count.items())),
                tuple(sorted((k, tuple(sorted(v.items()))) for k, v in self.locks_of.items())))


@dataclass(frozen=True)
class _Seed:
    qualname: str
    reach: Reach
    priority: int


class ConcurrencyModel:
    def __init__(self, summary: ModuleSummary, flows: Sequence[UnitFlow]) -> None:
        self.summary = summary
        self._import_order = list(dict.fromkeys(q.split(".")[0] for q in summary.imports.values()))
        self.import_roots = frozenset(self._import_order)
        self.flows = {f.qualname: f for flow in flows for f in flow.functions}
        self.starts = [s for flow in flows for s in flow.starts]
        self.optimistic = frozenset(c for flow in flows for c in flow.optimistic_classes)
        self.main_guard = any(flow.main_guard for flow in flows)
        self.main_mentions = frozenset(n for flow in flows for n in flow.main_mentions)
        self.routes = [r for flow in flows for r in flow.routes]
        self._reach: dict[str, Reach] = {}
        self._discipline: dict[str, Discipline] = {}
        self._main_reached: frozenset[str] | None = None
        self._writers: dict[str, frozenset[str]] | None = None
        self._attribute_calls: dict[tuple[str, str], str] | None = None
        self._compute_reach()
        self.evidence = self._evidence()

    # -- questions rules ask ------------------------------------------------------------------
    def reach(self, qualname: str) -> Reach | None:
        return self._reach.get(qualname)

    def single_writer(self, qualname: str) -> str | None:
        """Why ``qualname`` runs in one process at a time, if the code says so."""
        if qualname in self._reach:
            return None
        if qualname in self._main_only():
            return "it runs only from the module's command-line entry point (`if __name__ == \"__main__\"`)"
        info = self.summary.functions.get(qualname)
        if info is not None and info.class_name is not None:
            for base in self._bases(info.class_name):
                if base.endswith("BaseCommand"):
                    return "a Django management command (one process, run by hand or cron)"
        return self.evidence.script

    def _main_only(self) -> frozenset[str]:
        """Functions reached from the `__main__` guard (and not from any root)."""
        if self._main_reached is None:
            found: set[str] = set()
            pending = [n for n in self.main_mentions if n in self.summary.functions]
            while pending:
                qualname = pending.pop()
                if qualname in found or qualname in self._reach:
                    continue
                found.add(qualname)
                flow = self.flows.get(qualname)
                for mention in flow.mentions if flow is not None else ():
                    if "." not in mention:
                        info = self.summary.resolve_function(mention, qualname, None)
                        if info is not None:
                            pending.append(info.qualname)
            self._main_reached = frozenset(found)
        return self._main_reached

    def discipline(self, class_name: str) -> Discipline:
        """For a class: its lock attributes and what they guard; for "": the module's locks."""
        if class_name not in self._discipline:
            self._discipline[class_name] = self._compute_discipline(class_name)
        return self._discipline[class_name]

    def writers_of_global(self, name: str) -> frozenset[str]:
        if self._writers is None:
            writers: dict[str, set[str]] = {}
            for qualname, flow in self.flows.items():
                for access in flow.global_accesses:
                    if access.write:
                        writers.setdefault(access.name, set()).add(qualname)
            self._writers = {k: frozenset(v) for k, v in writers.items()}
        return self._writers.get(name, frozenset())

    def is_lock(self, held: str, class_name: str | None) -> bool:
        """Whether a name held by `with` is a lock: a lock attribute of the class, a module lock,
        or named like one (a parameter `lock`, `self._mutex`)."""
        if held.startswith("self.") and class_name is not None:
            info = self.summary.classes.get(class_name)
            if info is not None and held[5:] in info.lock_attributes:
                return True
        if held in self.summary.locks:
            return True
        return bool(_LOCK_NAME.search(held.rpartition(".")[2])) and not held.endswith("()")

    # -- reach ----------------------------------------------------------------------------------
    def _compute_reach(self) -> None:
        seeds = sorted(self._seeds(), key=lambda s: s.priority)
        queue: deque[tuple[str, Reach]] = deque()
        seen: set[tuple[str, str, bool, bool, bool]] = set()
        for seed in seeds:
            queue.append((seed.qualname, seed.reach))
        while queue:
            qualname, reach = queue.popleft()
            state = (qualname, reach.kind, reach.memory, reach.repeated, reach.self_shared)
            if state in seen or qualname not in self.summary.functions:
                continue
            seen.add(state)
            self._record(qualname, reach)
            for callee, self_shared in self._callees(qualname, reach):
                via = reach.via if qualname == callee else f"{reach.via}; `{_short(qualname)}` calls `{_short(callee)}`"
                queue.append((callee, Reach(reach.kind, reach.memory, reach.repeated, self_shared, via)))

    def _record(self, qualname: str, reach: Reach) -> None:
        known = self._reach.get(qualname)
        if known is None:
            self._reach[qualname] = reach
            return
        # Keep the first explanation (the strongest root); widen what is shared.
        self._reach[qualname] = Reach(
            known.kind,
            known.memory or reach.memory,
            known.repeated or (reach.repeated and reach.memory),
            known.self_shared or (reach.self_shared and reach.memory),
            known.via,
        )

    def _callees(self, qualname: str, reach: Reach) -> Iterator[tuple[str, bool]]:
        flow = self.flows.get(qualname)
        if flow is None:
            return
        info = self.summary.functions[qualname]
        class_name = flow.class_name or info.class_name
        local = dict(flow.constructed)
        for mention in flow.mentions:
            head, _, rest = mention.partition(".")
            if head in {"self", "cls"} and rest and "." not in rest:
                for method in self._methods_named(class_name, rest):
                    yield method, reach.self_shared
            elif not rest:
                found = self.summary.resolve_function(mention, qualname, None)
                if found is not None:
                    yield found.qualname, False
                elif mention in self.summary.classes:
                    init = f"{mention}.__init__"
                    if init in self.summary.functions:
                        yield init, False
            elif "." not in rest:
                owner = self._class_of_instance(head, local)
                annotated = dict(flow.annotations).get(head)
                if owner is not None:
                    for method in self._methods_named(owner, rest):
                        # A module-level instance is one object for every thread; a local one is fresh.
                        yield method, head not in local and reach.memory
                elif head in self.summary.classes:
                    yield from ((m, False) for m in self._methods_named(head, rest))
                elif annotated in self.summary.classes:
                    # A parameter typed with a class of this module: whether the object is shared
                    # is the caller's business, so `self` is not assumed shared.
                    yield from ((m, False) for m in self._methods_named(annotated, rest))

    def _class_of_instance(self, name: str, local: dict[str, str]) -> str | None:
        called = local.get(name)
        if called is None:
            constructor = self.summary.constructed.get(name)
            return constructor if constructor in self.summary.classes else None
        return called if called in self.summary.classes else None

    def _methods_named(self, class_name: str | None, method: str) -> Iterator[str]:
        if class_name is None:
            return
        for owner in (class_name, *self._module_bases(class_name)):
            qualname = f"{owner}.{method}"
            if qualname in self.summary.functions:
                yield qualname
                return

    def _module_bases(self, class_name: str) -> list[str]:
        """Base classes of ``class_name`` defined in this module, nearest first."""
        found: list[str] = []
        pending = [class_name]
        while pending:
            info = self.summary.classes.get(pending.pop())
            for base in info.bases if info is not None else ():
                if base in self.summary.classes and base not in found and base != class_name:
                    found.append(base)
                    pending.append(base)
        return found

    def _bases(self, class_name: str) -> list[str]:
        """Every base class, qualified through the imports (module classes followed)."""
        found: list[str] = []
        pending = [class_name]
        seen = {class_name}
        while pending:
            info = self.summary.classes.get(pending.pop())
            for base in info.bases if info is not None else ():
                found.append(self.summary.qualify(base))
                if base in self.summary.classes and base not in seen:
                    seen.add(base)
                    pending.append(base)
        return found

    # -- roots ----------------------------------------------------------------------------------
    def _seeds(self) -> Iterator[_Seed]:
        yield from self._start_seeds()
        yield from self._route_seeds()
        for info in self.summary.functions.values():
            seed = (
                self._handler_seed(info)
                or self._server_handler_seed(info)
                or self._task_seed(info)
                or self._lock_class_seed(info)
            )
            if seed is not None:
                yield seed
        yield from self._thread_subclass_seeds()

    def _start_seeds(self) -> Iterator[_Seed]:
        for start in self.starts:
            kind = self._start_kind(start)
            if kind is None:
                continue
            repeated = start.repeated or start.method not in {"Thread", "Timer", "Process"}
            where = f" in `{_short(start.where)}`" if start.where else ""
            shown = f"{start.call}(...)" if start.method in {"Thread", "Timer", "Process"} else f"{start.call}()"
            runs = "threads" if kind == "thread" else "processes"
            for qualname, self_shared in self._start_targets(start):
                via = f"`{_short(qualname)}` runs in worker {runs}: it is the target of `{shown}`{where}"
                reach = Reach(kind, kind == "thread", repeated, self_shared and kind == "thread", via)
                yield _Seed(qualname, reach, 0 if kind == "thread" and repeated else 2)

    def _route_seeds(self) -> Iterator[_Seed]:
        framework = self._first_web_import()
        if framework is None:
            return
        for route in self.routes:
            for qualname, _ in self._start_targets(route):
                info = self.summary.functions[qualname]
                threaded = not info.is_async and framework not in _ASYNC_ONLY_FRAMEWORKS
                how = "a thread pool" if threaded else "the event loop, one request after another between awaits"
                via = (f"`{_short(qualname)}` is a {_FRAMEWORK_NAMES.get(framework, framework)} request handler "
                       f"(`{route.call}(...)`): requests run it concurrently on {how}")
                reach = Reach("web" if threaded else "web-async", threaded, threaded, False, via)
                yield _Seed(qualname, reach, 1 if threaded else 3)

    def _start_kind(self, start: Start) -> str | None:
        qualified = self.summary.qualify(start.call) if start.call else ""
        if start.method in {"Thread", "Timer"}:
            return "thread" if qualified.startswith("threading.") or qualified in {"Thread", "Timer"} else None
        if start.method == "Process":
            return "process" if "multiprocessing" in qualified else None
        if start.method in {"to_thread", "start_new_thread", "start_new"}:
            return "thread"
        if start.method == "add_job":
            return "thread" if self._imports_any(("apscheduler",)) else None  # runs jobs on a thread pool
        if start.method == "run_in_executor":
            return "thread"  # the loop's default executor is a thread pool
        if start.method in _EXECUTOR_METHODS:
            return self._executor_kind(start.receiver, start.where)
        return None

    def _executor_kind(self, receiver: str | None, where: str) -> str | None:
        if receiver is None:
            return None
        flow = self.flows.get(where)
        constructor = dict(flow.constructed).get(receiver) if flow is not None else None
        if constructor is None and "." not in receiver:
            constructor = self.summary.constructed.get(receiver)
        elif constructor is None and receiver.startswith("self.") and flow is not None:
            constructor = self._attribute_constructor(flow.class_name, receiver)
        if constructor is not None:
            qualified = self.summary.qualify(constructor) if "." in constructor or constructor in self.summary.imports else constructor
            if any(qualified.endswith(p) for p in _PROCESS_EXECUTORS):
                return "process"
            if qualified.endswith(("ThreadPoolExecutor", "ThreadPool")):
                return "thread"
        if _EXECUTOR_NAME.search(receiver.rpartition(".")[2]) and self._imports_any(("concurrent", "multiprocessing")):
            return "thread"
        return None

    def _attribute_constructor(self, class_name: str | None, receiver: str) -> str | None:
        """What `self.x = <call>()` assigned, for an attribute of ``class_name``."""
        if class_name is None:
            return None
        if self._attribute_calls is None:
            found: dict[tuple[str, str], str] = {}
            for flow in self.flows.values():
                for name, called in flow.constructed:
                    if flow.class_name is not None and name.startswith("self."):
                        found.setdefault((flow.class_name, name), called)
            self._attribute_calls = found
        return self._attribute_calls.get((class_name, receiver))

    def _start_targets(self, start: Start) -> Iterator[tuple[str, bool]]:
        target = start.target
        flow = self.flows.get(start.where)
        if flow is not None and "." not in target:
            target = dict(flow.aliases).get(target, target)  # `work = partial(self._run)`; `submit(work)`
        head, _, rest = target.partition(".")
        where_info = self.summary.functions.get(start.where)
        class_name = (flow.class_name if flow is not None else None) or (where_info.class_name if where_info else None)
        if head in {"self", "cls"} and rest and "." not in rest:
            yield from ((m, True) for m in self._methods_named(class_name, rest))
        elif not rest:
            found = self.summary.resolve_function(target, start.where or None, None)
            if found is not None:
                yield found.qualname, False
        elif "." not in rest:
            local = dict(flow.constructed) if flow is not None else {}
            owner = self._class_of_instance(head, local)
            if owner is not None:
                yield from ((m, True) for m in self._methods_named(owner, rest))
            elif head in self.summary.classes:
                yield from ((m, False) for m in self._methods_named(head, rest))

    def _handler_seed(self, info: FunctionInfo) -> _Seed | None:
        framework = self._route_framework(info) or self._django_view(info) or self._view_class_method(info)
        if framework is None:
            return None
        name, per_request_self = framework
        threaded = not info.is_async and name not in _ASYNC_ONLY_FRAMEWORKS
        kind = "web" if threaded else "web-async"
        how = "a thread pool" if threaded else "the event loop, one request after another between awaits"
        via = f"`{_short(info.qualname)}` is a {_FRAMEWORK_NAMES.get(name, name)} request handler: requests run it concurrently on {how}"
        return _Seed(info.qualname, Reach(kind, threaded, threaded, False if per_request_self else threaded, via), 1 if threaded else 3)

    def _route_framework(self, info: FunctionInfo) -> tuple[str, bool] | None:
        for decorator in info.decorators:
            receiver, _, method = decorator.rpartition(".")
            if method not in _ROUTE_METHODS or not receiver:
                continue
            framework = self._framework_of(receiver)
            if framework is not None:
                return framework, False
        return None

    def _framework_of(self, receiver: str) -> str | None:
        constructor = self.summary.constructed.get(receiver)
        qualified = self.summary.qualify(constructor) if constructor else self.summary.qualify(receiver)
        for name in _WEB_FRAMEWORKS:
            if qualified.startswith(name + ".") or f".{name}." in qualified:
                return name
        imported = [name for name in _WEB_FRAMEWORKS if self._imports_any((name,))]
        if imported and receiver.rpartition(".")[2] in {"app", "bp", "blueprint", "router", "api", "routes", "application"}:
            return imported[0]
        return None

    def _django_view(self, info: FunctionInfo) -> tuple[str, bool] | None:
        if info.class_name is not None or "." in info.qualname or not self._imports_any(("django", "rest_framework")):
            return None
        decorated = any(self.summary.qualify(d).startswith(("rest_framework.decorators", "django.views.decorators"))
                        for d in info.decorators)
        if decorated or (info.params[:1] == ("request",)):
            return ("rest_framework" if self._imports_any(("rest_framework",)) and decorated else "django"), False
        return None

    def _view_class_method(self, info: FunctionInfo) -> tuple[str, bool] | None:
        if info.class_name is None or info.name in _NOT_HANDLERS or info.name.startswith("_"):
            return None
        for base in self._bases(info.class_name):
            if _VIEW_BASES.search(base):
                framework = base.split(".")[0] if base.split(".")[0] in _WEB_FRAMEWORKS else self._first_web_import()
                if framework is not None:
                    return framework, True  # a view object is made per request
        return None

    def _server_handler_seed(self, info: FunctionInfo) -> _Seed | None:
        """Methods of socketserver / http.server handlers behind a threading server, of gRPC
        servicers (every RPC runs on the server's thread pool, on one servicer object), and
        APScheduler `@scheduled_job` functions."""
        if any(self.summary.qualify(d).rpartition(".")[2] == "scheduled_job" for d in info.decorators):
            if self._imports_any(("apscheduler",)):
                via = f"`{_short(info.qualname)}` is a scheduled job: APScheduler runs jobs on a thread pool"
                return _Seed(info.qualname, Reach("thread", True, True, False, via), 1)
        if info.class_name is None or info.name in _NOT_HANDLERS or info.name.startswith("_"):
            return None
        bases = self._bases(info.class_name)
        if any(b.startswith(("socketserver.", "http.server.")) and b.endswith("Handler") for b in bases):
            if self._threading_server():
                via = (f"`{_short(info.qualname)}` handles requests for a threading server: each request "
                       "runs it on a thread of its own")
                return _Seed(info.qualname, Reach("web", True, True, False, via), 1)
        if self._imports_any(("grpc",)) and any(b.endswith("Servicer") for b in bases):
            via = (f"`{_short(info.qualname)}` is a gRPC method: the server runs RPCs on its thread pool, "
                   "all on the same servicer object")
            return _Seed(info.qualname, Reach("web", True, True, True, via), 1)
        return None

    def _threading_server(self) -> bool:
        names = [*self.summary.imports.values(), *map(self.summary.qualify, self.summary.constructed.values())]
        names += [self.summary.qualify(b) for info in self.summary.classes.values() for b in info.bases]
        return any(n.startswith(("socketserver.Threading", "http.server.ThreadingHTTPServer")) for n in names)

    def _first_web_import(self) -> str | None:
        return next((name for name in _WEB_FRAMEWORKS if self._imports_any((name,))), None)

    def _task_seed(self, info: FunctionInfo) -> _Seed | None:
        if not self._imports_any(_TASK_FRAMEWORKS) and not any("celery" in self.summary.qualify(d) for d in info.decorators):
            return None
        for decorator in info.decorators:
            qualified = self.summary.qualify(decorator)
            if qualified.rpartition(".")[2] in _TASK_DECORATORS:
                via = (f"`{_short(info.qualname)}` is a task (`@{decorator}`): workers run it concurrently, "
                       "in threads or processes depending on the pool")
                return _Seed(info.qualname, Reach("task", True, True, False, via), 1)
        return None

    def _lock_class_seed(self, info: FunctionInfo) -> _Seed | None:
        if info.class_name is None or info.name in _CONSTRUCTION_METHODS:
            return None
        class_info = self.summary.classes.get(info.class_name)
        if class_info is None or not class_info.lock_attributes:
            return None
        lock = sorted(class_info.lock_attributes)[0]
        # Coroutines run on the event loop, not on the threads a thread lock is for.
        asynchronous = self._async_lock(info.class_name, lock) or info.is_async
        via = (f"`{_short(info.class_name)}` owns a lock (`self.{lock}`), so its methods are meant to be called "
               + ("from several tasks" if asynchronous else "from several threads"))
        if asynchronous:
            return _Seed(info.qualname, Reach("lock-class-async", False, False, False, via), 4)
        return _Seed(info.qualname, Reach("lock-class", True, True, True, via), 1)

    def _async_lock(self, class_name: str, attribute: str) -> bool:
        constructor = self._attribute_constructor(class_name, f"self.{attribute}") or ""
        return self.summary.qualify(constructor).startswith(_ASYNC_LOCK_MODULES)

    def _thread_subclass_seeds(self) -> Iterator[_Seed]:
        for class_name in self.summary.classes:
            if any(b in {"threading.Thread", "multiprocessing.Process"} for b in self._bases(class_name)):
                run = f"{class_name}.run"
                if run in self.summary.functions:
                    kind = "thread" if "threading.Thread" in self._bases(class_name) else "process"
                    via = f"`{_short(run)}` runs in its own {kind} (`{_short(class_name)}` is a `{kind.title()}` subclass)"
                    yield _Seed(run, Reach(kind, kind == "thread", False, False, via), 2)

    # -- evidence -------------------------------------------------------------------------------
    def _imports_any(self, roots: Iterable[str]) -> bool:
        return not self.import_roots.isdisjoint(roots)

    def _imported(self, roots: Iterable[str]) -> str | None:
        """The first imported top-level module among ``roots`` (in the order the file imports)."""
        wanted = set(roots)
        return next((root for root in self._import_order if root in wanted), None)

    def _evidence(self) -> Evidence:
        application = None
        if any(r.kind in {"web", "web-async"} for r in self._reach.values()):
            application = "the module defines request handlers"
        elif any(r.kind == "task" for r in self._reach.values()):
            application = "the module defines tasks"
        elif any(r.kind in {"thread", "process"} for r in self._reach.values()):
            application = "the module starts threads or worker processes"
        elif (name := self._imported((*_WEB_FRAMEWORKS, *_TASK_FRAMEWORKS, *_CONCURRENCY_MODULES))) is not None:
            application = f"the module imports `{name}` (a web, task or concurrency library)"
        store = self._imported(_DATA_STORES)
        data_store = f"the data lives in a shared store (the module imports `{store}`)" if store else None
        script = None
        if not any(r.kind != "lock-class" and r.kind != "lock-class-async" for r in self._reach.values()):
            runner = self._imported(_SCRIPT_MODULES)
            web_or_tasks = self._imported((*_WEB_FRAMEWORKS, *_TASK_FRAMEWORKS))
            if web_or_tasks is None and (runner is not None or self.main_guard):
                why = f"imports `{runner}`" if runner else "has a `__main__` guard"
                script = f"the module is a single-process script (it {why} and starts no threads)"
        return Evidence(application, data_store, script)

    # -- lock discipline --------------------------------------------------------------------------
    def _compute_discipline(self, class_name: str) -> Discipline:
        members = [f for f in self.flows.values() if (f.class_name == class_name if class_name else f.class_name is None)]
        by_name = {f.qualname.rpartition(".")[2]: f for f in members}
        calls: dict[str, list[tuple[str, bool]]] = {}  # callee name -> (caller name, lock held)
        for flow in members:
            caller = flow.qualname.rpartition(".")[2]
            for call in flow.self_calls if class_name else flow.name_calls:
                if call.name in by_name:
                    held = any(self._is_class_lock(h, class_name) for h in call.held)
                    calls.setdefault(call.name, []).append((caller, held))
        # Code that runs before the object is shared, or in a freshly forked (one-thread) child.
        single = {n for n in by_name if n in _CONSTRUCTION_METHODS or n in _SINGLE_THREADED or _FORK_HOOK.search(n)
                  or _INIT_BODY.match(n)}
        construction = _closure(single, calls, lambda caller, held: False)
        # Only private helpers: a public method or function may be called from anywhere else.
        private_calls = {callee: sites for callee, sites in calls.items() if callee.startswith("_")}
        helpers = _closure({n for n in by_name if n.endswith("_locked")}, private_calls, lambda caller, held: held,
                           construction)
        locks: set[str] = set()
        guarded: dict[str, set[str]] = {}
        guarded_count: dict[str, int] = {}
        unguarded_count: dict[str, int] = {}
        counted: set[tuple[str, int, str, bool]] = set()
        locks_of: dict[str, dict[str, set[str]]] = {}
        for flow in members:
            name = flow.qualname.rpartition(".")[2]
            if name in construction:
                continue
            for access in flow.self_accesses if class_name else flow.global_accesses:
                if self._is_lock_name(access.name, class_name) or (not class_name and access.name not in self.summary.globals):
                    continue
                held_locks = {h for h in access.held if self._is_class_lock(h, class_name)}
                locks |= held_locks
                under = bool(held_locks) or name in helpers
                if under:
                    guarded.setdefault(access.name, set()).add(flow.qualname)
                    locks_of.setdefault(access.name, {}).setdefault(flow.qualname, set()).update(held_locks)
                once = (flow.qualname, access.statement, access.name, under)
                if once in counted or (not under and access.in_test and not access.write):
                    continue
                counted.add(once)
                counts = guarded_count if under else unguarded_count
                counts[access.name] = counts.get(access.name, 0) + 1
        return Discipline(frozenset(locks), {k: frozenset(v) for k, v in guarded.items()}, frozenset(helpers),
                          frozenset(construction), guarded_count, unguarded_count,
                          {k: {f: frozenset(h) for f, h in v.items()} for k, v in locks_of.items()})

    def _is_class_lock(self, held: str, class_name: str) -> bool:
        """A thread lock of the class (or module). An asyncio lock is left out: without an
        `await`, code on the event loop is not interrupted, so a write outside it does not
        race with the code inside (GAP204 covers the awaits)."""
        if class_name:
            info = self.summary.classes.get(class_name)
            if not held.startswith("self.") or info is None or held[5:] not in info.lock_attributes:
                return False
            return not self._async_lock(class_name, held[5:])
        constructor = self.summary.locks.get(held)
        return constructor is not None and not constructor.startswith(_ASYNC_LOCK_MODULES)

    def _is_lock_name(self, name: str, class_name: str) -> bool:
        if class_name:
            info = self.summary.classes.get(class_name)
            return info is not None and name in info.lock_attributes
        return name in self.summary.locks


_LOCK_NAME = re.compile(r"lock|mutex|semaphore|^sem$|_sem$|^gate$|guard", re.IGNORECASE)
_ASYNC_LOCK_MODULES = ("asyncio.", "anyio.", "trio.")
_FRAMEWORK_NAMES = {
    "django": "Django", "rest_framework": "Django REST framework", "flask": "Flask", "fastapi": "FastAPI",
    "starlette": "Starlette", "aiohttp": "aiohttp", "sanic": "Sanic", "quart": "Quart", "tornado": "Tornado",
    "falcon": "Falcon", "bottle": "Bottle", "pyramid": "Pyramid", "litestar": "Litestar", "ninja": "Django Ninja",
}


def _closure(seeds: set[str], calls: dict[str, list[tuple[str, bool]]], counts, inside: Iterable[str] = ()) -> set[str]:
    """Functions in ``seeds``, plus every function all of whose (one or more) in-class calls
    satisfy ``counts(caller, held)`` or come from a function already in the set (or in
    ``inside``): e.g. private helpers called only under the lock, or only from `__init__`."""
    found = set(seeds)
    known = set(inside)
    changed = True
    while changed:
        changed = False
        for callee, sites in calls.items():
            if callee in found:
                continue
            if sites and all(counts(caller, held) or caller in found or caller in known for caller, held in sites):
                found.add(callee)
                changed = True
    return found


def _short(qualname: str) -> str:
    return qualname or "<module>"
