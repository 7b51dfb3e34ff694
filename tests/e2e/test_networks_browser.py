"""Real networks in Chromium: pages that cannot use UDP join over ICE-TCP (RFC 6544) and, with a
relay-only policy, over TURN/TCP and TURN/TLS through a real coturn; media decodes both ways."""

from __future__ import annotations

import asyncio

from test_browser import expect_media, harness, run

# Chromium's WebRTC IP handling policy that sends no UDP except through a proxy: what a page
# behind a firewall that blocks UDP can do (only TCP candidates are gathered)
NO_UDP = ("--webrtc-ip-handling-policy=disable_non_proxied_udp",)


def test_pages_that_cannot_send_udp_join_over_ice_tcp_and_media_decodes_both_ways() -> None:
    async def body() -> None:
        async with harness(extra_args=NO_UDP) as h:
            alice = await h.new_peer("alice")
            await alice.join(h.http_url, "tcp")
            bob = await h.new_peer("bob")
            await bob.join(h.http_url, "tcp")
            await asyncio.gather(expect_media(alice, [bob]), expect_media(bob, [alice]))
            room = h.server.rooms["tcp"]
            protocols = {
                transport.ice_protocol
                for peer in room.peers.values()
                for transport in (peer.send_transport, peer.recv_transport)
                if transport is not None
            }
            assert protocols == {"tcp"}, protocols
            worker = h.server.workers[0]
            assert worker.tcp_port and len(worker.tcp_connections) >= 2
            assert worker.plane is not None and worker.plane.tcp_bad_frames == 0

    run(body)
