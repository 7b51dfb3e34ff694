"""PipeTransport: producers of one server's router carried to another server's router over
plain RTP on loopback (two MediaServers, each with its own worker and UDP port), with real
aiortc publishers and subscribers; loss on the pipe from a UDP relay that drops RTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sfu_support import FrameCounter, LossyRelay, PatternTrack, ToneTrack, wait_for, ws_url

from mediasrv.client import Client
from mediasrv.config import ServerConfig
from mediasrv.consumer import Consumer
from mediasrv.media_server import MediaServer
from mediasrv.pipe_transport import PipeError, PipeTransport, check_offer
from mediasrv.producer import Producer

LIMIT = 60.0


@contextlib.asynccontextmanager
async def two_servers() -> AsyncIterator[tuple[MediaServer, MediaServer]]:
    a, b = MediaServer(ServerConfig(port=0)), MediaServer(ServerConfig(port=0))
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def pipe(
    a: MediaServer, b: MediaServer, room_a: str, room_b: str, relay: LossyRelay | None = None
) -> tuple[PipeTransport, PipeTransport]:
    out = a.rooms[room_a].router.create_pipe_transport()
    into = b.rooms[room_b].router.create_pipe_transport()
    if relay is None:
        out.connect(into.local_address)
        into.connect(out.local_address)
    else:  # A's RTP to B goes through the lossy relay; RTCP both ways passes
        out.connect(("127.0.0.1", relay.port))
        into.connect(("127.0.0.1", relay.port))
        relay.client_addr = into.local_address
    return out, into


def carry(out: PipeTransport, into: PipeTransport, producers: list[Producer]) -> list[Producer]:
    """What two nodes would do: the offer crosses as JSON."""
    return [into.receive(json.loads(json.dumps(out.send(p)))) for p in producers]


def pipe_consumers(out: PipeTransport) -> list[Consumer]:
    return list(out.consumers.values())


def test_a_room_s_producers_reach_subscribers_of_another_server(run: Any) -> None:
    async def scenario() -> None:
        async with two_servers() as (a, b), contextlib.AsyncExitStack() as stack:
            publisher = await Client.connect(ws_url(a), token="t", room="ward", display_name="p")
            stack.push_async_callback(publisher.close)
            await publisher.publish([PatternTrack(), ToneTrack()])
            watcher = await Client.connect(ws_url(b), token="t", room="annex", display_name="w")
            stack.push_async_callback(watcher.close)
            counter = FrameCounter(watcher)
            stack.push_async_callback(counter.close)
            out, into = pipe(a, b, "ward", "annex")
            produced = list(a.rooms["ward"].router.producers.values())
            assert len(produced) == 2
            piped = carry(out, into, produced)
            assert {p.app_data["pipedFrom"] for p in piped} == {p.id for p in produced}
            await wait_for(lambda: counter.frames["video"] >= 20 and counter.frames["audio"] >= 20,
                           15.0, "frames through the pipe")  # fmt: skip
            assert counter.last_size == (320, 240)  # PatternTrack's size, decoded at B
            # closing the pipe (both sides, as whoever set it up does) ends the piped tracks at B
            out.close()
            into.close()
            assert all(p.closed for p in piped)
            await wait_for(lambda: len(counter.ended) == 2 or not watcher.tracks, 10.0,
                           "the piped tracks ending")  # fmt: skip

    run(asyncio.wait_for(scenario(), LIMIT))


def test_repairs_and_keyframe_requests_cross_the_pipe(run: Any) -> None:
    """5% of the pipe's RTP is dropped: the receiving side's NACKs are answered from the
    sending consumer's cache; a subscriber joining later asks for a keyframe, which crosses
    the pipe to the publisher and it decodes at once."""

    async def scenario() -> None:
        async with two_servers() as (a, b), contextlib.AsyncExitStack() as stack:
            publisher = await Client.connect(ws_url(a), token="t", room="ward")
            stack.push_async_callback(publisher.close)
            await publisher.publish([PatternTrack()])
            first = await Client.connect(ws_url(b), token="t", room="annex")
            stack.push_async_callback(first.close)
            counter = FrameCounter(first)
            stack.push_async_callback(counter.close)
            relay = await LossyRelay.start((a.config.media.listen_ip, a.workers[0].port), loss=0.05)
            stack.callback(relay.close)
            out, into = pipe(a, b, "ward", "annex", relay)
            carry(out, into, list(a.rooms["ward"].router.producers.values()))
            await wait_for(lambda: counter.frames["video"] >= 60, 20.0, "frames despite loss")
            sender = pipe_consumers(out)[0]
            await wait_for(lambda: sender.nack_received > 0, 10.0, "NACKs across the pipe")
            assert relay.dropped > 0
            assert sender.stats()["retransmitted"] > 0
            plis = sender.pli_received
            late = await Client.connect(ws_url(b), token="t", room="annex")
            stack.push_async_callback(late.close)
            late_counter = FrameCounter(late)
            stack.push_async_callback(late_counter.close)
            await wait_for(lambda: late_counter.frames["video"] >= 5, 5.0, "a late subscriber")
            assert sender.pli_received > plis  # its keyframe request crossed the pipe

    run(asyncio.wait_for(scenario(), LIMIT))


def test_a_malformed_pipe_offer_is_refused_precisely() -> None:
    good = {"kind": "video", "mimeType": "video/VP8", "payloadType": 96, "ssrc": 1234,
            "rtxPayloadType": 97, "rtxSsrc": 1235, "extensions": {}, "producerId": "p",
            "appData": {}}  # fmt: skip
    assert check_offer(good) == good
    for change, message in (
        ({"ssrc": 0}, "ssrc must not be 0"),
        ({"ssrc": -1}, "ssrc must be an integer"),
        ({"payloadType": 200}, "payloadType must be an integer 0..127"),
        ({"kind": "data"}, "kind must be audio or video"),
        ({"extensions": {"urn:x": 15}}, "extensions must map URIs to ids 1..14"),
        ({"mimeType": ""}, "mimeType must be a string"),
        ({"appData": []}, "appData must be an object"),
    ):
        with pytest.raises(PipeError, match=message):
            check_offer({**good, **change})
    with pytest.raises(PipeError, match="rtxSsrc is missing"):
        check_offer({k: v for k, v in good.items() if k != "rtxSsrc"})
    with pytest.raises(PipeError, match="must be an object"):
        check_offer([good])
