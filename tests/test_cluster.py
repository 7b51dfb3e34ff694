"""Several nodes in one cluster: real ``mediasrv serve`` processes on loopback sharing a room
directory in a real ``redis-server`` (started here on a free loopback port), real aiortc
clients, a node killed with SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from sfu_support import FrameCounter, PatternTrack, ToneTrack, wait_for

from mediasrv.client import Client
from mediasrv.cluster.relay_proof import HEADER as RELAYED
from mediasrv.cluster.relay_proof import make_proof

REDIS = "/usr/bin/redis-server"
SECRET = "cluster-secret-of-the-tests-0123"
NODE_TTL = 1.5
LIMIT = 90.0
pytestmark = pytest.mark.skipif(not Path(REDIS).exists(), reason="redis-server is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


class Node:
    """A ``mediasrv serve`` process: one worker behind a supervisor, a node of the cluster."""

    def __init__(self, name: str, redis_url: str) -> None:
        env = {**os.environ, "MEDIASRV_CLUSTER_REDIS_URL": redis_url,
               "MEDIASRV_CLUSTER_NODE_ID": name, "MEDIASRV_CLUSTER_NODE_TTL": str(NODE_TTL),
               "MEDIASRV_DRAIN_TIMEOUT": "1", "MEDIASRV_CLUSTER_SECRET": SECRET}  # fmt: skip
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mediasrv", "serve", "--port", "0", "--processes", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        deadline = time.monotonic() + 30
        self.port = 0
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))
                break
            if not line and self.process.poll() is not None:
                break
        assert self.port, f"node {name} did not start"
        self.worker_pids = [w["pid"] for w in self.info()["workers"]]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def info(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5) as answer:
            found: dict[str, Any] = json.load(answer)
            return found

    def text(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as answer:
            return str(answer.read().decode())

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for pid in self.worker_pids:  # a killed supervisor's worker exits on its own; make sure
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def nodes(redis_url: str, *names: str) -> AsyncIterator[list[Node]]:
    started: list[Node] = []
    try:
        for name in names:
            started.append(await asyncio.to_thread(Node, name, redis_url))
        yield started
    finally:
        for node in started:
            await asyncio.to_thread(node.stop)


async def room_media(
    publish_at: str, watch_at: str, room: str, stack: contextlib.AsyncExitStack
) -> tuple[Client, Client, FrameCounter]:
    publisher = await Client.connect(publish_at, token="t", room=room, display_name="pub")
    stack.push_async_callback(publisher.close)
    await publisher.publish([PatternTrack(), ToneTrack()])
    watcher = await Client.connect(watch_at, token="t", room=room, display_name="watch")
    stack.push_async_callback(watcher.close)
    counter = FrameCounter(watcher)
    stack.push_async_callback(counter.close)
    return publisher, watcher, counter


def test_peers_of_one_room_on_two_nodes(redis_url: str, run: Any) -> None:
    """A publisher on node 1 and a subscriber that connects to node 2: node 2 finds the room's
    node in Redis and relays the subscriber there; frames decode."""

    async def scenario() -> None:
        async with nodes(redis_url, "n1", "n2") as (n1, n2), contextlib.AsyncExitStack() as stack:
            _, _, counter = await room_media(n1.url, n2.url, "shared", stack)
            await wait_for(lambda: counter.frames["video"] >= 10 and counter.frames["audio"] >= 10,
                           20.0, "frames through the other node")  # fmt: skip
            directory = redis.Redis.from_url(redis_url, decode_responses=True)
            assert directory.get("mediasrv:room:shared") == "n1"
            assert directory.get("mediasrv:node:n2") == n2.url
            assert n2.info()["relayedToNodes"] == 1
            assert n1.info()["rooms"] == 1 and n2.info()["rooms"] == 0
            metrics = await asyncio.to_thread(n2.text, "/metrics")
            assert "mediasrv_supervisor_relayed_to_nodes 1.0" in metrics
            assert re.search(r"^mediasrv_cluster_heartbeats_total [1-9]", metrics, re.M)
            assert "mediasrv_cluster_directory_errors_total 0.0" in metrics
            # the relayed connection's proof was accepted by the room's node
            received = await asyncio.to_thread(n1.text, "/metrics")
            assert "mediasrv_cluster_relay_proofs_refused_total 0.0" in received

    run(asyncio.wait_for(scenario(), LIMIT))


def test_a_forged_relay_header_does_not_take_a_room_over(redis_url: str, run: Any) -> None:
    """A node serves a connection relayed by another node itself, taking the room over from
    its recorded owner; so a client that claims to be relayed (a node's id, or a proof made
    with another secret) is routed as any client: to the room's node, which keeps it."""

    async def scenario() -> None:
        async with nodes(redis_url, "n1", "n2") as (n1, n2), contextlib.AsyncExitStack() as stack:
            publisher = await Client.connect(n1.url, token="t", room="shared", display_name="pub")
            stack.push_async_callback(publisher.close)
            directory = redis.Redis.from_url(redis_url, decode_responses=True)
            assert directory.get("mediasrv:room:shared") == "n1"
            forged = ["n1", make_proof("another-secret-0123456789", "n1", "n2")]
            async with aiohttp.ClientSession() as http:
                for value in forged:
                    async with http.ws_connect(n2.url, headers={RELAYED: value}) as ws:
                        join = {"token": "t", "room": "shared"}
                        await ws.send_json({"id": 1, "method": "join", "params": join})
                        answer = await ws.receive_json(timeout=10)
                        assert answer["ok"], answer
                        # relayed to the room's node: it meets the publisher there
                        names = [p["displayName"] for p in answer["result"]["peers"]]
                        assert names == ["pub"]
                    assert directory.get("mediasrv:room:shared") == "n1"
            assert n2.info()["rooms"] == 0
            metrics = await asyncio.to_thread(n2.text, "/metrics")
            assert "mediasrv_cluster_relay_proofs_refused_total 2.0" in metrics

    run(asyncio.wait_for(scenario(), LIMIT))


def test_peers_of_a_killed_node_reconnect_to_another_within_5_s(redis_url: str, run: Any) -> None:
    """Node 1 (the room's) is killed with SIGKILL: the subscriber relayed through node 2 is
    told to reconnect, the publisher's connection drops; both connect to node 2 again, which
    takes the room over, and frames flow again within 5 s of the kill."""

    async def scenario() -> None:
        async with nodes(redis_url, "n1", "n2") as (n1, n2), contextlib.AsyncExitStack() as stack:
            publisher, watcher, counter = await room_media(n1.url, n2.url, "ward", stack)
            await wait_for(lambda: counter.frames["video"] >= 10, 20.0, "frames before the kill")
            told: list[Any] = []
            watcher.on("reconnect", told.append)
            dropped: list[bool] = []
            publisher.on("disconnected", lambda *_: dropped.append(True))
            killed_at = time.monotonic()
            n1.kill()
            await wait_for(lambda: bool(told) and bool(dropped), 5.0, "both told")
            async with contextlib.AsyncExitStack() as again:
                _, _, resumed = await room_media(n2.url, n2.url, "ward", again)
                await wait_for(lambda: resumed.frames["video"] >= 3, 5.0, "frames after the kill")
                took = time.monotonic() - killed_at
                print(f"media resumed {took:.2f} s after the kill")
                assert took < 5.0, f"media resumed {took:.1f} s after the kill"
                directory = redis.Redis.from_url(redis_url, decode_responses=True)
                assert directory.get("mediasrv:room:ward") == "n2"

    run(asyncio.wait_for(scenario(), LIMIT))
