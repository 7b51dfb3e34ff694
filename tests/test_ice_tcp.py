"""ICE-TCP in the data plane (cext/tcp.pyx): RFC 4571 frames over real loopback TCP connections
dispatched like datagrams, a bounded send buffer per connection, and bad framing refused."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aioice import stun
from conftest import Run
from sfu_support import Harness, PatternTrack, wait_for
from test_plane import OUT_SSRC, SSRC, VIDEO_PT, vp8

from mediasrv import _core
from mediasrv.config import MediaConfig
from mediasrv.sdp.negotiation import TCP_PRIORITY, UDP_PRIORITY
from mediasrv.worker import TCP_KERNEL_SEND_BUFFER


@dataclass
class Handler:
    stun: list[tuple[bytes, Any]] = field(default_factory=list)
    dtls: list[bytes] = field(default_factory=list)
    rtcp: list[bytes] = field(default_factory=list)
    recovered: list[int] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)

    def on_stun(self, data: bytes, addr: tuple[str, int]) -> None:
        self.stun.append((data, addr))

    def on_stun_tcp(self, data: bytes, connection: _core.TcpConnection) -> None:
        self.stun.append((data, connection))

    def on_dtls(self, transport: Any, data: bytes) -> None:
        self.dtls.append(data)

    def on_rtcp(self, transport: Any, data: bytes) -> None:
        self.rtcp.append(data)

    def on_unknown_ssrc(self, transport: Any, ssrc: int, pt: int, packet: bytes) -> None:
        pass

    def on_tcp_recovered(self, transport: Any, dropped: int) -> None:
        self.recovered.append(dropped)

    def on_tcp_closed(self, connection: _core.TcpConnection, reason: str) -> None:
        self.closed.append(reason)


def frame(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


async def until(check: Callable[[], bool], limit: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


class TcpRig:
    """A plane with a plain publisher transport fed over UDP or TCP, and a listener whose
    accepted connections become TcpConnections (the worker's passive candidate)."""

    PUB = ("127.0.0.1", 50000)

    def __init__(self, *, send_buffer: int = 262144) -> None:
        self.handler = Handler()
        self.udp = _core.UdpBatchSocket("127.0.0.1", 0)
        self.plane = _core.WorkerPlane(self.udp, self.handler)
        self.pub = _core.PlaneTransport(self.plane, srtp=False)
        self.stream = _core.PlaneStream(
            self.pub, ssrc=SSRC, payload_type=VIDEO_PT, codec=_core.PlaneCodec.CODEC_VP8,
            clock_rate=90000, cache_size=256,
        )  # fmt: skip
        self.pub.add_stream(self.stream)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.send_buffer = send_buffer
        self.clients: list[socket.socket] = []

    async def connect(
        self, *, receive_buffer: int = 0
    ) -> tuple[socket.socket, _core.TcpConnection]:
        """A client connected to the listener, and the server side of it (with the kernel
        send buffer the worker gives its connections)."""
        loop = asyncio.get_running_loop()
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        client.connect(self.listener.getsockname())
        client.setblocking(False)
        self.clients.append(client)
        await until(lambda: self._ready())
        sock, _ = self.listener.accept()
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, TCP_KERNEL_SEND_BUFFER)
        connection = _core.TcpConnection(self.plane, sock, send_buffer=self.send_buffer)
        connection.start(loop)
        return client, connection

    def _ready(self) -> bool:
        import select

        return bool(select.select([self.listener], [], [], 0)[0])

    def subscribe(self, transport: _core.PlaneTransport) -> _core.PlaneConsumer:
        consumer = _core.PlaneConsumer(transport, self.stream, ssrc=OUT_SSRC, payload_type=100)
        self.stream.add_consumer(consumer)
        return consumer

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.listener.close()
        self.udp.close()


async def read_frames(client: socket.socket, count: int) -> list[bytes]:
    """count RFC 4571 frames from a client socket."""
    loop = asyncio.get_running_loop()
    data = b""
    frames: list[bytes] = []
    while len(frames) < count:
        chunk = await asyncio.wait_for(loop.sock_recv(client, 65536), 2.0)
        assert chunk, "the server closed the connection"
        data += chunk
        while len(data) >= 2 and len(data) >= 2 + struct.unpack("!H", data[:2])[0]:
            size = struct.unpack("!H", data[:2])[0]
            frames.append(data[2 : 2 + size])
            data = data[2 + size :]
    return frames


def test_media_forwarded_to_a_tcp_subscriber_arrives_framed_and_in_order(run: Run[None]) -> None:
    async def main() -> None:
        rig = TcpRig()
        try:
            rig.pub.set_remote_address(rig.PUB)
            client, connection = await rig.connect()
            sub = _core.PlaneTransport(rig.plane, srtp=False)
            sub.set_tcp_connection(connection)
            assert sub.protocol == "tcp" and connection.transport is sub
            assert sub.remote_address == client.getsockname()
            rig.subscribe(sub)
            rig.plane.feed(vp8(1, keyframe=True), rig.PUB)
            for seq in range(2, 41):
                rig.plane.feed(vp8(seq, start=False), rig.PUB)
            frames = await read_frames(client, 40)
            packets = [_core.RtpPacket.parse(f) for f in frames]
            assert [p.sequence_number for p in packets] == list(range(1, 41))
            assert {p.ssrc for p in packets} == {OUT_SSRC}
            assert connection.frames_out == 40 and sub.packets_out == 40
            assert connection.dropped_full == 0
        finally:
            rig.close()

    run(main())


def test_frames_from_a_tcp_publisher_split_and_coalesced_reach_a_udp_subscriber(
    run: Run[None],
) -> None:
    async def main() -> None:
        rig = TcpRig()
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        sink.setblocking(False)
        try:
            client, connection = await rig.connect()
            rig.pub.set_tcp_connection(connection)
            sub = _core.PlaneTransport(rig.plane, srtp=False)
            sub.set_remote_address(sink.getsockname())
            rig.subscribe(sub)
            stream = b"".join(frame(vp8(seq, keyframe=seq == 1)) for seq in range(1, 31))
            # one frame cut in three writes, then the rest coalesced in one write
            first = frame(vp8(1, keyframe=True))
            client.sendall(first[:1])
            await asyncio.sleep(0.02)
            client.sendall(first[1:7])
            await asyncio.sleep(0.02)
            client.sendall(stream[7:])
            loop = asyncio.get_running_loop()
            got = []
            for _ in range(30):
                data = await asyncio.wait_for(loop.sock_recv(sink, 2048), 2)
                got.append(_core.RtpPacket.parse(data).sequence_number)
            assert got == list(range(1, 31))
            await until(lambda: connection.frames_in == 30)
            assert rig.pub.rtp_packets_in == 30
            assert rig.plane.received >= 30
        finally:
            sink.close()
            rig.close()

    run(main())


def test_stun_on_a_connection_reaches_the_handler_with_the_connection_and_is_answered_framed(
    run: Run[None],
) -> None:
    async def main() -> None:
        rig = TcpRig()
        try:
            client, connection = await rig.connect()
            request = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + b"t" * 12
            client.sendall(frame(request))
            await until(lambda: bool(rig.handler.stun))
            data, source = rig.handler.stun[0]
            assert data == request and source is connection
            assert connection.send_frame(b"\x01\x01\x00\x00\x21\x12\xa4\x42" + b"t" * 12)
            [reply] = await read_frames(client, 1)
            assert reply[:2] == b"\x01\x01"
            # DTLS and RTP before ICE has bound the connection are dropped, counted as not_ice
            client.sendall(frame(b"\x16\xfe\xfd" + b"\x00" * 20) + frame(vp8(5)))
            await until(lambda: connection.frames_in == 3)
            assert rig.handler.dtls == [] and rig.plane.dropped["not_ice"] == 2
        finally:
            rig.close()

    run(main())


def test_an_oversize_or_empty_frame_closes_only_that_connection(run: Run[None]) -> None:
    async def main() -> None:
        rig = TcpRig()
        try:
            bad, bad_connection = await rig.connect()
            empty, empty_connection = await rig.connect()
            good, good_connection = await rig.connect()
            rig.pub.set_tcp_connection(good_connection)
            sub = _core.PlaneTransport(rig.plane, srtp=False)
            sub.set_remote_address(rig.PUB)
            bad.sendall(struct.pack("!H", 60000) + b"x" * 100)
            empty.sendall(b"\x00\x00")
            await until(lambda: bad_connection.closed and empty_connection.closed)
            assert bad_connection.close_reason == "bad_frame"
            assert sorted(rig.handler.closed) == ["bad_frame", "bad_frame"]
            assert rig.plane.tcp_bad_frames == 2
            # the server end is closed: the client reads EOF
            assert await asyncio.wait_for(asyncio.get_running_loop().sock_recv(bad, 10), 2) == b""
            assert rig.plane.tcp_connections == 1
            good.sendall(frame(vp8(1, keyframe=True)))
            await until(lambda: rig.pub.rtp_packets_in == 1)
            assert not good_connection.closed
        finally:
            rig.close()

    run(main())


def test_a_frame_never_finished_or_a_connection_without_ice_expires(run: Run[None]) -> None:
    async def main() -> None:
        rig = TcpRig()
        try:
            slow, slow_connection = await rig.connect()
            _idle, idle_connection = await rig.connect()
            _bound, bound_connection = await rig.connect()
            rig.pub.set_tcp_connection(bound_connection)
            slow.sendall(struct.pack("!H", 500) + b"x" * 10)
            await until(lambda: slow_connection.bytes_in == 12)
            now = slow_connection.opened_ms
            limits = {"frame_timeout_ms": 5000, "ice_timeout_ms": 10000, "stalled_timeout_ms": 1}
            assert slow_connection.expire(now + 1000, **limits) is None
            assert idle_connection.expire(now + 1000, **limits) is None
            assert slow_connection.expire(now + 6000, **limits) == "frame_timeout"
            assert idle_connection.expire(now + 11000, **limits) == "ice_timeout"
            assert bound_connection.expire(now + 60000, **limits) is None
            assert slow_connection.closed and idle_connection.closed
            assert rig.handler.closed == ["frame_timeout", "ice_timeout"]
        finally:
            rig.close()

    run(main())


def test_a_reader_that_stalls_is_dropped_for_not_buffered_without_bound_and_recovers(
    run: Run[None],
) -> None:
    async def main() -> None:
        rig = TcpRig(send_buffer=32 * 1024)
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        try:
            rig.pub.set_remote_address(rig.PUB)
            client, connection = await rig.connect(receive_buffer=4096)
            slow = _core.PlaneTransport(rig.plane, srtp=False)
            slow.set_tcp_connection(connection)
            rig.subscribe(slow)
            fast = _core.PlaneTransport(rig.plane, srtp=False)
            fast.set_remote_address(sink.getsockname())
            rig.subscribe(fast)
            body = b"\x55" * 1100
            rig.plane.feed(vp8(1, keyframe=True, body=body), rig.PUB)
            for seq in range(2, 2001):
                rig.plane.feed(vp8(seq, start=False, body=body), rig.PUB)
                if seq % 100 == 0:
                    await asyncio.sleep(0)  # the loop runs, the client reads nothing
            assert connection.dropped_full > 1000
            assert rig.plane.tcp_send_dropped == connection.dropped_full
            assert connection.queued_bytes <= 32 * 1024
            assert not connection.closed
            # the UDP subscriber lost nothing
            assert fast.packets_out == 2000
            # the client reads again: the buffer drains and the handler hears of the drops
            loop = asyncio.get_running_loop()
            while not rig.handler.recovered:
                await asyncio.wait_for(loop.sock_recv(client, 65536), 2)
            assert rig.handler.recovered == [connection.dropped_full]
        finally:
            sink.close()
            rig.close()

    run(main())


def test_closing_the_transport_closes_its_connection_and_binding_udp_leaves_it(
    run: Run[None],
) -> None:
    async def main() -> None:
        rig = TcpRig()
        try:
            _client, connection = await rig.connect()
            sub = _core.PlaneTransport(rig.plane, srtp=False)
            sub.set_tcp_connection(connection)
            sub.set_remote_address(("127.0.0.1", 50001))
            assert sub.protocol == "udp" and connection.transport is None
            sub.set_tcp_connection(connection)
            other = _core.PlaneTransport(rig.plane, srtp=False)
            try:
                other.set_tcp_connection(connection)
            except ValueError as exc:
                assert "another transport" in str(exc)
            else:
                raise AssertionError("a connection was bound to two transports")
            sub.close()
            assert connection.closed and connection.close_reason == "transport_closed"
            assert rig.handler.closed == ["transport_closed"]
            assert rig.plane.tcp_connections == 0
        finally:
            rig.close()

    run(main())


def test_hostile_tcp_clients_are_closed_and_counted_while_media_flows_to_others() -> None:
    """A real server: garbage framing, an oversize frame, a frame never finished and a STUN
    request with a unknown username on the worker's ICE-TCP port; aiortc peers on UDP keep
    decoding, and /metrics names each refusal."""

    async def main() -> None:
        async with Harness() as h:
            worker = h.server.workers[0]
            assert worker.tcp_port, "the worker listens for ICE-TCP by default"
            publisher = await h.client()
            await publisher.publish([PatternTrack()])
            counter = h.counter(await h.client())
            await wait_for(lambda: counter.frames["video"] >= 10, 15, "first frames")
            loop = asyncio.get_running_loop()
            address = (worker.config.listen_ip, worker.tcp_port)

            async def connect() -> socket.socket:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
                return sock

            garbage, oversize, unfinished, stranger = [await connect() for _ in range(4)]
            await loop.sock_sendall(garbage, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await loop.sock_sendall(oversize, struct.pack("!H", 4000) + b"\x80" * 4000)
            await loop.sock_sendall(unfinished, struct.pack("!H", 200) + b"\x80" * 50)
            binding = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
            binding.attributes["USERNAME"] = "nobody:here"
            binding.add_message_integrity(b"x" * 22)
            binding.add_fingerprint()
            await loop.sock_sendall(stranger, frame(bytes(binding)))
            before = counter.frames["video"]
            await wait_for(
                lambda: worker.tcp_closed["bad_frame"] == 2, 5, "both bad framings refused"
            )
            await wait_for(
                lambda: worker.drops["stun_unknown_ufrag"] >= 1, 5, "the stranger's check"
            )
            # the unfinished frame is closed by the worker's sweep after TCP_FRAME_TIMEOUT_MS
            await wait_for(
                lambda: worker.tcp_closed["frame_timeout"] == 1, 10, "the unfinished frame"
            )
            for sock in (garbage, oversize, unfinished):
                assert await asyncio.wait_for(loop.sock_recv(sock, 16), 2) == b""
            stranger.close()
            await wait_for(lambda: counter.frames["video"] >= before + 30, 10, "frames go on")
            text = h.server.metrics_text().decode()
            assert 'mediasrv_ice_tcp_closed_total{reason="bad_frame"} 2.0' in text
            assert 'mediasrv_ice_tcp_closed_total{reason="frame_timeout"} 1.0' in text
            assert "mediasrv_ice_tcp_accepted_total 4.0" in text
            # the publisher's send transport, the subscriber's send (control channel) and
            # receive transports
            assert 'mediasrv_ice_transports{protocol="udp"} 3.0' in text
            assert 'mediasrv_ice_transports{protocol="tcp"} 0.0' in text

    asyncio.run(main())


def test_offers_carry_a_passive_tcp_candidate_below_udp_unless_ice_tcp_is_off() -> None:
    async def main() -> None:
        for ice_tcp in (True, False):
            async with Harness(media=MediaConfig(ice_tcp=ice_tcp)) as h:
                client = await h.client()
                sdp = client.send_pc.localDescription.sdp + client.send_pc.remoteDescription.sdp
                worker = h.server.workers[0]
                lines = [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
                tcp = [line for line in lines if " tcp " in line]
                if ice_tcp:
                    assert tcp == [
                        f"a=candidate:2 1 tcp {TCP_PRIORITY} 127.0.0.1 {worker.tcp_port} "
                        "typ host tcptype passive"
                    ]
                    assert TCP_PRIORITY < UDP_PRIORITY
                    assert worker.tcp_port == worker.port  # the same number, by default
                else:
                    assert tcp == [] and worker.tcp_port == 0 and worker.tcp_listener is None

    asyncio.run(main())
