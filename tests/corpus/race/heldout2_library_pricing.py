"""Pricing API plumbing: TTL cache, connection pool, circuit breaker and an asyncio client."""
import asyncio
import collections
import logging
import os
import threading
import time

import httpx

log = logging.getLogger(__name__)

PRICING_URL = os.environ.get("PRICING_URL", "https://pricing.internal")


class TTLCache:
    def __init__(self, ttl: float, maxsize: int = 1024) -> None:
        self._ttl, self._maxsize = ttl, maxsize
        self._data: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.RLock()
        self.hits, self.misses = 0, 0

    def get(self, key):
        with self._lock:
            entry = self._data.get(key)
            if entry is None or entry[0] < time.monotonic():
                self.misses += 1
                return None
            self._data.move_to_end(key)
        self.hits += 1
        return entry[1]

    def set(self, key, value) -> None:
        with self._lock:
            self._data[key] = (time.monotonic() + self._ttl, value)
            self._data.move_to_end(key)
            self._evict_locked()

    def _evict_locked(self) -> None:
        while len(self._data) > self._maxsize:
            self._data.popitem(last=False)

    def get_or_compute(self, key, compute):
        with self._lock:
            value = self.get(key)
            if value is None:
                value = compute()
                self.set(key, value)
            return value


class ConnectionPool:
    def __init__(self, factory, size: int = 8, timeout: float = 5.0) -> None:
        self._factory = factory
        self._size, self._timeout = size, timeout
        self._idle: collections.deque = collections.deque()
        self._created = 0
        self._cond = threading.Condition(threading.Lock())

    def acquire(self):
        deadline = time.monotonic() + self._timeout
        with self._cond:
            while not self._idle and self._created >= self._size:
                if not self._cond.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError("connection pool exhausted")
            if self._idle:
                return self._idle.popleft()
            self._created += 1
        try:
            return self._factory()
        except Exception:
            with self._cond:
                self._created -= 1
                self._cond.notify()
            raise

    def release(self, conn) -> None:
        with self._cond:
            self._idle.append(conn)
            self._cond.notify()

    def discard(self, conn) -> None:
        conn.close()
        with self._cond:
            self._created -= 1
            self._cond.notify()


class CircuitBreaker:
    def __init__(self, threshold: int = 5, cooldown: float = 30.0) -> None:
        self.threshold, self.cooldown = threshold, cooldown
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None

    def allow(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            if time.monotonic() - self._opened_at >= self.cooldown:
                self._opened_at = None
                self._failures = self.threshold - 1
                return True
            return False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold and self._opened_at is None:
                self._opened_at = time.monotonic()
                log.warning("pricing circuit opened after %d failures", self._failures)

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None


_default_pool: ConnectionPool | None = None
_thread_state = threading.local()


def default_pool() -> ConnectionPool:
    global _default_pool
    if _default_pool is None:
        _default_pool = ConnectionPool(lambda: httpx.Client(base_url=PRICING_URL, timeout=5.0), size=16)
    return _default_pool


def _thread_client() -> httpx.Client:
    client = getattr(_thread_state, "client", None)
    if client is None:
        client = httpx.Client(base_url=PRICING_URL, timeout=5.0)
        _thread_state.client = client
    return client


def fetch_catalog_page(page: int) -> list[dict]:
    pool = default_pool()
    conn = pool.acquire()
    try:
        resp = conn.get("/v1/catalog", params={"page": page})
    except httpx.TransportError:
        pool.discard(conn)
        raise
    pool.release(conn)
    resp.raise_for_status()
    return resp.json()["items"]


def fetch_legacy_price(sku: str) -> float:
    resp = _thread_client().get(f"/v1/price/{sku}")
    resp.raise_for_status()
    return float(resp.json()["price"])


class AsyncPricingClient:
    def __init__(self, base_url: str = PRICING_URL, max_concurrency: int = 10) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=5.0)
        self._cache = TTLCache(ttl=60)
        self._breaker = CircuitBreaker()
        self._token: str | None = None
        self._token_expiry = 0.0
        self._refresh_lock = asyncio.Lock()
        self._sem = asyncio.Semaphore(max_concurrency)
        self.requests_sent = 0

    async def _auth_header(self) -> dict:
        async with self._refresh_lock:
            if self._token is None or time.monotonic() >= self._token_expiry:
                resp = await self._http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                             auth=(os.environ["PRICING_CLIENT_ID"], os.environ["PRICING_CLIENT_SECRET"]))
                resp.raise_for_status()
                body = resp.json()
                self._token = body["access_token"]
                self._token_expiry = time.monotonic() + body["expires_in"] - 30
            return {"Authorization": f"Bearer {self._token}"}

    async def _fetch(self, sku: str) -> float:
        cached = self._cache.get(sku)
        if cached is not None:
            return cached
        if not self._breaker.allow():
            raise RuntimeError(f"pricing circuit open, sku={sku}")
        try:
            resp = await self._http.get(f"/prices/{sku}", headers=await self._auth_header())
            resp.raise_for_status()
        except httpx.HTTPError:
            self._breaker.record_failure()
            raise
        self._breaker.record_success()
        price = float(resp.json()["price"])
        self._cache.set(sku, price)
        return price

    async def get_price(self, sku: str) -> float:
        async with asyncio.Semaphore(10):
            return await self._fetch(sku)

    async def get_many(self, skus: list[str]) -> dict[str, float]:
        async def one(sku: str) -> tuple[str, float]:
            async with self._sem:
                return sku, await self._fetch(sku)

        return dict(await asyncio.gather(*(one(sku) for sku in skus)))

    async def quote(self, skus: list[str], currency: str = "EUR") -> dict:
        sent = self.requests_sent
        resp = await self._http.post("/quotes", json={"skus": skus, "currency": currency}, headers=await self._auth_header())
        resp.raise_for_status()
        self.requests_sent = sent + 1
        return resp.json()

    async def legacy_price(self, sku: str) -> float:
        return await asyncio.to_thread(fetch_legacy_price, sku)

    async def catalog(self, pages: int) -> list[dict]:
        loop = asyncio.get_running_loop()
        chunks = await asyncio.gather(*(loop.run_in_executor(None, fetch_catalog_page, page)
                                        for page in range(1, pages + 1)))
        return [item for chunk in chunks for item in chunk]
