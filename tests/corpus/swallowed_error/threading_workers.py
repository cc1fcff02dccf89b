"""Thread-based helpers for the image pipeline and metrics shipping."""
from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor as Pool
from concurrent.futures import as_completed
from pathlib import Path

from PIL import Image

from .jobs import JobQueue
from .metrics import MetricsBuffer, statsd
from .search import SearchIndex

log = logging.getLogger("pipeline.workers")

_buffer = MetricsBuffer()
_jobs_pool = Pool(max_workers=4, thread_name_prefix="jobs")
THUMB_SIZE = (320, 320)


def _flush_metrics_forever(interval: float) -> None:
    while True:
        time.sleep(interval)
        statsd.send_many(_buffer.drain())


def start_metrics_flusher(interval: float = 10.0) -> None:
    threading.Thread(target=_flush_metrics_forever, args=(interval,), daemon=True).start()


def resize_image(path: Path) -> Path:
    out = path.with_name(f"{path.stem}_thumb{path.suffix}")
    with Image.open(path) as img:
        img.thumbnail(THUMB_SIZE)
        img.save(out)
    return out


def resize_all(paths: list[Path]) -> None:
    with Pool(max_workers=8) as pool:
        pool.map(resize_image, paths)


def resize_all_checked(paths: list[Path]) -> list[Path]:
    with Pool(max_workers=8) as pool:
        return list(pool.map(resize_image, paths))


def render_preview(src: Path) -> bytes:
    fd, tmp_name = tempfile.mkstemp(suffix=src.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with Image.open(src) as img:
            img.thumbnail(THUMB_SIZE)
            img.save(tmp)
        return tmp.read_bytes()
    finally:
        try:
            tmp.unlink()
        except Exception:
            pass


def process_job(job: dict) -> None:
    resize_image(Path(job["path"]))
    _buffer.incr("jobs.processed")


def submit_batch(jobs: list[dict]) -> int:
    for job in jobs:
        _jobs_pool.submit(process_job, job)
    return len(jobs)


def check_host(host: str, port: int = 443, timeout: float = 2.0) -> float:
    start = time.monotonic()
    with socket.create_connection((host, port), timeout=timeout):
        return time.monotonic() - start


def collect_host_latency(hosts: list[str]) -> dict[str, float]:
    latencies: dict[str, float] = {}
    with Pool(max_workers=16) as pool:
        futures = {pool.submit(check_host, h): h for h in hosts}
        for fut in as_completed(futures):
            try:
                latencies[futures[fut]] = fut.result()
            except Exception as e:
                log.warning("latency probe for %s failed: %s", futures[fut], e)
                continue
    return latencies


def run_in_background(fn, *args, name: str | None = None) -> threading.Thread:
    def _runner():
        try:
            fn(*args)
        except Exception:
            log.exception("background job %s crashed", name or fn.__name__)

    t = threading.Thread(target=_runner, name=name, daemon=True)
    t.start()
    return t


class IndexWorker:
    def __init__(self, index: SearchIndex):
        self.index = index
        self.jobs: queue.Queue[dict | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="indexer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (job := self.jobs.get()) is not None:
                self.index.upsert(job["id"], job["doc"])
        except Exception:
            log.exception("indexer thread died")

    def stop(self) -> None:
        self.jobs.put(None)
        if self._thread is not None:
            try:
                self._thread.join(timeout=5)
            except Exception:
                pass


class JobRunner:
    """One of N worker threads pulling from the shared job table."""

    def __init__(self, jobs: JobQueue, worker_id: str):
        self.jobs = jobs
        self.worker_id = worker_id
        self._stopping = threading.Event()

    def run_forever(self) -> None:
        while not self._stopping.is_set():
            job = self.jobs.claim_next(self.worker_id, timeout=5)
            if job is None:
                continue
            try:
                job.execute()
                job.mark_done()
            except Exception as exc:
                log.exception("job %s (%s) failed", job.id, job.kind)
                job.mark_failed(error=repr(exc))


class StatsSender:
    def __init__(self, host: str, port: int):
        self.addr = (host, port)
        self.sock = socket.create_connection(self.addr, timeout=2)

    def send(self, payload: bytes) -> bool:
        attempts = 0
        while attempts < 5:
            try:
                self.sock.sendall(payload)
                return True
            except OSError as e:
                attempts += 1
                log.warning("send failed (%s), reconnecting [%d/5]", e, attempts)
                time.sleep(0.2 * attempts)
                self.sock = socket.create_connection(self.addr, timeout=2)


def terminate_child(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
