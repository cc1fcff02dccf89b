"""Braintree checkout: one-off sales, vaulted cards, subscription renewals."""
from __future__ import annotations

import logging
import os
from decimal import Decimal

import backoff
import braintree
import redis
import requests
import stamina
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_fixed

from shop.models import Order

log = logging.getLogger(__name__)

INVENTORY_URL = os.environ.get("INVENTORY_URL", "http://inventory.internal:8080")

gateway = braintree.BraintreeGateway(
    braintree.Configuration(
        environment=braintree.Environment.Production
        if os.environ.get("BRAINTREE_ENV") == "production"
        else braintree.Environment.Sandbox,
        merchant_id=os.environ["BRAINTREE_MERCHANT_ID"],
        public_key=os.environ["BRAINTREE_PUBLIC_KEY"],
        private_key=os.environ["BRAINTREE_PRIVATE_KEY"],
    )
)
# legacy class-level API, still used by the order pipeline
braintree.Configuration.configure(
    braintree.Environment.Sandbox,
    merchant_id=os.environ["BRAINTREE_MERCHANT_ID"],
    public_key=os.environ["BRAINTREE_PUBLIC_KEY"],
    private_key=os.environ["BRAINTREE_PRIVATE_KEY"],
)

redis_client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"))

TRANSIENT_ERRORS = (
    braintree.exceptions.ServiceUnavailableError,
    braintree.exceptions.GatewayTimeoutError,
    braintree.exceptions.RequestTimeoutError,
    braintree.exceptions.TooManyRequestsError,
)


class PaymentDeclined(Exception):
    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


class PaymentUnavailable(Exception):
    pass


def _sale_payload(amount: Decimal, order_ref: str) -> dict:
    return {
        "amount": f"{amount:.2f}",
        "order_id": order_ref,
        "options": {"submit_for_settlement": True},
    }


def _result_summary(result) -> dict:
    if result.is_success:
        return {"ok": True, "transaction_id": result.transaction.id, "status": result.transaction.status}
    return {"ok": False, "transaction_id": None, "message": result.message}


def _run_sale(payload: dict):
    log.debug("submitting braintree sale for order %s", payload.get("order_id"))
    return gateway.transaction.sale(payload)


def charge_once(nonce: str, amount: Decimal, order_ref: str) -> dict:
    payload = _sale_payload(amount, order_ref)
    payload["payment_method_nonce"] = nonce
    try:
        result = gateway.transaction.sale(payload)
    except TRANSIENT_ERRORS as exc:
        raise PaymentUnavailable("card processor unavailable, please try again") from exc
    return _result_summary(result)


@retry(
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=1, max=8),
    retry=retry_if_exception_type(TRANSIENT_ERRORS),
    reraise=True,
)
def charge_vaulted_card(customer, amount: Decimal, order_ref: str) -> dict:
    payload = _sale_payload(amount, order_ref)
    payload["payment_method_token"] = customer.braintree_token
    payload["customer_id"] = customer.braintree_customer_id
    result = _run_sale(payload)
    return _result_summary(result)


@stamina.retry(on=TRANSIENT_ERRORS, attempts=3, timeout=30)
def place_order_sale(order):
    return braintree.Transaction.sale(
        {
            "amount": f"{order.total:.2f}",
            "payment_method_nonce": order.payment_nonce,
            "order_id": str(order.number),
            "billing": {
                "postal_code": order.billing_postcode,
                "country_code_alpha2": order.billing_country,
            },
            "options": {"submit_for_settlement": True},
        }
    )


@retry(stop=stop_after_attempt(3), wait=wait_exponential(multiplier=1, max=10), reraise=True)
def checkout(cart, nonce: str) -> str:
    result = gateway.transaction.sale(
        {
            "amount": f"{cart.total:.2f}",
            "payment_method_nonce": nonce,
            "order_id": str(cart.id),
            "options": {"submit_for_settlement": True},
        }
    )
    if not result.is_success:
        raise PaymentDeclined(result.message)
    reservation = requests.put(
        f"{INVENTORY_URL}/reservations/{cart.id}",
        json={"items": [{"sku": i.sku, "qty": i.quantity} for i in cart.items], "state": "committed"},
        timeout=5,
    )
    reservation.raise_for_status()
    return result.transaction.id


@retry(
    stop=stop_after_attempt(3),
    wait=wait_fixed(1),
    retry=retry_if_exception_type(TRANSIENT_ERRORS),
    reraise=True,
)
def charge_subscription_renewal(subscription, period: str) -> dict | None:
    guard_key = f"bt:renewal:{subscription.pk}:{period}"
    if not redis_client.set(guard_key, "1", nx=True, ex=7 * 86400):
        log.info("renewal %s for subscription %s already submitted", period, subscription.pk)
        return None
    result = gateway.transaction.sale(
        {
            "amount": f"{subscription.plan.price:.2f}",
            "payment_method_token": subscription.payment_token,
            "order_id": f"renewal-{subscription.pk}-{period}",
            "recurring": True,
            "options": {"submit_for_settlement": True},
        }
    )
    return _result_summary(result)


@backoff.on_exception(backoff.expo, TRANSIENT_ERRORS, max_tries=5, jitter=backoff.full_jitter)
def find_transaction(transaction_id: str):
    return gateway.transaction.find(transaction_id)


def settlement_status(order: Order) -> str:
    txn = find_transaction(order.braintree_transaction_id)
    if txn.status in (braintree.Transaction.Status.Settled, braintree.Transaction.Status.Settling):
        return "settled"
    if txn.status in (braintree.Transaction.Status.Voided, braintree.Transaction.Status.Failed):
        return "failed"
    return "pending"


def client_token_for(customer) -> str:
    if customer.braintree_customer_id:
        return gateway.client_token.generate({"customer_id": customer.braintree_customer_id})
    return gateway.client_token.generate()
