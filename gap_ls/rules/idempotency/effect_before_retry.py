"""GAP305 side-effect-before-retry-point."""

from __future__ import annotations

import libcst as cst

from gap_ls.rules.idempotency.shared import IdempotencyRule, NodeIndex, Verdict, effect_facts


class SideEffectBeforeRetryPoint(IdempotencyRule):
    """
    ## What it does
    Flags a non-idempotent side effect without a key that runs inside a
    retried scope *before* another call that can fail — a second remote call,
    a database write, an SDK call, a helper that does I/O. When that later
    call fails, the retry runs the whole scope again, and the effect that had
    already succeeded happens twice.

    Not flagged: effects with a stable key, effects after the last call that
    can fail (that is GAP301's case), calls on the effect's own response
    (`resp.raise_for_status()`, `resp.json()`), logging and local computation.

    ## Why is this bad?
    The retry was written for the flaky call at the end; the e-mail, charge or
    insert before it rides along. One outage of the second service sends three
    e-mails, or charges three times.

    ## What gap-ls cannot verify
    - Whether the later call really raises the exceptions the retry catches.
    - Whether the earlier effect is deduplicated by the service that receives it.

    ## Example
    ```python
    @app.task(bind=True, autoretry_for=(RequestException,), max_retries=5)
    def fulfil(self, order_id):
        send_mail("Your order shipped", body, FROM, [customer_email(order_id)])
        requests.put(f"{WAREHOUSE}/orders/{order_id}/ship", timeout=5).raise_for_status()
    ```

    ## Use instead
    Do the flaky call first, or give the effect a key, or move it into its own
    task that runs once after the retried part succeeded.

    ## Fix
    *Add an idempotency key*, as for GAP301, where the effect takes one.
    """

    code = "GAP305"
    name = "side-effect-before-retry-point"
    title = "Side effect runs before a later call whose failure retries it"

    def report_verdict(self, verdict: Verdict, node: cst.CSTNode, index: NodeIndex) -> None:
        step, later = verdict.step, verdict.later
        assert step is not None and step.effect is not None and later is not None
        where = f" in `{step.effect.via}()`" if step.effect.via else ""
        self.report(
            node,
            f"{step.effect.label}{where} runs before `{later.callee}()`: if that call fails, "
            f"{verdict.scope.how} repeats this effect",
            checked=(
                f"the scope is retried by {verdict.scope.how}",
                *effect_facts(step.effect),
                f"a later call in the same scope can fail: `{later.callee}()`",
            ),
            unverifiable=(
                "whether the later call raises the exceptions the retry catches",
                "whether the service receiving the earlier effect deduplicates it",
                "once a key is added: whether the service honours it, and how long it remembers it",
            ),
            related=self.related(verdict, index),
            fixes=self.key_fix(verdict, node, index),
        )
