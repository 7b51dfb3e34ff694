"""ClusterDirectory: the nodes of a cluster and the node of each room, in Redis.

- ``<prefix>node:<id>`` holds a node's signaling URL, set with a TTL (``node_ttl``) and renewed
  every third of it: a node that stops renewing is dead once the key expires.
- ``<prefix>room:<room>`` holds the id of the node that serves the room, renewed by that node
  while it has peers in the room and deleted (only by its owner) when the last one leaves.

Claims and hand-overs are Lua scripts, so they are atomic in Redis: a room is claimed only
when nobody holds it or its holder's node key has expired, and taken over from a node only if
that node still holds it. Redis being unreachable is logged and counted; rooms already placed
keep working, and a new room is then served by the node that was asked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mediasrv.config import ClusterConfig

log = logging.getLogger("mediasrv.cluster")

# KEYS[1] room key; ARGV: me, room ttl (s), node key prefix. The holder's id after the call.
CLAIM = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] and redis.call('EXISTS', ARGV[3] .. owner) == 1 then
  return owner
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return ARGV[1]
"""
# KEYS[1] room key; ARGV: me, room ttl, the node it is taken from. The holder after the call.
TAKE_OVER = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[3] and owner ~= ARGV[1] then
  return owner
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return ARGV[1]
"""
# KEYS[1] room key; ARGV[1] me: delete only what is mine
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
ROOM_TTL_FACTOR = 10  # a room key outlives its node's heartbeats by this many node TTLs


class ClusterDirectory:
    def __init__(self, config: ClusterConfig, node_id: str, url: str) -> None:
        self.config = config
        self.node_id = node_id
        self.url = url
        self.redis: aioredis.Redis = aioredis.Redis.from_url(
            config.redis_url,
            decode_responses=True,
            socket_timeout=max(0.5, config.node_ttl / 3),
            socket_connect_timeout=max(0.5, config.node_ttl / 3),
        )
        self.held: set[str] = set()  # rooms this node serves
        self.errors = 0
        self.heartbeats = 0
        self._task: asyncio.Task[None] | None = None
        self._claim = self.redis.register_script(CLAIM)
        self._take_over = self.redis.register_script(TAKE_OVER)
        self._release = self.redis.register_script(RELEASE)

    def _node_key(self, node: str) -> str:
        return f"{self.config.key_prefix}node:{node}"

    def _room_key(self, room: str) -> str:
        return f"{self.config.key_prefix}room:{room}"

    @property
    def _room_ttl(self) -> int:
        return int(self.config.node_ttl * ROOM_TTL_FACTOR) + 1

    async def start(self) -> None:
        await self._beat()
        self._task = asyncio.ensure_future(self._heartbeats())

    async def close(self) -> None:
        """Leave the cluster: this node's key and its rooms' keys are removed."""
        if self._task is not None:
            self._task.cancel()
        try:
            for room in list(self.held):
                await self._release(keys=[self._room_key(room)], args=[self.node_id])
            await self.redis.delete(self._node_key(self.node_id))
        except RedisError as exc:
            self._failed("leaving", exc)
        await self.redis.aclose()

    async def _beat(self) -> None:
        ttl_ms = int(self.config.node_ttl * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self._node_key(self.node_id), self.url, px=ttl_ms)
            for room in self.held:
                pipe.expire(self._room_key(room), self._room_ttl)
            await pipe.execute()
        self.heartbeats += 1

    async def _heartbeats(self) -> None:
        interval = self.config.node_ttl / 3
        while True:
            started = time.monotonic()
            try:
                await self._beat()
            except RedisError as exc:
                self._failed("heartbeat", exc)
            await asyncio.sleep(max(0.05, interval - (time.monotonic() - started)))

    def _failed(self, what: str, exc: Exception) -> None:
        self.errors += 1
        log.warning("cluster directory: %s failed: %s", what, type(exc).__name__)

    # ---- rooms ----

    async def claim(self, room: str) -> str:
        """The node that serves the room: this one if nobody (alive) did."""
        try:
            owner: Any = await self._claim(
                keys=[self._room_key(room)],
                args=[self.node_id, self._room_ttl, f"{self.config.key_prefix}node:"],
            )
        except RedisError as exc:
            self._failed("claim", exc)
            return self.node_id
        if owner == self.node_id:
            self.held.add(room)
        return str(owner)

    async def take_over(self, room: str, dead: str) -> str:
        """Claim a room from a node that cannot be reached (if it still holds it)."""
        try:
            owner: Any = await self._take_over(
                keys=[self._room_key(room)], args=[self.node_id, self._room_ttl, dead]
            )
        except RedisError as exc:
            self._failed("take-over", exc)
            return self.node_id
        if owner == self.node_id:
            self.held.add(room)
            log.warning("cluster: room %r taken over from node %s", room, dead)
        return str(owner)

    async def release(self, room: str) -> None:
        self.held.discard(room)
        try:
            await self._release(keys=[self._room_key(room)], args=[self.node_id])
        except RedisError as exc:
            self._failed("release", exc)

    async def url_of(self, node: str) -> str | None:
        """A live node's signaling URL (None: its key expired, the node is dead)."""
        try:
            found: Any = await self.redis.get(self._node_key(node))
        except RedisError as exc:
            self._failed("lookup", exc)
            return None
        return str(found) if found else None

    async def nodes(self) -> dict[str, str]:
        """The live nodes and their URLs."""
        found: dict[str, str] = {}
        prefix = self._node_key("")
        async for key in self.redis.scan_iter(match=prefix + "*", count=100):
            url = await self.redis.get(key)
            if url:
                found[str(key)[len(prefix) :]] = str(url)
        return found
