"""Real media sources, a loss-injecting UDP relay and wait helpers for the SFU tests."""

from __future__ import annotations

import asyncio
import fractions
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from mediasrv.client import Client
from mediasrv.config import ServerConfig
from mediasrv.http.frontend import HttpFrontend
from mediasrv.media_server import MediaServer
from mediasrv.plugin import Plugin

VIDEO_WIDTH = 320
VIDEO_HEIGHT = 240


class PatternTrack(MediaStreamTrack):
    """30 fps video whose frames change every frame (so VP8 packets carry real data)."""

    kind = "video"

    def __init__(
        self, width: int = VIDEO_WIDTH, height: int = VIDEO_HEIGHT, noisy: bool = False
    ) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.noisy = noisy
        self._rng = np.random.default_rng(1)
        self._start: float | None = None
        self._count = 0

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        target = self._start + self._count / 30
        await asyncio.sleep(max(0.0, target - time.monotonic()))
        shade = (self._count * 7) % 200
        image = np.full((self.height, self.width, 3), shade, np.uint8)
        image[:, (self._count * 4) % self.width] = 255
        if self.noisy:  # hard to compress: many packets per frame
            h, w = self.height // 2, self.width // 2
            image[:h, :w] = self._rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self._count * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        self._count += 1
        return frame


class ToneTrack(MediaStreamTrack):
    """A 440 Hz tone at 48 kHz in 20 ms frames."""

    kind = "audio"

    def __init__(self, amplitude: float = 0.5) -> None:
        super().__init__()
        self.amplitude = amplitude
        self._start: float | None = None
        self._count = 0

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        target = self._start + self._count * 0.02
        await asyncio.sleep(max(0.0, target - time.monotonic()))
        t = (np.arange(960) + self._count * 960) / 48000
        samples = (np.sin(2 * math.pi * 440 * t) * self.amplitude * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self._count * 960
        frame.time_base = fractions.Fraction(1, 48000)
        self._count += 1
        return frame


class DecodeErrors(logging.Handler):
    """Counts aiortc's "failed to decode" warnings while installed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "failed to decode" in record.getMessage():
            self.count += 1

    def __enter__(self) -> DecodeErrors:
        logging.getLogger("aiortc.rtcrtpreceiver").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("aiortc.rtcrtpreceiver").removeHandler(self)


class FrameCounter:
    """Decodes every received track of a client and counts frames per kind."""

    def __init__(self, client: Client) -> None:
        self.frames: dict[str, int] = {"audio": 0, "video": 0}
        self.first_frame_at: dict[str, float] = {}
        self.track_at: dict[str, float] = {}
        self.sizes: set[tuple[int, int]] = set()
        self.last_size: tuple[int, int] | None = None
        self.ended: list[dict[str, Any]] = []
        self.infos: list[dict[str, Any]] = []
        self.max_gap: dict[str, float] = {"audio": 0.0, "video": 0.0}
        self._tasks: list[asyncio.Task[None]] = []
        for track, info in client.tracks:
            self._add(track, info)
        client.on("track", self._add)

    def _add(self, track: MediaStreamTrack, info: dict[str, Any]) -> None:
        self.infos.append(info)
        self.track_at.setdefault(track.kind, time.monotonic())
        self._tasks.append(asyncio.ensure_future(self._consume(track, info)))

    async def _consume(self, track: MediaStreamTrack, info: dict[str, Any]) -> None:
        last: float | None = None
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                self.ended.append(info)
                return
            now = time.monotonic()
            kind = track.kind
            self.frames[kind] += 1
            self.first_frame_at.setdefault(kind, now)
            if last is not None:
                self.max_gap[kind] = max(self.max_gap[kind], now - last)
            last = now
            if isinstance(frame, av.VideoFrame):
                self.sizes.add((frame.width, frame.height))
                self.last_size = (frame.width, frame.height)

    def reset_gaps(self) -> None:
        self.max_gap = {"audio": 0.0, "video": 0.0}

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def wait_for(predicate: Callable[[], bool], limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit} s waiting for {what}")
        await asyncio.sleep(0.05)


async def started_server(**kwargs: Any) -> MediaServer:
    server = MediaServer(ServerConfig(port=0, **kwargs))
    HttpFrontend(server)
    await server.start()
    return server


def ws_url(server: MediaServer) -> str:
    assert server.http_address is not None
    return f"ws://127.0.0.1:{server.http_address[1]}/ws"


class LossyRelay(asyncio.DatagramProtocol):
    """A UDP relay between one client and the server that drops a share of the server's RTP
    toward the client (RTCP, STUN and DTLS pass): loss on the subscriber's downlink."""

    def __init__(self, server_addr: tuple[str, int], loss: float, seed: int = 7) -> None:
        self.server_addr = server_addr
        self.loss = loss
        self.random = random.Random(seed)
        self.client_addr: tuple[str, int] | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.dropped = 0
        self.relayed = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's UDPTransport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        if addr == self.server_addr:
            if self.client_addr is None:
                return
            is_rtp = len(data) > 1 and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223
            if is_rtp and self.random.random() < self.loss:
                self.dropped += 1
                return
            self.relayed += 1
            self.transport.sendto(data, self.client_addr)
        else:
            self.client_addr = addr
            self.transport.sendto(data, self.server_addr)

    @classmethod
    async def start(cls, server_addr: tuple[str, int], loss: float) -> LossyRelay:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(
            lambda: cls(server_addr, loss), local_addr=("127.0.0.1", 0)
        )
        return protocol

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class RelayedClient(Client):
    """A client whose receive connection reaches the server through a relay: the server's
    offers are rewritten to name the relay's port as the server's candidate."""

    relay_port = 0
    server_port = 0

    async def _answer_offer(self, params: dict[str, Any]) -> None:
        if self.relay_port:
            params = dict(params)
            params["sdp"] = params["sdp"].replace(
                f" {self.server_port} typ host", f" {self.relay_port} typ host"
            )
        await super()._answer_offer(params)


Check = Callable[[], Awaitable[None]]


class Harness:
    """A started server and the clients and frame counters of one test, all closed at exit.

    async with Harness() as h:
        publisher = await h.client(display_name="nurse")
        counter = h.counter(await h.client())
    """

    def __init__(self, *, plugins: Sequence[type[Plugin]] = (), **server_config: Any) -> None:
        self._config = server_config
        self._plugins = plugins
        self.clients: list[Client] = []
        self.counters: list[FrameCounter] = []
        self._server: MediaServer | None = None

    @property
    def server(self) -> MediaServer:
        assert self._server is not None
        return self._server

    @property
    def url(self) -> str:
        return ws_url(self.server)

    async def __aenter__(self) -> Harness:
        self._server = MediaServer(ServerConfig(port=0, **self._config))
        HttpFrontend(self._server)
        for plugin in self._plugins:
            self._server.plugins.add(plugin)
        await self._server.start()
        return self

    async def client(
        self, room: str = "r", *, cls: type[Client] = Client, **options: Any
    ) -> Client:
        client = await cls.connect(self.url, token="t", room=room, **options)
        self.clients.append(client)
        return client

    def counter(self, client: Client) -> FrameCounter:
        counter = FrameCounter(client)
        self.counters.append(counter)
        return counter

    async def __aexit__(self, *exc: object) -> None:
        for counter in self.counters:
            await counter.close()
        for client in reversed(self.clients):
            await client.close()
        if self._server is not None:
            await self._server.close()
