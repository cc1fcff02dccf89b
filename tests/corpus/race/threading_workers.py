"""In-process job runner for the fulfilment service: worker threads, stats and a metrics flusher."""
from __future__ import annotations

import itertools
import json
import logging
import queue
import shutil
import socket
import threading
import time
from collections import deque
from pathlib import Path
from threading import Thread, Timer

import geoip2.database

log = logging.getLogger("fulfilment.workers")

GEO_DB = "/usr/share/GeoIP/GeoLite2-Country.mmdb"
METRICS_PATH = Path("/var/lib/fulfilment/metrics.log")

_jobs: "queue.Queue[dict | None]" = queue.Queue(maxsize=1000)
_job_ids = itertools.count(1)
_recent = deque(maxlen=500)
_metric_lines: deque[str] = deque()
_claimed: dict[int, float] = {}
_tls = threading.local()
_processed = 0
_geo = None
_flush_timer: Timer | None = None


class JobStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.done = 0
        self.failed = 0
        self.last_error: str | None = None

    def record_success(self) -> None:
        with self._lock:
            self.done += 1

    def record_failure(self, reason: str) -> None:
        self.failed += 1
        self.last_error = reason

    def reset(self) -> None:
        with self._lock:
            self.done = 0
            self.failed = 0
            self.last_error = None

    def snapshot(self) -> dict:
        with self._lock:
            return {"done": self.done, "failed": self.failed, "last_error": self.last_error}


stats = JobStats()


class UpstreamClient:
    def __init__(self, host: str, port: int) -> None:
        self._addr = (host, port)
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.frames_sent = 0

    def _connection(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket.create_connection(self._addr, timeout=5)
        return self._sock

    def send(self, frame: bytes) -> None:
        with self._lock:
            self._connection().sendall(frame)
            self.frames_sent += 1


upstream = UpstreamClient("carrier-gw.internal", 7001)


def enqueue(payload: dict) -> int:
    job_id = next(_job_ids)
    _jobs.put({"id": job_id, "payload": payload, "queued_at": time.time()})
    return job_id


def _claim(job_id: int) -> bool:
    if job_id in _claimed:
        return False
    _claimed[job_id] = time.monotonic()
    return True


def _country_of(ip: str) -> str:
    global _geo
    if _geo is None:
        _geo = geoip2.database.Reader(GEO_DB)
    return _geo.country(ip).country.iso_code or "??"


def _handle(job: dict) -> None:
    global _processed
    payload = job["payload"]
    if not payload.get("address"):
        stats.record_failure(f"job {job['id']}: missing address")
        return
    frame = json.dumps({"id": job["id"], "address": payload["address"]}).encode()
    upstream.send(frame)
    stats.record_success()
    _processed += 1


def _worker_loop() -> None:
    while True:
        job = _jobs.get()
        if job is None:
            _jobs.task_done()
            return
        _tls.handled = getattr(_tls, "handled", 0) + 1
        if _claim(job["id"]):
            job["payload"]["country"] = _country_of(job["payload"].get("ip", "127.0.0.1"))
            _handle(job)
        _recent.append(job["id"])
        _metric_lines.append(f"{time.time():.0f} job_done id={job['id']}\n")
        _jobs.task_done()


def flush_metrics() -> None:
    global _flush_timer
    lines = []
    while _metric_lines:
        lines.append(_metric_lines.popleft())
    with threading.Lock():
        with METRICS_PATH.open("a", encoding="utf-8") as fh:
            fh.writelines(lines)
    _flush_timer = Timer(10.0, flush_metrics)
    _flush_timer.daemon = True
    _flush_timer.start()


def start_workers(count: int) -> list[Thread]:
    workers = [Thread(target=_worker_loop, name=f"fulfil-{i}", daemon=True) for i in range(count)]
    for worker in workers:
        worker.start()
    flush_metrics()
    return workers


def stop_workers(workers: list[Thread]) -> None:
    for _ in workers:
        _jobs.put(None)
    for worker in workers:
        worker.join(timeout=30)
    if _flush_timer is not None:
        _flush_timer.cancel()
        _flush_timer.join()


def _copy_one(src: Path, dest_dir: Path, lock: threading.Lock, progress: dict) -> None:
    size = src.stat().st_size
    shutil.copy2(src, dest_dir / src.name)
    with lock:
        progress["files"] += 1
        progress["bytes"] += size


def parallel_copy(sources: list[Path], dest_dir: Path) -> dict:
    lock = threading.Lock()
    progress = {"files": 0, "bytes": 0}
    threads = [Thread(target=_copy_one, args=(src, dest_dir, lock, progress)) for src in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return progress
