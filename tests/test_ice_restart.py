"""ICE restart on the server (RFC 8445 9): new local credentials, the old ones no longer answered,
the peer's new ones accepted only for a restart, media and DTLS kept, the path moved by a
nominating check on the new credentials. (The browser side is in e2e/test_networks_browser.py;
aiortc cannot restart ICE.)"""

from __future__ import annotations

import asyncio

import pytest
from aioice import stun
from sfu_support import Harness, PatternTrack, wait_for

from mediasrv.sdp.negotiation import NegotiationError, RemoteParameters
from mediasrv.webrtc_transport import WebRtcTransport

FINGERPRINT = [("sha-256", ":".join(["AB"] * 32))]


def remote(ufrag: str) -> RemoteParameters:
    return RemoteParameters(ufrag, "p" * 24, FINGERPRINT, "active")


def binding(transport: WebRtcTransport, ufrag: str, *, nominate: bool) -> bytes:
    message = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    peer_ufrag = transport.remote.ice_ufrag if transport.remote else "x"
    message.attributes["USERNAME"] = f"{ufrag}:{peer_ufrag}"
    message.attributes["PRIORITY"] = 1
    message.attributes["ICE-CONTROLLING"] = 1
    if nominate:
        message.attributes["USE-CANDIDATE"] = None
    message.add_message_integrity(transport.ice_pwd.encode())
    message.add_fingerprint()
    return bytes(message)


def test_restart_gives_new_credentials_and_moves_the_path_only_on_a_nominating_check() -> None:
    async def main() -> None:
        async with Harness() as h:
            worker = h.server.workers[0]
            router = worker.create_router()
            transport = router.create_webrtc_transport()
            transport.set_remote(remote("aaaa"), local_setup="passive")
            old_ufrag = transport.ice_ufrag
            worker.on_stun(binding(transport, old_ufrag, nominate=True), ("127.0.0.1", 50001))
            assert transport.ice_state == "connected"
            assert transport.plane.remote_address == ("127.0.0.1", 50001)
            # credentials may not change without a restart
            with pytest.raises(NegotiationError, match="without an ICE restart"):
                transport.set_remote(remote("bbbb"), local_setup="passive")
            transport.restart_ice()
            assert transport.restart_pending and transport.ice_ufrag != old_ufrag
            transport.restart_ice()  # a second request while pending: the same restart
            new_ufrag = transport.ice_ufrag
            # the answer to an offer made before the restart still has the old credentials
            transport.set_remote(remote("aaaa"), local_setup="passive")
            assert transport.restart_pending
            transport.set_remote(remote("bbbb"), local_setup="passive")
            assert not transport.restart_pending and transport.ice_restarts == 1
            # checks on the old credentials are no longer answered
            drops = worker.drops["stun_unknown_ufrag"]
            worker.on_stun(binding(transport, old_ufrag, nominate=True), ("127.0.0.1", 50009))
            assert worker.drops["stun_unknown_ufrag"] == drops + 1
            assert transport.plane.remote_address == ("127.0.0.1", 50001)
            # a check on the new path keeps media where it is until it nominates
            worker.on_stun(binding(transport, new_ufrag, nominate=False), ("127.0.0.1", 50002))
            assert transport.plane.remote_address == ("127.0.0.1", 50001)
            worker.on_stun(binding(transport, new_ufrag, nominate=True), ("127.0.0.1", 50002))
            assert transport.plane.remote_address == ("127.0.0.1", 50002)
            assert transport.ice_state == "connected" and not transport.closed
            router.close()

    asyncio.run(main())


def test_a_peer_restarting_on_its_offer_gets_an_answer_with_new_credentials() -> None:
    """The publish path: the client's offer carries new ICE credentials (restartIce() in a
    browser); the server answers with new ones of its own and keeps its producers."""

    async def main() -> None:
        async with Harness() as h:
            client = await h.client()
            peer = h.server.rooms["r"].peers[client.peer_id]
            transport = peer.send_transport
            offer = client.send_pc.localDescription.sdp
            before = transport.ice_ufrag
            old_remote = transport.remote
            assert old_remote is not None
            restarted = offer.replace(
                f"a=ice-ufrag:{old_remote.ice_ufrag}", "a=ice-ufrag:newU"
            ).replace(f"a=ice-pwd:{old_remote.ice_pwd}", "a=ice-pwd:" + "n" * 24)
            result = peer.publish(restarted)
            assert transport.ice_ufrag != before
            assert f"a=ice-ufrag:{transport.ice_ufrag}" in result["sdp"]
            assert transport.ice_restarts == 1 and not transport.closed
            # the same offer again: no second restart
            peer.publish(restarted)
            assert transport.ice_restarts == 1

    asyncio.run(main())


def test_restart_ice_over_signaling_reoffers_the_receive_transport_with_new_credentials() -> None:
    async def main() -> None:
        async with Harness() as h:
            client = await h.client()
            counter = h.counter(client)
            peer = h.server.rooms["r"].peers[client.peer_id]
            assert await client.request("restartIce") == {"receive": False}  # nothing to receive
            publisher = await h.client()
            await publisher.publish([PatternTrack()])
            await wait_for(lambda: counter.frames["video"] >= 10, 15, "frames")
            transport = peer.recv_transport
            assert transport is not None
            before = transport.ice_ufrag
            assert await client.request("restartIce") == {"receive": True}
            assert transport.ice_ufrag != before and transport.restart_pending
            # aiortc answers the new offer with its old credentials (it cannot restart): the
            # restart stays pending and media goes on over the path it has
            seen = counter.frames["video"]
            await wait_for(lambda: counter.frames["video"] >= seen + 20, 10, "frames go on")
            assert transport.restart_pending and not transport.closed

    asyncio.run(main())
