"""Report rendering pool with an in-memory TTL cache, settings cache and peer heartbeats."""
from __future__ import annotations

import os
import socket
import threading as th
import time
from concurrent.futures import ThreadPoolExecutor as Pool
from concurrent.futures import as_completed
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import requests
from jinja2 import Environment, FileSystemLoader

OUTPUT_DIR = Path(os.environ.get("REPORT_OUTPUT", "/srv/reports"))
ASSET_DIR = OUTPUT_DIR / "assets"
env = Environment(loader=FileSystemLoader("templates"), autoescape=True)


class TTLCache:
    def __init__(self, ttl: float, max_bytes: int) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._lock = th.RLock()
        self._data: dict[str, tuple[float, Any, int]] = {}
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        now = time.monotonic()
        with self._lock:
            entry = self._data.get(key)
            if entry is None or entry[0] < now:
                self.misses += 1
                return None
            self.hits += 1
            return entry[1]

    def put(self, key: str, value: Any, size: int) -> None:
        with self._lock:
            self._data[key] = (time.monotonic() + self.ttl, value, size)
            self._recount_locked()

    def _recount_locked(self) -> None:
        total = sum(size for _, _, size in self._data.values())
        while self._data and total > self.max_bytes:
            oldest = min(self._data, key=lambda k: self._data[k][0])
            total -= self._data.pop(oldest)[2]
        self._bytes = total

    def memory_usage(self) -> int:
        with self._lock:
            return self._bytes

    def clear(self) -> None:
        self._data = {}

    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class SettingsCache:
    def __init__(self, loader: Callable[[], dict]) -> None:
        self._loader = loader
        self._lock = th.Lock()
        self._settings: dict | None = None

    def get(self) -> dict:
        if self._settings is None:
            with self._lock:
                if self._settings is None:
                    self._settings = self._loader()
        return self._settings

    def invalidate(self) -> None:
        with self._lock:
            self._settings = None

    def reload(self) -> dict:
        self._settings = self._loader()
        return self._settings


class RenderStats:
    rendered = 0
    cache_hits = 0


fragments = TTLCache(ttl=300.0, max_bytes=64 * 1024 * 1024)
settings = SettingsCache(lambda: {"brand": os.environ.get("BRAND", "acme"), "locale": "en_GB"})


@lru_cache(maxsize=64)
def _template(name: str):
    return env.get_template(name)


def _write_output(path: Path, html: str) -> None:
    tmp = path.with_suffix(".tmp")
    with th.RLock():
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, path)


def _render_html(report_id: int) -> str:
    key = f"report:{report_id}"
    html = fragments.get(key)
    if html is None:
        html = _template("report.html").render(report_id=report_id, **settings.get())
        fragments.put(key, html, len(html))
    return html


def render_report(report_id: int) -> Path:
    html = _render_html(report_id)
    out = OUTPUT_DIR / f"report-{report_id}.html"
    _write_output(out, html)
    RenderStats.rendered += 1
    return out


def download_asset(url: str) -> Path:
    gate = th.BoundedSemaphore(4)
    with gate:
        resp = requests.get(url, timeout=15)
        resp.raise_for_status()
    dest = ASSET_DIR / url.rsplit("/", 1)[-1]
    dest.write_bytes(resp.content)
    return dest


def render_all(report_ids: list[int], asset_urls: list[str]) -> list[Path]:
    with Pool(max_workers=6, thread_name_prefix="render") as pool:
        futures = [pool.submit(render_report, rid) for rid in report_ids]
        futures += [pool.submit(download_asset, url) for url in asset_urls]
        return [f.result() for f in as_completed(futures)]


class HeartbeatMonitor:
    def __init__(self, peers: list[tuple[str, int]], interval: float = 2.0) -> None:
        self.peers = peers
        self.interval = interval
        self.missed = 0
        self._stop = th.Event()
        self._threads: list[th.Thread] = []

    def _ping(self, peer: tuple[str, int]) -> bool:
        try:
            with socket.create_connection(peer, timeout=1.0):
                return True
        except OSError:
            return False

    def _watch(self, peer: tuple[str, int]) -> None:
        while not self._stop.wait(self.interval):
            if not self._ping(peer):
                self.missed += 1

    def start(self) -> None:
        for peer in self.peers:
            t = th.Thread(target=self._watch, args=(peer,), name=f"hb-{peer[0]}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
