"""Clickstream event workers: page counters, job locks and credit balances in Redis."""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import redis
from redis.exceptions import WatchError

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
ANALYTICS_URL = os.environ.get("ANALYTICS_REDIS_URL", "redis://localhost:6379/3")

r = redis.Redis.from_url(REDIS_URL, decode_responses=True)
_analytics = None
_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="events")


def analytics() -> redis.Redis:
    global _analytics
    if _analytics is None:
        _analytics = redis.from_url(ANALYTICS_URL, decode_responses=True)
    return _analytics


def bump_page_views(page: str) -> int:
    key = f"views:{page}:{time.strftime('%Y%m%d')}"
    current = r.get(key)
    views = int(current or 0) + 1
    r.set(key, views, ex=86400 * 30)
    return views


def bump_unique_visits(page: str, visitor: str) -> None:
    key = f"visitors:{page}:{time.strftime('%Y%m%d')}"
    pipe = r.pipeline()
    pipe.pfadd(key, visitor)
    pipe.expire(key, 86400 * 30)
    pipe.execute()


def bump_clicks(campaign: str) -> int:
    key = f"clicks:{campaign}"
    clicks = r.incr(key)
    if clicks == 1:
        r.expire(key, 86400 * 90)
    return clicks


def acquire_job_lock(job_id: str, owner: str) -> bool:
    key = f"lock:job:{job_id}"
    if r.get(key) is not None:
        return False
    r.set(key, owner, ex=60)
    return True


def acquire_report_lock(report_id: str, owner: str) -> bool:
    return bool(r.set(f"lock:report:{report_id}", owner, nx=True, ex=300))


def add_credit(user_id: str, amount: int) -> int:
    key = f"credit:{user_id}"
    with r.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)
                balance = int(pipe.get(key) or 0) + amount
                pipe.multi()
                pipe.set(key, balance)
                pipe.execute()
                return balance
            except WatchError:
                continue


def record_score(board: str, member: str, points: float) -> float:
    return analytics().zincrby(f"board:{board}", points, member)


class PendingCounters:
    """Batches hot counter increments in process and flushes them with one pipeline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pending: dict[str, int] = {}

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.pending[key] = self.pending.get(key, 0) + n

    def flush(self) -> int:
        with self._lock:
            batch = dict(self.pending)
        pipe = r.pipeline(transaction=False)
        for key, n in batch.items():
            pipe.incrby(key, n)
        pipe.execute()
        self.pending = {}
        return len(batch)


_pending = PendingCounters()
_stop = threading.Event()


def handle_event(event: dict) -> None:
    kind = event["type"]
    if kind == "pageview":
        bump_page_views(event["page"])
        bump_unique_visits(event["page"], event["visitor"])
    elif kind == "click":
        bump_clicks(event["campaign"])
        _pending.add(f"clicks:by-hour:{time.strftime('%Y%m%d%H')}")
    elif kind == "job":
        if acquire_job_lock(event["job_id"], event["worker"]):
            _pending.add("jobs:started")
    elif kind == "report":
        acquire_report_lock(event["report_id"], event["worker"])
    elif kind == "credit":
        add_credit(event["user"], int(event["amount"]))
    elif kind == "score":
        record_score(event["board"], event["user"], float(event["points"]))


def _flush_loop() -> None:
    while not _stop.wait(5.0):
        _pending.flush()
    _pending.flush()


def process(events: list[dict]) -> None:
    flusher = threading.Thread(target=_flush_loop, name="counter-flush")
    flusher.start()
    futures = [_pool.submit(handle_event, ev) for ev in events]
    done, _ = wait(futures)
    for fut in done:
        fut.result()
    _stop.set()
    flusher.join()
