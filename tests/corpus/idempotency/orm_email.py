"""Persistence and transactional e-mail helpers for the accounts service."""
from __future__ import annotations

import logging
import os
import smtplib
import uuid
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

import backoff
import psycopg
import requests
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail
from sqlalchemy import create_engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker
from tenacity import (
    Retrying,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_fixed,
    wait_random_exponential,
)

from .models import Account, BillingProfile, Contact, Notification, Subscription

log = logging.getLogger(__name__)

DATABASE_URL = os.environ["DATABASE_URL"]
SMTP_HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
SMTP_PORT = int(os.environ.get("SMTP_PORT", "587"))
SMTP_USER = os.environ.get("SMTP_USER", "")
SMTP_PASSWORD = os.environ.get("SMTP_PASSWORD", "")
MAIL_FROM = os.environ.get("MAIL_FROM", "Accounts <accounts@example.com>")
RESEND_API_KEY = os.environ.get("RESEND_API_KEY", "")
RESEND_URL = "https://api.resend.com/emails"

engine = create_engine(DATABASE_URL.replace("postgresql://", "postgresql+psycopg://"), pool_pre_ping=True)
SessionLocal = sessionmaker(bind=engine, expire_on_commit=False)
sg = SendGridAPIClient(os.environ.get("SENDGRID_API_KEY", ""))

TRANSIENT_DB = (OperationalError, psycopg.OperationalError)


def _build_message(to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = MAIL_FROM
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


def _smtp_send(to: str, subject: str, body: str) -> None:
    with smtplib.SMTP(SMTP_HOST, SMTP_PORT, timeout=20) as smtp:
        smtp.starttls()
        smtp.login(SMTP_USER, SMTP_PASSWORD)
        smtp.send_message(_build_message(to, subject, body))


@retry(
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=1, max=10),
    retry=retry_if_exception_type((smtplib.SMTPException, OSError)),
    reraise=True,
)
def send_password_reset(email: str, reset_url: str) -> None:
    msg = _build_message(
        email,
        "Reset your password",
        f"Someone asked to reset the password for this account.\n\n{reset_url}\n\nThe link expires in one hour.",
    )
    with smtplib.SMTP(SMTP_HOST, SMTP_PORT, timeout=20) as smtp:
        smtp.starttls()
        smtp.login(SMTP_USER, SMTP_PASSWORD)
        smtp.send_message(msg)


@retry(stop=stop_after_attempt(5), wait=wait_random_exponential(max=5), retry=retry_if_exception_type(TRANSIENT_DB))
def insert_audit_event(actor_id: int, action: str, detail: str) -> None:
    with psycopg.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO audit_events (actor_id, action, detail, created_at) VALUES (%s, %s, %s, now())",
            (actor_id, action, detail),
        )


@retry(stop=stop_after_attempt(5), wait=wait_random_exponential(max=5), retry=retry_if_exception_type(TRANSIENT_DB))
def record_marketing_consent(contact_id: int, channel: str, granted: bool) -> None:
    with psycopg.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO marketing_consent (contact_id, channel, granted, recorded_at) "
            "VALUES (%s, %s, %s, now()) "
            "ON CONFLICT (contact_id, channel) DO UPDATE SET granted = EXCLUDED.granted, recorded_at = now()",
            (contact_id, channel, granted),
        )


@retry(stop=stop_after_attempt(4), wait=wait_exponential(max=4), retry=retry_if_exception_type(OperationalError))
def load_billing_profile(account_id: int) -> BillingProfile | None:
    with SessionLocal() as session:
        return session.scalars(select(BillingProfile).where(BillingProfile.account_id == account_id)).first()


@retry(stop=stop_after_attempt(4), wait=wait_exponential(max=4), retry=retry_if_exception_type(OperationalError))
def upsert_contact(email: str, full_name: str, phone: str | None = None) -> None:
    with SessionLocal() as session:
        session.merge(Contact(email=email.lower(), full_name=full_name, phone=phone))
        session.commit()


@backoff.on_exception(backoff.expo, (OperationalError, HTTPError), max_tries=4)
def start_trial(account: Account, plan: str, days: int = 14) -> int:
    with SessionLocal() as session:
        subscription = Subscription(
            account_id=account.id,
            plan=plan,
            status="trialing",
            trial_ends_at=datetime.now(timezone.utc) + timedelta(days=days),
        )
        session.add(subscription)
        session.commit()
    sg.send(
        Mail(
            from_email=MAIL_FROM,
            to_emails=account.owner_email,
            subject=f"Your {days}-day {plan} trial has started",
            html_content=f"<p>Your trial ends on {subscription.trial_ends_at:%d %B %Y}.</p>",
        )
    )
    return subscription.id


@retry(
    stop=stop_after_attempt(4),
    wait=wait_exponential(max=20),
    retry=retry_if_exception_type(requests.RequestException),
    reraise=True,
)
def send_receipt_email(order_id: int, to: str, html: str) -> str:
    resp = requests.post(
        RESEND_URL,
        headers={
            "Authorization": f"Bearer {RESEND_API_KEY}",
            "Idempotency-Key": f"receipt-{order_id}-{uuid.uuid4().hex}",
        },
        json={"from": MAIL_FROM, "to": [to], "subject": f"Receipt for order {order_id}", "html": html},
        timeout=10,
    )
    resp.raise_for_status()
    return resp.json()["id"]


@retry(
    stop=stop_after_attempt(4),
    wait=wait_exponential(max=20),
    retry=retry_if_exception_type(requests.RequestException),
    reraise=True,
)
def send_welcome_email(user_id: int, to: str, html: str) -> str:
    resp = requests.post(
        RESEND_URL,
        headers={"Authorization": f"Bearer {RESEND_API_KEY}", "Idempotency-Key": f"welcome-{user_id}"},
        json={"from": MAIL_FROM, "to": [to], "subject": "Welcome aboard", "html": html},
        timeout=10,
    )
    resp.raise_for_status()
    return resp.json()["id"]


def notify_account_manager(account: Account, reason: str) -> None:
    for attempt in Retrying(
        stop=stop_after_attempt(3),
        wait=wait_fixed(2),
        retry=retry_if_exception_type((smtplib.SMTPException, OperationalError)),
        reraise=True,
    ):
        with attempt:
            _smtp_send(
                account.manager_email,
                f"[account alert] {account.name}",
                f"Account {account.name} (#{account.id}) needs attention: {reason}",
            )
            with SessionLocal() as session:
                session.add(Notification(account_id=account.id, kind="manager_alert", detail=reason))
                session.commit()
