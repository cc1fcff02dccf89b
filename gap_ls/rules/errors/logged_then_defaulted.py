"""GAP102 logged-then-defaulted."""

from __future__ import annotations

from gap_ls.core.model import Family
from gap_ls.rules.errors.handlers import (
    CAN_DEFAULT,
    Default,
    Handler,
    HandlerFacts,
    HandlerRule,
    Shape,
    classify,
    default_is_contract,
    handler_facts,
    handler_fixes,
    is_error_boundary,
    only_imports,
    success_default,
)


class LoggedThenDefaulted(HandlerRule):
    """
    ## What it does
    Flags a broad handler (bare, `Exception`, `BaseException`) that logs or
    reports the error — at any level, even `logger.exception(...)` or a Sentry
    capture — or does not log at all, and then hands the caller a
    success-shaped default: it returns `None`, `{}`, `[]`, `0`, `False`, `""`
    (or `True`), substitutes such a value for what the `try` was computing, or
    falls off the end of a function that otherwise returns a value.

    ## Why is this bad?
    The caller cannot tell "failed" from "nothing there". An empty list of
    invoices is rendered as "no invoices", a `None` user as "not found", a
    `False` as "declined"; the failure surfaces later as wrong data, not as an
    error. This is exactly the shape ruff's BLE001 exempts (it accepts any
    handler that logs), and the shape AI assistants write most often.

    ## What gap-ls cannot verify
    - Whether every caller treats the default as a failure rather than as a
      normal empty result (callers outside this file are not visible).
    - Whether something outside this file — middleware, monitoring on this log
      line, a caller's retry — alerts on the failure.

    ## Example
    ```python
    def load_invoices(customer_id):
        try:
            return billing.list_invoices(customer_id)
        except Exception:
            logger.exception("could not load invoices")
            return []
    ```

    ## Use instead
    ```python
    def load_invoices(customer_id):
        try:
            return billing.list_invoices(customer_id)
        except Exception:
            logger.exception("could not load invoices")
            raise
    ```
    or catch only what you expect and return an explicit failure the caller must
    handle (a result object, an HTTP 5xx at a view boundary).

    ## Fix
    *Re-raise after handling* keeps the log line and replaces the default with
    `raise`. Not offered silently: a `TODO(gap-ls)` asks whether a caller relied
    on the default.

    ## Options
    Not reported when the function's name makes the fallback its contract
    (`try_*`, `maybe_*`, `safe_*`, `*_or_none`, `*_or_default`), for predicates
    returning a boolean (`is_*`, `has_*`, `can_*`, `check_*`, `*_exists`…), or
    in functions listed in `error-boundaries`.
    """

    code = "GAP102"
    flagged_ends = CAN_DEFAULT
    name = "logged-then-defaulted"
    family = Family.SWALLOWED_ERROR
    title = "Broad handler logs, then returns a success-shaped default"

    def check_handler(self, handler: Handler) -> None:
        context = self.context
        facts = handler_facts(handler, context)
        if not facts.broad or classify(facts, context) is not Shape.DEFAULT:
            return
        default = success_default(facts, context)
        assert default is not None, "Shape.DEFAULT implies a default"
        if only_imports(facts.try_node) or default_is_contract(facts, default, context):
            return
        if is_error_boundary(context.enclosing_function(handler), context) and facts.logs:
            return
        self._report(facts, default)

    def _report(self, facts: HandlerFacts, default: Default) -> None:
        self.report(
            facts.handler,
            f"{facts.caught_text()} {facts.log_fact()} and {default.outcome}: "
            "callers cannot tell the failure from a real result",
            checked=(
                f"{facts.caught_fact()} (broad)",
                facts.log_fact(),
                f"{default.how} `{default.value}`, a success-shaped value",
                "no raise and no explicit failure on that path",
            ),
            unverifiable=(
                f"whether every caller treats `{default.shown}` as a failure rather than as an empty result",
                "whether middleware, monitoring or a caller's retry outside this file alerts on the failure",
            ),
            related=((default.node, f"the default `{default.shown}` leaves here"),),
            fixes=handler_fixes(facts, self.context),
        )
