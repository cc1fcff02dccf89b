"""What an exception handler does, established once and shared by the GAP1xx rules.

``handler_facts()`` answers, for one ``except`` clause: which types it catches
(resolved through imports), whether every path raises, how it logs (level,
traceback), whether it records the failure, which values it returns and
whether they are success-shaped defaults or explicit failures. The context
helpers answer where the handler sits: a cleanup context, a retry loop, a
plain loop, a function whose name makes a fallback its contract.

Each rule module decides from these facts; this module decides nothing.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import libcst as cst

from gap_ls.core.flow import Exit, block_exits, loop_exits
from gap_ls.core.nodes import (
    assigned_names,
    body_statements,
    call_name,
    dotted_name,
    int_value,
    keyword,
    method_name,
    names_in,
    receiver,
    small_statements,
    string_value,
    walk,
    walk_body,
)
from gap_ls.core.rule import FixRequest, Rule, UnitContext
from gap_ls.core.summary import HandlerFact, ModuleSummary, UnitFacts

Handler = cst.ExceptHandler | cst.ExceptStarHandler
TryNode = cst.Try | cst.TryStar

BROAD = frozenset({"builtins.Exception", "builtins.BaseException"})
CANCELLATION = frozenset(
    {
        "asyncio.CancelledError",
        "asyncio.exceptions.CancelledError",
        "concurrent.futures.CancelledError",
        "trio.Cancelled",
        "builtins.BaseException",
    }
)

LOG_LEVELS = {
    "trace": 5,
    "debug": 10,
    "info": 20,
    "msg": 20,
    "success": 25,
    "warning": 30,
    "warn": 30,
    "error": 40,
    "exception": 40,
    "critical": 50,
    "fatal": 50,
}
LEVEL_NAMES = {5: "TRACE", 10: "DEBUG", 20: "INFO", 25: "SUCCESS", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}
ERROR = 40

# Error reporters that record the traceback (their own names, resolved through imports).
TRACEBACK_REPORTERS = frozenset(
    {
        "sentry_sdk.capture_exception",
        "raven.Client.captureException",
        "rollbar.report_exc_info",
        "bugsnag.notify",
        "honeybadger.honeybadger.notify",
        "airbrake.notify",
        "newrelic.agent.notice_error",
        "traceback.print_exc",
        "traceback.print_exception",
        "logging.exception",
    }
)
MESSAGE_REPORTERS = frozenset({"sentry_sdk.capture_message", "rollbar.report_message", "warnings.warn"})
PRINTERS = frozenset({"builtins.print", "click.echo", "click.secho", "typer.echo", "typer.secho", "sys.stderr.write"})

_LOGGER_NAME = re.compile(r"^_*(log|logger|logging|LOG|LOGGER|Log|Logger)$|(_log|_logger|Logger|LOGGER|logger)$")
_FAILURE_WORD = re.compile(r"fail|error|err\b|errs\b|nack|reject|dead|problem|invalid|broken|skipped|bad_", re.IGNORECASE)
_STATUS_WORD = re.compile(r"fail|error|err\b|abort|cancel|reject", re.IGNORECASE)
_CLEANUP_FUNCTION = re.compile(
    r"^(__exit__|__aexit__|__del__|close|aclose|cleanup|clean_up|shutdown|stop|teardown|tear_down|tearDown|"
    r"dispose|release|disconnect|terminate|_?cleanup.*|_?close.*|.*_cleanup|.*_close|.*_shutdown|.*_teardown)$"
)
_CLEANUP_CALLS = frozenset(
    {"close", "aclose", "disconnect", "terminate", "kill", "cancel", "shutdown", "stop", "release", "unlink", "join", "wait_closed"}
)
_OBVIOUS_COMMENT_WORDS = frozenset(
    ["ignore", "ignored", "ignoring", "errors", "error", "exception", "exceptions", "silently", "skip", "pass", "do", "nothing", "it", "the", "any", "all", "swallow", "here", "just", "this"]
)
_TOOL_DIRECTIVE = re.compile(r"^(noqa\b|type:|pragma\b|nosec\b|gap:|pylint:|ruff:|fmt:|todo\b|fixme\b|xxx\b|hack\b)", re.IGNORECASE)
_HTTP_ERROR_NAMES = re.compile(r"HTTP_(4|5)\d\d|BAD_REQUEST|INTERNAL_SERVER_ERROR|SERVICE_UNAVAILABLE|BAD_GATEWAY|GATEWAY_TIMEOUT|NOT_FOUND|FORBIDDEN|UNAUTHORIZED|CONFLICT|UNPROCESSABLE")
_ERROR_RESPONSE = re.compile(r"(Error|Failure|Failed|Err|Fail|BadRequest|NotFound|Forbidden|Unauthorized|Problem)\w*$")
_DEFAULT_CONSTANT = re.compile(r"^_?(DEFAULT|EMPTY|NULL|NO|BLANK|FALLBACK|PLACEHOLDER|DUMMY)_[A-Z0-9_]+$")


@dataclass(frozen=True)
class LogCall:
    node: cst.Call
    level: int  # 0 for print-like output
    traceback: bool
    kind: str  # "log", "print" or "report"

    def describe(self) -> str:
        if self.kind == "print":
            return "prints the error" + (" with its traceback" if self.traceback else " (no traceback, no log record)")
        level = LEVEL_NAMES.get(self.level, str(self.level))
        how = "reports" if self.kind == "report" else "logs"
        return f"{how} at {level} " + ("with the traceback" if self.traceback else "without the traceback")

    @property
    def visible(self) -> bool:
        """An operator would see this failure with enough detail to act on it."""
        return self.traceback and (self.level >= ERROR or self.kind in {"report", "print"})


@dataclass
class HandlerFacts:
    handler: Handler
    try_node: TryNode
    caught: tuple[str, ...]
    bare: bool
    exception_name: str | None
    exits: Exit
    logs: list[LogCall] = field(default_factory=list)
    records_failure: cst.CSTNode | None = None
    failure_returns: list[cst.Return] = field(default_factory=list)
    default_returns: list[tuple[cst.Return, str]] = field(default_factory=list)
    other_returns: list[cst.Return] = field(default_factory=list)
    substitutes: list[tuple[cst.CSTNode, str, str]] = field(default_factory=list)  # (assign, target, default)
    raises_somewhere: bool = False
    statements: tuple[cst.CSTNode, ...] = ()
    cancellation_taken_earlier: bool = False  # an earlier `except CancelledError:` of the same try

    @property
    def broad(self) -> bool:
        return self.bare or any(name in BROAD for name in self.caught)

    @property
    def catches_cancellation(self) -> bool:
        """Cancellation can reach this handler: it catches it and no earlier clause does."""
        return not self.cancellation_taken_earlier and _catches_cancellation(self.bare, self.caught)

    @property
    def all_paths_raise(self) -> bool:
        return bool(self.exits) and not self.exits & ~Exit.RAISE

    @property
    def can_continue(self) -> bool:
        """Control can leave the handler other than by raising or returning."""
        return bool(self.exits & (Exit.FALLTHROUGH | Exit.CONTINUE | Exit.BREAK))

    @property
    def pass_only(self) -> bool:
        return bool(self.statements) and all(_is_pass(s) for s in self.statements)

    @property
    def continue_only(self) -> bool:
        return len(self.statements) == 1 and isinstance(self.statements[0], cst.Continue)

    @property
    def best_log(self) -> LogCall | None:
        if not self.logs:
            return None
        return max(self.logs, key=lambda log: (log.visible, log.traceback, log.level))

    @property
    def handled_visibly(self) -> bool:
        """Every way out raises, returns an explicit failure, or the failure is recorded."""
        if self.all_paths_raise or self.records_failure is not None:
            return True
        swallowing_returns = self.default_returns or self.other_returns
        return bool(self.failure_returns) and not swallowing_returns and not self.can_continue

    def caught_text(self) -> str:
        if self.bare:
            return "bare `except:`"
        handler_type = self.handler.type
        return f"`except {_code(handler_type)}`" if handler_type is not None else "`except`"

    def caught_fact(self) -> str:
        """For `checked`: "catches everything (bare `except:`)", "catches `Exception`"."""
        if self.bare:
            return "catches everything (bare `except:`)"
        names = ", ".join(f"`{name.removeprefix('builtins.')}`" for name in self.caught)
        return f"catches {names}"

    def log_fact(self) -> str:
        log = self.best_log
        return log.describe() if log is not None else "does not log or report the error"


def _catches_cancellation(bare: bool, caught: tuple[str, ...]) -> bool:
    return bare or any(name in CANCELLATION for name in caught)


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _is_pass(statement: cst.CSTNode) -> bool:
    if isinstance(statement, cst.Pass):
        return True
    return isinstance(statement, cst.Expr) and isinstance(statement.value, cst.Ellipsis)


# How a handler without branches can end, for the rules that look at each shape.
CAN_CONTINUE = frozenset({"", "continue", "break"})  # lets the program go on past the handler
CAN_DEFAULT = frozenset({"", "return"})  # may return or fall through to a default
NOT_RAISING = CAN_CONTINUE | CAN_DEFAULT


def open_handlers(facts: UnitFacts, ends: frozenset[str] = NOT_RAISING) -> list[HandlerFact]:
    """The unit's handlers that may end in one of ``ends`` (a cheap filter before parsing)."""
    return [h for h in facts.handlers if h.ends in ends]


def may_be_broad(handler: HandlerFact, summary: ModuleSummary) -> bool:
    return not handler.types or "?" in handler.types or any(summary.qualify(t) in BROAD for t in handler.types)


def may_catch_cancellation(handler: HandlerFact, summary: ModuleSummary) -> bool:
    return not handler.types or "?" in handler.types or any(summary.qualify(t) in CANCELLATION for t in handler.types)


class HandlerRule(Rule):
    """Base for rules about except clauses: handlers are collected while visiting and
    checked in ``finish()``, when the parents of every node in the unit are known."""

    triggers = ("except",)
    # The ways out of a handler without branches that this rule can flag (see `open_handlers`).
    flagged_ends: ClassVar[frozenset[str]] = NOT_RAISING

    def __init__(self, context: UnitContext) -> None:
        super().__init__(context)
        self.handlers: list[Handler] = []

    def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        self.handlers.append(node)

    def visit_ExceptStarHandler(self, node: cst.ExceptStarHandler) -> None:
        self.handlers.append(node)

    def finish(self) -> None:
        for handler in self.handlers:
            self.check_handler(handler)

    @classmethod
    def relevant(cls, facts: UnitFacts | None, summary: ModuleSummary, found: tuple[str, ...] = ()) -> bool:
        """By default: some handler may be broad, or may catch cancellation in async code."""
        return facts is None or any(
            may_be_broad(h, summary) or (h.in_async and may_catch_cancellation(h, summary))
            for h in open_handlers(facts, cls.flagged_ends)
        )

    def check_handler(self, handler: Handler) -> None:
        raise NotImplementedError


# -- building the facts --------------------------------------------------------------


def handler_facts(handler: Handler, context: UnitContext) -> HandlerFacts:
    key = ("handler", id(handler))
    cached = context.cache.get(key)
    if cached is None:
        cached = _build_facts(handler, context)
        context.cache[key] = cached
    return cached


def caught_types(handler: Handler, context: UnitContext) -> tuple[str, ...]:
    if handler.type is None:
        return ()
    elements = handler.type.elements if isinstance(handler.type, cst.Tuple) else None
    expressions = [e.value for e in elements] if elements is not None else [handler.type]
    names = []
    for expression in expressions:
        qualified = context.qualify(expression)
        names.append(qualified if qualified is not None else _code(expression))
    return tuple(names)


def _build_facts(handler: Handler, context: UnitContext) -> HandlerFacts:
    try_node = context.parent(handler)
    assert isinstance(try_node, (cst.Try, cst.TryStar)), "an except clause always belongs to a try"
    statements = tuple(s for line in body_statements(handler) for s in small_statements(line))
    name = handler.name.name.value if handler.name is not None and isinstance(handler.name.name, cst.Name) else None
    facts = HandlerFacts(
        handler=handler,
        try_node=try_node,
        caught=caught_types(handler, context),
        bare=handler.type is None,
        exception_name=name,
        exits=block_exits(body_statements(handler), context.never_returns),
        statements=statements,
        cancellation_taken_earlier=any(
            _catches_cancellation(earlier.type is None, caught_types(earlier, context))
            for earlier in try_node.handlers[: try_node.handlers.index(handler)]
        ),
    )
    produced = produced_names(try_node)
    inside_logs: set[int] = set()
    for node in walk_body(body_statements(handler)):
        if id(node) in inside_logs:
            continue
        if isinstance(node, cst.Call):
            log = log_call(node, context)
            if log is not None:
                facts.logs.append(log)
                inside_logs.update(id(inner) for inner in walk(node))
            elif facts.records_failure is None and _records_failure_call(node, name, context):
                facts.records_failure = node
        elif isinstance(node, cst.Raise):
            facts.raises_somewhere = True
        elif isinstance(node, cst.Return):
            _classify_return(node, facts, context)
        elif isinstance(node, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
            _classify_assignment(node, facts, produced, context)
        elif isinstance(node, cst.Yield) and node.value is not None and name and name in names_in(node.value):
            facts.records_failure = node
    return facts


def log_call(call: cst.Call, context: UnitContext) -> LogCall | None:
    """A logging, printing or error-reporting call, with its level and traceback."""
    qualified = context.qualify_call(call)
    configured = _configured_reporter(call, qualified, context)
    if configured:
        return LogCall(call, ERROR, True, "report")
    if qualified in TRACEBACK_REPORTERS:
        return LogCall(call, ERROR, True, "print" if qualified.startswith("traceback.") else "report")
    if qualified in MESSAGE_REPORTERS:
        return LogCall(call, 30 if qualified == "warnings.warn" else ERROR, False, "report")
    if qualified in PRINTERS or (qualified or "").endswith("stderr.write"):
        return LogCall(call, 0, _mentions_traceback(call), "print")
    method = method_name(call)
    if method not in LOG_LEVELS and method != "log":
        return None
    target = receiver(call)
    if target is None or not _is_logger(target, context):
        return None
    level = _explicit_level(call) if method == "log" else LOG_LEVELS[method]
    traceback = method == "exception" or _exc_info(call) or _opt_exception(target) or _mentions_traceback(call)
    return LogCall(call, level, traceback, "log")


def _configured_reporter(call: cst.Call, qualified: str | None, context: UnitContext) -> bool:
    raw = call_name(call)
    for entry in context.settings.logging_calls:
        for name in (qualified, raw):
            if name and (name == entry or name.endswith("." + entry)):
                return True
    return False


def _is_logger(target: cst.BaseExpression, context: UnitContext) -> bool:
    if isinstance(target, cst.Call):
        # logger.opt(exception=True).error(...), structlog.get_logger().info(...), log.bind(x=1).warning(...)
        inner = receiver(target)
        called = context.qualify_call(target) or ""
        return (inner is not None and _is_logger(inner, context)) or called.endswith(("getLogger", "get_logger"))
    name = dotted_name(target)
    if name is None:
        return False
    qualified = context.summary.qualify(name)
    if qualified in {"logging", "loguru.logger", "structlog"} or qualified.startswith("logging."):
        return qualified == "logging" or qualified == "loguru.logger" or qualified.endswith(("getLogger()", "root"))
    last = name.rsplit(".", 1)[-1]
    return last in context.summary.loggers or bool(_LOGGER_NAME.search(last))


def _explicit_level(call: cst.Call) -> int:
    if call.args:
        first = call.args[0].value
        literal = int_value(first)
        if literal is not None:
            return literal
        name = dotted_name(first)
        if name:
            return {k: v for v, k in LEVEL_NAMES.items()}.get(name.rsplit(".", 1)[-1], 20)
    return 20


def _exc_info(call: cst.Call) -> bool:
    arg = keyword(call, "exc_info")
    if arg is None:
        return False
    value = arg.value
    return not (isinstance(value, cst.Name) and value.value in {"False", "None"})


def _opt_exception(target: cst.BaseExpression) -> bool:
    if isinstance(target, cst.Call) and method_name(target) == "opt":
        arg = keyword(target, "exception")
        return arg is not None and not (isinstance(arg.value, cst.Name) and arg.value.value in {"False", "None"})
    return False


def _mentions_traceback(call: cst.Call) -> bool:
    for node in walk(call):
        if isinstance(node, cst.Call) and (call_name(node) or "").endswith(("format_exc", "format_exception", "print_exc")):
            return True
    return False


# Calls that only format or inspect the exception; passing it to them hands it to nobody.
_FORMATTING_CALLS = frozenset({"str", "repr", "format", "type", "isinstance", "getattr", "hasattr", "len", "id", "vars", "f"})
# Values that capture the exception being handled for later use.
_CAPTURES_EXCEPTION = re.compile(r"(exc_info|format_exc|format_exception|from_current|current_exception|capture)$")


def _records_failure_call(call: cst.Call, exception_name: str | None, context: UnitContext) -> bool:
    """The failure is recorded or handed on: `errors.append(e)`, `future.set_exception(e)`,
    `job.mark_failed()`, `msg.nack()`, `dead_letter.put(item)`, `on_error(exc)`."""
    method = method_name(call) or ""
    target_name = dotted_name(receiver(call)) or ""
    if method in _FORMATTING_CALLS or context.never_returns(call):
        return False
    if exception_name is not None and any(exception_name in names_in(arg.value) for arg in call.args):
        return True  # the exception object goes to someone: a future, a callback, a collection
    if method in {"append", "add", "put", "put_nowait", "extend", "setdefault", "appendleft", "send", "insert"}:
        return bool(_FAILURE_WORD.search(target_name))
    if any(_records_status(arg.keyword.value, arg.value, exception_name) for arg in call.args if arg.keyword is not None):
        return True  # self._mark_stopped(success=False), job.update(status="failed")
    return bool(_FAILURE_WORD.search(method)) and method not in LOG_LEVELS


def _classify_return(node: cst.Return, facts: HandlerFacts, context: UnitContext) -> None:
    value = node.value
    default = default_value(value, context.summary.qualify)
    if is_failure_value(value, facts.exception_name, context):
        facts.failure_returns.append(node)
    elif default is not None:
        facts.default_returns.append((node, default))
    else:
        facts.other_returns.append(node)


def _classify_assignment(node: cst.CSTNode, facts: HandlerFacts, produced: set[str], context: UnitContext) -> None:
    if isinstance(node, cst.AugAssign):
        target = dotted_name(node.target) or ""
        if _FAILURE_WORD.search(target) and facts.records_failure is None:
            facts.records_failure = node
        return
    value = node.value
    if value is None:
        return
    targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
    for target in targets:
        text = dotted_name(target) or (_code(target) if isinstance(target, cst.Subscript) else "")
        if facts.records_failure is None and _records_status(text, value, facts.exception_name):
            facts.records_failure = node
            continue
        default = default_value(value, context.summary.qualify)
        # `ok = False` for a flag the try computes is an answer, not a stand-in result.
        if default is not None and default not in {"True", "False"} and text in produced:
            facts.substitutes.append((node, text, default))


def _records_status(target: str, value: cst.BaseExpression, exception_name: str | None) -> bool:
    """`job.status = "failed"`, `result["error"] = str(e)`, `self.failed = True`, `ok = False`,
    `last_error = exc`, `excinfo = ExceptionInfo.from_current()`."""
    if exception_name is not None and exception_name in names_in(value):
        return True
    if isinstance(value, cst.Call) and _CAPTURES_EXCEPTION.search(method_name(value) or ""):
        return True
    literal = string_value(value)
    if literal is not None and _STATUS_WORD.search(literal):
        return True
    name = dotted_name(value)
    if name is not None and _STATUS_WORD.search(name.rsplit(".", 1)[-1]) and "." in name:
        return True  # Status.FAILED, JobState.ERROR
    if isinstance(value, cst.Name) and value.value in {"True", "False"}:
        last = re.split(r"[.\[]", target)[-1]
        return bool(re.search(r"fail|error|err\b|ok\b|success|succeeded|healthy|degraded", last, re.IGNORECASE))
    return False


# -- values ---------------------------------------------------------------------------


def default_value(value: cst.BaseExpression | None, qualify: Callable[[str], str]) -> str | None:
    """A success-shaped default (`None`, `{}`, `[]`, `0`, `False`, `""`, `True`...), described.

    ``qualify`` resolves a dotted name through the module's imports (`dict()` may be shadowed).
    """
    if value is None:
        return "None"
    if isinstance(value, cst.Name) and value.value in {"None", "False", "True"}:
        return value.value
    if isinstance(value, (cst.Integer, cst.Float)) and value.value.replace("_", "").strip("0.") == "":
        return value.value
    if isinstance(value, (cst.Dict, cst.List, cst.Tuple, cst.Set)) and not _elements(value):
        return _code(value)
    if isinstance(value, (cst.SimpleString, cst.ConcatenatedString)) and string_value(value) == "":
        return _code(value)
    if isinstance(value, cst.Call) and not value.args and (name := dotted_name(value.func)) is not None:
        called = qualify(name)
        if called in {"builtins.dict", "builtins.list", "builtins.set", "builtins.tuple", "builtins.str", "builtins.frozenset"}:
            return _code(value)
    name = dotted_name(value)
    if name is not None and _DEFAULT_CONSTANT.match(name.rsplit(".", 1)[-1]):
        return name
    return None


def _elements(value: cst.BaseExpression) -> tuple[cst.CSTNode, ...]:
    return tuple(getattr(value, "elements", ()))


def is_failure_value(value: cst.BaseExpression | None, exception_name: str | None, context: UnitContext) -> bool:
    """A return value that tells the caller something failed."""
    if value is None:
        return False
    if exception_name is not None and exception_name in names_in(value):
        return True
    if isinstance(value, cst.Tuple):
        if any((int_value(e.value) or 0) >= 400 for e in value.elements):
            return True  # Flask: return body, 500
        return any(is_failure_value(e.value, exception_name, context) for e in value.elements)
    if isinstance(value, cst.Dict):
        return _failure_dict(value)
    if isinstance(value, cst.Call):
        return _failure_call(value, exception_name, context)
    if isinstance(value, cst.Await):
        return is_failure_value(value.expression, exception_name, context)
    return False


def _failure_dict(value: cst.Dict) -> bool:
    for element in value.elements:
        if not isinstance(element, cst.DictElement):
            continue
        key = string_value(element.key) or ""
        if key in {"error", "errors", "err", "exception", "failure", "failed"}:
            return True
        if key in {"ok", "success", "succeeded"} and isinstance(element.value, cst.Name) and element.value.value == "False":
            return True
        if key in {"status", "state", "result"} and _STATUS_WORD.search(string_value(element.value) or ""):
            return True
    return False


def _failure_call(call: cst.Call, exception_name: str | None, context: UnitContext) -> bool:
    called = call_name(call) or ""
    last = called.rsplit(".", 1)[-1]
    if _ERROR_RESPONSE.search(last):
        return True  # HttpResponseServerError(...), Err(...), Result.failure(...), ErrorResponse(...)
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value in {"status", "status_code", "code"}:
            number = int_value(arg.value)
            if number is not None and number >= 400:
                return True
            if _HTTP_ERROR_NAMES.search(dotted_name(arg.value) or ""):
                return True
        if arg.keyword is None or arg.keyword.value in {"content", "data", "body", "json"}:
            if isinstance(arg.value, cst.Dict) and _failure_dict(arg.value):
                return True
    if last in {"jsonify", "make_response", "Response", "JsonResponse", "JSONResponse", "render"}:
        return any(is_failure_value(arg.value, exception_name, context) for arg in call.args)
    return False


# -- what the try produced, and what comes after ------------------------------------------


def produced_names(try_node: TryNode) -> set[str]:
    """Names and dotted attributes the try body assigns (what the handler's caller relies on)."""
    produced: set[str] = set()
    for node in walk_body(body_statements(try_node)):
        targets: list[cst.CSTNode] = []
        if isinstance(node, cst.Assign):
            targets = [t.target for t in node.targets]
        elif isinstance(node, (cst.AnnAssign, cst.AugAssign)) or isinstance(node, cst.NamedExpr) or isinstance(node, (cst.For,)):
            targets = [node.target]
        elif isinstance(node, cst.WithItem) and node.asname is not None:
            targets = [node.asname.name]
        for target in targets:
            produced.update(assigned_names(target))
            if isinstance(target, cst.Attribute) and (name := dotted_name(target)):
                produced.add(name)
    return produced


def mutated_objects(try_node: TryNode) -> set[str]:
    """Objects the try body leaves half-updated when it fails part-way.

    `charge(order); order.status = "paid"`: the update follows other work, so a
    failure can skip it after that work happened. A single `data["k"] = f()` is
    not a partial update: when it fails, nothing was changed.
    """
    statements = [s for line in body_statements(try_node) for s in small_statements(line)]
    first_mutation: dict[str, int] = {}
    counts: dict[str, int] = {}
    for index, statement in enumerate(statements):
        for node in walk(statement):
            if not isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
                continue
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            for target in targets:
                if isinstance(target, (cst.Attribute, cst.Subscript)):
                    name = dotted_name(target.value)
                    if name is not None and name not in {"self", "cls"}:
                        first_mutation.setdefault(name, index)
                        counts[name] = counts.get(name, 0) + 1
    return {name for name, index in first_mutation.items() if index > 0 or counts[name] > 1}


def following_statements(node: cst.CSTNode, context: UnitContext) -> Iterator[cst.CSTNode]:
    """Statements that run after ``node`` in its function, innermost block first."""
    current = node
    for ancestor in context.ancestors(node):
        if isinstance(ancestor, (cst.IndentedBlock, cst.Module)):
            siblings = list(ancestor.body)
            for index, sibling in enumerate(siblings):
                if sibling is current:
                    yield from siblings[index + 1 :]
                    break
        if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            return
        if isinstance(ancestor, (cst.BaseCompoundStatement, cst.SimpleStatementLine)):
            current = ancestor


def preceding_assignments(node: cst.CSTNode, context: UnitContext) -> dict[str, cst.BaseExpression]:
    """Simple assignments that run before ``node`` in its function (`result = None`), latest first wins."""
    found: dict[str, cst.BaseExpression] = {}
    current = node
    for ancestor in context.ancestors(node):
        if isinstance(ancestor, (cst.IndentedBlock, cst.Module)):
            for sibling in ancestor.body:
                if sibling is current:
                    break
                for small in small_statements(sibling):
                    if isinstance(small, (cst.Assign, cst.AnnAssign)) and small.value is not None:
                        for target in _assignment_targets(small):
                            if (name := dotted_name(target)) is not None:
                                found.setdefault(name, small.value)
        if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            break
        current = ancestor
    return found


def first_use(statements: Iterator[cst.CSTNode], produced: set[str], mutated: set[str]) -> tuple[cst.CSTNode, str] | None:
    """The first following statement that reads a produced name or a partly updated object."""
    remaining = set(produced)
    for statement in statements:
        targets = _plain_targets(statement)
        for node in walk(statement):
            if isinstance(node, cst.Name) and id(node) not in targets:
                if node.value in remaining or node.value in mutated:
                    return statement, node.value
            elif isinstance(node, cst.Attribute) and id(node) not in targets:
                name = dotted_name(node)
                if name is not None and name in remaining and "." in name:
                    return statement, name
        for small in small_statements(statement):
            for target in _assignment_targets(small):
                remaining.discard(dotted_name(target) or "")
                remaining.difference_update(assigned_names(target))
    return None


def _assignment_targets(statement: cst.CSTNode) -> list[cst.CSTNode]:
    if isinstance(statement, cst.Assign):
        return [t.target for t in statement.targets]
    if isinstance(statement, cst.AnnAssign):
        return [statement.target]
    return []


def _plain_targets(statement: cst.CSTNode) -> set[int]:
    """ids of Name/Attribute nodes that are written, not read, by a simple statement."""
    ids: set[int] = set()
    for small in small_statements(statement):
        for target in _assignment_targets(small):
            for node in walk(target):
                if isinstance(node, (cst.Name, cst.Attribute)) and not _inside_subscript_slice(node, target):
                    ids.add(id(node))
    return ids


def _inside_subscript_slice(node: cst.CSTNode, target: cst.CSTNode) -> bool:
    return isinstance(target, cst.Subscript) and node is not target and node is not target.value


# -- where the handler sits ---------------------------------------------------------------


def enclosing_loop(node: cst.CSTNode, context: UnitContext) -> cst.For | cst.While | None:
    for ancestor in context.ancestors(node):
        if isinstance(ancestor, (cst.For, cst.While)):
            return ancestor
        if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            return None
    return None


def in_cleanup_context(node: TryNode | cst.With, context: UnitContext) -> bool:
    """Best-effort cleanup: a secondary error while a primary one propagates, or releasing resources.

    ``node`` is the ``try`` (or ``with suppress(...)``) whose errors are dropped.
    """
    for ancestor in context.ancestors(node):
        if isinstance(ancestor, (cst.Finally, cst.ExceptHandler, cst.ExceptStarHandler)):
            return True
        if isinstance(ancestor, cst.FunctionDef):
            if _CLEANUP_FUNCTION.match(ancestor.name.value):
                return True
            break
    calls = [n for n in walk_body(body_statements(node)) if isinstance(n, cst.Call)]
    statements = [s for line in body_statements(node) for s in small_statements(line)]
    only_calls = all(isinstance(s, cst.Expr) for s in statements)
    top_calls = [s.value.expression if isinstance(s.value, cst.Await) else s.value for s in statements if isinstance(s, cst.Expr)]
    return bool(calls) and only_calls and all(
        isinstance(c, cst.Call) and (method_name(c) or "") in _CLEANUP_CALLS for c in top_calls
    )


def only_imports(try_node: TryNode) -> bool:
    statements = [s for line in body_statements(try_node) for s in small_statements(line)]
    return bool(statements) and all(isinstance(s, (cst.Import, cst.ImportFrom)) for s in statements)


def explanatory_comment(handler: Handler) -> str | None:
    """A comment in the handler that says why it is empty (CodeQL's convention)."""
    for node in walk(handler):
        if isinstance(node, cst.Comment):
            text = node.value.lstrip("#").strip()
            if not text or _TOOL_DIRECTIVE.match(text):
                continue
            words = re.findall(r"[a-zA-Z']+", text.lower())
            if len(words) >= 2 and not set(words) <= _OBVIOUS_COMMENT_WORDS:
                return text
    return None


_RETRY_ITER = re.compile(r"attempt|retr|tries|try|backoff|delay|wait|sleep|interval", re.IGNORECASE)


@dataclass(frozen=True)
class RetryLoop:
    loop: cst.For | cst.While
    try_node: TryNode
    handler: Handler


def retry_loop_of(facts: HandlerFacts, context: UnitContext) -> RetryLoop | None:
    """The bounded retry loop this handler is the swallow point of, if any.

    A retry loop runs the same work again after a failure: its ``try`` exits the
    loop on success (``return`` or ``break``), its handler lets the loop go on,
    and it is bounded by ``range(n)``, a list of delays, or a counter.
    """
    if not facts.can_continue or facts.exits & Exit.BREAK and not _counter_bound(facts):
        return None
    loop = enclosing_loop(facts.try_node, context)
    if loop is None or context.parent(facts.try_node) is not loop.body:
        return None
    if not _exits_on_success(facts.try_node, loop):
        return None
    if isinstance(loop, cst.For):
        return RetryLoop(loop, facts.try_node, facts.handler) if _retry_iterable(loop) else None
    if _bounded_while(loop, facts):
        return RetryLoop(loop, facts.try_node, facts.handler)
    return None


def _counter_bound(facts: HandlerFacts) -> bool:
    """`if attempt >= MAX: break` inside the handler ends a counted retry."""
    return any(isinstance(n, cst.If) for n in walk_body(body_statements(facts.handler)))


def _exits_on_success(try_node: TryNode, loop: cst.For | cst.While) -> bool:
    blocks = [body_statements(try_node)]
    if try_node.orelse is not None:
        blocks.append(body_statements(try_node.orelse))
    for block in blocks:
        exits = block_exits(block)
        if exits & Exit.RETURN:
            return True
        if exits & Exit.BREAK:
            return True
    return False


def _retry_iterable(loop: cst.For) -> bool:
    iterable = loop.iter
    called = call_name(iterable) or ""
    if called in {"range", "itertools.repeat", "repeat"}:
        return True
    target = dotted_name(loop.target) or ""
    if _RETRY_ITER.search(target) and target not in {"entry", "entries"}:
        return True
    name = dotted_name(iterable) or called
    return bool(name and _RETRY_ITER.search(name.rsplit(".", 1)[-1]))


def _bounded_while(loop: cst.While, facts: HandlerFacts) -> bool:
    test = loop.test
    if isinstance(test, cst.Name) and test.value == "True":
        # Bounded by a counter that breaks, or by a condition that re-raises.
        return (bool(facts.exits & Exit.BREAK) and _counter_bound(facts)) or facts.raises_somewhere
    names = {n.lower() for n in names_in(test)}
    return any(_RETRY_ITER.search(n) or n in {"n", "i", "count", "remaining", "left"} for n in names)


def loop_can_exhaust(loop: cst.For | cst.While, context: UnitContext) -> bool:
    exits = loop_exits(loop, context.never_returns)
    return bool(exits & Exit.FALLTHROUGH)


def failure_after(node: cst.CSTNode, context: UnitContext) -> bool:
    """Code after ``node`` (in its function) raises or returns an explicit failure before returning."""
    for statement in following_statements(node, context):
        for inner in walk(statement):
            if isinstance(inner, cst.Raise):
                return True
            if isinstance(inner, cst.Call) and context.never_returns(inner):
                return True
            if isinstance(inner, cst.Return):
                return is_failure_value(inner.value, None, context)
    return False


def returns_values(function: cst.FunctionDef) -> bool:
    """The function returns a value somewhere (so falling off its end returns None)."""
    return any(isinstance(n, cst.Return) and n.value is not None for n in walk(function.body))


def next_step(node: cst.CSTNode, context: UnitContext) -> tuple[str, cst.CSTNode | None]:
    """What runs right after ``node`` completes normally.

    ("statement", s): the next statement; ("loop", loop): the next iteration of
    the innermost loop; ("end", function): the end of the function (None at
    module level).
    """
    current = node
    for ancestor in context.ancestors(node):
        if isinstance(ancestor, (cst.IndentedBlock, cst.Module)):
            siblings = list(ancestor.body)
            for index, sibling in enumerate(siblings):
                if sibling is current and index + 1 < len(siblings):
                    following = siblings[index + 1]
                    if not _is_pass_line(following):
                        return "statement", following
        elif isinstance(ancestor, (cst.For, cst.While)) and current is ancestor.body:
            return "loop", ancestor
        elif isinstance(ancestor, (cst.FunctionDef, cst.Lambda)):
            return "end", ancestor
        elif isinstance(ancestor, cst.ClassDef):
            return "end", None
        current = ancestor
    return "end", None


def _is_pass_line(statement: cst.CSTNode) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and all(_is_pass(s) for s in statement.body)


_CONTRACT_NAME = re.compile(r"^_*(try|maybe|safe|safely|optional|best_effort|attempt)_|_(or_none|or_default|safe|safely|quietly|silently|optional|if_possible|best_effort)$")
_PREDICATE_NAME = re.compile(r"^_*(is|has|can|should|check|validate|verify|exists|ping|health|healthy|is_alive|available|supports|needs|may|will)(_|$)|_(exists|available|valid|reachable|healthy|alive|ok)$")


def has_fallback_contract(function: cst.FunctionDef | None) -> bool:
    return function is not None and bool(_CONTRACT_NAME.search(function.name.value))


def is_predicate(function: cst.FunctionDef | None) -> bool:
    return function is not None and bool(_PREDICATE_NAME.search(function.name.value))


def returns_caller_default(facts: HandlerFacts, function: cst.FunctionDef | None) -> bool:
    """`def get(key, default=None): ... except Exception: return default` is a contract."""
    if function is None:
        return False
    params = {p.name.value for p in (*function.params.params, *function.params.kwonly_params)}
    candidates = {"default", "fallback", "default_value", "fallback_value", "otherwise"} & params
    return bool(candidates) and all(
        isinstance(r.value, cst.Name) and r.value.value in candidates for r in facts.other_returns
    ) and bool(facts.other_returns) and not facts.default_returns


def is_dunder_display(function: cst.FunctionDef | None) -> bool:
    return function is not None and function.name.value in {"__repr__", "__str__", "__format__", "__rich_repr__"}


# -- which rule owns a handler -----------------------------------------------------------


class Shape(enum.Enum):
    """What a handler does with the error, in the order the GAP1xx rules claim it."""

    HANDLED = "handled"  # raises on every path, returns an explicit failure, or records it
    CANCELLATION = "cancellation"  # GAP107: async code catching CancelledError without re-raising
    RETRY = "retry"  # GAP105: the swallow point of a bounded retry loop (reported on the loop)
    SUPPRESS = "suppress"  # GAP103: broad handler whose body is only pass / ...
    DEFAULT = "default"  # GAP102 (broad) / GAP106 (narrow): a success-shaped default comes out
    CONTINUES = "continues"  # GAP101 (broad): execution carries on after the error
    OTHER = "other"  # returns some other value, or a narrow handler that carries on


@dataclass(frozen=True)
class Default:
    node: cst.CSTNode
    value: str  # "None", "[]", or "data = {}" for a substitution
    how: str  # "returns", "substitutes", "falls off the end"

    @property
    def shown(self) -> str:
        """The value itself: `{}` for the substitution `data = {}`."""
        return self.value.split(" = ", 1)[-1]

    @property
    def outcome(self) -> str:
        if self.how == "substitutes":
            return f"substitutes `{self.value}` for the result"
        if self.how == "falls off the end":
            return "falls off the end of a function that returns values, so callers get `None`"
        return f"returns `{self.value}`"


def default_is_contract(facts: HandlerFacts, default: Default, context: UnitContext) -> bool:
    """The default is the function's documented answer, not a hidden failure: cleanup,
    `try_*`/`*_or_none` names, a predicate's boolean, `__repr__`, or a value chosen after
    inspecting the specific error."""
    function = context.enclosing_function(facts.handler)
    if in_cleanup_context(facts.try_node, context) or has_fallback_contract(function) or is_dunder_display(function):
        return True
    if is_predicate(function) and default.value in {"False", "True"}:
        return True
    return guarded_by_error_detail(default.node, facts, context)


def classify(facts: HandlerFacts, context: UnitContext) -> Shape:
    if context.is_async(facts.handler) and facts.catches_cancellation and not facts.all_paths_raise:
        return Shape.CANCELLATION
    if facts.handled_visibly:
        return Shape.HANDLED
    if retry_loop_of(facts, context) is not None:
        return Shape.RETRY
    if facts.broad and facts.pass_only:
        return Shape.SUPPRESS
    if success_default(facts, context) is not None:
        return Shape.DEFAULT
    if facts.can_continue:
        return Shape.CONTINUES
    return Shape.OTHER


def success_default(facts: HandlerFacts, context: UnitContext) -> Default | None:
    """The success-shaped value a caller receives after this handler, if any."""
    if facts.default_returns:
        node, value = facts.default_returns[0]
        return Default(node, value, "returns")
    if not facts.exits & Exit.FALLTHROUGH:
        return None
    if facts.substitutes:
        node, target, value = facts.substitutes[0]
        return Default(node, f"{target} = {value}", "substitutes")
    kind, node = next_step(facts.try_node, context)
    if kind == "statement":
        small = small_statements(node)
        if len(small) == 1 and isinstance(small[0], cst.Return):
            returned = small[0].value
            value = default_value(returned, context.summary.qualify)
            name = dotted_name(returned)
            if value is None and name is not None and name in produced_names(facts.try_node):
                # `result = None` before the try, `return result` after it.
                initial = preceding_assignments(facts.try_node, context).get(name)
                value = default_value(initial, context.summary.qualify) if initial is not None else None
            return Default(small[0], value, "returns") if value is not None else None
        return None
    if kind == "end" and isinstance(node, cst.FunctionDef) and returns_values(node):
        return Default(node, "None", "falls off the end")
    return None


def is_error_boundary(function: cst.FunctionDef | None, context: UnitContext) -> bool:
    """A function configured in `error-boundaries` (by qualified name or decorator)."""
    if function is None or not context.settings.error_boundaries:
        return False
    qualname = context.qualname(function)
    info = context.function_info(function)
    decorators = info.decorators if info is not None else ()
    for entry in context.settings.error_boundaries:
        if qualname == entry or entry.endswith("." + qualname) or qualname.endswith("." + entry):
            return True
        qualified = [context.summary.qualify(d) for d in decorators]
        if any(d == entry or d.endswith("." + entry) for d in qualified):
            return True
    return False


def assigned_in(node: cst.CSTNode) -> set[str]:
    """Names and dotted attributes a block assigns."""
    names: set[str] = set()
    for inner in walk(node):
        if isinstance(inner, (cst.Assign, cst.AnnAssign, cst.AugAssign, cst.NamedExpr)):
            for target in _assignment_targets(inner) or [getattr(inner, "target", None)]:
                if target is None:
                    continue
                names.update(assigned_names(target))
                if (name := dotted_name(target)) is not None:
                    names.add(name)
    return names


def guarded_by_error_detail(statement: cst.CSTNode, facts: HandlerFacts, context: UnitContext) -> bool:
    """The statement only runs for one specific error, chosen by inspecting it.

    `if exc.response.status_code == 404: return None`, `if resp.status_code == 404`,
    `if e.errno == errno.ENOENT`: the default is an answer to that error, not a
    blanket fallback.
    """
    for ancestor in context.ancestors(statement):
        if ancestor is facts.handler:
            return False
        if isinstance(ancestor, cst.If) and _inspects_error(ancestor.test, facts.exception_name):
            return True
    return False


_ERROR_DETAIL_ATTRIBUTES = frozenset({"status_code", "status", "errno", "code", "response", "reason", "winerror", "pgcode"})


def branches_on_error(facts: HandlerFacts) -> bool:
    """The handler treats errors differently by inspecting them (`if "Throttl" in str(e):`)."""
    return any(
        isinstance(node, cst.If) and _inspects_error(node.test, facts.exception_name)
        for node in walk_body(body_statements(facts.handler))
    )


def _inspects_error(test: cst.CSTNode, exception_name: str | None) -> bool:
    if exception_name is not None and exception_name in names_in(test):
        return True
    return any(isinstance(n, cst.Attribute) and n.attr.value in _ERROR_DETAIL_ATTRIBUTES for n in walk(test))


# -- what a narrower handler would catch ---------------------------------------------------------

# Module (qualified prefix) -> the exception its calls document, as (module, attribute);
# module "builtins" means a bare name.
_EXPECTED_BY_MODULE = (
    ("requests.", ("requests", "RequestException")),
    ("httpx.", ("httpx", "HTTPError")),
    ("aiohttp.", ("aiohttp", "ClientError")),
    ("urllib.request.", ("urllib.error", "URLError")),
    ("json.", ("builtins", "ValueError")),
    ("builtins.open", ("builtins", "OSError")),
    ("os.", ("builtins", "OSError")),
    ("shutil.", ("builtins", "OSError")),
    ("socket.", ("builtins", "OSError")),
    ("builtins.int", ("builtins", "ValueError")),
    ("builtins.float", ("builtins", "ValueError")),
    ("decimal.Decimal", ("decimal", "InvalidOperation")),
    ("subprocess.", ("subprocess", "SubprocessError")),
    ("smtplib.", ("smtplib", "SMTPException")),
    ("redis.", ("redis", "RedisError")),
    ("sqlite3.", ("sqlite3", "Error")),
    ("psycopg2.", ("psycopg2", "Error")),
    ("stripe.", ("stripe", "StripeError")),
)
# Methods that tell which client library is at work even on an unknown receiver.
_HTTP_METHODS = frozenset({"get", "post", "put", "patch", "delete", "head", "request", "send", "raise_for_status"})


def expected_exceptions(try_node: TryNode | cst.With, context: UnitContext) -> list[str]:
    """Exception types the body's calls document (of a try, or a `with suppress(...)`),
    spelled as this file can name them."""
    imports = context.summary.imports
    found: list[str] = []

    def add(module: str, attribute: str) -> None:
        if module == "builtins":
            spelled = attribute
        else:
            alias = next((a for a, q in imports.items() if q == module), None)
            if alias is None:
                return  # not importable without adding an import; leave it to the developer
            spelled = f"{alias}.{attribute}"
        if spelled not in found:
            found.append(spelled)

    for node in walk_body(body_statements(try_node)):
        if not isinstance(node, cst.Call):
            continue
        qualified = context.qualify_call(node) or ""
        for prefix, (module, attribute) in _EXPECTED_BY_MODULE:
            if qualified.startswith(prefix):
                add(module, attribute)
                break
        else:
            if method_name(node) in _HTTP_METHODS and isinstance(node.func, cst.Attribute):
                for library, attribute in (("requests", "RequestException"), ("httpx", "HTTPError")):
                    if library in imports.values():
                        add(library, attribute)
    return found


def handler_fixes(facts: HandlerFacts, context: UnitContext) -> tuple[FixRequest, ...]:
    """Re-raise (always) and, when the try body documents what it expects, narrowing."""
    fixes = [FixRequest("reraise", "Re-raise after handling", facts.handler, {})]
    if facts.broad:
        types = expected_exceptions(facts.try_node, context)
        if types:
            title = f"Narrow the exception to {', '.join(f'`{t}`' for t in types)}"
            fixes.append(FixRequest("narrow", title, facts.handler, {"types": types}))
    return tuple(fixes)
