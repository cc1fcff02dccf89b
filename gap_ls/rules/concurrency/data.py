"""Database rows and cache keys as the race rules read them (Django ORM, SQLAlchemy, Flask-
SQLAlchemy, Redis and Django's cache): loads, saves, creates, existence checks, cache reads
and writes, and the atomic forms that make them safe."""

from __future__ import annotations

import re
from dataclasses import dataclass

import libcst as cst

from gap_ls.core.nodes import dotted_name, keyword, method_name, receiver, walk
from gap_ls.rules.concurrency.shared import Scope, code

# Terminal calls of a query that fetch one row.
_DJANGO_ONE = frozenset({"get", "first", "last", "earliest", "latest"})
_SQLA_ONE = frozenset({"first", "one", "one_or_none", "scalar", "scalar_one", "scalar_one_or_none", "get",
                       "first_or_404", "get_or_404", "one_or_404"})
_QUERY_STEPS = frozenset({"filter", "filter_by", "exclude", "select_related", "prefetch_related", "only", "defer",
                          "order_by", "using", "where", "options", "annotate", "all", "join", "limit", "scalars",
                          "unique", "execution_options"})
LOCKING = frozenset({"select_for_update", "with_for_update", "with_lockmode"})
# Session methods that run a statement: `session.scalars(select(M)...)`, `db.scalar(...)`.
_SQLA_ENTRY = frozenset({"query", "scalars", "execute", "scalar"})
_PERSIST = frozenset({"save", "commit", "flush", "save_base"})
_UPSERT = re.compile(r"on_conflict_do_nothing|on_conflict_do_update|on_duplicate_key_update|ignore_conflicts|"
                     r"update_conflicts|prefix_with\(\s*['\"]OR IGNORE|\bmerge\(")
_CACHE_NAME = re.compile(r"(^|_)(cache|caches|redis|rdb|r|rc|redis_client|client|kv|store|conn)$", re.IGNORECASE)
_REDIS_FACTORIES = re.compile(r"(^|\.)(Redis|StrictRedis|from_url|RedisCluster|Sentinel|get_redis_connection)$")


@dataclass(frozen=True)
class Load:
    """`x = <query that fetches one row>`."""

    variable: str
    call: cst.Call
    statement: cst.CSTNode
    model: str | None
    orm: str  # "django" or "sqlalchemy"
    locked: bool


def row_load(value: cst.BaseExpression, scope: Scope) -> tuple[str | None, str, bool, cst.Call] | None:
    """(model, orm, locked, call) when ``value`` fetches one row (awaited or not)."""
    if isinstance(value, cst.Await):
        value = value.expression
    if not isinstance(value, cst.Call):
        return None
    chain = _chain(value)
    names = [name for name, _ in chain]
    locked = bool(LOCKING & set(names)) or _true_kw(value, "with_for_update")
    called = scope.context.qualify_call(value) or ""
    if called.endswith(("get_object_or_404", "get_or_404")) and value.args:
        return dotted_name(value.args[0].value), "django", locked, value
    terminal = method_name(value) or ""
    if "objects" in _attributes(value) or "_default_manager" in _attributes(value):
        if terminal in _DJANGO_ONE:
            return _root_name(value), "django", locked, value
        return None
    if terminal == "get_object" and dotted_name(receiver(value)) == "self":
        return None, "django", locked, value  # DRF GenericAPIView.get_object()
    if terminal not in _SQLA_ONE:
        return None
    if terminal == "get" and len(value.args) >= 2 and _is_model_name(value.args[0].value):
        return dotted_name(value.args[0].value), "sqlalchemy", locked, value  # session.get(Model, id)
    if "query" in _attributes(value) or any(name in _SQLA_ENTRY for name in names):
        return _sqla_model(value, scope), "sqlalchemy", locked or _statement_locked(value, scope), value
    return None


def loads(scope: Scope) -> list[Load]:
    found = []
    for node in scope.nodes:
        if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            load = row_load(node.value, scope)
            if load is not None:
                model, orm, locked, call = load
                found.append(Load(node.targets[0].target.value, call, node, model, orm, locked))
    return found


def is_persist(call: cst.Call, variable: str | None = None) -> bool:
    """`x.save(...)`, `session.commit()`, `db.session.flush()`..."""
    method = method_name(call)
    if method not in _PERSIST or not isinstance(call.func, cst.Attribute):
        return False
    if method in {"save", "save_base"}:
        return variable is None or dotted_name(call.func.value) == variable
    return True


def locks_rows_before(scope: Scope, node: cst.CSTNode) -> bool:
    """`select_for_update()` / `with_for_update()` anywhere earlier in the function."""
    limit = scope.index(node)
    return any(
        isinstance(n, cst.Call) and method_name(n) in LOCKING and scope.index(n) < limit for n in scope.nodes
    )


def has_upsert(scope: Scope) -> bool:
    return any(isinstance(n, cst.Call) and _UPSERT.search(code(n.func)) for n in scope.nodes) or any(
        isinstance(n, cst.Arg) and n.keyword is not None and n.keyword.value in {"ignore_conflicts", "update_conflicts"}
        for n in scope.nodes
    )


def query_model(expression: cst.BaseExpression, scope: Scope) -> tuple[str | None, str] | None:
    """(model, orm) when ``expression`` is a query: `M.objects.filter(...)`, `session.query(M)...`,
    `M.query.filter_by(...)`, `select(M)...`."""
    if not isinstance(expression, cst.Call):
        return None
    attributes = _attributes(expression)
    if "objects" in attributes or "_default_manager" in attributes:
        return _root_name(expression), "django"
    if "query" in attributes or any(name in _SQLA_ENTRY for name, _ in _chain(expression)):
        return _sqla_model(expression, scope), "sqlalchemy"
    return None


def created_model(call: cst.Call, scope: Scope) -> tuple[str | None, str] | None:
    """(model, orm) when ``call`` inserts a row: `M.objects.create(...)`, `M(...).save()`,
    `session.add(M(...))` / `session.add(obj)`, `bulk_create`, `insert(M)`."""
    method = method_name(call)
    attributes = _attributes(call)
    if method in {"create", "bulk_create"} and ("objects" in attributes or "_default_manager" in attributes):
        return _root_name(call), "django"
    if method == "save" and isinstance(call.func, cst.Attribute) and isinstance(call.func.value, cst.Call):
        inner = call.func.value
        if _is_model_name(inner.func):
            return dotted_name(inner.func), "django"
    if method in {"add", "add_all"} and call.args and isinstance(call.func, cst.Attribute):
        owner = dotted_name(call.func.value) or ""
        if "session" in owner.lower() or owner.endswith(("db", "s")):
            argument = call.args[0].value
            if isinstance(argument, cst.Call) and _is_model_name(argument.func):
                return dotted_name(argument.func), "sqlalchemy"
            return _constructed_model(argument, scope), "sqlalchemy"
    if (scope.context.qualify_call(call) or "").endswith(".insert") and call.args:
        return dotted_name(call.args[0].value), "sqlalchemy"
    return None


def _constructed_model(argument: cst.BaseExpression, scope: Scope) -> str | None:
    name = dotted_name(argument)
    for node in scope.nodes:
        if isinstance(node, cst.Assign) and len(node.targets) == 1 and dotted_name(node.targets[0].target) == name:
            if isinstance(node.value, cst.Call) and _is_model_name(node.value.func):
                return dotted_name(node.value.func)
    return None


# -- caches ------------------------------------------------------------------------------------


def cache_client(expression: cst.BaseExpression | None, scope: Scope) -> str | None:
    """The cache client ``expression`` names, as written, if it is one: Django's `cache` /
    `caches[...]`, a Redis client made at module level, or a name like `redis`, `r`, `rdb`."""
    if expression is None:
        return None
    name = dotted_name(expression)
    if name is None:
        if isinstance(expression, cst.Subscript) and dotted_name(expression.value) in {"caches", "cache.caches"}:
            return code(expression)
        return None
    qualified = scope.summary.qualify(name)
    if qualified.startswith(("django.core.cache", "flask_caching", "aiocache")):
        return name
    constructor = scope.summary.constructed.get(name)
    if constructor is not None and _REDIS_FACTORIES.search(scope.summary.qualify(constructor)):
        return name
    # Otherwise by name (`r`, `rdb`, `redis_client`, `self.cache`), in a module that imports a cache.
    return name if _CACHE_NAME.search(name.rpartition(".")[2]) and _imports_cache(scope) else None


def _imports_cache(scope: Scope) -> bool:
    roots = {q.split(".")[0] for q in scope.summary.imports.values()}
    return bool(roots & {"redis", "aioredis", "django", "flask_caching", "aiocache", "pymemcache", "memcache",
                         "django_redis", "valkey"})


def cache_call(node: cst.CSTNode, scope: Scope, methods: frozenset[str]) -> tuple[str, str, cst.Call] | None:
    """(client, key as written, call) for `client.<method>(key, ...)` (awaited or not)."""
    if isinstance(node, cst.Await):
        node = node.expression
    if not isinstance(node, cst.Call) or method_name(node) not in methods or not node.args:
        return None
    client = cache_client(receiver(node), scope)
    if client is None:
        return None
    key = code(node.args[0].value)
    if method_name(node) in {"hget", "hset", "hincrby"} and len(node.args) > 1:
        key = f"{key}, {code(node.args[1].value)}"
    return client, key, node


# -- small helpers ---------------------------------------------------------------------------------


def _chain(call: cst.Call) -> list[tuple[str, cst.Call]]:
    """The method calls of a chain, outermost first: `a.filter(x).first()` -> [first, filter]."""
    found = []
    node: cst.BaseExpression | None = call
    while node is not None:
        if isinstance(node, cst.Call):
            name = method_name(node)
            if name:
                found.append((name, node))
            node = node.func
        elif isinstance(node, cst.Attribute):
            node = node.value
        else:
            break
    return found


def _attributes(call: cst.Call) -> set[str]:
    names = set()
    node: cst.BaseExpression | None = call
    while node is not None:
        if isinstance(node, cst.Call):
            node = node.func
        elif isinstance(node, cst.Attribute):
            names.add(node.attr.value)
            node = node.value
        else:
            break
    return names


def _root_name(call: cst.Call) -> str | None:
    node: cst.BaseExpression | None = call
    while isinstance(node, (cst.Call, cst.Attribute)):
        node = node.func if isinstance(node, cst.Call) else node.value
    return node.value if isinstance(node, cst.Name) else None


def _sqla_model(call: cst.Call, scope: Scope) -> str | None:
    """The model of `session.query(M)...`, `M.query...`, `session.scalars(select(M)...)`, or of a
    statement built earlier into a local (`stmt = select(M)...`)."""
    for name, step in _chain(call):
        if name in {"query", "select"} and step.args and _is_model_name(step.args[0].value):
            return dotted_name(step.args[0].value)
        if name in {"scalars", "execute", "scalar"} and step.args:
            return _select_model(step.args[0].value, scope)
    if "query" in _attributes(call):
        return _root_name(call)
    return None


def _select_model(expression: cst.BaseExpression, scope: Scope) -> str | None:
    name = dotted_name(expression)
    if name is not None:
        expression = _local_value(name, scope) or expression
    for node in walk(expression):
        if isinstance(node, cst.Call) and (dotted_name(node.func) or "").endswith("select") and node.args:
            argument = dotted_name(node.args[0].value) or ""
            parts = argument.split(".")
            # `select(Model)`, or `select(Model.id)` (a column of it)
            model = next((p for p in reversed(parts) if p[:1].isupper()), None)
            if model is not None:
                return model
    return None


def _statement_locked(call: cst.Call, scope: Scope) -> bool:
    for name, step in _chain(call):
        if name in {"scalars", "execute", "scalar"} and step.args:
            statement = step.args[0].value
            local = _local_value(dotted_name(statement) or "", scope)
            for node in walk(local if local is not None else statement):
                if isinstance(node, cst.Call) and method_name(node) in LOCKING:
                    return True
    return False


def _local_value(name: str, scope: Scope) -> cst.BaseExpression | None:
    value = None
    for node in scope.nodes:
        if isinstance(node, cst.Assign) and len(node.targets) == 1 and dotted_name(node.targets[0].target) == name:
            value = node.value
    return value


def _is_model_name(node: cst.BaseExpression) -> bool:
    name = dotted_name(node)
    return name is not None and name.rpartition(".")[2][:1].isupper()


def _true_kw(call: cst.Call, name: str) -> bool:
    found = keyword(call, name)
    return found is not None and isinstance(found.value, cst.Name) and found.value.value == "True"
