"""Stock service: a Flask API over SQLAlchemy and Redis, with background workers.

Each function reads fine and passes a one-request-at-a-time test; several of them
lose updates or double-book stock once requests and workers run at the same time.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import redis
from flask import Flask, abort, jsonify, request
from sqlalchemy import Integer, String, create_engine, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

app = Flask(__name__)
engine = create_engine(os.environ.get("STOCK_DSN", "postgresql+psycopg://localhost/stock"))
cache = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
pool = ThreadPoolExecutor(max_workers=8)

REPORT_DIR = "/var/lib/stock/reports"
API_CALLS: dict[str, int] = {}
_report_lock = threading.Lock()


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(32), unique=True)
    on_hand: Mapped[int] = mapped_column(Integer, default=0)


@app.post("/items/<sku>/reserve")
def reserve(sku: str):
    API_CALLS[sku] = API_CALLS.get(sku, 0) + 1
    qty = int(request.args.get("qty", "1"))
    with Session(engine) as session:
        item = session.scalars(select(Item).where(Item.sku == sku)).one()
        if item.on_hand < qty:
            abort(409)
        item.on_hand = item.on_hand - qty
        session.commit()
        return jsonify({"sku": sku, "on_hand": item.on_hand})


@app.post("/items/<sku>/restock")
def restock(sku: str):
    qty = int(request.args.get("qty", "1"))
    with Session(engine) as session:
        session.execute(update(Item).where(Item.sku == sku).values(on_hand=Item.on_hand + qty))
        session.commit()
    return jsonify({"sku": sku, "added": qty})


@app.get("/items/<sku>/views")
def count_view(sku: str):
    key = f"views:{sku}"
    views = int(cache.get(key) or 0) + 1
    cache.set(key, views)
    return jsonify({"sku": sku, "views": views})


def write_report(name: str, rows: list[dict]) -> str:
    if not os.path.exists(REPORT_DIR):
        os.makedirs(REPORT_DIR)
    path = os.path.join(REPORT_DIR, f"{name}.json")
    with threading.Lock():
        with open(path, "w", encoding="utf-8") as out:
            json.dump(rows, out)
    return path


def export_all(names: list[str]) -> list[str]:
    jobs = [pool.submit(write_report, name, []) for name in names]
    return [job.result() for job in jobs]


class Counters:
    """Per-process counters read by the metrics endpoint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reserved = 0
        self.failed = 0

    def add_reserved(self, n: int) -> None:
        with self._lock:
            self.reserved += n

    def add_failed(self) -> None:
        self.failed += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {"reserved": self.reserved, "failed": self.failed}


class SupplierQuota:
    """How many purchase orders each supplier still accepts today (asyncio service)."""

    def __init__(self, client) -> None:
        self._client = client
        self.remaining = 100

    async def place(self, order: dict) -> bool:
        left = self.remaining
        if left <= 0:
            return False
        await self._client.send(order)
        self.remaining = left - 1
        return True


def rotate_reports() -> None:
    with _report_lock:
        for name in os.listdir(REPORT_DIR):
            if name.endswith(".old"):
                os.remove(os.path.join(REPORT_DIR, name))


async def main() -> None:
    await asyncio.gather(*(SupplierQuota(None).place({}) for _ in range(3)))
