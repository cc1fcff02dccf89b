"""GAP302 key-regenerated-per-attempt."""

from __future__ import annotations

import libcst as cst

from gap_ls.core.rule import FixRequest
from gap_ls.rules.idempotency.shared import KEY_NOTES, IdempotencyRule, NodeIndex, Verdict


class KeyRegeneratedPerAttempt(IdempotencyRule):
    """
    ## What it does
    Flags an idempotency key made inside the retried scope — `uuid4()`,
    `time.time()`, `datetime.now()`, `random`, `secrets.token_hex()` in the
    decorated function or in the body of the retry loop — and passed to a side
    effect as its key. Each attempt sends a new key.

    Not flagged: a key minted before the loop, passed in as a parameter, or
    derived from a stable id (`f"order-{order.id}"`, `uuid5(NAMESPACE, order.id)`,
    `self.request.id`).

    ## Why is this bad?
    A key that changes on every attempt deduplicates nothing: the service sees
    two different requests and performs both. The code looks safe — it has a
    key — which is why this survives review.

    ## What gap-ls cannot verify
    - Whether the remote service honours the key, and how long it remembers it.
    - Whether the value is really random per call (a helper may cache it).

    ## Example
    ```python
    @retry(stop=stop_after_attempt(5))
    def send_payout(account, amount):
        return stripe.Transfer.create(amount=amount, destination=account, idempotency_key=str(uuid.uuid4()))
    ```

    ## Use instead
    ```python
    def send_payout(account, amount):
        return _send_payout(account, amount, idempotency_key=str(uuid.uuid4()))

    @retry(stop=stop_after_attempt(5))
    def _send_payout(account, amount, idempotency_key):
        return stripe.Transfer.create(amount=amount, destination=account, idempotency_key=idempotency_key)
    ```

    ## Fix
    *Move key creation out of the retry*: in a loop, the key is assigned once
    before the loop; in a decorated function, the function is split into an
    outer one that mints the key and the retried one that takes it.
    """

    code = "GAP302"
    name = "key-regenerated-per-attempt"
    title = "Idempotency key made afresh on every attempt"

    def report_verdict(self, verdict: Verdict, node: cst.CSTNode, index: NodeIndex) -> None:
        step = verdict.step
        assert step is not None and step.effect is not None
        effect_node = index.get((step.line, step.column), step.end)
        related = self.related(verdict, index)
        if effect_node is not None and effect_node is not node:
            related.insert(0, (effect_node, f"the key is sent with {step.effect.label} here"))
        scope = self.scope_node(verdict, index)
        fixes = []
        function = next((n for n in index.nodes if isinstance(n, cst.FunctionDef)
                         and n.name.value == verdict.scope.function.rsplit(".", 1)[-1]), None)
        loop = isinstance(scope, (cst.For, cst.While))
        if scope is not None and (loop or verdict.scope.celery_bound or self.splittable(function)):
            nodes = {"scope": scope, **({"function": function} if function is not None else {})}
            kind = "loop" if loop else "decorator"
            fixes.append(FixRequest("hoist-key", "Move key creation out of the retry", node, {"scope": kind}, nodes))
        self.report(
            node,
            f"Idempotency key is made afresh on every attempt of {verdict.scope.how}: a retry sends a new key, "
            "so the service cannot tell it is a repeat",
            checked=(
                f"{step.effect.label} carries a key",
                f"the key is made here, inside the scope {verdict.scope.how} repeats",
            ),
            unverifiable=(*KEY_NOTES, "whether this value is really new per call (a helper may cache it)"),
            related=related,
            fixes=fixes,
        )
