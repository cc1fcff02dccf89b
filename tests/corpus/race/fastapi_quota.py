"""Job submission API with per-tenant quotas, click counters and loyalty redemption."""
from __future__ import annotations

import asyncio
import os
import time

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import get_db
from .jobs import JobQueue
from .models import Account

app = FastAPI(title="jobs-api")
router = APIRouter(prefix="/v1")
queue = JobQueue(os.environ.get("JOBS_URL", "amqp://localhost"))
rdb = aioredis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"), decode_responses=True)

DEFAULT_QUOTA = 100
MAX_CONCURRENT_EXPORTS = 3
_active_exports = 0
TENANT_QUOTA: dict[str, int] = {}
_quota_lock = asyncio.Lock()
STATS = {"submitted": 0, "lookups": 0}
_ping_count = 0
_last_ping = 0.0


class JobIn(BaseModel):
    tenant: str
    kind: str
    payload: dict


class RedeemIn(BaseModel):
    cost: int


@router.post("/jobs", status_code=202)
async def submit_job(body: JobIn):
    remaining = TENANT_QUOTA.get(body.tenant, DEFAULT_QUOTA)
    if remaining <= 0:
        raise HTTPException(status_code=429, detail="quota exhausted")
    job_id = await queue.enqueue(body.kind, body.payload, tenant=body.tenant)
    TENANT_QUOTA[body.tenant] = remaining - 1
    return {"job_id": job_id, "remaining": remaining - 1}


@router.post("/jobs/priority", status_code=202)
async def submit_priority_job(body: JobIn):
    async with _quota_lock:
        remaining = TENANT_QUOTA.get(body.tenant, DEFAULT_QUOTA)
        if remaining <= 0:
            raise HTTPException(status_code=429, detail="quota exhausted")
        job_id = await queue.enqueue(body.kind, body.payload, tenant=body.tenant, priority=9)
        TENANT_QUOTA[body.tenant] = remaining - 1
    return {"job_id": job_id, "remaining": remaining - 1}


@router.get("/jobs/{job_id}")
async def job_status(job_id: str):
    STATS["lookups"] += 1
    state = await queue.status(job_id)
    if state is None:
        raise HTTPException(status_code=404, detail="unknown job")
    return {"job_id": job_id, "state": state}


@router.post("/exports", status_code=202)
async def request_export(tenant: str):
    global _active_exports
    if _active_exports >= MAX_CONCURRENT_EXPORTS:
        raise HTTPException(status_code=429, detail="too many exports running")
    job_id = await queue.enqueue("export", {"tenant": tenant}, tenant=tenant)
    _active_exports += 1
    return {"job_id": job_id, "running": _active_exports}


@router.post("/exports/{job_id}/finished", status_code=204)
async def export_finished(job_id: str):
    global _active_exports
    _active_exports = max(0, _active_exports - 1)
    await queue.ack(job_id)


@app.post("/webhooks/ping")
def ping():
    global _ping_count, _last_ping
    _ping_count += 1
    _last_ping = time.time()
    return {"pong": _ping_count}


@router.post("/accounts/{account_id}/redeem")
def redeem_points(account_id: int, body: RedeemIn, db: Session = Depends(get_db)):
    account = db.get(Account, account_id)
    if account is None:
        raise HTTPException(status_code=404, detail="unknown account")
    if account.points < body.cost:
        raise HTTPException(status_code=409, detail="not enough points")
    account.points -= body.cost
    db.commit()
    return {"points": account.points}


@router.post("/accounts/{account_id}/redeem-locked")
def redeem_points_locked(account_id: int, body: RedeemIn, db: Session = Depends(get_db)):
    account = db.scalars(select(Account).where(Account.id == account_id).with_for_update()).first()
    if account is None:
        raise HTTPException(status_code=404, detail="unknown account")
    if account.points < body.cost:
        db.rollback()
        raise HTTPException(status_code=409, detail="not enough points")
    account.points -= body.cost
    db.commit()
    return {"points": account.points}


@router.post("/accounts/{account_id}/email")
def change_email(account_id: int, email: str, db: Session = Depends(get_db)):
    account = db.get(Account, account_id)
    if account is None:
        raise HTTPException(status_code=404, detail="unknown account")
    account.email = email.strip().lower()
    db.commit()
    return {"email": account.email}


@router.post("/links/{slug}/click")
async def count_click(slug: str):
    key = f"clicks:{slug}"
    current = await rdb.get(key)
    await rdb.set(key, int(current or 0) + 1)
    return {"slug": slug}


@router.post("/links/{slug}/visit")
async def count_visit(slug: str):
    key = f"visits:{slug}:{time.strftime('%Y%m%d')}"
    total = await rdb.incr(key)
    if total == 1:
        await rdb.expire(key, 86400 * 7)
    return {"slug": slug, "today": total}


@router.post("/imports/{tenant}", status_code=202)
async def start_import(tenant: str):
    lock_key = f"import-running:{tenant}"
    acquired = await rdb.set(lock_key, str(time.time()), nx=True, ex=900)
    if not acquired:
        raise HTTPException(status_code=409, detail="import already running")
    job_id = await queue.enqueue("import", {"tenant": tenant}, tenant=tenant)
    return {"job_id": job_id}


app.include_router(router)
