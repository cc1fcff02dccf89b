"""Celery tasks for checkout, fulfilment and customer notifications."""
import logging
from datetime import timedelta
from smtplib import SMTPException
from uuid import uuid4

import requests
import stripe
from celery import shared_task
from celery.utils.log import get_task_logger
from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMessage, send_mail
from django.db import OperationalError
from django.db.models import Count, Sum
from django.template.loader import render_to_string
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from accounts.models import Customer, User
from billing.models import Invoice
from crm.models import Contact
from orders.models import DailyStat, Order, OrderRefund
from shipping.models import Shipment

from .documents import render_invoice_pdf

logger = get_task_logger(__name__)
audit = logging.getLogger("audit")

CARRIER_API = settings.CARRIER_API_URL
CRM_TIMEOUT = 10
STRIPE_TRANSIENT = (stripe.error.APIConnectionError, stripe.error.RateLimitError)


def _crm_payload(contact: Contact) -> dict:
    return {
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "company": contact.account.name if contact.account_id else None,
        "tags": sorted(contact.tags or []),
        "source": "webshop",
    }


def _carrier_auth() -> tuple[str, str]:
    return settings.CARRIER_API_USER, settings.CARRIER_API_PASSWORD


@shared_task(bind=True, autoretry_for=STRIPE_TRANSIENT + (OperationalError,), retry_backoff=True, retry_kwargs={"max_retries": 5})
def charge_order(self, order_id: int) -> str:
    order = Order.objects.select_related("customer").get(pk=order_id)
    intent = stripe.PaymentIntent.create(
        amount=order.total_cents,
        currency=order.currency,
        customer=order.customer.stripe_customer_id,
        payment_method=order.payment_method_id,
        off_session=True,
        confirm=True,
        metadata={"order_id": order.pk},
    )
    Order.objects.filter(pk=order.pk).update(
        payment_intent_id=intent.id, status=Order.Status.PAID, paid_at=timezone.now()
    )
    send_order_confirmation.delay(order.pk)
    return intent.id


@shared_task(bind=True, max_retries=5)
def capture_payment(self, order_id: int) -> None:
    order = Order.objects.get(pk=order_id)
    try:
        stripe.PaymentIntent.capture(order.payment_intent_id, idempotency_key=f"capture-{order.pk}")
    except STRIPE_TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=2 ** self.request.retries * 15)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.CAPTURED, captured_at=timezone.now())


@shared_task(bind=True, autoretry_for=STRIPE_TRANSIENT, retry_backoff=True, max_retries=4)
def refund_order(self, order_id: int, amount_cents: int, reason: str = "requested_by_customer") -> str:
    order = Order.objects.get(pk=order_id)
    refund = stripe.Refund.create(
        payment_intent=order.payment_intent_id,
        amount=amount_cents,
        reason=reason,
        idempotency_key=f"refund-{self.request.id}",
    )
    OrderRefund.objects.filter(order_id=order.pk, stripe_refund_id="").update(stripe_refund_id=refund.id)
    return refund.id


@shared_task(autoretry_for=(SMTPException, ConnectionError), retry_backoff=True, retry_kwargs={"max_retries": 3})
def send_welcome_email(user_id: int) -> None:
    user = User.objects.get(pk=user_id)
    body = render_to_string("emails/welcome.txt", {"user": user, "site": settings.SITE_NAME})
    send_mail(
        subject=f"Welcome to {settings.SITE_NAME}",
        message=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[user.email],
    )
    logger.info("welcome e-mail sent to user %s", user_id)


@shared_task
def send_order_confirmation(order_id: int) -> None:
    order = Order.objects.select_related("customer").get(pk=order_id)
    send_mail(
        subject=f"Order #{order.number} confirmed",
        message=render_to_string("emails/order_confirmed.txt", {"order": order}),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[order.customer.email],
    )


@shared_task(bind=True, max_retries=5, default_retry_delay=60)
def push_contact_to_crm(self, contact_id: int) -> str:
    contact = Contact.objects.select_related("account").get(pk=contact_id)
    try:
        resp = requests.post(
            f"{settings.CRM_BASE_URL}/v2/contacts",
            json=_crm_payload(contact),
            headers={"Authorization": f"Bearer {settings.CRM_API_TOKEN}"},
            timeout=CRM_TIMEOUT,
        )
        resp.raise_for_status()
    except requests.RequestException as exc:
        logger.warning("CRM push for contact %s failed, retrying: %s", contact_id, exc)
        raise self.retry(exc=exc)
    return resp.json()["id"]


@shared_task(autoretry_for=(requests.RequestException,), retry_backoff=True, retry_backoff_max=600)
def sync_customer_profile(customer_id: int) -> None:
    customer = Customer.objects.get(pk=customer_id)
    resp = requests.get(
        f"{settings.CRM_BASE_URL}/v2/contacts/{customer.crm_id}",
        headers={"Authorization": f"Bearer {settings.CRM_API_TOKEN}"},
        timeout=CRM_TIMEOUT,
    )
    resp.raise_for_status()
    data = resp.json()
    Customer.objects.update_or_create(
        crm_id=customer.crm_id,
        defaults={"segment": data.get("segment", ""), "lifetime_value": data.get("ltv", 0)},
    )


@shared_task(bind=True, autoretry_for=(OperationalError, BrokerError), retry_backoff=True, max_retries=3)
def queue_invoice_pdf(self, order_id: int) -> str:
    invoice = Invoice.objects.get(order_id=order_id)
    task_id = str(uuid4())
    Invoice.objects.filter(pk=invoice.pk).update(render_task_id=task_id, render_requested_at=timezone.now())
    render_invoice_pdf.apply_async(args=[invoice.pk], task_id=task_id, countdown=5)
    return task_id


@shared_task(acks_late=True, reject_on_worker_lost=True)
def send_shipping_notification(shipment_id: int) -> None:
    shipment = Shipment.objects.select_related("order__customer").get(pk=shipment_id)
    message = EmailMessage(
        subject=f"Your order #{shipment.order.number} is on its way",
        body=render_to_string("emails/shipped.html", {"shipment": shipment}),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[shipment.order.customer.email],
    )
    message.content_subtype = "html"
    message.send()


@shared_task(acks_late=True)
def send_invoice_email(invoice_id: int) -> None:
    if not cache.add(f"invoice-email:{invoice_id}", 1, timeout=7 * 24 * 3600):
        logger.info("invoice %s e-mail already sent, skipping redelivery", invoice_id)
        return
    invoice = Invoice.objects.select_related("order__customer").get(pk=invoice_id)
    send_mail(
        subject=f"Invoice {invoice.number}",
        message=render_to_string("emails/invoice.txt", {"invoice": invoice}),
        from_email=settings.BILLING_FROM_EMAIL,
        recipient_list=[invoice.order.customer.email],
    )


@shared_task(bind=True, max_retries=10)
def book_carrier_pickup(self, shipment_id: int) -> None:
    shipment = Shipment.objects.select_related("warehouse").get(pk=shipment_id)
    resp = requests.post(
        f"{CARRIER_API}/pickups",
        json={
            "reference": shipment.reference,
            "address": shipment.warehouse.pickup_address(),
            "parcels": shipment.parcel_count,
            "ready_at": (timezone.now() + timedelta(hours=2)).isoformat(),
        },
        auth=_carrier_auth(),
        timeout=15,
    )
    resp.raise_for_status()
    pickup = resp.json()
    status = requests.get(f"{CARRIER_API}/pickups/{pickup['id']}", auth=_carrier_auth(), timeout=10).json()
    if status["state"] != "CONFIRMED":
        raise self.retry(countdown=120)
    Shipment.objects.filter(pk=shipment.pk).update(pickup_ref=pickup["id"], pickup_window=status["window"])


@shared_task
def email_daily_sales_report() -> None:
    day = timezone.localdate() - timedelta(days=1)
    totals = Order.objects.filter(paid_at__date=day).aggregate(orders=Count("id"), revenue=Sum("total_cents"))
    DailyStat.objects.create(day=day, orders=totals["orders"] or 0, revenue_cents=totals["revenue"] or 0)
    send_mail(
        subject=f"Sales report for {day:%d %b %Y}",
        message=render_to_string("emails/daily_sales.txt", {"day": day, "totals": totals}),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=settings.SALES_REPORT_RECIPIENTS,
    )
    audit.info("daily sales report for %s sent", day)
