"""GAP106 operational-error-to-success."""

from __future__ import annotations

import re

import libcst as cst

from gap_ls.core.model import Family
from gap_ls.core.nodes import body_statements, dotted_name, method_name, receiver, walk_body
from gap_ls.core.rule import FixRequest
from gap_ls.core.summary import ModuleSummary, UnitFacts
from gap_ls.rules.errors.handlers import (
    CAN_DEFAULT,
    Handler,
    HandlerRule,
    Shape,
    classify,
    default_is_contract,
    handler_facts,
    open_handlers,
    success_default,
)

# Exceptions that mean "an operation on the outside world failed" (I/O, network,
# database, remote API), by qualified name or by module prefix.
OPERATIONAL_EXACT = frozenset(
    {
        "builtins.OSError",
        "builtins.IOError",
        "builtins.EnvironmentError",
        "builtins.ConnectionError",
        "builtins.ConnectionRefusedError",
        "builtins.ConnectionResetError",
        "builtins.ConnectionAbortedError",
        "builtins.BrokenPipeError",
        "builtins.TimeoutError",
        "builtins.PermissionError",
        "builtins.InterruptedError",
        "builtins.BlockingIOError",
        "socket.timeout",
        "socket.error",
        "socket.gaierror",
        "socket.herror",
        "ssl.SSLError",
        "asyncio.TimeoutError",
        "asyncio.exceptions.TimeoutError",
        "concurrent.futures.TimeoutError",
        "subprocess.CalledProcessError",
        "subprocess.SubprocessError",
        "subprocess.TimeoutExpired",
        "decimal.InvalidOperation",
        "grpc.RpcError",
        "http.client.HTTPException",
    }
)
OPERATIONAL_MODULES = (
    "requests.",
    "httpx.",
    "aiohttp.",
    "urllib3.",
    "urllib.error.",
    "redis.",
    "aioredis.",
    "psycopg2.",
    "psycopg.",
    "asyncpg.",
    "pymysql.",
    "MySQLdb.",
    "sqlite3.",
    "sqlalchemy.exc.",
    "sqlalchemy.",
    "django.db.",
    "pymongo.errors.",
    "pymongo.",
    "motor.",
    "botocore.exceptions.",
    "boto3.exceptions.",
    "botocore.",
    "google.api_core.exceptions.",
    "grpc.",
    "smtplib.",
    "ftplib.",
    "paramiko.",
    "stripe.error.",
    "stripe.",
    "braintree.exceptions.",
    "kafka.errors.",
    "confluent_kafka.",
    "pika.exceptions.",
    "kombu.exceptions.",
    "elasticsearch.",
    "openai.",
)
# Operational types whose "absence" meaning makes a default a legitimate answer.
ABSENCE = frozenset(
    {
        "builtins.FileNotFoundError",
        "builtins.NotADirectoryError",
        "builtins.IsADirectoryError",
        "builtins.ProcessLookupError",
        "builtins.ChildProcessError",
        "builtins.FileExistsError",
    }
)
# Exception names that are validation or lookup errors even inside operational libraries.
_NOT_OPERATIONAL_NAME = re.compile(
    r"NotFound|DoesNotExist|NoSuch|Invalid|Validation|JSONDecode|MultipleObjects|Unknown\w*Error$|Missing\w*Error$"
)
_CACHE_NAME = re.compile(r"cache|redis|memcache", re.IGNORECASE)
_READ_METHODS = frozenset({"get", "mget", "hget", "hgetall", "get_many", "exists", "ttl", "smembers", "lrange", "zrange"})


def is_operational(qualified: str) -> bool:
    if qualified in OPERATIONAL_EXACT:
        return True
    if qualified in ABSENCE or _NOT_OPERATIONAL_NAME.search(qualified.rsplit(".", 1)[-1]):
        return False
    return qualified.startswith(OPERATIONAL_MODULES)


class OperationalErrorToSuccess(HandlerRule):
    """
    ## What it does
    Flags a *narrow* handler for an operational failure — the `OSError` family,
    `requests`/`httpx`/`aiohttp`/`urllib3` errors, Redis, DB-API and ORM errors,
    boto `ClientError`, gRPC, SMTP, payment SDK errors, `decimal.InvalidOperation`
    in money code — that returns a success-shaped default (`None`, `{}`, `[]`,
    `0`, `False`, `""`, `True`) or substitutes one for the result.

    ## Why is this bad?
    The handler is narrow, so it looks deliberate, and ruff and pylint accept
    it. But it converts "the payment API is down" or "the database refused the
    connection" into "no results": the caller renders an empty page, skips a
    refund, or caches the empty answer. An outage becomes silent data loss.

    ## What gap-ls cannot verify
    - Whether callers outside this file distinguish the default from a real
      empty result.
    - Whether degrading here is a product decision (an optional recommendation
      widget) rather than a hidden outage.

    ## Example
    ```python
    def fetch_customer(customer_id):
        try:
            resp = session.get(f"{API}/customers/{customer_id}", timeout=5)
            resp.raise_for_status()
            return resp.json()
        except requests.RequestException as exc:
            logger.error("customer lookup failed: %s", exc)
            return None
    ```

    ## Use instead
    ```python
    def fetch_customer(customer_id):
        try:
            resp = session.get(f"{API}/customers/{customer_id}", timeout=5)
        except requests.RequestException as exc:
            raise CustomerServiceUnavailable(customer_id) from exc
        if resp.status_code == 404:
            return None  # "not found" is a real answer; an outage is not
        resp.raise_for_status()
        return resp.json()
    ```

    ## Fix
    *Re-raise after handling* (keeps the log line). A `TODO(gap-ls)` asks
    whether a domain error (`raise ServiceUnavailable(...) from exc`) fits
    better.

    ## Options
    Not reported for absence errors (`FileNotFoundError`…), for defaults
    chosen after inspecting the error (`if exc.response.status_code == 404:
    return None`), for predicates returning a boolean, for functions whose name
    makes the fallback their contract (`try_*`, `*_or_none`…), and for cache
    reads treated as a miss.
    """

    code = "GAP106"
    flagged_ends = CAN_DEFAULT
    name = "operational-error-to-success"
    family = Family.SWALLOWED_ERROR
    title = "Operational failure turned into a success-shaped result"

    @classmethod
    def relevant(cls, facts: UnitFacts | None, summary: ModuleSummary, found: tuple[str, ...] = ()) -> bool:
        return facts is None or any(
            "?" in h.types or any(is_operational(summary.qualify(t)) for t in h.types) for h in open_handlers(facts, cls.flagged_ends)
        )

    def check_handler(self, handler: Handler) -> None:
        context = self.context
        facts = handler_facts(handler, context)
        if facts.broad:
            return
        operational = [name for name in facts.caught if is_operational(name)]
        if not operational or classify(facts, context) is not Shape.DEFAULT:
            return
        default = success_default(facts, context)
        assert default is not None, "Shape.DEFAULT implies a default"
        if default_is_contract(facts, default, context) or _only_probes_filesystem(facts.try_node):
            return
        if self._is_cache_read(facts.try_node, context.enclosing_function(handler)):
            return
        shown = default.shown
        self.report(
            handler,
            f"`except {operational[0].removeprefix('builtins.')}` {default.outcome}: an outage looks like an empty result",
            checked=(
                f"catches {', '.join(n.removeprefix('builtins.') for n in operational)} (an operational failure)",
                facts.log_fact(),
                f"{default.how} `{default.value}`, a success-shaped value",
                "no raise and no explicit failure on that path",
            ),
            unverifiable=(
                f"whether callers distinguish `{shown}` from a real empty result",
                "whether degrading here is an intended product decision",
            ),
            related=((default.node, f"the default `{shown}` leaves here"),),
            fixes=(FixRequest("reraise", "Re-raise after handling", handler, {}),),
        )

    def _is_cache_read(self, try_node: cst.CSTNode, function: cst.FunctionDef | None) -> bool:
        """A failed cache read treated as a miss is the cache's contract."""
        if function is not None and _CACHE_NAME.search(function.name.value):
            return True
        calls = [n for n in walk_body(body_statements(try_node)) if isinstance(n, cst.Call)]
        reads = [c for c in calls if method_name(c) in _READ_METHODS and _CACHE_NAME.search(dotted_name(receiver(c)) or "")]
        return bool(reads) and len(reads) == len([c for c in calls if method_name(c) not in {"loads", "decode"}])


# Filesystem metadata probes: an OSError here answers "is it there / can I see it".
_PROBES = frozenset(
    {
        "stat", "lstat", "exists", "is_file", "is_dir", "is_symlink", "isfile", "isdir", "islink", "lexists",
        "getmtime", "getsize", "getctime", "getatime", "scandir", "listdir", "iterdir", "getcwd", "confstr",
        "access", "readlink", "resolve", "samefile", "realpath", "expanduser", "Path", "str", "join", "sorted",
    }
)


def _only_probes_filesystem(try_node: cst.CSTNode) -> bool:
    calls = [n for n in walk_body(body_statements(try_node)) if isinstance(n, cst.Call)]
    return bool(calls) and all(method_name(c) in _PROBES for c in calls)
