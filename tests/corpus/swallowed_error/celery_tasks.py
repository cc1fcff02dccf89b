"""Background jobs for the billing and reporting apps."""
import logging
import time
from contextlib import suppress
from datetime import timedelta

import requests
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.log import get_task_logger
from django.contrib.sessions.models import Session
from django.utils import timezone

from billing.erp import ErpClient
from billing.models import ExchangeRate, Invoice
from notifications.digest import build_digest, send_digest
from reports.models import Report
from reports.render import render_report
from search.client import es
from shipping.quotes import quote_for
from accounts.models import User
from catalog.models import Product

logger = get_task_logger(__name__)
audit = logging.getLogger("audit")

RATES_URL = "https://openexchangerates.example.com/api/latest.json"


@shared_task(bind=True, max_retries=5, default_retry_delay=30)
def sync_invoice_to_erp(self, invoice_id: int) -> str:
    invoice = Invoice.objects.get(pk=invoice_id)
    try:
        ref = ErpClient.from_settings().upsert_invoice(invoice.to_erp_payload())
    except requests.RequestException as exc:
        raise self.retry(exc=exc, countdown=2 ** self.request.retries * 30)
    invoice.erp_ref = ref
    invoice.save(update_fields=["erp_ref"])
    return ref


@shared_task(soft_time_limit=600)
def generate_monthly_report(report_id: int) -> None:
    report = Report.objects.get(pk=report_id)
    report.mark_running()
    try:
        pdf = render_report(report)
        report.attach(pdf)
        report.mark_complete()
    except SoftTimeLimitExceeded:
        report.mark_failed("timed out after 10 minutes")
        raise
    except Exception as exc:
        logger.exception("report %s failed", report_id)
        report.mark_failed(str(exc))


@shared_task
def send_digest_emails() -> int:
    sent = 0
    for user in User.objects.filter(digest_enabled=True, is_active=True).iterator():
        try:
            send_digest(user, build_digest(user, since=timezone.now() - timedelta(days=7)))
            sent += 1
        except Exception as e:
            logger.warning("digest for user %s failed: %s", user.pk, e)
    return sent


@shared_task
def refresh_exchange_rates() -> None:
    rates = None
    for attempt in range(3):
        try:
            resp = requests.get(RATES_URL, timeout=10)
            resp.raise_for_status()
            rates = resp.json()["rates"]
            break
        except Exception as exc:
            logger.warning("rates fetch attempt %d failed: %s", attempt + 1, exc)
            time.sleep(2 ** attempt)
    for code, value in (rates or {}).items():
        ExchangeRate.objects.update_or_create(code=code, defaults={"rate": value})
    audit.info("exchange rates refreshed")


@shared_task
def purge_expired_sessions() -> None:
    with suppress(Exception):
        Session.objects.filter(expire_date__lt=timezone.now()).delete()


@shared_task
def fetch_shipping_quote(order_id: int) -> dict:
    try:
        quote = quote_for(order_id)
        return {"carrier": quote.carrier, "amount": str(quote.amount), "eta_days": quote.eta_days}
    except Exception:
        logger.exception("shipping quote for order %s failed", order_id)
        return {}


@shared_task(acks_late=True)
def reindex_product(product_id: int) -> None:
    product = Product.objects.get(pk=product_id)
    try:
        es.index(index="products", id=product.pk, document=product.to_search_doc())
    except Exception as e:
        logger.error(f"reindex of product {product.pk} failed: {e}")


@shared_task(
    autoretry_for=(requests.ConnectionError, requests.Timeout),
    retry_backoff=True,
    retry_kwargs={"max_retries": 4},
)
def push_invoice_pdf(invoice_id: int) -> None:
    invoice = Invoice.objects.get(pk=invoice_id)
    requests.post(invoice.account.webhook_url, files={"pdf": invoice.pdf.open("rb")}, timeout=30).raise_for_status()
