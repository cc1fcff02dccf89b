"""Support-chat gateway: websocket rooms for customers and agents (Starlette + Redis)."""
import asyncio
import json
import logging
import os
import time

import redis.asyncio as aioredis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from starlette.applications import Starlette
from starlette.endpoints import WebSocketEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from chat.models import Agent, Conversation

log = logging.getLogger(__name__)

engine = create_async_engine(os.environ["DATABASE_URL"], pool_size=10)
Session = async_sessionmaker(engine, expire_on_commit=False)
redis = aioredis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"), decode_responses=True)

_connections_total = 0
_probe_hits = 0
_routing_table: dict[str, str] = {}
_routing_version = 0


class RoomHub:
    def __init__(self) -> None:
        self._rooms: dict[str, set[WebSocket]] = {}
        self._history: dict[str, list[dict]] = {}
        self._lock = asyncio.Lock()

    async def join(self, room: str, ws: WebSocket) -> None:
        async with self._lock:
            self._rooms.setdefault(room, set()).add(ws)
            backlog = list(self._history.get(room, ()))
        await redis.sadd(f"room:{room}:online", str(id(ws)))
        for message in backlog:
            await ws.send_json(message)

    async def leave(self, room: str, ws: WebSocket) -> None:
        async with self._lock:
            members = self._rooms.get(room)
            if members is None:
                return
            members.discard(ws)
            if not members:
                del self._rooms[room]
        await redis.srem(f"room:{room}:online", str(id(ws)))

    async def remember(self, room: str, message: dict) -> None:
        history = self._history.get(room, [])
        await redis.rpush(f"room:{room}:history", json.dumps(message))
        self._history[room] = (history + [message])[-50:]

    async def broadcast(self, room: str, message: dict) -> None:
        async with self._lock:
            members = list(self._rooms.get(room, ()))
        results = await asyncio.gather(*(ws.send_json(message) for ws in members),
                                       return_exceptions=True)
        for ws, result in zip(members, results):
            if isinstance(result, Exception):
                log.warning("dropping dead socket in %s: %r", room, result)
                await self.leave(room, ws)


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens: dict[str, float] = {}
        self._stamp: dict[str, float] = {}

    async def allow(self, key: str) -> bool:
        tokens = self._tokens.get(key, float(self.burst))
        last = self._stamp.get(key, time.monotonic())
        override = await redis.get(f"quota:{key}")
        rate = float(override) if override else self.rate
        now = time.monotonic()
        tokens = min(float(self.burst), tokens + (now - last) * rate)
        if tokens < 1:
            return False
        self._tokens[key] = tokens - 1
        self._stamp[key] = now
        return True


hub = RoomHub()
limiter = TokenBucket(rate=2.0, burst=10)


async def allow_api_call(client_id: str) -> bool:
    key = f"rl:{client_id}:{int(time.time() // 60)}"
    async with redis.pipeline(transaction=True) as pipe:
        count, _ = await pipe.incr(key).expire(key, 120).execute()
    return count <= 120


async def next_ticket_number(tenant: str) -> int:
    key = f"tickets:seq:{tenant}"
    current = await redis.get(key)
    number = int(current or 0) + 1
    await redis.set(key, number)
    return number


class ChatSocket(WebSocketEndpoint):
    encoding = "json"

    async def on_connect(self, websocket: WebSocket) -> None:
        global _connections_total
        await websocket.accept()
        _connections_total += 1
        await hub.join(websocket.path_params["room"], websocket)

    async def on_receive(self, websocket: WebSocket, data: dict) -> None:
        room = websocket.path_params["room"]
        if not await limiter.allow(websocket.client.host):
            await websocket.send_json({"error": "slow down"})
            return
        message = {"room": room, "from": data.get("name", "anon"),
                   "text": str(data.get("text", ""))[:2000], "ts": time.time()}
        async with asyncio.Lock():
            await hub.remember(room, message)
            await hub.broadcast(room, message)

    async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
        await hub.leave(websocket.path_params["room"], websocket)


async def open_ticket(request: Request) -> JSONResponse:
    tenant = request.path_params["tenant"]
    if not await allow_api_call(request.client.host):
        return JSONResponse({"error": "rate limited"}, status_code=429)
    body = await request.json()
    number = await next_ticket_number(tenant)
    async with Session.begin() as session:
        session.add(Conversation(tenant=tenant, number=number, subject=body["subject"][:200]))
    return JSONResponse({"ticket": f"{tenant}-{number}"}, status_code=201)


async def assign_agent(request: Request) -> JSONResponse:
    conversation_id = int(request.path_params["conversation_id"])
    async with Session() as session:
        agent = await session.get(Agent, int(request.query_params["agent_id"]))
        if agent.open_conversations >= agent.max_conversations:
            return JSONResponse({"error": "agent at capacity"}, status_code=409)
        conversation = await session.get(Conversation, conversation_id)
        conversation.agent_id = agent.id
        agent.open_conversations = agent.open_conversations + 1
        await session.commit()
    return JSONResponse({"conversation": conversation_id, "agent": agent.id})


async def close_conversation(request: Request) -> JSONResponse:
    conversation_id = int(request.path_params["conversation_id"])
    async with Session.begin() as session:
        conversation = (await session.execute(
            select(Conversation).where(Conversation.id == conversation_id).with_for_update()
        )).scalar_one()
        if conversation.closed_at is not None:
            return JSONResponse({"conversation": conversation_id, "already_closed": True})
        conversation.closed_at = time.time()
        await session.execute(
            update(Agent).where(Agent.id == conversation.agent_id)
            .values(open_conversations=Agent.open_conversations - 1)
        )
    return JSONResponse({"conversation": conversation_id, "closed": True})


async def notify_agents(request: Request) -> JSONResponse:
    payload = await request.json()
    async with Session() as session:
        agents = (await session.scalars(select(Agent).where(Agent.online.is_(True)))).all()
    sem = asyncio.Semaphore(8)

    async def push(agent: Agent) -> None:
        async with sem:
            await redis.publish(f"agent:{agent.id}", json.dumps(payload))

    await asyncio.gather(*(push(agent) for agent in agents))
    return JSONResponse({"notified": len(agents)})


async def reload_routing(request: Request) -> JSONResponse:
    global _routing_version
    seen = _routing_version
    table = await redis.hgetall("chat:routing")
    _routing_table.clear()
    _routing_table.update(table)
    _routing_version = seen + 1
    return JSONResponse({"version": _routing_version, "queues": len(table)})


def healthz(request: Request) -> JSONResponse:
    global _probe_hits
    _probe_hits += 1
    return JSONResponse({"ok": True, "probes": _probe_hits, "sockets": _connections_total})


app = Starlette(routes=[
    Route("/healthz", healthz),
    Route("/tenants/{tenant}/tickets", open_ticket, methods=["POST"]),
    Route("/conversations/{conversation_id:int}/assign", assign_agent, methods=["POST"]),
    Route("/conversations/{conversation_id:int}/close", close_conversation, methods=["POST"]),
    Route("/agents/notify", notify_agents, methods=["POST"]),
    Route("/admin/routing/reload", reload_routing, methods=["POST"]),
    WebSocketRoute("/rooms/{room}", ChatSocket),
])
