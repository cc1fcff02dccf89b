"""GAP206 exists-then-create."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

from gap_ls.core.concurrency import imports_data_store
from gap_ls.core.flow import Exit, block_exits
from gap_ls.core.nodes import assigned_names, body_statements, dotted_name, keyword, method_name, walk
from gap_ls.core.rule import FixRequest
from gap_ls.core.summary import ModuleSummary, UnitFacts
from gap_ls.rules.concurrency.data import (
    cache_call,
    created_model,
    has_upsert,
    locks_rows_before,
    query_model,
    row_load,
)
from gap_ls.rules.concurrency.shared import FunctionRule, Scope, code, concurrent_requests, statement_of

_CREATE_WORDS = ("create", ".add(", ".set(", ".hset(", "insert", ".save(", "setex")
_CHECK_WORDS = (".exists(", "DoesNotExist", ".get(", ".first(", "count(", ".scalar", "one_or_none", ".hget(",
                "NoResultFound", "get_object", ".one(")
_EXISTS_TERMINALS = frozenset({"exists", "count", "first", "one_or_none", "scalar", "scalar_one_or_none", "get"})
_MISSING = ("DoesNotExist", "ObjectDoesNotExist", "NoResultFound")
_CACHE_READS = frozenset({"get", "hget", "exists"})
_CACHE_WRITES = frozenset({"set", "hset", "setex", "psetex"})


@dataclass(frozen=True)
class _Race:
    check: cst.CSTNode  # the existence check (or the read)
    act: cst.Call  # the create (or the write)
    what: str
    kind: str  # "row", "counter", "claim"
    fixes: tuple[FixRequest, ...]


class ExistsThenCreate(FunctionRule):
    """
    ## What it does
    Flags an existence check followed by a create, or a cache read followed by
    a write that depends on it, with nothing making them one atomic step:

    - rows: `if not Model.objects.filter(...).exists(): Model.objects.create(...)`,
      `try: Model.objects.get(...) except Model.DoesNotExist: Model.objects.create(...)`,
      a SQLAlchemy query for the row followed by `session.add(...)`;
    - cache and Redis counters: `n = cache.get(key)` ... `cache.set(key, n + 1)`;
    - cache and Redis locks or claims: `if cache.get(key): return` ...
      `cache.set(key, ...)`.

    Not flagged: `get_or_create` / `update_or_create`, an `IntegrityError`
    handler around the create (a unique constraint decides), upserts
    (`on_conflict_do_nothing`, `ignore_conflicts=True`), `select_for_update()`,
    `cache.add`, `set(..., nx=True)`, `incr`/`incrby`, `get_or_set`, Redis
    `WATCH`/`MULTI` transactions, and memoisation that stores a freshly
    computed value after a miss (no counter, no lock). The code must run where
    requests, tasks or workers overlap, as for GAP205.

    ## Why is this bad?
    Two requests both see "absent" and both create: a duplicate row (or an
    `IntegrityError` page if there is a unique constraint), two counters
    written from the same old value (one increment lost), or two workers that
    both believe they hold the lock.

    ## What gap-ls cannot verify
    - Whether the production schema has a unique constraint on the looked-up
      columns (migrations may live elsewhere) — with one, the race becomes an
      unhandled `IntegrityError` instead of a duplicate.
    - Whether the cache backend is shared between processes (local-memory
      caches are per process).

    ## Example
    ```python
    def add_to_wishlist(request, sku):
        if not WishlistItem.objects.filter(user=request.user, sku=sku).exists():
            WishlistItem.objects.create(user=request.user, sku=sku)
    ```

    ## Use instead
    ```python
        WishlistItem.objects.get_or_create(user=request.user, sku=sku)
    ```
    (backed by a unique constraint on `(user, sku)`); for counters `incr`, for
    locks `cache.add(key, ...)` / `set(key, ..., nx=True, ex=ttl)`.

    ## Fix
    *Use get_or_create* (Django), *Handle the duplicate* (`IntegrityError`
    around the create), *Use set(nx=True)* / `cache.add`, or *Use incr*.
    """

    code = "GAP206"
    name = "exists-then-create"
    title = "Existence check (or cache read) then create (or write), not one atomic step"
    triggers = (*_CREATE_WORDS, *_CHECK_WORDS)

    @classmethod
    def relevant(cls, facts: UnitFacts | None, summary: ModuleSummary, found: tuple[str, ...] = ()) -> bool:
        """A create (or write) word and a check (or read) word must both occur."""
        if facts is None:
            return True
        if not facts.functions or not imports_data_store(summary):
            return False
        return any(w in _CREATE_WORDS for w in found) and any(w in _CHECK_WORDS for w in found)

    def wants(self, function: cst.FunctionDef, qualname: str) -> bool:
        return concurrent_requests(self.context, qualname) is not None

    def check_function(self, scope: Scope) -> None:
        races = [*self._row_races(scope), *self._cache_races(scope)]
        if not races:
            return
        concurrent = self._concurrent(scope)
        if concurrent is None:
            return
        self._report(races[0], scope, concurrent)

    def _concurrent(self, scope: Scope) -> str | None:
        return concurrent_requests(self.context, scope.qualname)

    # -- rows -------------------------------------------------------------------------------------
    def _row_races(self, scope: Scope) -> Iterator[_Race]:
        if has_upsert(scope):
            return
        creates = [n for n in scope.nodes if isinstance(n, cst.Call) and created_model(n, scope) is not None]
        if not creates:
            return
        for create in creates:
            model, orm = created_model(create, scope)  # type: ignore[misc]
            if self._duplicate_handled(create, scope) or locks_rows_before(scope, create):
                continue
            check = self._existence_check(create, model, scope)
            if check is None:
                continue
            first = statement_of(scope, create)
            commit = next((n for n in scope.nodes if isinstance(n, cst.Call) and scope.index(n) > scope.index(create)
                           and method_name(n) in {"commit", "flush"}), None) if orm == "sqlalchemy" else None
            last = statement_of(scope, commit) if commit is not None and scope.block_of(statement_of(scope, commit)) == scope.block_of(first) else first
            fixes = [FixRequest("handle-duplicate", "Handle the duplicate (IntegrityError)", first, {"orm": orm},
                                nodes={"last": last})]
            get_or_create = self._get_or_create_fix(check, create, orm, scope)
            if get_or_create is not None:
                fixes.insert(0, get_or_create)
            yield _Race(check, create, f"`{code(create.func)}(...)` runs after checking that the row does not exist", "row",
                        tuple(fixes))
            return

    def _existence_check(self, create: cst.Call, model: str | None, scope: Scope) -> cst.CSTNode | None:
        """The check the create relies on: an `if` on an existence query of the same model, an
        `if` on a row fetched into a local, or a `try` whose "does not exist" handler creates."""
        for ancestor in scope.context.ancestors(create):
            if isinstance(ancestor, cst.ExceptHandler) and _catches_missing(ancestor):
                return ancestor
            if ancestor is scope.function:
                break
        fetched = self._fetched_rows(scope, create, model)
        for node in scope.nodes:
            if not isinstance(node, cst.If) or scope.index(node) > scope.index(create):
                continue
            if not (_queries(node.test, model, scope) or _tests_presence(node.test, fetched)):
                continue
            inside = any(n is create for n in walk(node.body))
            exits = not block_exits(body_statements(node)) & Exit.FALLTHROUGH
            if inside or (exits and not any(n is create for n in walk(node))):
                return node.test
        return None

    @staticmethod
    def _fetched_rows(scope: Scope, create: cst.Call, model: str | None) -> set[str]:
        """Locals holding a row of the created model (or an existence query) fetched earlier."""
        names = set()
        for node in scope.nodes:
            if isinstance(node, cst.Assign) and len(node.targets) == 1 and scope.index(node) < scope.index(create):
                load = row_load(node.value, scope)
                fetched_model = load[0] if load is not None else _existence_model(node.value, scope)
                if (load is not None or _is_existence_query(node.value, scope)) and fetched_model in (None, model):
                    names.update(assigned_names(node.targets[0].target))
        return names

    def _duplicate_handled(self, create: cst.Call, scope: Scope) -> bool:
        for ancestor in scope.context.ancestors(create):
            if isinstance(ancestor, cst.Try) and any(
                any((dotted_name(n) or "").endswith("IntegrityError") for n in walk(h.type) if isinstance(n, (cst.Name, cst.Attribute)))
                for h in ancestor.handlers if h.type is not None
            ):
                return True
            if ancestor is scope.function:
                break
        return False

    @staticmethod
    def _get_or_create_fix(check: cst.CSTNode, create: cst.Call, orm: str, scope: Scope) -> FixRequest | None:
        """Offered for a Django `create(...)` whose result is not used, after a `filter(...)` check
        with keyword lookups (they become get_or_create's lookup; the other fields its defaults)."""
        if orm != "django" or method_name(create) != "create" or not isinstance(check, cst.BaseExpression):
            return None
        if not isinstance(scope.context.parent(create), cst.Expr):
            return None  # `obj = ...create(...)`: get_or_create returns a pair
        lookup = next((n for n in walk(check) if isinstance(n, cst.Call) and method_name(n) == "filter"), None)
        if lookup is None or not lookup.args or any(a.keyword is None for a in lookup.args):
            return None
        return FixRequest("get-or-create", "Use get_or_create", create, {"lookup": [code(a) for a in lookup.args]})

    # -- caches -----------------------------------------------------------------------------------
    def _cache_races(self, scope: Scope) -> Iterator[_Race]:
        if any(isinstance(n, cst.Call) and method_name(n) in {"watch", "lock"} for n in scope.nodes):
            return  # WATCH/MULTI optimistic transaction, or a lock around it
        reads: dict[tuple[str, str], tuple[cst.CSTNode, set[str]]] = {}  # (client, key) -> (read, locals holding it)
        for node in scope.nodes:
            if isinstance(node, cst.Assign):
                self._follow_holders(node, reads)
            read = cache_call(node, scope, _CACHE_READS)
            if read is not None:
                client, key, call = read
                holders = self._holders(call, scope)
                reads.setdefault((client, key), (call, set()))[1].update(holders)
                continue
            write = cache_call(node, scope, _CACHE_WRITES)
            if write is None:
                continue
            client, key, call = write
            if (client, key) not in reads or _atomic_set(call):
                continue
            read_call, holders = reads[(client, key)]
            value = call.args[-1].value if method_name(call) in {"hset"} else (call.args[1].value if len(call.args) > 1 else None)
            if value is not None and _uses(value, holders):
                django = scope.summary.qualify(client).startswith("django.")
                what = f"`{code(read_call)}` is read, then `{code(call.func)}({key}, ...)` writes a value computed from it"
                yield _Race(read_call, call, what, "counter",
                            (FixRequest("use-incr", "Use incr", call, {"client": client, "django": django}),))
                return
            guard = self._exiting_guard(read_call, holders, call, scope)
            if guard is not None and not self._returns_cached(guard, read_call, holders, scope):
                django = scope.summary.qualify(client).startswith("django.")
                title = "Set only if absent (cache.add)" if django else "Set only if absent (nx=True)"
                guard_if = scope.context.parent(guard)
                what = f"`{code(read_call)}` is checked, then `{code(call.func)}({key}, ...)` takes the key as a lock or a claim"
                yield _Race(guard, call, what, "claim",
                            (FixRequest("set-if-absent", title, call, {"client": client, "django": django},
                                        nodes={"guard": guard_if}),))
                return

    @staticmethod
    def _follow_holders(assignment: cst.Assign, reads: dict) -> None:
        """Which locals hold (a value computed from) each read: `views = int(current or 0) + 1`
        adds `views`; `data = compute()` after `data = cache.get(k)` drops `data`."""
        names = {n for t in assignment.targets for n in assigned_names(t.target)}
        for read_call, holders in reads.values():
            if any(n is read_call for n in walk(assignment.value)):
                continue
            if _uses(assignment.value, holders):
                holders |= names
            else:
                holders -= names

    @staticmethod
    def _holders(call: cst.Call, scope: Scope) -> set[str]:
        """Locals the read value is stored in (`n = int(r.get(k) or 0)` -> {"n"})."""
        statement = scope.context.enclosing_statement(call)
        names: set[str] = set()
        for small in statement.body if isinstance(statement, cst.SimpleStatementLine) else ():
            if isinstance(small, cst.Assign):
                for target in small.targets:
                    names.update(assigned_names(target.target))
        return names

    @staticmethod
    def _exiting_guard(read: cst.Call, holders: set[str], write: cst.Call, scope: Scope) -> cst.CSTNode | None:
        """An `if` testing the read (or a local holding it) whose body leaves before the write."""
        for node in scope.nodes:
            if not isinstance(node, cst.If) or scope.index(node) > scope.index(write):
                continue
            tests_read = any(n is read for n in walk(node.test)) or any(
                isinstance(n, cst.Name) and n.value in holders for n in walk(node.test)
            )
            if not tests_read or any(n is write for n in walk(node)):
                continue
            if not block_exits(body_statements(node), scope.context.never_returns) & Exit.FALLTHROUGH:
                return node.test
        return None

    @staticmethod
    def _returns_cached(test: cst.CSTNode, read: cst.Call, holders: set[str], scope: Scope) -> bool:
        """Memoisation: on a hit the guard hands back the cached value (`if cached: return cached`)."""
        guard = scope.context.parent(test)
        body = guard.body if isinstance(guard, cst.If) else None
        return body is not None and (_uses(body, holders) or any(n is read for n in walk(body)))

    # -- report -------------------------------------------------------------------------------------
    def _report(self, race: _Race, scope: Scope, concurrent: str) -> None:
        if race.kind == "row":
            consequence = "two requests both see no row and both create it: a duplicate, or an IntegrityError if a unique constraint exists"
            cannot = "whether the production schema has a unique constraint on the looked-up columns (migrations may live elsewhere)"
        elif race.kind == "counter":
            consequence = "two workers read the same old value and write the same new one: an increment is lost"
            cannot = "whether the cache is shared between processes (a local-memory cache is per process)"
        else:
            consequence = "two workers both see the key absent and both take the lock or claim"
            cannot = "whether the cache is shared between processes (a local-memory cache is per process)"
        self.report(
            race.act,
            f"{race.what}, not as one atomic step: {consequence}",
            checked=[
                "the check and the create (or write) are separate calls",
                "no get_or_create, upsert, IntegrityError handler, nx=True, add or incr makes them atomic",
                concurrent,
            ],
            unverifiable=[cannot, "whether this runs for the same key at the same time"],
            related=[(race.check, "checked here")],
            fixes=race.fixes,
        )


def _catches_missing(handler: cst.ExceptHandler) -> bool:
    if handler.type is None:
        return False
    return any((dotted_name(n) or "").endswith(_MISSING) for n in walk(handler.type) if isinstance(n, (cst.Name, cst.Attribute)))


def _queries(test: cst.BaseExpression, model: str | None, scope: Scope) -> bool:
    for node in walk(test):
        if isinstance(node, cst.Call) and method_name(node) in _EXISTS_TERMINALS:
            found = query_model(node, scope)
            if found is not None and (model is None or found[0] in (None, model)):
                return True
    return False


def _is_existence_query(value: cst.BaseExpression, scope: Scope) -> bool:
    if isinstance(value, cst.Await):
        value = value.expression
    return isinstance(value, cst.Call) and method_name(value) in _EXISTS_TERMINALS and query_model(value, scope) is not None


def _existence_model(value: cst.BaseExpression, scope: Scope) -> str | None:
    if isinstance(value, cst.Await):
        value = value.expression
    found = query_model(value, scope) if isinstance(value, cst.Call) else None
    return found[0] if found is not None else None


def _tests_presence(test: cst.BaseExpression, names: set[str]) -> bool:
    """`x`, `not x`, `x is None`, `x is not None` for a fetched local (not a test of its fields)."""
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        test = test.expression
    if isinstance(test, cst.Name):
        return test.value in names
    if isinstance(test, cst.Comparison) and isinstance(test.left, cst.Name) and test.left.value in names:
        return len(test.comparisons) == 1 and isinstance(test.comparisons[0].operator, (cst.Is, cst.IsNot, cst.Equal, cst.NotEqual))
    return False


def _atomic_set(call: cst.Call) -> bool:
    found = keyword(call, "nx")
    return found is not None and not (isinstance(found.value, cst.Name) and found.value.value == "False")


def _uses(value: cst.BaseExpression, names: set[str]) -> bool:
    return any(isinstance(n, cst.Name) and n.value in names for n in walk(value))
