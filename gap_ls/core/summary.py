"""The module summary: facts about a whole file that rules read while analysing one unit.

Facts are collected per unit (``unit_facts``) and per split class header
(``header_facts``) with the standard library's ``ast``, as raw dotted names
that do not depend on the rest of the file; ``merge`` resolves them through
the module's imports into a ModuleSummary: imports and aliases, module
globals, loggers, locks and executors, classes with their lock attributes,
every function with its decorators and a few properties (async, never
returns, handles its own errors), names observed as tasks or futures, and
thread/executor entry points. A rule analysing one function asks the summary
instead of reading the rest of the file; an edit to one unit only recomputes
that unit's facts and the (cheap) merge.

Nothing here knows about libcst or LSP.
"""

from __future__ import annotations

import ast
import builtins
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gap_ls.core.concurrency import ConcurrencyModel, UnitFlow
    from gap_ls.core.idempotency import Catalogue, EffectModel, UnitEffects

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
THREAD_CONSTRUCTORS = frozenset({"threading.Thread", "threading.Timer"})
BROAD_EXCEPTIONS = frozenset({"Exception", "BaseException", "builtins.Exception", "builtins.BaseException"})
# Methods that consume a task's or future's outcome (its result or exception).
OBSERVING_CALLS = frozenset(
    {"gather", "wait", "as_completed", "wait_for", "shield", "result", "exception", "run_until_complete"}
)
_BUILTIN_NAMES = frozenset(dir(builtins))


@dataclass(frozen=True)
class FunctionInfo:
    qualname: str
    name: str
    line: int  # 0-based line of the `def` in the text the facts were read from (a unit, or a whole file)
    is_async: bool
    class_name: str | None
    decorators: tuple[str, ...]  # as written (dotted); qualify with ModuleSummary.qualify
    params: tuple[str, ...]
    never_returns: bool
    handles_errors: bool
    reads_outcome: bool  # calls `.result()` or `.exception()` (a done-callback that observes)

    def key(self) -> tuple:
        """Everything a rule may read, without the position (which moves with every edit above)."""
        return (self.qualname, self.is_async, self.class_name, self.decorators, self.params,
                self.never_returns, self.handles_errors, self.reads_outcome)


@dataclass(frozen=True)
class ClassInfo:
    qualname: str
    bases: tuple[str, ...]
    decorators: tuple[str, ...]
    lock_attributes: frozenset[str]
    methods: frozenset[str]


@dataclass(frozen=True)
class Binding:
    """A module-level assignment: the names bound and, raw, what produced them."""

    names: tuple[str, ...]
    call: str | None  # dotted name of the called function, `logging.getLogger` in `log = logging.getLogger()`
    value: str | None  # dotted name of a plain value, `logger` in `log = logger`


@dataclass(frozen=True)
class ClassFacts:
    """A class as far as one unit sees it (the whole class, or a split class's header)."""

    qualname: str
    bases: tuple[str, ...]
    decorators: tuple[str, ...]
    attribute_calls: tuple[tuple[str, str], ...] = ()  # (attribute, raw call) assignments, for locks
    methods: frozenset[str] = frozenset()


@dataclass(frozen=True)
class HandlerFact:
    """An except clause as far as the statement tree shows: lets rules skip units cheaply."""

    types: tuple[str, ...]  # dotted names as written; () for a bare `except:`
    in_loop: bool  # its try sits directly in a for/while body
    in_async: bool  # inside an `async def`
    # A body without branches leaves by its first raise/return/continue/break (that word), or
    # falls through (""); "" also when the body branches and the way out is not known.
    ends: str = ""
    try_exits: bool = True  # the try's body or else holds a `return` or `break` (as a retry's does)


@dataclass(frozen=True)
class UnitFacts:
    module_imports: tuple[tuple[str, str], ...] = ()
    nested_imports: tuple[tuple[str, str], ...] = ()
    defined: frozenset[str] = frozenset()
    bindings: tuple[Binding, ...] = ()
    functions: tuple[FunctionInfo, ...] = ()
    classes: tuple[ClassFacts, ...] = ()
    # For a class member: its class, the methods it defines, attributes it assigns from calls.
    member_of: str | None = None
    member_methods: frozenset[str] = frozenset()
    member_attribute_calls: tuple[tuple[str, str], ...] = ()
    attribute_calls: tuple[tuple[str, str], ...] = ()  # `self.logger = logging.getLogger(...)` anywhere
    observed: frozenset[str] = frozenset()
    thread_calls: tuple[tuple[str, str], ...] = ()  # (raw constructor, target)
    executor_jobs: frozenset[str] = frozenset()
    handlers: tuple[HandlerFact, ...] = ()
    with_calls: frozenset[str] = frozenset()  # dotted names called in `with` items
    # Inside its functions: a write to something not local (`x += 1`, `self.a = ...`, `d[k] = ...`,
    # `global`, a mutating call), and an `if`/`while` test that checks membership, None or
    # existence. The race rules skip units without them.
    writes_state: bool = False
    checks: bool = False
    local_lock: bool = False  # a function binds a local name to `Lock()`, `Semaphore()`... (GAP207)


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
    # Module-level names bound to a call's result, and what was called (raw): "stats" -> "JobStats".
    constructed: dict[str, str] = field(default_factory=dict)
    # The units' texts, for facts read only when a rule asks (see `concurrency()`), and a cache
    # of those facts by unit that outlives this summary (the document's).
    sources: tuple[tuple[tuple[str, ...], str], ...] = ()
    flow_cache: dict[tuple[tuple[str, ...], str], UnitFlow] = field(default_factory=dict)
    flow_statements: dict[tuple[tuple[str, ...], str], list[ast.stmt]] = field(default_factory=dict)  # cut trees
    model_cache: dict[str, object] = field(default_factory=dict)  # the last model and its inputs (the document's)
    effects_cache: dict[tuple, UnitEffects] = field(default_factory=dict)  # by unit, imports, catalogue (the document's)
    _effects: dict[Catalogue, EffectModel] = field(default_factory=dict, repr=False)
    _model: ConcurrencyModel | None = field(default=None, repr=False)
    _has_roots: bool | None = field(default=None, repr=False)
    _model_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
        for candidate in self.candidates(name, scope, class_name):
            found = self.functions.get(candidate)
            if found is not None:
                return found
        return None

    @staticmethod
    def candidates(name: str, scope: str | None, class_name: str | None) -> list[str]:
        """The qualified names ``name`` may mean from ``scope``, innermost first."""
        if name.startswith(("self.", "cls.")):
            return [f"{class_name}.{name.split('.', 1)[1]}"] if class_name else []
        if "." in name:
            return [name]
        found = []
        while scope:
            found.append(f"{scope}.{name}")
            scope = scope.rpartition(".")[0]
        return [*found, name]

    def module_key(self) -> tuple:
        """Every module-level fact, hashable: if it changes, every unit's analysis may change."""
        return (
            tuple(sorted(self.imports.items())),
            frozenset(self.defined),
            frozenset(self.globals),
            frozenset(self.loggers),
            tuple(sorted(self.locks.items())),
            frozenset(self.executors),
            tuple(sorted((q, c.bases, c.decorators, c.lock_attributes, c.methods) for q, c in self.classes.items())),
            frozenset(self.observed),
            frozenset(self.entry_points),
            tuple(sorted(self.constructed.items())),
            self.has_roots(),
        )

    def has_roots(self) -> bool:
        """Whether anything here may start concurrent work (see concurrency.has_roots); cached."""
        if self._has_roots is None:
            from gap_ls.core.concurrency import has_roots

            self._has_roots = has_roots(self)
        return self._has_roots

    def fact(self, key: tuple) -> object:
        """A fact a rule read, by key, so a cached result can be checked against a new summary:
        ("function", qualname), or a question to the concurrency model."""
        kind, *args = key
        if kind == "function":
            info = self.functions.get(args[0])
            return info.key() if info is not None else None
        if kind in ("effects", "unkeyed-http"):
            return self._effects_fact(kind, args)
        model = self.concurrency()
        if kind == "reach":
            reach = model.reach(args[0])
            return reach.key() if reach is not None else None
        if kind == "single-writer":
            return model.single_writer(args[0])
        if kind == "evidence":
            return model.evidence.key()
        if kind == "discipline":
            return model.discipline(args[0]).key()
        if kind == "global-writers":
            return model.writers_of_global(args[0])
        if kind == "optimistic":
            return args[0] in model.optimistic
        raise ValueError(f"unknown summary fact {kind!r}")

    def _effects_fact(self, kind: str, args: list) -> object:
        if kind == "effects":
            return self.effects(args[1]).of(args[0])
        return self.effects(args[0]).unkeyed_http

    def effects(self, catalogue: Catalogue | None = None) -> EffectModel:
        """What each function's calls do, for the idempotency rules (built on first use)."""
        from gap_ls.core.idempotency import DEFAULT_CATALOGUE, EffectModel, unit_effects

        catalogue = catalogue or DEFAULT_CATALOGUE
        with self._model_lock:
            model = self._effects.get(catalogue)
            if model is None:
                imports = tuple(sorted(self.imports.items()))
                units = []
                for class_path, text in self.sources:
                    key = (class_path, text, imports, catalogue)
                    found = self.effects_cache.get(key)
                    if found is None:
                        statements = self.flow_statements.get((class_path, text))  # the cut's trees, if at hand
                        found = self.effects_cache[key] = unit_effects(class_path, text, self, catalogue, statements)
                    units.append(found)
                for stale in [k for k in self.effects_cache if k[2] != imports or k[3] != catalogue]:
                    del self.effects_cache[stale]  # read against other imports: never asked for again
                model = self._effects[catalogue] = EffectModel(self, units)
            return model

    def concurrency(self) -> ConcurrencyModel:
        """Where this module's code runs concurrently (built on first use, from every unit)."""
        from gap_ls.core.concurrency import ConcurrencyModel, flow_of_statements, unit_flow

        # Hover and code actions may ask while the analysis thread does: build it once.
        with self._model_lock:
            if self._model is None:
                flows = []
                # Without a root nothing is reached and no lock guards anything: the model then
                # needs only the imports (for the module's evidence), not the units' flow facts.
                for class_path, text in self.sources if self.has_roots() else ():
                    key = (class_path, text)
                    flow = self.flow_cache.get(key)
                    if flow is None:
                        statements = self.flow_statements.get(key)
                        flow = unit_flow(class_path, text) if statements is None else flow_of_statements(statements, class_path)
                        self.flow_cache[key] = flow
                    flows.append(flow)
                # An edit that changes no flow fact and no module fact (most edits inside a
                # function body) gives the same model: reuse the last one built.
                key = (tuple(flows), self.module_key(), tuple(info.key() for info in self.functions.values()))
                last = self.model_cache.get("last")  # (key, model): one value, replaced whole
                if isinstance(last, tuple) and last[0] == key:
                    self._model = last[1]
                else:
                    self._model = ConcurrencyModel(self, flows)
                    self.model_cache["last"] = (key, self._model)
            return self._model


def dotted(node: ast.AST | None) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


# -- merging ------------------------------------------------------------------------------------


def merge(units: Iterable[UnitFacts], headers: Iterable[ClassFacts] = ()) -> ModuleSummary:
    units = list(units)
    summary = ModuleSummary()
    for facts in units:
        for alias, qualified in facts.module_imports:
            summary.imports.setdefault(alias, qualified)
    for facts in units:
        for alias, qualified in facts.nested_imports:
            summary.imports.setdefault(alias, qualified)
        summary.defined |= facts.defined
    headers = list(headers)
    summary.defined |= {h.qualname for h in headers if "." not in h.qualname}
    member_methods: dict[str, set[str]] = {}
    member_attributes: dict[str, list[tuple[str, str]]] = {}
    for facts in units:
        _merge_bindings(facts.bindings, summary)
        for info in facts.functions:
            summary.functions[info.qualname] = info
        for cls in facts.classes:
            summary.classes[cls.qualname] = _class_info(cls, cls.attribute_calls, cls.methods, summary)
        if facts.member_of is not None:
            member_methods.setdefault(facts.member_of, set()).update(facts.member_methods)
            member_attributes.setdefault(facts.member_of, []).extend(facts.member_attribute_calls)
        for attribute, call in facts.attribute_calls:
            if _is_logger_factory(summary.qualify(call)):
                summary.loggers.add(attribute)
        summary.observed |= facts.observed
        summary.entry_points |= facts.executor_jobs
        for constructor, target in facts.thread_calls:
            if summary.qualify(constructor) in THREAD_CONSTRUCTORS:
                summary.entry_points.add(target)
    for header in headers:
        attributes = member_attributes.get(header.qualname, [])
        methods = frozenset(member_methods.get(header.qualname, set()))
        summary.classes[header.qualname] = _class_info(header, tuple(attributes), methods, summary)
    return summary


def _merge_bindings(bindings: Iterable[Binding], summary: ModuleSummary) -> None:
    for binding in bindings:
        summary.globals.update(binding.names)
        if binding.call is not None:
            for name in binding.names:
                summary.constructed.setdefault(name, binding.call)
        called = summary.qualify(binding.call) if binding.call else None
        if called is None:
            if binding.value is not None and summary.qualify(binding.value) in LOGGER_OBJECTS:
                summary.loggers.update(binding.names)
            continue
        if _is_logger_factory(called):
            summary.loggers.update(binding.names)
        elif called in LOCK_CONSTRUCTORS:
            for name in binding.names:
                summary.locks[name] = called
        elif called in EXECUTOR_CONSTRUCTORS:
            summary.executors.update(binding.names)


def _is_logger_factory(called: str) -> bool:
    return called in LOGGER_FACTORIES or called.endswith((".getLogger", ".get_logger"))


def _class_info(
    cls: ClassFacts, attribute_calls: tuple[tuple[str, str], ...], methods: frozenset[str], summary: ModuleSummary
) -> ClassInfo:
    locks = frozenset(attribute for attribute, call in attribute_calls if summary.qualify(call) in LOCK_CONSTRUCTORS)
    return ClassInfo(cls.qualname, cls.bases, cls.decorators, locks, methods)


def summarize(tree: ast.Module, sources: tuple[tuple[tuple[str, ...], str], ...] = ()) -> ModuleSummary:
    """The summary of a whole module read at once (another file, in the jedi resolver; a fix
    without an analysis). ``sources``: the module's units, for ``concurrency()``."""
    summary = merge([unit_facts(tree.body, ())])
    summary.sources = sources
    return summary


# -- facts of one unit ----------------------------------------------------------------------------


def header_facts(cls: ast.ClassDef, class_path: tuple[str, ...]) -> ClassFacts:
    """The part of a split class no member unit sees: its name, bases and decorators."""
    qualname = ".".join((*class_path, cls.name))
    return ClassFacts(qualname, _raw_names(cls.bases), _decorators(cls))


# Substrings without which a unit has no usage facts: walking its whole tree is then skipped.
USAGE_WORDS = ("await", "result", "exception", "gather", "wait", "shield", "run_until_complete", "as_completed",
                "target", "Timer", "submit", ".map(", "run_in_executor", "to_thread", "add_job", "Lock", "Semaphore",
                "Condition",
                "getLogger", "get_logger", "logger")


def unit_facts(
    statements: Sequence[ast.stmt],
    class_path: tuple[str, ...],
    line_shift: int = 0,
    text: str | None = None,
    usage_words: Sequence[str] = USAGE_WORDS,
) -> UnitFacts:
    """Facts of one unit: top-level statements (``class_path`` empty) or members of a class.

    ``line_shift`` turns the statements' 1-based ast lines into 0-based file lines. ``text``, the
    unit's source, lets the collector skip walks that cannot find anything.
    """
    collector = _Collector(class_path, line_shift, text)
    for statement in statements:
        collector.statement(statement, scope=".".join(class_path) or None, class_name=".".join(class_path) or None,
                            module_level=not class_path)
    if text is None or any(word in text for word in usage_words):
        collector.usage(statements)
    handlers: list[HandlerFact] = []
    with_calls: set[str] = set()
    if text is None or "except" in text or "with" in text:
        _scan_statements(statements, in_loop=False, in_async=False, handlers=handlers, with_calls=with_calls)
    member_of = ".".join(class_path) or None
    return UnitFacts(
        module_imports=tuple(collector.module_imports),
        nested_imports=tuple(collector.nested_imports),
        defined=frozenset(collector.defined),
        bindings=tuple(collector.bindings),
        functions=tuple(collector.functions),
        classes=tuple(collector.classes),
        member_of=member_of,
        member_methods=frozenset(collector.member_methods) if member_of else frozenset(),
        member_attribute_calls=tuple(collector.member_attribute_calls) if member_of else (),
        attribute_calls=tuple(collector.attribute_calls),
        observed=frozenset(collector.observed),
        thread_calls=tuple(collector.thread_calls),
        executor_jobs=frozenset(collector.executor_jobs),
        handlers=tuple(handlers),
        with_calls=frozenset(with_calls),
        writes_state=collector.writes_state,
        checks=collector.checks,
        local_lock=collector.local_lock,
    )


_EXIT_WORDS = {ast.Raise: "raise", ast.Return: "return", ast.Continue: "continue", ast.Break: "break"}


def _straight_line_end(body: list[ast.stmt]) -> str:
    """How a block without branches is left: its first exit statement, or "" (falls through,
    or branches)."""
    if not all(_is_simple(s) for s in body):
        return ""
    return next((_EXIT_WORDS[type(s)] for s in body if type(s) in _EXIT_WORDS), "")


def _is_simple(statement: ast.stmt) -> bool:
    return not hasattr(statement, "body") and not hasattr(statement, "cases")


def _holds_exit(statements: list[ast.stmt]) -> bool:
    """A `return` or `break` anywhere in these statements, outside nested definitions."""
    for statement in statements:
        if isinstance(statement, (ast.Return, ast.Break)):
            return True
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if _holds_exit(list(_child_statements(statement))):
            return True
    return False


def _scan_statements(
    statements: Iterable[ast.stmt], in_loop: bool, in_async: bool, handlers: list[HandlerFact], with_calls: set[str]
) -> None:
    """Except clauses and with-items, walking statements only (expressions hold neither)."""
    for node in statements:
        if isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            for handler in node.handlers:
                types = () if handler.type is None else _raw_names(
                    handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
                )
                caught = types or (("?",) if handler.type is not None else ())
                try_exits = _holds_exit([*node.body, *node.orelse])
                handlers.append(HandlerFact(caught, in_loop, in_async, _straight_line_end(handler.body), try_exits))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if isinstance(item.context_expr, ast.Call) and (name := dotted(item.context_expr.func)):
                    with_calls.add(name)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _scan_statements(node.body, False, isinstance(node, ast.AsyncFunctionDef), handlers, with_calls)
            continue
        if isinstance(node, ast.ClassDef):
            _scan_statements(node.body, False, False, handlers, with_calls)
            continue
        loop = isinstance(node, (ast.For, ast.AsyncFor, ast.While))
        for child in _child_statements(node):
            _scan_statements([child], in_loop if not loop else True, in_async, handlers, with_calls)


def _reads_exception(text: str) -> bool:
    """`future.exception()` reads an outcome; `log.exception(...)` (the common case) does not."""
    start = 0
    while (found := text.find(".exception(", start)) != -1:
        if not text[max(0, found - 7) : found].endswith(("log", "logger", "logging", "LOG", "LOGGER")):
            return True
        start = found + 1
    return False


class _Collector:
    def __init__(self, class_path: tuple[str, ...], line_shift: int = 0, text: str | None = None) -> None:
        self.class_path = class_path
        self.line_shift = line_shift
        # Without these words no function here can read a future's outcome.
        self.may_read_outcome = text is None or ".result(" in text or _reads_exception(text)
        self.module_imports: list[tuple[str, str]] = []
        self.nested_imports: list[tuple[str, str]] = []
        self.defined: set[str] = set()
        self.bindings: list[Binding] = []
        self.functions: list[FunctionInfo] = []
        self.classes: list[ClassFacts] = []
        self.member_methods: set[str] = set()
        self.member_attribute_calls: list[tuple[str, str]] = []
        self.attribute_calls: list[tuple[str, str]] = []
        self.observed: set[str] = set()
        self.thread_calls: list[tuple[str, str]] = []
        self.executor_jobs: set[str] = set()
        self.writes_state = False
        self.checks = False
        self.local_lock = False

    # -- definitions and bindings -----------------------------------------------------------------
    def statement(self, node: ast.stmt, scope: str | None, class_name: str | None, module_level: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            target = self.module_imports if module_level else self.nested_imports
            target.extend(_aliases(node))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self._function(node, scope, class_name, module_level)
        elif isinstance(node, ast.ClassDef):
            self._class(node, scope, module_level)
        else:
            if module_level:
                self._module_binding(node)
            elif class_name is not None and scope == class_name:
                self._class_attribute(node)
            else:
                self._note_state(node)
            for child in _child_statements(node):
                self.statement(child, scope, class_name, module_level)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, scope: str | None, class_name: str | None, module_level: bool) -> None:
        qualname = f"{scope}.{node.name}" if scope else node.name
        if module_level:
            self.defined.add(node.name)
        if class_name is not None and scope == class_name and scope == ".".join(self.class_path):
            self.member_methods.add(node.name)
        self.functions.append(
            FunctionInfo(
                qualname=qualname,
                name=node.name,
                line=node.lineno - 1 + self.line_shift,
                is_async=isinstance(node, ast.AsyncFunctionDef),
                class_name=class_name if scope == class_name else None,
                decorators=_decorators(node),
                params=tuple(a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)),
                never_returns=_never_returns(node),
                handles_errors=_handles_own_errors(node.body),
                reads_outcome=self.may_read_outcome and _reads_outcome(node),
            )
        )
        for child in node.body:
            self.statement(child, qualname, None, module_level=False)

    def _class(self, node: ast.ClassDef, scope: str | None, module_level: bool) -> None:
        qualname = f"{scope}.{node.name}" if scope else node.name
        if module_level:
            self.defined.add(node.name)
        inner = _Collector((*qualname.split("."),), self.line_shift)
        inner.may_read_outcome = self.may_read_outcome
        for child in node.body:
            inner.statement(child, qualname, qualname, module_level=False)
        inner.usage(node.body)  # `self._lock = threading.Lock()` in its methods
        self.writes_state |= inner.writes_state
        self.checks |= inner.checks
        self.local_lock |= inner.local_lock
        self.classes.append(
            ClassFacts(
                qualname,
                _raw_names(node.bases),
                _decorators(node),
                attribute_calls=tuple(inner.member_attribute_calls),
                methods=frozenset(inner.member_methods),
            )
        )
        self.functions.extend(inner.functions)
        self.classes.extend(inner.classes)
        self.nested_imports.extend(inner.module_imports + inner.nested_imports)

    def _note_state(self, node: ast.stmt) -> None:
        """A statement in a function body: does it write non-local state, or check something?"""
        if not self.writes_state and _writes_state(node):
            self.writes_state = True
        if not self.checks and isinstance(node, (ast.If, ast.While)) and _checks(node.test):
            self.checks = True
        if not self.local_lock and isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            called = dotted(node.value.func) or ""
            self.local_lock = called.rpartition(".")[2] in _LOCK_NAMES

    def _module_binding(self, node: ast.stmt) -> None:
        for targets, value in _assignments(node):
            names = tuple(n for t in targets for n in _assigned_names(t))
            if not names:
                continue
            self.defined.update(names)
            call = dotted(value.func) if isinstance(value, ast.Call) else None
            plain = dotted(value) if value is not None and not isinstance(value, ast.Call) else None
            self.bindings.append(Binding(names, call, plain))

    def _class_attribute(self, node: ast.stmt) -> None:
        for targets, value in _assignments(node):
            if isinstance(value, ast.Call) and (call := dotted(value.func)) is not None:
                for name in (n for t in targets for n in _assigned_names(t)):
                    self.member_attribute_calls.append((name, call))

    # -- usage: what is observed, started, assigned on self -----------------------------------------
    def usage(self, statements: Sequence[ast.stmt]) -> None:
        for statement in statements:
            for node in ast.walk(statement):
                if isinstance(node, ast.Await):
                    self._observe(node.value)
                elif isinstance(node, ast.Call):
                    self._call(node)
                elif isinstance(node, (ast.For, ast.AsyncFor)) and _body_observes(node):
                    self._observe(node.iter)
                elif isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Call):
                    self._attribute_assignment(node)

    def _attribute_assignment(self, node: ast.Assign | ast.AnnAssign) -> None:
        call = dotted(node.value.func)
        if call is None:
            return
        for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                self.attribute_calls.append((target.attr, call))
                if target.value.id in {"self", "cls"} and self.class_path:
                    self.member_attribute_calls.append((target.attr, call))

    def _call(self, call: ast.Call) -> None:
        func = call.func
        method = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if method in OBSERVING_CALLS:
            if method in {"result", "exception"} and isinstance(func, ast.Attribute):
                self._observe(func.value)
            for arg in call.args:
                self._observe(arg.value if isinstance(arg, ast.Starred) else arg)
        name = dotted(func)
        if name is not None:
            for keyword in call.keywords:
                if keyword.arg in {"target", "function"} and (target := dotted(keyword.value)):
                    self.thread_calls.append((name, target))
            if len(call.args) > 1 and name.endswith("Timer") and (target := dotted(call.args[1])):
                self.thread_calls.append((name, target))
        if method in {"submit", "map", "to_thread", "add_job"} and call.args and (target := dotted(call.args[0])):
            self.executor_jobs.add(target)
        elif method == "run_in_executor" and len(call.args) > 1 and (target := dotted(call.args[1])):
            self.executor_jobs.add(target)

    def _observe(self, node: ast.AST) -> None:
        if isinstance(node, ast.Call):
            return
        name = dotted(node)
        if name is None:
            if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
                for elt in node.elts:
                    self._observe(elt.value if isinstance(elt, ast.Starred) else elt)
            elif isinstance(node, ast.Starred):
                self._observe(node.value)
            return
        self.observed.add(name)
        self.observed.add(name.rsplit(".", 1)[-1])


_LOCK_NAMES = frozenset({"Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition"})
_MUTATORS = frozenset({"append", "appendleft", "extend", "insert", "pop", "popleft", "popitem", "remove", "discard",
                       "clear", "update", "setdefault", "add", "sort"})
_EXISTENCE_CALLS = frozenset({"exists", "isfile", "isdir", "lexists", "is_file", "is_dir", "get"})


def _writes_state(node: ast.stmt) -> bool:
    if isinstance(node, (ast.AugAssign, ast.Global)):
        return True
    if isinstance(node, (ast.Assign, ast.Delete)):
        return any(_non_local_target(t) for t in node.targets)
    if isinstance(node, ast.AnnAssign):
        return node.value is not None and _non_local_target(node.target)
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        return isinstance(func, ast.Attribute) and func.attr in _MUTATORS
    return False


def _non_local_target(target: ast.expr) -> bool:
    if isinstance(target, (ast.Attribute, ast.Subscript)):
        return True
    if isinstance(target, (ast.Tuple, ast.List)):
        return any(_non_local_target(e) for e in target.elts)
    return False


def _checks(test: ast.expr) -> bool:
    for node in ast.walk(test):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn, ast.Is, ast.IsNot)) for op in node.ops):
            return True
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return True
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in _EXISTENCE_CALLS:
                return True
    return False


def _child_statements(node: ast.stmt) -> Iterator[ast.stmt]:
    """Statements nested in if/try/with/loops/match (not in definitions)."""
    for child_field in ("body", "orelse", "finalbody", "handlers", "cases"):
        for child in getattr(node, child_field, None) or ():
            if isinstance(child, (ast.ExceptHandler, ast.match_case)):
                yield from child.body
            elif isinstance(child, ast.stmt):
                yield child


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


def _raw_names(nodes: Iterable[ast.AST]) -> tuple[str, ...]:
    return tuple(name for name in map(dotted, nodes) if name)


def _decorators(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> tuple[str, ...]:
    return _raw_names(d.func if isinstance(d, ast.Call) else d for d in node.decorator_list)


def _never_returns(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    annotation = dotted(fn.returns) if fn.returns is not None else None
    if annotation and annotation.rsplit(".", 1)[-1] in {"NoReturn", "Never"}:
        return True
    if isinstance(fn.returns, ast.Constant) and fn.returns.value in {"NoReturn", "Never"}:
        return True
    body = [s for s in fn.body if not _is_docstring(s)]
    return len(body) == 1 and isinstance(body[0], ast.Raise)


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _is_broad_handler(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(name in BROAD_EXCEPTIONS for name in map(dotted, types) if name)


def _handles_own_errors(body: list[ast.stmt]) -> bool:
    """True when the body's work runs inside a broad try/except (a thread or task boundary)."""
    for stmt in body:
        if isinstance(stmt, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            if any(_is_broad_handler(h) for h in stmt.handlers):
                return True
        if isinstance(stmt, (ast.While, ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)) and _handles_own_errors(stmt.body):
            return True
    return False


def _reads_outcome(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in {"result", "exception"}
        for n in ast.walk(fn)
    )


def _body_observes(loop: ast.For | ast.AsyncFor) -> bool:
    """`for t in tasks: await t` / `t.result()` consumes every element."""
    if not isinstance(loop.target, ast.Name):
        return False
    var = loop.target.id
    for statement in loop.body:
        for node in ast.walk(statement):
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
