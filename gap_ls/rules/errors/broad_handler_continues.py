"""GAP101 broad-handler-continues."""

from __future__ import annotations

import libcst as cst

from gap_ls.core.model import Family
from gap_ls.rules.errors.handlers import (
    CAN_CONTINUE,
    Handler,
    HandlerFacts,
    HandlerRule,
    Shape,
    assigned_in,
    branches_on_error,
    classify,
    enclosing_loop,
    first_use,
    following_statements,
    handler_facts,
    handler_fixes,
    in_cleanup_context,
    is_error_boundary,
    mutated_objects,
    next_step,
    only_imports,
    preceding_assignments,
    produced_names,
)


class BroadHandlerContinues(HandlerRule):
    """
    ## What it does
    Flags a bare `except:`, `except Exception` or `except BaseException` that
    neither raises nor returns an explicit failure, and lets execution carry on:

    - the code after the `try` uses what the `try` was meant to produce (a name
      it assigns, an object it was part-way through updating);
    - in a loop, the handler skips to the next item without logging the
      traceback and without recording the failure;
    - at the end of a function, the error is reduced to a `print` or a log line
      without traceback (or to nothing), and the caller believes it worked.

    ## Why is this bad?
    The program goes on in a state nobody planned for: a variable that was never
    assigned (a `NameError` three lines later, far from the cause), an order
    marked paid whose charge failed, a batch that reports success with a third
    of its items missing. A warning without traceback is rarely noticed and
    never enough to debug the failure. Tests pass, because they do not make the
    `try` body fail.

    ## What gap-ls cannot verify
    - Whether the state left behind is harmless: the skipped item may be retried
      by a later run, or the half-updated object discarded.
    - Whether someone watches this log line and acts on it.
    - Which exceptions the `try` body can really raise (dynamic dispatch, C
      extensions), so whether a narrower handler would do.

    ## Example
    ```python
    for order in orders:
        try:
            gateway.charge(order)
            order.status = "paid"
        except Exception as exc:
            log.warning("charge failed: %s", exc)
        order.save()
    ```

    ## Use instead
    ```python
    for order in orders:
        try:
            gateway.charge(order)
        except PaymentError:
            log.exception("charge failed for order %s", order.id)
            order.status = "payment_failed"
            order.save()
            continue
        order.status = "paid"
        order.save()
    ```

    ## Fix
    *Re-raise after handling* keeps what the handler does and appends `raise`
    (logging with `exception` where it logged below ERROR). *Narrow the
    exception* is offered when the `try` body shows which errors it expects.
    Both leave a `TODO(gap-ls)` where a decision is yours.

    ## Options
    `error-boundaries` lists functions (or decorators) where a broad handler is
    a deliberate boundary; `logging-calls` adds your own reporting functions.
    """

    code = "GAP101"
    flagged_ends = CAN_CONTINUE
    name = "broad-handler-continues"
    family = Family.SWALLOWED_ERROR
    title = "Broad handler lets execution continue after an error"

    def check_handler(self, handler: Handler) -> None:
        context = self.context
        facts = handler_facts(handler, context)
        if not facts.broad or classify(facts, context) is not Shape.CONTINUES:
            return
        function = context.enclosing_function(handler)
        if in_cleanup_context(facts.try_node, context) or only_imports(facts.try_node):
            return
        if is_error_boundary(function, context) and facts.logs:
            return
        if facts.raises_somewhere or branches_on_error(facts):
            return  # it tells errors apart: which ones carry on is a visible decision
        produced = produced_names(facts.try_node) - assigned_in(handler)
        produced -= set(preceding_assignments(facts.try_node, context))
        use = first_use(following_statements(facts.try_node, context), produced, mutated_objects(facts.try_node))
        if use is not None:
            self._report_use(facts, use)
            return
        log = facts.best_log
        if log is not None and log.visible:
            return
        kind, _ = next_step(facts.try_node, context)
        if enclosing_loop(facts.try_node, context) is not None:
            self._report(facts, "continues the loop: the failed item is skipped", "the handler lets the loop go on to the next item")
        elif kind == "end":
            self._report(facts, "carries on as if it worked", "nothing after the handler tells the caller it failed")

    def _report_use(self, facts: HandlerFacts, use: tuple[cst.CSTNode, str]) -> None:
        statement, name = use
        self.report(
            facts.handler,
            f"{facts.caught_text()} {facts.log_fact()}, then the code after the `try` uses `{name}` "
            "as if the `try` had succeeded",
            checked=(
                f"{facts.caught_fact()} (broad)",
                "no raise and no explicit failure on the path out of the handler",
                facts.log_fact(),
                f"`{name}` is set or updated in the `try` body and read after the handler",
            ),
            unverifiable=(
                f"whether `{name}` still holds a usable value when the `try` failed",
                "whether the state left behind is discarded or retried elsewhere",
            ),
            related=((statement, f"`{name}` used here after a possible failure"),),
            fixes=handler_fixes(facts, self.context),
        )

    def _report(self, facts: HandlerFacts, outcome: str, fact: str) -> None:
        self.report(
            facts.handler,
            f"{facts.caught_text()} {facts.log_fact()} and {outcome}",
            checked=(
                f"{facts.caught_fact()} (broad)",
                "no raise and no explicit failure on the path out of the handler",
                facts.log_fact(),
                fact,
                "the failure is not recorded (no error list, no failed status, no counter)",
            ),
            unverifiable=(
                "whether the skipped work leaves shared or persistent state inconsistent",
                "whether someone monitors this log output and acts on it",
            ),
            fixes=handler_fixes(facts, self.context),
        )
