"""The chat plugin with a real MediaServer, real aiortc clients through mediasrv.client, and a
real SQLite database (in a killed subprocess for the durability test)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop
from mediasrv_chat.plugin import ChatPlugin
from mediasrv_chat.store import SqliteChatStore, StoredMessage

from mediasrv.client import ChatError, Client
from mediasrv.config import ServerConfig
from mediasrv.http.frontend import HttpFrontend
from mediasrv.media_server import MediaServer
from mediasrv.plugin import Denied

RUNNER = Path(__file__).with_name("chat_server.py")


def run(coro: Coroutine[Any, Any, None]) -> None:
    uvloop.run(asyncio.wait_for(coro, 40))


async def wait_for(predicate: Callable[[], bool], limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit} s waiting for {what}")
        await asyncio.sleep(0.02)


class Chat:
    """A server with the chat plugin and the clients of one test, all closed at exit."""

    def __init__(self, tmp_path: Path, **config: Any) -> None:
        self.config = {
            "database": str(tmp_path / "chat.sqlite3"),
            "attachments_dir": str(tmp_path / "files"),
            **config,
        }
        self.clients: list[Client] = []
        self._server: MediaServer | None = None

    @property
    def server(self) -> MediaServer:
        assert self._server is not None
        return self._server

    @property
    def plugin(self) -> ChatPlugin:
        plugin = self.server.plugins.get("chat")
        assert isinstance(plugin, ChatPlugin)
        return plugin

    async def __aenter__(self) -> Chat:
        self._server = MediaServer(ServerConfig(port=0))
        HttpFrontend(self._server)
        self._server.plugins.add(ChatPlugin, self.config)
        await self._server.start()
        return self

    async def client(self, name: str, room: str = "r") -> Client:
        assert self.server.http_address is not None
        url = f"ws://127.0.0.1:{self.server.http_address[1]}/ws"
        client = await Client.connect(url, token="t", room=room, display_name=name)
        self.clients.append(client)
        return client

    async def __aexit__(self, *exc: object) -> None:
        for client in reversed(self.clients):
            await client.close()
        if self._server is not None:
            await self._server.close()


def texts(client: Client) -> list[str]:
    return [m["text"] for m in client.chat.history]


def test_two_clients_exchange_messages_acked_before_fan_out_in_id_order(tmp_path: Path) -> None:
    async def main() -> None:
        async with Chat(tmp_path) as chat:
            ann, bob = await chat.client("Ann"), await chat.client("Bob")
            await ann.chat.open()
            await bob.chat.open()
            seen_at_ack: list[int] = []
            ids = []
            for i in range(5):
                message_id = await ann.chat.send(f"hello {i}")
                seen_at_ack.append(len(bob.chat.history))
                ids.append(message_id)
            reply = await bob.chat.send("hi Ann")
            await wait_for(lambda: len(ann.chat.history) == 6, 5, "Ann sees all six")
            await wait_for(lambda: len(bob.chat.history) == 6, 5, "Bob sees all six")
            assert ids == sorted(ids) and reply > ids[-1]
            # the ids the sender was acked are the ids the other one received, in order
            assert [m["id"] for m in bob.chat.history] == [*ids, reply]
            assert texts(bob) == [f"hello {i}" for i in range(5)] + ["hi Ann"]
            first = bob.chat.history[0]
            assert first["from"] == {"peerId": ann.peer_id, "displayName": "Ann"}
            assert first["room"] == "r" and isinstance(first["ts"], int)
            # a system message from the Python API is stored and sent like a message
            system_id = await chat.plugin.post_system("r", "the visit starts", kind="start")
            await wait_for(lambda: bob.chat.last_id == system_id, 5, "the system message")
            assert bob.chat.history[-1]["type"] == "system"
            assert bob.chat.history[-1]["kind"] == "start"
            # typing and read receipts reach the others
            typing: list[str] = []
            reads: list[dict[str, Any]] = []
            bob.chat.on("typing", typing.append)
            ann.chat.on("read", reads.append)
            ann.chat.typing()
            bob.chat.read(reply)
            await wait_for(lambda: bool(typing) and bool(reads), 5, "typing and read receipt")
            assert typing == [ann.peer_id]
            assert reads[0] == {"type": "read", "peerId": bob.peer_id, "upTo": reply}

    run(main())


def test_edit_and_delete_own_messages_within_the_window_only(tmp_path: Path) -> None:
    async def main() -> None:
        async with Chat(tmp_path, edit_window_seconds=1) as chat:
            ann, bob = await chat.client("Ann"), await chat.client("Bob")
            await bob.chat.open()
            first = await ann.chat.send("helo")
            second = await ann.chat.send("oops")
            late = await ann.chat.send("kept")
            await ann.chat.edit(first, "hello")
            await ann.chat.delete(second)
            await wait_for(
                lambda: (
                    len(bob.chat.history) == 3
                    and bob.chat.history[0].get("edited") is not None
                    and bob.chat.history[1].get("deleted") is True
                ),
                5,
                "the edit and the deletion",
            )
            assert texts(bob) == ["hello", "", "kept"]
            with pytest.raises(ChatError) as not_owner:
                await bob.chat.edit(first, "mine now")
            assert not_owner.value.code == "not_owner"
            await asyncio.sleep(1.1)
            with pytest.raises(ChatError) as expired:
                await ann.chat.edit(late, "changed")
            assert expired.value.code == "edit_window_expired"
            with pytest.raises(ChatError) as expired_delete:
                await ann.chat.delete(late)
            assert expired_delete.value.code == "edit_window_expired"
            assert texts(bob)[2] == "kept"

    run(main())


def test_idempotent_resend_and_history_for_late_joiners_and_reconnects(tmp_path: Path) -> None:
    async def main() -> None:
        async with Chat(tmp_path, history_page=3) as chat:
            ann = await chat.client("Ann")
            bob = await chat.client("Bob")
            await bob.chat.open()
            first = await ann.chat.send("once", client_id="c-1")
            again = await ann.chat.send("once", client_id="c-1")
            assert again == first
            for i in range(4):
                await ann.chat.send(f"m{i}")
            await wait_for(lambda: len(bob.chat.history) == 5, 5, "Bob's five messages")
            assert texts(bob) == ["once", "m0", "m1", "m2", "m3"]  # the retry was stored once
            # a late joiner gets everything (paged: 3 per request)
            cid = await chat.client("Cid")
            await cid.chat.open()
            assert [m["id"] for m in cid.chat.history] == [m["id"] for m in bob.chat.history]
            # Bob leaves; what is said meanwhile he gets when he comes back with his last id
            last_seen = bob.chat.last_id
            await bob.close()
            await ann.chat.send("while you were away")
            bob2 = await chat.client("Bob")
            await bob2.chat.open(since=last_seen)
            assert texts(bob2) == ["while you were away"]
            # Ann reconnects and retries a send whose ack she lost: stored once
            retried = await ann.chat.send("lost ack", client_id="c-2")
            await ann.close()
            ann2 = await chat.client("Ann")
            assert await ann2.chat.send("lost ack", client_id="c-2") == retried
            await asyncio.sleep(0.2)
            assert texts(bob2) == ["while you were away", "lost ack"]

    run(main())


def test_refusals_have_their_own_codes_and_the_sender_stays_connected(tmp_path: Path) -> None:
    async def main() -> None:
        async with Chat(tmp_path, max_text_bytes=100, rate_per_second=5, rate_burst=10) as chat:
            ann = await chat.client("Ann")
            await ann.chat.open()
            with pytest.raises(ChatError) as too_large:
                await ann.chat.send("ä" * 51)  # 102 bytes of UTF-8
            assert too_large.value.code == "message_too_large"
            ann.send_data("chat", "{not json")
            ann.send_data("chat", json.dumps({"type": "shout", "text": "hi"}))
            await wait_for(lambda: len(ann.chat.errors) == 2, 5, "two refusals")
            assert [e["code"] for e in ann.chat.errors] == ["invalid_message", "invalid_message"]
            assert "not JSON" in ann.chat.errors[0]["message"]
            assert "unknown type" in ann.chat.errors[1]["message"]
            # a flood: the burst passes, the rest is refused
            results = await asyncio.gather(
                *(ann.chat.send(f"flood {i}") for i in range(30)), return_exceptions=True
            )
            accepted = [r for r in results if isinstance(r, int)]
            refused = [r for r in results if isinstance(r, ChatError)]
            assert 10 <= len(accepted) <= 13, results
            assert len(accepted) + len(refused) == 30
            assert {r.code for r in refused} == {"rate_limited"}
            await asyncio.sleep(0.5)
            assert isinstance(await ann.chat.send("still here"), int)
            assert texts(ann)[-1] == "still here"

    run(main())


def test_policy_refusing_read_and_a_moderator_replacing_a_word(tmp_path: Path) -> None:
    async def main() -> None:
        async with Chat(tmp_path) as chat:

            def policy(peer: Any, action: str, room_id: str) -> None:
                if peer.display_name == "Eve" and action == "read":
                    raise Denied("no_reading", "observers do not read the chat")
                if peer.display_name == "Mute" and action == "post":
                    raise Denied("no_posting", "read only")

            chat.plugin.add_policy(policy)
            chat.plugin.add_moderator(lambda peer, text: text.replace("darn", "****"))
            chat.plugin.add_moderator(lambda peer, text: None if "spam" in text else text)
            ann, eve, mute = (
                await chat.client("Ann"),
                await chat.client("Eve"),
                await chat.client("Mute"),
            )
            await ann.chat.open()
            await mute.chat.open()
            await ann.chat.send("before")
            with pytest.raises(ChatError) as denied:
                await eve.chat.open()
            assert denied.value.code == "read_denied"
            await ann.chat.send("darn it")
            with pytest.raises(ChatError) as dropped:
                await ann.chat.send("buy spam")
            assert dropped.value.code == "moderated"
            with pytest.raises(ChatError) as mute_post:
                await mute.chat.send("hello?")
            assert mute_post.value.code == "post_denied"
            await wait_for(lambda: len(mute.chat.history) == 2, 5, "the moderated message")
            assert texts(mute) == ["before", "**** it"]
            await asyncio.sleep(0.2)
            assert eve.chat.history == []
            assert [e["code"] for e in eve.chat.errors] == ["read_denied"]

    run(main())


def test_acked_messages_survive_a_killed_server(tmp_path: Path) -> None:
    database = str(tmp_path / "chat.sqlite3")

    def start() -> tuple[subprocess.Popen[str], int]:
        process = subprocess.Popen(
            [sys.executable, str(RUNNER), database, "0", json.dumps({"rate_burst": 20})],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip().isdigit(), f"the runner printed {line!r}"
        return process, int(line)

    async def main() -> None:
        process, port = await asyncio.to_thread(start)
        try:
            url = f"ws://127.0.0.1:{port}/ws"
            ann = await Client.connect(url, token="t", room="r", display_name="Ann")
            ids = [await ann.chat.send(f"durable {i}") for i in range(20)]
            process.send_signal(signal.SIGKILL)  # right after the 20th ack
            await asyncio.to_thread(process.wait, 10)
            await ann.close()
        finally:
            process.kill()
        process, port = await asyncio.to_thread(start)
        try:
            url = f"ws://127.0.0.1:{port}/ws"
            bob = await Client.connect(url, token="t", room="r", display_name="Bob")
            await bob.chat.open()
            assert [m["id"] for m in bob.chat.history] == ids
            assert texts(bob) == [f"durable {i}" for i in range(20)]
            await bob.close()
        finally:
            process.kill()
            await asyncio.to_thread(process.wait, 10)

    run(main())


def test_expired_messages_are_purged_on_start_per_room_retention(tmp_path: Path) -> None:
    database = str(tmp_path / "chat.sqlite3")
    store = SqliteChatStore(database)
    day = 86_400_000
    now = int(time.time() * 1000)
    for room, age_days in [("r", 40), ("r", 1), ("keep", 40), ("short", 3)]:
        store.add(
            StoredMessage(
                0,
                room,
                "message",
                "name:x",
                "p",
                "x",
                "",
                f"{room} {age_days}",
                now - age_days * day,
            )
        )
    store.close()

    async def main() -> None:
        async with Chat(tmp_path, room_retention_days={"keep": 0, "short": 2}) as chat:
            assert chat.plugin.store is not None
            left = {
                m.text
                for room in ("r", "keep", "short")
                for m in chat.plugin.store.since(room, 0, 10)
            }
            assert left == {"r 1", "keep 40"}

    run(main())
