"""TURN with a real coturn: the server hands out short-lived TURN REST API credentials in the
join result ([turn] in the config), coturn accepts them until they expire, aiortc peers that may
use nothing but relayed candidates join through it over UDP and TCP, and the secret is never
logged."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Any

import pytest
from aioice import stun, turn
from sfu_support import Harness, PatternTrack, ToneTrack, wait_for
from turn_support import Coturn, coturn

from mediasrv.config import ServerConfig, TurnConfig
from mediasrv.config_file import ConfigError, config_from_dict
from mediasrv.turn_credentials import ice_servers, turn_password


@pytest.fixture(scope="module")
def turnserver() -> Any:
    with coturn() as server:
        yield server


class Sink(asyncio.DatagramProtocol):
    pass


async def allocate(
    server: Coturn, username: str, password: str, transport: str = "udp"
) -> tuple[str, int]:
    """A TURN allocation with these credentials: the relayed address (TransactionFailed with
    the error code when refused)."""
    context = None
    address = ("127.0.0.1", server.port)
    if transport == "tls":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the fixture's self-signed certificate
        address = ("127.0.0.1", server.tls_port)
    endpoint, _ = await turn.create_turn_endpoint(
        Sink,
        address,
        username,
        password,
        ssl=context,
        transport="tcp" if transport == "tls" else transport,
    )
    try:
        relayed = endpoint.get_extra_info("sockname")
        return str(relayed[0]), int(relayed[1])
    finally:
        endpoint.close()
        await asyncio.sleep(0.05)


def test_credentials_follow_the_turn_rest_scheme_and_expire_after_ttl() -> None:
    config = TurnConfig(
        urls=("turn:turn.example:3478?transport=udp", "turns:turn.example:5349", "stun:s.example"),
        secret="s" * 20,
        ttl=600,
    )
    servers = ice_servers(config, "0123abcd", now=1_000_000)
    assert servers == [
        {
            "urls": ["turn:turn.example:3478?transport=udp", "turns:turn.example:5349"],
            "username": "1000600:0123abcd",
            "credential": turn_password("s" * 20, "1000600:0123abcd"),
        },
        {"urls": ["stun:s.example"]},
    ]
    assert ice_servers(TurnConfig(), "0123abcd") == []
    with pytest.raises(ValueError, match="subject"):
        ice_servers(config, "a:b")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"urls": ["http://x"], "secret": "s" * 20}, "turn.urls: 'http://x' is not"),
        ({"urls": ["turn:x?transport=sctp"], "secret": "s" * 20}, "is not turn:host"),
        ({"urls": ["turn:x:3478"], "secret": "short"}, "turn.secret: at least 16"),
        ({"urls": ["turn:x:3478"], "secret": "s" * 20, "ttl": 10}, "turn.ttl: 10 is outside"),
        ({"urls": "turn:x"}, "turn.urls: expected a list"),
        ({"urls": ["turn:x"], "secret": "s" * 20, "colour": 1}, "turn.colour: unknown key"),
    ],
)
def test_a_bad_turn_section_is_refused_naming_the_key(table: dict[str, Any], message: str) -> None:
    data: dict[str, Any] = {"turn": table}
    if table.get("urls") == "turn:x":
        data = {"turn": {"urls": 5}}
    with pytest.raises(ConfigError, match=message.replace("?", r"\?").replace("(", r"\(")):
        config_from_dict(data)


def test_the_secret_is_not_in_the_config_repr() -> None:
    config = config_from_dict(
        {"turn": {"urls": ["turn:127.0.0.1:3478"], "secret": "never-show-this-secret"}}
    )
    assert config.turn.secret == "never-show-this-secret"
    assert "never-show-this-secret" not in repr(config)


def test_coturn_accepts_a_handed_out_credential_and_refuses_an_expired_or_forged_one(
    turnserver: Coturn,
) -> None:
    config = TurnConfig(urls=turnserver.urls, secret=turnserver.secret, ttl=60)

    async def main() -> None:
        [relay] = ice_servers(config, "peer1")
        for transport in ("udp", "tcp", "tls"):
            host, port = await allocate(
                turnserver, relay["username"], relay["credential"], transport
            )
            assert host == "127.0.0.1" and turnserver.min_port <= port <= turnserver.max_port
        # issued 61 s ago with a 60 s lifetime: expired
        [old] = ice_servers(config, "peer1", now=time.time() - 61)
        with pytest.raises(stun.TransactionFailed, match="401"):
            await allocate(turnserver, old["username"], old["credential"])
        forged = TurnConfig(urls=turnserver.urls, secret="another-secret-entirely", ttl=60)
        [bad] = ice_servers(forged, "peer1")
        with pytest.raises(stun.TransactionFailed, match="401"):
            await allocate(turnserver, bad["username"], bad["credential"])

    asyncio.run(main())


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_relay_only_peers_join_through_coturn_and_media_flows(
    turnserver: Coturn, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    """aiortc peers that gather nothing but relayed candidates (TURN over UDP, then TCP): the
    server sees them at coturn's relayed addresses, media decodes, the secret is not logged."""
    url = f"turn:127.0.0.1:{turnserver.port}?transport={transport}"
    config = TurnConfig(urls=(url,), secret=turnserver.secret, ttl=600)

    async def main() -> None:
        async with Harness(turn=config, log_level="debug") as h:
            publisher = await h.client(relay_only=True)
            await publisher.publish([PatternTrack(), ToneTrack()])
            counter = h.counter(await h.client(relay_only=True))
            await wait_for(
                lambda: counter.frames["video"] >= 20 and counter.frames["audio"] >= 20,
                20,
                "media through the relay",
            )
            seen: list[tuple[str, int]] = []
            for peer in h.server.rooms["r"].peers.values():
                for transport_ in (peer.send_transport, peer.recv_transport):
                    if transport_ is not None and transport_.plane.remote_address is not None:
                        host, port = transport_.plane.remote_address
                        seen.append((host, port))
            assert len(seen) == 3
            for host, port in seen:
                assert host == "127.0.0.1"
                assert turnserver.min_port <= port <= turnserver.max_port, (port, seen)

    with caplog.at_level(logging.DEBUG):
        asyncio.run(main())
    assert turnserver.secret not in caplog.text
    assert ServerConfig(turn=config).turn.secret not in repr(ServerConfig(turn=config))
