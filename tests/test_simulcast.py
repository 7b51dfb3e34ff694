"""Simulcast from the wire: a BenchPeer publishes three RID layers the way Chrome does (no
a=ssrc, MID/RID/repaired-RID extensions), BenchPeer subscribers choose layers by preference and
by the bandwidth they report (REMB)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from typing import Any

import uvloop
from sfu_support import started_server, wait_for, ws_url

from bench.webrtc_peer import EXT_MID_ID, EXT_RID_ID, EXT_RRID_ID, VP8_RTX_PT, BenchPeer, Link
from mediasrv import _core
from mediasrv.media_server import MediaServer
from mediasrv.simulcast_consumer import SimulcastConsumer

RIDS = ["q", "h", "f"]
LAYER_SSRCS = [0x1000, 0x2000, 0x3000]
RTX_SSRCS = [0x1001, 0x2001, 0x3001]
# packets per 100 ms tick and their sizes: about 50, 250 and 900 kbit/s
LAYER_PACKETS = [(1, 600), (3, 1000), (10, 1100)]


def run(coro: Coroutine[Any, Any, None]) -> None:
    uvloop.run(asyncio.wait_for(coro, 60))


class SimulcastSender:
    """Sends the three layers at their rates; each layer's first packet of every 10 is a
    keyframe start; the payload's tag byte names the layer."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.seq = [100, 20000, 40000]
        self.task: asyncio.Task[None] | None = None

    def send_layer(self, layer: int, count: int, size: int) -> None:
        for _ in range(count):
            seq = self.seq[layer]
            self.link.send_video(
                LAYER_SSRCS[layer], seq, seq * 900, keyframe=seq % 10 == 0, size=size, tag=layer,
                extensions=[(EXT_MID_ID, b"0"), (EXT_RID_ID, RIDS[layer].encode())],
            )  # fmt: skip
            self.seq[layer] = seq + 1

    async def _run(self) -> None:
        while True:
            for layer, (count, size) in enumerate(LAYER_PACKETS):
                self.send_layer(layer, count, size)
            await asyncio.sleep(0.1)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def simulcast_room(server: MediaServer) -> tuple[BenchPeer, SimulcastSender]:
    publisher = BenchPeer(ws_url(server), "r")
    await publisher.join(auto_subscribe=False)
    sender = SimulcastSender(await publisher.publish_simulcast(RIDS))
    sender.start()
    return publisher, sender


async def subscriber(server: MediaServer) -> tuple[BenchPeer, Link, SimulcastConsumer]:
    peer = BenchPeer(ws_url(server), "r")
    await peer.join(auto_subscribe=True)
    link = await peer.answer_next_offer()
    link.record = True
    room = server.rooms["r"]
    consumer = next(iter(room.peers[peer.peer_id].recv_transport.consumers.values()))  # type: ignore[union-attr]
    assert isinstance(consumer, SimulcastConsumer)
    return peer, link, consumer


def layers_since(link: Link, start: int) -> list[int]:
    return [tag for _, tag in link.packets[start:]]


def test_rid_layers_and_their_rtx_are_found_by_mid_and_rid() -> None:
    async def main() -> None:
        server = await started_server()
        publisher, sender = await simulcast_room(server)
        try:
            room = server.rooms["r"]
            await wait_for(lambda: len(room.router.producers) == 1, 3, "the producer")
            producer = next(iter(room.router.producers.values()))
            await wait_for(lambda: len(producer.layers) == 3, 3, "three layers")
            assert producer.rids == RIDS
            assert [producer.layers[i].ssrc for i in range(3)] == LAYER_SSRCS
            # RTX of layer 0 arrives with the repaired-RID extension
            sender.link.send_video(
                RTX_SSRCS[0], 1, 0, keyframe=False, payload_type=VP8_RTX_PT,
                extensions=[(EXT_MID_ID, b"0"), (EXT_RRID_ID, b"q")],
            )  # fmt: skip
            await wait_for(lambda: producer.layers[0].rtx_ssrc == RTX_SSRCS[0], 3, "the RTX SSRC")
            # a RID the offer did not declare is ignored and counted
            sender.link.send_video(
                0x9999, 1, 0, keyframe=True,
                extensions=[(EXT_MID_ID, b"0"), (EXT_RID_ID, b"x")],
            )  # fmt: skip
            worker = server.workers[0]
            await wait_for(lambda: worker.drops["rid_undeclared"] >= 1, 3, "the count")
            assert len(producer.layers) == 3
            stats = producer.stats()
            assert [layer["rid"] for layer in stats["layers"]] == RIDS
        finally:
            await sender.stop()
            await publisher.close()
            await server.close()

    run(main())


def test_preferred_layer_is_forwarded_and_switches_keep_numbering_continuous() -> None:
    async def main() -> None:
        server = await started_server()
        publisher, sender = await simulcast_room(server)
        peer, link, consumer = await subscriber(server)
        try:
            # with no preference and no estimate: the highest active layer
            await wait_for(lambda: layers_since(link, 0)[-5:] == [2] * 5, 5, "layer 2")
            result = await peer.request(
                "setPreferredLayers", {"consumerId": consumer.id, "spatialLayer": 0}
            )
            assert result == {"preferredLayer": 0, "targetLayer": 0, "preferredTemporalLayer": None}
            mark = len(link.packets)
            await wait_for(lambda: layers_since(link, mark)[-3:] == [0] * 3, 3, "layer 0")
            await peer.request("setPreferredLayers", {"consumerId": consumer.id, "spatialLayer": 1})
            await wait_for(lambda: layers_since(link, mark)[-3:] == [1] * 3, 3, "layer 1")
            seqs = [seq for seq, _ in link.packets]
            gaps = [b - a for a, b in itertools.pairwise(seqs) if b - a != 1]
            assert not gaps, f"sequence numbers jumped: {gaps}"
            assert consumer.plane.layer_switches >= 3 and consumer.layer_changes >= 2
            # out of range: refused, counted, nothing changes
            try:
                await peer.request(
                    "setPreferredLayers", {"consumerId": consumer.id, "spatialLayer": 3}
                )
            except RuntimeError as exc:
                assert "outside 0..2" in str(exc)
            else:
                raise AssertionError("layer 3 was accepted")
            assert server.rejected["layer_out_of_range"] == 1
            assert consumer.preferred_layer == 1
            stats = await peer.request("stats", {})
            assert stats["consumers"][0]["currentLayer"] == 1
        finally:
            await sender.stop()
            await peer.close()
            await publisher.close()
            await server.close()

    run(main())


def test_bandwidth_estimate_moves_a_subscriber_down_fast_and_up_slowly() -> None:
    async def main() -> None:
        server = await started_server()
        publisher, sender = await simulcast_room(server)
        peer, link, consumer = await subscriber(server)
        stop = asyncio.Event()

        async def report(bitrate: list[int]) -> None:
            while not stop.is_set():
                link.send_rtcp([_core.RtcpRemb(1, bitrate[0], [consumer.ssrc])])
                await asyncio.sleep(0.2)

        bitrate = [20_000_000]
        reporter = asyncio.create_task(report(bitrate))
        try:
            await wait_for(lambda: consumer.current_layer() == 2, 5, "layer 2 on a fast link")
            await asyncio.sleep(1.2)  # layer bitrates measured
            loop = asyncio.get_running_loop()
            bitrate[0] = 150_000  # the link collapses: only layer 0 (about 50 kbit/s) fits
            throttled = loop.time()
            await wait_for(lambda: consumer.current_layer() == 0, 3, "moving down")
            assert loop.time() - throttled < 2.0
            bitrate[0] = 20_000_000  # and recovers: up again, but not at once
            lifted = loop.time()
            await wait_for(lambda: consumer.current_layer() == 2, 10, "moving back up")
            assert loop.time() - lifted >= SimulcastConsumer.UP_DELAY
            stats = await peer.request("stats", {})
            assert stats["consumers"][0]["layerSwitches"] >= 2
        finally:
            stop.set()
            await reporter
            await sender.stop()
            await peer.close()
            await publisher.close()
            await server.close()

    run(main())


def test_ssrc_group_simulcast_layers_are_known_from_the_offer() -> None:
    async def main() -> None:
        server = await started_server()
        publisher = BenchPeer(ws_url(server), "r")
        try:
            await publisher.join(auto_subscribe=False)
            link = await publisher.publish_ssrc_simulcast(LAYER_SSRCS)
            room = server.rooms["r"]
            (producer,) = room.router.producers.values()
            assert producer.simulcast and sorted(producer.layers) == [0, 1, 2]
            assert [producer.layers[i].ssrc for i in range(3)] == LAYER_SSRCS
            peer, sub_link, consumer = await subscriber(server)
            await peer.request("setPreferredLayers", {"consumerId": consumer.id, "spatialLayer": 1})
            for n in range(60):
                for layer in range(3):
                    link.send_video(LAYER_SSRCS[layer], 500 + n, n * 3000,
                                    keyframe=n % 10 == 0, tag=layer)  # fmt: skip
                await asyncio.sleep(0.01)
            await wait_for(lambda: layers_since(sub_link, 0)[-3:] == [1] * 3, 3, "layer 1")
            await peer.close()
        finally:
            await publisher.close()
            await server.close()

    run(main())
