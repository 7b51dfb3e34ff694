"""PipeTransport: producers of one server's router carried to another server's router over
plain RTP (or SRTP) on loopback (two MediaServers, each with its own worker and UDP port), with
real aiortc publishers and subscribers; loss on the pipe from a UDP relay that drops RTP; a
simulcast producer's layers carried each as its own stream (BenchPeer on the wire)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sfu_support import FrameCounter, LossyRelay, PatternTrack, ToneTrack, wait_for, ws_url
from test_simulcast import LAYER_PACKETS, LAYER_SSRCS, RIDS, SimulcastSender, layers_since

from bench.webrtc_peer import BenchPeer, Link
from mediasrv import _core
from mediasrv.client import Client
from mediasrv.config import ServerConfig
from mediasrv.consumer import Consumer
from mediasrv.http.frontend import HttpFrontend
from mediasrv.layer_consumer import LayerConsumer
from mediasrv.media_server import MediaServer
from mediasrv.pipe_transport import PipeError, PipeTransport, check_offer
from mediasrv.producer import Producer
from mediasrv.simulcast_consumer import SimulcastConsumer

LIMIT = 60.0


@contextlib.asynccontextmanager
async def two_servers() -> AsyncIterator[tuple[MediaServer, MediaServer]]:
    a, b = MediaServer(ServerConfig(port=0)), MediaServer(ServerConfig(port=0))
    HttpFrontend(a)
    HttpFrontend(b)
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


async def layer_subscriber(
    server: MediaServer, room: str
) -> tuple[BenchPeer, Link, SimulcastConsumer]:
    peer = BenchPeer(ws_url(server), room)
    await peer.join(auto_subscribe=True)
    link = await peer.answer_next_offer()
    link.record = True
    transport = server.rooms[room].peers[peer.peer_id].recv_transport
    assert transport is not None
    consumer = next(iter(transport.consumers.values()))
    assert isinstance(consumer, SimulcastConsumer)
    return peer, link, consumer


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


def test_a_simulcast_producer_crosses_with_every_layer(run: Any) -> None:
    """The pipe starts while only the lowest layer is published; the others join it as they
    begin. At B, one subscriber takes layer 0 and another the top layer, each switching on its
    own; a keyframe request for one layer reaches the publisher as a PLI of that layer."""

    async def scenario() -> None:
        async with two_servers() as (a, b), contextlib.AsyncExitStack() as stack:
            publisher = BenchPeer(ws_url(a), "ward")
            stack.push_async_callback(publisher.close)
            await publisher.join(auto_subscribe=False)
            sender = SimulcastSender(await publisher.publish_simulcast(RIDS))
            stack.push_async_callback(sender.stop)
            room_a = a.rooms["ward"]
            for _ in range(3):
                sender.send_layer(0, *LAYER_PACKETS[0])
                await asyncio.sleep(0.05)
            await wait_for(lambda: len(room_a.router.producers) == 1, 3, "the producer")
            produced = next(iter(room_a.router.producers.values()))
            assert sorted(produced.layers) == [0]
            b.get_or_create_room("annex")
            out, into = pipe(a, b, "ward", "annex")
            piped = carry(out, into, [produced])[0]
            assert piped.rids == RIDS and sorted(piped.layers) == [0, 1, 2]
            sender.start()  # layers 1 and 2 begin: the pipe carries them from their first packet
            await wait_for(lambda: len(out.sent(produced)) == 3, 3, "a stream per layer")
            sent = out.sent(produced)
            assert all(isinstance(c, LayerConsumer) for c in sent)
            assert sorted(c.layer for c in sent if isinstance(c, LayerConsumer)) == [0, 1, 2]
            assert len({c.ssrc for c in sent}) == 3

            low_peer, low_link, low = await layer_subscriber(b, "annex")
            stack.push_async_callback(low_peer.close)
            high_peer, high_link, _high = await layer_subscriber(b, "annex")
            stack.push_async_callback(high_peer.close)
            await low_peer.request("setPreferredLayers", {"consumerId": low.id, "spatialLayer": 0})
            await wait_for(lambda: layers_since(low_link, 0)[-5:] == [0] * 5, 5, "layer 0 at B")
            await wait_for(lambda: layers_since(high_link, 0)[-5:] == [2] * 5, 5, "layer 2 at B")
            assert [piped.layers[i].packets > 0 for i in range(3)] == [True] * 3

            # a keyframe request of B's layer-0 subscriber reaches the publisher, for layer 0
            await asyncio.sleep(0.6)  # past the keyframe-request spacing of both servers
            sender.link.rtcp.clear()
            low_link.send_rtcp([_core.RtcpPli(1, low.ssrc)])

            def plis() -> set[int]:
                return {p.media_ssrc for p in sender.link.rtcp_packets()
                        if isinstance(p, _core.RtcpPli)}  # fmt: skip

            await wait_for(lambda: LAYER_SSRCS[0] in plis(), 3, "the PLI at the publisher")
            assert LAYER_SSRCS[2] not in plis()

            # the other side says which layers it wants; a message older than the last is
            # ignored (they may cross on the way)
            paused = {c.layer: c.paused for c in sent if isinstance(c, LayerConsumer)}
            assert paused == {0: False, 1: False, 2: False}
            assert out.set_layers_wanted(produced.id, [True, False, False], seq=2) == 2
            assert out.set_layers_wanted(produced.id, [True, True, True], seq=1) == 0
            paused = {c.layer: c.paused for c in sent if isinstance(c, LayerConsumer)}
            assert paused == {0: False, 1: True, 2: True}
            assert out.set_layers_wanted(produced.id, [True, True, False], seq=3) == 1
            with pytest.raises(ValueError, match="not sent on this pipe"):
                out.set_layers_wanted("nope", [True])

            # stopping the pipe's copy of the producer ends its three streams, and the pipe
            # no longer listens to the producer
            listening = len(produced.listeners("close"))
            assert out.stop(produced.id) == 3
            assert not out.sent(produced) and not out.consumers
            assert len(produced.listeners("close")) == listening - 1
            assert not produced.listeners("layer")

    run(asyncio.wait_for(scenario(), LIMIT))


def test_an_srtp_pipe_carries_media_only_with_the_other_side_s_key(run: Any) -> None:
    async def scenario() -> None:
        async with two_servers() as (a, b), contextlib.AsyncExitStack() as stack:
            publisher = await Client.connect(ws_url(a), token="t", room="ward")
            stack.push_async_callback(publisher.close)
            await publisher.publish([PatternTrack()])
            watcher = await Client.connect(ws_url(b), token="t", room="annex")
            stack.push_async_callback(watcher.close)
            counter = FrameCounter(watcher)
            stack.push_async_callback(counter.close)
            produced = list(a.rooms["ward"].router.producers.values())
            suite = "AEAD_AES_128_GCM"

            # B is given a key that is not A's: nothing A sends can be read there
            out = a.rooms["ward"].router.create_pipe_transport(srtp=suite)
            into = b.rooms["annex"].router.create_pipe_transport(srtp=suite)
            stranger = b.rooms["annex"].router.create_pipe_transport(srtp=suite)
            out.connect(into.local_address, srtp_parameters=into.srtp_parameters)
            into.connect(out.local_address, srtp_parameters=stranger.srtp_parameters)
            stranger.close()
            carry(out, into, produced)
            await wait_for(lambda: into.plane.unprotect_errors >= 20, 5, "undecryptable packets")
            assert counter.frames["video"] == 0
            assert into.plane.rtp_packets_in == 0
            out.close()
            into.close()

            # with each other's keys the same pipe carries the video, SRTP-protected
            out = a.rooms["ward"].router.create_pipe_transport(srtp=suite)
            into = b.rooms["annex"].router.create_pipe_transport(srtp=suite)
            out.connect(into.local_address, srtp_parameters=into.srtp_parameters)
            into.connect(out.local_address, srtp_parameters=out.srtp_parameters)
            carry(out, into, produced)
            await wait_for(lambda: counter.frames["video"] >= 20, 15.0, "frames through SRTP")
            assert counter.last_size == (320, 240)
            assert into.plane.unprotect_errors == 0
            out.close()
            into.close()

    run(asyncio.wait_for(scenario(), LIMIT))


def test_srtp_parameters_are_checked_without_showing_the_key() -> None:
    async def scenario() -> None:
        async with two_servers() as (a, _b):
            router = a.get_or_create_room("r").router
            with pytest.raises(ValueError, match="srtp must be one of"):
                router.create_pipe_transport(srtp="NULL_CIPHER")
            gcm = router.create_pipe_transport(srtp="AEAD_AES_128_GCM")
            cm = router.create_pipe_transport(srtp="AES_CM_128_HMAC_SHA1_80")
            plain = router.create_pipe_transport()
            assert plain.srtp_parameters is None
            assert cm.srtp_parameters is not None and gcm.srtp_parameters is not None
            key = cm.srtp_parameters["keyBase64"]
            where = ("127.0.0.1", 40000)
            for params, message in (
                (None, "srtp_parameters of the other side needed"),
                (gcm.srtp_parameters, "cryptoSuite must be AES_CM_128_HMAC_SHA1_80"),
                ({**cm.srtp_parameters, "keyBase64": "not base64!"}, "must be 30 bytes"),
                ({**cm.srtp_parameters, "keyBase64": key[:20]}, "must be 30 bytes"),
            ):
                with pytest.raises(ValueError, match=message) as raised:
                    cm.connect(where, srtp_parameters=params)
                assert key not in str(raised.value)
            assert cm.remote_address is None and not cm.connected
            with pytest.raises(ValueError, match="made without SRTP"):
                plain.connect(where, srtp_parameters=cm.srtp_parameters)
            # connected once; again would restart the SRTP counters under the same keys
            other = router.create_pipe_transport(srtp="AES_CM_128_HMAC_SHA1_80")
            cm.connect(where, srtp_parameters=other.srtp_parameters)
            assert cm.connected
            with pytest.raises(RuntimeError, match="connects once"):
                cm.connect(("127.0.0.1", 40002), srtp_parameters=other.srtp_parameters)
            assert cm.remote_address == where

    asyncio.run(scenario())


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
    first, second = {"ssrc": 1234, "rtxSsrc": 1235}, {"ssrc": 2000, "rtxSsrc": 2001}
    layered = {**good, "rids": ["q", "h"], "layers": [first, second]}
    assert check_offer(layered) == layered
    bad_layers: tuple[tuple[dict[str, Any], str], ...] = (
        ({"rids": ["q"]}, "rids must be 2..4 distinct RIDs"),
        ({"rids": ["q", "q"]}, "rids must be 2..4 distinct RIDs"),
        ({"rids": ["q", "h h"]}, "rids must be 2..4 distinct RIDs"),
        ({"layers": [first]}, "layers must have one entry per rid"),
        ({"layers": [first, {"ssrc": 1234, "rtxSsrc": 7}]}, r"layers\[1\] repeats"),
        ({"layers": [first, {"ssrc": 9}]}, r"layers\[1\] must be \{ssrc, rtxSsrc\}"),
        ({"layers": [second, first]}, r"layers\[0\] must be the offer's own"),
        ({"kind": "audio", "mimeType": "audio/opus"}, "only video has simulcast layers"),
    )
    for change, message in bad_layers:
        with pytest.raises(PipeError, match=message):
            check_offer({**layered, **change})
    with pytest.raises(PipeError, match="rtxSsrc is missing"):
        check_offer({k: v for k, v in good.items() if k != "rtxSsrc"})
    with pytest.raises(PipeError, match="must be an object"):
        check_offer([good])
