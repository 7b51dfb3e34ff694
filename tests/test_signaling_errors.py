"""Signaling errors (docs/protocol.md) against a real MediaServer over a real WebSocket: each bad
request gets its error code and a message naming the problem, and the connection stays open —
the next valid request succeeds."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from conftest import Run

from mediasrv.config import MediaConfig, ServerConfig
from mediasrv.http.frontend import HttpFrontend
from mediasrv.media_server import MediaServer

TIMEOUT = 5.0
Message = dict[str, Any]


class Connection:
    """One signaling WebSocket: requests, their responses, and the notifications seen."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.notifications: list[Message] = []
        self._next_id = 0

    async def send(self, frame: object) -> None:
        await self.ws.send_str(frame if isinstance(frame, str) else json.dumps(frame))

    async def receive(self) -> Message:
        """The next response (notifications are kept aside)."""
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), TIMEOUT)
            assert msg.type == aiohttp.WSMsgType.TEXT, f"connection ended: {msg.type} {msg.data}"
            message: Message = json.loads(msg.data)
            if "id" in message:
                return message
            self.notifications.append(message)

    async def notification(self, method: str) -> Message:
        """The oldest notification of this method not yet taken (waits for one)."""
        while True:
            for index, message in enumerate(self.notifications):
                if message["method"] == method:
                    del self.notifications[index]
                    params: Message = message["params"]
                    return params
            msg = await asyncio.wait_for(self.ws.receive(), TIMEOUT)
            assert msg.type == aiohttp.WSMsgType.TEXT, f"connection ended: {msg.type} {msg.data}"
            message = json.loads(msg.data)
            assert "id" not in message, f"unexpected response {message}"
            self.notifications.append(message)

    async def request(self, method: str, params: Message | None = None) -> Message:
        self._next_id += 1
        request_id = self._next_id
        await self.send({"id": request_id, "method": method, "params": params or {}})
        response = await self.receive()
        assert response["id"] == request_id, response
        return response

    async def ok(self, method: str, params: Message | None = None) -> Any:
        response = await self.request(method, params)
        assert response["ok"] is True, response
        return response["result"]

    async def error(self, method: str, params: Message | None = None) -> tuple[str, str]:
        response = await self.request(method, params)
        return error_of(response, response["id"])

    async def join(self, room: str = "room", **params: Any) -> Message:
        result: Message = await self.ok("join", {"token": "t", "room": room, **params})
        return result


def error_of(response: Message, request_id: object) -> tuple[str, str]:
    """(code, message) of an error response, checking its shape."""
    assert response["id"] == request_id, response
    assert response["ok"] is False, response
    assert set(response) == {"id", "ok", "error"}
    assert set(response["error"]) == {"code", "message"}
    return response["error"]["code"], response["error"]["message"]


class Harness:
    def __init__(self, server: MediaServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session
        assert server.http_address is not None
        self.url = f"ws://127.0.0.1:{server.http_address[1]}/ws"

    async def connect(self) -> Connection:
        return Connection(await self.session.ws_connect(self.url))


@asynccontextmanager
async def serving(**config: Any) -> AsyncIterator[Harness]:
    server = MediaServer(ServerConfig(port=0, **config))
    HttpFrontend(server)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Harness(server, session)
    finally:
        await server.close()


# ---- offers from a real aiortc peer, and broken variants of their text ----


def new_pc() -> RTCPeerConnection:
    """An aiortc peer without aiortc's default Google STUN server: gathering host candidates
    only, it never waits on the network."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def aiortc_offer(*kinds: str, data: bool = True) -> str:
    pc = new_pc()
    try:
        if data:
            pc.createDataChannel("mediasrv-control")
        for kind in kinds:
            pc.addTransceiver(kind, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


def without_lines(sdp: str, pattern: str) -> str:
    return "".join(line for line in sdp.splitlines(True) if not re.match(pattern, line))


def only_codec(sdp: str, kind: str, name: str, replace: str | None = None) -> str:
    """The offer with one codec left in its `kind` section (renamed to `replace`, if given)."""
    keep = re.search(rf"a=rtpmap:(\d+) {name}/", sdp)
    assert keep is not None, f"no {name} in the offer"
    pt = keep.group(1)
    out = []
    for line in sdp.splitlines(True):
        if line.startswith(f"m={kind} "):
            line = " ".join(line.split(" ")[:3]) + f" {pt}\r\n"
        codec = re.match(r"a=(rtpmap|fmtp|rtcp-fb):(\d+) ", line)
        if codec and codec.group(2) != pt and f"m={kind}" in _section_of(sdp, line):
            continue
        if replace and line.startswith(f"a=rtpmap:{pt} {name}/"):
            line = line.replace(name, replace)
        out.append(line)
    return "".join(out)


def _section_of(sdp: str, line: str) -> str:
    """The m= line of the section holding this line."""
    current = ""
    for candidate in sdp.splitlines(True):
        if candidate.startswith("m="):
            current = candidate
        if candidate == line:
            return current
    return ""


# ---- malformed frames ----


FRAMES: list[tuple[str, object, object, str, str]] = [
    # (case, frame, id in the response, code, words of the message)
    ("not JSON", "{this is not json", None, "invalid_json", "not JSON: Expecting property name"),
    ("truncated JSON", '{"id": 1, "method": "join"', None, "invalid_json", "not JSON:"),
    ("nested too deeply", "[" * 100_000 + "]" * 100_000, None, "invalid_json", "recursion"),
    ("JSON array", [1, 2, 3], None, "invalid_message", "a message must be a JSON object"),
    ("JSON string", '"join"', None, "invalid_message", "a message must be a JSON object"),
    ("missing id", {"method": "stats"}, None, "invalid_message", "id must be an integer or a str"),
    ("null id", {"id": None, "method": "stats"}, None, "invalid_message", "id must be an integer"),
    ("bool id", {"id": True, "method": "stats"}, None, "invalid_message", "id must be an integer"),
    ("float id", {"id": 1.5, "method": "stats"}, None, "invalid_message", "id must be an integer"),
    ("object id", {"id": {}, "method": "stats"}, None, "invalid_message", "id must be an integer"),
    ("no method", {"id": 3}, 3, "invalid_message", "method must be a string"),
    ("method a number", {"id": 3, "method": 7}, 3, "invalid_message", "method must be a string"),
    (
        "params a list",
        {"id": "a", "method": "join", "params": []},
        "a",
        "invalid_message",
        "params",
    ),
    ("params null", {"id": 4, "method": "join", "params": None}, 4, "invalid_message", "params"),
    ("unknown method", {"id": 5, "method": "fly"}, 5, "unknown_method", "unknown method 'fly'"),
    ("private name", {"id": 6, "method": "_m_join"}, 6, "unknown_method", "'_m_join'"),
    ("dunder", {"id": 7, "method": "__init__"}, 7, "unknown_method", "'__init__'"),
]


@pytest.mark.parametrize(
    ("frame", "request_id", "code", "words"),
    [pytest.param(f, i, c, w, id=n) for n, f, i, c, w in FRAMES],
)
def test_malformed_frame(
    run: Run[None], frame: object, request_id: object, code: str, words: str
) -> None:
    async def main() -> None:
        async with serving() as h:
            conn = await h.connect()
            await conn.send(frame)
            actual_code, message = error_of(await conn.receive(), request_id)
            assert actual_code == code and words in message, (actual_code, message)
            # still open and usable
            assert (await conn.join())["room"] == "room"
            assert (await conn.ok("stats"))["peerId"]
            assert h.server.stats()["peers"] == 1

    run(main())


def test_binary_frame_is_refused(run: Run[None]) -> None:
    async def main() -> None:
        async with serving() as h:
            conn = await h.connect()
            await conn.join()
            await conn.ws.send_bytes(json.dumps({"id": 1, "method": "stats"}).encode())
            assert error_of(await conn.receive(), None) == (
                "invalid_message",
                "binary frames are not accepted",
            )
            assert (await conn.ok("stats"))["sendTransport"]["iceState"] == "new"

    run(main())


# ---- join ----

JOIN_PARAMS: list[tuple[str, Message, str]] = [
    ("missing token", {"room": "r"}, "params.token is required"),
    ("token not a string", {"token": 5, "room": "r"}, "params.token must be a str"),
    ("missing room", {"token": "t"}, "params.room is required"),
    ("room not a string", {"token": "t", "room": ["r"]}, "params.room must be a str"),
    ("empty room", {"token": "t", "room": ""}, "params.room must be 1..128 characters"),
    ("room too long", {"token": "t", "room": "r" * 129}, "params.room must be 1..128 characters"),
    (
        "displayName not a string",
        {"token": "t", "room": "r", "displayName": 42},
        "params.displayName must be a str",
    ),
    (
        "displayName too long",
        {"token": "t", "room": "r", "displayName": "n" * 129},
        "params.displayName is longer than 128 characters",
    ),
    (
        "autoSubscribe not a bool",
        {"token": "t", "room": "r", "autoSubscribe": 1},
        "params.autoSubscribe must be a bool",
    ),
]


@pytest.mark.parametrize(
    ("params", "message"), [pytest.param(p, m, id=n) for n, p, m in JOIN_PARAMS]
)
def test_join_with_bad_params(run: Run[None], params: Message, message: str) -> None:
    async def main() -> None:
        async with serving() as h:
            conn = await h.connect()
            assert await conn.error("join", params) == ("invalid_params", message)
            assert h.server.rooms == {}  # nothing was created
            assert (await conn.join("r" * 128, displayName="n" * 128))["peers"] == []

    run(main())


def test_requests_before_join_are_not_joined(run: Run[None]) -> None:
    async def main() -> None:
        async with serving() as h:
            conn = await h.connect()
            methods: list[tuple[str, Message]] = [
                ("publish", {"sdp": "v=0"}),
                ("answer", {"sdp": "v=0", "revision": 1}),
                ("subscribe", {"producerId": "p"}),
                ("unsubscribe", {"producerId": "p"}),
                ("pauseConsumer", {"consumerId": "c"}),
                ("resumeConsumer", {"consumerId": "c"}),
                ("closeProducer", {"producerId": "p"}),
                ("stats", {}),
                ("leave", {}),
                ("publish", {}),  # a missing parameter is not looked at before the join
            ]
            for method, params in methods:
                assert await conn.error(method, params) == ("not_joined", "join a room first")
            peer_id = (await conn.join())["peerId"]
            assert (await conn.ok("stats"))["peerId"] == peer_id
            # leave: the connection stays open, and is not joined any more
            assert await conn.ok("leave") == {}
            assert await conn.error("stats") == ("not_joined", "join a room first")
            assert (await conn.join("again"))["room"] == "again"

    run(main())


def test_join_twice_is_already_joined(run: Run[None]) -> None:
    async def main() -> None:
        async with serving() as h:
            conn = await h.connect()
            peer_id = (await conn.join("first"))["peerId"]
            assert await conn.error("join", {"token": "t", "room": "second"}) == (
                "already_joined",
                "this connection has already joined a room",
            )
            assert sorted(h.server.rooms) == ["first"]
            assert (await conn.ok("stats"))["peerId"] == peer_id

    run(main())


def test_tokens(run: Run[None]) -> None:
    async def main() -> None:
        async with serving(tokens=frozenset({"s3cret"})) as h:
            conn = await h.connect()
            for token in ("wrong", "", "S3CRET", "s3cret "):
                assert await conn.error("join", {"token": token, "room": "r"}) == (
                    "unauthorized",
                    "the token is not accepted",
                )
            assert h.server.rooms == {}
            result = await conn.ok("join", {"token": "s3cret", "room": "r"})
            assert result["room"] == "r" and result["peers"] == []

    run(main())


def test_room_full_and_too_many_rooms(run: Run[None]) -> None:
    async def main() -> None:
        media = MediaConfig(max_peers_per_room=1, max_rooms=1)
        async with serving(media=media) as h:
            first, second = await h.connect(), await h.connect()
            await first.join("a")
            assert await second.error("join", {"token": "t", "room": "a"}) == (
                "room_full",
                "room 'a' has its maximum of 1 peers",
            )
            assert await second.error("join", {"token": "t", "room": "b"}) == (
                "too_many_rooms",
                "the server has its maximum of 1 rooms",
            )
            await first.ok("leave")  # the last peer leaves: room a closes
            assert (await second.join("b"))["room"] == "b"

    run(main())


# ---- publish ----


def _padded(sdp: str) -> str:
    padding = "a=x-padding:" + "p" * 200 + "\r\n"
    return sdp + padding * (64 * 1024 // len(padding) + 1)


OfferEdit = Callable[[str, str, str], object]
# (case, make the sdp from (audio+video+data offer, audio-only offer, video-only offer), code,
#  words of the message)
PUBLISH_ERRORS: list[tuple[str, OfferEdit, str | None, str]] = [
    ("garbage", lambda full, a, v: "hello, I am an offer", "invalid_sdp", "must start with v=0"),
    ("empty", lambda full, a, v: "", "invalid_sdp", "offer: sdp must be a non-empty string"),
    ("not a string", lambda full, a, v: 7, "invalid_params", "params.sdp must be a str"),
    (
        "over 64 KiB",
        lambda full, a, v: _padded(full),
        "invalid_sdp",
        "exceeds 65536",
    ),
    (
        "malformed line",
        lambda full, a, v: full.replace("a=setup:actpass", "a=setup:sideways"),
        "invalid_sdp",
        "offer: malformed sdp (KeyError: 'sideways')",
    ),
    (
        "only PCMU audio",
        lambda full, audio, v: only_codec(audio, "audio", "PCMU"),
        "unsupported_media",
        "offer: no media section could be accepted: 0: no supported codec (offered: audio/PCMU)",
    ),
    (
        "only AV1 video",
        lambda full, a, video: only_codec(video, "video", "VP8", replace="AV1"),
        "unsupported_media",
        "0: no supported codec (offered: video/AV1)",
    ),
    (
        "no fingerprint",
        lambda full, a, v: without_lines(full, r"a=fingerprint:"),
        "invalid_sdp",
        "offer: no a=fingerprint (DTLS-SRTP is required)",
    ),
    (
        "no ICE password",
        lambda full, a, v: without_lines(full, r"a=ice-pwd:"),
        "invalid_sdp",
        "lacks ice-ufrag or ice-pwd",
    ),
    (
        "ssrc over 32 bits",
        lambda full, a, v: re.sub(r"a=ssrc:\d+ ", "a=ssrc:4294967296 ", full, count=1),
        "invalid_sdp",
        "ssrc 4294967296 is outside 0..4294967295",
    ),
    (
        "extmap id 0",
        lambda full, a, v: re.sub(r"a=extmap:\d+ ", "a=extmap:0 ", full, count=1),
        "invalid_sdp",
        "extmap id 0 of urn:ietf:params:rtp-hdrext:sdes:mid is outside 1..255",
    ),
    (
        "blank msid",
        lambda full, a, v: re.sub(r"a=msid:[^\r]*", "a=msid: ", full),
        None,  # accepted: the stream ids come from a=ssrc or stay empty
        "",
    ),
]


@pytest.mark.parametrize(
    ("make", "code", "words"), [pytest.param(m, c, w, id=n) for n, m, c, w in PUBLISH_ERRORS]
)
def test_publish_bad_offer(run: Run[None], make: OfferEdit, code: str | None, words: str) -> None:
    async def main() -> None:
        full = await aiortc_offer("audio", "video")
        audio, video = (
            await aiortc_offer("audio", data=False),
            await aiortc_offer("video", data=False),
        )
        async with serving() as h:
            conn = await h.connect()
            await conn.join()
            first = await conn.ok("publish", {"sdp": full})
            assert sorted(p["kind"] for p in first["producers"]) == ["audio", "video"]
            response = await conn.request("publish", {"sdp": make(full, audio, video)})
            if code is None:
                assert response["ok"] is True, response
            else:
                actual_code, message = error_of(response, response["id"])
                assert actual_code == code and words in message, (actual_code, message)
                # a refused offer changes nothing
                producers = (await conn.ok("stats"))["producers"]
                assert sorted(p["id"] for p in producers) == sorted(
                    p["id"] for p in first["producers"]
                )
            again = await conn.ok("publish", {"sdp": full})
            assert "a=ice-lite" in again["sdp"]
            assert again["rejected"] == {} and again["pending"] == []
            assert [p["id"] for p in again["producers"]] == [p["id"] for p in first["producers"]]

    run(main())


def test_publish_with_params_missing(run: Run[None]) -> None:
    async def main() -> None:
        async with serving() as h:
            conn = await h.connect()
            await conn.join()
            assert await conn.error("publish") == ("invalid_params", "params.sdp is required")
            result = await conn.ok("publish", {"sdp": await aiortc_offer()})
            assert result["producers"] == [] and "m=application" in result["sdp"]

    run(main())


# ---- answer, subscribe, consumers ----


def test_answer_with_a_stale_revision(run: Run[None]) -> None:
    async def main() -> None:
        async with serving() as h:
            publisher, subscriber = await h.connect(), await h.connect()
            await publisher.join()
            await subscriber.join()
            assert await subscriber.error("answer", {"sdp": "v=0", "revision": 1}) == (
                "stale_revision",
                "answer for revision 1, awaiting None",
            )
            await publisher.ok("publish", {"sdp": await aiortc_offer("audio", "video")})
            offer = await subscriber.notification("offer")
            revision = offer["revision"]
            assert [c["kind"] for c in offer["consumers"]] == ["audio"]
            pc = new_pc()
            try:
                await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
                await pc.setLocalDescription(await pc.createAnswer())
                sdp = pc.localDescription.sdp
                assert await subscriber.error("answer", {"sdp": sdp, "revision": revision + 1}) == (
                    "stale_revision",
                    f"answer for revision {revision + 1}, awaiting {revision}",
                )
                assert await subscriber.error(
                    "answer", {"sdp": sdp, "revision": str(revision)}
                ) == (
                    "invalid_params",
                    "params.revision must be a int",
                )
                assert await subscriber.error(
                    "answer", {"sdp": sdp.replace("a=mid:0", "a=mid:9"), "revision": revision}
                ) == ("invalid_sdp", "answer: media section '0' is missing")
                assert await subscriber.ok("answer", {"sdp": sdp, "revision": revision}) == {}
                # answered: the same revision is stale now; the video consumer's offer follows
                code, message = await subscriber.error("answer", {"sdp": sdp, "revision": revision})
                assert code == "stale_revision" and message.startswith(
                    f"answer for revision {revision}, awaiting "
                )
                second = await subscriber.notification("offer")
                assert second["revision"] == revision + 1
                assert [c["kind"] for c in second["consumers"]] == ["audio", "video"]
                await pc.setRemoteDescription(RTCSessionDescription(second["sdp"], "offer"))
                await pc.setLocalDescription(await pc.createAnswer())
                answer = {"sdp": pc.localDescription.sdp, "revision": second["revision"]}
                assert await subscriber.ok("answer", answer) == {}
            finally:
                await pc.close()

    run(main())


def test_subscribe_and_unsubscribe_errors(run: Run[None]) -> None:
    async def main() -> None:
        async with serving() as h:
            publisher, subscriber = await h.connect(), await h.connect()
            await publisher.join()
            await subscriber.join(autoSubscribe=False)
            result = await publisher.ok("publish", {"sdp": await aiortc_offer("audio")})
            producer_id = result["producers"][0]["id"]
            for method in ("subscribe", "unsubscribe", "closeProducer"):
                assert await subscriber.error(method, {"producerId": "nope"}) == (
                    "unknown_producer",
                    "no producer 'nope' in this room",
                )
            assert await subscriber.error("subscribe", {}) == (
                "invalid_params",
                "params.producerId is required",
            )
            assert await subscriber.error("unsubscribe", {"producerId": producer_id}) == (
                "unknown_consumer",
                "not subscribed to this producer",
            )
            assert await subscriber.error("closeProducer", {"producerId": producer_id}) == (
                "forbidden",
                "a peer may close only its own producers",
            )
            consumer_id = (await subscriber.ok("subscribe", {"producerId": producer_id}))[
                "consumerId"
            ]
            assert (await subscriber.notification("offer"))["consumers"][0]["consumerId"] == (
                consumer_id
            )
            assert await subscriber.ok("unsubscribe", {"producerId": producer_id}) == {}
            assert (await subscriber.notification("consumerClosed"))["consumerId"] == consumer_id
            # a producer of another room is unknown here
            other = await h.connect()
            await other.join("elsewhere")
            assert await other.error("subscribe", {"producerId": producer_id}) == (
                "unknown_producer",
                f"no producer {producer_id!r} in this room",
            )
            assert await publisher.ok("closeProducer", {"producerId": producer_id}) == {}

    run(main())


def test_pause_and_resume_an_unknown_consumer(run: Run[None]) -> None:
    async def main() -> None:
        async with serving() as h:
            publisher, subscriber = await h.connect(), await h.connect()
            await publisher.join()
            await subscriber.join()
            for method in ("pauseConsumer", "resumeConsumer"):
                assert await subscriber.error(method, {"consumerId": "nope"}) == (
                    "unknown_consumer",
                    "no consumer 'nope' of this peer",
                )
                assert await subscriber.error(method, {"consumerId": 5}) == (
                    "invalid_params",
                    "params.consumerId must be a str",
                )
            await publisher.ok("publish", {"sdp": await aiortc_offer("audio")})
            consumer_id = (await subscriber.notification("offer"))["consumers"][0]["consumerId"]
            # a consumer of another peer is unknown to this one
            assert await publisher.error("pauseConsumer", {"consumerId": consumer_id}) == (
                "unknown_consumer",
                f"no consumer {consumer_id!r} of this peer",
            )
            assert await subscriber.ok("pauseConsumer", {"consumerId": consumer_id}) == {}
            assert (await subscriber.ok("stats"))["consumers"][0]["paused"] is True
            assert await subscriber.ok("resumeConsumer", {"consumerId": consumer_id}) == {}

    run(main())


# ---- limits ----


def test_rate_limit(run: Run[None]) -> None:
    async def main() -> None:
        async with serving() as h:
            conn, other = await h.connect(), await h.connect()
            await conn.join()
            await other.join()
            burst = 100
            started = time.monotonic()
            for i in range(burst):
                await conn.send({"id": 1000 + i, "method": "stats"})
            responses = [await conn.receive() for _ in range(burst)]
            elapsed = time.monotonic() - started
            ok = [r for r in responses if r["ok"]]
            limited = [r for r in responses if not r["ok"]]
            assert all(
                error_of(r, None) == ("rate_limited", "too many requests: slow down")
                for r in limited
            )
            # 50 tokens a second: 49 left after the join, plus what refilled meanwhile
            assert 49 <= len(ok) <= 49 + elapsed * 50 + 1, (len(ok), elapsed)
            assert len(limited) >= 10
            # the limit is per connection
            assert (await other.ok("stats"))["peerId"]
            await asyncio.sleep(1.1)
            for i in range(40):
                await conn.send({"id": 2000 + i, "method": "stats"})
            again = [await conn.receive() for _ in range(40)]
            assert [r["id"] for r in again] == list(range(2000, 2040))
            assert all(r["ok"] for r in again)

    run(main())


def test_oversized_message_closes_only_that_connection(run: Run[None]) -> None:
    async def main() -> None:
        async with serving() as h:
            big, neighbour = await h.connect(), await h.connect()
            big_id = (await big.join())["peerId"]
            await neighbour.join()
            # under the 256 KiB limit: an ordinary error
            assert await big.error(
                "join", {"token": "t", "room": "r", "displayName": "n" * 200_000}
            ) == ("already_joined", "this connection has already joined a room")
            await big.send({"id": 1, "method": "stats", "params": {"pad": "p" * 300_000}})
            msg = await asyncio.wait_for(big.ws.receive(), TIMEOUT)
            while msg.type == aiohttp.WSMsgType.TEXT:  # notifications sent before
                msg = await asyncio.wait_for(big.ws.receive(), TIMEOUT)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert msg.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
            assert big.ws.closed
            # closing is leaving: the others are told, and keep being served
            assert (await neighbour.notification("peerLeft"))["peerId"] == big_id
            assert (await neighbour.ok("stats"))["peerId"]
            late = await h.connect()
            assert [p["id"] for p in (await late.join())["peers"]] == [
                (await neighbour.ok("stats"))["peerId"]
            ]

    run(main())


def test_a_renegotiation_that_changes_the_fingerprint_is_refused_new_ice_credentials_restart(
    run: Run[None],
) -> None:
    async def main() -> None:
        server = MediaServer(ServerConfig(port=0))
        HttpFrontend(server)
        await server.start()
        assert server.http_address is not None
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(f"ws://127.0.0.1:{server.http_address[1]}/ws") as ws,
            ):

                async def call(method: str, params: dict[str, Any]) -> dict[str, Any]:
                    await ws.send_json({"id": 1, "method": method, "params": params})
                    reply: dict[str, Any] = await ws.receive_json()
                    while "id" not in reply:
                        reply = await ws.receive_json()
                    return reply

                assert (await call("join", {"token": "t", "room": "r"}))["ok"]
                pc.createDataChannel("x")
                await pc.setLocalDescription(await pc.createOffer())
                sdp = pc.localDescription.sdp
                first = await call("publish", {"sdp": sdp})
                assert first["ok"]
                other_fp = re.sub(
                    r"(a=fingerprint:sha-256 )\S+", r"\g<1>" + ":".join(["AA"] * 32), sdp
                )
                reply = await call("publish", {"sdp": other_fp})
                assert reply["error"]["code"] == "invalid_sdp"
                assert "fingerprint changed" in reply["error"]["message"]
                # new ICE credentials are an ICE restart: answered with new ones of the server
                restarted = re.sub(r"a=ice-ufrag:\S+", "a=ice-ufrag:zzzz", sdp)
                reply = await call("publish", {"sdp": restarted})
                assert reply["ok"], reply
                ufrag = re.compile(r"a=ice-ufrag:(\S+)")
                before = ufrag.search(first["result"]["sdp"])
                after = ufrag.search(reply["result"]["sdp"])
                assert before and after and before.group(1) != after.group(1)
        finally:
            await pc.close()
            await server.close()

    run(main())
