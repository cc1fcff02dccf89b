"""GAP304 at-least-once-without-dedup."""

from __future__ import annotations

import libcst as cst

from gap_ls.core.rule import FixRequest
from gap_ls.rules.idempotency.shared import IdempotencyRule, NodeIndex, Verdict, effect_facts

_ID_EXPRESSIONS = ('event["id"]', "event['id']", "event.id", 'record["messageId"]', "record['messageId']",
                   "message.message_id", "msg.message_id", "properties.message_id", "delivery_id", "event_id",
                   "message_id")


def message_id(function: cst.FunctionDef) -> str:
    """An expression naming the delivery in this handler, if one is in sight."""
    text = cst.Module(body=[]).code_for_node(function)
    found = next((candidate for candidate in _ID_EXPRESSIONS if candidate in text), "")
    if not found and "construct_event(" in text and "event =" in text:
        found = "event['id']"
    return found


class AtLeastOnceWithoutDedup(IdempotencyRule):
    """
    ## What it does
    Flags a side effect performed by a handler whose messages can arrive more
    than once — a Celery task with `acks_late=True` (or
    `reject_on_worker_lost=True`), a queue consumer (a Kafka `for msg in
    consumer` loop, an SQS `receive_message` loop, a pika/kombu callback, a
    Lambda handler over `event["Records"]`), a webhook view (a route or name
    with "webhook", or one that verifies a provider signature such as
    `stripe.Webhook.construct_event`) — before any dedup guard and without a
    stable key.

    Not flagged: handlers that first record or check the message id (a unique
    insert with `IntegrityError` handling, `cache.add`, `set(nx=True)`,
    `get_or_create`, an early return on "already processed"), effects keyed by
    the event id, and Powertools `@idempotent` handlers. Recording the id
    *after* the effect does not count: a crash between the two redelivers it.

    ## Why is this bad?
    Brokers and webhook providers deliver at least once: a worker crash, a
    visibility timeout or a slow 200 means the same message again. Without a
    dedup record the second delivery charges, mails or inserts again.

    ## What gap-ls cannot verify
    - The broker's delivery settings (visibility timeout, `acks_late`, consumer
      group commits) and whether the producer re-sends duplicates under new ids.
    - Whether a unique constraint downstream rejects the duplicate.

    ## Example
    ```python
    @csrf_exempt
    def stripe_webhook(request):
        event = stripe.Webhook.construct_event(request.body, request.headers["Stripe-Signature"], SECRET)
        Payment.objects.create(order_id=event["data"]["object"]["metadata"]["order"], amount=...)
        return HttpResponse(status=200)
    ```

    ## Use instead
    ```python
        if not cache.add(f"stripe-event:{event['id']}", 1, timeout=7 * 86400):
            return HttpResponse(status=200)  # already handled
        Payment.objects.create(...)
    ```
    or insert the event id into a table with a unique constraint in the same
    transaction as the effect.

    ## Fix
    *Record the message id first* (Django): a `cache.add` guard on the message
    id before the first effect, with a `TODO(gap-ls)` to make it a unique insert
    in the effect's transaction where the effect is a database write.
    """

    code = "GAP304"
    name = "at-least-once-without-dedup"
    title = "Handler of at-least-once deliveries repeats a side effect for a duplicate"

    def report_verdict(self, verdict: Verdict, node: cst.CSTNode, index: NodeIndex) -> None:
        step = verdict.step
        assert step is not None and step.effect is not None
        effect = step.effect
        where = f" in `{effect.via}()`" if effect.via else ""
        fixes = []
        if "django" in {v.split(".")[0] for v in self.context.summary.imports.values()}:
            function = next((n for n in index.nodes if isinstance(n, cst.FunctionDef)
                             and n.name.value == verdict.scope.function.rsplit(".", 1)[-1]), None)
            identifier = message_id(function) if function is not None else ""
            if function is not None and identifier:
                fixes.append(FixRequest("record-message-first", "Record the message id first (cache.add guard)",
                                        node, {"id": identifier}, {"function": function}))
        self.report(
            node,
            f"{effect.label}{where} runs for every delivery: {verdict.scope.how}, and nothing records the "
            "message id first",
            checked=(
                f"this is {verdict.scope.how}",
                *effect_facts(effect),
                "no dedup guard (unique insert of the id, `cache.add`, `set(nx=True)`, `get_or_create`, "
                "an early return on an already-processed check, `@idempotent`) runs before it",
            ),
            unverifiable=(
                *(("how often and for how long the provider re-sends, and whether a re-send keeps the event id",)
                  if "webhook" in verdict.scope.how else
                  ("the broker's delivery settings (visibility timeout, acks, consumer-group commits)",)),
                "whether the producer re-sends a duplicate under a new id",
                "whether a unique constraint downstream rejects the duplicate",
            ),
            related=self.related(verdict, index),
            fixes=fixes,
        )
