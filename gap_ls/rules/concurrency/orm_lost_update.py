"""GAP205 orm-lost-update."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

from gap_ls.core.concurrency import imports_data_store
from gap_ls.core.flow import Exit, block_exits
from gap_ls.core.nodes import assigned_names, body_statements, dotted_name, walk
from gap_ls.core.rule import FixRequest
from gap_ls.core.summary import ModuleSummary, UnitFacts
from gap_ls.rules.concurrency.data import Load, is_persist, loads, locks_rows_before
from gap_ls.rules.concurrency.shared import FunctionRule, Scope, code, concurrent_requests, statement_of


@dataclass(frozen=True)
class _Change:
    statement: cst.CSTNode  # the assignment to the field
    field: str
    derived: str  # how the new value depends on the old one, for the message
    guarded_by: cst.CSTNode | None  # the `if` that tested the field, for a check-then-set


class OrmLostUpdate(FunctionRule):
    """
    ## What it does
    Flags a database row loaded, changed from its old value, and saved, with
    nothing stopping a concurrent request from doing the same:

    - loaded with Django (`Model.objects.get(...)`, `.filter(...).first()`,
      `get_object_or_404`, DRF `self.get_object()`) or SQLAlchemy
      (`session.get(Model, id)`, `session.query(Model)...first()`,
      `session.scalars(select(Model)...).one()`, Flask-SQLAlchemy
      `Model.query...first()`);
    - a field then set from its own old value (`row.stock -= qty`,
      `row.points = row.points + n`, a local computed from it), or set after a
      check of that same field (`if row.status != "free": return` ...
      `row.status = "held"`);
    - and saved: `row.save()`, `session.commit()`, `flush()`.

    Not flagged: rows loaded with `select_for_update()` / `with_for_update()`,
    models with a version column (SQLAlchemy `version_id_col`,
    django-concurrency), set-based `update()` with `F()` or column expressions,
    fields set from request data without reading the old value, and
    single-writer code (management commands, scripts). The code must run where
    requests or tasks can overlap: a web handler, a task, a thread or executor
    job, or a module of a web or task application.

    ## Why is this bad?
    Two requests load the row with the same old value, each computes its new
    value from it, and each saves: the second save silently overwrites the
    first (a lost update), or both pass the same status check and both claim
    the coupon, seat or balance. Every test passes; production loses money.

    ## What gap-ls cannot verify
    - The database isolation level (SERIALIZABLE would turn this into a
      retryable error) and whether the surrounding transaction settings apply.
    - Whether every other writer of the row uses the same locking discipline.
    - Whether this code really runs for the same row concurrently.

    ## Example
    ```python
    def deposit(request, pk):
        wallet = Wallet.objects.get(pk=pk)
        wallet.balance += amount
        wallet.save(update_fields=["balance"])
    ```

    ## Use instead
    ```python
    def deposit(request, pk):
        Wallet.objects.filter(pk=pk).update(balance=F("balance") + amount)
    ```
    or lock the row for the read-check-write:
    ```python
        with transaction.atomic():
            wallet = Wallet.objects.select_for_update().get(pk=pk)
            wallet.balance += amount
            wallet.save(update_fields=["balance"])
    ```
    (SQLAlchemy: `.with_for_update()`, or `update(Wallet).values(balance=Wallet.balance + amount)`).

    ## Fix
    *Lock the row* (`select_for_update()` inside `transaction.atomic()`;
    SQLAlchemy `with_for_update`), or *Update atomically* (assign an `F()` /
    column expression, so the database computes the new value).
    """

    code = "GAP205"
    name = "orm-lost-update"
    title = "Row loaded, changed from its old value and saved, without a lock or an atomic update"
    triggers = ("save", "commit", "flush", "objects.")

    @classmethod
    def relevant(cls, facts: UnitFacts | None, summary: ModuleSummary, found: tuple[str, ...] = ()) -> bool:
        return facts is None or (facts.writes_state and (imports_data_store(summary) or "objects." in found))

    def wants(self, function: cst.FunctionDef, qualname: str) -> bool:
        return concurrent_requests(self.context, qualname) is not None

    def check_function(self, scope: Scope) -> None:
        found = loads(scope)
        if not found:
            return
        concurrent = self._concurrent(scope)
        if concurrent is None:
            return
        for load in found:
            if load.locked or (load.model is not None and self.context.is_optimistic(load.model)):
                continue
            for change in self._changes(load, scope):
                save = self._save_after(change.statement, load, scope)
                if save is None or locks_rows_before(scope, change.statement):
                    continue
                self._report(load, change, save, scope, concurrent)
                return  # one finding per function

    def _concurrent(self, scope: Scope) -> str | None:
        return concurrent_requests(self.context, scope.qualname)

    def _changes(self, load: Load, scope: Scope) -> Iterator[_Change]:
        derived: dict[str, set[str]] = {}  # locals computed from the row -> the fields they read
        start = scope.index(load.statement)
        for node in scope.nodes:
            if scope.index(node) <= start:
                continue
            if isinstance(node, cst.Assign) and len(node.targets) == 1:
                target = node.targets[0].target
                field = _field(target, load.variable)
                if field is None:
                    fields = _fields_read(node.value, load.variable, derived)
                    for name in assigned_names(target):
                        derived[name] = fields
                    continue
                if _reads_field(node.value, load.variable, field, derived):
                    check = self._checked_before(node, load.variable, field, scope)
                    yield _Change(node, field, f"from `{load.variable}.{field}`", check)
                    continue
                check = self._checked_before(node, load.variable, field, scope)
                if check is not None:
                    yield _Change(node, field, "after a check of the old value", check)
            elif isinstance(node, cst.AugAssign):
                field = _field(node.target, load.variable)
                if field is not None:
                    # A check of the old value before it (`if row.stock < qty: return`) is stale
                    # too: an atomic update alone would not fix that.
                    yield _Change(node, field, "from its old value", self._checked_before(node, load.variable, field, scope))

    @staticmethod
    def _checked_before(assignment: cst.CSTNode, variable: str, field: str, scope: Scope) -> cst.If | None:
        """An `if` testing the same field, whose body holds the assignment or always exits before it."""
        for node in scope.nodes:
            if not isinstance(node, cst.If) or scope.index(node) >= scope.index(assignment):
                continue
            if not any(isinstance(n, cst.Attribute) and _field(n, variable) == field for n in walk(node.test)):
                continue
            inside = any(n is assignment for n in walk(node.body))
            exits = not block_exits(body_statements(node)) & Exit.FALLTHROUGH
            if inside or (exits and not any(n is assignment for n in walk(node))):
                return node
        return None

    @staticmethod
    def _save_after(change: cst.CSTNode, load: Load, scope: Scope) -> cst.Call | None:
        after = scope.index(change)
        for node in scope.nodes:
            if isinstance(node, cst.Call) and scope.index(node) > after and is_persist(node, load.variable):
                return node
        # SQLAlchemy: `with session.begin():` commits when the block ends.
        for ancestor in scope.context.ancestors(change):
            if isinstance(ancestor, cst.With) and any(
                (dotted_name(i.item.func) or "").endswith(".begin") for i in ancestor.items if isinstance(i.item, cst.Call)
            ):
                return ancestor.items[0].item  # type: ignore[return-value]
        return None

    def _report(self, load: Load, change: _Change, save: cst.Call, scope: Scope, concurrent: str) -> None:
        written = code(change.statement).strip().splitlines()[0]
        loaded = code(load.call)
        if len(loaded) > 60:
            loaded = loaded[:57] + "..."
        saved = code(save).strip()
        lock_hint = "`select_for_update()`" if load.orm == "django" else "`with_for_update()`"
        fixes = [
            FixRequest(
                "lock-row",
                "Lock the row (select_for_update in transaction.atomic)" if load.orm == "django"
                else "Lock the row (with_for_update)",
                load.call,
                {"orm": load.orm, "model": load.model, "variable": load.variable},
                nodes={"first": statement_of(scope, load.statement), "last": statement_of(scope, save)},
            )
        ]
        if change.guarded_by is None and load.model is not None and _updates_in_place(change.statement, load.variable, change.field):
            fixes.append(
                FixRequest("atomic-update", "Update atomically (F() expression)" if load.orm == "django"
                           else "Update atomically (column expression)", change.statement,
                           {"orm": load.orm, "model": load.model, "variable": load.variable, "field": change.field,
                            "save": code(save)})
            )
        self.report(
            change.statement,
            f"`{written}` changes a row loaded by `{loaded}` {change.derived} and saves it (`{saved}`) "
            f"with no {lock_hint}, `F()`/atomic update or version check: two concurrent requests both save, "
            "and one change is lost",
            checked=[
                f"`{load.variable}` is loaded by `{loaded}`, without a row lock",
                f"`{load.variable}.{change.field}` is set {change.derived}",
                f"`{saved}` writes it back",
                concurrent,
            ],
            unverifiable=[
                "the database isolation level (SERIALIZABLE would turn this into a retryable error)",
                "whether every other writer of this row uses the same locking",
                "whether this code runs for the same row at the same time",
            ],
            related=[(load.call, "loaded here, without a lock"), (save, "saved here")]
            + ([(change.guarded_by.test, "the old value is checked here")] if change.guarded_by is not None else []),
            fixes=fixes,
        )


def _field(target: cst.CSTNode, variable: str) -> str | None:
    if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.value.value == variable:
        return target.attr.value
    return None


def _reads_field(value: cst.CSTNode, variable: str, field: str, derived: dict[str, set[str]]) -> bool:
    return field in _fields_read(value, variable, derived)


def _fields_read(value: cst.CSTNode, variable: str, derived: dict[str, set[str]]) -> set[str]:
    """The row's fields ``value`` reads, directly or through locals computed from them."""
    fields: set[str] = set()
    for node in walk(value):
        if isinstance(node, cst.Attribute):
            field = _field(node, variable)
            if field is not None:
                fields.add(field)
        elif isinstance(node, cst.Name) and node.value in derived:
            fields |= derived[node.value]
    return fields


def _updates_in_place(statement: cst.CSTNode, variable: str, field: str) -> bool:
    """`row.f += n` or `row.f = row.f ...`: the new value is an expression of the field itself
    (one the database can evaluate), not of a local computed earlier."""
    if isinstance(statement, cst.AugAssign):
        return True
    return isinstance(statement, cst.Assign) and any(
        isinstance(n, cst.Attribute) and _field(n, variable) == field for n in walk(statement.value)
    )
