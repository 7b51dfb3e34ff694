"""Real networks in Chromium: pages that cannot use UDP join over ICE-TCP (RFC 6544) and, with a
relay-only policy, over TURN/TCP and TURN/TLS through a real coturn; media decodes both ways."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
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
