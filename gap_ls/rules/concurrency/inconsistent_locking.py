"""GAP202 inconsistent-locking."""

from __future__ import annotations

import libcst as cst

from gap_ls.core.nodes import dotted_name, method_name
from gap_ls.core.summary import ModuleSummary, UnitFacts
from gap_ls.rules.concurrency.shared import CONSTRUCTION, FunctionRule, Scope, State, code, lock_fix, statement_of


class InconsistentLocking(FunctionRule):
    """
    ## What it does
    Flags a write — assignment, augmented assignment, `del`, or a mutating call
    such as `.clear()` or `.append()` — to an attribute that the class guards with
    its lock (`with self._lock:`) in other methods, made here without the lock.
    The same holds for a module global that a module-level lock guards in other
    functions.

    Not flagged: `__init__` and methods only called while the object is being
    built (it is not shared yet); helpers only ever called with the lock held
    (directly or through other such helpers), or named `*_locked`; reads
    without the lock (a stale read is often acceptable; a lost write is not);
    and attributes most of whose accesses do not take the lock anyway (the
    lock then guards something else — the rule fires when at least half of the
    accesses hold it, as CodeQL's inconsistent-synchronisation check does).

    ## Why is this bad?
    The lock only works if every writer takes it. A method that replaces or
    changes the guarded state without it races with the methods that do: a
    thread inside the locked block keeps using the old object, or its update is
    overwritten. The class already says it is used from several threads — it
    owns a lock for exactly this state.

    ## What gap-ls cannot verify
    - Whether this method is ever called while another thread is inside one of
      the locked methods (for example, only during start-up).
    - Whether the attribute is still guarded elsewhere in subclasses or other
      modules.

    ## Example
    ```python
    class TTLCache:
        def __init__(self):
            self._lock = threading.Lock()
            self._data = {}

        def put(self, key, value):
            with self._lock:
                self._data[key] = value

        def clear(self):
            self._data = {}
    ```

    ## Use instead
    ```python
        def clear(self):
            with self._lock:
                self._data = {}
    ```

    ## Fix
    *Guard with the class's lock*: wrap the write in `with self._lock:` (the lock
    the other methods use).
    """

    code = "GAP202"
    name = "inconsistent-locking"
    title = "State guarded by a lock in some methods is written without it in another"

    @classmethod
    def relevant(cls, facts: UnitFacts | None, summary: ModuleSummary, found: tuple[str, ...] = ()) -> bool:
        if facts is None:
            return True
        if not facts.writes_state:
            return False
        owners = {facts.member_of, *(c.qualname for c in facts.classes)} - {None}
        for owner in owners:
            if owner in summary.classes and summary.classes[owner].lock_attributes and _guards(summary, owner):
                return True
        return bool(summary.locks) and _guards(summary, "")

    def wants(self, function: cst.FunctionDef, qualname: str) -> bool:
        return function.name.value not in CONSTRUCTION

    def check_function(self, scope: Scope) -> None:
        if scope.name in CONSTRUCTION or scope.caller_holds_lock():
            return
        class_name = scope.class_name if self._owns_lock(scope.class_name) else None
        if class_name is None and not self.context.summary.locks:
            return
        discipline = self.context.discipline(class_name or "")
        if not discipline.guarded or scope.name in discipline.construction:
            return
        reported: set[str] = set()
        for statement, target in scope.writes():
            state = scope.state_of(target)
            name = self._guarded_name(state, class_name)
            if name is None or name in reported:
                continue
            elsewhere = discipline.guarded.get(name, frozenset()) - {scope.qualname}
            if not elsewhere or not discipline.mostly_guarded(name):
                continue
            if scope.lock_held(statement) is not None:
                continue  # some lock is held (which one is not compared, as in RacerD)
            others = discipline.locks_elsewhere(name, scope.qualname)
            if _after_join(statement, scope):
                continue  # the threads this method waited for have stopped
            reported.add(name)
            lock = sorted(others)[0] if others else None
            self._report(statement, state, scope, lock, sorted(elsewhere))

    def _owns_lock(self, class_name: str | None) -> bool:
        info = self.context.summary.classes.get(class_name) if class_name else None
        return info is not None and bool(info.lock_attributes)

    @staticmethod
    def _guarded_name(state: State | None, class_name: str | None) -> str | None:
        if state is None:
            return None
        if class_name is not None:
            return state.attribute if state.kind == "instance" else None
        return state.root if state.kind in {"global", "object"} else None

    def _report(self, statement: cst.CSTNode, state: State, scope: Scope, lock: str | None, elsewhere: list[str]) -> None:
        methods = ", ".join(f"`{q.rpartition('.')[2]}()`" for q in elsewhere[:3])
        held = f"`{lock}`" if lock else "the lock"
        written = code(statement).strip().splitlines()[0]
        how = "without it"
        self.report(
            statement,
            f"{state.shown()} is guarded by {held} in {methods} but written here {how} (`{written}`): "
            "a thread inside the locked code can lose this write or keep using the old value",
            checked=[
                f"{methods} access {state.shown()} while holding {held}",
                f"`{scope.name}` writes it with no lock held (no enclosing `with {lock or '<lock>'}:`)",
                f"`{scope.name}` is not a constructor, and not a helper only called with the lock held",
            ],
            unverifiable=[
                f"whether `{scope.name}` can run while another thread is inside the locked code",
                "whether a lock held elsewhere in this file is the same object as this one (locks are compared by "
                "whether one is held, not by which)",
                "whether subclasses or other modules touch the attribute under a different discipline",
            ],
            fixes=[lock_fix(statement_of(scope, statement), statement_of(scope, statement), scope, state, lock,
                            title=f"Guard with {held}")],
        )


def _guards(summary: ModuleSummary, owner: str) -> bool:
    """The class (or, for "", the module) guards some state with a thread lock."""
    key = summary.fact(("discipline", owner))
    return bool(key[1])  # Discipline.key(): (locks, guarded, ...)


def _after_join(statement: cst.CSTNode, scope: Scope) -> bool:
    """A `.join()` (threads, processes, a queue) earlier in the same method."""
    at = scope.index(statement)
    return any(
        isinstance(n, cst.Call) and method_name(n) == "join" and 0 <= scope.index(n) < at and not _is_str_join(n)
        for n in scope.nodes
    )


def _is_str_join(call: cst.Call) -> bool:
    """`", ".join(parts)`: a string literal (or os.path) joins, it does not wait."""
    owner = call.func.value if isinstance(call.func, cst.Attribute) else None
    return isinstance(owner, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)) or (
        dotted_name(owner) or ""
    ).endswith(("path", "sep"))
