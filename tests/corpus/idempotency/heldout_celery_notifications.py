"""Outbound notifications: SMS via the carrier gateway, e-mail via Django, push via Expo."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta
from smtplib import SMTPException

import httpx
import requests
from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMessage, EmailMultiAlternatives, send_mail
from django.db import OperationalError
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import strip_tags
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from accounts.models import User
from billing.models import Invoice
from billing.pdf import render_invoice_pdf
from notifications.celery import app
from notifications.digest import build_digest_items
from notifications.models import (
    Appointment,
    Campaign,
    DeliveryStatus,
    Device,
    Incident,
    NotificationPayload,
    PushTicket,
    WebhookEndpoint,
)
from orders.models import Order

logger = logging.getLogger(__name__)
EXPO_PUSH_URL = "https://exp.host"


def build_sms_session() -> requests.Session:
    session = requests.Session()
    session.auth = (settings.SMS_ACCOUNT_SID, settings.SMS_AUTH_TOKEN)
    retries = Retry(total=4, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None)
    session.mount("https://", HTTPAdapter(max_retries=retries))
    return session


_sms = build_sms_session()


def _send_sms_via_gateway(phone: str, body: str) -> str:
    resp = _sms.post(
        f"{settings.SMS_API_URL}/Accounts/{settings.SMS_ACCOUNT_SID}/Messages.json",
        data={"To": phone, "From": settings.SMS_SENDER, "Body": body},
        timeout=10,
    )
    resp.raise_for_status()
    return resp.json()["sid"]


def _sign(payload: dict, secret: str) -> str:
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


@shared_task(
    bind=True,
    autoretry_for=(requests.ConnectionError, requests.Timeout),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def send_sms(self, phone: str, body: str) -> str:
    sid = _send_sms_via_gateway(phone, body)
    logger.info("sms queued sid=%s attempt=%s", sid, self.request.retries)
    return sid


@app.task(bind=True, max_retries=4, default_retry_delay=120)
def send_order_confirmation(self, order_id: int) -> None:
    order = Order.objects.select_related("customer").get(pk=order_id)
    html = render_to_string("emails/order_confirmation.html", {"order": order})
    try:
        send_mail(
            subject=f"Order {order.number} confirmed",
            message=strip_tags(html),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[order.customer.email],
            html_message=html,
        )
    except (SMTPException, ConnectionError) as exc:
        raise self.retry(exc=exc)


@shared_task(bind=True, autoretry_for=(httpx.HTTPError,), retry_backoff=30, retry_kwargs={"max_retries": 4})
def send_push_batch(self, campaign_id: int, device_ids: list[int]) -> int:
    campaign = Campaign.objects.get(pk=campaign_id)
    devices = list(Device.objects.filter(pk__in=device_ids, push_enabled=True))
    messages = [{"to": d.expo_token, "title": campaign.title, "body": campaign.body} for d in devices]
    with httpx.Client(base_url=EXPO_PUSH_URL, timeout=10) as client:
        resp = client.post("/--/api/v2/push/send", json=messages)
        resp.raise_for_status()
    tickets = resp.json()["data"]
    PushTicket.objects.bulk_create(
        [PushTicket(campaign=campaign, device=d, ticket_id=t.get("id", ""), status=t["status"]) for d, t in zip(devices, tickets)]
    )
    return len(tickets)


@shared_task(bind=True, max_retries=3, default_retry_delay=20)
def page_on_call(self, incident_id: int) -> None:
    incident = Incident.objects.select_related("service").get(pk=incident_id)
    text = f"[SEV{incident.severity}] {incident.service.name}: {incident.title}"
    try:
        slack = requests.post(settings.SLACK_INCIDENTS_WEBHOOK, json={"text": f":rotating_light: {text}"}, timeout=5)
        slack.raise_for_status()
        _send_sms_via_gateway(incident.service.on_call_phone, text)
    except requests.RequestException as exc:
        raise self.retry(exc=exc)


@shared_task(acks_late=True, queue="email")
def email_invoice_pdf(invoice_id: int) -> None:
    invoice = Invoice.objects.select_related("account").get(pk=invoice_id)
    pdf = render_invoice_pdf(invoice)
    msg = EmailMessage(
        subject=f"Invoice {invoice.number}",
        body=render_to_string("emails/invoice.txt", {"invoice": invoice}),
        from_email=settings.BILLING_FROM_EMAIL,
        to=[invoice.account.billing_email],
    )
    msg.attach(f"{invoice.number}.pdf", pdf, "application/pdf")
    msg.send()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def send_weekly_digest(user_id: int, iso_week: str) -> None:
    if not cache.add(f"digest-sent:{user_id}:{iso_week}", True, timeout=8 * 86400):
        logger.info("digest for user %s week %s already sent", user_id, iso_week)
        return
    user = User.objects.select_related("profile").get(pk=user_id)
    html = render_to_string("emails/digest.html", {"user": user, "items": build_digest_items(user, iso_week)})
    msg = EmailMultiAlternatives("Your week on Pebble", strip_tags(html), settings.DEFAULT_FROM_EMAIL, [user.email])
    msg.attach_alternative(html, "text/html")
    msg.send()


@shared_task(bind=True, autoretry_for=(requests.ConnectionError, requests.Timeout), retry_backoff=True, max_retries=8)
def deliver_customer_webhook(self, endpoint_id: int, notification_id: int) -> int:
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    payload = NotificationPayload.objects.get(pk=notification_id).as_dict()
    resp = requests.post(
        endpoint.url,
        json=payload,
        headers={"Idempotency-Key": f"notif-{notification_id}", "X-Signature": _sign(payload, endpoint.secret)},
        timeout=10,
    )
    resp.raise_for_status()
    return resp.status_code


@shared_task(bind=True, autoretry_for=(httpx.TransportError,), max_retries=5)
def send_transactional_email(self, template: str, to: str, context: dict) -> str:
    resp = httpx.post(
        f"{settings.MAILER_URL}/v1/send",
        json={"template": template, "to": to, "vars": context},
        headers={"Idempotency-Key": self.request.id, "Authorization": f"Bearer {settings.MAILER_TOKEN}"},
        timeout=10,
    )
    resp.raise_for_status()
    return resp.json()["message_id"]


@shared_task(bind=True, autoretry_for=(OperationalError,), max_retries=3)
def enqueue_winback_sms(self, campaign_id: int) -> int:
    campaign = Campaign.objects.get(pk=campaign_id)
    queued = 0
    for user in campaign.audience().only("id", "phone").iterator():
        send_sms.apply_async(args=[user.phone, campaign.body], task_id=f"winback-{campaign_id}-{user.pk}")
        queued += 1
    return queued


@shared_task(bind=True, autoretry_for=(OperationalError,), max_retries=3)
def schedule_appointment_reminders(self, clinic_id: int) -> int:
    window_start = timezone.now() + timedelta(hours=23)
    upcoming = Appointment.objects.filter(
        clinic_id=clinic_id, starts_at__range=(window_start, window_start + timedelta(hours=1))
    ).select_related("patient")
    scheduled = 0
    for appt in upcoming:
        send_sms.apply_async(
            args=[appt.patient.phone, f"Reminder: appointment at {appt.starts_at:%H:%M} tomorrow"],
            task_id=f"reminder-{appt.pk}-{int(time.time())}",
            eta=appt.starts_at - timedelta(hours=24),
        )
        scheduled += 1
    return scheduled


@shared_task(bind=True, max_retries=5, default_retry_delay=15)
def record_delivery_status(self, provider_message_id: str, status: str, occurred_at: str) -> None:
    try:
        DeliveryStatus.objects.update_or_create(
            provider_message_id=provider_message_id,
            defaults={"status": status, "occurred_at": occurred_at},
        )
    except OperationalError as exc:
        raise self.retry(exc=exc)
