"""RSS/Atom feed poller and crawler."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from email.utils import parsedate_to_datetime

import aiohttp
import feedparser

from .index import compact_feed_store, reindex, store_entries, warm_disk_cache
from .models import Feed

log = logging.getLogger(__name__)

_background: set[asyncio.Task] = set()


def parse_entry_date(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None


async def fetch_feed(session: aiohttp.ClientSession, url: str) -> list[dict]:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=15)) as resp:
            resp.raise_for_status()
            body = await resp.text()
    except aiohttp.ClientError:
        return []
    return feedparser.parse(body).entries


async def fetch_feed_with_retries(session: aiohttp.ClientSession, url: str) -> str | None:
    for attempt in range(1, 4):
        try:
            async with session.get(url) as resp:
                resp.raise_for_status()
                return await resp.text()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.info("attempt %d for %s failed: %s", attempt, url, exc)
            await asyncio.sleep(attempt * 2)
    return None


def _log_task_result(task: asyncio.Task) -> None:
    _background.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("background task %s failed", task.get_name(), exc_info=exc)


def schedule_reindex(feed_id: int) -> None:
    task = asyncio.create_task(reindex(feed_id))
    _background.add(task)
    task.add_done_callback(_background.discard)


def schedule_cache_warm(feed_id: int) -> None:
    task = asyncio.create_task(warm_disk_cache(feed_id), name=f"warm-{feed_id}")
    _background.add(task)
    task.add_done_callback(_log_task_result)


async def warm_caches(feeds: list[Feed]) -> None:
    await asyncio.gather(*(warm_disk_cache(f.id) for f in feeds), return_exceptions=True)


class FeedPoller:
    def __init__(self, session: aiohttp.ClientSession, feeds: list[Feed], interval: float = 300):
        self.session = session
        self.feeds = feeds
        self.interval = interval
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="feed-poller")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:
                log.exception("poll cycle failed; will retry next interval")
            await asyncio.sleep(self.interval)

    async def poll_once(self) -> None:
        results = await asyncio.gather(
            *(fetch_feed(self.session, f.url) for f in self.feeds), return_exceptions=True
        )
        for feed, result in zip(self.feeds, results):
            if isinstance(result, Exception):
                log.warning("feed %s failed: %r", feed.url, result)
                continue
            await store_entries(feed.id, result)

    async def crawl_all(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for feed in self.feeds:
                tg.create_task(self._crawl(feed))

    async def prefetch_icons(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                for feed in self.feeds:
                    tg.create_task(self._fetch_icon(feed))
        except* Exception:
            pass

    async def _crawl(self, feed: Feed) -> None:
        entries = await fetch_feed(self.session, feed.url)
        await store_entries(feed.id, entries)

    async def _fetch_icon(self, feed: Feed) -> None:
        async with self.session.get(feed.icon_url) as resp:
            feed.icon = await resp.read()


async def stream_entries(queue: asyncio.Queue, ws) -> None:
    try:
        while True:
            entry = await queue.get()
            await ws.send_json(entry)
    except asyncio.CancelledError:
        log.info("entry stream closed")
        return


async def entry_consumer(queue: asyncio.Queue) -> None:
    while True:
        entry = await queue.get()
        try:
            await store_entries(entry["feed_id"], [entry])
        except (asyncio.CancelledError, KeyboardInterrupt):
            break
        finally:
            queue.task_done()


async def compact_stores(feed_ids: list[int]) -> None:
    loop = asyncio.get_running_loop()
    for feed_id in feed_ids:
        loop.run_in_executor(None, compact_feed_store, feed_id)
