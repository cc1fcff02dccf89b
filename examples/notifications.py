"""Async notification fan-out: tasks, retries and cancellation."""

import asyncio
import logging

import httpx

log = logging.getLogger(__name__)


async def send_push(client: httpx.AsyncClient, device: str, text: str) -> None:
    for attempt in range(3):
        try:
            await client.post("/push", json={"device": device, "text": text})
            return
        except httpx.TransportError:
            log.warning("push to %s failed (attempt %d)", device, attempt + 1)
            await asyncio.sleep(2**attempt)


async def notify_all(client: httpx.AsyncClient, devices: list[str], text: str) -> None:
    for device in devices:
        asyncio.create_task(send_push(client, device, text))


async def listen(queue: asyncio.Queue, client: httpx.AsyncClient) -> None:
    try:
        while True:
            device, text = await queue.get()
            await send_push(client, device, text)
    except asyncio.CancelledError:
        log.info("listener stopped")


async def notify_and_wait(client: httpx.AsyncClient, devices: list[str], text: str) -> None:
    """Near miss: every task belongs to a TaskGroup, so failures propagate."""
    async with asyncio.TaskGroup() as group:
        for device in devices:
            group.create_task(send_push(client, device, text))
