"""Real networks in Chromium: pages that cannot use UDP join over ICE-TCP (RFC 6544) and, with a
relay-only policy, over TURN/TCP and TURN/TLS through a real coturn; media decodes both ways."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from impaired_path import REWRITE_JS, ImpairedPath
from test_browser import BrowserPeer, Harness, expect_media, harness, run
from turn_support import coturn

from mediasrv.config import ServerConfig, TurnConfig

# Chromium's WebRTC IP handling policy that sends no UDP except through a proxy: what a page
# behind a firewall that blocks UDP can do (only TCP candidates are gathered)
NO_UDP = ("--webrtc-ip-handling-policy=disable_non_proxied_udp",)

# the page's chosen path: the local candidate of the selected pair of each peer connection
PATH_JS = """
async () => {
  const out = [];
  for (const pc of [window.client.sendPc, window.client.recvPc]) {
    if (!pc) continue;
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        pair = stats.get(s.selectedCandidatePairId);
      }
    });
    const local = pair ? stats.get(pair.localCandidateId) : null;
    const remote = pair ? stats.get(pair.remoteCandidateId) : null;
    out.push({type: local?.candidateType ?? null, protocol: local?.protocol ?? null,
              relayProtocol: local?.relayProtocol ?? null,
              remoteProtocol: remote?.protocol ?? null});
  }
  return out;
}
"""


def server_paths(h: Harness, room_id: str) -> list[tuple[str | None, Any]]:
    """(protocol, remote address) of every WebRTC transport of the room, as the server sees it."""
    room = h.server.rooms[room_id]
    return [
        (transport.ice_protocol, transport.plane.remote_address)
        for peer in room.peers.values()
        for transport in (peer.send_transport, peer.recv_transport)
        if transport is not None
    ]


async def two_pages(
    h: Harness, room: str, config: dict[str, Any] | None = None
) -> list[BrowserPeer]:
    alice = await h.new_peer("alice")
    await alice.join(h.http_url, room, rtc_configuration=config)
    bob = await h.new_peer("bob")
    await bob.join(h.http_url, room, rtc_configuration=config)
    await asyncio.gather(expect_media(alice, [bob]), expect_media(bob, [alice]))
    return [alice, bob]


def test_pages_that_cannot_send_udp_join_over_ice_tcp_and_media_decodes_both_ways() -> None:
    async def body() -> None:
        async with harness(extra_args=NO_UDP) as h:
            pages = await two_pages(h, "tcp")
            paths = server_paths(h, "tcp")
            assert {protocol for protocol, _ in paths} == {"tcp"}, paths
            for page in pages:
                for path in await page.eval(PATH_JS):
                    # an active TCP candidate learns its port from our binding response
                    assert path["type"] in ("host", "prflx"), path
                    assert path["protocol"] == "tcp" and path["remoteProtocol"] == "tcp", path
            worker = h.server.workers[0]
            assert worker.tcp_port and len(worker.tcp_connections) >= 2
            assert worker.plane is not None and worker.plane.tcp_bad_frames == 0

    run(body)


@pytest.mark.parametrize("scheme", ["turn-tcp", "turns"])
def test_relay_only_pages_join_through_coturn_over_tcp_and_tls(scheme: str) -> None:
    """iceTransportPolicy 'relay' with a single TURN URL: TURN over TCP, or over TLS (the
    fixture's self-signed certificate, hence --ignore-certificate-errors); the credentials are
    the ones the server handed out in the join result."""
    with coturn() as turnserver:
        url = (
            f"turn:127.0.0.1:{turnserver.port}?transport=tcp"
            if scheme == "turn-tcp"
            else f"turns:localhost:{turnserver.tls_port}?transport=tcp"
        )
        config = ServerConfig(
            port=0, turn=TurnConfig(urls=(url,), secret=turnserver.secret, ttl=600)
        )

        async def body() -> None:
            args = ("--ignore-certificate-errors",) if scheme == "turns" else ()
            async with harness(config, extra_args=args) as h:
                pages = await two_pages(h, "relay", {"iceTransportPolicy": "relay"})
                for protocol, (host, port) in server_paths(h, "relay"):
                    assert protocol == "udp" and host == "127.0.0.1"
                    assert turnserver.min_port <= port <= turnserver.max_port, port
                expected = "tcp" if scheme == "turn-tcp" else "tls"
                for page in pages:
                    for path in await page.eval(PATH_JS):
                        assert path["type"] == "relay", path
                        assert path["relayProtocol"] == expected, path

        run(body)


@contextlib.asynccontextmanager
async def impaired_harness() -> AsyncIterator[tuple[Harness, ImpairedPath]]:
    """A harness and an impaired path in front of its worker's UDP port."""
    async with harness() as h:
        worker = h.server.workers[0]
        path = await ImpairedPath.start((worker.config.listen_ip, worker.port))
        try:
            yield h, path
        finally:
            path.close()


async def through(path: ImpairedPath, h: Harness, name: str) -> BrowserPeer:
    """A page whose UDP to the server goes through the impaired path (and has no TCP)."""
    peer = await h.new_peer(name)
    await peer.page.add_init_script(REWRITE_JS)
    await peer.page.goto(h.http_url + "/healthz")
    await peer.eval(
        "(relay) => { window.__relay = relay; }",
        {"serverPort": h.server.workers[0].port, "relayPort": path.port},
    )
    return peer


async def frames(peer: BrowserPeer, sender: BrowserPeer) -> tuple[int, int]:
    """(video frames decoded, audio samples received) of what peer receives from sender."""
    sample = await peer.sample()
    tracks = sample.get(sender.peer_id) or {}
    video = (tracks.get("video") or {}).get("inbound") or {}
    audio = (tracks.get("audio") or {}).get("inbound") or {}
    return int(video.get("framesDecoded") or 0), int(audio.get("totalSamplesReceived") or 0)


async def resumed(peer: BrowserPeer, sender: BrowserPeer, limit: float) -> float:
    """Seconds until peer decodes new video and audio from sender."""
    start = time.monotonic()
    video0, audio0 = await frames(peer, sender)
    while True:
        video, audio = await frames(peer, sender)
        if video > video0 + 2 and audio > audio0:
            return time.monotonic() - start
        if time.monotonic() - start > limit:
            raise AssertionError(f"{peer.name}: media from {sender.name} did not resume")
        await asyncio.sleep(0.05)


def test_a_network_change_mid_visit_is_survived_by_ice_restart_without_a_new_join() -> None:
    async def body() -> None:
        async with impaired_harness() as (h, path):
            client = await through(path, h, "client")
            await client.join(h.http_url, "visit")
            nurse = await h.new_peer("nurse")
            await nurse.join(h.http_url, "visit")
            await asyncio.gather(expect_media(client, [nurse]), expect_media(nurse, [client]))
            peer_ids = set(h.server.rooms["visit"].peers)
            # the client's network changes: its addresses go dark, new ones would pass
            cut = time.monotonic()
            assert path.block_current() >= 2
            restart = await poll_restart(client)
            detected = time.monotonic() - cut
            restarted = time.monotonic()
            waits = await asyncio.gather(resumed(client, nurse, 10), resumed(nurse, client, 10))
            recovery = time.monotonic() - restarted
            print(f"ICE restart: detected {detected:.2f} s after the cut ({restart}), "
                  f"media both ways {recovery:.2f} s after the restart")  # fmt: skip
            assert recovery <= 2.0, (detected, waits)
            assert set(h.server.rooms["visit"].peers) == peer_ids
            # the nurse joined after the client: any peerJoined or peerLeft would be news
            events = await nurse.eval("() => window.events.map((e) => e[0])")
            assert "peerLeft" not in events and "peerJoined" not in events, events
            events = await client.eval("() => window.events.map((e) => e[0])")
            assert events.count("peerJoined") == 1 and "peerLeft" not in events, events
            assert "disconnected" not in events and "close" not in events, events
            client_peer = h.server.rooms["visit"].peers[client.peer_id]
            restarts = await client.eval(
                "() => window.events.filter((e) => e[0] === 'iceRestart').map((e) => e[1])"
            )
            print(f"restarts: {restarts}")
            assert client_peer.send_transport.ice_restarts == len(restarts)
            assert client_peer.recv_transport is not None
            assert client_peer.recv_transport.ice_restarts == len(restarts)

    run(body)


async def poll_restart(peer: BrowserPeer, limit: float = 15.0) -> str:
    """Wait for the page's client to restart ICE by itself; the reason it gave."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = await peer.eval(
            "() => (window.events.find((e) => e[0] === 'iceRestart') || [null, null])[1]"
        )
        if found:
            return str(found["reason"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"{peer.name}: no ICE restart within {limit} s of the network change")


# what a page receives from one sender, per kind: the inbound-rtp numbers the assertions use
INBOUND_JS = """
async (senderId) => {
  const out = {};
  for (const {track, info} of window.client.tracks) {
    if (info.peerId !== senderId) continue;
    const receiver = window.client.recvPc.getReceivers().find((r) => r.track === track);
    if (!receiver) continue;
    (await receiver.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      out[track.kind] = {
        framesDecoded: s.framesDecoded ?? 0, frameWidth: s.frameWidth ?? 0,
        freezeCount: s.freezeCount ?? 0, nackCount: s.nackCount ?? 0,
        packetsReceived: s.packetsReceived ?? 0, packetsLost: s.packetsLost ?? 0,
        totalSamplesReceived: s.totalSamplesReceived ?? 0,
        concealedSamples: s.concealedSamples ?? 0,
      };
    });
  }
  return out;
}
"""


async def inbound(peer: BrowserPeer, sender: BrowserPeer) -> dict[str, dict[str, float]]:
    result: dict[str, dict[str, float]] = await peer.eval(INBOUND_JS, sender.peer_id)
    return result


def delta(after: dict[str, dict[str, float]], before: dict[str, dict[str, float]], kind: str,
          key: str) -> float:  # fmt: skip
    return after[kind][key] - before[kind][key]


@pytest.mark.parametrize("loss", [0.05, 0.15])
def test_media_under_loss_and_delay_against_a_clean_page_in_the_same_room(loss: float) -> None:
    """A subscriber behind `loss` random loss both ways and 80 ± 20 ms of delay, beside a clean
    subscriber of the same publisher, over the same 8 s: at 5% it decodes at least 80% of the
    clean page's frames, NACKs and the server's retransmissions repair; at 15% audio keeps
    flowing."""

    async def body() -> None:
        async with impaired_harness() as (h, path):
            nurse = await h.new_peer("nurse")
            await nurse.join(h.http_url, "lossy")
            clean = await h.new_peer("clean")
            await clean.join(h.http_url, "lossy", publish=False)
            lossy = await through(path, h, "lossy")
            await lossy.join(h.http_url, "lossy", publish=False)
            await asyncio.gather(expect_media(clean, [nurse]), expect_media(lossy, [nurse]))
            for rule in (path.up, path.down):
                rule.loss, rule.delay, rule.jitter = loss, 0.080, 0.020
            await asyncio.sleep(2)  # past the first repairs and the jitter buffer's growth
            before = await asyncio.gather(inbound(clean, nurse), inbound(lossy, nurse))
            await asyncio.sleep(8)
            after = await asyncio.gather(inbound(clean, nurse), inbound(lossy, nurse))
            clean_frames = delta(after[0], before[0], "video", "framesDecoded")
            lossy_frames = delta(after[1], before[1], "video", "framesDecoded")
            lossy_audio = delta(after[1], before[1], "audio", "packetsReceived")
            clean_audio = delta(after[0], before[0], "audio", "packetsReceived")
            nacks = delta(after[1], before[1], "video", "nackCount")
            samples = delta(after[1], before[1], "audio", "totalSamplesReceived")
            concealed = delta(after[1], before[1], "audio", "concealedSamples") / max(samples, 1)
            red_in = sum(
                p.stream.red_packets
                for p in h.server.rooms["lossy"].router.producers.values()
                if p.kind == "audio"
            )
            retransmitted = sum(
                c.plane.retransmitted
                for p in h.server.rooms["lossy"].peers.values()
                if p.id == lossy.peer_id and p.recv_transport is not None
                for c in p.recv_transport.consumers.values()
            )
            lossy_transport = h.server.rooms["lossy"].peers[lossy.peer_id].recv_transport
            assert lossy_transport is not None
            bwe = lossy_transport.estimator
            assert bwe is not None, "Chromium negotiates transport-cc"
            print(f"loss {loss:.0%}: video {lossy_frames:.0f}/{clean_frames:.0f} frames, "
                  f"audio {lossy_audio:.0f}/{clean_audio:.0f} packets, {nacks:.0f} NACKs, "
                  f"{retransmitted} retransmitted, dropped up {path.up.lost} "
                  f"down {path.down.lost}; estimate {bwe.estimate / 1000:.0f} kbit/s "
                  f"(loss {bwe.loss_fraction:.1%}, {bwe.overuses} overuses); audio "
                  f"concealed {concealed:.1%} with {red_in} RED packets in")  # fmt: skip
            assert path.down.lost > 0 and path.up.lost > 0
            assert nacks > 0 and retransmitted > 0
            assert clean_frames > 50
            if loss <= 0.05:
                assert lossy_frames >= 0.8 * clean_frames, (lossy_frames, clean_frames)
            else:
                # speech goes on: most audio packets arrive (FEC and RED cover the rest)
                assert lossy_audio >= 0.75 * clean_audio, (lossy_audio, clean_audio)
                assert lossy_frames > 0

    run(body)


PUBLISH_SIMULCAST_JS = """
async () => {
  const local = await navigator.mediaDevices.getUserMedia(
      {audio: true, video: {width: 1280, height: 720, frameRate: 15}});
  window.local = local;
  return await window.client.publish(local, {simulcast: true});
}
"""


def video_layer(h: Harness, room: str, page: BrowserPeer) -> int | None:
    """The simulcast layer the server forwards to page's video consumer now."""
    peer = h.server.rooms[room].peers[page.peer_id]
    if peer.recv_transport is None:
        return None
    for consumer in peer.recv_transport.consumers.values():
        if consumer.kind == "video":
            return consumer.current_layer()
    return None


async def until_layer(
    h: Harness, room: str, page: BrowserPeer, check: Any, limit: float, what: str
) -> float:
    start = time.monotonic()
    while not check(video_layer(h, room, page)):
        if time.monotonic() - start > limit:
            raise AssertionError(
                f"{page.name}: {what} not within {limit} s (layer {video_layer(h, room, page)})"
            )
        await asyncio.sleep(0.1)
    return time.monotonic() - start


def test_a_capped_downlink_moves_that_subscriber_down_a_layer_and_back_up_when_lifted() -> None:
    """A simulcast publisher, a subscriber whose downlink is capped at 400 kbit/s and one that
    is not: within 5 s the capped one is on a lower layer with at most 2 freezes, the other
    keeps the top layer; 10 s after the cap lifts the capped one is on the top layer again."""

    async def body() -> None:
        async with impaired_harness() as (h, path):
            nurse = await h.new_peer("nurse")
            await nurse.join(h.http_url, "cap", publish=False)
            await nurse.eval(PUBLISH_SIMULCAST_JS)
            free = await h.new_peer("free")
            await free.join(h.http_url, "cap", publish=False)
            capped = await through(path, h, "capped")
            await capped.join(h.http_url, "cap", publish=False)
            for page in (free, capped):
                await until_layer(h, "cap", page, lambda layer: layer == 2, 20, "top layer")
            before = await inbound(capped, nurse)
            path.down.rate = 400_000
            path.down.queue = 0.3
            down_in = await until_layer(
                h, "cap", capped, lambda layer: layer is not None and layer < 2, 5, "down"
            )
            await asyncio.sleep(5)
            capped_layer = video_layer(h, "cap", capped)
            after = await inbound(capped, nurse)
            freezes = delta(after, before, "video", "freezeCount")
            free_layer = video_layer(h, "cap", free)
            capped_transport = h.server.rooms["cap"].peers[capped.peer_id].recv_transport
            assert capped_transport is not None
            bwe = capped_transport.estimator
            assert bwe is not None, "Chromium negotiates transport-cc"
            capped_estimate = bwe.estimate
            path.down.rate = 0
            up_in = await until_layer(h, "cap", capped, lambda layer: layer == 2, 10, "up")
            print(f"cap 400 kbit/s: down a layer in {down_in:.1f} s (to {capped_layer}), "
                  f"{freezes:.0f} freezes, the free page on {free_layer}; "
                  f"back on top {up_in:.1f} s after the cap lifted; "
                  f"{path.down.overflowed} dropped at the cap; estimate under the cap "
                  f"{capped_estimate / 1000:.0f} kbit/s, {bwe.overuses} overuses, "
                  f"{bwe.probes} probes")  # fmt: skip
            assert capped_layer is not None and capped_layer < 2
            assert capped_estimate < 450_000 and bwe.overuses >= 1
            assert freezes <= 2, freezes
            assert free_layer == 2

    run(body)


def test_a_downlink_too_thin_for_video_pauses_the_video_and_keeps_the_audio() -> None:
    """A subscriber capped at 200 kbit/s (Opus with RED takes about 100, headers included):
    its estimate cannot carry the video beside the audio, so the server pauses that
    subscriber's video (not the audio, which keeps arriving in full); when the cap lifts, a
    probe finds room and the video resumes."""

    async def body() -> None:
        async with impaired_harness() as (h, path):
            nurse = await h.new_peer("nurse")
            await nurse.join(h.http_url, "thin")
            thin = await through(path, h, "thin")
            await thin.join(h.http_url, "thin", publish=False)
            await expect_media(thin, [nurse])
            transport = h.server.rooms["thin"].peers[thin.peer_id].recv_transport
            assert transport is not None
            video = next(c for c in transport.consumers.values() if c.kind == "video")
            path.down.rate = 200_000
            path.down.queue = 0.3
            start = time.monotonic()
            while not video.bwe_paused:
                assert time.monotonic() - start < 10, "the video was not paused"
                await asyncio.sleep(0.1)
            paused_in = time.monotonic() - start
            await asyncio.sleep(1)
            before = await inbound(thin, nurse)
            await asyncio.sleep(4)
            after = await inbound(thin, nurse)
            assert transport.estimator is not None
            paused_estimate = transport.estimator.estimate
            audio = delta(after, before, "audio", "packetsReceived")
            frames = delta(after, before, "video", "framesDecoded")
            path.down.rate = 0
            start = time.monotonic()
            while video.bwe_paused:
                assert time.monotonic() - start < 15, "the video did not resume"
                await asyncio.sleep(0.1)
            resumed_in = time.monotonic() - start
            resumed_frames = await resumed(thin, nurse, 10)
            print(f"cap 200 kbit/s: video paused {paused_in:.1f} s after the cap, audio "
                  f"{audio / 4:.0f} packets/s and {frames:.0f} video frames in 4 s while paused; "
                  f"resumed {resumed_in:.1f} s after the cap lifted, decoding "
                  f"{resumed_frames:.1f} s later; estimate while paused "
                  f"{paused_estimate / 1000:.0f} kbit/s")  # fmt: skip
            assert audio >= 0.8 * 50 * 4, audio  # Opus at 20 ms: 50 packets/s
            assert frames <= 2

    run(body)
