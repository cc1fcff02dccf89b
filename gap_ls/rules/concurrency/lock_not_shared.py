"""GAP207 lock-not-shared."""

from __future__ import annotations

import libcst as cst

from gap_ls.core.nodes import dotted_name, walk
from gap_ls.core.rule import FixRequest
from gap_ls.core.summary import LOCK_CONSTRUCTORS, ModuleSummary, UnitFacts
from gap_ls.rules.concurrency.shared import FunctionRule, Scope, code


class LockNotShared(FunctionRule):
    """
    ## What it does
    Flags a lock created where it is used, so that every call gets a lock of its
    own: `with threading.Lock():`, `async with asyncio.Lock():`, the `Semaphore`,
    `BoundedSemaphore`, `Condition` and `RLock` variants (threading, asyncio,
    multiprocessing, anyio, trio), and a lock or semaphore bound to a local
    variable that is used in that function only — never passed to a call,
    stored, returned or captured.

    Not flagged: locks stored on `self` or at module level, locks passed in by a
    caller, and a local lock handed to the threads or tasks it coordinates
    (`Thread(args=(lock,))`, `gather(worker(sem) for ...)`).

    ## Why is this bad?
    Nothing else ever waits on that lock: two threads each take their own and
    run the "protected" block at the same time. The code reads as if it were
    synchronised and is not — the worst kind of gap, because a reviewer sees
    the `with` and moves on.

    ## What gap-ls cannot verify
    - Which scope the lock should have: one per process (module level), one
      per object (`self._lock`), or one across processes and hosts (a file or
      database lock) — that depends on what the block protects.

    ## Example
    ```python
    def append_audit(line):
        with threading.Lock():
            with open(AUDIT_LOG, "a") as fh:
                fh.write(line)
    ```

    ## Use instead
    ```python
    _audit_lock = threading.Lock()

    def append_audit(line):
        with _audit_lock:
            with open(AUDIT_LOG, "a") as fh:
                fh.write(line)
    ```

    ## Fix
    *Hoist the lock*: create it once at module level and use that one.
    """

    code = "GAP207"
    name = "lock-not-shared"
    title = "Lock created where it is used: each call gets its own, so it excludes nothing"
    triggers = ("Lock", "Semaphore", "Condition")

    @classmethod
    def relevant(cls, facts: UnitFacts | None, summary: ModuleSummary, found: tuple[str, ...] = ()) -> bool:
        if facts is None:
            return True
        in_with = any(summary.qualify(call) in LOCK_CONSTRUCTORS for call in facts.with_calls)
        return bool(facts.functions) and (facts.local_lock or in_with)

    def check_function(self, scope: Scope) -> None:
        for node in scope.nodes:
            if isinstance(node, cst.With):
                for item in node.items:
                    if isinstance(item.item, cst.Call) and self._constructor(item.item) is not None:
                        reuse = self._guard_of(node, scope)
                        self._report(item.item, scope, "a new lock for every call, created in the `with` itself", reuse)
            elif isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
                name = node.targets[0].target.value
                if (
                    isinstance(node.value, cst.Call)
                    and self._constructor(node.value) is not None
                    and name in scope.locals
                    and self._only_used_in_with(name, scope, node)
                ):
                    self._report(node.value, scope, f"`{name}` is a local made on every call and used only here")

    def _constructor(self, call: cst.Call) -> str | None:
        called = self.context.summary.qualify(dotted_name(call.func) or "")
        return called if called in LOCK_CONSTRUCTORS else None

    @staticmethod
    def _only_used_in_with(name: str, scope: Scope, assignment: cst.Assign) -> bool:
        """The local is used as a `with` item (or acquired/released) and nowhere else."""
        used_in_with = False
        for node in walk(scope.function, enter_definitions=True):
            if not isinstance(node, cst.Name) or node.value != name:
                continue
            if node is assignment.targets[0].target:
                continue
            if _inside_nested_definition(node, scope):
                return False  # captured by a nested function or lambda: shared by its calls
            parent = scope.context.parent(node)
            if isinstance(parent, cst.WithItem) and parent.item is node:
                used_in_with = True
                continue
            if isinstance(parent, cst.Attribute) and parent.attr.value in {"acquire", "release", "locked"}:
                continue
            return False  # passed, stored, returned or captured: shared with someone
        return used_in_with

    def _guard_of(self, block: cst.With, scope: Scope) -> str | None:
        """A lock other functions hold around state this block writes: the one to use here."""
        for node in walk(block.body):
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else (
                [node.target] if isinstance(node, cst.AugAssign) else [])
            for target in targets:
                state = scope.state_of(target)
                if state is None:
                    continue
                owner, name = ("", state.root) if state.kind == "global" else (scope.class_name, state.attribute)
                if owner is None or name is None:
                    continue
                held = self.context.discipline(owner).locks_elsewhere(name, scope.qualname)
                if len(held) == 1:
                    return next(iter(held))
        return None

    def _report(self, constructor: cst.Call, scope: Scope, why: str, reuse: str | None = None) -> None:
        made = code(constructor)
        self.report(
            constructor,
            f"`{made}` makes a lock that no other call or thread ever sees ({why}): it excludes nothing",
            checked=[
                f"`{made}` constructs a lock in `{scope.name}`",
                "it is not stored on `self` or at module level, returned, or passed to anything",
            ],
            unverifiable=[
                "which scope the lock should have: the process (module level), the object (`self`), "
                "or several processes and hosts (a file or database lock)",
            ],
            fixes=[FixRequest("hoist-lock", f"Use `{reuse}`" if reuse else "Hoist the lock to module level", constructor,
                              {"asynchronous": scope.is_async, "function": scope.name, "reuse": reuse})],
        )


def _inside_nested_definition(node: cst.CSTNode, scope: Scope) -> bool:
    for ancestor in scope.context.ancestors(node):
        if ancestor is scope.function:
            return False
        if isinstance(ancestor, (cst.FunctionDef, cst.Lambda)):
            return True
    return False
