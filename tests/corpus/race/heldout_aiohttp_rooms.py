"""Chat rooms for the support widget (aiohttp).

Room membership and per-room message sequence numbers are kept in memory on
this instance; messages are persisted in Postgres and nicknames are
reserved in Redis so they are unique across instances. Uploaded images
are written and resized off the event loop.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re

import aiohttp
import asyncpg
from aiohttp import web
from PIL import Image
from redis import asyncio as aioredis

log = logging.getLogger("chat.rooms")
routes = web.RouteTableDef()

AVATAR_ROOT = os.environ.get("AVATAR_ROOT", "/var/lib/chat/avatars")
ATTACHMENT_ROOT = os.environ.get("ATTACHMENT_ROOT", "/var/lib/chat/attachments")
NICK_TTL = 24 * 3600
TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)

_requests_total = 0
_attachment_ids = itertools.count(1)


class RoomSettingsCache:
    """Room settings rarely change; load each room once per process."""

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool
        self._lock = asyncio.Lock()
        self._settings: dict[str, dict] = {}

    async def get(self, room: str) -> dict:
        async with self._lock:
            settings = self._settings.get(room)
            if settings is None:
                async with self._pool.acquire() as conn:
                    row = await conn.fetchrow(
                        "SELECT topic, slow_mode_seconds, max_members FROM rooms WHERE name = $1", room
                    )
                if row is None:
                    raise web.HTTPNotFound(reason=f"unknown room {room}")
                settings = dict(row)
                self._settings[room] = settings
        return settings


class RoomRegistry:
    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis):
        self._pool = pool
        self._redis = redis
        self._members: dict[str, set[str]] = {}
        self._seq: dict[str, int] = {}

    async def _publish(self, room: str, event: dict) -> None:
        await self._redis.publish(f"chat:room:{room}", json.dumps(event))

    async def join(self, room: str, user: str, max_members: int) -> int:
        if room not in self._members:
            self._members[room] = set()
        members = self._members[room]
        if user not in members and len(members) >= max_members:
            raise web.HTTPConflict(reason="room is full")
        members.add(user)
        size = len(members)
        await self._publish(room, {"type": "join", "user": user, "size": size})
        return size

    async def leave(self, room: str, user: str) -> bool:
        members = self._members.get(room)
        if not members or user not in members:
            return False
        members.discard(user)
        if not members:
            del self._members[room]
        await self._publish(room, {"type": "leave", "user": user})
        return True

    async def post(self, room: str, author: str, body: str) -> int:
        if author not in self._members.get(room, ()):
            raise web.HTTPForbidden(reason="join the room first")
        seq = self._seq.get(room, 0) + 1
        async with self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO messages (room, seq, author, body) VALUES ($1, $2, $3, $4)", room, seq, author, body
            )
        self._seq[room] = seq
        await self._publish(room, {"type": "message", "seq": seq, "author": author, "body": body})
        return seq


class MediaService:
    """Image thumbnails, rendered in the default executor."""

    def __init__(self, max_side: int = 512):
        self.max_side = max_side
        self.rendered = 0

    def _render(self, src_path: str, dest_path: str) -> int:
        with Image.open(src_path) as img:
            img.thumbnail((self.max_side, self.max_side))
            img.save(dest_path, format="WEBP", quality=80)
        self.rendered += 1
        return os.path.getsize(dest_path)

    async def thumbnail(self, src_path: str) -> str:
        dest_path = os.path.splitext(src_path)[0] + ".thumb.webp"
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._render, src_path, dest_path)
        return dest_path


def _store_avatar(user_id: str, data: bytes) -> str:
    user_dir = os.path.join(AVATAR_ROOT, user_id[:2], user_id)
    if not os.path.exists(user_dir):
        os.makedirs(user_dir)
    path = os.path.join(user_dir, "avatar.png")
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def _store_attachment(room: str, filename: str, data: bytes) -> str:
    room_dir = os.path.join(ATTACHMENT_ROOT, room)
    os.makedirs(room_dir, exist_ok=True)
    path = os.path.join(room_dir, f"{next(_attachment_ids)}-{os.getpid()}-{os.path.basename(filename)}")
    with open(path, "xb") as fh:
        fh.write(data)
    return path


async def _fetch_preview(session: aiohttp.ClientSession, url: str) -> str | None:
    async with asyncio.Semaphore(4):
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
            if resp.status != 200 or "text/html" not in resp.headers.get("Content-Type", ""):
                return None
            html = await resp.text()
    match = TITLE_RE.search(html)
    return match.group(1).strip()[:200] if match else None


@web.middleware
async def count_requests(request: web.Request, handler):
    global _requests_total
    _requests_total += 1
    return await handler(request)


@routes.post("/rooms/{room}/join")
async def join_room(request: web.Request) -> web.Response:
    room, user = request.match_info["room"], request["user_id"]
    settings = await request.app["room_settings"].get(room)
    size = await request.app["rooms"].join(room, user, settings["max_members"])
    return web.json_response({"room": room, "members": size})


@routes.post("/rooms/{room}/messages")
async def post_message(request: web.Request) -> web.Response:
    room, user = request.match_info["room"], request["user_id"]
    body = (await request.json()).get("body", "").strip()
    if not body or len(body) > 4000:
        raise web.HTTPBadRequest(reason="message must be 1-4000 characters")
    settings = await request.app["room_settings"].get(room)
    if settings["slow_mode_seconds"]:
        allowed = await request.app["redis"].set(
            f"chat:slow:{room}:{user}", 1, nx=True, ex=settings["slow_mode_seconds"]
        )
        if not allowed:
            raise web.HTTPTooManyRequests(reason="slow mode is on in this room")
    seq = await request.app["rooms"].post(room, user, body)
    return web.json_response({"room": room, "seq": seq}, status=201)


@routes.post("/nicknames")
async def claim_nickname(request: web.Request) -> web.Response:
    user = request["user_id"]
    nick = str((await request.json()).get("nick", "")).strip().lower()
    if not nick.isalnum() or len(nick) > 24:
        raise web.HTTPBadRequest(reason="nickname must be 1-24 letters or digits")
    redis = request.app["redis"]
    key = f"chat:nick:{nick}"
    owner = await redis.get(key)
    if owner is not None and owner.decode() != user:
        raise web.HTTPConflict(reason="nickname is taken")
    await redis.set(key, user, ex=NICK_TTL)
    return web.json_response({"nick": nick})


@routes.put("/users/{user_id}/avatar")
async def upload_avatar(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    if user_id != request["user_id"]:
        raise web.HTTPForbidden()
    data = await request.read()
    if len(data) > 2_000_000:
        raise web.HTTPRequestEntityTooLarge(max_size=2_000_000, actual_size=len(data))
    path = await asyncio.to_thread(_store_avatar, user_id, data)
    return web.json_response({"path": path})


@routes.post("/rooms/{room}/attachments")
async def upload_attachment(request: web.Request) -> web.Response:
    room = request.match_info["room"]
    filename = request.query.get("name", "upload.bin")
    data = await request.read()
    path = await asyncio.to_thread(_store_attachment, room, filename, data)
    thumb = None
    if filename.lower().endswith((".png", ".jpg", ".jpeg")):
        thumb = await request.app["media"].thumbnail(path)
    return web.json_response({"path": path, "thumbnail": thumb}, status=201)


@routes.post("/previews")
async def link_previews(request: web.Request) -> web.Response:
    urls = [u for u in (await request.json()).get("urls", []) if u.startswith("https://")][:20]
    async with aiohttp.ClientSession() as session:
        titles = await asyncio.gather(*(_fetch_preview(session, u) for u in urls))
    return web.json_response(dict(zip(urls, titles)))


async def make_app() -> web.Application:
    app = web.Application(middlewares=[count_requests])
    app.add_routes(routes)
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"])
    app["redis"] = aioredis.from_url(os.environ["REDIS_URL"])
    app["rooms"] = RoomRegistry(pool, app["redis"])
    app["room_settings"] = RoomSettingsCache(pool)
    app["media"] = MediaService()
    return app
