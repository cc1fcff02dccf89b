"""Report sync scheduler (asyncio).

One node at a time (elected through Redis) pulls finished reports from the
vendor's reporting API, archives them compressed on disk and records a
cursor. Jobs run on the scheduler's tick and can also be triggered manually
through ``Scheduler.run_now`` from the admin endpoint.
"""
from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import socket
import tempfile
import time
import zlib
from dataclasses import dataclass
from functools import partial
from typing import Awaitable, Callable

import aiohttp
from redis import asyncio as aioredis

log = logging.getLogger("reports.scheduler")

API = os.environ.get("REPORTING_API", "https://reports.vendor.example/v3")
TOKEN_URL = f"{API}/oauth/token"
STATE_DIR = os.environ.get("REPORTS_STATE_DIR", "/var/lib/reports")
LEADER_KEY = "reports:scheduler:leader"
LEADER_TTL = 30
NODE_ID = f"{socket.gethostname()}:{os.getpid()}"


class BudgetExceeded(RuntimeError):
    pass


@dataclass
class AccessToken:
    value: str
    refresh_token: str
    expires_at: float

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at - 60


class ReportingApiAuth:
    def __init__(self, session: aiohttp.ClientSession, client_id: str, client_secret: str):
        self._session = session
        self._client_id = client_id
        self._client_secret = client_secret
        self._token: AccessToken | None = None

    async def _request_token(self, grant: dict) -> AccessToken:
        grant = {**grant, "client_id": self._client_id, "client_secret": self._client_secret}
        async with self._session.post(TOKEN_URL, data=grant) as resp:
            resp.raise_for_status()
            body = await resp.json()
        return AccessToken(body["access_token"], body["refresh_token"], time.time() + body["expires_in"])

    async def bearer(self) -> str:
        current = self._token
        if current is not None and not current.expired:
            return current.value
        if current is None:
            grant = {"grant_type": "client_credentials"}
        else:
            grant = {"grant_type": "refresh_token", "refresh_token": current.refresh_token}
        self._token = await self._request_token(grant)
        return self._token.value


class ApiBudget:
    """Daily request budget for the vendor API, mirrored to Redis for dashboards."""

    def __init__(self, redis: aioredis.Redis, daily_limit: int):
        self._redis = redis
        self.daily_limit = daily_limit
        self.day = time.strftime("%Y-%m-%d")
        self.used = 0

    async def spend(self, cost: int = 1) -> None:
        today = time.strftime("%Y-%m-%d")
        if today != self.day:
            self.day, self.used = today, 0
        used = self.used
        if used + cost > self.daily_limit:
            raise BudgetExceeded(f"vendor budget of {self.daily_limit} requests used up for {today}")
        await self._redis.hset("reports:budget", mapping={"day": today, "used": used + cost})
        self.used = used + cost


class Archiver:
    def __init__(self, root: str):
        self.root = root
        self.bytes_in = 0
        self.bytes_out = 0

    def _compress(self, name: str, payload: bytes) -> str:
        data = zlib.compress(payload, 6)
        self.bytes_in += len(payload)
        self.bytes_out += len(data)
        path = os.path.join(self.root, f"{name}.json.z")
        with open(path, "wb") as fh:
            fh.write(data)
        return path

    async def archive(self, name: str, payload: bytes) -> str:
        return await asyncio.to_thread(self._compress, name, payload)


def _write_checkpoint(path: str, state: dict) -> None:
    previous = path + ".prev"
    if os.path.exists(previous):
        os.remove(previous)
    if os.path.exists(path):
        os.rename(path, previous)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(state, fh)


def _load_cursor(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return {"since": 0}


def _save_cursor(path: str, cursor: dict) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    with open(path + ".lock", "a") as lock_fh:
        fcntl.flock(lock_fh.fileno(), fcntl.LOCK_EX)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".cursor-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(cursor, fh)
        os.replace(tmp, path)


async def become_leader(redis: aioredis.Redis) -> bool:
    holder = await redis.get(LEADER_KEY)
    if holder is not None and holder.decode() != NODE_ID:
        return False
    await redis.set(LEADER_KEY, NODE_ID, ex=LEADER_TTL)
    return True


async def acquire_report_slot(redis: aioredis.Redis, report_id: str) -> bool:
    return bool(await redis.set(f"reports:running:{report_id}", NODE_ID, nx=True, ex=600))


async def fetch_reports(session, auth: ReportingApiAuth, budget: ApiBudget, report_ids, concurrency=5):
    limit = asyncio.Semaphore(concurrency)

    async def fetch_one(report_id: str) -> dict:
        async with limit:
            await budget.spend()
            headers = {"Authorization": f"Bearer {await auth.bearer()}"}
            async with session.get(f"{API}/reports/{report_id}", headers=headers) as resp:
                resp.raise_for_status()
                return await resp.json()

    return await asyncio.gather(*(fetch_one(rid) for rid in report_ids))


async def sync_reports(session, auth, budget, archiver: Archiver, redis) -> None:
    cursor_path = os.path.join(STATE_DIR, "reports.cursor")
    cursor = await asyncio.to_thread(_load_cursor, cursor_path)
    headers = {"Authorization": f"Bearer {await auth.bearer()}"}
    await budget.spend()
    async with session.get(f"{API}/reports", params={"finished_after": cursor["since"]}, headers=headers) as resp:
        resp.raise_for_status()
        listing = await resp.json()
    ids = [item["id"] for item in listing["items"] if await acquire_report_slot(redis, item["id"])]
    reports = await fetch_reports(session, auth, budget, ids)
    await asyncio.gather(*(archiver.archive(f"report-{rep['id']}", json.dumps(rep).encode()) for rep in reports))
    newest = max((item["finished_at"] for item in listing["items"]), default=cursor["since"])
    await asyncio.to_thread(_save_cursor, cursor_path, {"since": newest})
    summary = {"archived": len(reports), "node": NODE_ID, "at": time.time()}
    await asyncio.to_thread(_write_checkpoint, os.path.join(STATE_DIR, "last-sync.json"), summary)


@dataclass
class Job:
    name: str
    interval: float
    func: Callable[[], Awaitable[None]]
    next_run: float = 0.0
    runs: int = 0
    failures: int = 0


class Scheduler:
    def __init__(self, redis: aioredis.Redis, max_parallel: int = 4):
        self._redis = redis
        self._jobs: dict[str, Job] = {}
        self._parallel = asyncio.Semaphore(max_parallel)
        self._stop = asyncio.Event()
        self.stats = {"runs": 0, "failures": 0, "seconds": 0.0}

    def add(self, name: str, interval: float, func: Callable[[], Awaitable[None]]) -> None:
        if name in self._jobs:
            raise ValueError(f"job {name!r} is already registered")
        self._jobs[name] = Job(name, interval, func)

    async def _execute(self, job: Job) -> None:
        async with self._parallel:
            started = time.monotonic()
            try:
                await job.func()
            except Exception:
                job.failures += 1
                self.stats["failures"] += 1
                log.exception("scheduled job %s failed", job.name)
            job.runs += 1
            self.stats["runs"] += 1
            self.stats["seconds"] += time.monotonic() - started
            job.next_run = time.monotonic() + job.interval

    async def run_now(self, name: str) -> None:
        job = self._jobs.get(name)
        if job is None:
            raise KeyError(f"unknown job {name!r}")
        guard = asyncio.Lock()
        async with guard:
            await self._execute(job)

    async def run_forever(self) -> None:
        while not self._stop.is_set():
            if not await become_leader(self._redis):
                await asyncio.sleep(LEADER_TTL / 2)
                continue
            now = time.monotonic()
            due = [job for job in self._jobs.values() if job.next_run <= now]
            async with asyncio.TaskGroup() as tg:
                for job in due:
                    tg.create_task(self._execute(job))
            await asyncio.sleep(1.0)

    def stop(self) -> None:
        self._stop.set()


async def main() -> None:
    redis = aioredis.from_url(os.environ["REDIS_URL"])
    async with aiohttp.ClientSession() as session:
        auth = ReportingApiAuth(session, os.environ["REPORTING_CLIENT_ID"], os.environ["REPORTING_CLIENT_SECRET"])
        budget = ApiBudget(redis, daily_limit=int(os.environ.get("REPORTING_DAILY_LIMIT", "5000")))
        archiver = Archiver(os.path.join(STATE_DIR, "archive"))
        scheduler = Scheduler(redis)
        scheduler.add("sync-reports", 300, partial(sync_reports, session, auth, budget, archiver, redis))
        await scheduler.run_forever()


if __name__ == "__main__":
    asyncio.run(main())
