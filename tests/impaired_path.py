"""A userspace network between test clients and the server, since this kernel has no netem: a UDP
relay that works like a NAT (each client source address gets its own upstream socket, so the
server sees one address per client ICE candidate) and impairs each direction by a schedule the
test changes while media flows: random loss, delay with jitter (packets may reorder, as on a
real path), a rate cap with a bounded queue (tail drop), and blocking the paths in use (a phone
leaving Wi-Fi: its old addresses go dark, new ones pass).

Pages reach it by rewriting the server's candidate in the descriptions they apply
(``REWRITE_JS``); aiortc clients by ``sfu_support.RelayedClient``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

Address = tuple[str, int]


@dataclass
class Impairment:
    """What one direction does to datagrams; change its fields at any time."""

    loss: float = 0.0  # share of datagrams dropped at random
    delay: float = 0.0  # seconds, mean one-way delay added
    jitter: float = 0.0  # seconds: the delay is uniform in delay ± jitter
    rate: float = 0.0  # bit/s the direction carries (0: no cap)
    queue: float = 0.25  # seconds of queue at the cap before datagrams are dropped
    only_rtp: bool = False  # loss applies to RTP only (STUN, DTLS and RTCP pass)
    # what happened, for the test's assertions
    passed: int = 0
    lost: int = 0
    overflowed: int = 0
    _free_at: float = 0.0  # when the capped link is done with what it has queued

    def clear(self) -> None:
        self.loss = self.delay = self.jitter = self.rate = 0.0


def is_rtp(data: bytes) -> bool:
    return len(data) > 1 and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223


class _Endpoint(asyncio.DatagramProtocol):
    """One of the relay's sockets: the listener clients send to, or the upstream socket of
    one client address (``client`` set) toward the server."""

    def __init__(self, on_datagram: Callable[[_Endpoint, bytes, Address], None],
                 client: Address | None = None) -> None:  # fmt: skip
        self.on_datagram = on_datagram
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.on_datagram(self, data, addr)


@dataclass
class ImpairedPath:
    """The relay: clients send to ``port``; the server sees the upstream sockets."""

    server: Address
    up: Impairment = field(default_factory=Impairment)  # client -> server
    down: Impairment = field(default_factory=Impairment)  # server -> client
    seed: int = 7
    blocked: set[Address] = field(default_factory=set)
    clients: dict[Address, _Endpoint] = field(default_factory=dict)
    _listener: _Endpoint | None = None
    _random: random.Random = field(default_factory=random.Random)

    @classmethod
    async def start(cls, server: Address, *, seed: int = 7) -> ImpairedPath:
        path = cls(server, seed=seed)
        path._random = random.Random(seed)
        loop = asyncio.get_running_loop()
        _, listener = await loop.create_datagram_endpoint(
            lambda: _Endpoint(lambda _e, data, addr: path._from_client(data, addr)),
            local_addr=("127.0.0.1", 0),
        )
        path._listener = listener
        return path

    @property
    def port(self) -> int:
        assert self._listener is not None and self._listener.transport is not None
        return int(self._listener.transport.get_extra_info("sockname")[1])

    def block_current(self) -> int:
        """Every client address seen so far goes dark both ways (its upstream socket closes);
        datagrams from new client addresses pass. The number of addresses blocked."""
        for client, upstream in list(self.clients.items()):
            self.blocked.add(client)
            if upstream.transport is not None:
                upstream.transport.close()
            del self.clients[client]
        return len(self.blocked)

    def close(self) -> None:
        for upstream in self.clients.values():
            if upstream.transport is not None:
                upstream.transport.close()
        self.clients.clear()
        if self._listener is not None and self._listener.transport is not None:
            self._listener.transport.close()

    # ---- forwarding ----

    def _from_client(self, data: bytes, client: Address) -> None:
        if client in self.blocked:
            return
        upstream = self.clients.get(client)
        if upstream is None:
            upstream = _Endpoint(lambda e, data, _addr: self._from_server(e, data), client)
            self.clients[client] = upstream
            asyncio.get_running_loop().create_task(self._open(upstream, data))
            return
        self._impair(self.up, data, lambda d: self._send_up(upstream, d))

    async def _open(self, upstream: _Endpoint, first: bytes) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(
            lambda: upstream, local_addr=("127.0.0.1", 0), remote_addr=self.server
        )
        self._impair(self.up, first, lambda d: self._send_up(upstream, d))

    def _send_up(self, upstream: _Endpoint, data: bytes) -> None:
        if upstream.transport is not None and not upstream.transport.is_closing():
            upstream.transport.sendto(data)

    def _from_server(self, upstream: _Endpoint, data: bytes) -> None:
        assert upstream.client is not None
        if upstream.client in self.blocked:
            return
        listener = self._listener
        assert listener is not None and listener.transport is not None
        out = listener.transport
        self._impair(self.down, data, lambda d: out.sendto(d, upstream.client))

    def _impair(self, rule: Impairment, data: bytes, send: object) -> None:
        assert callable(send)
        loop = asyncio.get_running_loop()
        if rule.loss and (not rule.only_rtp or is_rtp(data)) and self._random.random() < rule.loss:
            rule.lost += 1
            return
        now = loop.time()
        wait = 0.0
        if rule.rate:
            start = max(now, rule._free_at)
            if start - now > rule.queue:
                rule.overflowed += 1
                return
            rule._free_at = start + len(data) * 8 / rule.rate
            wait = rule._free_at - now
        if rule.delay or rule.jitter:
            wait += max(0.0, rule.delay + self._random.uniform(-rule.jitter, rule.jitter))
        rule.passed += 1
        if wait <= 0:
            send(data)
        else:
            loop.call_later(wait, send, data)


# Installed in a page before it joins: the server's UDP candidate in every description the page
# applies names the relay instead, and the TCP candidate is removed (so the page cannot go
# around the relay). window.__relay = {serverPort, relayPort} is set by the test.
REWRITE_JS = """
(() => {
  const original = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (description) {
    const relay = window.__relay;
    if (relay && description && description.sdp) {
      const sdp = description.sdp
        .split('\\r\\n')
        .filter((line) => !(line.startsWith('a=candidate:') && line.includes(' tcp ')))
        .join('\\r\\n')
        .replaceAll(` ${relay.serverPort} typ host`, ` ${relay.relayPort} typ host`);
      description = {type: description.type, sdp};
    }
    return original.call(this, description);
  };
})();
"""
