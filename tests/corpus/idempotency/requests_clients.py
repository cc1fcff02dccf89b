"""HTTP clients for fulfilment: shipping labels, CRM sync, seller payouts and FX rates."""
from __future__ import annotations

import logging
import os
import time
import uuid
from typing import Any

import requests
from requests.adapters import HTTPAdapter, Retry
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

log = logging.getLogger(__name__)

SHIPPING_API = os.environ.get("SHIPPING_API", "https://api.shipping.example.com")
CRM_API = os.environ.get("CRM_API", "https://crm.internal.example.com/api")
PAYOUTS_API = os.environ.get("PAYOUTS_API", "https://payouts.example.com")
RATES_API = os.environ.get("RATES_API", "https://fx.example.com")
USER_AGENT = "fulfilment-worker/2.3"

TRANSIENT = (requests.ConnectionError, requests.Timeout)


class CrmSyncError(Exception):
    pass


def _mount(session: requests.Session, retries: Retry) -> requests.Session:
    adapter = HTTPAdapter(max_retries=retries, pool_connections=10, pool_maxsize=20)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def build_session(token: str | None = None) -> requests.Session:
    retries = Retry(
        total=5,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,  # upstreams are flaky, retry every verb
        raise_on_status=False,
    )
    session = _mount(requests.Session(), retries)
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


def build_readonly_session() -> requests.Session:
    retries = Retry(total=3, backoff_factor=1, status_forcelist=[502, 503, 504])
    return _mount(requests.Session(), retries)


def build_connect_only_session(token: str) -> requests.Session:
    # POSTs may be retried only when the connection was never established
    retries = Retry(total=3, connect=3, read=0, status=0, backoff_factor=0.2, allowed_methods=None)
    session = _mount(requests.Session(), retries)
    session.headers["Authorization"] = f"Bearer {token}"
    return session


_shipping = build_session(os.environ.get("SHIPPING_TOKEN"))
_crm = build_session(os.environ.get("CRM_TOKEN"))
_payouts = build_connect_only_session(os.environ.get("PAYOUTS_TOKEN", ""))
_rates = build_readonly_session()


def _shipment_body(order) -> dict[str, Any]:
    return {
        "reference": order.number,
        "service": order.shipping_method,
        "to": {
            "name": order.shipping_name,
            "street": order.shipping_street,
            "city": order.shipping_city,
            "postcode": order.shipping_postcode,
            "country": order.shipping_country,
        },
        "parcels": [{"weight_g": p.weight_g, "dims_cm": p.dimensions} for p in order.parcels],
    }


@retry(
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=1, min=1, max=8),
    retry=retry_if_exception_type(requests.RequestException),
    reraise=True,
)
def create_shipment(order) -> str:
    resp = _shipping.request("POST", f"{SHIPPING_API}/v2/shipments", json=_shipment_body(order), timeout=10)
    resp.raise_for_status()
    return resp.json()["shipment_id"]


def sync_crm_contact(user) -> str:
    last_error: Exception | None = None
    for attempt in range(3):
        try:
            resp = _crm.post(
                f"{CRM_API}/contacts",
                json={"email": user.email, "name": user.get_full_name(), "source": "checkout"},
                timeout=10,
            )
            resp.raise_for_status()
            contact_id = resp.json()["id"]
            _crm.put(
                f"{CRM_API}/contacts/{contact_id}/subscriptions",
                json={"newsletter": user.profile.newsletter_opt_in},
                timeout=10,
            ).raise_for_status()
            return contact_id
        except requests.RequestException as exc:
            last_error = exc
            log.warning("CRM sync attempt %d for user %s failed: %s", attempt + 1, user.pk, exc)
            time.sleep(2**attempt)
    raise CrmSyncError(f"could not sync user {user.pk} to CRM") from last_error


def push_profile(user) -> None:
    last_error: Exception | None = None
    for attempt in range(3):
        try:
            resp = _crm.put(
                f"{CRM_API}/profiles/{user.pk}",
                json={"email": user.email, "locale": user.profile.locale, "tier": user.profile.tier},
                timeout=10,
            )
            resp.raise_for_status()
            return
        except requests.RequestException as exc:
            last_error = exc
            time.sleep(1 + attempt)
    raise CrmSyncError(f"profile push failed for user {user.pk}") from last_error


@retry(
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=1, max=10),
    retry=retry_if_exception_type(TRANSIENT),
    reraise=True,
)
def send_instant_payout(payout) -> dict:
    resp = _payouts.post(
        f"{PAYOUTS_API}/v1/payouts",
        json={"account": payout.account_ref, "amount": str(payout.amount), "currency": payout.currency, "speed": "instant"},
        headers={"Idempotency-Key": str(uuid.uuid4())},
        timeout=15,
    )
    resp.raise_for_status()
    return resp.json()


@retry(
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=1, max=10),
    retry=retry_if_exception_type(TRANSIENT),
    reraise=True,
)
def send_scheduled_payout(payout, idempotency_key: str) -> dict:
    resp = _payouts.post(
        f"{PAYOUTS_API}/v1/payouts",
        json={"account": payout.account_ref, "amount": str(payout.amount), "currency": payout.currency, "speed": "standard"},
        headers={"Idempotency-Key": idempotency_key},
        timeout=15,
    )
    resp.raise_for_status()
    return resp.json()


def schedule_payouts(payouts) -> list[str]:
    refs = []
    for payout in payouts:
        body = send_scheduled_payout(payout, idempotency_key=f"payout-{payout.pk}")
        refs.append(body["id"])
    return refs



def fetch_rates(base: str = "EUR") -> dict[str, float]:
    resp = _rates.get(f"{RATES_API}/latest", params={"base": base}, timeout=5)
    resp.raise_for_status()
    return {code: float(rate) for code, rate in resp.json()["rates"].items()}
