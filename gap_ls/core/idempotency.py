"""What is retried or redelivered, which side effects it repeats, and what makes them safe.

The idempotency rules (GAP3xx) read one function at a time. This module finds its
*repeated scopes* — a retry decorator's function (tenacity, backoff, retrying, stamina),
a retrying Celery/dramatiq task, a tenacity `Retrying` loop, a hand-written retry loop —
and its *at-least-once handlers* — a late-acknowledging task, a queue consumer, a webhook
view — and lists, in the order they run, the calls each makes: non-idempotent side
effects (HTTP POST/PATCH, payment and messaging SDK calls, inserts, e-mail, enqueueing),
with or without a key; other calls that can fail (and so trigger the retry); and dedup
guards. Calls to functions of the same module are followed (their effects are summarised
from each unit's text, cached by text, like the concurrency model's flow facts).

Everything works on the standard library's ``ast``; the catalogue is data, extendable from
``[tool.gap-ls]`` (`retry-decorators`, `side-effect-calls`, `key-names`). Nothing here knows
about libcst or LSP.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from gap_ls.core.source import MEMBER_HEADER
from gap_ls.core.summary import dotted

if TYPE_CHECKING:
    from gap_ls.core.summary import ModuleSummary

# -- the catalogue ---------------------------------------------------------------------------------

RETRY_DECORATORS = frozenset(
    {
        "tenacity.retry",
        "tenacity.asyncio.retry",
        "backoff.on_exception",
        "backoff.on_predicate",
        "retrying.retry",
        "stamina.retry",
        "retry.retry",
        "retry.api.retry",
        "dramatiq.actor",  # dramatiq retries every actor by default (max_retries=20)
    }
)
RETRY_LOOPS = frozenset(
    {"tenacity.Retrying", "tenacity.AsyncRetrying", "stamina.retry_context", "tenacity.asyncio.AsyncRetrying"}
)
IDEMPOTENT_DECORATORS = ("idempotent", "idempotent_function")  # AWS Lambda Powertools
HTTP_RETRY_POLICIES = frozenset(
    {
        "urllib3.Retry",
        "urllib3.util.Retry",
        "urllib3.util.retry.Retry",
        "requests.adapters.Retry",
        "requests.packages.urllib3.util.retry.Retry",
    }
)
KEY_ARGUMENTS = frozenset(
    {
        "idempotency_key",
        "idempotencyKey",
        "IdempotencyKey",
        "idempotency_token",
        "MessageDeduplicationId",
        "ClientToken",
        "ClientRequestToken",
        "dedup_key",
        "dedup_id",
        "deduplication_id",
        "request_id",
        "task_id",  # Celery apply_async: a stable id lets the worker side deduplicate
        "job_id",  # rq enqueue
    }
)
KEY_WORDS = ("idempoten", "dedup", "deduplication")
FRESH_KEY_CALLS = frozenset(
    {
        "uuid.uuid4", "uuid.uuid1", "time.time", "time.time_ns", "time.monotonic", "datetime.datetime.now",
        "datetime.datetime.utcnow", "datetime.now", "datetime.utcnow", "random.random", "random.randint",
        "random.getrandbits", "secrets.token_hex", "secrets.token_urlsafe", "os.urandom", "ulid.new", "ulid.ULID",
        "uuid6.uuid7", "uuid_utils.uuid7", "shortuuid.uuid", "nanoid.generate",
    }
)
# Libraries whose calls talk to another process (so they can fail and trigger a retry).
IO_MODULES = (
    "requests", "httpx", "aiohttp", "urllib3", "urllib.request", "http.client", "boto3", "botocore", "aioboto3",
    "stripe", "braintree", "smtplib", "redis", "aioredis", "psycopg2", "psycopg", "asyncpg", "pymongo", "motor",
    "kafka", "confluent_kafka", "aiokafka", "pika", "aio_pika", "kombu", "grpc", "socket", "twilio", "sendgrid",
    "google.cloud", "elasticsearch", "paramiko", "ftplib", "sqlite3", "pymysql", "MySQLdb", "sqlalchemy",
)
PAYMENT_MODULES = ("stripe", "braintree", "adyen", "Adyen", "square", "squareup", "paypalrestsdk", "razorpay", "mollie",
                   "checkout_sdk", "gocardless_pro")
PAYMENT_METHODS = frozenset(
    {"create", "capture", "confirm", "pay", "refund", "sale", "submit_for_settlement", "charge", "transfer", "payout",
     "finalize_invoice", "send_invoice", "create_refund", "credit"}
)
# `client.<resource>.create(...)` on an SDK client: the resources whose create moves money or sends.
PAYMENT_RESOURCES = frozenset(
    {"charges", "refunds", "payment_intents", "paymentintents", "payments", "transfers", "payouts", "invoices",
     "transactions", "orders", "subscriptions", "messages", "calls", "checkout_sessions", "sessions"}
)
MONEY_METHODS = frozenset({"charge", "capture", "refund", "sale", "payout", "submit_for_settlement"})
MESSAGE_METHODS = {
    "send_message": "SQS message",
    "send_message_batch": "SQS messages",
    "publish": "published message",
    "publish_batch": "published messages",
    "put_record": "Kinesis record",
    "put_records": "Kinesis records",
    "put_events": "EventBridge events",
    "start_execution": "Step Functions execution",
    "basic_publish": "AMQP message",
    "produce": "Kafka message",
    "send_task": "Celery task",
    "delay": "task",
    "apply_async": "task",
    "enqueue": "job",
    "enqueue_call": "job",
    "send_sms": "SMS",
}
EMAIL_FUNCTIONS = frozenset(
    {"django.core.mail.send_mail", "django.core.mail.send_mass_mail", "django.core.mail.mail_admins",
     "django.core.mail.mail_managers", "send_mail", "send_mass_mail", "send_templated_mail"}
)
EMAIL_METHODS = frozenset({"sendmail", "send_email", "send_raw_email", "send_templated_email", "send_mail"})
EMAIL_CONSTRUCTORS = ("EmailMessage", "EmailMultiAlternatives", "Mail", "Message")
INSERT_METHODS = frozenset({"bulk_create", "insert_one", "insert_many", "add", "add_all"})
UPSERT_WORDS = ("get_or_create", "update_or_create", "on_conflict", "upsert", "merge", "ignore_conflicts",
                "update_conflicts", "insert_or_ignore", "prefix_with")
SAFE_SQL = re.compile(r"ON\s+CONFLICT|ON\s+DUPLICATE|INSERT\s+IGNORE|INSERT\s+OR\s+(IGNORE|REPLACE)|\bMERGE\b|\bUPSERT\b",
                      re.IGNORECASE)
_SESSION = re.compile(r"(^|\.|_)(session|sess|db|uow)$", re.IGNORECASE)
_CLIENTISH = re.compile(
    r"client|session|http|api|conn|gateway|service|requests|httpx|aiohttp|stub|remote|upstream|transport|sdk|"
    r"sqs|sns|ses|s3|kinesis|dynamo|table|bucket|redis|cache|cursor|producer|channel|publisher|stripe|braintree|"
    r"mailer|smtp|smtp_server|server|queue|bus|broker|lambda|sfn|eventbridge|events|webhook|hook|mail|sg|postmark",
    re.IGNORECASE,
)
_IO_METHODS = frozenset(
    {"get", "post", "put", "patch", "delete", "head", "options", "request", "send", "fetch", "execute",
     "executemany", "commit", "flush", "query", "call", "invoke", "publish", "urlopen", "upload_file",
     "download_file", "put_object", "get_object", "scan", "put_item", "update_item", "delete_item", "get_item",
     "setex", "set", "hset", "incr", "receive_message", "delete_message", "save", "refresh_from_db", "update",
     "first", "one", "scalar", "scalars", "all", "count", "exists", "retrieve", "list", "modify", "fetchone",
     "fetchall", "json_request", "stream", "search", "index", "sendall", "recv", "connect", "login"}
)
_NOT_RECEIVERS = frozenset({"self", "cls", "super", "app", "router", "blueprint", "bp", "api_router", "dict", "os",
                            "json", "log", "logger", "logging", "re", "math", "str", "list", "set"})
_RETRY_ITER = re.compile(r"attempt|retr|tries|try|backoff|delay|wait|sleep|interval", re.IGNORECASE)
_GUARD_WORDS = re.compile(
    r"processed|seen|dedup|duplicate|idempot|handled|already|exists|status|state|sent|done|completed|fulfilled|"
    r"delivered|sismember|is_member|consumed|received|inbox",
    re.IGNORECASE,
)
_DUPLICATE_ERRORS = ("IntegrityError", "UniqueViolation", "DuplicateKeyError", "ConditionalCheckFailedException",
                     "UniqueViolationError")
_WEBHOOK_SIGNATURES = ("construct_event", "verify_signature", "verify_webhook", "verify_header", "validate_signature",
                       "compare_digest")
# Modules whose functions are never followed with jedi: libraries the catalogue already knows.
_KNOWN_LIBRARIES = frozenset({
    *IO_MODULES, *PAYMENT_MODULES, "celery", "tenacity", "backoff", "stamina", "retrying", "django", "flask",
    "fastapi", "starlette", "logging", "json", "os", "time", "uuid", "typing", "dataclasses", "datetime", "asyncio",
    "functools", "itertools", "collections", "re", "math", "random", "secrets",
})
_RECEIVE_CALLS = frozenset({"receive_message", "poll", "consume", "basic_get", "get_message", "receive_messages",
                            "pull", "fetch_messages"})
_ACK_CALLS = frozenset({"ack", "basic_ack", "delete_message", "commit", "acknowledge", "reject", "nack"})


@dataclass(frozen=True)
class Catalogue:
    """The built-in catalogue plus the project's additions (`[tool.gap-ls]`)."""

    retry_decorators: frozenset[str] = RETRY_DECORATORS
    side_effect_calls: tuple[str, ...] = ()
    key_names: frozenset[str] = KEY_ARGUMENTS

    @classmethod
    def extended(cls, retry_decorators: Iterable[str] = (), side_effect_calls: Iterable[str] = (),
                 key_names: Iterable[str] = ()) -> Catalogue:
        return cls(RETRY_DECORATORS | frozenset(retry_decorators), tuple(side_effect_calls),
                   KEY_ARGUMENTS | frozenset(key_names))

    def key(self) -> tuple:
        return (tuple(sorted(self.retry_decorators)), self.side_effect_calls, tuple(sorted(self.key_names)))


DEFAULT_CATALOGUE = Catalogue()

# -- facts -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """A non-idempotent side effect, as a call shows it."""

    kind: str  # "http", "payment", "message", "insert", "email", "enqueue"
    label: str  # "HTTP POST (`session.post`)"
    form: str  # how this library takes a key: "kwarg", "header", "sqs", "task_id", "" (none it accepts)
    keyed: bool
    fresh_key: tuple[int, int] | None = None  # where the key is made afresh in this scope (line, column)
    via: str = ""  # the function it happens in, when reached through a call
    resolved: str = ""  # for a function of another module: where jedi found it (`billing.charge` (billing.py:12))


@dataclass(frozen=True)
class Step:
    """One call of a repeated scope, in the order calls run."""

    line: int  # 1-based, in the text the scope was read from
    column: int  # code points
    end: tuple[int, int]
    callee: str  # as qualified as the module's imports allow
    effect: Effect | None = None
    fails: bool = False  # talks to another process (so it can fail and trigger the retry)
    guard: bool = False  # a dedup guard: later effects are safe
    retry_point: bool = False  # `self.retry(...)`: repeats everything before it


@dataclass(frozen=True)
class Scope:
    """A function, or part of one, that runs again after a failure or for a redelivered message."""

    kind: str  # "retry", "at-least-once"
    how: str  # "`@tenacity.retry`", "a hand-written retry loop", "a Celery task with `acks_late=True`"
    line: int  # where the retry/delivery mechanism is (decorator, loop), 1-based
    column: int
    function: str  # qualified name of the function holding the scope
    steps: tuple[Step, ...]
    guarded: bool = False  # a dedup decorator or guard covers the whole scope
    stable_ids: tuple[str, ...] = ()  # expressions a key can be derived from (order.id, self.request.id)
    celery_bound: bool = False


@dataclass(frozen=True)
class FunctionEffects:
    """What a function does, for callers in the same module: its effects and whether it does I/O."""

    effects: tuple[Effect, ...] = ()
    fails: bool = False
    calls: tuple[str, ...] = ()  # bare names and `self.x` it calls (followed by the model)


@dataclass(frozen=True)
class UnitEffects:
    functions: tuple[tuple[str, str | None, FunctionEffects], ...] = ()  # (qualname, class, effects)
    unkeyed_http: bool = False  # a POST/PATCH without a key anywhere in the unit


# -- reading calls ---------------------------------------------------------------------------------


def _callee(call: ast.Call) -> str | None:
    """`a.b.c` for `a.b.c(...)`; `Model.objects.filter().create` keeps the chain's names."""
    parts: list[str] = []
    node: ast.AST = call.func
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Await):
            node = node.value
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            return ".".join(reversed(parts))
        else:
            return ".".join(reversed(parts)) if parts else None


def _string(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    if isinstance(node, ast.Call) and node.args:  # text("INSERT ..."), sql.SQL("...")
        return _string(node.args[0])
    return None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


@dataclass
class CallReader:
    """Classifies the calls of one function against the module's imports."""

    summary: ModuleSummary
    catalogue: Catalogue
    assigned: dict[str, ast.expr] = field(default_factory=dict)  # local name -> value (keys, headers, SQL)
    repeated: set[str] | None = None  # names assigned inside the repeated scope (None: all of them)

    def qualify(self, name: str) -> str:
        return self.summary.qualify(name)

    def effect(self, call: ast.Call) -> Effect | None:
        raw = _callee(call)
        if raw is None:
            return None
        qualified = self.qualify(raw)
        receiver, _, method = qualified.rpartition(".")
        if method.endswith("_async") and method not in MESSAGE_METHODS:
            method = method.removesuffix("_async")  # stripe-python's `create_async`, ... (not `apply_async`)
        base = receiver.split(".")[-1] if receiver else ""
        if base in _NOT_RECEIVERS and receiver.split(".")[0] in ("self", "cls") and receiver.count(".") == 0:
            return None  # `self.post(...)`: a method of this class, followed as a call instead
        kind_label = self._kind(call, qualified, receiver, base, method)
        if kind_label is None:
            return None
        kind, label, form = kind_label
        keyed, fresh = self._key(call, form)
        return Effect(kind, label, form, keyed, fresh)

    def _kind(self, call: ast.Call, qualified: str, receiver: str, base: str, method: str) -> tuple[str, str, str] | None:
        root = qualified.split(".")[0]
        lowered = base.lower()
        for extra in self.catalogue.side_effect_calls:
            if qualified == extra or qualified.endswith("." + extra.lstrip(".")):
                return ("call", f"`{qualified}`", "kwarg")
        if method in UPSERT_WORDS or any(w in method for w in ("get_or_create", "update_or_create", "upsert")):
            return None
        if method in ("post", "patch") and receiver and base not in _NOT_RECEIVERS:
            return ("http", f"HTTP {method.upper()} (`{qualified}`)", "header")
        if method in ("request", "fetch", "urlopen") and receiver:
            verb = _string(call.args[0]) if call.args else _string(_keyword(call, "method"))
            if verb and verb.upper() in ("POST", "PATCH"):
                return ("http", f"HTTP {verb.upper()} (`{qualified}`)", "header")
            return None
        if root in PAYMENT_MODULES and method in PAYMENT_METHODS:
            return ("payment", f"`{qualified}`", "kwarg")
        if method == "create" and lowered in PAYMENT_RESOURCES and receiver.count(".") >= 1:
            kind = "message" if lowered in ("messages", "calls") else "payment"
            return (kind, f"`{qualified}`", "kwarg")
        if method in MONEY_METHODS and receiver and base not in _NOT_RECEIVERS and not receiver.startswith(("self", "cls")):
            return ("payment", f"`{qualified}`", "kwarg")
        if method in EMAIL_METHODS and receiver and base not in _NOT_RECEIVERS:
            return ("email", f"e-mail (`{qualified}`)", "")
        if qualified in EMAIL_FUNCTIONS or (not receiver and method in ("send_mail", "send_mass_mail")):
            return ("email", f"e-mail (`{qualified}`)", "")
        if method == "send" and isinstance(call.func, ast.Attribute):
            target = call.func.value
            if isinstance(target, ast.Call) and (_callee(target) or "").split(".")[-1] in EMAIL_CONSTRUCTORS:
                return ("email", "e-mail (`.send()`)", "")
            if receiver and re.search(r"mail|smtp|sendgrid|^sg$|postmark|email|producer|notifier|(^|_)ses(_|$)|mailer",
                                      lowered) and base not in _NOT_RECEIVERS:
                return ("enqueue" if "producer" in lowered else "email", f"`{qualified}`", "")
            if receiver and self._constructed_as(base, EMAIL_CONSTRUCTORS):
                return ("email", f"e-mail (`{qualified}`)", "")
        if method in MESSAGE_METHODS and receiver and base not in _NOT_RECEIVERS:
            if method in ("delay", "apply_async", "send_task", "enqueue", "enqueue_call"):
                return ("enqueue", f"{MESSAGE_METHODS[method]} enqueued (`{qualified}`)", "task_id")
            form = "sqs" if method in ("send_message", "send_message_batch", "publish", "publish_batch") else ""
            if method == "start_execution":
                form = "name"
            return ("message", f"{MESSAGE_METHODS[method]} (`{qualified}`)", form)
        if method == "invoke" and re.search(r"lambda", lowered):
            return ("message", f"Lambda invocation (`{qualified}`)", "")
        if method == "create" and ".objects" in "." + receiver:
            return ("insert", f"row insert (`{qualified}`)", "")
        if method in INSERT_METHODS:
            if method in ("add", "add_all"):
                if not _SESSION.search(receiver):
                    return None
            elif method == "bulk_create" and (_keyword(call, "ignore_conflicts") or _keyword(call, "update_conflicts")):
                return None
            return ("insert", f"row insert (`{qualified}`)", "")
        if method in ("execute", "executemany") and call.args:
            return self._sql_insert(call.args[0], qualified)
        return None

    def _sql_insert(self, statement: ast.expr, qualified: str) -> tuple[str, str, str] | None:
        text = _string(statement)
        if text is None and isinstance(statement, ast.Name) and statement.id in self.assigned:
            text = _string(self.assigned[statement.id])
        if text is not None:
            if re.match(r"\s*INSERT\b", text, re.IGNORECASE) and not SAFE_SQL.search(text):
                return ("insert", f"SQL INSERT (`{qualified}`)", "")
            return None
        if isinstance(statement, ast.Call):
            chain = _callee(statement) or ""
            names = chain.split(".")
            if names and self.qualify(names[0]) in ("sqlalchemy.insert", "sqlalchemy.sql.insert") or (
                names and names[0] == "insert"
            ):
                if not any(w in chain for w in UPSERT_WORDS):
                    return ("insert", f"SQL INSERT (`{qualified}`)", "")
        return None

    def _constructed_as(self, name: str, constructors: Sequence[str]) -> bool:
        value = self.assigned.get(name)
        return isinstance(value, ast.Call) and (_callee(value) or "").split(".")[-1] in constructors

    def _key(self, call: ast.Call, form: str) -> tuple[bool, tuple[int, int] | None]:
        """Whether the call carries a key, and where it was made afresh (if it was)."""
        key_values = [k.value for k in call.keywords if k.arg is not None and (
            k.arg in self.catalogue.key_names or any(w in k.arg.lower() for w in KEY_WORDS))]
        if form == "name":
            key_values += [k.value for k in call.keywords if k.arg == "name"]
        for k in call.keywords:
            if k.arg in ("headers", "extra_headers", "options", "stripe_options", "request_options", "opts"):
                key_values += self._key_in_mapping(k.value)
            if k.arg is None:  # **kwargs: a key may be inside; say keyed only if the dict shows one
                key_values += self._key_in_mapping(k.value)
        if not key_values:
            return False, None
        for value in key_values:
            fresh = self.fresh(value)
            if fresh is not None:
                return True, fresh
        return True, None

    def _key_in_mapping(self, node: ast.expr) -> list[ast.expr]:
        if isinstance(node, ast.Name) and node.id in self.assigned:
            node = self.assigned[node.id]
        if isinstance(node, ast.Call) and _callee(node) == "dict":
            return [k.value for k in node.keywords if k.arg and any(w in k.arg.lower() for w in KEY_WORDS)]
        if isinstance(node, ast.Dict):
            return [v for k, v in zip(node.keys, node.values)
                    if k is not None and any(w in (_string(k) or "").lower() for w in KEY_WORDS)]
        return []

    def fresh(self, value: ast.expr, depth: int = 0) -> tuple[int, int] | None:
        """Where ``value`` (or the local it names) makes a new random/time-based value."""
        if isinstance(value, ast.Name) and self._followed(value.id) and depth < 3:
            return self.fresh(self.assigned[value.id], depth + 1)
        for node in ast.walk(value):
            if isinstance(node, ast.Call):
                name = _callee(node)
                if name is not None and self.qualify(name) in FRESH_KEY_CALLS:
                    return (node.lineno, node.col_offset)
            if isinstance(node, ast.Name) and node is not value and self._followed(node.id) and depth < 3:
                found = self.fresh(self.assigned[node.id], depth + 1)
                if found is not None:
                    return found
        return None

    def _followed(self, name: str) -> bool:
        """A local whose value is made anew on every run of the scope."""
        return name in self.assigned and (self.repeated is None or name in self.repeated)

    def fails(self, call: ast.Call) -> bool:
        raw = _callee(call)
        if raw is None:
            return False
        qualified = self.qualify(raw)
        if any(qualified == m or qualified.startswith(m + ".") for m in IO_MODULES):
            return True
        receiver, _, method = qualified.rpartition(".")
        if ".objects." in "." + qualified + "." and method not in ("filter", "exclude", "all", "order_by",
                                                                   "select_related", "values"):
            return True
        root = receiver.split(".")[0] if receiver else ""
        made = self.summary.constructed.get(root) if root and root not in self.assigned else None
        if made is not None and any(self.qualify(made).startswith(m + ".") for m in IO_MODULES):
            return True  # `_crm = requests.Session()` at module level
        if method in _IO_METHODS and receiver and receiver.split(".")[0] not in ("json", "os", "re", "math", "dict"):
            base = receiver.split(".")[-1]
            return bool(_CLIENTISH.search(base)) or method in ("commit", "flush", "execute", "save", "urlopen", "publish")
        return False

    def guard(self, call: ast.Call) -> bool:
        raw = _callee(call) or ""
        method = raw.rpartition(".")[2]
        base = raw.rpartition(".")[0].split(".")[-1].lower()
        if method in ("get_or_create", "setnx", "set_if_absent", "add_if_absent", "claim", "acquire_once"):
            return True
        if method == "add" and re.search(r"cache|redis|memcache|seen|processed|dedup", base):
            return True
        if method == "set" and _is_true(_keyword(call, "nx")):
            return True
        if method == "put_item" and _keyword(call, "ConditionExpression") is not None:
            return True
        return False


# -- scopes ----------------------------------------------------------------------------------------

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


class ScopeFinder:
    """The repeated scopes of one function and the ordered calls in each."""

    def __init__(self, summary: ModuleSummary, catalogue: Catalogue = DEFAULT_CATALOGUE,
                 read: Callable[[tuple], object] | None = None,
                 external: Callable[[ast.Call], tuple[str, str, FunctionEffects] | None] | None = None) -> None:
        self.summary = summary
        self.catalogue = catalogue
        # Follows an imported name into another module of the workspace (jedi): (qualified name,
        # where it was found, what it does).
        self.external = external
        # How summary facts are read (a unit's analysis records them as its dependencies).
        self.read = read or summary.fact

    # -- where a function is repeated -----------------------------------------------------------
    def scopes(self, function: FunctionNode, qualname: str, class_name: str | None) -> list[Scope]:
        found: list[Scope] = []
        decorated = self._decorator_scope(function)
        body = list(function.body)
        if decorated is not None:
            kind, how, node, bound = decorated
            found.append(self._scope(kind, how, node, function, qualname, class_name, body, bound))
        for loop, statements, how in self._retry_loops(body):
            found.append(self._scope("retry", how, loop, function, qualname, class_name, statements, False))
        if decorated is None or decorated[0] != "retry":
            handler = self._handler_kind(function, qualname)
            if handler is not None and not any(s.kind == "at-least-once" for s in found):
                found.append(self._scope("at-least-once", handler, function, function, qualname, class_name, body,
                                         False))
        return found

    def _decorator_scope(self, function: FunctionNode) -> tuple[str, str, ast.AST, bool] | None:
        imports_celery = any(v.split(".")[0] == "celery" for v in self.summary.imports.values())
        for decorator in function.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            name = dotted(call.func if call is not None else decorator)
            if name is None:
                continue
            qualified = self.qualify(name)
            if qualified in self.catalogue.retry_decorators:
                retries = _keyword(call, "max_retries") if call is not None else None
                if isinstance(retries, ast.Constant) and retries.value == 0:
                    continue  # `@dramatiq.actor(max_retries=0)`: never retried
                return ("retry", f"`@{qualified}`", decorator, False)
            if imports_celery and (qualified.endswith((".task", "shared_task")) or qualified == "task"):
                bound = call is not None and _is_true(_keyword(call, "bind"))
                options = {k.arg for k in call.keywords} if call is not None else set()
                retries = _calls_method(function, "retry") and bound
                if "autoretry_for" in options or retries:
                    what = "`autoretry_for`" if "autoretry_for" in options else "`self.retry`"
                    return ("retry", f"a Celery task retried by {what}", decorator, bound)
                if call is not None and (_is_true(_keyword(call, "acks_late"))
                                         or _is_true(_keyword(call, "reject_on_worker_lost"))):
                    return ("at-least-once", "a Celery task with `acks_late=True` (redelivered after a crash)",
                            decorator, bound)
        return None

    def _handler_kind(self, function: FunctionNode, qualname: str) -> str | None:
        """How a function receives messages that may arrive more than once, if it does."""
        params = [a.arg for a in function.args.args]
        calls = [_callee(c) or "" for c in calls_in(function.body, handlers=True)]
        methods = {c.rpartition(".")[2] for c in calls}
        if self._is_webhook_receiver(function, qualname, params, methods):
            return "a webhook handler (providers re-send until they get a 2xx)"
        receiving = {c.rpartition(".")[2] for c in calls
                     if not re.search(r"producer|publisher", c.rpartition(".")[0], re.IGNORECASE)}
        if receiving & _RECEIVE_CALLS:
            return "a queue consumer (delivery is at least once)"
        for loop in _loops(function.body):
            if isinstance(loop, (ast.For, ast.AsyncFor)):
                iterated = ast.unparse(loop.iter)
                if re.search(r"consumer|subscription|\bstream\b|messages|Records", iterated):
                    return "a queue consumer (delivery is at least once)"
        if [p.lower() for p in params[-4:]] in (["ch", "method", "properties", "body"],
                                                ["channel", "method", "properties", "body"],
                                                ["ch", "method", "props", "body"]):
            return "a message callback (delivery is at least once)"
        if len(params) >= 2 and params[-2:] == ["body", "message"] and "ack" in methods:
            return "a message callback (delivery is at least once)"
        return None

    @staticmethod
    def _is_webhook_receiver(function: FunctionNode, qualname: str, params: list[str], methods: set[str]) -> bool:
        """A view that receives a provider's webhook: named or routed as one, or checking its signature."""
        name = function.name.lower()
        if re.match(r"(send|post|deliver|dispatch|fire|notify|emit|publish|call|trigger|forward|register)_", name):
            return False  # sends webhooks to others
        if methods & set(_WEBHOOK_SIGNATURES) and params:
            return True
        routed = any("webhook" in (_string(d.args[0]) or "").lower()
                     for d in function.decorator_list if isinstance(d, ast.Call) and d.args)
        if routed:
            return True
        owner = qualname.rpartition(".")[0].lower()
        is_view = bool(function.decorator_list) or "request" in params or "req" in params
        if "webhook" in name and is_view:
            return True
        return "webhook" in owner and name in ("post", "put", "patch", "dispatch", "handle", "create", "__call__",
                                                "receive")

    def _retry_loops(self, body: Sequence[ast.stmt]) -> Iterator[tuple[ast.AST, list[ast.stmt], str]]:
        for loop in _loops(body):
            if isinstance(loop, (ast.For, ast.AsyncFor)):
                iterator = loop.iter.func if isinstance(loop.iter, ast.Call) else loop.iter
                name = dotted(iterator)
                if name is not None and self.qualify(name) in RETRY_LOOPS:
                    inner = [s for stmt in loop.body if isinstance(stmt, (ast.With, ast.AsyncWith)) for s in stmt.body]
                    yield loop, inner or list(loop.body), f"a `{self.qualify(name)}` loop"
                    continue
            statements = _hand_written_retry(loop)
            if statements is not None:
                yield loop, statements, "a hand-written retry loop"

    def _scope(self, kind: str, how: str, node: ast.AST, function: FunctionNode, qualname: str,
               class_name: str | None, statements: list[ast.stmt], bound: bool) -> Scope:
        reader = CallReader(self.summary, self.catalogue)
        _collect_assignments(function.body, reader.assigned)
        repeated: dict[str, ast.expr] = {}
        _collect_assignments(statements, repeated)
        _collect_assignments(statements, reader.assigned)  # the scope's own value wins
        reader.repeated = set(repeated)
        steps = tuple(self._steps(statements, reader, qualname, class_name))
        guarded = any(self._decorator_is(d, IDEMPOTENT_DECORATORS) for d in function.decorator_list)
        line, column = getattr(node, "lineno", function.lineno), getattr(node, "col_offset", function.col_offset)
        return Scope(kind, how, line, column, qualname, steps, guarded, _stable_ids(function, bound), bound)

    def _decorator_is(self, decorator: ast.expr, names: Sequence[str]) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = dotted(target) or ""
        return name.split(".")[-1] in names

    # -- what the scope does, in order ------------------------------------------------------
    def _steps(self, statements: Sequence[ast.stmt], reader: CallReader, qualname: str,
               class_name: str | None) -> Iterator[Step]:
        guards = _guarding_statements(statements)
        ordered = sorted(calls_in(statements), key=lambda c: (c.end_lineno or 0, c.end_col_offset or 0))
        guard_calls = {id(c) for g in guards for c in calls_in([g])}
        steps = [self._step(call, reader, qualname, class_name, id(call) in guard_calls) for call in ordered]
        # A client that performs an effect here talks to another process: its other calls can fail too.
        clients = {s.callee.rpartition(".")[0] for s in steps if s.effect is not None and not s.effect.via}
        clients.discard("")
        for step in steps:
            receiver, _, method = step.callee.rpartition(".")
            if not step.fails and receiver in clients and method in _IO_METHODS:
                step = replace(step, fails=True)
            yield step

    def _step(self, call: ast.Call, reader: CallReader, qualname: str, class_name: str | None, in_guard: bool) -> Step:
        raw = _callee(call) or ""
        callee = self.qualify(raw)
        position = dict(line=call.lineno, column=call.col_offset, end=(call.end_lineno or 0, call.end_col_offset or 0),
                        callee=callee)
        if in_guard or reader.guard(call):
            return Step(**position, guard=True)
        if raw.rpartition(".")[2] == "retry" and raw.split(".")[0] in ("self", "task"):
            return Step(**position, retry_point=True)
        effect = reader.effect(call)
        if effect is not None:
            return Step(**position, effect=effect, fails=True)
        local = self._local(raw, qualname, class_name)
        resolved = ""
        if local is None and self.external is not None and self._imported(raw) and not reader.fails(call):
            found = self.external(call)
            if found is not None:
                name, resolved, effects = found
                local = (name, effects)
        if local is not None:
            name, effects = local
            unkeyed = [e for e in effects.effects if not e.keyed or e.fresh_key]
            chosen = unkeyed[0] if unkeyed else (effects.effects[0] if effects.effects else None)
            if chosen is not None:
                via = name if resolved else chosen.via or name
                fresh = chosen.fresh_key and (call.lineno, call.col_offset)
                keyed = chosen.keyed
                passed, passed_fresh = reader._key(call, "kwarg")  # `self._post(..., idempotency_key=uuid4())`
                if passed:
                    keyed, fresh = True, passed_fresh or fresh
                return Step(**position, effect=Effect(chosen.kind, chosen.label, chosen.form, keyed, fresh, via,
                                                      resolved or chosen.resolved), fails=True)
            return Step(**position, fails=effects.fails)
        return Step(**position, fails=reader.fails(call))

    def _imported(self, raw: str) -> bool:
        """A name imported from a module that is not a known library (so it may be the workspace's)."""
        root = raw.split(".")[0]
        target = self.summary.imports.get(root)
        if target is None:
            return False
        top = target.split(".")[0]
        return top not in _KNOWN_LIBRARIES

    def _local(self, raw: str, qualname: str, class_name: str | None) -> tuple[str, FunctionEffects] | None:
        if not raw or ("." in raw and not raw.startswith(("self.", "cls."))):
            return None
        for candidate in self.summary.candidates(raw, qualname, class_name):
            self.read(("function", candidate))
        info = self.summary.resolve_function(raw, qualname, class_name)
        if info is None or info.qualname == qualname:
            return None
        effects = self.read(("effects", info.qualname, self.catalogue))
        assert isinstance(effects, FunctionEffects)
        return info.qualname, effects

    def qualify(self, name: str) -> str:
        return self.summary.qualify(name)


def _calls_method(function: FunctionNode, method: str) -> bool:
    return any((_callee(c) or "").split(".")[-1] == method and (_callee(c) or "").startswith("self.")
               for c in calls_in(function.body, handlers=True))


# Things one operation is about: a key derived from their id names that operation (a customer or
# user id would not: it would merge every payment of that customer into one).
_OPERATION_NOUNS = ("order", "payment", "invoice", "charge", "refund", "transfer", "payout", "event", "message",
                    "booking", "reservation", "shipment", "job", "request", "operation", "transaction", "checkout",
                    "delivery", "notification", "batch", "submission")


def _stable_ids(function: FunctionNode, bound: bool) -> tuple[str, ...]:
    """Expressions in scope that identify the logical operation (a key can be derived from them)."""
    found = ["self.request.id"] if bound else []
    for arg in [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]:
        name = arg.arg
        noun = name.removesuffix("_id").removesuffix("_uuid")
        if noun not in _OPERATION_NOUNS:
            continue
        if name != noun:
            found.append(name)
        elif name == "event":
            found.append("event['id']")
        else:
            found.append(f"{name}.id")
    return tuple(found)


def _collect_assignments(statements: Iterable[ast.stmt], into: dict[str, ast.expr]) -> None:
    for statement in _statements(statements):
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
            into[statement.targets[0].id] = statement.value
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and statement.value:
            into[statement.target.id] = statement.value


def _statements(statements: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement, nested blocks included, nested definitions excluded."""
    for statement in statements:
        yield statement
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for name in ("body", "orelse", "finalbody"):
            yield from _statements(getattr(statement, name, []) or [])
        for handler in getattr(statement, "handlers", []) or []:
            yield from _statements(handler.body)
        for case in getattr(statement, "cases", []) or []:
            yield from _statements(case.body)


def calls_in(statements: Iterable[ast.stmt], handlers: bool = False) -> Iterator[ast.Call]:
    """Calls in these statements, not in nested definitions and (unless asked) not in except handlers."""
    stack: list[ast.AST] = list(statements)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.ExceptHandler) and not handlers:
            continue
        if isinstance(node, ast.Call):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _loops(statements: Iterable[ast.stmt]) -> Iterator[ast.For | ast.AsyncFor | ast.While]:
    for statement in _statements(statements):
        if isinstance(statement, (ast.For, ast.AsyncFor, ast.While)):
            yield statement


def _exits(statements: Sequence[ast.stmt], words: tuple[type, ...]) -> bool:
    return any(isinstance(s, words) for s in _statements(statements))


def _counted_or_endless(test: ast.expr) -> bool:
    """`while True:` or a loop that counts attempts (`while attempt < 5`, `while tries:`)."""
    if isinstance(test, ast.Constant):
        return bool(test.value)
    return bool(_RETRY_ITER.search(ast.unparse(test)))


def _hand_written_retry(loop: ast.For | ast.AsyncFor | ast.While) -> list[ast.stmt] | None:
    """The repeated statements of a bounded/attempt loop whose try leaves on success and whose
    handler lets the loop go round again; None if this is not such a loop."""
    if isinstance(loop, (ast.For, ast.AsyncFor)):
        target = ast.unparse(loop.target)
        iterator = loop.iter
        ranged = isinstance(iterator, ast.Call) and dotted(iterator.func) == "range" and not any(
            isinstance(n, ast.Call) and dotted(n.func) == "len" for n in ast.walk(iterator))
        if not (_RETRY_ITER.search(target) or (ranged and target in ("_", "i", "n", "attempt"))
                or _RETRY_ITER.search(ast.unparse(iterator))):
            return None
    elif not _counted_or_endless(loop.test):
        return None  # `while self.running:`: a service loop that recovers, not a retry
    tries = [s for s in loop.body if isinstance(s, ast.Try)]
    for attempt in tries:
        leaves = _exits([*attempt.body, *attempt.orelse], (ast.Return, ast.Break))
        if not leaves:
            continue
        goes_round = any(not h.body or not isinstance(h.body[-1], (ast.Raise, ast.Return, ast.Break))
                         for h in attempt.handlers)
        if goes_round:
            before = loop.body[: loop.body.index(attempt)]
            return [*before, *attempt.body, *attempt.orelse]
    return None


def _guarding_statements(statements: Sequence[ast.stmt]) -> list[ast.stmt]:
    """Statements that act as a dedup guard: an early exit on an "already processed?" lookup,
    or a unique insert whose duplicate error means "done already"."""
    found = []
    for statement in _statements(statements):
        if isinstance(statement, ast.If) and statement.body and isinstance(
            statement.body[-1], (ast.Return, ast.Continue, ast.Raise, ast.Break)
        ):
            test = ast.unparse(statement.test)
            if any(isinstance(n, ast.Call) for n in ast.walk(statement.test)) and _GUARD_WORDS.search(test) or _GUARD_WORDS.search(test) and re.search(r"\.(status|state)\b|processed|sent|done", test):
                found.append(statement)
        if isinstance(statement, ast.Try) and any(
            any(error in ast.unparse(h.type) for error in _DUPLICATE_ERRORS) for h in statement.handlers if h.type
        ):
            found.append(statement)
    return found


# -- the module's functions, for callers -------------------------------------------------------------


def unit_effects(class_path: tuple[str, ...], text: str, summary: ModuleSummary,
                 catalogue: Catalogue = DEFAULT_CATALOGUE, statements: Sequence[ast.stmt] | None = None) -> UnitEffects:
    """What the functions of one unit do; ``statements``: the unit already parsed (the cut's)."""
    if statements is None:
        try:
            tree = ast.parse(MEMBER_HEADER + text if class_path else text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return UnitEffects()  # the document reports it (GAP000)
        statements = tree.body[0].body if class_path and tree.body and isinstance(tree.body[0], ast.ClassDef) else tree.body
    functions: list[tuple[str, str | None, FunctionEffects]] = []
    prefix = ".".join(class_path)
    unkeyed_http = False
    for function, qualname, class_name in functions_of(statements, prefix, prefix or None):
        reader = CallReader(summary, catalogue)
        _collect_assignments(function.body, reader.assigned)
        effects, fails, calls = [], False, []
        for call in calls_in(function.body, handlers=True):
            effect = reader.effect(call)
            if effect is not None:
                effects.append(effect)
                unkeyed_http |= effect.kind == "http" and not effect.keyed
                continue
            raw = _callee(call) or ""
            if raw and ("." not in raw or raw.startswith(("self.", "cls."))):
                calls.append(raw)
            fails |= reader.fails(call)
        if any((dotted(d.func if isinstance(d, ast.Call) else d) or "").split(".")[-1] in IDEMPOTENT_DECORATORS
               for d in function.decorator_list):
            effects, calls = [], []  # Powertools records and replays its result: safe to call again
        functions.append((qualname, class_name, FunctionEffects(tuple(effects), fails or bool(effects), tuple(calls))))
    reader = CallReader(summary, catalogue)
    top_level = [s for s in statements if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    unkeyed_http |= any((e := reader.effect(c)) is not None and e.kind == "http" and not e.keyed
                        for c in calls_in(top_level))
    return UnitEffects(tuple(functions), unkeyed_http)


def functions_of(statements: Sequence[ast.stmt], prefix: str, class_name: str | None
               ) -> Iterator[tuple[FunctionNode, str, str | None]]:
    for statement in statements:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            qualname = f"{prefix}.{statement.name}" if prefix else statement.name
            yield statement, qualname, class_name
            yield from functions_of(statement.body, qualname, class_name)
        elif isinstance(statement, ast.ClassDef):
            qualname = f"{prefix}.{statement.name}" if prefix else statement.name
            yield from functions_of(statement.body, qualname, qualname)


class EffectModel:
    """Each function's effects in this module, its callees' included (two calls deep)."""

    def __init__(self, summary: ModuleSummary, units: Sequence[UnitEffects]) -> None:
        self.summary = summary
        self.direct: dict[str, tuple[str | None, FunctionEffects]] = {}
        for unit in units:
            for qualname, class_name, effects in unit.functions:
                self.direct[qualname] = (class_name, effects)
        self.unkeyed_http = any(u.unkeyed_http for u in units)
        self._memo: dict[str, FunctionEffects] = {}

    def of(self, qualname: str, depth: int = 0) -> FunctionEffects:
        if qualname in self._memo:
            return self._memo[qualname]
        class_name, own = self.direct.get(qualname, (None, FunctionEffects()))
        effects, fails = list(own.effects), own.fails
        if depth < 2:
            for raw in own.calls:
                info = self.summary.resolve_function(raw, qualname, class_name)
                if info is None or info.qualname == qualname:
                    continue
                callee = self.of(info.qualname, depth + 1)
                effects += [e if e.via else Effect(e.kind, e.label, e.form, e.keyed, e.fresh_key, info.qualname)
                            for e in callee.effects]
                fails |= callee.fails
        result = FunctionEffects(tuple(effects), fails, own.calls)
        if depth == 0:
            self._memo[qualname] = result
        return result


# -- GAP303: urllib3 retry policies ----------------------------------------------------------------


def unsafe_retry_policy(call: ast.Call, summary: ModuleSummary) -> str | None:
    """For a `Retry(...)` that may re-send POST/PATCH on read or status errors: what it allows."""
    name = dotted(call.func)
    if name is None or summary.qualify(name) not in HTTP_RETRY_POLICIES:
        return None
    allowed = _keyword(call, "allowed_methods")
    option = "allowed_methods"
    if allowed is None:
        allowed, option = _keyword(call, "method_whitelist"), "method_whitelist"
    if allowed is None:
        return None
    if isinstance(allowed, ast.Constant) and allowed.value in (None, False):
        verdict = f"`{option}={allowed.value}` retries every method, POST and PATCH included"
    else:
        methods = {(_string(n) or "").upper() for n in ast.walk(allowed) if isinstance(n, ast.Constant)}
        unsafe = sorted(methods & {"POST", "PATCH"})
        if not unsafe:
            return None
        verdict = f"`{option}` includes {' and '.join(unsafe)}"
    total = _keyword(call, "total")
    if call.args and total is None:
        total = call.args[0]
    if isinstance(total, ast.Constant) and total.value in (0, False):
        return None
    read, status = _keyword(call, "read"), _keyword(call, "status")
    if all(isinstance(v, ast.Constant) and v.value in (0, False) for v in (read, status)):
        return None  # connect errors only: the request never reached the server
    return verdict
