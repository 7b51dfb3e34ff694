"""Type stubs for the compiled data plane, ``mediasrv._core`` (sources in ``cext/``)."""

import asyncio
import builtins
import socket
from collections.abc import Callable, Iterable, Sequence
from enum import IntEnum
from typing import Any, Final

# --- rtp (cext/rtp.pyx) ---

class RtpPacket:
    """A parsed RTP packet over a private, mutable copy of its bytes."""

    @staticmethod
    def parse(data: bytes | bytearray | memoryview) -> RtpPacket: ...
    @staticmethod
    def build(
        *,
        payload_type: int,
        sequence_number: int,
        timestamp: int,
        ssrc: int,
        marker: bool = False,
        csrcs: Sequence[int] = (),
        extensions: Sequence[tuple[int, bytes]] = (),
        extension_profile: int | None = None,
        payload: bytes = b"",
        padding_size: int = 0,
    ) -> RtpPacket: ...
    @property
    def version(self) -> int: ...
    @property
    def padding(self) -> bool: ...
    @property
    def extension(self) -> bool: ...
    marker: bool
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    @property
    def csrcs(self) -> list[int]: ...
    @property
    def extension_profile(self) -> int | None: ...
    @property
    def extensions(self) -> list[tuple[int, bytes]]: ...
    def get_extension(self, ext_id: int) -> bytes | None: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def payload_offset(self) -> int: ...
    @property
    def padding_size(self) -> int: ...
    def rewrite(
        self,
        *,
        ssrc: int | None = None,
        sequence_number: int | None = None,
        timestamp: int | None = None,
        payload_type: int | None = None,
    ) -> None: ...
    def remap_extension_ids(self, mapping: dict[int, int]) -> None: ...
    def mid(self, ext_id: int) -> str | None: ...
    def rid(self, ext_id: int) -> str | None: ...
    def audio_level(self, ext_id: int) -> tuple[bool, int] | None: ...
    def abs_send_time(self, ext_id: int) -> int | None: ...
    def transport_sequence_number(self, ext_id: int) -> int | None: ...
    def set_transport_sequence_number(self, ext_id: int, value: int) -> bool: ...
    def set_abs_send_time(self, ext_id: int, value: int) -> bool: ...
    def serialize(self) -> bytes: ...
    def __bytes__(self) -> bytes: ...
    def __len__(self) -> int: ...

# --- vp8 (cext/vp8.pyx) ---

class Vp8PayloadDescriptor:
    """The parsed descriptor of one VP8 RTP payload (RFC 7741)."""

    @staticmethod
    def parse(payload: bytes | bytearray | memoryview) -> Vp8PayloadDescriptor: ...
    @staticmethod
    def build(
        *,
        non_reference: bool = False,
        start_of_partition: bool = True,
        partition_index: int = 0,
        picture_id: int | None = None,
        picture_id_15bit: bool = True,
        tl0picidx: int | None = None,
        tid: int | None = None,
        layer_sync: bool = False,
        keyidx: int | None = None,
    ) -> bytes: ...
    @property
    def size(self) -> int: ...
    @property
    def non_reference(self) -> bool: ...
    @property
    def start_of_partition(self) -> bool: ...
    @property
    def partition_index(self) -> int: ...
    @property
    def picture_id(self) -> int | None: ...
    @property
    def picture_id_15bit(self) -> bool: ...
    @property
    def tl0picidx(self) -> int | None: ...
    @property
    def tid(self) -> int | None: ...
    @property
    def layer_sync(self) -> bool: ...
    @property
    def keyidx(self) -> int | None: ...
    @property
    def keyframe(self) -> bool: ...

def vp8_rewrite(
    payload: bytearray, *, picture_id: int | None = None, tl0picidx: int | None = None
) -> None: ...

# --- h264 (cext/h264.pyx) ---

def h264_payload_nal_types(payload: bytes | bytearray | memoryview) -> list[int]: ...
def h264_keyframe(payload: bytes | bytearray | memoryview) -> bool: ...

# --- rtcp (cext/rtcp.pyx) ---

class RtcpReportBlock:
    """A reception report block (RFC 3550 6.4.1)."""

    ssrc: int
    fraction_lost: int
    packets_lost: int  # signed 24-bit
    highest_sequence: int
    jitter: int
    lsr: int
    dlsr: int
    def __init__(
        self,
        ssrc: int,
        fraction_lost: int,
        packets_lost: int,
        highest_sequence: int,
        jitter: int,
        lsr: int,
        dlsr: int,
    ) -> None: ...

class RtcpSenderReport:
    """Sender report, PT 200. Profile-specific extensions are not kept."""

    ssrc: int
    ntp_timestamp: int  # 64-bit
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[RtcpReportBlock]
    def __init__(
        self,
        ssrc: int,
        ntp_timestamp: int,
        rtp_timestamp: int,
        packet_count: int,
        octet_count: int,
        reports: list[RtcpReportBlock] = ...,
    ) -> None: ...
    def serialize(self) -> bytes: ...

class RtcpReceiverReport:
    """Receiver report, PT 201. Profile-specific extensions are not kept."""

    ssrc: int
    reports: list[RtcpReportBlock]
    def __init__(self, ssrc: int, reports: list[RtcpReportBlock] = ...) -> None: ...
    def serialize(self) -> bytes: ...

class RtcpSdesChunk:
    """One SDES chunk: ``items`` are (type, value) pairs, e.g. (1, b"cname") for CNAME."""

    ssrc: int
    items: list[tuple[int, bytes]]
    def __init__(self, ssrc: int, items: list[tuple[int, bytes]] = ...) -> None: ...

class RtcpSdes:
    """Source description, PT 202."""

    chunks: list[RtcpSdesChunk]
    def __init__(self, chunks: list[RtcpSdesChunk] = ...) -> None: ...
    def serialize(self) -> bytes: ...

class RtcpBye:
    """Goodbye, PT 203; ``reason`` is None when the packet carries none."""

    sources: list[int]
    reason: bytes | None
    def __init__(self, sources: list[int] = ..., reason: bytes | None = None) -> None: ...
    def serialize(self) -> bytes: ...

class RtcpNack:
    """Generic NACK, PT 205 FMT 1: ``lost`` RTP sequence numbers (any order round-trips)."""

    sender_ssrc: int
    media_ssrc: int
    lost: list[int]
    def __init__(self, sender_ssrc: int, media_ssrc: int, lost: list[int] = ...) -> None: ...
    def serialize(self) -> bytes: ...

class RtcpTransportFeedback:
    """Transport-wide congestion control feedback, PT 205 FMT 15.

    ``packets`` are (transport sequence, receive delta in us or None if not received) for
    ``base_sequence`` onwards; deltas are multiples of 250 us in -8192000..8191750, each relative
    to the previous received packet (the first to ``reference_time``: 64 ms units, signed 24-bit).
    """

    sender_ssrc: int
    media_ssrc: int
    base_sequence: int
    reference_time: int
    feedback_count: int
    packets: list[tuple[int, int | None]]
    def __init__(
        self,
        sender_ssrc: int,
        media_ssrc: int,
        base_sequence: int,
        reference_time: int,
        feedback_count: int,
        packets: list[tuple[int, int | None]] = ...,
    ) -> None: ...
    def serialize(self) -> bytes: ...

class RtcpPli:
    """Picture loss indication, PT 206 FMT 1."""

    sender_ssrc: int
    media_ssrc: int
    def __init__(self, sender_ssrc: int, media_ssrc: int) -> None: ...
    def serialize(self) -> bytes: ...

class RtcpFir:
    """Full intra request, PT 206 FMT 4: ``entries`` are (media ssrc, command seq nr)."""

    sender_ssrc: int
    entries: list[tuple[int, int]]
    def __init__(self, sender_ssrc: int, entries: list[tuple[int, int]] = ...) -> None: ...
    def serialize(self) -> bytes: ...

class RtcpRemb:
    """Receiver estimated maximum bitrate, PT 206 FMT 15.

    serialize() encodes ``bitrate`` with the smallest exponent that fits the 18-bit mantissa,
    rounding it down to a multiple of 2**exponent; parsing yields that rounded value.
    """

    sender_ssrc: int
    bitrate: int  # bits/s, 64-bit
    ssrcs: list[int]
    def __init__(self, sender_ssrc: int, bitrate: int, ssrcs: list[int] = ...) -> None: ...
    def serialize(self) -> bytes: ...

class RtcpUnknown:
    """Any other packet (APP, XR, other feedback FMTs): header fields + payload without padding."""

    packet_type: int
    count: int  # the 5-bit RC/SC/FMT field
    payload: bytes
    def __init__(self, packet_type: int, count: int, payload: bytes = b"") -> None: ...
    def serialize(self) -> bytes: ...

RtcpPacket = (
    RtcpSenderReport
    | RtcpReceiverReport
    | RtcpSdes
    | RtcpBye
    | RtcpNack
    | RtcpTransportFeedback
    | RtcpPli
    | RtcpFir
    | RtcpRemb
    | RtcpUnknown
)

class RtcpCompound:
    """What parse_rtcp() found: the packets it could parse and one message per problem."""

    packets: list[RtcpPacket]
    errors: list[str]
    def __init__(self, packets: list[RtcpPacket] = ..., errors: list[str] = ...) -> None: ...

def parse_rtcp(data: bytes | bytearray | memoryview) -> RtcpCompound:
    """Parse a compound packet. Never raises for malformed bytes: see ``RtcpCompound.errors``."""

def serialize_rtcp(packets: Iterable[RtcpPacket]) -> bytes:
    """Serialize packets into one compound (``serialize()`` raises ValueError/OverflowError for
    values the wire can't carry)."""

def rtcp_walk(data: bytes | bytearray | memoryview) -> list[tuple[int, int, int, int]]:
    """(fmt, packet type, offset, length) of each packet; ValueError on a malformed header."""

# --- srtp (cext/srtp.pyx) ---

SRTP_MAX_TRAILER_LEN: Final[int]
"""Room (144 bytes) a buffer needs past a packet for libsrtp to protect it in place."""

class SrtpProfile(IntEnum):
    """DTLS-SRTP protection profiles, by IANA id."""

    AES_CM_128_HMAC_SHA1_80 = 1
    AEAD_AES_128_GCM = 7

class SrtpError(Exception):
    """An SRTP operation failed; ``status`` is libsrtp's srtp_err_status_t value."""

    status: int
    def __init__(self, message: str, status: int) -> None: ...

def srtp_key_length(profile: int) -> int:
    """Master key + master salt bytes: 30 (AES_CM_128_HMAC_SHA1_80) or 28 (AEAD_AES_128_GCM)."""

class SrtpSession:
    """One direction of SRTP + SRTCP for any SSRC; replay-protected; not thread-safe.

    ``key`` is master key || master salt. protect*/unprotect* raise SrtpError (with .status),
    also on a closed session or the wrong direction; a bad window_size or profile raises
    ValueError.
    """

    @property
    def profile(self) -> SrtpProfile: ...
    @property
    def outbound(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def __init__(
        self,
        profile: int,
        key: bytes,
        *,
        outbound: bool,
        window_size: int = 1024,
        allow_repeat_tx: bool = False,
    ) -> None: ...
    def protect(self, rtp: bytes) -> bytes: ...
    def unprotect(self, srtp: bytes) -> bytes: ...
    def protect_rtcp(self, rtcp: bytes) -> bytes: ...
    def unprotect_rtcp(self, srtcp: bytes) -> bytes: ...
    def close(self) -> None:
        """Free the libsrtp context (idempotent)."""

def srtp_sessions_from_keying_material(
    material: bytes,
    profile: int,
    *,
    is_client: bool,
    window_size: int = 1024,
    allow_repeat_tx: bool = False,
) -> tuple[SrtpSession, SrtpSession]:
    """(outbound, inbound) from the "EXTRACTOR-dtls_srtp" export (RFC 5764 section 4.2).

    allow_repeat_tx applies to the outbound session. Wrong material length: SrtpError.
    """

# --- udp (cext/udp.pyx) ---

UDP_BATCH_MAX: Final[int]
"""Datagrams per recvmmsg/sendmmsg call (64)."""
UDP_DATAGRAM_MAX: Final[int]
"""Bytes per batch slot (2048): the largest datagram send_batch/sendto accept."""
UDP_RECV_MAX: Final[int]
"""Largest datagram received (1900): the rest of a slot is room for an SRTP trailer."""

class UdpBatchSocket:
    """A non-blocking UDP socket (IPv4, or IPv6 when host contains ':') used in batches.

    Addresses are numeric (host, port) tuples; IPv6 also takes (host, port, flowinfo, scope_id)
    and maps an IPv4 host to ::ffff:a.b.c.d. Operations on a closed socket raise OSError(EBADF).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        reuse_port: bool = False,
        recv_buffer: int | None = None,
        send_buffer: int | None = None,
    ) -> None: ...
    @classmethod
    def from_socket(cls, sock: socket.socket) -> UdpBatchSocket:
        """Wrap a dup of a bound UDP socket's descriptor; `sock` stays the caller's."""
    def fileno(self) -> int:
        """The descriptor, or -1 once closed."""
    @property
    def family(self) -> socket.AddressFamily: ...
    @property
    def closed(self) -> bool: ...
    @property
    def local_address(self) -> tuple[str, int]: ...
    @property
    def datagrams_received(self) -> int: ...
    @property
    def datagrams_sent(self) -> int: ...
    @property
    def bytes_received(self) -> int: ...
    @property
    def bytes_sent(self) -> int: ...
    @property
    def send_errors(self) -> int:
        """Datagrams the kernel refused (EAGAIN excluded)."""
    @property
    def recv_errors(self) -> int: ...
    @property
    def truncated(self) -> int:
        """Datagrams longer than UDP_RECV_MAX, dropped."""
    @property
    def callback_errors(self) -> int:
        """Exceptions raised by the start() callback (each also logged on mediasrv.udp)."""
    def recv_batch(self, max_count: int = 64) -> list[tuple[bytes, tuple[str, int]]]:
        """Up to max_count waiting datagrams with their sources; [] when none is waiting."""
    def send_batch(self, items: Sequence[tuple[bytes, tuple[str, int]]]) -> int:
        """Send all items (checked first: ValueError/TypeError before anything is sent).

        Returns how many were sent: a full socket buffer ends the call early; a datagram the
        kernel refuses is skipped and counted in send_errors.
        """
    def sendto(self, data: bytes, addr: tuple[str, int]) -> int:
        """Send one datagram; its length, or BlockingIOError / OSError."""
    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        on_datagrams: Callable[[list[tuple[bytes, tuple[str, int]]]], None],
    ) -> None:
        """Read with loop.add_reader, calling on_datagrams per batch (<= 16 batches a wakeup)."""
    def stop(self) -> None: ...
    def close(self) -> None:
        """Stop, then close the descriptor (idempotent)."""
    def __enter__(self) -> UdpBatchSocket: ...
    def __exit__(self, *exc_info: object) -> None: ...

# --- packet_cache (cext/packet_cache.pyx) ---

class PacketCache:
    """Recent packets of one RTP stream, keyed by sequence number, for NACK retransmission."""

    def __init__(self, capacity: int = 512, max_packet_size: int = 1500) -> None: ...
    def put(self, seq: int, data: bytes | bytearray | memoryview, now_ms: int = 0) -> bool: ...
    def get(self, seq: int) -> bytes | None: ...
    def stored_at(self, seq: int) -> int | None: ...
    def clear(self) -> None: ...
    @property
    def capacity(self) -> int: ...
    @property
    def max_packet_size(self) -> int: ...
    @property
    def highest_sequence(self) -> int | None: ...
    def __len__(self) -> int: ...

# --- forwarder (cext/forwarder.pyx) ---

class ConsumerTarget:
    """Where and how one consumer receives a forwarded stream."""

    def __init__(
        self,
        session: SrtpSession,
        address: tuple[str, int],
        *,
        ssrc: int,
        payload_type: int,
        sequence_offset: int = 0,
        timestamp_offset: int = 0,
    ) -> None: ...
    @property
    def ssrc(self) -> int: ...
    @property
    def payload_type(self) -> int: ...
    @property
    def sequence_offset(self) -> int: ...
    @property
    def timestamp_offset(self) -> int: ...
    @property
    def address(self) -> tuple[str, int]: ...
    @property
    def forwarded(self) -> int: ...
    @property
    def protect_errors(self) -> int: ...

class Forwarder:
    """Forwards one publisher's SRTP stream to any number of consumers over one UDP socket."""

    def __init__(
        self, sock: UdpBatchSocket, inbound: SrtpSession, cache: PacketCache | None = None
    ) -> None: ...
    def add_consumer(self, target: ConsumerTarget) -> None: ...
    def remove_consumer(self, target: ConsumerTarget) -> None: ...
    @property
    def consumers(self) -> list[ConsumerTarget]: ...
    def process(self, now_ms: int = 0) -> int: ...
    @property
    def received(self) -> int: ...
    @property
    def forwarded(self) -> int: ...
    @property
    def dropped_not_rtp(self) -> int: ...
    @property
    def dropped_unprotect(self) -> int: ...
    @property
    def dropped_parse(self) -> int: ...
    @property
    def send_errors(self) -> int: ...

# --- bench_support (cext/bench_support.pyx) ---

def bench_rtp_parse(packet: bytes, iterations: int) -> float: ...
def bench_rewrite_protect(
    session: SrtpSession, packet: bytes, iterations: int, first_sequence: int = 0
) -> float: ...
def bench_cache_put_get(cache: PacketCache, packet: bytes, iterations: int) -> float: ...

# --- plane (cext/plane.pyx) ---

class PlaneCodec(IntEnum):
    CODEC_OPUS = 1
    CODEC_VP8 = 2
    CODEC_H264 = 3
    CODEC_VP9 = 4
    CODEC_OTHER = 5

PLANE_DROP_REASONS: tuple[str, ...]

class PlaneConsumer:
    """One subscriber's copy of one PlaneStream: the rewrite applied and where it goes."""

    transport: PlaneTransport
    stream: PlaneStream
    ssrc: int
    payload_type: int
    rtx_ssrc: int
    rtx_payload_type: int
    paused: bool
    waiting_keyframe: bool
    last_sequence_number: int
    last_timestamp: int
    packets: int
    bytes: int
    retransmitted: int
    retransmit_missing: int
    dropped_paused: int
    dropped_old: int
    protect_errors: int
    padding_sent: int
    closed: bool
    def __init__(
        self,
        transport: PlaneTransport,
        stream: PlaneStream,
        *,
        ssrc: int,
        payload_type: int,
        rtx_ssrc: int = 0,
        rtx_payload_type: int = 0,
        extension_map: dict[int, int] | None = None,
        paused: bool = False,
    ) -> None: ...
    def set_extension_map(self, mapping: dict[int, int]) -> None:
        """Producer extension id -> this consumer's id; ids not in the map are removed."""
    @property
    def sequence_offset(self) -> int: ...
    @property
    def timestamp_offset(self) -> int: ...
    @property
    def synced(self) -> bool: ...
    def pause(self) -> None: ...
    def resume(self) -> None:
        """Forward again from the next keyframe (video) or the next packet (audio)."""
    def request_sync(self) -> None: ...
    def close(self) -> None: ...
    layer_switches: int
    max_temporal_layer: int
    """VP8 temporal layers forwarded now: up to this one (255: all)."""
    dropped_temporal: int
    def set_temporal_layer(self, layer: int) -> None:
        """Forward VP8 temporal layers up to this one (255: all), from a suitable frame."""
    @property
    def target_temporal_layer(self) -> int: ...
    def attach_layer(self, stream: PlaneStream) -> None:
        """Also receive this stream (another simulcast layer of the same producer)."""
    def set_target(self, stream: PlaneStream | None) -> None:
        """Switch to this layer at its next keyframe (None or the current stream: stay)."""
    @property
    def target(self) -> PlaneStream | None: ...
    def set_vp8_continuity(self, enabled: bool) -> None:
        """Rewrite VP8 PictureID and TL0PICIDX so they run on across layer switches."""
    def set_abs_send_time_id(self, ext_id: int) -> None:
        """Write the send time into this consumer's abs-send-time extension; 0: don't."""
    def retransmit(self, sequence_numbers: Iterable[int]) -> int:
        """Answer a NACK from the cache (as RTX when negotiated): how many went out."""
    def send_padding(self, count: int, size: int = ...) -> int:
        """Padding-only RTX packets with transport-wide sequence numbers (a probe)."""
    red_payload_type: int
    red_malformed: int
    def set_red(self, payload_type: int) -> None:
        """Send RED as RED with this payload type; 0: its primary Opus block only."""

class PlaneStream:
    """One inbound RTP stream (one SSRC) of a producer, with its consumers."""

    transport: PlaneTransport
    ssrc: int
    rtx_ssrc: int
    payload_type: int
    rtx_payload_type: int
    codec: int
    kind_video: bool
    clock_rate: int
    audio_level_id: int
    owner: object
    packets: int
    bytes: int
    rtx_packets: int
    keyframes: int
    duplicates: int
    last_packet_ms: int
    last_keyframe_ms: int
    nack_requested: int
    nack_recovered: int
    restarts: int
    """Times the publisher restarted its sequence numbers (RFC 3550 A.1 confirmation)."""
    bad_sequence: int
    """Packets far from the run that the next packet did not confirm (dropped)."""
    closed: bool
    red_payload_type: int
    red_packets: int
    def set_red_payload_type(self, payload_type: int) -> None: ...
    def __init__(
        self,
        transport: PlaneTransport,
        *,
        ssrc: int,
        payload_type: int,
        codec: int,
        clock_rate: int,
        rtx_ssrc: int = 0,
        rtx_payload_type: int = 0,
        audio_level_id: int = 0,
        cache_size: int = 0,
        owner: object = None,
    ) -> None: ...
    @property
    def consumers(self) -> list[PlaneConsumer]: ...
    def add_consumer(self, consumer: PlaneConsumer) -> None: ...
    def set_rtx(self, rtx_ssrc: int, rtx_payload_type: int) -> None:
        """The RTX stream that repairs this one (learnt later, e.g. from repaired-rid)."""
    def close(self) -> None: ...
    @property
    def highest_sequence(self) -> int: ...
    @property
    def jitter(self) -> int: ...
    gaps: int
    """Packets missing when later ones arrived (monotonic; repairs do not undo it)."""
    @property
    def lost(self) -> int:
        """Packets missing since the stream (re)started (expected minus received, ≥ 0)."""
    def report(self) -> tuple[int, int, int, int]:
        """(fraction_lost, cumulative_lost, extended_highest_seq, jitter) since the last call."""
    def take_nacks(self) -> list[int]:
        """Sequence numbers to NACK now."""
    def take_audio_levels(self) -> tuple[int, int, int]:
        """(packets, mean level in -dBov, voice packets) since the last call."""

class PlaneTransport:
    """The data-plane side of one transport: remote address, SRTP sessions, inbound streams."""

    owner: Any
    remote_address: tuple[str, int] | None
    rtp_packets_in: int
    rtp_bytes_in: int
    rtcp_packets_in: int
    packets_out: int
    bytes_out: int
    unknown_ssrc: int
    unprotect_errors: int
    srtp: bool
    closed: bool
    def __init__(self, plane: WorkerPlane, owner: object = None, *, srtp: bool = True) -> None: ...
    def set_srtp(self, inbound: SrtpSession, outbound: SrtpSession) -> None: ...
    @property
    def streams(self) -> list[PlaneStream]: ...
    @property
    def ready(self) -> bool: ...
    def add_stream(self, stream: PlaneStream) -> None: ...
    def set_remote_address(self, address: tuple[str, int]) -> None: ...
    def set_tcp_connection(self, connection: TcpConnection) -> None:
        """Bind to an ICE-TCP connection (leaving any UDP address)."""
    def enable_send_side_estimation(
        self, ext_id: int, start_bitrate: float, min_bitrate: float, max_bitrate: float
    ) -> SendSideEstimator: ...
    @property
    def estimator(self) -> SendSideEstimator | None: ...
    def enable_transport_feedback(self, ext_id: int) -> None: ...
    @property
    def transport_feedback(self) -> TccReceiver | None: ...
    def send_transport_feedback(self, sender_ssrc: int, media_ssrc: int) -> int: ...
    @property
    def tcp(self) -> TcpConnection | None: ...
    @property
    def protocol(self) -> str:
        """'tcp' when bound to an ICE-TCP connection, else 'udp'."""
    def send_rtcp(self, packet: bytes) -> bool: ...
    def redeliver(self, packet: bytes) -> bool:
        """Route an already unprotected RTP packet to its (new) stream."""
    def send_raw(self, data: bytes) -> bool: ...
    def set_journal(self, sink: JournalSink) -> None:
        """Make this a recording transport (made with srtp=False): its consumers' packets go
        to the journal sink, not to the network."""
    @property
    def journal(self) -> JournalSink | None: ...
    def close(self) -> None: ...

def crc32c(data: builtins.bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC-32C (Castagnoli) of data, continuing from value (the journals' checksum)."""

class JournalSink:
    """Journal records (docs/recording.md) collected by the data plane until Python takes
    them; at most ``limit`` bytes wait (more is dropped and counted)."""

    limit: int
    records: int
    bytes: int
    dropped: int
    closed: bool
    def __init__(self, limit: int = ...) -> None: ...
    def append(
        self, record_type: int, payload: builtins.bytes, time_us: int | None = None
    ) -> None: ...
    def pending(self) -> int: ...
    def write_to(self, fd: int) -> int:
        """Write the records to a file descriptor (GIL released); the bytes written."""
    def take(self) -> builtins.bytes: ...
    def close(self) -> None: ...

class WorkerPlane:
    """One worker's data plane: its UDP socket, the address table and the forwarding loop.

    ``handler`` gets on_stun(data, addr), on_dtls(transport, data), on_rtcp(transport, data),
    on_unknown_ssrc(transport, ssrc, payload_type, packet), and for ICE-TCP connections
    on_stun_tcp(data, connection), on_tcp_recovered(transport, dropped) and
    on_tcp_closed(connection, reason)."""

    socket: UdpBatchSocket
    received: int
    forwarded: int
    send_errors: int
    handler_errors: int
    tcp_connections: int
    tcp_accepted: int
    tcp_bad_frames: int
    tcp_send_dropped: int
    def __init__(self, sock: UdpBatchSocket, handler: object) -> None: ...
    @property
    def transports(self) -> int: ...
    @property
    def dropped(self) -> dict[str, int]: ...
    @property
    def latency_histogram(
        self,
    ) -> tuple[tuple[float, ...], tuple[int, ...], int, float]:
        """Forwarding latency (receive batch to sendmmsg): bucket bounds in seconds,
        cumulative counts per bound, the +Inf count and the sum in seconds."""
    def start(self, loop: asyncio.AbstractEventLoop) -> None: ...
    def stop(self) -> None: ...
    def feed(self, data: bytes, addr: tuple[str, int]) -> None:
        """Process one datagram as if it had arrived from addr (tests, fuzzing)."""

TCP_CLOSE_REASONS: tuple[str, ...]

class TcpConnection:
    """One ICE-TCP connection (RFC 6544, RFC 4571 framing) accepted on a worker's passive
    candidate: frames dispatched by the plane like datagrams, a bounded send buffer."""

    remote_address: tuple[str, int]
    send_buffer_size: int
    frames_in: int
    bytes_in: int
    frames_out: int
    bytes_out: int
    dropped_full: int
    opened_ms: int
    closed: bool
    close_reason: str | None
    def __init__(
        self, plane: WorkerPlane, sock: socket.socket, *, send_buffer: int = ...
    ) -> None: ...
    @property
    def transport(self) -> PlaneTransport | None: ...
    @property
    def queued_bytes(self) -> int: ...
    def start(self, loop: asyncio.AbstractEventLoop) -> None: ...
    def fileno(self) -> int: ...
    def send_frame(self, data: bytes) -> bool: ...
    def expire(
        self,
        now_ms: int,
        *,
        frame_timeout_ms: int,
        ice_timeout_ms: int,
        stalled_timeout_ms: int,
    ) -> str | None: ...
    def close(self, reason: str = "server") -> None: ...

# --- transport-cc (cext/bwe.pyx) ---

class BweState(IntEnum):
    BWE_NORMAL = 0
    BWE_OVERUSE = 1
    BWE_UNDERUSE = 2

class TccReceiver:
    """Arrival times of a publisher's packets by transport-wide sequence number."""

    packets: int
    feedbacks: int
    def __init__(self) -> None: ...

class SendSideEstimator:
    """A subscriber's bandwidth from its transport-cc feedback: delay-based (trendline,
    adaptive threshold, AIMD) and loss-based; ``estimate`` is the lower, in bit/s."""

    estimate: float
    delay_based: float
    loss_based: float
    state: int
    min_bitrate: float
    max_bitrate: float
    trend: float
    threshold: float
    loss_fraction: float
    last_probe: float
    packets_sent: int
    packets_acked: int
    packets_lost: int
    feedbacks: int
    feedback_errors: int
    overuses: int
    probes: int
    def __init__(
        self,
        start_bitrate: float = ...,
        min_bitrate: float = ...,
        max_bitrate: float = ...,
    ) -> None: ...
    def start_probe(self) -> int: ...
    def end_probe(self) -> None: ...
    @property
    def probing(self) -> bool: ...
    @property
    def acknowledged_bitrate(self) -> float: ...
    def feed(self, message: bytes, now_us: int | None = None) -> None:
        """One transport-cc feedback message (RTCP header included), received at now_us."""
    def sent(self, size: int, send_us: int) -> int:
        """Record a packet as sent; its transport-wide sequence number (tests)."""

def tcc_feedback(
    receiver: TccReceiver, sender: int, media: int, now_us: int | None = None
) -> bytes | None: ...
def tcc_record(receiver: TccReceiver, seq: int, arrival_us: int) -> None: ...
