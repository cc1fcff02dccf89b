"""Stripe payments: order charges, payment intents, seller payouts and webhooks."""
from __future__ import annotations

import logging
import time
import uuid
from decimal import ROUND_HALF_UP, Decimal

import stamina
import stripe
from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse, HttpResponseBadRequest
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from tenacity import (
    Retrying,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_fixed,
    wait_random_exponential,
)

from marketplace.models import Order, Payout, StripeEvent
from marketplace.tasks import notify_seller_onboarded, send_order_confirmation

log = logging.getLogger(__name__)
stripe.api_key = settings.STRIPE_SECRET_KEY

TRANSIENT_STRIPE_ERRORS = (stripe.error.APIConnectionError, stripe.error.RateLimitError)


class PayoutFailed(Exception):
    pass


def _to_cents(amount: Decimal) -> int:
    return int((amount * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def _charge_metadata(order) -> dict[str, str]:
    return {
        "order_id": str(order.pk),
        "order_number": order.number,
        "channel": order.channel or "web",
    }


@retry(
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.5, max=4),
    retry=retry_if_exception_type(TRANSIENT_STRIPE_ERRORS),
    reraise=True,
)
def charge_order(order) -> str:
    charge = stripe.Charge.create(
        amount=_to_cents(order.total),
        currency=order.currency.lower(),
        customer=order.customer.stripe_customer_id,
        description=f"Order {order.number}",
        metadata=_charge_metadata(order),
    )
    log.info("charged order %s: %s", order.pk, charge.id)
    return charge.id


@retry(
    stop=stop_after_attempt(4),
    wait=wait_random_exponential(multiplier=1, max=20),
    retry=retry_if_exception_type(stripe.error.APIConnectionError),
    reraise=True,
)
def create_payment_intent(cart, payment_method_id: str) -> stripe.PaymentIntent:
    # one key per checkout attempt so a declined card can be retried with another method
    idem_key = f"pi-{cart.id}-{uuid.uuid4().hex[:12]}"
    return stripe.PaymentIntent.create(
        amount=_to_cents(cart.total),
        currency=cart.currency.lower(),
        customer=cart.customer.stripe_customer_id,
        payment_method=payment_method_id,
        confirm=True,
        automatic_payment_methods={"enabled": True, "allow_redirects": "never"},
        metadata={"cart_id": str(cart.id)},
        idempotency_key=idem_key,
    )


@retry(
    stop=stop_after_attempt(5),
    wait=wait_exponential(multiplier=1, max=30),
    retry=retry_if_exception_type(stripe.error.APIConnectionError),
    reraise=True,
)
def refund_payment(payment, amount_cents: int | None = None) -> stripe.Refund:
    params = {
        "payment_intent": payment.stripe_payment_intent_id,
        "reason": "requested_by_customer",
    }
    if amount_cents is not None:
        params["amount"] = amount_cents
    return stripe.Refund.create(
        **params,
        idempotency_key=f"refund-{payment.pk}-{amount_cents or 'full'}",
    )


def create_payout(account_id: str, amount_cents: int, currency: str = "usd") -> str:
    last_error: Exception | None = None
    for attempt in range(4):
        try:
            payout = stripe.Payout.create(
                amount=amount_cents,
                currency=currency,
                stripe_account=account_id,
                idempotency_key=f"payout-{account_id}-{int(time.time())}",
            )
            return payout.id
        except TRANSIENT_STRIPE_ERRORS as exc:
            last_error = exc
            log.warning("payout attempt %d for %s failed: %s", attempt + 1, account_id, exc)
            time.sleep(2**attempt)
    raise PayoutFailed(f"payout to {account_id} failed after 4 attempts") from last_error


def pay_out_seller(order, seller) -> str:
    amount = _to_cents(order.seller_share)
    for attempt in stamina.retry_context(on=TRANSIENT_STRIPE_ERRORS, attempts=3):
        with attempt:
            transfer = stripe.Transfer.create(
                amount=amount,
                currency=order.currency.lower(),
                destination=seller.stripe_account_id,
                transfer_group=f"order-{order.pk}",
            )
            Payout.objects.create(
                seller=seller,
                order=order,
                stripe_transfer_id=transfer.id,
                amount_cents=amount,
            )
    return transfer.id


def release_escrow(order, seller) -> str:
    idempotency_key = str(uuid.uuid4())
    for attempt in Retrying(
        stop=stop_after_attempt(3),
        wait=wait_fixed(2),
        retry=retry_if_exception_type(TRANSIENT_STRIPE_ERRORS),
        reraise=True,
    ):
        with attempt:
            transfer = stripe.Transfer.create(
                amount=_to_cents(order.escrow_amount),
                currency=order.currency.lower(),
                destination=seller.stripe_account_id,
                metadata={"order_id": str(order.pk), "kind": "escrow_release"},
                idempotency_key=idempotency_key,
            )
    log.info("released escrow for order %s as %s", order.pk, transfer.id)
    return transfer.id


@csrf_exempt
@require_POST
def stripe_webhook(request) -> HttpResponse:
    try:
        event = stripe.Webhook.construct_event(
            request.body,
            request.headers.get("Stripe-Signature", ""),
            settings.STRIPE_WEBHOOK_SECRET,
        )
    except (ValueError, stripe.error.SignatureVerificationError):
        return HttpResponseBadRequest()

    if event["type"] == "checkout.session.completed":
        session = event["data"]["object"]
        order_id = session["metadata"]["order_id"]
        Order.objects.filter(pk=order_id).update(status=Order.Status.PAID, paid_at=timezone.now())
        send_order_confirmation.delay(order_id)
        StripeEvent.objects.create(event_id=event["id"], type=event["type"])
    return HttpResponse(status=200)


@csrf_exempt
@require_POST
def stripe_connect_webhook(request) -> HttpResponse:
    try:
        event = stripe.Webhook.construct_event(
            request.body,
            request.headers.get("Stripe-Signature", ""),
            settings.STRIPE_CONNECT_WEBHOOK_SECRET,
        )
    except (ValueError, stripe.error.SignatureVerificationError):
        return HttpResponseBadRequest()

    if not cache.add(f"stripe-evt:{event['id']}", 1, timeout=86400):
        return HttpResponse(status=200)

    if event["type"] == "account.updated":
        account = event["data"]["object"]
        if account.get("charges_enabled") and account.get("payouts_enabled"):
            notify_seller_onboarded.delay(account["id"])
    return HttpResponse(status=200)
