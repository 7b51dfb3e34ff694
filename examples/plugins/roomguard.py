"""roomguard: the example plugin of docs/plugins.md.

It shows every kind of hook: a declared configuration, gates (which rooms may be joined, how many
peers may publish), an observer, a signaling namespace, a data channel label and an HTTP route.

Enable it by entry point (``[project.entry-points."mediasrv.plugins"] roomguard =
"roomguard:RoomGuard"``) and configuration, or directly::

    server = MediaServer(config)
    HttpFrontend(server)
    server.plugins.add(RoomGuard, {"rooms": ["visit-1"], "max_publishers": 2})
    await server.start()
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mediasrv.plugin import Denied, JoinRequest, Plugin, Setting
from mediasrv.room import Room


class RoomGuard(Plugin):
    name = "roomguard"
    api_version = 1
    config_schema = {
        "rooms": Setting(list, default=[], help="rooms that may be joined; empty: any"),
        "max_publishers": Setting(
            int, default=0, help="peers that may publish per room; 0: any", check=lambda n: n >= 0
        ),
        "greeting": Setting(str, default="hello", help="what the echo channel puts first"),
    }
    namespace = "roomguard"
    data_labels = ("roomguard-echo",)

    async def setup(self) -> None:
        self.joins = 0
        self.on("peerjoined", self._joined)

    def _joined(self, room: Room, peer: Any) -> None:
        self.joins += 1

    # ---- gates ----

    async def authorize_join(self, request: JoinRequest, room: Room) -> None:
        allowed = self.config["rooms"]
        if allowed and room.id not in allowed:
            raise Denied("room_not_allowed", f"room {room.id!r} is not open here")

    async def authorize_publish(self, peer: Any, kind: str) -> None:
        limit = self.config["max_publishers"]
        publishers = {p.id for p in peer.room.peers.values() if p.producers and p is not peer}
        if limit and len(publishers) >= limit:
            raise Denied("too_many_publishers", f"room {peer.room.id!r} has {limit} publishers")

    # ---- what it owns ----

    async def handle_request(self, peer: Any, method: str, params: dict[str, Any]) -> Any:
        if method == "status":
            return {"joins": self.joins, "rooms": sorted(self.server.rooms)}
        raise Denied("unknown_method", f"roomguard.{method} does not exist")

    def on_data_channel(self, peer: Any, channel: Any) -> None:
        greeting = self.config["greeting"]

        def echo(message: str | bytes) -> None:
            if isinstance(message, str):
                channel.send(f"{greeting} {peer.display_name}: {message}")

        channel.on("message", echo)

    def routes(self) -> list[web.RouteDef]:
        async def status(request: web.Request) -> web.Response:
            return web.json_response({"joins": self.joins, "rooms": sorted(self.server.rooms)})

        return [web.get("/status", status)]
