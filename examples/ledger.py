"""Account ledger: balances in memory, refunds through Stripe, statements from disk."""

import logging
import threading

import stripe

log = logging.getLogger(__name__)


class Ledger:
    def __init__(self):
        self._lock = threading.Lock()
        self._balances: dict[str, int] = {}

    def debit(self, account: str, amount: int) -> None:
        with self._lock:
            self._balances[account] = self._balances.get(account, 0) - amount


def refund(order) -> str:
    try:
        result = stripe.Refund.create(charge=order.charge_id, idempotency_key=f"refund-{order.id}")
    except stripe.error.StripeError:
        log.exception("refund failed for order %s", order.id)
        raise
    return result.id


def read_statement(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""
