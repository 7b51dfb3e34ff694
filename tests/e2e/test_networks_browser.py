"""Real networks in Chromium: pages that cannot use UDP join over ICE-TCP (RFC 6544) and, with a
relay-only policy, over TURN/TCP and TURN/TLS through a real coturn; media decodes both ways."""

from __future__ import annotations

import asyncio
import time
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
        async with harness() as h:
            worker = h.server.workers[0]
            path = await ImpairedPath.start((worker.config.listen_ip, worker.port))
            try:
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
                assert client_peer.send_transport.ice_restarts == 1
                assert client_peer.recv_transport is not None
                assert client_peer.recv_transport.ice_restarts == 1
            finally:
                path.close()

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
