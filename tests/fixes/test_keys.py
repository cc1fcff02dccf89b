"""The idempotency fixes, before and after: where the key ends up, in which form, and that a
second application changes nothing (the generic checks in test_fixes.py run on every fixture)."""

from __future__ import annotations

import ast
import textwrap

from gap_ls.core.engine import analyze
from gap_ls.core.settings import Settings
from gap_ls.fixes import compute_edits
from gap_ls.fixes.edits import apply_edits


def fix(source: str, code: str, kind: str) -> str:
    source = textwrap.dedent(source)
    [finding] = [f for f in analyze(source).findings if f.code == code]
    fixed = apply_edits(source, compute_edits(source, finding, kind))
    ast.parse(fixed)
    assert not [f for f in analyze(fixed, Settings(select=(code,))).findings], fixed
    return fixed


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if needle in line)


def test_key_for_a_retry_loop_is_minted_once_before_the_loop():
    fixed = fix(
        """\
        import time
        import requests

        def send(payload):
            for attempt in range(3):
                try:
                    return requests.post("https://api/events", json=payload, timeout=5).json()
                except requests.Timeout:
                    time.sleep(2 ** attempt)
            raise RuntimeError("gave up")
        """,
        "GAP301",
        "idempotency-key",
    )
    assert "import uuid" in fixed
    assert line_of(fixed, "idempotency_key = str(uuid.uuid4())") < line_of(fixed, "for attempt in range(3):")
    assert 'headers={"Idempotency-Key": idempotency_key}' in fixed


def test_key_made_inside_a_decorated_function_moves_to_a_caller_that_mints_it_once():
    fixed = fix(
        """\
        import uuid
        import requests
        from tenacity import retry, stop_after_attempt


        @retry(stop=stop_after_attempt(3))
        def create_order(payload):
            key = str(uuid.uuid4())
            resp = requests.post("https://api/orders", json=payload, headers={"Idempotency-Key": key})
            return resp.json()
        """,
        "GAP302",
        "hoist-key",
    )
    tree = ast.parse(fixed)
    inner, outer = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert inner.name == "_create_order_attempt" and [a.arg for a in inner.args.kwonlyargs] == ["key"]
    assert inner.decorator_list and not outer.decorator_list  # the retry stays on the inner half
    assert outer.name == "create_order" and "uuid" not in ast.unparse(inner)
    assert "_create_order_attempt(payload, key=str(uuid.uuid4()))" in ast.unparse(outer)


def test_key_made_inside_a_loop_is_hoisted_above_it():
    fixed = fix(
        """\
        import time
        import uuid
        import httpx

        def pay(client, body):
            for attempt in range(5):
                key = uuid.uuid4().hex
                try:
                    return client.post("/payments", json=body, headers={"Idempotency-Key": key})
                except httpx.TransportError:
                    time.sleep(attempt)
            raise RuntimeError("payment service unavailable")
        """,
        "GAP302",
        "hoist-key",
    )
    assert line_of(fixed, "key = uuid.uuid4().hex") < line_of(fixed, "for attempt in range(5):")


def test_bound_celery_task_uses_its_request_id_as_the_key():
    fixed = fix(
        """\
        import uuid
        import stripe
        from celery import shared_task

        @shared_task(bind=True, max_retries=5)
        def refund(self, charge_id):
            try:
                stripe.Refund.create(charge=charge_id, idempotency_key=str(uuid.uuid4()))
            except stripe.error.APIConnectionError as exc:
                raise self.retry(exc=exc)
        """,
        "GAP302",
        "hoist-key",
    )
    assert "idempotency_key=self.request.id)  # TODO(gap-ls): was `str(uuid.uuid4())`" in fixed


def test_sqs_key_is_a_deduplication_id_from_the_order():
    fixed = fix(
        """\
        import boto3
        import backoff
        from botocore.exceptions import ClientError

        sqs = boto3.client("sqs")

        @backoff.on_exception(backoff.expo, ClientError, max_tries=5)
        def enqueue(order_id, body):
            sqs.send_message(QueueUrl="https://sqs/orders.fifo", MessageBody=body, MessageGroupId="orders")
        """,
        "GAP301",
        "idempotency-key",
    )
    assert 'MessageDeduplicationId=f"message-{order_id}")  # TODO(gap-ls): SQS/SNS FIFO only' in fixed


def test_http_retry_policy_is_limited_to_idempotent_methods():
    fixed = fix(
        """\
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        session = requests.Session()
        session.mount("https://", HTTPAdapter(max_retries=Retry(total=5, status_forcelist=[502], allowed_methods=None)))

        def create(order):
            return session.post("https://api/orders", json=order)
        """,
        "GAP303",
        "safe-methods",
    )
    assert "Retry(total=5, status_forcelist=[502], allowed_methods=Retry.DEFAULT_ALLOWED_METHODS)" in fixed
    assert "was `allowed_methods=None`" in fixed


def test_webhook_records_the_event_id_before_its_first_effect():
    fixed = fix(
        """\
        import stripe
        from django.http import HttpResponse
        from shop.models import Payment

        def stripe_webhook(request):
            event = stripe.Webhook.construct_event(request.body, request.headers["Stripe-Signature"], "whsec")
            Payment.objects.create(intent=event["data"]["object"]["id"])
            return HttpResponse(status=200)
        """,
        "GAP304",
        "record-message-first",
    )
    guard = line_of(fixed, "if not cache.add(f\"processed:{event['id']}\", 1, timeout=7 * 24 * 3600):")
    assert line_of(fixed, "from django.core.cache import cache") < guard < line_of(fixed, "Payment.objects.create")
    assert "return HttpResponse(status=200)  # already handled" in fixed.splitlines()[guard + 1]
