"""The plugin API with the example plugin of docs/plugins.md (examples/plugins/roomguard.py),
found through a real entry point, and real clients."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvloop
from sfu_support import PatternTrack, started_server, wait_for, ws_url

from mediasrv.client import Client, SignalingError
from mediasrv.config import PluginSpec, ServerConfig
from mediasrv.http.frontend import HttpFrontend
from mediasrv.media_server import MediaServer
from mediasrv.plugin import Denied, JoinRequest, Plugin, PluginConfigError, Setting
from mediasrv.plugin_manager import discover
from mediasrv.room import Room

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "plugins"


def run(coro: Coroutine[Any, Any, None]) -> None:
    uvloop.run(asyncio.wait_for(coro, 60))


@pytest.fixture
def roomguard_installed(tmp_path: Path) -> Iterator[None]:
    """The example plugin installed as a distribution with an entry point (a dist-info on
    sys.path, as pip would leave it)."""
    dist = tmp_path / "roomguard_example-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: roomguard-example\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mediasrv.plugins]\nroomguard = roomguard:RoomGuard\n")
    sys.path[:0] = [str(tmp_path), str(EXAMPLES)]
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        sys.path.remove(str(EXAMPLES))
        sys.modules.pop("roomguard", None)


def test_the_example_plugin_is_found_by_entry_point_and_enabled_by_config(
    roomguard_installed: None,
) -> None:
    assert "roomguard" in discover()

    async def main() -> None:
        spec = PluginSpec("roomguard", {"rooms": ["open"], "greeting": "hi"})
        server = MediaServer(ServerConfig(port=0, plugins=(spec,)))
        HttpFrontend(server)
        await server.start()
        try:
            guard = server.plugins.get("roomguard")
            assert guard is not None and guard.config["greeting"] == "hi"
            url = ws_url(server)
            # a gate's denial reaches the client with its code, and no room is left behind
            with pytest.raises(SignalingError) as refused:
                await Client.connect(url, token="t", room="closed")
            assert refused.value.code == "room_not_allowed"
            assert "closed" not in server.rooms
            client = await Client.connect(url, token="t", room="open", display_name="Ann")
            # the plugin's signaling namespace, HTTP route and data channel label
            status = await client.request("roomguard.status")
            assert status == {"joins": 1, "rooms": ["open"]}
            with pytest.raises(SignalingError) as unknown:
                await client.request("roomguard.nothing")
            assert unknown.value.code == "unknown_method"
            assert server.http_address is not None
            async with aiohttp.ClientSession() as http:
                port = server.http_address[1]
                async with http.get(f"http://127.0.0.1:{port}/plugins/roomguard/status") as reply:
                    assert reply.status == 200
                    assert (await reply.json())["joins"] == 1
            echoes: list[tuple[str, Any, str]] = []
            client.on("data", lambda label, message, peer: echoes.append((label, message, peer)))
            client.send_data("roomguard-echo", "are you there")
            await wait_for(lambda: bool(echoes), 10, "the echo")
            assert echoes[0] == ("roomguard-echo", "hi Ann: are you there", "")
            await client.close()
        finally:
            await server.close()

    run(main())


def test_config_is_validated_at_load_with_errors_naming_the_key(roomguard_installed: None) -> None:
    server = MediaServer(ServerConfig(port=0))
    HttpFrontend(server)
    with pytest.raises(PluginConfigError, match=r"plugins\.roomguard: unknown setting 'room'"):
        server.plugins.load("roomguard", {"room": ["x"]})
    with pytest.raises(
        PluginConfigError, match=r"plugins\.roomguard\.max_publishers: expected int"
    ):
        server.plugins.load("roomguard", {"max_publishers": "2"})
    with pytest.raises(PluginConfigError, match=r"plugins\.roomguard\.max_publishers: -1 is not"):
        server.plugins.load("roomguard", {"max_publishers": -1})
    with pytest.raises(PluginConfigError, match=r"plugins\.nothere: not installed"):
        server.plugins.load("nothere")

    class Old(Plugin):
        name = "old"
        api_version = 0

    with pytest.raises(PluginConfigError, match="written for plugin API 0"):
        server.plugins.add(Old)

    class Needs(Plugin):
        name = "needs"
        config_schema = {"secret": Setting(str, required=True, help="the shared secret")}

    with pytest.raises(PluginConfigError, match=r"plugins\.needs\.secret: required"):
        server.plugins.add(Needs)


class Recorder(Plugin):
    """Records the gates it sees; refuses what its config says."""

    name = "recorder"
    config_schema = {"deny": Setting(str, default="")}
    seen: list[str] = []

    async def authorize_join(self, request: JoinRequest, room: Room) -> None:
        Recorder.seen.append(f"{self.name}:join")
        if self.config["deny"] == "join":
            raise Denied("recorder_says_no", "not today")

    async def authorize_subscribe(self, peer: Any, producer: Any) -> None:
        Recorder.seen.append(f"{self.name}:subscribe")
        if self.config["deny"] == "subscribe":
            raise Denied("no_viewing", "not this one")


class Second(Recorder):
    name = "second"


class Broken(Plugin):
    name = "broken"

    async def setup(self) -> None:
        self.on("peerjoined", self._explode)

    def _explode(self, room: Room, peer: Any) -> None:
        raise RuntimeError("listener bug")

    async def authorize_publish(self, peer: Any, kind: str) -> None:
        if kind == "audio":
            raise KeyError("a bug")


def test_gates_run_in_order_and_the_first_denial_wins() -> None:
    async def main() -> None:
        Recorder.seen = []
        server = MediaServer(ServerConfig(port=0))
        HttpFrontend(server)
        server.plugins.add(Recorder, {"deny": "join"})
        server.plugins.add(Second)
        await server.start()
        try:
            with pytest.raises(SignalingError) as refused:
                await Client.connect(ws_url(server), token="t", room="r")
            assert refused.value.code == "recorder_says_no"
            assert Recorder.seen == ["recorder:join"]  # the second gate never ran
            assert server.plugins.stats()["recorder"]["denials"] == {"recorder_says_no": 1}
        finally:
            await server.close()

    run(main())


def test_subscribe_gates_and_a_broken_plugin_fail_closed_without_breaking_media() -> None:
    async def main() -> None:
        Recorder.seen = []
        server = MediaServer(ServerConfig(port=0))
        HttpFrontend(server)
        server.plugins.add(Recorder, {"deny": "subscribe"})
        server.plugins.add(Broken)
        await server.start()
        try:
            url = ws_url(server)
            publisher = await Client.connect(url, token="t", room="r")
            await publisher.publish([PatternTrack()])  # video: allowed
            with pytest.raises(SignalingError) as failed:
                from sfu_support import ToneTrack

                await publisher.publish([ToneTrack()])  # audio: the plugin raises KeyError
            assert failed.value.code == "plugin_error"
            viewer = await Client.connect(url, token="t", room="r")
            await wait_for(
                lambda: server.rejected["subscribe:no_viewing"] == 1, 5, "the refused subscription"
            )
            assert "recorder:subscribe" in Recorder.seen
            await asyncio.sleep(0.3)
            assert not viewer.tracks
            stats = server.plugins.stats()
            assert stats["broken"]["errors"] == {"authorize_publish": 1, "event:peerjoined": 2}
            # the failing listener did not stop the room: the publisher's video still flows
            room = server.rooms["r"]
            producer = next(iter(room.router.producers.values()))
            before = producer.stream.packets
            await asyncio.sleep(0.5)
            assert producer.stream.packets > before
            await viewer.close()
            await publisher.close()
        finally:
            await server.close()

    run(main())


def test_plugins_are_added_before_start_and_names_are_unique() -> None:
    async def main() -> None:
        server = await started_server()
        try:
            with pytest.raises(RuntimeError, match="before the server starts"):
                server.plugins.add(Recorder)
        finally:
            await server.close()
        fresh = MediaServer(ServerConfig(port=0))
        HttpFrontend(fresh)
        fresh.plugins.add(Recorder)
        with pytest.raises(PluginConfigError, match="enabled twice"):
            fresh.plugins.add(Recorder)

    run(main())
