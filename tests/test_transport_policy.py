"""ICE-lite, DTLS and RTCP policy seen from the wire, with BenchPeer (bench/webrtc_peer.py):
a real ICE/DTLS/SRTP peer whose packets the test controls one by one."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import uvloop
from sfu_support import started_server, wait_for, ws_url

from bench.webrtc_peer import BenchPeer, Link
from mediasrv import _core
from mediasrv.certificate import Certificate
from mediasrv.config import MediaConfig
from mediasrv.media_server import MediaServer

SSRC = 0xABC


def run(coro: Coroutine[Any, Any, None]) -> None:
    uvloop.run(asyncio.wait_for(coro, 60))


async def publisher_and_subscriber(
    server: MediaServer, room: str = "r"
) -> tuple[BenchPeer, Link, BenchPeer, Link]:
    url = ws_url(server)
    pub = BenchPeer(url, room)
    await pub.join(auto_subscribe=False)
    pub_link = await pub.publish_video(SSRC)
    sub = BenchPeer(url, room)
    await sub.join(auto_subscribe=True)
    sub_link = await sub.answer_next_offer()
    return pub, pub_link, sub, sub_link


@contextlib.asynccontextmanager
async def policy_room(
    **config: Any,
) -> AsyncIterator[tuple[MediaServer, BenchPeer, Link, BenchPeer, Link]]:
    """A server with a publisher and a subscriber connected; all closed at exit."""
    server = await started_server(**config)
    try:
        pub, pub_link, sub, sub_link = await publisher_and_subscriber(server)
        try:
            yield server, pub, pub_link, sub, sub_link
        finally:
            await sub.close()
            await pub.close()
    finally:
        await server.close()


def send(link: Link, seqs: range | list[int]) -> None:
    for n in seqs:
        link.send_video(SSRC, n, n * 3000, keyframe=n % 30 == 0)


def test_reports_remb_and_keyframe_request_reach_the_publisher() -> None:
    async def main() -> None:
        async with policy_room(media=MediaConfig(max_incoming_bitrate=2_000_000)) as (
            _server,
            _pub,
            pub_link,
            _sub,
            sub_link,
        ):
            # a consumer that starts asks the publisher for a keyframe
            await wait_for(
                lambda: any(isinstance(p, _core.RtcpPli) for p in pub_link.rtcp_packets()),
                3,
                "a PLI at the publisher when the consumer starts",
            )
            for burst in range(20):
                send(pub_link, range(burst * 10, burst * 10 + 10))
                await asyncio.sleep(0.05)
            await wait_for(lambda: sub_link.received >= 190, 5, "packets at the subscriber")

            def rembs() -> list[Any]:
                return [p for p in pub_link.rtcp_packets() if isinstance(p, _core.RtcpRemb)]

            def blocks() -> list[Any]:
                return [b for p in pub_link.rtcp_packets()
                        if isinstance(p, _core.RtcpReceiverReport) for b in p.reports]  # fmt: skip

            # reports go out every second: wait for one (a loaded machine may be late)
            await wait_for(lambda: bool(rembs()) and bool(blocks()), 3, "REMB and a report")
            assert rembs()[-1].ssrcs == [SSRC]
            assert 1_900_000 <= rembs()[-1].bitrate <= 2_000_000
            assert blocks()[-1].ssrc == SSRC and blocks()[-1].highest_sequence > 0
            # the subscriber gets sender reports for its consumer's SSRC
            await wait_for(
                lambda: any(isinstance(p, _core.RtcpSenderReport) for p in sub_link.rtcp_packets()),
                3,
                "a sender report at the subscriber",
            )

    run(main())


def test_lost_publisher_packets_are_nacked_and_subscriber_plis_are_throttled() -> None:
    async def main() -> None:
        async with policy_room() as (_server, _pub, pub_link, sub, sub_link):
            send(pub_link, range(0, 10))
            send(pub_link, range(12, 20))  # 10 and 11 never sent
            await wait_for(
                lambda: any(isinstance(p, _core.RtcpNack) for p in pub_link.rtcp_packets()),
                2,
                "a NACK at the publisher",
            )
            nacked = {s for p in pub_link.rtcp_packets() if isinstance(p, _core.RtcpNack)
                      for s in p.lost}  # fmt: skip
            assert nacked == {10, 11}
            # the repair arrives: no more NACKs for it afterwards
            send(pub_link, [10, 11])
            await asyncio.sleep(0.3)
            pub_link.rtcp.clear()
            await asyncio.sleep(0.5)
            assert not [p for p in pub_link.rtcp_packets() if isinstance(p, _core.RtcpNack)]
            # PLIs from a subscriber reach the publisher, at most one per 500 ms
            await asyncio.sleep(0.6)
            pub_link.rtcp.clear()
            stats = await sub.request("stats", {})
            consumer_ssrc = stats["consumers"][0]["ssrc"]
            for _ in range(5):
                sub_link.send_rtcp([_core.RtcpPli(1, consumer_ssrc)])
            await asyncio.sleep(0.3)
            plis = [p for p in pub_link.rtcp_packets() if isinstance(p, _core.RtcpPli)]
            assert len(plis) == 1 and plis[0].media_ssrc == SSRC
            stats = await sub.request("stats", {})
            assert stats["consumers"][0]["pliReceived"] == 5

    run(main())


def test_a_stream_without_a_keyframe_is_asked_for_one_before_anyone_subscribes() -> None:
    async def main() -> None:
        server = await started_server()
        pub = BenchPeer(ws_url(server), "r")
        try:
            await pub.join(auto_subscribe=False)
            link = await pub.publish_video(SSRC)

            def plis() -> list[Any]:
                return [p for p in link.rtcp_packets() if isinstance(p, _core.RtcpPli)]

            # its first keyframe never arrived (lost, or the sender began mid-stream): nobody
            # could decode the stream, so the server asks for one though no one subscribes yet
            for n in range(1, 40):
                link.send_video(SSRC, n, n * 3000, keyframe=False)
                await asyncio.sleep(0.02)
            await wait_for(lambda: bool(plis()), 2, "a PLI for the missing first keyframe")
            assert {p.media_ssrc for p in plis()} == {SSRC}
            producer = next(iter(server.rooms["r"].router.producers.values()))
            assert producer.keyframe_requests >= 1
            # the keyframe comes: the asking stops
            link.send_video(SSRC, 40, 40 * 3000, keyframe=True)
            await wait_for(lambda: producer.stats()["keyframes"] == 1, 2, "the keyframe")
            await asyncio.sleep(0.6)
            link.rtcp.clear()
            for n in range(41, 80):
                link.send_video(SSRC, n, n * 3000, keyframe=False)
                await asyncio.sleep(0.02)
            assert not plis()
        finally:
            await pub.close()
            await server.close()

    run(main())


def test_subscriber_nack_is_answered_from_the_cache() -> None:
    async def main() -> None:
        async with policy_room() as (_server, _pub, pub_link, sub, sub_link):
            send(pub_link, range(0, 20))
            await wait_for(lambda: sub_link.received >= 20, 3, "20 packets at the subscriber")
            stats = await sub.request("stats", {})
            consumer = stats["consumers"][0]
            before = sub_link.received
            # ask again for 5 and 6 as the subscriber numbers them (the consumer's own space)
            first_out = sub_link.highest - 19
            sub_link.send_rtcp(
                [_core.RtcpNack(1, consumer["ssrc"], [first_out + 5, first_out + 6])]
            )
            await wait_for(lambda: sub_link.received >= before + 2, 3, "the retransmissions")
            stats = await sub.request("stats", {})
            assert stats["consumers"][0]["retransmitted"] == 2

    run(main())


def test_ice_timeout_and_consent_expiry_close_transports() -> None:
    async def main() -> None:
        media = MediaConfig(ice_timeout=1.0, consent_timeout=1.5)
        server = await started_server(media=media)
        try:
            worker = server.workers[0]
            # a peer that joins and negotiates nothing (it only listens, or waits to publish)
            # stays: a transport nobody negotiated has no ICE to wait for
            silent = BenchPeer(ws_url(server), "r1")
            await silent.join(auto_subscribe=False)
            room = server.rooms["r1"]
            await asyncio.sleep(2.5)
            assert silent.peer_id in room.peers and worker.ice_failures["timeout"] == 0
            # once it offers to publish, ICE must follow within ice_timeout: it never does,
            # so the transport closes and the peer leaves
            ufrag, pwd = "abcd", "0123456789abcdef01234567"
            lines = [
                "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0",
                "m=video 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0", "a=mid:0", "a=sendonly",
                "a=rtcp-mux", "a=rtpmap:96 VP8/90000", f"a=ssrc:{SSRC} cname:silent",
                *silent._local_description(ufrag, pwd, "actpass"),
            ]  # fmt: skip
            await silent.request("publish", {"sdp": "\r\n".join(lines) + "\r\n"})
            await wait_for(lambda: not room.peers, 4, "the silent peer to be dropped")
            assert worker.ice_failures["timeout"] == 1
            await silent.close()
            # a subscriber that never answers the server's offer: its receive transport was
            # offered, so ICE must follow within ice_timeout; it never does
            source = BenchPeer(ws_url(server), "r3")
            await source.join(auto_subscribe=False)
            await source.publish_video(SSRC)
            deaf = BenchPeer(ws_url(server), "r3")
            await deaf.join(auto_subscribe=True)
            room3 = server.rooms["r3"]
            assert deaf.peer_id in room3.peers
            await wait_for(lambda: deaf.peer_id not in room3.peers, 4, "the deaf peer dropped")
            assert worker.ice_failures["timeout"] == 2
            await deaf.close()
            await source.close()
            # a connected peer whose consent checks stop
            expired = worker.ice_failures["consent_expired"]
            pub = BenchPeer(ws_url(server), "r2")
            await pub.join(auto_subscribe=False)
            link = await pub.publish_video(SSRC)
            link.stop_consent()
            room2 = server.rooms["r2"]
            await wait_for(lambda: not room2.peers, 5, "consent to expire")
            assert worker.ice_failures["consent_expired"] == expired + 1
            await pub.close()
        finally:
            await server.close()

    run(main())


def test_a_certificate_that_does_not_match_the_fingerprint_fails_dtls() -> None:
    async def main() -> None:
        server = await started_server()
        try:
            peer = BenchPeer(ws_url(server), "r")
            await peer.join(auto_subscribe=False)
            announced = peer.certificate
            peer.certificate = Certificate.generate()  # the DTLS handshake uses another one
            original = peer._local_description

            def lying(ufrag: str, pwd: str, setup: str) -> list[str]:
                lines = original(ufrag, pwd, setup)
                return [
                    f"a=fingerprint:sha-256 {announced.fingerprint}"
                    if line.startswith("a=fingerprint") else line
                    for line in lines
                ]  # fmt: skip

            peer._local_description = lying  # type: ignore[method-assign]
            link = await peer.publish_video(SSRC)  # the client's own checks pass
            await wait_for(
                lambda: server.workers[0].dtls_failures["fingerprint"] == 1, 3, "the failure count"
            )
            # the server told the client (close_notify) and dropped the peer
            await wait_for(lambda: link.dtls.state == "closed", 3, "the client to see the close")
            await wait_for(lambda: not server.rooms, 3, "the peer to be dropped")
            await peer.close()
        finally:
            await server.close()

    run(main())


def test_no_python_runs_per_forwarded_packet() -> None:
    """Count calls into the server's Python code while 1,000 packets go to three subscribers."""

    async def main() -> None:
        import sys
        from pathlib import Path

        import mediasrv

        server = await started_server()
        url = ws_url(server)
        pub = BenchPeer(url, "r")
        await pub.join(auto_subscribe=False)
        pub_link = await pub.publish_video(SSRC)
        subs = []
        for _ in range(3):
            sub = BenchPeer(url, "r")
            await sub.join(auto_subscribe=True)
            subs.append((sub, await sub.answer_next_offer()))
        send(pub_link, range(0, 30))
        await wait_for(lambda: all(link.received >= 30 for _, link in subs), 3, "warm-up")
        package = str(Path(mediasrv.__file__).parent)
        calls = 0

        def profile(frame: Any, event: str, arg: Any) -> None:
            nonlocal calls
            if event == "call" and frame.f_code.co_filename.startswith(package):
                calls += 1

        sys.setprofile(profile)
        try:
            for burst in range(1, 34):
                send(pub_link, range(burst * 30, burst * 30 + 30))
                await asyncio.sleep(0.01)
            await wait_for(lambda: all(link.received >= 1020 for _, link in subs), 5, "packets")
        finally:
            sys.setprofile(None)
        try:
            forwarded = 3 * 990
            print(f"server Python calls: {calls} for {forwarded} forwarded packets")
            # timers and RTCP run meanwhile (a few hundred calls); per-packet Python would be
            # thousands
            assert calls < forwarded / 10, f"{calls} server Python calls for {forwarded} packets"
        finally:
            for sub, _ in subs:
                await sub.close()
            await pub.close()
            await server.close()

    run(main())


def test_server_takes_the_dtls_client_role_when_the_subscriber_answers_passive() -> None:
    async def main() -> None:
        server = await started_server()
        url = ws_url(server)
        pub = BenchPeer(url, "r")
        await pub.join(auto_subscribe=False)
        pub_link = await pub.publish_video(SSRC)
        sub = BenchPeer(url, "r")
        await sub.join(auto_subscribe=True)
        sub_link = await sub.answer_next_offer(setup="passive")
        try:
            room = server.rooms["r"]
            peer = room.peers[sub.peer_id]
            assert peer.recv_transport is not None
            assert peer.recv_transport.dtls_role is not None
            assert peer.recv_transport.dtls_role.value == "client"
            send(pub_link, range(0, 30))
            await wait_for(lambda: sub_link.received >= 30, 3, "media over the reversed roles")
        finally:
            await sub.close()
            await pub.close()
            await server.close()

    run(main())


def test_keyframe_requests_repeat_while_a_consumer_waits() -> None:
    """A publisher that ignores the first PLI is asked again, spaced by the 500 ms limit, until
    a keyframe arrives; then the requests stop."""

    async def main() -> None:
        async with policy_room() as (_server, _pub, pub_link, _sub, sub_link):
            times: list[float] = []
            loop = asyncio.get_running_loop()

            def plis() -> int:
                return sum(isinstance(p, _core.RtcpPli) for p in pub_link.rtcp_packets())

            start = loop.time()
            seq = 1
            while loop.time() - start < 1.6:  # only delta frames: the consumer keeps waiting
                pub_link.send_video(SSRC, seq, seq * 3000, keyframe=False)
                seq += 1
                count = plis()
                if count > len(times):
                    times.append(loop.time())
                await asyncio.sleep(0.02)
            assert len(times) >= 3, times
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert min(gaps) >= 0.4, gaps
            assert sub_link.received == 0
            pub_link.send_video(SSRC, seq, seq * 3000, keyframe=True)
            await wait_for(lambda: sub_link.received == 1, 2, "the keyframe at the subscriber")
            await asyncio.sleep(0.1)
            before = plis()
            await asyncio.sleep(1.0)
            assert plis() == before, "PLIs went on after the keyframe"

    run(main())
