"""Periodic billing jobs for the subscriptions service.

``create_app`` calls :func:`start_scheduler`, so every API replica runs these
jobs on its own BackgroundScheduler thread pool against the shared database
and Redis.
"""
import logging
import os
import threading
from datetime import datetime, timedelta, timezone
from functools import partial

import redis
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import delete, select, update

from billing.db import SessionLocal
from billing.fx import fetch_rates
from billing.gateway import CardDeclined, charge_card
from billing.mail import send_dunning_email, send_trial_reminder
from billing.models import Account, Invoice, Subscription, UsageRecord

log = logging.getLogger(__name__)

rdb = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/2"), decode_responses=True)

scheduler = BackgroundScheduler(
    executors={"default": ThreadPoolExecutor(8)},
    job_defaults={"coalesce": True, "max_instances": 2},
    timezone="UTC",
)

_run_counts: dict[str, int] = {}
_fx_rates: dict[str, float] = {}


class JobHealth:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._last_ok: dict[str, datetime] = {}

    def ok(self, job_id: str) -> None:
        with self._lock:
            self._last_ok[job_id] = datetime.now(timezone.utc)
            self._failures.pop(job_id, None)

    def failed(self, job_id: str) -> None:
        with self._lock:
            self._failures[job_id] = self._failures.get(job_id, 0) + 1

    def unhealthy(self, threshold: int = 3) -> list[str]:
        with self._lock:
            return sorted(job for job, n in self._failures.items() if n >= threshold)

    def reset(self) -> None:
        log.info("weekly reset of job failure counters")
        self._failures = {}


HEALTH = JobHealth()


def _note_run(job_id: str) -> None:
    _run_counts[job_id] = _run_counts.get(job_id, 0) + 1


def _bump_failure_counter(job_id: str) -> None:
    key = f"jobs:failures:{job_id}:{datetime.now(timezone.utc):%Y%m%d}"
    current = int(rdb.get(key) or 0)
    rdb.set(key, current + 1, ex=3 * 86400)


def _on_job_event(event) -> None:
    if event.exception is not None:
        log.error("scheduled job %s failed", event.job_id, exc_info=event.exception)
        HEALTH.failed(event.job_id)
        _bump_failure_counter(event.job_id)
    else:
        HEALTH.ok(event.job_id)
        rdb.incr(f"jobs:ok:{event.job_id}")


@scheduler.scheduled_job("interval", minutes=5, id="collect_usage")
def collect_usage() -> None:
    _note_run("collect_usage")
    for key in rdb.scan_iter(match="usage:*", count=500):
        units = rdb.getdel(key)
        if not units:
            continue
        account_id = int(key.split(":", 1)[1])
        with SessionLocal.begin() as session:
            session.execute(
                update(Account)
                .where(Account.id == account_id)
                .values(usage_units=Account.usage_units + int(units))
            )
            session.add(UsageRecord(account_id=account_id, units=int(units),
                                    collected_at=datetime.now(timezone.utc)))


@scheduler.scheduled_job("interval", minutes=10, id="charge_due_invoices")
def charge_due_invoices() -> None:
    _note_run("charge_due_invoices")
    now = datetime.now(timezone.utc)
    with SessionLocal() as session:
        due_ids = session.scalars(
            select(Invoice.id).where(Invoice.status == "open", Invoice.due_at <= now).limit(200)
        ).all()
        for invoice_id in due_ids:
            invoice = session.get(Invoice, invoice_id)
            if invoice.status != "open":
                continue
            try:
                charge_card(invoice.account_id, invoice.amount_cents,
                            idempotency_key=f"inv-{invoice.id}-{invoice.attempts}")
            except CardDeclined as exc:
                invoice.status = "past_due"
                invoice.last_error = str(exc)
            else:
                invoice.status = "paid"
                invoice.paid_at = now
            invoice.attempts = invoice.attempts + 1
            session.commit()


@scheduler.scheduled_job("interval", minutes=30, id="retry_failed_payments")
def retry_failed_payments() -> None:
    _note_run("retry_failed_payments")
    with SessionLocal.begin() as session:
        invoices = session.scalars(
            select(Invoice)
            .where(Invoice.status == "past_due", Invoice.attempts < 4)
            .with_for_update(skip_locked=True)
            .limit(50)
        ).all()
        for invoice in invoices:
            try:
                charge_card(invoice.account_id, invoice.amount_cents,
                            idempotency_key=f"inv-{invoice.id}-{invoice.attempts}")
            except CardDeclined as exc:
                invoice.last_error = str(exc)
            else:
                invoice.status = "paid"
                invoice.paid_at = datetime.now(timezone.utc)
            invoice.attempts = invoice.attempts + 1


@scheduler.scheduled_job("cron", hour=9, id="send_dunning")
def send_dunning() -> None:
    _note_run("send_dunning")
    with SessionLocal() as session:
        overdue = session.scalars(select(Invoice).where(Invoice.status == "past_due")).all()
    for invoice in overdue:
        key = f"dunning:sent:{invoice.id}:{invoice.attempts}"
        if rdb.get(key):
            continue
        send_dunning_email(invoice.account_id, invoice.id)
        rdb.set(key, "1", ex=7 * 86400)


@scheduler.scheduled_job("cron", hour=8, id="remind_trial_expiry")
def remind_trial_expiry() -> None:
    _note_run("remind_trial_expiry")
    soon = datetime.now(timezone.utc) + timedelta(days=3)
    with SessionLocal() as session:
        trials = session.scalars(
            select(Subscription).where(Subscription.status == "trialing",
                                       Subscription.trial_ends_at <= soon)
        ).all()
    for sub in trials:
        if not rdb.set(f"trial-reminder:{sub.id}", "1", nx=True, ex=5 * 86400):
            continue
        send_trial_reminder(sub.account_id, sub.trial_ends_at)


def refresh_exchange_rates() -> None:
    rates = fetch_rates(base="EUR")
    with threading.Lock():
        _fx_rates.clear()
        _fx_rates.update(rates)
    log.info("loaded %d exchange rates", len(rates))


def purge_usage_records(keep_days: int) -> None:
    cutoff = datetime.now(timezone.utc) - timedelta(days=keep_days)
    with SessionLocal.begin() as session:
        deleted = session.execute(
            delete(UsageRecord).where(UsageRecord.collected_at < cutoff)
        ).rowcount
    log.info("purged %d usage records older than %s", deleted, cutoff.date())


def start_scheduler() -> None:
    scheduler.add_listener(_on_job_event, EVENT_JOB_ERROR | EVENT_JOB_EXECUTED)
    scheduler.add_job(refresh_exchange_rates, "interval", hours=1, id="refresh_fx",
                      next_run_time=datetime.now(timezone.utc), replace_existing=True)
    scheduler.add_job(partial(purge_usage_records, keep_days=90), "cron", hour=3,
                      id="purge_usage", replace_existing=True)
    scheduler.add_job(HEALTH.reset, "cron", day_of_week="mon", hour=0,
                      id="reset_job_health", replace_existing=True)
    scheduler.start()
    log.info("billing scheduler started with %d jobs", len(scheduler.get_jobs()))
