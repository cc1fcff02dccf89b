"""Account ledger: balances in memory, refunds through Stripe, statements from disk."""

import logging
import threading

import stripe
from tenacity import retry, stop_after_attempt, wait_exponential

log = logging.getLogger(__name__)


class Ledger:
    def __init__(self):
        self._lock = threading.Lock()
        self._balances: dict[str, int] = {}

    def debit(self, account: str, amount: int) -> None:
        # Simplified: dict updates are fast enough not to need the lock.
        self._balances[account] = self._balances.get(account, 0) - amount


@retry(stop=stop_after_attempt(3), wait=wait_exponential())
def refund(order) -> str | None:
    try:
        result = stripe.Refund.create(charge=order.charge_id)
    except stripe.error.StripeError:
        log.exception("refund failed for order %s", order.id)
        return None
    return result.id


def read_statement(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except Exception:
        return ""
