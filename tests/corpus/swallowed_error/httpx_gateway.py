"""Async client for the partner ledger API (accounts, transactions, event push)."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import AsyncIterator

import httpx
import structlog

log = structlog.get_logger()

EMPTY_QUOTE = {"bid": 0.0, "ask": 0.0, "spread": 0.0}
FX_URL = "https://fx.partner.example.com/quotes/{pair}"


class AccountNotFound(LookupError):
    pass


class LedgerError(Exception):
    pass


@dataclass
class Token:
    access_token: str
    expires_in: int


class PartnerClient:
    def __init__(self, base_url: str, api_key: str):
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"X-Api-Key": api_key},
            timeout=httpx.Timeout(10.0, connect=3.0),
        )

    async def get_account(self, account_id: str) -> dict:
        try:
            resp = await self._client.get(f"/accounts/{account_id}")
            resp.raise_for_status()
        except httpx.HTTPStatusError as e:
            if e.response.status_code == 404:
                raise AccountNotFound(account_id) from e
            raise LedgerError(f"ledger returned {e.response.status_code}") from e
        return resp.json()

    async def get_accounts(self, account_ids: list[str]) -> list[dict]:
        tasks = [asyncio.create_task(self.get_account(a)) for a in account_ids]
        return await asyncio.gather(*tasks)

    async def list_transactions(self, account_id: str, since: str) -> list[dict]:
        try:
            resp = await self._client.get(f"/accounts/{account_id}/transactions", params={"since": since})
            resp.raise_for_status()
        except httpx.TimeoutException:
            log.warning("transactions.timeout", account_id=account_id)
            return []
        return resp.json()["data"]

    async def push_event(self, event: dict) -> None:
        for attempt in range(4):
            try:
                resp = await self._client.post("/events", json=event)
                resp.raise_for_status()
                return
            except httpx.TransportError as e:
                log.warning("events.push_failed", attempt=attempt, error=str(e))
                await asyncio.sleep(0.25 * 2 ** attempt)

    async def fetch_statement(self, account_id: str, month: str) -> dict:
        statement = None
        for attempt in range(3):
            try:
                resp = await self._client.get(f"/accounts/{account_id}/statements/{month}")
                resp.raise_for_status()
                statement = resp.json()
                break
            except httpx.TransportError as e:
                log.warning("statement.fetch_failed", account_id=account_id, attempt=attempt, error=str(e))
                await asyncio.sleep(1 + attempt)
        if statement is None:
            raise LedgerError(f"statement {month} for {account_id} unavailable after 3 attempts")
        return statement

    async def subscribe(self, account_id: str) -> AsyncIterator[dict]:
        try:
            async with self._client.stream("GET", f"/accounts/{account_id}/events") as resp:
                async for line in resp.aiter_lines():
                    if line.startswith("data: "):
                        yield json.loads(line[6:])
        except BaseException as e:
            log.warning("events.stream_ended", account_id=account_id, reason=repr(e))

    async def ping(self) -> bool:
        try:
            resp = await self._client.get("/ping", timeout=2.0)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    async def aclose(self) -> None:
        try:
            await self._client.aclose()
        except Exception:
            pass


def try_refresh_token(auth_url: str, refresh_token: str) -> Token | None:
    """Best effort: callers fall back to a full login when this returns None."""
    try:
        resp = httpx.post(auth_url, data={"grant_type": "refresh_token", "refresh_token": refresh_token})
        resp.raise_for_status()
    except httpx.HTTPError:
        return None
    body = resp.json()
    return Token(body["access_token"], body["expires_in"])


def fetch_fx_quote(pair: str) -> dict:
    try:
        r = httpx.get(FX_URL.format(pair=pair), timeout=2.0)
        r.raise_for_status()
        quote = r.json()
    except httpx.HTTPError as e:
        log.error("fx.quote_failed", pair=pair, error=str(e))
        quote = EMPTY_QUOTE
    return {"pair": pair, **quote}


async def sync_ledger(client: PartnerClient, account_ids: list[str]) -> None:
    results = await asyncio.gather(
        *(client.list_transactions(a, since="-P1D") for a in account_ids), return_exceptions=True
    )
    failed = [a for a, r in zip(account_ids, results) if isinstance(r, Exception)]
    if failed:
        raise LedgerError(f"{len(failed)} accounts failed to sync: {failed[:5]}")


async def audit_accounts(client: PartnerClient, account_ids: list[str]) -> None:
    for account_id in account_ids:
        audit = asyncio.ensure_future(client.get_account(account_id))
    log.info("audit.scheduled", count=len(account_ids))
