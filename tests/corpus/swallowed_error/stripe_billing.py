"""Stripe integration: customers, subscriptions, invoices and webhooks."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import sentry_sdk
import stripe
from django.conf import settings
from django.http import HttpResponse

from billing.models import Customer, Subscription
from billing.signals import subscription_changed

log = logging.getLogger(__name__)
stripe.api_key = settings.STRIPE_SECRET_KEY


class BillingError(Exception):
    pass


def create_customer(user) -> str:
    try:
        customer = stripe.Customer.create(
            email=user.email,
            name=user.get_full_name(),
            metadata={"user_id": str(user.pk)},
            idempotency_key=f"customer-{user.pk}",
        )
    except stripe.error.StripeError as e:
        log.exception("stripe customer creation failed for user %s", user.pk)
        raise BillingError("could not create billing profile") from e
    Customer.objects.create(user=user, stripe_id=customer.id)
    return customer.id


def charge_invoice(invoice) -> str | None:
    try:
        intent = stripe.PaymentIntent.create(
            amount=invoice.amount_cents,
            currency=invoice.currency,
            customer=invoice.customer.stripe_id,
            payment_method=invoice.customer.default_payment_method,
            off_session=True,
            confirm=True,
            idempotency_key=f"invoice-{invoice.pk}",
        )
    except stripe.error.CardError as e:
        invoice.mark_failed(reason=e.user_message or e.code)
        return None
    invoice.mark_paid(intent.id)
    return intent.id


def get_upcoming_invoice_total(customer_id: str) -> int:
    try:
        upcoming = stripe.Invoice.upcoming(customer=customer_id)
    except stripe.error.StripeError as e:
        log.warning("could not fetch upcoming invoice for %s: %s", customer_id, e)
        return 0
    return upcoming.amount_due


def sync_subscription_status(sub: Subscription) -> None:
    try:
        remote = stripe.Subscription.retrieve(sub.stripe_id)
        sub.status = remote.status
        sub.current_period_end = datetime.fromtimestamp(remote.current_period_end, tz=timezone.utc)
        sub.cancel_at_period_end = remote.cancel_at_period_end
    except Exception as e:
        log.warning("subscription %s sync failed: %s", sub.pk, e)
    sub.save()
    subscription_changed.send(sender=Subscription, instance=sub)


def attach_tax_id(customer_id: str, vat_number: str) -> None:
    try:
        stripe.Customer.create_tax_id(customer_id, type="eu_vat", value=vat_number)
    except Exception: pass


def list_payment_methods(customer_id: str) -> list[dict]:
    try:
        methods = stripe.PaymentMethod.list(customer=customer_id, type="card")
        return [
            {"id": m.id, "brand": m.card.brand, "last4": m.card.last4, "exp": f"{m.card.exp_month}/{m.card.exp_year}"}
            for m in methods.auto_paging_iter()
        ]
    except Exception as e:
        sentry_sdk.capture_exception(e)
        return []


def refund_charges(charge_ids: list[str], reason: str = "requested_by_customer") -> list[str]:
    refunded, errors = [], []
    for charge_id in charge_ids:
        try:
            refund = stripe.Refund.create(charge=charge_id, reason=reason, idempotency_key=f"refund-{charge_id}")
            refunded.append(refund.id)
        except stripe.error.StripeError as e:
            e.add_note(f"charge {charge_id}")
            errors.append(e)
    if errors:
        raise ExceptionGroup(f"{len(errors)} of {len(charge_ids)} refunds failed", errors)
    return refunded


def stripe_webhook(request) -> HttpResponse:
    try:
        event = stripe.Webhook.construct_event(
            request.body, request.headers.get("Stripe-Signature"), settings.STRIPE_WEBHOOK_SECRET
        )
    except (ValueError, stripe.error.SignatureVerificationError):
        return HttpResponse(status=400)
    if event["type"].startswith("customer.subscription."):
        sub = Subscription.objects.get(stripe_id=event["data"]["object"]["id"])
        sync_subscription_status(sub)
    return HttpResponse(status=200)


def has_active_subscription(customer_id: str) -> bool:
    try:
        subs = stripe.Subscription.list(customer=customer_id, status="active", limit=1)
    except Exception:
        log.warning("subscription check failed for %s", customer_id, exc_info=True)
        return False
    return bool(subs.data)
