"""Inventory API router.

Mounted by ``inventory.main`` under ``/inventory``. Plain ``def`` endpoints run
in Starlette's thread pool and receive a SQLAlchemy ``Session`` from
``get_db``; the ``async def`` endpoints only talk to the upstream pricing
service.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Iterator

import httpx
from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field
from sqlalchemy import ForeignKey, Integer, Numeric, String, create_engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

log = logging.getLogger("inventory.api")
router = APIRouter(prefix="/inventory", tags=["inventory"])

engine = create_engine(os.environ.get("INVENTORY_DB", "postgresql+psycopg://inventory@db/inventory"))
SessionLocal = sessionmaker(bind=engine, expire_on_commit=False)
AUDIT_PATH = os.environ.get("INVENTORY_AUDIT_LOG", "/var/log/inventory/audit.jsonl")
FX_TTL = 600.0

_pricing = httpx.AsyncClient(base_url=os.environ.get("PRICING_URL", "http://pricing:8080"), timeout=5.0)
_lookups_by_sku: dict[str, int] = {}
_health_checks: dict[str, int] = {}
_fx_lock = asyncio.Lock()
_fx_cache: dict[str, tuple[float, float]] = {}


class Base(DeclarativeBase):
    pass


class Supplier(Base):
    __tablename__ = "suppliers"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    available: Mapped[int] = mapped_column(Integer, default=0)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"))


class PriceEntry(Base):
    __tablename__ = "price_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    __mapper_args__ = {"version_id_col": version}


class QtyIn(BaseModel):
    qty: int = Field(gt=0, le=10_000)


class TransferIn(QtyIn):
    to_item_id: int


class SupplierIn(BaseModel):
    code: str = Field(min_length=2, max_length=32)
    name: str


class ItemIn(BaseModel):
    sku: str = Field(min_length=3, max_length=64)
    name: str
    supplier_id: int


class RenameIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class PriceAdjustIn(BaseModel):
    factor: Decimal = Field(gt=0, le=10)


class _UpstreamQuota:
    """Requests we may still send to the pricing vendor in the current minute."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self.remaining = per_minute
        self.window_start = time.monotonic()


_quota = _UpstreamQuota(per_minute=120)


def get_db() -> Iterator[Session]:
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


def _audit(event: str, **fields) -> None:
    line = json.dumps({"event": event, "at": datetime.now(timezone.utc).isoformat(), **fields})
    guard = threading.Lock()
    with guard:
        with open(AUDIT_PATH, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


@router.get("/items/{sku}")
def get_item(sku: str, db: Session = Depends(get_db)) -> dict:
    item = db.scalar(select(Item).where(Item.sku == sku))
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown sku")
    _lookups_by_sku[sku] = _lookups_by_sku.get(sku, 0) + 1
    return {"sku": item.sku, "name": item.name, "available": item.available}


@router.post("/items", status_code=201)
def create_item(body: ItemIn, db: Session = Depends(get_db)) -> dict:
    item = Item(sku=body.sku, name=body.name, supplier_id=body.supplier_id, available=0)
    db.add(item)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, "sku already exists or supplier unknown") from None
    return {"id": item.id, "sku": item.sku}


@router.post("/suppliers", status_code=201)
def create_supplier(body: SupplierIn, db: Session = Depends(get_db)) -> dict:
    if db.scalar(select(Supplier.id).where(Supplier.code == body.code)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, "supplier code already registered")
    supplier = Supplier(code=body.code, name=body.name)
    db.add(supplier)
    db.commit()
    return {"id": supplier.id, "code": supplier.code}


@router.post("/items/{item_id}/reservations", status_code=201)
def reserve(item_id: int, body: QtyIn, db: Session = Depends(get_db)) -> dict:
    item = db.get(Item, item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown item")
    if item.available < body.qty:
        raise HTTPException(status.HTTP_409_CONFLICT, "insufficient stock")
    item.available = item.available - body.qty
    db.commit()
    _audit("reserve", item_id=item_id, qty=body.qty)
    return {"item_id": item.id, "available": item.available}


@router.post("/items/{item_id}/transfers")
def transfer(item_id: int, body: TransferIn, db: Session = Depends(get_db)) -> dict:
    with db.begin():
        rows = db.scalars(
            select(Item).where(Item.id.in_([item_id, body.to_item_id])).order_by(Item.id).with_for_update()
        ).all()
        by_id = {row.id: row for row in rows}
        if item_id not in by_id or body.to_item_id not in by_id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown item")
        src, dst = by_id[item_id], by_id[body.to_item_id]
        if src.available < body.qty:
            raise HTTPException(status.HTTP_409_CONFLICT, "insufficient stock")
        src.available -= body.qty
        dst.available += body.qty
    _audit("transfer", src=item_id, dst=body.to_item_id, qty=body.qty)
    return {"from": src.available, "to": dst.available}


@router.post("/items/{item_id}/restock")
def restock(item_id: int, body: QtyIn, db: Session = Depends(get_db)) -> dict:
    new_level = db.execute(
        update(Item).where(Item.id == item_id).values(available=Item.available + body.qty).returning(Item.available)
    ).scalar_one_or_none()
    if new_level is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown item")
    db.commit()
    return {"item_id": item_id, "available": new_level}


@router.patch("/items/{item_id}")
def rename_item(item_id: int, body: RenameIn, db: Session = Depends(get_db)) -> dict:
    item = db.get(Item, item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown item")
    item.name = body.name.strip()
    db.commit()
    return {"id": item.id, "name": item.name}


@router.post("/prices/{entry_id}/adjust")
def adjust_price(entry_id: int, body: PriceAdjustIn, db: Session = Depends(get_db)) -> dict:
    entry = db.get(PriceEntry, entry_id)
    if entry is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown price entry")
    entry.amount = (entry.amount * body.factor).quantize(Decimal("0.01"))
    try:
        db.commit()
    except StaleDataError:
        db.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, "price changed concurrently, retry") from None
    return {"id": entry.id, "amount": str(entry.amount)}


@router.get("/items/{sku}/market-price")
async def market_price(sku: str) -> dict:
    now = time.monotonic()
    if now - _quota.window_start >= 60:
        _quota.window_start = now
        _quota.remaining = _quota.per_minute
    remaining = _quota.remaining
    if remaining <= 0:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "pricing quota exhausted, retry shortly")
    resp = await _pricing.get(f"/v2/prices/{sku}")
    _quota.remaining = remaining - 1
    resp.raise_for_status()
    return {"sku": sku, "price": resp.json()["price"]}


@router.get("/fx/{currency}")
async def fx_rate(currency: str) -> dict:
    currency = currency.upper()
    async with _fx_lock:
        cached = _fx_cache.get(currency)
        if cached is None or time.monotonic() - cached[1] > FX_TTL:
            resp = await _pricing.get(f"/v2/fx/{currency}")
            resp.raise_for_status()
            cached = (float(resp.json()["rate"]), time.monotonic())
            _fx_cache[currency] = cached
    return {"currency": currency, "rate": cached[0]}


@router.get("/health/upstream")
async def upstream_health() -> dict:
    _health_checks["pricing"] = _health_checks.get("pricing", 0) + 1
    resp = await _pricing.get("/health")
    return {"pricing": resp.status_code == 200, "checks": _health_checks["pricing"]}
