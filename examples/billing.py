"""Invoice billing for a small SaaS: the kind of module an assistant writes in one go."""

import logging

import requests
import stripe

logger = logging.getLogger(__name__)
BILLING_API = "https://billing.internal.example.com"


def fetch_open_invoices(customer_id: str) -> list[dict]:
    try:
        response = requests.get(f"{BILLING_API}/customers/{customer_id}/invoices", timeout=10)
        response.raise_for_status()
        return response.json()["invoices"]
    except Exception:
        logger.exception("could not fetch invoices for %s", customer_id)
        return []


def charge_invoice(invoice: dict) -> bool:
    try:
        stripe.PaymentIntent.create(amount=invoice["amount_cents"], currency="usd", customer=invoice["customer"])
        return True
    except stripe.error.StripeError as exc:
        logger.error("charge failed: %s", exc)
        return False


def settle_customer(customer_id: str) -> int:
    settled = 0
    for invoice in fetch_open_invoices(customer_id):
        try:
            charge_invoice(invoice)
            invoice["status"] = "paid"
            settled += 1
        except Exception as exc:
            logger.warning("skipping invoice %s: %s", invoice.get("id"), exc)
        mark_invoice(invoice)
    return settled


def mark_invoice(invoice: dict) -> None:
    requests.patch(f"{BILLING_API}/invoices/{invoice['id']}", json={"status": invoice.get("status")}, timeout=10)


def lookup_invoice(invoice_id: str) -> dict | None:
    """Near miss: 404 is a real answer, every other failure propagates."""
    response = requests.get(f"{BILLING_API}/invoices/{invoice_id}", timeout=10)
    try:
        response.raise_for_status()
    except requests.HTTPError:
        if response.status_code == 404:
            return None
        raise
    return response.json()
