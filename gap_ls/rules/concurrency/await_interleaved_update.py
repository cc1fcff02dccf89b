"""GAP204 await-interleaved-update."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gap_ls.core.flow import Exit, block_exits
from gap_ls.core.nodes import body_statements, dotted_name, walk
from gap_ls.core.summary import ModuleSummary, UnitFacts
from gap_ls.rules.concurrency.shared import (
    CONSTRUCTION,
    FunctionRule,
    Scope,
    State,
    code,
    lock_fix,
    statement_of,
    subscript_parts,
    updates,
)


class AwaitInterleavedUpdate(FunctionRule):
    """
    ## What it does
    In an `async def`, flags a write to shared state — an attribute of `self`, a
    module global, a class attribute — that depends on a read made before an
    `await`:

    - the old value was read into a local, the coroutine awaited, and the write
      uses that local (`current = self.balance; await ...; self.balance = current + n`);
    - a condition on the state was checked, the coroutine awaited, and the state
      is then written as if the check still held
      (`if self.tokens > 0: await audit(); self.tokens -= 1`).

    Not flagged: a read and write with no `await` between them (atomic on the
    event loop), state re-read after the `await`, a write of a freshly awaited
    value, local state, and the whole sequence held under one `async with` lock.

    ## Why is this bad?
    `await` is where other coroutines run. While this one waits, another reads
    the same old value (or passes the same check) and both write: one update is
    lost, or a limit is exceeded — on one thread, with no threads involved.

    ## What gap-ls cannot verify
    - Whether two coroutines actually operate on the same object or global at
      once (for example, whether the object is shared by concurrent requests).
    - Whether the state is also changed by other processes, where an
      `asyncio.Lock` does not help.

    ## Example
    ```python
    async def credit(self, amount, ref):
        current = self.balance
        await self._ledger.append(ref, amount)
        self.balance = current + amount
    ```

    ## Use instead
    ```python
    async def credit(self, amount, ref):
        async with self._lock:  # self._lock = asyncio.Lock() in __init__
            current = self.balance
            await self._ledger.append(ref, amount)
            self.balance = current + amount
    ```
    or re-read the state after the `await`.

    ## Fix
    *Guard with an asyncio lock*: `asyncio.Lock()` created once (module level,
    or `self._lock` in `__init__`) and the read, the `await` and the write
    wrapped in one `async with`.
    """

    code = "GAP204"
    name = "await-interleaved-update"
    title = "Shared state read before an await and written after it from the stale value"
    triggers = ("await",)

    @classmethod
    def relevant(cls, facts: UnitFacts | None, summary: ModuleSummary, found: tuple[str, ...] = ()) -> bool:
        return facts is None or (facts.writes_state and any(f.is_async for f in facts.functions))

    def wants(self, function: cst.FunctionDef, qualname: str) -> bool:
        return function.asynchronous is not None and function.name.value not in CONSTRUCTION

    def check_function(self, scope: Scope) -> None:
        if not scope.is_async or scope.name in CONSTRUCTION:
            return
        reported: set[str] = set()
        for state, read, write, how in self._interleavings(scope):
            if state.key in reported:
                continue
            awaited = scope.awaits_between(read, write)
            if awaited is None or self._locked_across(scope, read, write):
                continue
            reported.add(state.key)
            self._report(scope, state, read, write, awaited, how)

    def _interleavings(self, scope: Scope) -> Iterator[tuple[State, cst.CSTNode, cst.CSTNode, str]]:
        for update in updates(scope):
            if update.via_local is not None:
                yield update.state, update.read_statement, update.write, f"the value read into `{update.via_local}`"
        for check, guarded_write, state in self._checked_writes(scope):
            yield state, check, guarded_write, "the check"

    def _checked_writes(self, scope: Scope) -> Iterator[tuple[cst.CSTNode, cst.CSTNode, State]]:
        """(if-test, write, state): a write made under, or after an early exit of, an `if` that
        tested the same state."""
        for node in scope.nodes:
            if not isinstance(node, cst.If):
                continue
            exits_early = not block_exits(body_statements(node)) & Exit.FALLTHROUGH
            for statement, target in scope.writes():
                state = scope.state_of(target)
                if state is None or scope.reads(node.test, target) is None:
                    continue
                inside = _contains(node.body, statement)
                after = exits_early and scope.index(statement) > scope.index(node) and not _contains(node, statement)
                if (inside or after) and _depends_on_check(statement, target, node.test, scope):
                    yield node.test, statement, state

    @staticmethod
    def _locked_across(scope: Scope, read: cst.CSTNode, write: cst.CSTNode) -> bool:
        """One `async with <lock>` block holds the read, the await and the write (two blocks on
        the same lock release it in between)."""
        region = scope.lock_region(write, asynchronous=True)
        if region is None:
            return False
        return any(ancestor is region for ancestor in scope.context.ancestors(read)) or read is region

    def _report(self, scope: Scope, state: State, read: cst.CSTNode, write: cst.CSTNode, awaited: cst.CSTNode, how: str) -> None:
        written = code(write).strip().splitlines()[0]
        self.report(
            write,
            f"`{written}` writes {state.shown()} from {how} made before an `await`: another coroutine can change "
            "it while this one waits, and its update is lost (or the check no longer holds)",
            checked=[
                f"{state.shown()} is read (or tested) before the `await` and written after it",
                "the write uses the old value, not a fresh read after the `await`",
                "no `async with <lock>:` spans the read, the `await` and the write",
            ],
            unverifiable=[
                "whether two coroutines really use the same object or global at once",
                "whether other processes change the same state (an asyncio lock does not cover them)",
            ],
            related=[(read, "read (or checked) here"), (awaited, "other coroutines run here")],
            # Read or write already inside a lock block (locked twice, released in between):
            # merging the blocks is a decision for the author, not a wrap (asyncio locks do not nest).
            fixes=[] if scope.lock_region(read, True) or scope.lock_region(write, True)
            else [lock_fix(statement_of(scope, read), statement_of(scope, write), scope, state)],
        )


def _depends_on_check(statement: cst.CSTNode, target: cst.BaseExpression, test: cst.BaseExpression, scope: Scope) -> bool:
    """The write builds on what was checked: it updates the old value (`-= 1`, `= x + n`), or
    inserts the key whose absence was tested. Resetting to a constant (`self._task = None`)
    after a check does not."""
    if isinstance(statement, cst.AugAssign):
        return True
    if isinstance(statement, cst.Assign) and scope.reads(statement.value, target) is not None:
        return True
    container, key = subscript_parts(target)
    if container is None:
        return False
    for node in walk(test):
        if isinstance(node, cst.Comparison) and any(
            isinstance(c.operator, (cst.In, cst.NotIn)) for c in node.comparisons
        ):
            if code(node.left) == key and any(dotted_name(c.comparator) == container for c in node.comparisons):
                return True
    return False


def _contains(outer: cst.CSTNode, inner: cst.CSTNode) -> bool:
    return any(node is inner for node in walk(outer))
