"""GAP103 broad-suppress."""

from __future__ import annotations

import libcst as cst

from gap_ls.core.model import Family
from gap_ls.core.rule import FixRequest
from gap_ls.core.summary import ModuleSummary, UnitFacts
from gap_ls.rules.errors.handlers import (
    BROAD,
    Handler,
    HandlerRule,
    Shape,
    classify,
    expected_exceptions,
    explanatory_comment,
    handler_facts,
    handler_fixes,
    in_cleanup_context,
    is_error_boundary,
    may_be_broad,
    only_imports,
    open_handlers,
)

SUPPRESSORS = frozenset({"contextlib.suppress"})


class BroadSuppress(HandlerRule):
    """
    ## What it does
    Flags `contextlib.suppress(Exception)` (or `BaseException`, under any import
    alias) and bare / `Exception` / `BaseException` handlers whose whole body is
    `pass` or `...`: every error in the block disappears without a trace.

    ## Why is this bad?
    Nothing is logged, nothing is raised, nothing is returned: a typo, a
    database outage and a permissions error all look exactly like success.
    `suppress(Exception)` is the form ruff's SIM105 rewrites broad `try/except:
    pass` into, and no linter looks at it afterwards.

    ## What gap-ls cannot verify
    - Which exception types the block can really raise at run time (dynamic
      dispatch, C extensions), so which narrower type was meant.
    - Whether losing this work is harmless (a best-effort cache warm-up) or
      corrupts state.

    ## Example
    ```python
    with suppress(Exception):
        cache.set(key, render(report))
    ```

    ## Use instead
    ```python
    with suppress(ConnectionError):  # the cache is optional; a render error is a bug
        cache.set(key, render(report))
    ```

    ## Fix
    *Narrow the exception* to the types the block documents (offered as a
    choice), or *Re-raise after handling*.

    ## Options
    Not reported when the handler carries a comment saying why (CodeQL's
    convention), for best-effort cleanup while another error propagates (inside
    `finally`, `except`, `__exit__`, `close()`…), and for optional imports.
    """

    code = "GAP103"
    name = "broad-suppress"
    family = Family.SWALLOWED_ERROR
    title = "Broad suppression drops every error without a trace"
    triggers = ("except", "suppress")
    flagged_ends = frozenset({""})  # `pass` only

    def visit_With(self, node: cst.With) -> None:
        for item in node.items:
            call = item.item
            if not isinstance(call, cst.Call) or self.context.qualify_call(call) not in SUPPRESSORS:
                continue
            broad = [arg for arg in call.args if self.context.qualify(arg.value) in BROAD]
            if broad and not in_cleanup_context(node, self.context):
                self._report_suppress(node, call, broad[0].value)

    @classmethod
    def relevant(cls, facts: UnitFacts | None, summary: ModuleSummary, found: tuple[str, ...] = ()) -> bool:
        if facts is None or any(summary.qualify(c) in SUPPRESSORS for c in facts.with_calls):
            return True
        return any(may_be_broad(h, summary) for h in open_handlers(facts, cls.flagged_ends))

    def check_handler(self, handler: Handler) -> None:
        context = self.context
        facts = handler_facts(handler, context)
        if classify(facts, context) is not Shape.SUPPRESS:
            return
        if explanatory_comment(handler) is not None:
            return
        if in_cleanup_context(facts.try_node, context) or only_imports(facts.try_node):
            return
        function = context.enclosing_function(handler)
        if is_error_boundary(function, context):
            return
        self.report(
            handler,
            f"{facts.caught_text()} with only `pass`: every error in the `try` is dropped without a trace",
            checked=(
                f"{facts.caught_fact()} (broad)",
                "the handler body is only `pass`/`...`",
                "no comment in the handler explains why",
            ),
            unverifiable=(
                "which exception types the `try` body can really raise at run time",
                "whether losing this work is harmless or corrupts state",
            ),
            fixes=handler_fixes(facts, context),
        )

    def _narrowing(self, with_node: cst.With) -> tuple[FixRequest, ...]:
        types = expected_exceptions(with_node, self.context)
        if not types:
            return ()
        title = f"Narrow the exception to {', '.join(f'`{t}`' for t in types)}"
        return (FixRequest("narrow", title, with_node, {"types": types}),)

    def _report_suppress(self, with_node: cst.With, call: cst.Call, broad: cst.BaseExpression) -> None:
        name = cst.Module(body=[]).code_for_node(broad)
        self.report(
            call,
            f"`suppress({name})` drops every error in the block without a trace",
            header=False,
            checked=(
                f"`contextlib.suppress` with `{name}` (broad)",
                "nothing in the block logs, re-raises or records the failure",
            ),
            unverifiable=(
                "which exception types the block can really raise at run time",
                "whether losing this work is harmless or corrupts state",
            ),
            fixes=self._narrowing(with_node),
            anchor=with_node,
        )

