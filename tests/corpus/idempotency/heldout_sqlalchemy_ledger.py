"""Double-entry ledger: journal postings, fees, settlement imports and treasury payouts.

Postgres under load occasionally drops connections or aborts on serialization failures,
which surface as ``OperationalError``; writers retry those a few times.
"""
from __future__ import annotations

import logging
import time
import uuid
from datetime import date
from decimal import Decimal

import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential
from urllib3.util import Retry

from ledger.config import settings
from ledger.db import engine
from ledger.models import AccountSnapshot, JournalEntry, JournalLine, SettlementLine

log = logging.getLogger(__name__)
SessionLocal = sessionmaker(bind=engine, expire_on_commit=False)
MAX_ATTEMPTS = 4

_db_retry = retry(
    retry=retry_if_exception_type(OperationalError),
    stop=stop_after_attempt(MAX_ATTEMPTS),
    wait=wait_random_exponential(multiplier=0.1, max=3),
    reraise=True,
)


class LedgerUnavailable(RuntimeError):
    pass


def build_http_session() -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {settings.treasury_token}"
    policy = Retry(
        total=3,
        backoff_factor=0.5,
        status_forcelist=[502, 503, 504],
        allowed_methods=Retry.DEFAULT_ALLOWED_METHODS | {"POST"},
    )
    session.mount("https://", HTTPAdapter(max_retries=policy))
    return session


http = build_http_session()


def _pause(attempt: int) -> None:
    time.sleep(min(0.1 * 2 ** attempt, 2.0))


def _publish_balance_change(account_ids: list[int], reference: str) -> None:
    resp = http.post(
        f"{settings.balance_service_url}/recalculate",
        json={"accounts": account_ids, "reference": reference},
        timeout=5,
    )
    resp.raise_for_status()


def post_journal_entry(session: Session, account_id: int, amount: Decimal, memo: str) -> int:
    last_error: Exception | None = None
    for attempt in range(MAX_ATTEMPTS):
        try:
            entry = JournalEntry(account_id=account_id, amount=amount, memo=memo, posted_on=date.today())
            session.add(entry)
            session.commit()
            return entry.id
        except OperationalError as exc:
            session.rollback()
            last_error = exc
            log.info("journal insert attempt %d for account %s failed: %s", attempt + 1, account_id, exc)
            _pause(attempt)
    raise LedgerUnavailable(f"could not post journal entry for account {account_id}") from last_error


def transfer(session: Session, source_id: int, target_id: int, amount: Decimal, reference: str) -> None:
    last_error: Exception | None = None
    for attempt in range(MAX_ATTEMPTS):
        try:
            entry = JournalEntry(memo=f"transfer {reference}", posted_on=date.today())
            session.add(entry)
            session.add(JournalLine(entry=entry, account_id=source_id, amount=-amount))
            session.add(JournalLine(entry=entry, account_id=target_id, amount=amount))
            session.commit()
            _publish_balance_change([source_id, target_id], reference)
            return
        except (OperationalError, requests.ConnectionError) as exc:
            session.rollback()
            last_error = exc
            _pause(attempt)
    raise LedgerUnavailable(f"transfer {reference} failed after {MAX_ATTEMPTS} attempts") from last_error


@retry(retry=retry_if_exception_type(OperationalError), stop=stop_after_attempt(MAX_ATTEMPTS), wait=wait_random_exponential(max=3), reraise=True)
def charge_fee(account_id: int, fee_minor: int, reason: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO fees (account_id, amount_minor, reason, charged_at) "
                "VALUES (:account_id, :amount, :reason, now())"
            ),
            {"account_id": account_id, "amount": fee_minor, "reason": reason},
        )


@_db_retry
def charge_fee_once(account_id: int, fee_minor: int, reason: str, external_ref: str) -> bool:
    with engine.begin() as conn:
        result = conn.execute(
            text(
                "INSERT INTO fees (account_id, amount_minor, reason, external_ref, charged_at) "
                "VALUES (:account_id, :amount, :reason, :ref, now()) "
                "ON CONFLICT (external_ref) DO NOTHING"
            ),
            {"account_id": account_id, "amount": fee_minor, "reason": reason, "ref": external_ref},
        )
    return result.rowcount == 1


@retry(retry=retry_if_exception_type(OperationalError), stop=stop_after_attempt(5), wait=wait_random_exponential(max=5), reraise=True)
def import_settlement_lines(provider: str, lines: list[dict]) -> int:
    rows = [
        {"provider": provider, "line_ref": ln["id"], "amount_minor": ln["amount"], "currency": ln["currency"], "settled_on": ln["date"]}
        for ln in lines
    ]
    stmt = pg_insert(SettlementLine).values(rows).on_conflict_do_nothing(index_elements=["provider", "line_ref"])
    with SessionLocal() as session:
        result = session.execute(stmt)
        session.commit()
    return result.rowcount


def save_snapshot(account_id: int, as_of: date) -> None:
    last_error: Exception | None = None
    for attempt in range(MAX_ATTEMPTS):
        try:
            with SessionLocal() as session:
                balance = session.scalar(
                    select(func.coalesce(func.sum(JournalLine.amount), 0)).where(JournalLine.account_id == account_id)
                )
                session.merge(AccountSnapshot(account_id=account_id, as_of=as_of, balance=balance))
                session.commit()
            return
        except OperationalError as exc:
            last_error = exc
            _pause(attempt)
    raise LedgerUnavailable(f"snapshot for account {account_id} not saved") from last_error


@retry(retry=retry_if_exception_type(OperationalError), stop=stop_after_attempt(3), wait=wait_random_exponential(max=2), reraise=True)
def get_balance(account_id: int) -> Decimal:
    with SessionLocal() as session:
        total = session.scalar(
            select(func.coalesce(func.sum(JournalLine.amount), 0)).where(JournalLine.account_id == account_id)
        )
    return Decimal(total)


def request_payout(account_id: int, amount_minor: int, destination: str) -> str:
    last_error: Exception | None = None
    for attempt in range(MAX_ATTEMPTS):
        try:
            resp = http.post(
                f"{settings.treasury_url}/payouts",
                json={"account_id": account_id, "amount_minor": amount_minor, "destination": destination},
                headers={"Idempotency-Key": uuid.uuid4().hex},
                timeout=10,
            )
            resp.raise_for_status()
            return resp.json()["payout_id"]
        except (requests.ConnectionError, requests.Timeout) as exc:
            last_error = exc
            _pause(attempt)
    raise LedgerUnavailable(f"payout for account {account_id} not requested") from last_error


def reverse_payout(payout_id: str, reason: str) -> str:
    idempotency_key = str(uuid.uuid4())
    last_error: Exception | None = None
    for attempt in range(MAX_ATTEMPTS):
        try:
            resp = http.post(
                f"{settings.treasury_url}/payouts/{payout_id}/reversals",
                json={"reason": reason},
                headers={"Idempotency-Key": idempotency_key},
                timeout=10,
            )
            resp.raise_for_status()
            return resp.json()["reversal_id"]
        except (requests.ConnectionError, requests.Timeout) as exc:
            last_error = exc
            _pause(attempt)
    raise LedgerUnavailable(f"reversal of payout {payout_id} not requested") from last_error
