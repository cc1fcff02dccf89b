"""Storefront API: orders, shipments, recommendations and live price updates."""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
from elasticsearch import AsyncElasticsearch
from fastapi import Depends, FastAPI, HTTPException, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, EmailStr

from .db import OrderNotFound, OrderRepo, get_repo
from .emails import send_welcome_email
from .pricing import PriceBook, load_price_snapshot
from .reports import build_sales_report

logger = logging.getLogger("storefront.api")

RECS_URL = "http://recs.internal:8080/v1/users/{user_id}/recommendations"
SHIPPING_URL = "https://api.shipping.example.com/v3/shipments"

es = AsyncElasticsearch("http://search.internal:9200")
price_book = PriceBook()
_report_tasks: set[asyncio.Task] = set()


async def refresh_prices() -> None:
    while True:
        try:
            snapshot = await load_price_snapshot()
            price_book.replace(snapshot)
        except asyncio.CancelledError:
            logger.info("price refresher stopped")
            break
        except Exception:
            logger.exception("price refresh failed; keeping previous snapshot")
        await asyncio.sleep(60)


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.http = httpx.AsyncClient(timeout=5.0)
    app.state.refresher = asyncio.create_task(refresh_prices(), name="price-refresher")
    yield
    app.state.refresher.cancel()
    try:
        await app.state.refresher
    except asyncio.CancelledError:
        pass
    await app.state.http.aclose()


app = FastAPI(lifespan=lifespan)
RepoDep = Annotated[OrderRepo, Depends(get_repo)]


class SignupIn(BaseModel):
    email: EmailStr
    name: str


class ShipmentIn(BaseModel):
    order_id: int
    carrier: str = "ups"


@app.get("/orders/{order_id}")
async def get_order(order_id: int, repo: RepoDep):
    try:
        order = await repo.get(order_id)
    except OrderNotFound:
        raise HTTPException(status_code=404, detail="order not found") from None
    return order.to_public_dict()


@app.post("/shipments", status_code=201)
async def create_shipment(body: ShipmentIn, repo: RepoDep):
    order = await repo.get(body.order_id)
    try:
        resp = await app.state.http.post(SHIPPING_URL, json={"order": order.number, "carrier": body.carrier})
        resp.raise_for_status()
    except httpx.HTTPError as e:
        logger.warning("shipping provider error for order %s: %r", order.id, e)
        raise HTTPException(status_code=502, detail="shipping provider unavailable") from e
    await repo.set_tracking(order.id, resp.json()["tracking_number"])
    return {"tracking_number": resp.json()["tracking_number"]}


@app.get("/users/{user_id}/recommendations")
async def recommendations(user_id: int) -> list[dict]:
    try:
        resp = await app.state.http.get(RECS_URL.format(user_id=user_id))
        resp.raise_for_status()
        return resp.json()["items"]
    except httpx.HTTPError:
        return []


@app.get("/search")
async def search_products(q: str, size: int = 20) -> list[dict]:
    try:
        result = await es.search(index="products", query={"match": {"title": q}}, size=size)
        hits = result["hits"]["hits"]
    except Exception as e:
        logger.error(f"search failed for {q!r}: {e}")
        hits = []
    return [{"id": h["_id"], **h["_source"]} for h in hits]


@app.post("/signup", status_code=201)
async def signup(body: SignupIn, repo: RepoDep):
    user = await repo.create_user(email=body.email, name=body.name)
    asyncio.create_task(send_welcome_email(user.email, user.name))
    return {"id": user.id}


def _on_report_done(task: asyncio.Task) -> None:
    _report_tasks.discard(task)
    try:
        task.result()
    except asyncio.CancelledError:
        logger.info("report %s cancelled", task.get_name())
    except Exception:
        logger.exception("report %s failed", task.get_name())


@app.post("/reports/sales", status_code=202)
async def request_sales_report(month: str, repo: RepoDep):
    report = await repo.create_report(kind="sales", month=month)
    task = asyncio.create_task(build_sales_report(report.id), name=f"report-{report.id}")
    _report_tasks.add(task)
    task.add_done_callback(_on_report_done)
    return {"report_id": report.id, "status": "queued"}


@app.websocket("/ws/prices")
async def ws_prices(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            await websocket.send_json(price_book.snapshot())
            await asyncio.sleep(2)
    except (WebSocketDisconnect, asyncio.CancelledError):
        logger.info("price subscriber went away")
