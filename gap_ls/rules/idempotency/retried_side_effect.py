"""GAP301 retried-side-effect-without-key."""

from __future__ import annotations

import libcst as cst

from gap_ls.core.idempotency import Effect
from gap_ls.rules.idempotency.shared import IdempotencyRule, NodeIndex, Verdict, effect_facts


def unverifiable_for(effect: Effect) -> tuple[str, ...]:
    if effect.kind == "insert":
        return (
            "whether a unique constraint makes a repeated insert fail instead of duplicating the row",
            "whether the retry policy retries the failures this call raises (a commit that timed out may have succeeded)",
        )
    if effect.kind == "email":
        return (
            "whether the mail provider deduplicates repeated sends (most do not)",
            "whether the retry policy retries the failures this call raises (a timeout after the send)",
        )
    return (
        "whether the remote service deduplicates this request by itself",
        "whether the retry policy retries the failures this call raises (a timeout after success)",
        "once a key is added: whether the service honours it, and how long it remembers it",
    )


class RetriedSideEffectWithoutKey(IdempotencyRule):
    """
    ## What it does
    Flags a non-idempotent side effect — an HTTP POST or PATCH, a payment or
    messaging SDK call (`stripe.PaymentIntent.create`, `gateway.transaction.sale`,
    `sqs.send_message`, `sns.publish`), a row insert (`objects.create`,
    `session.add`, `INSERT` without `ON CONFLICT`), an e-mail, a task enqueued
    with `.delay()` — performed without an idempotency key inside code that is
    retried: a tenacity/backoff/retrying/stamina decorator, a Celery task with
    `autoretry_for` or `self.retry`, a `Retrying` loop, or a hand-written
    `for attempt in range(n)` loop. A helper in the same module that performs
    the effect counts, reported at its call. The effect is the last thing in
    the scope that can fail (see GAP305 for an effect followed by other calls).

    Not flagged: GET, PUT and DELETE (idempotent by HTTP semantics), a call
    with a stable key (`idempotency_key=`, an `Idempotency-Key` header,
    `MessageDeduplicationId`, `ClientToken`, a Celery `task_id`),
    `get_or_create`/`update_or_create`/upserts, a scope behind a dedup guard
    (`cache.add`, `set(nx=True)`, a unique insert of the id with
    `IntegrityError` handling), and Powertools `@idempotent` functions.

    ## Why is this bad?
    A timeout is not a failure: the server may have charged the card, created
    the order or sent the mail before the connection dropped. The retry does it
    again. Tests pass — the mock never times out after succeeding.

    ## What gap-ls cannot verify
    - Whether the remote service deduplicates on its own (some APIs do, by a
      field of the request).
    - Whether the retry policy retries this failure at all (`retry_if_exception_type`).
    - Whether a unique constraint turns a second insert into an error.

    ## Example
    ```python
    @retry(stop=stop_after_attempt(3))
    def charge(order):
        return stripe.PaymentIntent.create(amount=order.total, currency="eur", customer=order.customer_id)
    ```

    ## Use instead
    ```python
    @retry(stop=stop_after_attempt(3))
    def charge(order):
        return stripe.PaymentIntent.create(
            amount=order.total, currency="eur", customer=order.customer_id,
            idempotency_key=f"charge-{order.id}",
        )
    ```

    ## Fix
    *Add an idempotency key*: passes a key in the form the library takes
    (`idempotency_key=`, an `Idempotency-Key` header, `MessageDeduplicationId`,
    `task_id=`), derived from a stable id in scope (an `*_id` parameter,
    `order.id`, `self.request.id`) or minted once before the retry loop; a
    `TODO(gap-ls)` asks to confirm it names one logical operation.
    """

    code = "GAP301"
    name = "retried-side-effect-without-key"
    title = "Retried code repeats a side effect that has no idempotency key"

    def report_verdict(self, verdict: Verdict, node: cst.CSTNode, index: NodeIndex) -> None:
        step = verdict.step
        assert step is not None and step.effect is not None
        effect = step.effect
        where = f" in `{effect.via}()`" if effect.via else ""
        self.report(
            node,
            f"{effect.label}{where} has no idempotency key, and {verdict.scope.how} runs it again after a failure",
            checked=(
                f"the call is retried by {verdict.scope.how}",
                *effect_facts(effect),
                "no dedup guard (`cache.add`, `set(nx=True)`, unique insert, `@idempotent`) runs before it",
            ),
            unverifiable=unverifiable_for(effect),
            related=self.related(verdict, index),
            fixes=self.key_fix(verdict, node, index),
        )
