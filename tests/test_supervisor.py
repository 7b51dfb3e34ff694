"""The supervisor of worker processes (ServerConfig.processes): real worker processes
(``python -m mediasrv.cluster.worker_process``) on loopback, real aiortc clients through the
supervisor's signaling relay, a worker killed with SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sfu_support import FrameCounter, PatternTrack, ToneTrack, wait_for
from test_simulcast import RIDS, SimulcastSender, layers_since

from bench.webrtc_peer import BenchPeer
from mediasrv.client import Client, SignalingError
from mediasrv.cluster.supervisor import Supervisor
from mediasrv.config import RecordingConfig, ServerConfig
from mediasrv.http.forwarded import client_address

ADMIN = "supervisor-admin-token-0123"
LIMIT = 90.0


@contextlib.asynccontextmanager
async def supervisor(processes: int = 2, **settings: Any) -> AsyncIterator[Supervisor]:
    sup = Supervisor(ServerConfig(port=0, processes=processes, admin_token=ADMIN,
                                  drain_timeout=1.0, **settings))  # fmt: skip
    await sup.start()
    try:
        yield sup
    finally:
        await sup.close()
        for worker in sup.workers:  # nothing left behind
            assert worker.process is None or worker.process.returncode is not None


def url(sup: Supervisor) -> str:
    assert sup.http_address is not None
    return f"ws://127.0.0.1:{sup.http_address[1]}/ws"


def base(sup: Supervisor) -> str:
    assert sup.http_address is not None
    return f"http://127.0.0.1:{sup.http_address[1]}"


async def get_json(sup: Supervisor, path: str, **headers: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(base(sup) + path, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def publish_and_watch(room: str, sup: Supervisor) -> tuple[Client, Client, FrameCounter]:
    publisher = await Client.connect(url(sup), token="t", room=room, display_name="pub")
    await publisher.publish([PatternTrack(), ToneTrack()])
    watcher = await Client.connect(url(sup), token="t", room=room, display_name="watch")
    counter = FrameCounter(watcher)
    await wait_for(lambda: counter.frames["video"] >= 10 and counter.frames["audio"] >= 10,
                   20.0, f"frames decoded in room {room}")  # fmt: skip
    return publisher, watcher, counter


def test_rooms_are_spread_over_worker_processes(run: Any) -> None:
    """Two rooms land on two workers (least loaded first), both carry media, a room's later
    peers join its worker, and the admin API and metrics cover both workers."""

    async def scenario() -> None:
        async with supervisor() as sup, contextlib.AsyncExitStack() as stack:
            a = await publish_and_watch("room-a", sup)
            b = await publish_and_watch("room-b", sup)
            for client in (*a[:2], *b[:2]):
                stack.push_async_callback(client.close)
            stack.push_async_callback(a[2].close)
            stack.push_async_callback(b[2].close)
            assert sup.rooms["room-a"] is not sup.rooms["room-b"]
            third = await Client.connect(url(sup), token="t", room="room-a")
            stack.push_async_callback(third.close)
            assert sup.rooms["room-a"].load == 3 and sup.rooms["room-b"].load == 2
            status, info = await get_json(sup, "/")
            assert status == 200 and sorted(w["sessions"] for w in info["workers"]) == [2, 3]
            status, listed = await get_json(sup, "/admin/rooms", Authorization=f"Bearer {ADMIN}")
            assert status == 200
            where = {r["id"]: r["worker"] for r in listed["rooms"]}
            assert where == {"room-a": sup.rooms["room-a"].index,
                             "room-b": sup.rooms["room-b"].index}  # fmt: skip
            status, detail = await get_json(sup, "/admin/rooms/room-b",
                                            Authorization=f"Bearer {ADMIN}")  # fmt: skip
            assert status == 200 and len(detail["peers"]) == 2
            status, _ = await get_json(sup, "/admin/rooms")
            assert status == 401
            async with aiohttp.ClientSession() as http, http.get(base(sup) + "/metrics") as r:
                text = await r.text()
            families = {f.name: f for f in text_string_to_metric_families(text)}
            workers = {s.labels.get("worker") for f in families.values() for s in f.samples}
            assert {"0", "1"} <= workers
            assert "mediasrv_supervisor_workers_ready" in families

    run(asyncio.wait_for(scenario(), LIMIT))


def test_a_join_for_a_room_on_another_worker_is_refused(run: Any) -> None:
    async def scenario() -> None:
        async with supervisor() as sup:
            first = await Client.connect(url(sup), token="t", room="one")
            second = await Client.connect(url(sup), token="t", room="two")
            try:
                assert sup.rooms["one"] is not sup.rooms["two"]
                with pytest.raises(SignalingError) as refused:
                    await first.request("join", {"token": "t", "room": "two"})
                assert refused.value.code == "room_elsewhere"
            finally:
                await first.close()
                await second.close()

    run(asyncio.wait_for(scenario(), LIMIT))


def test_a_killed_worker_restarts_and_its_clients_reconnect(run: Any) -> None:
    """SIGKILL the worker of a room: its clients get ``reconnect`` at once, the worker starts
    again, and clients that reconnect get media again; the other worker's room never
    notices."""

    async def scenario() -> None:
        async with supervisor() as sup, contextlib.AsyncExitStack() as stack:
            pub, watch, counter = await publish_and_watch("doomed", sup)
            other = await publish_and_watch("steady", sup)
            for thing in (pub, watch, counter, *other):
                stack.push_async_callback(thing.close)
            told: list[dict[str, Any]] = []
            watch.on("reconnect", told.append)
            victim = sup.rooms["doomed"]
            pid = victim.pid
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            os.kill(pid, signal.SIGKILL)
            await wait_for(lambda: bool(told), 5.0, "the reconnect notification")
            assert loop.time() - killed_at < 2.0
            assert told[0] == {"reason": "worker_failed"}
            assert "doomed" not in sup.rooms
            await wait_for(lambda: victim.ready and victim.pid != pid, 30.0, "the restart")
            assert sup.restarts[victim.index] == 1
            status, ready = await get_json(sup, "/readyz")
            assert status == 200 and ready["running"] == 2
            steady_frames = other[2].frames["video"]
            again = await publish_and_watch("doomed", sup)
            for thing in again:
                stack.push_async_callback(thing.close)
            assert other[2].frames["video"] > steady_frames  # the other room kept flowing

    run(asyncio.wait_for(scenario(), LIMIT))


def test_the_client_address_is_forwarded_only_from_loopback() -> None:
    from aiohttp.test_utils import make_mocked_request

    def request(remote: str, forwarded: str) -> Any:
        req = make_mocked_request("GET", "/ws", headers={"X-Forwarded-For": forwarded})
        return req.clone(remote=remote)

    trusting = ServerConfig(trust_forwarded=True)
    assert client_address(request("127.0.0.1", "203.0.113.9, 10.0.0.1"), trusting) == "203.0.113.9"
    assert client_address(request("127.0.0.1", "203.0.113.9"), ServerConfig()) == "127.0.0.1"
    assert client_address(request("198.51.100.7", "203.0.113.9"), trusting) == "198.51.100.7"
    # a supervisor's worker: only with the supervisor's proof (another local process has none)
    worker = ServerConfig(trust_forwarded=True, internal_token="run-token-0123456789")
    assert client_address(request("127.0.0.1", "203.0.113.9"), worker) == "127.0.0.1"
    proved = make_mocked_request(
        "GET", "/ws",
        headers={"X-Forwarded-For": "203.0.113.9", "X-Mediasrv-Proxy": "run-token-0123456789"},
    ).clone(remote="127.0.0.1")  # fmt: skip
    assert client_address(proved, worker) == "203.0.113.9"


def test_processes_is_checked() -> None:
    with pytest.raises(ValueError, match="processes"):
        ServerConfig(processes=-1)
    assert json.dumps({"ok": True})


def test_more_than_a_hundred_connections_are_relayed(run: Any) -> None:
    """Every relayed connection holds an upstream socket: 150 joins at once all answer (the
    relay's HTTP client has no connection cap)."""

    async def scenario() -> None:
        unlimited = aiohttp.TCPConnector(limit=0)
        async with supervisor() as sup, aiohttp.ClientSession(connector=unlimited) as http:
            sockets = await asyncio.gather(*(http.ws_connect(url(sup)) for _ in range(150)))
            try:
                for index, ws in enumerate(sockets):
                    join = {"token": "t", "room": f"many-{index % 5}"}
                    await ws.send_json({"id": 1, "method": "join", "params": join})

                async def answer(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
                    while True:
                        message = await ws.receive_json(timeout=20)
                        if message.get("id") == 1:
                            return dict(message)

                answers = await asyncio.gather(*(answer(ws) for ws in sockets))
                assert all(a["ok"] for a in answers), [a for a in answers if not a["ok"]][:3]
                assert sum(w.load for w in sup.workers) == 150
            finally:
                await asyncio.gather(*(ws.close() for ws in sockets))

    run(asyncio.wait_for(scenario(), LIMIT))


def test_the_room_directory_survives_late_leaves_of_a_dead_worker() -> None:
    """Placement bookkeeping alone (no processes): a room placed on a worker that then dies is
    placed anew; the dead worker's connections leaving late do not remove the new placement,
    and a placement counts at once, so a leave while a connection is still being set up does
    not move the room."""
    sup = Supervisor(ServerConfig(port=0, processes=2))
    first, second = sup.workers
    for worker in sup.workers:
        worker.ready, worker.starts = True, 1
    assert sup.place("ward") is first
    assert sup.place("ward") is first  # a second connection, still being set up
    sup.room_left("ward", first, 1)  # the first one leaves meanwhile
    assert sup.rooms["ward"] is first  # the second one still holds it there
    old_generation = first.starts
    first.ready = False  # it dies
    sup.forget(first)
    assert "ward" not in sup.rooms
    assert sup.place("ward") is second
    first.ready, first.starts = True, first.starts + 1  # restarted
    sup.room_left("ward", first, old_generation)  # a late leave of the dead worker's relay
    assert sup.rooms["ward"] is second
    assert sup.place("ward") is second
    sup.room_left("ward", second, 1)
    sup.room_left("ward", second, 1)
    assert "ward" not in sup.rooms


def test_binary_frames_and_nested_json_through_the_relay(run: Any) -> None:
    """The worker answers a binary frame as it would without a supervisor, absurdly nested
    JSON does not break the relay, and the connection keeps working."""

    async def scenario() -> None:
        async with supervisor() as sup, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url(sup))
            await ws.send_json({"id": 1, "method": "join", "params": {"token": "t", "room": "b"}})
            assert (await ws.receive_json(timeout=10))["ok"] is True
            await ws.send_bytes(b"\\x00binary")
            while True:
                answer = await ws.receive_json(timeout=10)
                if "ok" in answer:
                    break
            assert answer["ok"] is False and answer["error"]["code"] == "invalid_message"
            await ws.send_str("[" * 100_000)
            while True:
                answer = await ws.receive_json(timeout=10)
                if "ok" in answer:
                    break
            assert answer["error"]["code"] == "invalid_json"
            await ws.send_json({"id": 2, "method": "stats", "params": {}})
            while True:
                answer = await ws.receive_json(timeout=10)
                if answer.get("id") == 2:
                    break
            assert answer["ok"] is True
            await ws.close()

    run(asyncio.wait_for(scenario(), LIMIT))


def test_routes_behind_the_supervisor_see_the_client_address(run: Any) -> None:
    """With trust_forwarded (a worker process), plugins' routes and the admin API get the
    client's address from X-Forwarded-For, when the connection is from loopback."""
    from mediasrv.http.frontend import HttpFrontend
    from mediasrv.media_server import MediaServer
    from mediasrv.plugin import Plugin

    class Echo(Plugin):
        name = "echo"

        def routes(self) -> list[aiohttp.web.RouteDef]:
            async def remote(request: aiohttp.web.Request) -> aiohttp.web.Response:
                return aiohttp.web.json_response({"remote": request.remote})

            return [aiohttp.web.get("/remote", remote)]

    async def scenario() -> None:
        for trusted, expected in ((True, "203.0.113.9"), (False, "127.0.0.1")):
            server = MediaServer(ServerConfig(port=0, trust_forwarded=trusted))
            HttpFrontend(server)
            server.plugins.add(Echo)
            await server.start()
            try:
                assert server.http_address is not None
                where = f"http://127.0.0.1:{server.http_address[1]}/plugins/echo/remote"
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(where, headers={"X-Forwarded-For": "203.0.113.9"}) as answer,
                ):
                    assert (await answer.json())["remote"] == expected
            finally:
                await server.close()

    run(asyncio.wait_for(scenario(), LIMIT))


def test_one_room_spread_over_two_worker_processes(run: Any) -> None:
    """room_spread_at=1: the publisher's worker holds one peer of the room, so the watcher goes
    to the other worker; the room's producers are piped both ways between the two processes:
    the watcher decodes the publisher, and the publisher decodes what the watcher publishes."""

    async def scenario() -> None:
        async with supervisor(room_spread_at=1) as sup, contextlib.AsyncExitStack() as stack:
            publisher = await Client.connect(url(sup), token="t", room="big", display_name="p")
            stack.push_async_callback(publisher.close)
            heard: list[dict[str, Any]] = []
            publisher.on("peerJoined", lambda params: heard.append(params["peer"]))
            gone: list[str] = []
            publisher.on("peerLeft", lambda params: gone.append(params["peerId"]))
            await publisher.publish([PatternTrack(), ToneTrack()])
            first_worker = sup.rooms["big"]
            watcher = await Client.connect(url(sup), token="t", room="big", display_name="w")
            stack.push_async_callback(watcher.close)
            assert sup.rooms["big"] is not first_worker  # the room spread
            # the peers know each other across the workers
            assert [p["displayName"] for p in watcher.peers] == ["p"]
            await wait_for(lambda: [p["displayName"] for p in heard] == ["w"], 5.0,
                           "the publisher hearing of the watcher")  # fmt: skip
            assert [w.index for w in sup.spans["big"]] == sorted(w.index for w in sup.workers)
            seen = FrameCounter(watcher)
            stack.push_async_callback(seen.close)
            await wait_for(
                lambda: seen.frames["video"] >= 10 and seen.frames["audio"] >= 10,
                20.0,
                "the publisher's media on the other worker",
            )
            assert {i["peerId"] for i in seen.infos} == {publisher.peer_id}
            back = FrameCounter(publisher)
            stack.push_async_callback(back.close)
            await watcher.publish([PatternTrack()])
            await wait_for(lambda: back.frames["video"] >= 10, 20.0, "the way back")
            _, listed = await get_json(sup, "/admin/rooms", Authorization=f"Bearer {ADMIN}")
            assert sorted(r["worker"] for r in listed["rooms"] if r["id"] == "big") == [0, 1]

            # the watcher leaves: its worker's share of the room closes, and the publisher's
            # worker stops piping to it (no consumers left there: the publisher's own are gone)
            publisher_worker = str(first_worker.index)
            admin = {"Authorization": f"Bearer {ADMIN}"}
            status, detail = await get_json(sup, "/admin/rooms/big", **admin)
            assert status == 200 and sorted(detail["workers"]) == [0, 1]
            where = {p["displayName"]: p["worker"] for p in detail["peers"]}
            assert where == {"p": first_worker.index, "w": sup.rooms["big"].index}
            await back.close()
            async with (
                aiohttp.ClientSession() as http,
                http.delete(
                    f"{base(sup)}/admin/rooms/big/peers/{watcher.peer_id}", headers=admin
                ) as kicked,
            ):
                assert kicked.status == 200  # found on the other worker
            await watcher.close()

            async def consumers_on(worker: str) -> float:
                async with aiohttp.ClientSession() as http, http.get(base(sup) + "/metrics") as r:
                    text = await r.text()
                return sum(
                    sample.value
                    for family in text_string_to_metric_families(text)
                    if family.name == "mediasrv_consumers"
                    for sample in family.samples
                    if sample.labels.get("worker") == worker
                )

            await wait_for(lambda: gone == [heard[0]["id"]], 5.0, "the watcher leaving")
            deadline = asyncio.get_running_loop().time() + 10
            while await consumers_on(publisher_worker) > 0:
                assert asyncio.get_running_loop().time() < deadline, "still piping to nobody"
                await asyncio.sleep(0.2)

    run(asyncio.wait_for(scenario(), LIMIT))


def test_a_simulcast_layer_nobody_wants_on_either_worker_is_paused_at_the_publisher(
    run: Any,
) -> None:
    """A spread room: a simulcast publisher on one worker, its only subscriber on the other,
    taking layer 0. The subscriber's worker says which layers it wants, the publisher's worker
    pauses the other two on the pipe, and then asks the publisher to stop encoding them; when
    the subscriber asks for the top layer, it is encoded and forwarded again."""

    async def scenario() -> None:
        async with supervisor(room_spread_at=1) as sup, contextlib.AsyncExitStack() as stack:
            publisher = BenchPeer(url(sup), "big")
            stack.push_async_callback(publisher.close)
            await publisher.join(auto_subscribe=False)
            sender = SimulcastSender(await publisher.publish_simulcast(RIDS))
            sender.start()
            stack.push_async_callback(sender.stop)
            watcher = BenchPeer(url(sup), "big")
            stack.push_async_callback(watcher.close)
            await watcher.join(auto_subscribe=True)
            link = await watcher.answer_next_offer()
            link.record = True
            assert len(sup.spans["big"]) == 2  # the room spread over both workers
            consumer = (await watcher.request("stats", {}))["consumers"][0]
            assert consumer["type"] == "simulcast"
            await watcher.request(
                "setPreferredLayers", {"consumerId": consumer["id"], "spatialLayer": 0}
            )
            await wait_for(lambda: layers_since(link, 0)[-5:] == [0] * 5, 10, "layer 0")

            async def layers_active() -> list[bool] | None:
                _, detail = await get_json(sup, "/admin/rooms/big", Authorization=f"Bearer {ADMIN}")
                for peer in detail["peers"]:
                    if peer["id"] == publisher.peer_id:
                        found: list[bool] = peer["stats"]["producers"][0]["layersActive"]
                        return found
                return None

            async def until(wanted: list[bool], limit: float, what: str) -> None:
                deadline = asyncio.get_running_loop().time() + limit
                while (seen := await layers_active()) != wanted:
                    assert asyncio.get_running_loop().time() < deadline, f"{what}: {seen}"
                    await asyncio.sleep(0.25)

            # 5 s unwanted on the watcher's worker, then 5 s more on the publisher's
            await until([True, False, False], 20, "layers 1 and 2 paused at the publisher")
            await watcher.request(
                "setPreferredLayers", {"consumerId": consumer["id"], "spatialLayer": 2}
            )
            await until([True, True, True], 5, "the top layer wanted again")
            mark = len(link.packets)
            await wait_for(lambda: layers_since(link, mark)[-5:] == [2] * 5, 15, "layer 2")

    run(asyncio.wait_for(scenario(), LIMIT))


def test_a_spread_room_is_recorded_once_with_every_worker_s_producers(
    run: Any, tmp_path: Path
) -> None:
    """A recording started through the supervisor's admin API on a room spread over two
    workers runs on one of them, which holds every producer of the room (its own and those
    piped in): one recording with both peers' tracks, readable and stoppable through the
    supervisor, that mediasrv-rec composes."""

    async def scenario() -> None:
        settings: dict[str, Any] = {
            "room_spread_at": 1,
            "recording": RecordingConfig(directory=str(tmp_path)),
        }
        async with supervisor(**settings) as sup, contextlib.AsyncExitStack() as stack:
            publisher = await Client.connect(url(sup), token="t", room="big", display_name="p")
            stack.push_async_callback(publisher.close)
            await publisher.publish([PatternTrack(), ToneTrack()])
            watcher = await Client.connect(url(sup), token="t", room="big", display_name="w")
            stack.push_async_callback(watcher.close)
            await watcher.publish([PatternTrack()])
            assert len(sup.spans["big"]) == 2
            seen = FrameCounter(publisher)
            stack.push_async_callback(seen.close)
            await wait_for(lambda: seen.frames["video"] >= 5, 20.0, "the watcher's video")
            admin = {"Authorization": f"Bearer {ADMIN}"}
            where = f"{base(sup)}/admin/rooms/big/recording"
            async with aiohttp.ClientSession(headers=admin) as http:
                async with http.post(where, json={}) as answer:
                    assert answer.status == 201, await answer.text()
                    started = await answer.json()
                assert started["recording"] is True
                # the peers of both workers are told, and so is one joining later
                await wait_for(lambda: bool(publisher.recording and watcher.recording), 5.0,
                               "recordingState on both workers")  # fmt: skip
                late = await Client.connect(url(sup), token="t", room="big", display_name="l")
                stack.push_async_callback(late.close)
                assert late.recording is not None and late.recording["id"] == started["id"]
                # one recording at a time, whichever worker a second request reaches
                async with http.post(where, json={}) as answer:
                    assert answer.status == 409, await answer.text()
                await asyncio.sleep(4.0)
                async with http.get(where) as answer:
                    assert answer.status == 200
                    live = await answer.json()
                assert live["id"] == started["id"] and live["recording"] is True
                peers = {j["peer"] for j in live["journals"]}
                assert peers == {publisher.peer_id, watcher.peer_id}
                assert sorted(j["kind"] for j in live["journals"]) == ["audio", "video", "video"]
                assert all(j["packets"] > 0 for j in live["journals"])
                # producers are named by the ids their publishers know, wherever it records
                async with http.get(f"{base(sup)}/admin/rooms/big") as answer:
                    detail = await answer.json()
                published = {p["id"] for peer in detail["peers"]
                             for p in peer["stats"]["producers"]}  # fmt: skip
                assert set(live["producers"]) == published
                # a peer of a worker that does not record stops it over signaling
                recorders = []
                for worker in sup.workers:
                    mine = f"http://127.0.0.1:{worker.http_port}/admin/rooms/big/recording"
                    async with http.get(mine) as answer:
                        if answer.status == 200 and (await answer.json())["recording"]:
                            recorders.append(worker.index)
                assert len(recorders) == 1
                where_is = {peer["id"]: peer["worker"] for peer in detail["peers"]}
                stopper = next(
                    c for c in (publisher, watcher) if where_is[c.peer_id] != recorders[0]
                )
                stopped = await stopper.stop_recording()
                assert stopped["id"] == started["id"] and stopped["recording"] is False
                await wait_for(lambda: not (publisher.recording or watcher.recording), 5.0,
                               "the stop told on both workers")  # fmt: skip
                watcher_video = next(
                    p["id"]
                    for peer in detail["peers"]
                    if peer["id"] == watcher.peer_id
                    for p in peer["stats"]["producers"]
                )
                async with http.post(where, json={"producerIds": [watcher_video]}) as answer:
                    assert answer.status == 201, await answer.text()
                    only = await answer.json()
                async with http.delete(where) as answer:
                    assert answer.status == 200
                assert len(only["producers"]) == 1
            recordings = sorted(d.name for d in (tmp_path / "big").iterdir() if d.is_dir())
            assert recordings == sorted([started["id"], only["id"]])  # not one per worker
            recordings_dir = tmp_path / "big" / started["id"]
            output = tmp_path / "big.webm"
            command = [sys.executable, "-m", "mediasrv.recording.rec_cli", "--no-progress",
                       "--room", str(recordings_dir), "-o", str(output)]  # fmt: skip
            done = await asyncio.to_thread(
                subprocess.run, command, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, done.stderr
            assert output.stat().st_size > 10_000

    run(asyncio.wait_for(scenario(), LIMIT))


def test_the_others_forget_a_dead_worker_s_share_of_a_spread_room(run: Any, tmp_path: Path) -> None:
    """A spread room recorded on one of its two workers; that worker is killed. The peer on
    the other worker hears the dead worker's peer leave and the recording stop, and a new
    recording can start there."""

    async def scenario() -> None:
        settings: dict[str, Any] = {
            "room_spread_at": 1,
            "recording": RecordingConfig(directory=str(tmp_path)),
        }
        async with supervisor(**settings) as sup, contextlib.AsyncExitStack() as stack:
            clients = []
            for name in ("a", "b"):
                client = await Client.connect(url(sup), token="t", room="big", display_name=name)
                stack.push_async_callback(client.close)
                await client.publish([PatternTrack()])
                clients.append(client)
            assert len(sup.spans["big"]) == 2
            admin = {"Authorization": f"Bearer {ADMIN}"}
            async with aiohttp.ClientSession(headers=admin) as http:
                async with http.post(f"{base(sup)}/admin/rooms/big/recording", json={}) as answer:
                    assert answer.status == 201, await answer.text()
                await wait_for(lambda: all(c.recording for c in clients), 5.0, "recordingState")
                # the worker that records, and the client on the other one
                recorder = None
                for worker in sup.workers:
                    where = f"http://127.0.0.1:{worker.http_port}/admin/rooms/big/recording"
                    async with http.get(where) as answer:
                        if answer.status == 200:
                            recorder = worker
                assert recorder is not None
                _, detail = await get_json(sup, "/admin/rooms/big", **admin)
                by_worker = {p["id"]: p["worker"] for p in detail["peers"]}
                survivor = next(c for c in clients if by_worker[c.peer_id] != recorder.index)
                gone = next(c for c in clients if c is not survivor)
                left: list[str] = []
                survivor.on("peerLeft", lambda params: left.append(params["peerId"]))
                os.kill(recorder.pid, signal.SIGKILL)
                await wait_for(lambda: left == [gone.peer_id], 5.0, "the dead one's peer left")
                await wait_for(lambda: survivor.recording is None, 5.0, "the recording over")
                await wait_for(lambda: recorder.ready, 30.0, "the restart")
                async with http.post(f"{base(sup)}/admin/rooms/big/recording", json={}) as answer:
                    assert answer.status == 201, await answer.text()

    run(asyncio.wait_for(scenario(), LIMIT))


def test_the_internal_api_needs_the_supervisor_s_token(run: Any) -> None:
    async def scenario() -> None:
        async with supervisor(processes=1) as sup, aiohttp.ClientSession() as http:
            port = sup.workers[0].http_port
            where = f"http://127.0.0.1:{port}/internal/rooms/x/links"
            body = {"udp": ["127.0.0.1", 9], "http": 9}
            async with http.post(where, json=body) as answer:
                assert answer.status == 401
            async with http.post(
                where, json=body, headers={"Authorization": "Bearer wrong"}
            ) as answer:
                assert answer.status == 401
            async with http.post(
                where,
                json={"udp": "x", "http": 9},
                headers={"Authorization": f"Bearer {sup.token}"},
            ) as answer:
                assert answer.status == 400
                assert (await answer.json())["message"] == "a UDP address is [host, port]"
            layers = f"http://127.0.0.1:{port}/internal/rooms/x/piped/nope/layers"
            auth = {"Authorization": f"Bearer {sup.token}"}
            for active, status, message in (
                ("all", 400, "active must be a list of 1..4 booleans"),
                ([True, 1], 400, "active must be a list of 1..4 booleans"),
                ([True, False], 404, "no pipe carries that producer to that worker"),
            ):
                body = {"to": ["127.0.0.1", 9], "active": active}
                async with http.post(layers, json=body, headers=auth) as answer:
                    assert answer.status == status
                    assert (await answer.json())["message"] == message

    run(asyncio.wait_for(scenario(), LIMIT))
