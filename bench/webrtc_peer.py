"""A lightweight, real WebRTC peer for load tests: the signaling protocol, ICE (STUN binding
requests with USE-CANDIDATE, MESSAGE-INTEGRITY and FINGERPRINT, consent checks), DTLS 1.2 as
the client with fingerprint checks, SRTP — but no media stack: a publisher sends synthetic VP8
packets carrying their send time (or, with ``publish_media`` and ``Link.send_rtp``, real
pre-encoded VP8/H.264/Opus payloads as they are), a subscriber unprotects and counts what
arrives and how late (``Link.send_time`` looks a real payload's send time up instead).

Hundreds of these fit in one process, where as many aiortc peers would each decode video.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import re
import secrets
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aioice import stun

from mediasrv import _core
from mediasrv.certificate import Certificate
from mediasrv.dtls_session import DtlsError, DtlsRole, DtlsSession

PAYLOAD_SIZE = 1100
VP8_PT = 96
VP8_RTX_PT = 97
H264_PT = 102
OPUS_PT = 111
H264_FMTP = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
EXT_MID_ID, EXT_RID_ID, EXT_RRID_ID = 1, 2, 3
CONSENT_INTERVAL = 5.0


def _candidate(sdp: str) -> tuple[str, int]:
    match = re.search(r"a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host", sdp)
    if match is None:
        raise ValueError("no host candidate in the server's description")
    return match.group(1), int(match.group(2))


def _tcp_candidate(sdp: str) -> tuple[str, int]:
    match = re.search(r"a=candidate:\S+ 1 tcp \d+ (\S+) (\d+) typ host tcptype passive", sdp)
    if match is None:
        raise ValueError("no passive ICE-TCP candidate in the server's description")
    return match.group(1), int(match.group(2))


class FramedTcpSocket:
    """The client end of an ICE-TCP connection (RFC 4571 framing) with the interface Link uses
    of a UdpBatchSocket: sendto() frames a datagram, start() delivers received frames in
    batches, as (data, remote) pairs."""

    def __init__(self, remote: tuple[str, int]) -> None:
        self.remote = remote
        self._sock = socket.create_connection(remote, timeout=5)
        self._sock.setblocking(False)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._buffer = bytearray()
        self._pending = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._callback: Callable[[list[tuple[bytes, tuple[str, int]]]], None] | None = None
        self.closed = False

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        callback: Callable[[list[tuple[bytes, tuple[str, int]]]], None],
    ) -> None:
        self._loop = loop
        self._callback = callback
        loop.add_reader(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            chunk = self._sock.recv(1 << 18)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.close()
            return
        buffer = self._buffer
        buffer += chunk
        frames = []
        pos = 0
        while len(buffer) - pos >= 2:
            size = (buffer[pos] << 8) | buffer[pos + 1]
            if len(buffer) - pos - 2 < size:
                break
            frames.append((bytes(buffer[pos + 2 : pos + 2 + size]), self.remote))
            pos += 2 + size
        del buffer[:pos]
        if frames and self._callback is not None:
            self._callback(frames)

    def sendto(self, data: bytes, _remote: tuple[str, int]) -> int:
        self._pending += struct.pack("!H", len(data)) + data
        self._flush()
        return len(data)

    def _flush(self) -> None:
        if self.closed or not self._pending:
            return
        try:
            sent = self._sock.send(self._pending)
        except BlockingIOError:
            sent = 0
        del self._pending[:sent]
        if self._pending and self._loop is not None:
            self._loop.add_writer(self._sock.fileno(), self._writable)

    def _writable(self) -> None:
        assert self._loop is not None
        self._loop.remove_writer(self._sock.fileno())
        self._flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self._sock.fileno())
                self._loop.remove_writer(self._sock.fileno())
        self._sock.close()


def _attr(sdp: str, name: str) -> str:
    match = re.search(rf"a={name}:(\S+)", sdp)
    if match is None:
        raise ValueError(f"no a={name} in the server's description")
    return match.group(1)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _fingerprint(sdp: str) -> tuple[str, str]:
    match = re.search(r"a=fingerprint:(\S+) (\S+)", sdp)
    if match is None:
        raise ValueError("no a=fingerprint in the server's description")
    return match.group(1), match.group(2)


class BenchPeer:
    """One peer: a signaling connection, and one UDP socket per WebRTC transport.

    ``token``: the signaling token to join with; ``loopback_only``: refuse (ValueError, before
    sending anything) a server whose ICE candidate is not a loopback address."""

    def __init__(
        self, url: str, room: str, *, token: str = "bench", loopback_only: bool = False
    ) -> None:
        self.url = url
        self.room = room
        self.token = token
        self.loopback_only = loopback_only
        self.certificate = Certificate.generate()
        self.peer_id = ""
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.offers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.links: list[Link] = []

    async def join(self, auto_subscribe: bool) -> None:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(self.url, max_msg_size=1 << 20)
        self._reader = asyncio.create_task(self._read())
        result = await self.request(
            "join", {"token": self.token, "room": self.room, "autoSubscribe": auto_subscribe}
        )
        self.peer_id = result["peerId"]

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        assert self._ws is not None
        self._next_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = fut
        await self._ws.send_str(
            json.dumps({"id": self._next_id, "method": method, "params": params})
        )
        return await asyncio.wait_for(fut, 15)

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            message = json.loads(msg.data)
            if "id" not in message:
                if message.get("method") == "offer":
                    self.offers.put_nowait(message["params"])
                continue
            fut = self._pending.pop(message["id"], None)
            if fut is not None and not fut.done():
                if message["ok"]:
                    fut.set_result(message["result"])
                else:
                    fut.set_exception(RuntimeError(message["error"]))

    def _local_description(self, ufrag: str, pwd: str, setup: str) -> list[str]:
        return [
            f"a=ice-ufrag:{ufrag}",
            f"a=ice-pwd:{pwd}",
            f"a=fingerprint:sha-256 {self.certificate.fingerprint}",
            f"a=setup:{setup}",
        ]

    async def publish_video(self, ssrc: int) -> Link:
        """Send an offer with one VP8 sendonly section; returns the connected link."""
        ufrag, pwd = secrets.token_hex(4), secrets.token_hex(12)
        lines = [
            "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0",
            f"m=video 9 UDP/TLS/RTP/SAVPF {VP8_PT}", "c=IN IP4 0.0.0.0", "a=mid:0", "a=sendonly",
            "a=rtcp-mux", f"a=rtpmap:{VP8_PT} VP8/90000", f"a=rtcp-fb:{VP8_PT} nack",
            f"a=rtcp-fb:{VP8_PT} nack pli", f"a=ssrc:{ssrc} cname:bench", "a=msid:bench video",
            *self._local_description(ufrag, pwd, "actpass"),
        ]  # fmt: skip
        result = await self.request("publish", {"sdp": "\r\n".join(lines) + "\r\n"})
        answer = result["sdp"]
        link = await Link.open(self, answer, ufrag, pwd)
        self.links.append(link)
        return link

    async def publish_simulcast(self, rids: list[str]) -> Link:
        """An offer as Chrome sends simulcast: one VP8 section with a=rid/a=simulcast, MID,
        RID and repaired-RID extensions, RTX, and no a=ssrc lines."""
        ufrag, pwd = secrets.token_hex(4), secrets.token_hex(12)
        lines = [
            "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0",
            f"m=video 9 UDP/TLS/RTP/SAVPF {VP8_PT} {VP8_RTX_PT}", "c=IN IP4 0.0.0.0", "a=mid:0",
            "a=sendonly", "a=rtcp-mux",
            f"a=extmap:{EXT_MID_ID} urn:ietf:params:rtp-hdrext:sdes:mid",
            f"a=extmap:{EXT_RID_ID} urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
            f"a=extmap:{EXT_RRID_ID} urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
            f"a=rtpmap:{VP8_PT} VP8/90000", f"a=rtcp-fb:{VP8_PT} nack",
            f"a=rtcp-fb:{VP8_PT} nack pli", f"a=rtcp-fb:{VP8_PT} goog-remb",
            f"a=rtpmap:{VP8_RTX_PT} rtx/90000", f"a=fmtp:{VP8_RTX_PT} apt={VP8_PT}",
            *[f"a=rid:{rid} send" for rid in rids], "a=simulcast:send " + ";".join(rids),
            "a=msid:bench video", *self._local_description(ufrag, pwd, "actpass"),
        ]  # fmt: skip
        result = await self.request("publish", {"sdp": "\r\n".join(lines) + "\r\n"})
        link = await Link.open(self, result["sdp"], ufrag, pwd)
        self.links.append(link)
        return link

    async def publish_ssrc_simulcast(self, ssrcs: list[int]) -> Link:
        """SSRC-group simulcast (a=ssrc-group:SIM, lowest layer first), with a=ssrc lines."""
        ufrag, pwd = secrets.token_hex(4), secrets.token_hex(12)
        lines = [
            "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0",
            f"m=video 9 UDP/TLS/RTP/SAVPF {VP8_PT}", "c=IN IP4 0.0.0.0", "a=mid:0", "a=sendonly",
            "a=rtcp-mux", f"a=rtpmap:{VP8_PT} VP8/90000", f"a=rtcp-fb:{VP8_PT} nack pli",
            "a=ssrc-group:SIM " + " ".join(map(str, ssrcs)),
            *[f"a=ssrc:{ssrc} cname:bench" for ssrc in ssrcs], "a=msid:bench video",
            *self._local_description(ufrag, pwd, "actpass"),
        ]  # fmt: skip
        result = await self.request("publish", {"sdp": "\r\n".join(lines) + "\r\n"})
        link = await Link.open(self, result["sdp"], ufrag, pwd)
        self.links.append(link)
        return link

    async def publish_media(
        self,
        *,
        video: str | None = "vp8",
        video_ssrc: int = 0,
        rids: list[str] | None = None,
        audio_ssrc: int | None = None,
        stream_id: str = "bench",
    ) -> Link:
        """One offer with a video section (``video``: "vp8" (PT 96) or "h264" (PT 102,
        packetization-mode 1); None: no video) sending ``video_ssrc``, or RID simulcast
        (``rids``, lowest first: MID extension id 1, RID id 2, no a=ssrc lines, as Chrome), and
        an Opus section (PT 111, mid "1") when ``audio_ssrc`` is given. Returns the connected
        link; send on it with ``Link.send_rtp``."""
        ufrag, pwd = secrets.token_hex(4), secrets.token_hex(12)
        transport = self._local_description(ufrag, pwd, "actpass")
        mids = (["0"] if video else []) + (["1"] if audio_ssrc is not None else [])
        if not mids:
            raise ValueError("publish_media: neither video nor audio")
        lines = [
            "v=0",
            "o=- 1 1 IN IP4 0.0.0.0",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE " + " ".join(mids),
        ]
        if video:
            if video not in ("vp8", "h264"):
                raise ValueError(f"publish_media: unknown video codec {video!r}")
            pt = VP8_PT if video == "vp8" else H264_PT
            lines += [
                f"m=video 9 UDP/TLS/RTP/SAVPF {pt}", "c=IN IP4 0.0.0.0", "a=mid:0", "a=sendonly",
                "a=rtcp-mux",
            ]  # fmt: skip
            if rids:
                lines += [
                    f"a=extmap:{EXT_MID_ID} urn:ietf:params:rtp-hdrext:sdes:mid",
                    f"a=extmap:{EXT_RID_ID} urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
                ]
            lines.append(
                f"a=rtpmap:{pt} VP8/90000" if video == "vp8" else f"a=rtpmap:{pt} H264/90000"
            )
            if video == "h264":
                lines.append(f"a=fmtp:{pt} {H264_FMTP}")
            lines += [
                f"a=rtcp-fb:{pt} nack",
                f"a=rtcp-fb:{pt} nack pli",
                f"a=rtcp-fb:{pt} goog-remb",
            ]
            if rids:
                lines += [f"a=rid:{rid} send" for rid in rids]
                lines.append("a=simulcast:send " + ";".join(rids))
            else:
                lines.append(f"a=ssrc:{video_ssrc} cname:bench")
            lines += [f"a=msid:{stream_id} video", *transport]
        if audio_ssrc is not None:
            lines += [
                f"m=audio 9 UDP/TLS/RTP/SAVPF {OPUS_PT}", "c=IN IP4 0.0.0.0", "a=mid:1",
                "a=sendonly", "a=rtcp-mux", f"a=rtpmap:{OPUS_PT} opus/48000/2",
                f"a=fmtp:{OPUS_PT} minptime=10;useinbandfec=1", f"a=ssrc:{audio_ssrc} cname:bench",
                f"a=msid:{stream_id} audio", *transport,
            ]  # fmt: skip
        result = await self.request("publish", {"sdp": "\r\n".join(lines) + "\r\n"})
        link = await Link.open(self, result["sdp"], ufrag, pwd)
        self.links.append(link)
        return link

    def _answer(self, sdp: str, ufrag: str, pwd: str, setup: str) -> str:
        """A recvonly answer to the server's offer: every section, its rtpmaps, our ICE/DTLS."""
        mids = re.findall(r"a=mid:(\S+)", sdp)
        sections = sdp.split("\r\nm=")[1:]
        lines = [
            "v=0",
            "o=- 2 1 IN IP4 0.0.0.0",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE " + " ".join(mids),
        ]
        for mid, section in zip(mids, sections, strict=True):
            header = section.split("\r\n", 1)[0]
            rtpmaps = [line for line in section.split("\r\n") if line.startswith("a=rtpmap:")]
            lines += [
                f"m={header}", "c=IN IP4 0.0.0.0", f"a=mid:{mid}", "a=recvonly", "a=rtcp-mux",
                *rtpmaps, *self._local_description(ufrag, pwd, setup),
            ]  # fmt: skip
        return "\r\n".join(lines) + "\r\n"

    async def answer_next_offer(self, setup: str = "active", *, tcp: bool = False) -> Link:
        """Answer the server's offer for the receive transport; returns the connected link.

        ``setup="passive"`` makes this peer the DTLS server (the server is then the client);
        ``tcp``: connect to the server's passive ICE-TCP candidate instead of UDP.
        """
        offer = await asyncio.wait_for(self.offers.get(), 15)
        sdp: str = offer["sdp"]
        ufrag, pwd = secrets.token_hex(4), secrets.token_hex(12)
        await self.request(
            "answer",
            {"sdp": self._answer(sdp, ufrag, pwd, setup), "revision": offer["revision"]},
        )
        role = DtlsRole.SERVER if setup == "passive" else DtlsRole.CLIENT
        link = await Link.open(self, sdp, ufrag, pwd, role, tcp=tcp)
        self.links.append(link)
        return link

    async def answer_renegotiation(self, link: Link) -> dict[str, Any]:
        """Answer the server's next offer for a receive transport that is already connected
        (``link``, from ``answer_next_offer``): the same ICE credentials and DTLS role, no new
        socket. Updates ``link.remote_sdp``; returns the offer's parameters."""
        offer: dict[str, Any] = await asyncio.wait_for(self.offers.get(), 15)
        setup = "passive" if link.role is DtlsRole.SERVER else "active"
        await self.request(
            "answer",
            {
                "sdp": self._answer(offer["sdp"], link.ufrag, link.pwd, setup),
                "revision": offer["revision"],
            },
        )
        link.remote_sdp = offer["sdp"]
        return offer

    async def close(self) -> None:
        for link in self.links:
            link.close()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._session is not None:
            await self._session.close()


class Link:
    """One WebRTC transport of a BenchPeer: ICE, DTLS (client), SRTP."""

    def __init__(
        self,
        peer: BenchPeer,
        remote_sdp: str,
        ufrag: str,
        pwd: str,
        role: DtlsRole = DtlsRole.CLIENT,
        *,
        tcp: bool = False,
    ) -> None:
        self.remote = _tcp_candidate(remote_sdp) if tcp else _candidate(remote_sdp)
        if peer.loopback_only and not _is_loopback(self.remote[0]):
            raise ValueError(
                f"the server's ICE candidate {self.remote[0]} is not a loopback address: "
                "refusing to send to it"
            )
        self.remote_sdp = remote_sdp  # the latest description (answer_renegotiation updates it)
        self.remote_ufrag = _attr(remote_sdp, "ice-ufrag")
        self.remote_pwd = _attr(remote_sdp, "ice-pwd")
        self.ufrag, self.pwd = ufrag, pwd
        self.sock: _core.UdpBatchSocket | FramedTcpSocket = (
            FramedTcpSocket(self.remote)
            if tcp
            else _core.UdpBatchSocket("127.0.0.1", 0, recv_buffer=4 << 20, send_buffer=4 << 20)
        )
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.outbound: _core.SrtpSession | None = None
        self.inbound: _core.SrtpSession | None = None
        self.received = 0
        self.latencies_us: list[int] = []
        self.highest = -1
        # unprotect and time every packet, or (cheaper, for most subscribers of a large room)
        # only count RTP datagrams
        self.measure = True
        # with measure: the send time (monotonic ns) of an unprotected RTP packet, or None
        # (real payloads carry none: the sender keeps a log); unset: the embedded one is read
        self.send_time: Callable[[bytes], int | None] | None = None
        self.rtcp: list[bytes] = []  # unprotected RTCP compounds from the server
        self.record = False  # keep (sequence number, tag byte) of every packet received
        self.packets: list[tuple[int, int]] = []
        self._consent: asyncio.Task[None] | None = None
        self.role = role
        self.dtls = DtlsSession(
            peer.certificate,
            role,
            [_fingerprint(remote_sdp)],
            self._send,
            self._dtls_connected,
            lambda data: None,
            self._dtls_failed,
            lambda: None,
        )

    @property
    def udp(self) -> _core.UdpBatchSocket:
        """The link's UDP socket (not for a link over ICE-TCP)."""
        if not isinstance(self.sock, _core.UdpBatchSocket):
            raise TypeError("this link runs over ICE-TCP")
        return self.sock

    def _send(self, data: bytes) -> None:
        self.sock.sendto(data, self.remote)

    @classmethod
    async def open(
        cls,
        peer: BenchPeer,
        remote_sdp: str,
        ufrag: str,
        pwd: str,
        role: DtlsRole = DtlsRole.CLIENT,
        *,
        tcp: bool = False,
    ) -> Link:
        link = cls(peer, remote_sdp, ufrag, pwd, role, tcp=tcp)
        link.sock.start(asyncio.get_running_loop(), link._datagrams)
        link._consent = asyncio.create_task(link._keep_consent())
        await asyncio.wait_for(link.connected, 15)
        return link

    def _binding(self) -> None:
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        request.attributes["USERNAME"] = f"{self.remote_ufrag}:{self.ufrag}"
        request.attributes["PRIORITY"] = 2130706431
        request.attributes["ICE-CONTROLLING"] = secrets.randbits(64)
        request.attributes["USE-CANDIDATE"] = None
        request.add_message_integrity(self.remote_pwd.encode())
        self.sock.sendto(bytes(request), self.remote)

    async def _keep_consent(self) -> None:
        while not self.connected.done():
            self._binding()
            await asyncio.sleep(0.1)
        while True:
            await asyncio.sleep(CONSENT_INTERVAL)
            self._binding()

    def _datagrams(self, datagrams: list[tuple[bytes, tuple[str, int]]]) -> None:
        now_ns = time.monotonic_ns()
        for data, _addr in datagrams:
            first = data[0]
            if first < 4:
                if self.dtls.state == "new":
                    self.dtls.start()
            elif 20 <= first <= 63:
                self.dtls.feed(data)
            elif 128 <= first <= 191 and self.inbound is not None and 192 <= data[1] <= 223:
                with contextlib.suppress(_core.SrtpError):
                    self.rtcp.append(self.inbound.unprotect_rtcp(data))
            elif 128 <= first <= 191 and self.inbound is not None:
                if not self.measure:
                    self.received += 1
                    continue
                try:
                    rtp = self.inbound.unprotect(data)
                except _core.SrtpError:
                    continue
                self.received += 1
                seq = (rtp[2] << 8) | rtp[3]
                self.highest = max(self.highest, seq)
                if self.record:
                    parsed = _core.RtpPacket.parse(rtp)
                    self.packets.append(
                        (seq, parsed.payload[12] if len(parsed.payload) > 12 else -1)
                    )
                if self.send_time is not None:
                    sent = self.send_time(rtp)
                    if sent is not None:
                        self.latencies_us.append((now_ns - sent) // 1000)
                    continue
                start = 12 + 4 * (rtp[0] & 0x0F)
                if rtp[0] & 0x10 and len(rtp) >= start + 4:
                    start += 4 + 4 * ((rtp[start + 2] << 8) | rtp[start + 3])
                if len(rtp) >= start + 12:  # VP8 descriptor, payload header, send time
                    (sent_ns,) = struct.unpack_from("!Q", rtp, start + 4)
                    self.latencies_us.append((now_ns - sent_ns) // 1000)

    def _dtls_connected(self, profile: _core.SrtpProfile, material: bytes) -> None:
        self.outbound, self.inbound = _core.srtp_sessions_from_keying_material(
            material, profile, is_client=self.role is DtlsRole.CLIENT
        )
        if not self.connected.done():
            self.connected.set_result(None)

    def _dtls_failed(self, error: DtlsError) -> None:
        if not self.connected.done():
            self.connected.set_exception(ConnectionError(str(error)))

    def send_video(
        self,
        ssrc: int,
        seq: int,
        timestamp: int,
        keyframe: bool,
        *,
        size: int = PAYLOAD_SIZE,
        tag: int = 0,
        extensions: list[tuple[int, bytes]] | None = None,
        payload_type: int = VP8_PT,
    ) -> None:
        """One synthetic VP8 packet: descriptor, payload header, send time, a tag byte (e.g.
        the simulcast layer), filler."""
        assert self.outbound is not None
        descriptor = b"\x10" if keyframe else b"\x00"
        vp8_header = b"\x00\x00\x00" if keyframe else b"\x01\x00\x00"
        payload = descriptor + vp8_header + struct.pack("!Q", time.monotonic_ns()) + bytes([tag])
        payload += bytes(max(0, size - len(payload)))
        if extensions:
            packet = _core.RtpPacket.build(
                payload_type=payload_type,
                sequence_number=seq & 0xFFFF,
                timestamp=timestamp & 0xFFFFFFFF,
                ssrc=ssrc,
                payload=payload,
                extensions=extensions,
            ).serialize()
        else:
            header = struct.pack(
                "!BBHII", 0x80, payload_type, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc
            )
            packet = header + payload
        self.sock.sendto(self.outbound.protect(packet), self.remote)

    def send_rtp(
        self,
        ssrc: int,
        seq: int,
        timestamp: int,
        payload: bytes,
        *,
        payload_type: int,
        marker: bool = False,
        extensions: list[tuple[int, bytes]] | None = None,
    ) -> bool:
        """One RTP packet carrying ``payload`` as it is (real media). False when the socket's
        send buffer was full and the packet was not sent."""
        assert self.outbound is not None
        if extensions:
            packet = _core.RtpPacket.build(
                payload_type=payload_type,
                sequence_number=seq & 0xFFFF,
                timestamp=timestamp & 0xFFFFFFFF,
                ssrc=ssrc,
                marker=marker,
                payload=payload,
                extensions=extensions,
            ).serialize()
        else:
            second = payload_type | (0x80 if marker else 0)
            header = struct.pack("!BBHII", 0x80, second, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
            packet = header + payload
        try:
            self.sock.sendto(self.outbound.protect(packet), self.remote)
        except BlockingIOError:
            return False
        return True

    def send_rtcp(self, packets: list[Any]) -> None:
        assert self.outbound is not None
        self.sock.sendto(self.outbound.protect_rtcp(_core.serialize_rtcp(packets)), self.remote)

    def stop_consent(self) -> None:
        """Stop answering for this address (as a peer that went away would)."""
        if self._consent is not None:
            self._consent.cancel()

    def rtcp_packets(self) -> list[Any]:
        return [p for data in self.rtcp for p in _core.parse_rtcp(data).packets]

    def close(self) -> None:
        if self._consent is not None:
            self._consent.cancel()
        self.sock.close()
