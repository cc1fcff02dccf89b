"""Checkout router: card authorisation through the PSP, label purchase through the carrier API.

The PSP and carrier clients are created once in ``checkout.main`` lifespan and hung off
``app.state``; everything here is async except the legacy tax service client.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from decimal import Decimal

import backoff
import httpx
import requests
from fastapi import APIRouter, Depends, Header, HTTPException, Request
from pydantic import BaseModel
from redis.asyncio import Redis
from requests.adapters import HTTPAdapter
from tenacity import AsyncRetrying, retry, retry_if_exception_type, stop_after_attempt, wait_exponential
from urllib3.util.retry import Retry

from checkout.config import settings
from checkout.db import OrderRepository, get_orders
from checkout.deps import get_redis

log = logging.getLogger("checkout.orders")
router = APIRouter(tags=["checkout"])

_transient = retry_if_exception_type((httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError))


class PaymentDeclined(Exception):
    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


class CheckoutRequest(BaseModel):
    cart_id: str
    payment_token: str
    shipping_rate_id: str


class PaymentGateway:
    def __init__(self, client: httpx.AsyncClient):
        self._client = client

    @retry(stop=stop_after_attempt(3), wait=wait_exponential(multiplier=0.5, max=4), retry=_transient, reraise=True)
    async def authorize(self, order_ref: str, amount: Decimal, currency: str, token: str) -> str:
        resp = await self._client.post(
            "/v2/authorizations",
            json={"reference": order_ref, "amount": str(amount), "currency": currency, "source": token},
        )
        if resp.status_code == 402:
            raise PaymentDeclined(resp.json().get("decline_code", "unknown"))
        resp.raise_for_status()
        return resp.json()["authorization_id"]

    @retry(stop=stop_after_attempt(5), wait=wait_exponential(max=8), retry=_transient, reraise=True)
    async def capture(self, authorization_id: str, amount: Decimal) -> dict:
        resp = await self._client.post(
            f"/v2/authorizations/{authorization_id}/captures",
            json={"amount": str(amount)},
            headers={"Idempotency-Key": f"capture-{authorization_id}"},
        )
        resp.raise_for_status()
        return resp.json()

    @retry(stop=stop_after_attempt(4), wait=wait_exponential(max=10), retry=_transient, reraise=True)
    async def refund(self, capture_id: str, amount: Decimal, reason: str) -> str:
        request_id = uuid.uuid4().hex
        resp = await self._client.post(
            f"/v2/captures/{capture_id}/refunds",
            json={"amount": str(amount), "reason": reason},
            headers={"Idempotency-Key": request_id, "X-Request-Id": request_id},
        )
        resp.raise_for_status()
        return resp.json()["refund_id"]


class ShippingClient:
    def __init__(self, client: httpx.AsyncClient):
        self._client = client

    @backoff.on_exception(backoff.expo, httpx.HTTPError, max_tries=4, max_time=20)
    async def get_rates(self, parcel: dict, destination: dict) -> list[dict]:
        resp = await self._client.get("/rates", params={**parcel, **destination})
        resp.raise_for_status()
        return sorted(resp.json()["rates"], key=lambda r: Decimal(r["amount"]))

    @backoff.on_exception(backoff.expo, (httpx.TransportError, httpx.HTTPStatusError), max_tries=3)
    async def buy_label(self, order_ref: str, rate_id: str, pickup_window: dict) -> dict:
        shipment = await self._client.post("/shipments", json={"rate_id": rate_id, "reference": order_ref})
        shipment.raise_for_status()
        shipment_id = shipment.json()["id"]
        pickup = await self._client.post(f"/shipments/{shipment_id}/pickup", json=pickup_window)
        pickup.raise_for_status()
        return {
            "shipment_id": shipment_id,
            "label_url": shipment.json()["label_url"],
            "pickup": pickup.json()["confirmation"],
        }

    @backoff.on_exception(backoff.expo, httpx.TransportError, max_tries=5)
    async def void_label(self, shipment_id: str) -> None:
        resp = await self._client.delete(f"/shipments/{shipment_id}/label")
        if resp.status_code not in (200, 204, 404):
            resp.raise_for_status()


class TaxQuoteClient:
    """Legacy synchronous tax service, called via run_in_threadpool."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        policy = Retry(total=3, backoff_factor=0.2, status_forcelist=[502, 503, 504], allowed_methods=["GET", "POST"])
        self.session.mount("https://", HTTPAdapter(max_retries=policy))

    def quote(self, lines: list[dict], ship_to: dict) -> Decimal:
        resp = self.session.post(f"{self.base_url}/v1/quotes", json={"lines": lines, "ship_to": ship_to}, timeout=5)
        resp.raise_for_status()
        return Decimal(resp.json()["total_tax"])


async def push_order_to_erp(client: httpx.AsyncClient, order: dict) -> str:
    idem = f"erp-order-{order['id']}-v{order['version']}"
    async for attempt in AsyncRetrying(stop=stop_after_attempt(4), wait=wait_exponential(max=6), retry=_transient, reraise=True):
        with attempt:
            resp = await client.post(f"{settings.erp_url}/sales-orders", json=order, headers={"Idempotency-Key": idem})
            resp.raise_for_status()
    return resp.json()["document_no"]


async def reserve_stock(client: httpx.AsyncClient, order_ref: str, lines: list[dict]) -> str:
    async for attempt in AsyncRetrying(stop=stop_after_attempt(3), retry=_transient, reraise=True):
        with attempt:
            resp = await client.post(
                f"{settings.inventory_url}/reservations",
                json={"order_ref": order_ref, "lines": lines},
                headers={"Idempotency-Key": f"{order_ref}:{uuid.uuid4()}"},
            )
            resp.raise_for_status()
            reservation = resp.json()
    return reservation["id"]


def _verify_signature(raw: bytes, signature: str | None, secret: str) -> None:
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not signature or not hmac.compare_digest(expected, signature):
        raise HTTPException(status_code=401, detail="bad signature")


@router.post("/orders", status_code=201)
async def place_order(body: CheckoutRequest, request: Request, orders: OrderRepository = Depends(get_orders)):
    cart = await orders.load_cart(body.cart_id)
    if cart is None:
        raise HTTPException(status_code=404, detail="cart not found")
    gateway = PaymentGateway(request.app.state.psp)
    try:
        auth_id = await gateway.authorize(cart.id, cart.total, cart.currency, body.payment_token)
    except PaymentDeclined as exc:
        raise HTTPException(status_code=402, detail=f"card declined: {exc.code}") from exc
    order = await orders.open_order(cart, authorization_id=auth_id, rate_id=body.shipping_rate_id)
    return {"order_id": order.id, "status": order.status}


@router.post("/webhooks/carrier")
async def carrier_webhook(request: Request, x_carrier_signature: str | None = Header(default=None)):
    raw = await request.body()
    _verify_signature(raw, x_carrier_signature, settings.carrier_webhook_secret)
    event = await request.json()
    if event["type"] != "tracking.delivered":
        return {"ignored": event["type"]}
    notifier: httpx.AsyncClient = request.app.state.notifier
    resp = await notifier.post(
        "/v1/messages",
        json={
            "template": "order_delivered",
            "order_ref": event["data"]["reference"],
            "tracking_code": event["data"]["tracking_code"],
        },
    )
    resp.raise_for_status()
    return {"ok": True}


@router.post("/webhooks/psp")
async def psp_webhook(
    request: Request,
    redis: Redis = Depends(get_redis),
    x_psp_signature: str | None = Header(default=None),
):
    raw = await request.body()
    _verify_signature(raw, x_psp_signature, settings.psp_webhook_secret)
    event = await request.json()
    seen_key = f"psp-event:{event['id']}"
    if not await redis.set(seen_key, "1", nx=True, ex=7 * 86400):
        log.info("duplicate psp event %s", event["id"])
        return {"duplicate": True}
    try:
        if event["type"] == "capture.refunded":
            resp = await request.app.state.notifier.post(
                "/v1/messages",
                json={"template": "refund_issued", "order_ref": event["data"]["reference"]},
            )
            resp.raise_for_status()
    except Exception:
        await redis.delete(seen_key)
        raise
    return {"ok": True}
