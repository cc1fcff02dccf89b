"""Long-lived asyncio services of the edge gateway: rate limiting, wallets, sync and publishing."""
from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib

import aiohttp

log = logging.getLogger("gateway.services")

_change_cursor = 0


class InsufficientFunds(Exception):
    pass


class TokenBucket:
    def __init__(self, capacity: int, refill_per_sec: int, audit) -> None:
        self.capacity = capacity
        self.refill_per_sec = refill_per_sec
        self.tokens = capacity
        self._audit = audit

    async def acquire(self, client_id: str) -> bool:
        if self.tokens <= 0:
            return False
        await self._audit.record("token", client_id)
        self.tokens -= 1
        return True

    async def acquire_audited_first(self, client_id: str) -> bool:
        await self._audit.record("token-request", client_id)
        if self.tokens <= 0:
            return False
        self.tokens -= 1
        return True

    async def refill_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.tokens = min(self.capacity, self.tokens + self.refill_per_sec)


class WalletService:
    def __init__(self, ledger, opening_balance: int) -> None:
        self._ledger = ledger
        self.balance = opening_balance
        self._lock = asyncio.Lock()

    async def debit(self, amount: int, ref: str) -> int:
        async with self._lock:
            current = self.balance
            if current < amount:
                raise InsufficientFunds(ref)
            await self._ledger.append(ref, -amount)
            self.balance = current - amount
            return self.balance

    async def credit(self, amount: int, ref: str) -> int:
        current = self.balance
        await self._ledger.append(ref, amount)
        self.balance = current + amount
        return self.balance

    async def snapshot(self) -> dict:
        async with self._lock:
            pending = await self._ledger.pending_count()
            return {"balance": self.balance, "pending": pending}


class InventoryMirror:
    def __init__(self, remote) -> None:
        self._remote = remote
        self.stock: dict[str, int] = {}

    async def reserve(self, sku: str, qty: int) -> bool:
        available = self.stock.get(sku, 0)
        if available < qty:
            return False
        confirmed = await self._remote.reserve(sku, qty)
        if confirmed:
            self.stock[sku] = available - qty
        return confirmed

    async def release(self, sku: str, qty: int) -> None:
        await self._remote.release(sku, qty)
        self.stock[sku] = self.stock.get(sku, 0) + qty

    async def refresh(self, sku: str) -> int:
        level = await self._remote.stock_level(sku)
        self.stock[sku] = level
        return level


class EventPublisher:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def publish(self, event: dict) -> None:
        frame = json.dumps(event, separators=(",", ":")).encode() + b"\n"
        async with asyncio.Lock():
            self._writer.write(frame)
            await self._writer.drain()


class Channel:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._send_lock = asyncio.Lock()

    async def send(self, event: dict) -> None:
        frame = json.dumps(event, separators=(",", ":")).encode() + b"\n"
        async with self._send_lock:
            self._writer.write(frame)
            await self._writer.drain()


class BlobCompressor:
    def __init__(self, level: int = 6) -> None:
        self.level = level
        self.bytes_in = 0
        self.blobs_done = 0

    def _compress_sync(self, blob: bytes) -> bytes:
        out = zlib.compress(blob, self.level)
        self.bytes_in += len(blob)
        return out

    async def compress(self, blob: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        out = await loop.run_in_executor(None, self._compress_sync, blob)
        self.blobs_done += 1
        return out


async def apply_changes(db, changes: list[dict]) -> None:
    for change in changes:
        await db.execute("UPDATE mirror SET body = $2 WHERE id = $1", change["id"], change["body"])


async def sync_changes(api, db) -> int:
    global _change_cursor
    since = _change_cursor
    changes = await api.changes(since=since, limit=500)
    await apply_changes(db, changes)
    _change_cursor = since + len(changes)
    return len(changes)


async def _fetch_one(session: aiohttp.ClientSession, sem: asyncio.Semaphore, url: str) -> str:
    async with sem:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            resp.raise_for_status()
            return await resp.text()


async def fetch_all(urls: list[str], concurrency: int = 8) -> list[str]:
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(_fetch_one(session, sem, url) for url in urls))


async def download_report(session: aiohttp.ClientSession, url: str) -> bytes:
    gate = asyncio.Semaphore(4)
    async with gate:
        async with session.get(url) as resp:
            resp.raise_for_status()
            return await resp.read()


async def probe_latency(session: aiohttp.ClientSession, endpoints: list[str]) -> float:
    total = 0.0
    for url in endpoints:
        started = time.perf_counter()
        async with session.head(url) as resp:
            await resp.release()
        total = total + (time.perf_counter() - started)
    return total / max(len(endpoints), 1)
