"""Billing worker: invoice charges, dunning reminders and nightly reconciliation.

Started with ``celery -A billing.worker worker``; the app is configured for
the thread pool so tasks share this module's globals.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import redis
import requests
import stripe
from celery import Celery, shared_task
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import sessionmaker

from billing.mail import mailer
from billing.models import Invoice

log = logging.getLogger("billing.worker")

app = Celery("billing", broker=os.environ["BROKER_URL"])
app.conf.update(worker_pool="threads", worker_concurrency=8, task_acks_late=True)

r = redis.Redis.from_url(os.environ["REDIS_URL"])
Session = sessionmaker(create_engine(os.environ["BILLING_DB"], pool_size=10))

STATE_DIR = os.environ.get("BILLING_STATE_DIR", "/var/lib/billing")
EXPORT_STATE = os.path.join(STATE_DIR, "export-state.json")
MAX_REMINDERS = 3
DECLINE_ALERT_THRESHOLD = 4
RELEASE_LOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

_charges_attempted = 0


class GatewayTokenCache:
    """Short-lived payment gateway token shared by all worker threads."""

    def __init__(self, fetch):
        self._fetch = fetch
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def get(self) -> str:
        with self._lock:
            if self._token is None or time.time() >= self._expires_at - 30:
                token, ttl = self._fetch()
                self._token = token
                self._expires_at = time.time() + ttl
            return self._token

    def invalidate(self) -> None:
        self._token = None
        self._expires_at = 0.0


def _fetch_gateway_token() -> tuple[str, int]:
    resp = requests.post(
        os.environ["GATEWAY_TOKEN_URL"],
        data={"grant_type": "client_credentials"},
        auth=(os.environ["GATEWAY_CLIENT_ID"], os.environ["GATEWAY_CLIENT_SECRET"]),
        timeout=10,
    )
    resp.raise_for_status()
    body = resp.json()
    return body["access_token"], int(body["expires_in"])


tokens = GatewayTokenCache(_fetch_gateway_token)


def _gateway_charge(invoice: Invoice) -> stripe.PaymentIntent:
    global _charges_attempted
    _charges_attempted += 1
    return stripe.PaymentIntent.create(
        amount=invoice.amount_cents,
        currency=invoice.currency,
        customer=invoice.customer_ref,
        confirm=True,
        off_session=True,
        idempotency_key=f"invoice-{invoice.id}-{invoice.attempts}",
        api_key=tokens.get(),
    )


@app.task(bind=True, max_retries=5, default_retry_delay=300)
def charge_invoice(self, invoice_id: int) -> str:
    with Session() as session, session.begin():
        invoice = session.execute(
            select(Invoice).where(Invoice.id == invoice_id).with_for_update()
        ).scalar_one_or_none()
        if invoice is None:
            log.warning("charge_invoice: invoice %s does not exist", invoice_id)
            return "missing"
        if invoice.status == "paid":
            return "already-paid"
        invoice.attempts += 1
        try:
            intent = _gateway_charge(invoice)
        except stripe.error.AuthenticationError as exc:
            tokens.invalidate()
            raise self.retry(exc=exc, countdown=5)
        except stripe.error.CardError as exc:
            invoice.status = "declined"
            invoice.last_error = exc.user_message
            log.info("invoice %s declined: %s", invoice_id, exc.code)
            return "declined"
        invoice.status = "paid"
        invoice.payment_intent_id = intent.id
        invoice.paid_at = datetime.now(timezone.utc)
    return "paid"


@shared_task
def send_dunning_email(invoice_id: int) -> None:
    with Session() as session:
        invoice = session.get(Invoice, invoice_id)
        if invoice is None or invoice.status == "paid":
            return
        if invoice.reminders_sent >= MAX_REMINDERS:
            log.info("invoice %s: reminder limit reached", invoice_id)
            return
        mailer.send_template("dunning", to=invoice.billing_email, context={"invoice": invoice.number})
        invoice.reminders_sent = invoice.reminders_sent + 1
        invoice.last_reminder_at = datetime.now(timezone.utc)
        session.commit()


@shared_task
def mark_disputed(invoice_id: int, amount_cents: int) -> None:
    with Session() as session, session.begin():
        session.execute(
            update(Invoice)
            .where(Invoice.id == invoice_id)
            .values(disputed_cents=Invoice.disputed_cents + amount_cents, status="disputed")
        )


@shared_task
def track_decline(customer_id: int, decline_code: str) -> int:
    key = f"billing:declines:{customer_id}:{datetime.now(timezone.utc):%Y%m%d}"
    current = int(r.get(key) or 0)
    r.set(key, current + 1, ex=2 * 86400)
    if current + 1 >= DECLINE_ALERT_THRESHOLD:
        r.publish("billing:alerts", json.dumps({"customer": customer_id, "code": decline_code}))
    return current + 1


@shared_task
def track_refund(customer_id: int, amount_cents: int) -> tuple[int, int]:
    day = f"{datetime.now(timezone.utc):%Y%m%d}"
    pipe = r.pipeline()
    pipe.incr(f"billing:refunds:{customer_id}:{day}:count")
    pipe.incrby(f"billing:refunds:{customer_id}:{day}:cents", amount_cents)
    pipe.expire(f"billing:refunds:{customer_id}:{day}:count", 2 * 86400)
    pipe.expire(f"billing:refunds:{customer_id}:{day}:cents", 2 * 86400)
    count, cents, _, _ = pipe.execute()
    return int(count), int(cents)


def fx_rate(currency: str) -> Decimal:
    key = f"billing:fx:{currency}"
    cached = r.get(key)
    if cached is not None:
        return Decimal(cached.decode())
    resp = requests.get(f"{os.environ['FX_URL']}/latest", params={"base": currency, "symbols": "EUR"}, timeout=10)
    resp.raise_for_status()
    rate = Decimal(str(resp.json()["rates"]["EUR"]))
    r.set(key, str(rate), ex=3600)
    return rate


def _record_reconciliation(run_date: str, mismatches: list[int]) -> None:
    path = os.path.join(STATE_DIR, "reconciliation.json")
    history: dict = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            history = json.load(fh)
    history[run_date] = {"mismatches": mismatches, "host": socket.gethostname(), "at": time.time()}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(history, fh, indent=2)


def _reconcile(run_date: str) -> list[int]:
    with Session() as session:
        invoices = session.scalars(select(Invoice).where(Invoice.paid_on == run_date)).all()
    mismatches = []
    for inv in invoices:
        intent = stripe.PaymentIntent.retrieve(inv.payment_intent_id, api_key=tokens.get())
        expected = Decimal(inv.amount_cents)
        if intent.currency.upper() != inv.currency.upper():
            expected = (expected * fx_rate(inv.currency)).quantize(Decimal("1"))
        if Decimal(intent.amount_received) != expected:
            mismatches.append(inv.id)
    _record_reconciliation(run_date, mismatches)
    return mismatches


@shared_task
def run_nightly_reconciliation(run_date: str) -> str:
    lock_key = f"billing:recon:{run_date}"
    if r.exists(lock_key):
        log.info("reconciliation for %s already running or finished", run_date)
        return "skipped"
    r.set(lock_key, socket.gethostname(), ex=6 * 3600)
    mismatches = _reconcile(run_date)
    log.info("reconciliation %s: %d mismatches", run_date, len(mismatches))
    return "done"


def _write_export_state(run_date: str, row_count: int) -> None:
    with open(EXPORT_STATE + ".lock", "a") as lock_fh:
        fcntl.flock(lock_fh.fileno(), fcntl.LOCK_EX)
        try:
            with open(EXPORT_STATE, encoding="utf-8") as fh:
                state = json.load(fh)
        except FileNotFoundError:
            state = {}
        state[run_date] = {"rows": row_count, "at": time.time()}
        fd, tmp = tempfile.mkstemp(dir=STATE_DIR, prefix=".export-state-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh)
        os.replace(tmp, EXPORT_STATE)


def _release_lock(key: str, token: str) -> bool:
    return bool(r.eval(RELEASE_LOCK, 1, key, token))


@shared_task
def export_ledger(run_date: str) -> str:
    token = uuid.uuid4().hex
    if not r.set("billing:export-lock", token, nx=True, ex=900):
        return "busy"
    try:
        with Session() as session:
            rows = session.scalars(select(Invoice).where(Invoice.paid_on == run_date)).all()
        with open(os.path.join(STATE_DIR, f"ledger-{run_date}.csv"), "w", encoding="utf-8") as out:
            for inv in rows:
                out.write(f"{inv.number},{inv.customer_ref},{inv.amount_cents},{inv.currency}\n")
        _write_export_state(run_date, len(rows))
    finally:
        _release_lock("billing:export-lock", token)
    return "exported"
