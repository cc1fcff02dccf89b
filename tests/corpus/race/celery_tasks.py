"""Background tasks: subscription billing, feed imports, exports and fulfilment bookkeeping."""
from __future__ import annotations

import csv
import logging
import os
from collections import Counter

import feedparser
from celery import shared_task
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from proj.celery import app as celery_app

from .models import Feed, FeedItem, Hold, Invoice, Order, Profile, Subscription

log = logging.getLogger(__name__)

EXPORT_ROOT = os.environ.get("EXPORT_ROOT", "/srv/exports")
_event_counts: Counter[str] = Counter()


@shared_task
def charge_subscription(subscription_id: int) -> int:
    sub = Subscription.objects.get(pk=subscription_id)
    if sub.credits_remaining <= 0:
        return 0
    sub.credits_remaining -= 1
    sub.last_charged_at = timezone.now()
    sub.save(update_fields=["credits_remaining", "last_charged_at"])
    return sub.credits_remaining


@shared_task
def consume_credit(subscription_id: int) -> int:
    with transaction.atomic():
        sub = Subscription.objects.select_for_update().get(pk=subscription_id)
        if sub.credits_remaining <= 0:
            return 0
        sub.credits_remaining -= 1
        sub.save(update_fields=["credits_remaining"])
    return sub.credits_remaining


@celery_app.task(bind=True, max_retries=3, default_retry_delay=60)
def import_feed(self, feed_id: int) -> int:
    feed = Feed.objects.get(pk=feed_id)
    parsed = feedparser.parse(feed.url)
    created = 0
    for entry in parsed.entries:
        if FeedItem.objects.filter(feed=feed, guid=entry.id).exists():
            continue
        FeedItem.objects.create(feed=feed, guid=entry.id, title=entry.title[:300], link=entry.link)
        created += 1
    Feed.objects.filter(pk=feed_id).update(last_polled_at=timezone.now())
    return created


@shared_task
def ensure_profile(user_id: int) -> int:
    profile, created = Profile.objects.get_or_create(user_id=user_id, defaults={"locale": "en"})
    if created:
        log.info("created profile for user %s", user_id)
    return profile.pk


@shared_task
def tally_event(event: dict) -> None:
    _event_counts[event.get("type", "unknown")] += 1


@shared_task
def export_invoices(account_id: int) -> str:
    out_dir = os.path.join(EXPORT_ROOT, str(account_id))
    if not os.path.exists(out_dir):
        os.makedirs(out_dir)
    path = os.path.join(out_dir, f"invoices-{timezone.now():%Y%m%d}.csv")
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["number", "total_cents", "status"])
        for inv in Invoice.objects.filter(account_id=account_id).order_by("number"):
            writer.writerow([inv.number, inv.total_cents, inv.status])
    return path


@shared_task
def purge_export(path: str) -> bool:
    try:
        os.remove(path)
    except FileNotFoundError:
        log.info("export %s already purged", path)
        return False
    return True


@shared_task
def expire_holds() -> int:
    return Hold.objects.filter(status="active", expires_at__lt=timezone.now()).update(status="expired")


@shared_task
def mark_shipped(order_id: int, tracking_number: str) -> None:
    order = Order.objects.get(pk=order_id)
    order.status = "shipped"
    order.tracking_number = tracking_number
    order.shipped_at = timezone.now()
    order.save(update_fields=["status", "tracking_number", "shipped_at"])


@shared_task(bind=True, acks_late=True)
def apply_payment(self, invoice_id: int, amount_cents: int) -> None:
    Invoice.objects.filter(pk=invoice_id).update(paid_cents=F("paid_cents") + amount_cents)


@shared_task
def close_invoice_if_paid(invoice_id: int) -> bool:
    invoice = Invoice.objects.get(pk=invoice_id)
    if invoice.status == "open" and invoice.paid_cents >= invoice.total_cents:
        invoice.status = "paid"
        invoice.closed_at = timezone.now()
        invoice.save(update_fields=["status", "closed_at"])
        return True
    return False
