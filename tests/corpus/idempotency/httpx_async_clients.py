"""Async clients for the billing API and the incident/ticketing service."""
from __future__ import annotations

import logging
import os
import uuid
from decimal import Decimal

import backoff
import httpx
import stamina
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential
from tenacity import retry as r

log = logging.getLogger(__name__)

BILLING_URL = os.environ.get("BILLING_URL", "https://billing.internal.example.com")
TICKETS_URL = os.environ.get("TICKETS_URL", "https://tickets.example.com/api/v3")
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)


def make_billing_client(token: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(retries=2)
    return httpx.AsyncClient(
        base_url=BILLING_URL,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=DEFAULT_TIMEOUT,
        transport=transport,
    )


def make_tickets_client(api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=TICKETS_URL, headers={"X-Api-Key": api_key}, timeout=DEFAULT_TIMEOUT)


def _money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01'))}"


def _charge_body(invoice) -> dict:
    return {
        "customer": invoice.customer_ref,
        "amount": _money(invoice.amount_due),
        "currency": invoice.currency,
        "description": f"Invoice {invoice.number}",
    }


async def create_charge(client: httpx.AsyncClient, invoice) -> dict:
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(3),
        wait=wait_random_exponential(max=8),
        retry=retry_if_exception_type(httpx.TransportError),
        reraise=True,
    ):
        with attempt:
            resp = await client.post(
                "/v1/charges",
                json=_charge_body(invoice),
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            resp.raise_for_status()
    return resp.json()


async def capture_deposit(client: httpx.AsyncClient, booking) -> dict:
    idempotency_key = str(uuid.uuid4())
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(4),
        wait=wait_random_exponential(multiplier=0.5, max=10),
        retry=retry_if_exception_type(httpx.TransportError),
        reraise=True,
    ):
        with attempt:
            resp = await client.post(
                "/v1/charges",
                json={
                    "customer": booking.customer_ref,
                    "amount": _money(booking.deposit),
                    "currency": booking.currency,
                    "capture": True,
                },
                headers={"Idempotency-Key": idempotency_key},
            )
            resp.raise_for_status()
    log.info("captured deposit for booking %s", booking.id)
    return resp.json()


@r(
    stop=stop_after_attempt(4),
    wait=wait_random_exponential(multiplier=0.5, max=10),
    retry=retry_if_exception_type(httpx.TransportError),
    reraise=True,
)
async def create_refund(client: httpx.AsyncClient, refund) -> dict:
    resp = await client.post(
        "/v1/refunds",
        json={"charge": refund.charge_ref, "amount": _money(refund.amount), "reason": refund.reason},
        headers={"Idempotency-Key": f"refund-{refund.order_id}-{refund.sequence}"},
    )
    resp.raise_for_status()
    return resp.json()


@stamina.retry(on=httpx.HTTPError, attempts=3)
async def fetch_invoice(client: httpx.AsyncClient, invoice_id: str) -> dict:
    resp = await client.get(f"/v1/invoices/{invoice_id}")
    resp.raise_for_status()
    return resp.json()


@backoff.on_exception(backoff.expo, httpx.TransportError, max_tries=3)
async def open_ticket(client: httpx.AsyncClient, incident) -> str:
    resp = await client.post(
        "/tickets",
        json={
            "title": f"[{incident.severity.upper()}] {incident.title}",
            "body": incident.summary,
            "labels": ["incident", incident.service],
        },
    )
    resp.raise_for_status()
    ticket = resp.json()
    await client.put(
        f"/tickets/{ticket['id']}/assignee",
        json={"user": incident.on_call_handle},
    )
    return ticket["id"]


async def add_ticket_comment(client: httpx.AsyncClient, ticket_id: str, text: str) -> str:
    resp = await client.post(f"/tickets/{ticket_id}/comments", json={"body": text})
    resp.raise_for_status()
    return resp.json()["id"]


def outstanding_total(invoices: list[dict]) -> Decimal:
    return sum((Decimal(i["amount_due"]) for i in invoices if i["status"] == "open"), Decimal("0"))
