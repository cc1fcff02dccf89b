"""GAP201 unlocked-shared-update."""

from __future__ import annotations

import libcst as cst

from gap_ls.core.concurrency import reached
from gap_ls.core.summary import ModuleSummary, UnitFacts
from gap_ls.rules.concurrency.shared import (
    CONSTRUCTION,
    FunctionRule,
    Scope,
    Update,
    code,
    lock_fix,
    statement_of,
    updates,
)


class UnlockedSharedUpdate(FunctionRule):
    """
    ## What it does
    Flags a read-modify-write — `x += 1`, `counts[k] = counts.get(k, 0) + 1`,
    `self.total = self.total + n`, or a read into a local that is written back
    — of state several threads share, with no lock held:

    - a module global, a class attribute, or an attribute of a module-level
      object, in a function that runs on several threads at once;
    - an attribute of `self`, when the same object is used by several threads
      (a method started as a thread or executor job on `self`, a module-level
      singleton, a class that owns a lock).

    "Runs on several threads" means the code shows it: the function is a
    `Thread`/`Timer` target or an executor job (`submit`, `map`,
    `run_in_executor`, `to_thread`), a threaded web handler (Django and DRF
    views, Flask routes, sync FastAPI endpoints), a task (Celery, dramatiq,
    huey, rq), a method of a class that owns a lock — or is called from one of
    those in the same module. A single-threaded script with the same statement
    is not flagged, nor are locals, `threading.local()` state, thread-safe
    containers (`queue.Queue`, `deque`, `itertools.count`), `__init__`, or
    per-request view objects.

    ## Why is this bad?
    `x += 1` is a read, an add and a write. Two threads that read the same old
    value both write old + 1, and one update is lost — silently, rarely, and
    never in a test that runs one request at a time.

    ## What gap-ls cannot verify
    - Whether this really runs concurrently in production: the server's worker
      model (threads or processes), the task pool (threads, gevent, prefork),
      or a free-threaded Python build.
    - Whether every other writer of the same state takes the same lock.

    ## Example
    ```python
    VIEW_HITS = {}

    @app.route("/products/<sku>")
    def product(sku):
        VIEW_HITS[sku] = VIEW_HITS.get(sku, 0) + 1
        ...
    ```

    ## Use instead
    ```python
    VIEW_HITS = {}
    _view_hits_lock = threading.Lock()

    @app.route("/products/<sku>")
    def product(sku):
        with _view_hits_lock:
            VIEW_HITS[sku] = VIEW_HITS.get(sku, 0) + 1
        ...
    ```
    (or an atomic counter in a shared store, e.g. Redis `INCR`, which also
    counts across processes).

    ## Fix
    *Guard with a lock*: a `threading.Lock()` created once — at module level for
    globals and class attributes, in `__init__` for instance state — held by a
    `with` around the whole read-and-write.
    """

    code = "GAP201"
    name = "unlocked-shared-update"
    title = "Read-modify-write of shared state with no lock, in code that runs on several threads"

    @classmethod
    def relevant(cls, facts: UnitFacts | None, summary: ModuleSummary, found: tuple[str, ...] = ()) -> bool:
        if facts is None:
            return True
        functions = [f.qualname for f in facts.functions]
        return facts.writes_state and summary.has_roots() and reached(summary, functions, memory=True)

    def wants(self, function: cst.FunctionDef, qualname: str) -> bool:
        reach = self.context.reach(qualname)
        return function.name.value not in CONSTRUCTION and reach is not None and reach.memory

    def check_function(self, scope: Scope) -> None:
        if scope.name in CONSTRUCTION or scope.caller_holds_lock():
            return
        reach = self.context.reach(scope.qualname)
        if reach is None or not reach.memory:
            return
        reported: set[str] = set()
        for update in updates(scope):
            key = update.state.key
            if key in reported or not self._shared(update, scope, reach.repeated, reach.self_shared):
                continue
            if scope.lock_held(update.write) is not None or self._left_to_inconsistent_locking(update, scope):
                continue
            reported.add(key)
            self._report(update, scope, reach.via)

    def _shared(self, update: Update, scope: Scope, repeated: bool, self_shared: bool) -> bool:
        state = update.state
        if state.kind == "instance":
            return self_shared
        if repeated:
            return True
        # One thread runs this; it races only with another writer of the same global.
        return state.kind == "global" and bool(self.context.writers_of_global(state.root) - {scope.qualname})

    def _left_to_inconsistent_locking(self, update: Update, scope: Scope) -> bool:
        """State a lock guards elsewhere is GAP202's (the more precise finding)."""
        state = update.state
        if state.kind == "instance" and scope.class_name is not None and state.attribute is not None:
            owner, name = scope.class_name, state.attribute
        elif state.kind == "global" and scope.class_name is None:
            owner, name = "", state.root
        else:
            return False
        discipline = self.context.discipline(owner)
        return bool(discipline.guarded.get(name, frozenset()) - {scope.qualname}) and discipline.mostly_guarded(name)

    def _report(self, update: Update, scope: Scope, via: str) -> None:
        state = update.state
        written = code(update.write).strip()
        how = (
            f"reads {state.shown()} into `{update.via_local}` and writes it back"
            if update.via_local
            else f"`{written}` is a read-modify-write of {state.shown()}"
        )
        checked = [
            f"{state.shown()} is shared: " + _why_shared(state),
            "no lock is held around the update (no enclosing `with <lock>:`, no `acquire()` before it)",
            via,
        ]
        first = statement_of(scope, update.read_statement)
        last = statement_of(scope, update.write)
        self.report(
            update.write,
            f"{how} with no lock held, in code that runs on several threads at once: two updates can interleave and one is lost",
            checked=checked,
            unverifiable=[
                "whether this really runs concurrently in production (threads or processes, the task pool, "
                "a free-threaded build)",
                f"whether every other writer of {state.shown()} takes the same lock",
            ],
            related=[(update.read, "the old value is read here")] if update.via_local else [],
            fixes=[lock_fix(first, last, scope, state)],
        )


def _why_shared(state) -> str:
    if state.kind == "global":
        return "a module-level name, one object for every thread of the process"
    if state.kind == "class":
        return "a class attribute, one value for every instance and thread"
    if state.kind == "object":
        return "an attribute of a module-level object every thread sees"
    return "the same object is used by several threads"
