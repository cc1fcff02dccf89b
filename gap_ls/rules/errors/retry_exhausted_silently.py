"""GAP105 retry-exhausted-silently."""

from __future__ import annotations

import libcst as cst

from gap_ls.core.flow import Exit, block_exits
from gap_ls.core.model import Family
from gap_ls.core.nodes import body_statements
from gap_ls.core.rule import FixRequest
from gap_ls.core.summary import ModuleSummary, UnitFacts
from gap_ls.rules.errors.handlers import (
    CAN_CONTINUE,
    Handler,
    HandlerRule,
    Shape,
    classify,
    failure_after,
    handler_facts,
    is_failure_value,
    loop_can_exhaust,
    next_step,
    open_handlers,
    retry_loop_of,
)


class RetryExhaustedSilently(HandlerRule):
    """
    ## What it does
    Flags a bounded retry loop — `for attempt in range(n)`, a list of back-off
    delays, a counter `while`, or `while True` with a counter that `break`s —
    whose `try` leaves the loop on success and whose handler lets the loop go
    on, so that after the last failed attempt the function continues and
    returns normally: an implicit `None`, a default, or code after the loop
    that uses a result that was never set.

    ## Why is this bad?
    Every attempt failed, and the caller is told nothing. The function returns
    `None` (which a caller may read as "no data") or goes on with a stale value;
    the last exception, the one that explains the outage, is thrown away. Ruff's
    RET503 autofix even writes the `return None` in for you.

    ## What gap-ls cannot verify
    - Whether callers handle the implicit `None` (or the default) as a failure.
    - Whether the retried operation is safe to repeat at all (see GAP3xx).

    ## Example
    ```python
    def fetch_rates():
        for attempt in range(3):
            try:
                return client.get("/rates").json()
            except httpx.HTTPError:
                log.warning("attempt %d failed", attempt)
                time.sleep(2 ** attempt)
    ```

    ## Use instead
    ```python
    def fetch_rates():
        for attempt in range(3):
            try:
                return client.get("/rates").json()
            except httpx.HTTPError as exc:
                last_error = exc
                log.warning("attempt %d failed", attempt)
                time.sleep(2 ** attempt)
        raise RuntimeError("rates unavailable after 3 attempts") from last_error
    ```
    or use tenacity with `stop=stop_after_attempt(3), reraise=True`.

    ## Fix
    *Re-raise after the last attempt*: keeps the last exception and raises it
    after the loop (a `TODO(gap-ls)` asks which error type callers expect).
    """

    code = "GAP105"
    flagged_ends = CAN_CONTINUE
    name = "retry-exhausted-silently"
    family = Family.SWALLOWED_ERROR
    title = "Retry loop can run out of attempts and return normally"

    @classmethod
    def relevant(cls, facts: UnitFacts | None, summary: ModuleSummary, found: tuple[str, ...] = ()) -> bool:
        return facts is None or any(h.in_loop and h.try_exits for h in open_handlers(facts, cls.flagged_ends))

    def check_handler(self, handler: Handler) -> None:
        context = self.context
        facts = handler_facts(handler, context)
        if classify(facts, context) is not Shape.RETRY:
            return
        retry = retry_loop_of(facts, context)
        assert retry is not None, "Shape.RETRY implies a retry loop"
        if facts.raises_somewhere or not loop_can_exhaust(retry.loop, context):
            return
        if retry.loop.orelse is not None and not block_exits(body_statements(retry.loop.orelse), context.never_returns) & Exit.FALLTHROUGH:
            return  # for ... else: raise
        if failure_after(retry.loop, context):
            return
        kind, after = next_step(retry.loop, context)
        if kind == "statement" and isinstance(after, cst.SimpleStatementLine):
            returned = [s for s in after.body if isinstance(s, cst.Return)]
            if returned and is_failure_value(returned[0].value, None, context):
                return
        outcome = {
            "end": "the function falls off its end (returns `None`)",
            "loop": "the outer loop carries on",
        }.get(kind, "the code after the loop runs as if an attempt had succeeded")
        self.report(
            retry.loop,
            f"Retry loop can exhaust its attempts silently: after the last failure {outcome}",
            checked=(
                "the loop is bounded and leaves on success (return/break in the `try`)",
                f"the handler {facts.log_fact()} and lets the loop go on",
                "no raise in the handler, in a `for ... else`, or after the loop",
            ),
            unverifiable=(
                "whether callers treat the outcome after exhaustion as a failure",
                "whether the retried operation is safe to repeat",
            ),
            related=((handler, "failures are swallowed here"),),
            fixes=(FixRequest("raise-after-retries", "Re-raise after the last attempt", retry.loop, {}),),
            anchor=retry.loop,
        )
