"""Batched UDP I/O (cext/udp.pyx): recvmmsg/sendmmsg batches and event loop delivery."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable, Iterator

import pytest
from conftest import Run
from hypothesis import given, settings
from hypothesis import strategies as st

from mediasrv._core import (
    SRTP_MAX_TRAILER_LEN,
    UDP_BATCH_MAX,
    UDP_DATAGRAM_MAX,
    UDP_RECV_MAX,
    UdpBatchSocket,
)

Datagram = tuple[bytes, tuple[str, int]]


def _ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


HOSTS = [
    pytest.param("127.0.0.1", id="ipv4"),
    pytest.param(
        "::1",
        id="ipv6",
        marks=pytest.mark.skipif(not _ipv6_loopback_available(), reason="no ::1"),
    ),
]


@pytest.fixture
def receiver() -> Iterator[UdpBatchSocket]:
    sock = UdpBatchSocket(recv_buffer=1 << 20)
    yield sock
    sock.close()


@pytest.fixture
def sender() -> Iterator[UdpBatchSocket]:
    sock = UdpBatchSocket()
    yield sock
    sock.close()


def payload(index: int, size: int) -> bytes:
    return bytes((index + i) % 251 for i in range(size))


def recv_all(sock: UdpBatchSocket, count: int) -> list[Datagram]:
    """Receive until count datagrams arrived; loopback delivers synchronously."""
    received: list[Datagram] = []
    for _ in range(count + 10):
        batch = sock.recv_batch()
        if not batch:
            break
        assert len(batch) <= UDP_BATCH_MAX
        received.extend(batch)
    return received


def test_constants() -> None:
    assert UDP_BATCH_MAX == 64
    assert UDP_DATAGRAM_MAX == 2048
    assert UDP_RECV_MAX == UDP_DATAGRAM_MAX - SRTP_MAX_TRAILER_LEN - 4


@pytest.mark.parametrize("host", HOSTS)
def test_send_batch_then_recv_batch(host: str) -> None:
    with UdpBatchSocket(host) as tx, UdpBatchSocket(host, recv_buffer=1 << 20) as rx:
        assert tx.local_address[0] == host
        assert tx.family == (socket.AF_INET6 if ":" in host else socket.AF_INET)
        sizes = [0, 1, 12, 172, 1200, UDP_RECV_MAX] + [(i * 97) % 1400 for i in range(194)]
        items = [(payload(i, size), rx.local_address) for i, size in enumerate(sizes)]
        assert tx.send_batch(items) == 200
        assert tx.datagrams_sent == 200
        assert tx.bytes_sent == sum(sizes)
        received = recv_all(rx, 200)
        assert [data for data, _ in received] == [data for data, _ in items]
        assert {source for _, source in received} == {tx.local_address}
        assert rx.datagrams_received == 200
        assert rx.bytes_received == sum(sizes)
        assert rx.recv_batch() == []


def test_recv_batch_max_count(sender: UdpBatchSocket, receiver: UdpBatchSocket) -> None:
    sender.send_batch([(bytes([i]), receiver.local_address) for i in range(10)])
    assert [data for data, _ in receiver.recv_batch(3)] == [b"\x00", b"\x01", b"\x02"]
    assert len(receiver.recv_batch()) == 7
    for bad in (0, UDP_BATCH_MAX + 1):
        with pytest.raises(ValueError, match="max_count"):
            receiver.recv_batch(bad)


def test_oversized_datagram_is_dropped_and_counted(receiver: UdpBatchSocket) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
        plain.sendto(b"x" * 3000, receiver.local_address)
        plain.sendto(b"y" * (UDP_RECV_MAX + 1), receiver.local_address)
        plain.sendto(b"z" * UDP_RECV_MAX, receiver.local_address)
        plain.sendto(b"after", receiver.local_address)
        received = recv_all(receiver, 2)
        assert [data for data, _ in received] == [b"z" * UDP_RECV_MAX, b"after"]
        assert received[0][1][1] == plain.getsockname()[1]
    assert receiver.truncated == 2
    assert receiver.datagrams_received == 2


def test_only_truncated_datagrams_give_an_empty_batch(receiver: UdpBatchSocket) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
        plain.sendto(b"x" * 3000, receiver.local_address)
    assert receiver.recv_batch() == []
    assert receiver.truncated == 1


def test_send_batch_checks_every_item_before_sending(
    sender: UdpBatchSocket, receiver: UdpBatchSocket
) -> None:
    good = (b"ok", receiver.local_address)
    too_big = (b"x" * (UDP_DATAGRAM_MAX + 1), receiver.local_address)
    for items in ([too_big], [good] * 100 + [too_big]):
        with pytest.raises(ValueError, match="exceeds UDP_DATAGRAM_MAX"):
            sender.send_batch(items)
    with pytest.raises(ValueError, match="not a numeric IPv4 address"):
        sender.send_batch([good] * 70 + [(b"ok", ("::1", 9))])
    with pytest.raises(TypeError, match="datagram must be bytes"):
        sender.send_batch([good, ("text", receiver.local_address)])  # type: ignore[list-item]
    assert sender.datagrams_sent == 0
    assert receiver.recv_batch() == []
    assert sender.send_batch([(b"x" * UDP_DATAGRAM_MAX, receiver.local_address)]) == 1


def test_refused_datagram_is_counted_and_skipped(
    sender: UdpBatchSocket, receiver: UdpBatchSocket
) -> None:
    to_port_zero = (b"nowhere", ("127.0.0.1", 0))  # the kernel refuses: EINVAL
    items = [(b"first", receiver.local_address), to_port_zero, (b"last", receiver.local_address)]
    assert sender.send_batch(items) == 2
    assert sender.send_errors == 1
    assert [data for data, _ in recv_all(receiver, 2)] == [b"first", b"last"]
    with pytest.raises(OSError) as info:
        sender.sendto(b"nowhere", ("127.0.0.1", 0))
    assert info.value.errno == errno.EINVAL
    assert sender.send_errors == 2


def test_sendto(sender: UdpBatchSocket, receiver: UdpBatchSocket) -> None:
    assert sender.sendto(b"hello", receiver.local_address) == 5
    assert receiver.recv_batch() == [(b"hello", sender.local_address)]
    with pytest.raises(ValueError, match="exceeds UDP_DATAGRAM_MAX"):
        sender.sendto(b"x" * (UDP_DATAGRAM_MAX + 1), receiver.local_address)


@pytest.mark.parametrize(
    ("addr", "error"),
    [
        (("localhost", 9), ValueError),
        (("127.0.0.1\0junk", 9), ValueError),
        (("127.0.0.1", 70000), ValueError),
        (("127.0.0.1", "9"), TypeError),
        (("127.0.0.1", -1), ValueError),
        (("1.2.3", 9), ValueError),
        (("127.0.0.1",), TypeError),
        (["127.0.0.1", 9], TypeError),
        ((b"127.0.0.1", 9), TypeError),
        (("127.0.0.1", 9, 0, 0), TypeError),
    ],
)
def test_bad_addresses(sender: UdpBatchSocket, addr: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        sender.sendto(b"x", addr)  # type: ignore[arg-type]


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="no IPv6")
def test_ipv6_socket_reaches_ipv4_peer_through_mapped_address(receiver: UdpBatchSocket) -> None:
    with UdpBatchSocket("::") as dual:
        dual.sendto(b"mapped", receiver.local_address)
        [(data, (host, port))] = recv_all(receiver, 1)
        assert data == b"mapped"
        assert host == "127.0.0.1"
        assert port == dual.local_address[1]
        receiver.sendto(b"back", ("127.0.0.1", port))
        [(reply, (reply_host, _))] = recv_all(dual, 1)
        assert reply == b"back"
        assert reply_host == "::ffff:127.0.0.1"


IPV4_SCRATCH = UdpBatchSocket("127.0.0.1")
IPV6_SCRATCH = UdpBatchSocket("::1") if _ipv6_loopback_available() else None


@settings(max_examples=300, deadline=None)
@given(
    host=st.one_of(st.text(max_size=50), st.sampled_from(["::ffff:1.2.3.4", "1.2.3.4", "::"])),
    port=st.integers(min_value=-5, max_value=70000),
)
def test_address_conversion_never_crashes(host: str, port: int) -> None:
    # The oversized second item stops the call after the address was converted, before sending.
    stopper = (b"x" * (UDP_DATAGRAM_MAX + 1), ("127.0.0.1", 9))
    for sock in (IPV4_SCRATCH, IPV6_SCRATCH):
        if sock is not None:
            with pytest.raises((ValueError, TypeError)):
                sock.send_batch([(b"", (host, port)), stopper])


def test_close_is_idempotent_and_later_use_fails_clearly(sender: UdpBatchSocket) -> None:
    peer = sender.local_address
    sender.close()
    sender.close()
    assert sender.closed
    assert sender.fileno() == -1
    assert "closed" in repr(sender)
    for call in (
        lambda: sender.sendto(b"x", peer),
        lambda: sender.send_batch([(b"x", peer)]),
        lambda: sender.recv_batch(),
        lambda: sender.local_address,
    ):
        with pytest.raises(OSError, match="UdpBatchSocket is closed") as info:
            call()
        assert info.value.errno == errno.EBADF


def test_from_socket_wraps_a_duplicate(receiver: UdpBatchSocket) -> None:
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    plain.bind(("127.0.0.1", 0))
    with UdpBatchSocket.from_socket(plain) as wrapped:
        assert wrapped.local_address == plain.getsockname()
        assert wrapped.fileno() != plain.fileno()
        assert plain.gettimeout() is None  # the caller's socket keeps its blocking mode
        assert wrapped.recv_batch() == []  # non-blocking even so
        wrapped.sendto(b"via wrapper", receiver.local_address)
        assert receiver.recv_batch() == [(b"via wrapper", plain.getsockname())]
    plain.sendto(b"still mine", receiver.local_address)  # closing the wrapper left plain open
    assert receiver.recv_batch()[0][0] == b"still mine"
    plain.close()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, pytest.raises(ValueError):
        UdpBatchSocket.from_socket(tcp)


def test_socket_options() -> None:
    with UdpBatchSocket(reuse_port=True) as first:
        port = first.local_address[1]
        with UdpBatchSocket(port=port, reuse_port=True) as second:
            assert second.local_address == first.local_address
        with pytest.raises(OSError) as info:
            UdpBatchSocket(port=port)
        assert info.value.errno == errno.EADDRINUSE
    with UdpBatchSocket(recv_buffer=65536, send_buffer=65536) as sock:
        view = socket.socket(fileno=socket.dup(sock.fileno()))
        with view:
            assert view.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 65536
            assert view.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= 65536


# ---- event loop integration (each test runs on asyncio and uvloop) ----


async def wait_for(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.005)


def test_start_delivers_everything(run: Run[None]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        batches: list[list[Datagram]] = []
        with UdpBatchSocket(recv_buffer=1 << 20) as rx:
            rx.start(loop, batches.append)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
                plain.bind(("127.0.0.1", 0))
                # Two bursts of 250: each is drained in several recvmmsg batches.
                for burst in range(2):
                    for i in range(250):
                        plain.sendto(payload(burst * 250 + i, 100 + i % 50), rx.local_address)
                    await asyncio.sleep(0)
                await wait_for(lambda: sum(map(len, batches)) == 500)
                received = [datagram for batch in batches for datagram in batch]
                expected = [payload(n, 100 + n % 50) for n in range(500)]
                assert [data for data, _ in received] == expected
                assert {source for _, source in received} == {plain.getsockname()}
                assert max(map(len, batches)) == UDP_BATCH_MAX
                assert rx.datagrams_received == 500
            rx.stop()

    run(main())


def test_raising_callback_is_logged_counted_and_reading_continues(
    run: Run[None], caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        received: list[bytes] = []

        def on_datagrams(batch: list[Datagram]) -> None:
            if batch[0][0] == b"boom":
                raise RuntimeError("listener failed")
            received.extend(data for data, _ in batch)

        with UdpBatchSocket() as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
            rx.start(asyncio.get_running_loop(), on_datagrams)
            plain.sendto(b"boom", rx.local_address)
            await wait_for(lambda: rx.callback_errors == 1)
            plain.sendto(b"after", rx.local_address)
            await wait_for(lambda: received == [b"after"])

    with caplog.at_level(logging.ERROR, logger="mediasrv.udp"):
        run(main())
    [record] = [r for r in caplog.records if r.name == "mediasrv.udp"]
    assert "on_datagrams callback" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_stop_leaves_datagrams_in_the_socket(run: Run[None]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        batches: list[list[Datagram]] = []
        with UdpBatchSocket() as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
            rx.start(loop, batches.append)
            with pytest.raises(RuntimeError, match="already started"):
                rx.start(loop, batches.append)
            rx.stop()
            rx.stop()
            plain.sendto(b"queued", rx.local_address)
            await asyncio.sleep(0.05)
            assert batches == []
            assert rx.recv_batch()[0][0] == b"queued"
            rx.start(loop, batches.append)  # can start again after stop
            plain.sendto(b"again", rx.local_address)
            await wait_for(lambda: len(batches) == 1)

    run(main())


def test_close_while_started_and_from_the_callback(run: Run[None]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        rx = UdpBatchSocket()
        rx.start(loop, lambda batch: None)
        rx.close()
        rx.close()
        with pytest.raises(OSError, match="closed"):
            rx.start(loop, lambda batch: None)

        closer = UdpBatchSocket()
        calls: list[int] = []

        def close_on_first(batch: list[Datagram]) -> None:
            calls.append(len(batch))
            closer.close()

        closer.start(loop, close_on_first)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
            for _ in range(3):
                plain.sendto(b"x", closer.local_address)
        await wait_for(lambda: closer.closed)
        await asyncio.sleep(0.02)
        assert len(calls) == 1

    run(main())
