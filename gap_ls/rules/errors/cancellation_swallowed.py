"""GAP107 cancellation-swallowed."""

from __future__ import annotations

import libcst as cst

from gap_ls.core.model import Family
from gap_ls.core.nodes import body_statements, dotted_name, method_name, receiver, walk, walk_body
from gap_ls.core.rule import FixRequest
from gap_ls.core.summary import ModuleSummary, UnitFacts
from gap_ls.rules.errors.handlers import (
    Handler,
    HandlerRule,
    Shape,
    classify,
    handler_facts,
    may_catch_cancellation,
    open_handlers,
)


class CancellationSwallowed(HandlerRule):
    """
    ## What it does
    Flags, inside an `async def`, a handler that catches cancellation —
    `asyncio.CancelledError` directly or in a tuple, a bare `except:`, or
    `except BaseException` — and on some path does not re-raise it.

    ## Why is this bad?
    Cancellation is how asyncio stops work: timeouts (`asyncio.timeout`,
    `wait_for`), `TaskGroup` shutdown and server shutdown all cancel tasks and
    wait for them to finish. A coroutine that swallows `CancelledError` keeps
    running, or returns as if it had completed: timeouts stop working, task
    groups hang or report success, shutdown stalls. Since Python 3.11 asyncio
    also counts cancellations (`Task.uncancel()`), and swallowing one breaks
    that bookkeeping.

    ## What gap-ls cannot verify
    - Whether this coroutine is ever cancelled by someone who needs the
      cancellation to propagate (a timeout, a task group, shutdown).
    - Whether the code that awaits this task expects it to finish normally
      after cancellation.

    ## Example
    ```python
    async def consume(queue):
        try:
            while True:
                await handle(await queue.get())
        except asyncio.CancelledError:
            log.info("consumer stopped")
    ```

    ## Use instead
    ```python
    async def consume(queue):
        try:
            while True:
                await handle(await queue.get())
        except asyncio.CancelledError:
            log.info("consumer stopped")
            raise
    ```

    ## Fix
    *Re-raise after handling* appends `raise` to the handler (or adds an
    `except asyncio.CancelledError: raise` before a broad handler).

    ## Options
    Not reported for the shutdown idiom of awaiting a task this function has
    just cancelled (`task.cancel()`, then `try: await task except
    CancelledError: pass`).
    """

    code = "GAP107"
    name = "cancellation-swallowed"
    family = Family.SWALLOWED_ERROR
    title = "Async code swallows cancellation"

    @classmethod
    def relevant(cls, facts: UnitFacts | None, summary: ModuleSummary, found: tuple[str, ...] = ()) -> bool:
        return facts is None or any(h.in_async and may_catch_cancellation(h, summary) for h in open_handlers(facts, cls.flagged_ends))

    def check_handler(self, handler: Handler) -> None:
        context = self.context
        facts = handler_facts(handler, context)
        if classify(facts, context) is not Shape.CANCELLATION:
            return
        function = context.enclosing_function(handler)
        if function is not None and self._awaits_cancelled_task(facts.try_node, function):
            return
        via = "catches `CancelledError`" if not facts.broad else f"{facts.caught_text()} also catches `CancelledError`"
        self.report(
            handler,
            f"{via} in async code and does not re-raise it: cancellation (timeouts, task groups, shutdown) stops working",
            checked=(
                "the handler is in an `async def`",
                f"{facts.caught_fact()}, which includes asyncio cancellation",
                "at least one path through the handler does not raise",
            ),
            unverifiable=(
                "whether this coroutine is cancelled by a timeout, task group or shutdown that needs it to stop",
                "whether the awaiting code expects a normal return after cancellation",
            ),
            fixes=(FixRequest("reraise", "Re-raise after handling", handler, {"cancellation": True}),),
        )

    @staticmethod
    def _awaits_cancelled_task(try_node: cst.CSTNode, function: cst.FunctionDef) -> bool:
        """`task.cancel()` earlier in the function, then `await task` inside this try."""
        cancelled: set[str] = set()
        for node in walk(function.body):
            if isinstance(node, cst.Call) and method_name(node) == "cancel" and (name := dotted_name(receiver(node))):
                cancelled.add(name)
            if isinstance(node, cst.For) and any(
                isinstance(n, cst.Call) and method_name(n) == "cancel" for n in walk(node.body)
            ):
                if (iterable := dotted_name(node.iter)) is not None:
                    cancelled.add(iterable)
        if not cancelled:
            return False
        mentioned = {dotted_name(n) for n in walk_body(body_statements(try_node)) if isinstance(n, (cst.Name, cst.Attribute))}
        return bool(cancelled & mentioned)
