"""Shared primitives for the ingestion workers.

``ConnectionPool`` hands out psycopg connections to worker threads,
``TokenBucket`` throttles calls to partner APIs and ``MetricsRegistry``
collects in-process metrics that a reporter thread flushes periodically.
All three are used concurrently from the worker threads.
"""
from __future__ import annotations

import json
import logging
import statistics
import threading as th
import time
from collections import deque
from dataclasses import dataclass
from typing import IO

import psycopg

log = logging.getLogger(__name__)


@dataclass
class PooledConnection:
    raw: psycopg.Connection
    created_at: float
    last_used: float


class PoolExhausted(RuntimeError):
    pass


class ConnectionPool:
    def __init__(self, dsn: str, max_size: int = 10, max_idle_seconds: float = 300.0):
        self._dsn = dsn
        self.max_size = max_size
        self.max_idle_seconds = max_idle_seconds
        self._lock = th.Lock()
        self._available = th.Condition(self._lock)
        self._idle: list[PooledConnection] = []
        self._created = 0
        self._in_use = 0
        self.waits = 0
        self.total_wait_seconds = 0.0

    def _connect(self) -> PooledConnection:
        raw = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
        now = time.monotonic()
        return PooledConnection(raw=raw, created_at=now, last_used=now)

    def _discard_locked(self, conn: PooledConnection) -> None:
        # Caller holds self._lock.
        self._created -= 1
        if not conn.raw.closed:
            conn.raw.close()

    def _note_wait(self, seconds: float) -> None:
        if seconds > 0.05:
            self.waits += 1
            self.total_wait_seconds += seconds

    def acquire(self, timeout: float = 10.0) -> PooledConnection:
        started = time.monotonic()
        deadline = started + timeout
        conn: PooledConnection | None = None
        with self._available:
            while not self._idle and self._created >= self.max_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PoolExhausted(f"no connection available within {timeout:.1f}s")
                self._available.wait(remaining)
            if self._idle:
                conn = self._idle.pop()
                if conn.raw.closed:
                    self._discard_locked(conn)
                    conn = None
            if conn is None:
                self._created += 1
            self._in_use += 1
        if conn is None:
            try:
                conn = self._connect()
            except Exception:
                with self._available:
                    self._created -= 1
                    self._in_use -= 1
                    self._available.notify()
                raise
        self._note_wait(time.monotonic() - started)
        return conn

    def release(self, conn: PooledConnection) -> None:
        conn.last_used = time.monotonic()
        with self._available:
            self._in_use -= 1
            if conn.raw.closed:
                self._created -= 1
            else:
                self._idle.append(conn)
            self._available.notify()

    def prune_idle(self) -> int:
        cutoff = time.monotonic() - self.max_idle_seconds
        with self._lock:
            stale = [c for c in self._idle if c.last_used < cutoff]
            self._idle = [c for c in self._idle if c.last_used >= cutoff]
            for conn in stale:
                self._discard_locked(conn)
            if stale:
                self._available.notify_all()
        return len(stale)

    def drain(self) -> None:
        """Close every idle connection, e.g. after a database failover."""
        idle = self._idle
        self._idle = []
        for conn in idle:
            conn.raw.close()
        with self._lock:
            self._created -= len(idle)
            self._available.notify_all()
        log.info("drained %d idle connections", len(idle))

    def stats(self) -> dict:
        with self._lock:
            snapshot = {"created": self._created, "in_use": self._in_use, "idle": len(self._idle)}
        snapshot["waits"] = self.waits
        snapshot["total_wait_seconds"] = round(self.total_wait_seconds, 3)
        return snapshot


class TokenBucket:
    def __init__(self, rate: float, capacity: float, lock: th.Lock | None = None):
        self.rate = rate
        self.capacity = capacity
        self._tokens = float(capacity)
        self._updated = time.monotonic()
        self._lock = lock if lock is not None else th.Lock()

    def try_take(self, n: float = 1.0) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= n:
                self._tokens -= n
                return True
            return False


class Series:
    def __init__(self, name: str, max_samples: int = 10_000):
        self.name = name
        self._lock = th.Lock()
        self._samples: deque[float] = deque(maxlen=max_samples)
        self.count = 0
        self.total = 0.0

    def add(self, value: float) -> None:
        with self._lock:
            self._samples.append(value)
            self.count += 1
            self.total += value

    def summary(self) -> dict:
        with self._lock:
            ordered = sorted(self._samples)
            count, total = self.count, self.total
        if not ordered:
            return {"count": count, "sum": total}
        return {"count": count, "sum": total, "p50": statistics.median(ordered), "max": ordered[-1]}


class MetricsRegistry:
    def __init__(self, namespace: str):
        self.namespace = namespace
        self._lock = th.RLock()
        self._gauges: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._series: dict[str, Series] = {}

    def incr(self, name: str, amount: int = 1) -> None:
        self._counts[name] = self._counts.get(name, 0) + amount

    def set_gauge(self, name: str, value: float) -> None:
        with self._lock:
            self._gauges[name] = float(value)

    def reset_gauges(self) -> None:
        self._gauges = {}

    def series(self, name: str) -> Series:
        if name not in self._series:
            self._series[name] = Series(f"{self.namespace}.{name}")
        return self._series[name]

    def observe(self, name: str, value: float) -> None:
        self.series(name).add(value)

    def snapshot(self) -> dict:
        with self._lock:
            gauges = dict(self._gauges)
        return {
            "namespace": self.namespace,
            "counts": dict(self._counts),
            "gauges": gauges,
            "series": {name: s.summary() for name, s in list(self._series.items())},
        }

    def flush_to(self, fh: IO[str]) -> None:
        payload = json.dumps(self.snapshot(), sort_keys=True)
        with th.Lock():
            fh.write(payload + "\n")
            fh.flush()


class PoolReaper:
    def __init__(self, pool: ConnectionPool, interval: float = 30.0):
        self._pool = pool
        self._interval = interval
        self._stop = th.Event()
        self._thread: th.Thread | None = None
        self.last_error: Exception | None = None

    def start(self) -> None:
        self._thread = th.Thread(target=self._run, name="pool-reaper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                removed = self._pool.prune_idle()
            except Exception as exc:
                self.last_error = exc
                log.exception("pool reaper: pruning idle connections failed")
                continue
            if removed:
                log.debug("pool reaper closed %d idle connections", removed)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


_default: MetricsRegistry | None = None
_default_lock = th.Lock()


def default_registry() -> MetricsRegistry:
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = MetricsRegistry("ingest")
    return _default
