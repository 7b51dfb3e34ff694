# The worker's data plane: one UDP socket shared by every transport of a worker, and the
# ICE-TCP connections of its passive TCP candidate (cext/tcp.pyx), whose frames take the same
# path as datagrams.
#
# recvmmsg batch -> demultiplex by first byte (RFC 7983) -> STUN and DTLS up to Python,
# RTP/RTCP by remote address to a PlaneTransport (an address that has not passed ICE is dropped
# and counted) -> SRTCP unprotect and up to Python, or SRTP unprotect -> RTP parse -> PlaneStream
# by SSRC (RTX unwrapped, padding-only RTX dropped) -> receive statistics, NACK list, packet
# cache, keyframe and audio-level detection -> for each PlaneConsumer: rewrite SSRC, sequence
# number, timestamp, payload type and extension ids, SRTP protect -> sendmmsg batch.
#
# Python is called per event (STUN, DTLS, RTCP, an unknown SSRC), never per forwarded packet.

from cpython.ref cimport PyObject
from libc.string cimport memcmp, memmove
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

cdef enum:
    PLANE_TABLE_INITIAL = 256
    PLANE_NACK_MAX = 256          # missing packets tracked per stream
    PLANE_NACK_MAX_GAP = 512      # a larger jump is a restart, not loss
    PLANE_NACK_RETRIES = 8
    PLANE_NACK_INTERVAL_MS = 60   # between two NACKs for the same packet
    PLANE_SEQ_MAP = 1024          # sent packets remembered per consumer for NACKs (power of 2)
    PLANE_ALL_TEMPORAL = 255
    PLANE_MAX_DROPOUT = 3000      # RFC 3550 A.1: a larger jump ahead needs confirming
    PLANE_MAX_MISORDER = 1000     # ... and so does a packet this far behind (no repair is useful)
    PLANE_PADDING_SIZE = 240      # bytes of padding in a probe packet
    PLANE_FEEDBACK_MAX = 4 + 20 + 4 * 512 + 4   # one transport-cc feedback message we write

cpdef enum PlaneCodec:
    CODEC_OPUS = 1
    CODEC_VP8 = 2
    CODEC_H264 = 3
    CODEC_VP9 = 4
    CODEC_OTHER = 5

PLANE_DROP_REASONS = (
    "not_ice", "unknown_type", "too_short", "unprotect", "rtcp_unprotect", "parse",
    "unknown_ssrc", "rtx_padding", "rtx_malformed",
)


# forwarding latency buckets (upper bounds, ns); the last bucket is +Inf
cdef enum:
    PLANE_LATENCY_BUCKETS = 12
cdef uint64_t plane_latency_bounds_ns[11]
plane_latency_bounds_ns[:] = [10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
                              2_500_000, 5_000_000, 10_000_000, 50_000_000]
PLANE_LATENCY_BOUNDS_S = (1e-05, 2.5e-05, 5e-05, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                          0.005, 0.01, 0.05)


cdef inline uint64_t plane_now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000000 + <uint64_t>ts.tv_nsec


cdef inline uint64_t plane_now_ms() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000 + <uint64_t>(ts.tv_nsec // 1000000)


cdef uint64_t plane_address_key(const sockaddr_storage* addr) noexcept nogil:
    """A non-zero 64-bit key of an IPv4 or IPv6 address and port."""
    cdef const sockaddr_in* sin
    cdef const sockaddr_in6* sin6
    cdef uint64_t h = 1469598103934665603ULL
    cdef int i
    if addr.ss_family == AF_INET:
        sin = <const sockaddr_in*>addr
        return (1ULL << 63) | (<uint64_t>sin.sin_addr.s_addr << 16) | sin.sin_port
    if addr.ss_family == AF_INET6:
        sin6 = <const sockaddr_in6*>addr
        for i in range(16):
            h = (h ^ sin6.sin6_addr.s6_addr[i]) * 1099511628211ULL
        h = (h ^ sin6.sin6_port) * 1099511628211ULL
        return (h & ~(1ULL << 63)) | 1
    return 0


cdef bint plane_same_address(const sockaddr_storage* a, const sockaddr_storage* b) noexcept nogil:
    if a.ss_family != b.ss_family:
        return False
    if a.ss_family == AF_INET:
        return (<const sockaddr_in*>a).sin_port == (<const sockaddr_in*>b).sin_port and \
            (<const sockaddr_in*>a).sin_addr.s_addr == (<const sockaddr_in*>b).sin_addr.s_addr
    return (<const sockaddr_in6*>a).sin6_port == (<const sockaddr_in6*>b).sin6_port and \
        memcmp(&(<const sockaddr_in6*>a).sin6_addr, &(<const sockaddr_in6*>b).sin6_addr, 16) == 0


cdef class PlaneConsumer:
    """One subscriber's copy of one PlaneStream: the rewrite applied and where it goes."""

    cdef readonly PlaneTransport transport
    cdef readonly PlaneStream stream           # the stream forwarded now
    cdef PlaneStream _target                   # simulcast: the layer to switch to at a keyframe
    cdef list _layers                          # every stream this consumer is attached to
    cdef readonly uint64_t layer_switches
    # VP8 PictureID / TL0PICIDX rewriting, so that a layer switch shows no jump
    cdef bint _vp8_continuity
    cdef uint16_t _pid_offset
    cdef uint8_t _tl0_offset
    cdef int _last_pid                         # -1: none sent yet
    cdef int _last_tl0
    cdef uint8_t _abs_send_time_id             # this consumer's id, written at send time
    # VP8 temporal layers: forward frames up to _max_tid; _target_tid applies at a frame start
    # (going up only where the stream allows it: TL0 or a layer-sync frame)
    cdef readonly uint8_t max_temporal_layer
    cdef uint8_t _target_tid
    cdef readonly uint64_t dropped_temporal
    cdef uint16_t _highest_in                  # newest inbound sequence number accepted
    cdef bint _seen_in
    # out sequence number -> in sequence number of recent packets, for NACKs (the offsets move
    # when frames are dropped or the layer changes)
    cdef uint16_t _map_out[PLANE_SEQ_MAP]
    cdef uint16_t _map_in[PLANE_SEQ_MAP]
    cdef uint8_t _map_used[PLANE_SEQ_MAP]
    cdef uint32_t _map_ts[PLANE_SEQ_MAP]
    cdef uint16_t _map_pid_offset[PLANE_SEQ_MAP]
    cdef uint8_t _map_tl0_offset[PLANE_SEQ_MAP]
    cdef readonly uint32_t ssrc
    cdef readonly uint8_t payload_type
    cdef readonly uint32_t rtx_ssrc
    cdef readonly uint8_t rtx_payload_type      # 0: no RTX, retransmit the packet as it was
    cdef uint8_t _ext_map[256]
    cdef bint _remap
    cdef readonly bint paused
    cdef readonly bint waiting_keyframe
    cdef bint _synced
    cdef uint16_t _seq_offset
    cdef uint32_t _ts_offset
    cdef uint16_t _sync_in_seq
    cdef bint _sent_any
    cdef readonly uint16_t last_sequence_number
    cdef readonly uint32_t last_timestamp
    cdef uint64_t _last_sent_ms
    cdef uint16_t _rtx_seq
    cdef readonly uint64_t packets
    cdef readonly uint64_t bytes
    cdef readonly uint64_t retransmitted
    cdef readonly uint64_t retransmit_missing
    cdef readonly uint64_t dropped_paused
    cdef readonly uint64_t dropped_old          # from before the point the consumer synced at
    cdef readonly uint64_t protect_errors
    cdef readonly uint64_t padding_sent
    cdef readonly uint64_t red_malformed        # RED packets whose blocks did not parse
    cdef readonly uint8_t red_payload_type      # RED sent as is with this type; 0: primary only
    cdef readonly bint closed

    def __init__(self, PlaneTransport transport not None, PlaneStream stream not None, *,
                 ssrc, int payload_type, rtx_ssrc=0, int rtx_payload_type=0,
                 dict extension_map=None, bint paused=False):
        if not 0 <= payload_type <= 127 or not 0 <= rtx_payload_type <= 127:
            raise ValueError("payload types must be in 0..127")
        self.transport = transport
        self.stream = stream
        self.ssrc = _u32(ssrc, "SSRC")
        self.payload_type = payload_type
        self.rtx_ssrc = _u32(rtx_ssrc, "RTX SSRC")
        self.rtx_payload_type = rtx_payload_type
        self._rtx_seq = <uint16_t>(self.ssrc & 0x7FFF)
        self.set_extension_map(extension_map or {})
        self.paused = paused
        self.waiting_keyframe = stream.kind_video
        self._synced = False
        self._sent_any = False
        self._layers = [stream]
        self._last_pid = -1
        self._last_tl0 = -1
        self.max_temporal_layer = PLANE_ALL_TEMPORAL
        self._target_tid = PLANE_ALL_TEMPORAL

    def set_extension_map(self, dict mapping not None) -> None:
        """Producer extension id -> this consumer's id; ids not in the map are removed."""
        cdef int i
        memset(self._ext_map, 0, 256)
        for key, value in mapping.items():
            if not 1 <= key <= 255 or not 0 <= value <= 14:
                raise ValueError(f"extension id mapping {key} -> {value} is out of range")
            self._ext_map[key] = value
        self._remap = True

    @property
    def sequence_offset(self) -> int:
        return self._seq_offset

    @property
    def timestamp_offset(self) -> int:
        return self._ts_offset

    @property
    def synced(self) -> bool:
        return self._synced

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        """Forward again from the next keyframe (video) or the next packet (audio)."""
        if self.paused:
            self.paused = False
            self._synced = False
            self.waiting_keyframe = self.stream.kind_video

    def request_sync(self) -> None:
        """Start over at the next keyframe, keeping sequence numbers continuous."""
        self._synced = False
        self.waiting_keyframe = self.stream.kind_video

    def close(self) -> None:
        cdef PlaneStream layer
        if not self.closed:
            self.closed = True
            for layer in self._layers:
                layer._remove(self)

    # ---- simulcast ----

    def attach_layer(self, PlaneStream stream not None) -> None:
        """Also receive this stream (another simulcast layer of the same producer); packets
        from it are forwarded only after set_target() and a keyframe."""
        if stream.transport is not self.stream.transport or stream.codec != self.stream.codec:
            raise ValueError("a layer must be a stream of the same transport and codec")
        if stream not in self._layers:
            self._layers.append(stream)
        if self not in stream._consumers:
            stream._consumers.append(self)

    def set_target(self, PlaneStream stream) -> None:
        """Switch to this layer at its next keyframe (None or the current stream: stay)."""
        if stream is not None and stream not in self._layers:
            raise ValueError("not a layer of this consumer")
        self._target = None if stream is self.stream else stream

    @property
    def target(self):
        return self._target

    def set_vp8_continuity(self, bint enabled) -> None:
        """Rewrite VP8 PictureID and TL0PICIDX so they run on across layer switches."""
        self._vp8_continuity = enabled

    def set_temporal_layer(self, int layer) -> None:
        """Forward VP8 frames of temporal layers up to this one (255: all). Lower applies at the
        next frame, higher at the next frame that allows it (TL0 or layer sync)."""
        if not 0 <= layer <= PLANE_ALL_TEMPORAL:
            raise ValueError("temporal layer must be in 0..255")
        self._target_tid = layer

    @property
    def target_temporal_layer(self) -> int:
        return self._target_tid

    def set_red(self, int payload_type) -> None:
        """RED (RFC 2198) from the stream goes to this subscriber as RED with this payload
        type; 0 (the default): as its primary Opus payload only, for subscribers without RED."""
        if not 0 <= payload_type <= 127:
            raise ValueError("payload types must be in 0..127")
        self.red_payload_type = payload_type

    def set_abs_send_time_id(self, int ext_id) -> None:
        """Write the send time into this (consumer-side) abs-send-time extension; 0: don't."""
        if not 0 <= ext_id <= 14:
            raise ValueError("extension id must be in 0..14")
        self._abs_send_time_id = ext_id

    cdef inline bint _accept(self, PlaneStream stream, const uint8_t* buf, const RtpHeader* h,
                             bint keyframe) noexcept:
        """Whether this packet goes out; resynchronises offsets at a (key)frame start."""
        cdef uint64_t now
        cdef uint32_t advance
        if stream is not self.stream:
            # another simulcast layer: only its keyframe, when it is the target, moves us there
            if stream is not self._target or not keyframe or self.paused:
                return False
            self.stream = stream
            self._target = None
            self._synced = False
            self.waiting_keyframe = False
            self.layer_switches += 1
            memset(self._map_used, 0, PLANE_SEQ_MAP)   # old numbers belong to the old stream
            self._seen_in = False
        if self.paused:
            self.dropped_paused += 1
            return False
        if not self._synced:
            if self.waiting_keyframe and not keyframe:
                return False
            self.waiting_keyframe = False
            self._synced = True
            self._sync_in_seq = h.sequence_number
            if self._sent_any:
                now = plane_now_ms()
                advance = <uint32_t>((now - self._last_sent_ms) * self.stream.clock_rate // 1000)
                if advance == 0:
                    advance = 1
                self._seq_offset = <uint16_t>(self.last_sequence_number + 1 - h.sequence_number)
                self._ts_offset = self.last_timestamp + advance - h.timestamp
            if self._vp8_continuity and self._last_pid >= 0:
                self._sync_vp8(buf + h.payload_offset, h.payload_length)
            return True
        # older than the sync point: the subscriber never saw the run it belongs to
        if <int16_t>(h.sequence_number - self._sync_in_seq) < 0:
            self.dropped_old += 1
            return False
        # the sync point follows the stream at a distance, so that it never falls half the
        # sequence space behind (where a 16-bit comparison would call new packets old)
        if <uint16_t>(h.sequence_number - self._sync_in_seq) > 0x4000:
            self._sync_in_seq = <uint16_t>(h.sequence_number - 0x4000)
        if self._target_tid == PLANE_ALL_TEMPORAL and self.max_temporal_layer == PLANE_ALL_TEMPORAL:
            self._note_in(h.sequence_number)
            return True
        if self.dropped_temporal and self._seen_in and \
                <int16_t>(h.sequence_number - self._highest_in) <= 0:
            # a late or repaired packet while frames are being dropped: the offset it would
            # have had is gone, so it is not sent (the subscriber's NACK finds what we sent)
            self.dropped_old += 1
            return False
        self._note_in(h.sequence_number)
        return self._temporal_ok(buf + h.payload_offset, h.payload_length)

    cdef inline void _note_in(self, uint16_t seq) noexcept:
        if not self._seen_in or <int16_t>(seq - self._highest_in) > 0:
            self._highest_in = seq
            self._seen_in = True

    cdef bint _temporal_ok(self, const uint8_t* payload, Py_ssize_t size) noexcept:
        cdef Vp8Descriptor d
        cdef bint frame_start
        if self.stream.codec != CODEC_VP8 or size == 0 or vp8_parse(payload, size, &d) != 0 \
                or not d.has_tid:
            return True
        frame_start = d.start_of_partition and d.partition_index == 0
        if frame_start and self._target_tid != self.max_temporal_layer:
            if self._target_tid < self.max_temporal_layer or d.tid == 0 or d.layer_sync:
                self.max_temporal_layer = self._target_tid
        if d.tid <= self.max_temporal_layer:
            return True
        # dropped: later packets (and PictureIDs) close the gap, so the subscriber sees none
        self._seq_offset = <uint16_t>(self._seq_offset - 1)
        if frame_start and self._vp8_continuity and d.has_picture_id:
            self._pid_offset = <uint16_t>((self._pid_offset - 1) & 0x7FFF)
        self.dropped_temporal += 1
        return False

    cdef void _sync_vp8(self, const uint8_t* payload, Py_ssize_t size) noexcept:
        cdef Vp8Descriptor d
        if vp8_parse(payload, size, &d) != 0:
            return
        if d.has_picture_id:
            self._pid_offset = <uint16_t>((self._last_pid + 1 - d.picture_id) & 0x7FFF)
        if d.has_tl0picidx and self._last_tl0 >= 0:
            self._tl0_offset = <uint8_t>((self._last_tl0 + 1 - d.tl0picidx) & 0xFF)

    cdef void _rewrite_vp8(self, uint8_t* payload, Py_ssize_t size, bint track=True,
                           int pid_offset=-1, int tl0_offset=-1) noexcept:
        """Apply the PictureID/TL0PICIDX offsets (the current ones, or those a retransmitted
        packet was first sent with); track: remember the values as the last sent."""
        cdef Vp8Descriptor d
        cdef uint16_t pid
        cdef uint8_t tl0
        if vp8_parse(payload, size, &d) != 0:
            return
        if pid_offset < 0:
            pid_offset = self._pid_offset
        if tl0_offset < 0:
            tl0_offset = self._tl0_offset
        if d.has_picture_id:
            pid = <uint16_t>((d.picture_id + pid_offset) & (0x7FFF if d.picture_id_15bit else 0x7F))
            vp8_set_picture_id(payload, &d, pid)
            if track:
                self._last_pid = pid
        if d.has_tl0picidx:
            tl0 = <uint8_t>(d.tl0picidx + tl0_offset)
            vp8_set_tl0picidx(payload, &d, tl0)
            if track:
                self._last_tl0 = tl0

    cdef int _strip_red(self, uint8_t* out, RtpHeader* oh) noexcept:
        """Replace a RED payload by its primary block: the new packet length, or -1."""
        cdef Py_ssize_t po = oh.payload_offset
        cdef Py_ssize_t n = oh.payload_length
        cdef Py_ssize_t pos = 0, skip = 0
        cdef uint8_t* p = out + po
        while True:
            if pos >= n:
                return -1
            if p[pos] & 0x80:              # a redundant block's 4-byte header
                if pos + 4 > n:
                    return -1
                skip += ((p[pos + 2] & 0x03) << 8) | p[pos + 3]
                pos += 4
            else:                          # the primary block's 1-byte header, last
                pos += 1
                break
        if pos + skip >= n:
            return -1
        memmove(p, p + pos + skip, n - pos - skip)
        out[0] &= 0xDF                     # any padding went with the old payload's end
        return <int>(po + n - pos - skip)

    cdef int _write(self, uint8_t* out, int length, RtpHeader* oh) noexcept:
        """Rewrite a copy in out (parsed into oh) and protect it: the new length, or -1."""
        cdef uint16_t in_seq = oh.sequence_number
        cdef uint16_t seq = <uint16_t>(oh.sequence_number + self._seq_offset)
        cdef uint32_t ts = oh.timestamp + self._ts_offset
        cdef timespec now
        cdef bint red = self.stream.red_payload_type != 0 and \
            oh.payload_type == self.stream.red_payload_type
        if red and not self.red_payload_type:
            length = self._strip_red(out, oh)
            if length < 0:
                self.red_malformed += 1
                return -1
        rtp_set_ssrc(out, oh, self.ssrc)
        rtp_set_sequence_number(out, oh, seq)
        rtp_set_timestamp(out, oh, ts)
        rtp_set_payload_type(
            out, oh, self.red_payload_type if red and self.red_payload_type else self.payload_type
        )
        if self._remap and oh.element_count:
            rtp_remap_extension_ids(out, oh, self._ext_map)
        if self._abs_send_time_id and oh.element_count:
            # 6.18 fixed-point seconds (so the subscriber can estimate bandwidth and send REMB)
            clock_gettime(CLOCK_MONOTONIC, &now)
            rtp_write_abs_send_time(out, oh, self._abs_send_time_id, <uint32_t>(
                ((<uint64_t>now.tv_sec << 18) | ((<uint64_t>now.tv_nsec << 18) // 1000000000))
                & 0xFFFFFF))
        if self._vp8_continuity and oh.payload_length > 0:
            self._rewrite_vp8(out + oh.payload_offset, oh.payload_length)
        self._map_out[seq & (PLANE_SEQ_MAP - 1)] = seq
        self._map_in[seq & (PLANE_SEQ_MAP - 1)] = in_seq
        self._map_used[seq & (PLANE_SEQ_MAP - 1)] = 1
        self._map_ts[seq & (PLANE_SEQ_MAP - 1)] = ts
        self._map_pid_offset[seq & (PLANE_SEQ_MAP - 1)] = self._pid_offset
        self._map_tl0_offset[seq & (PLANE_SEQ_MAP - 1)] = self._tl0_offset
        if <int16_t>(seq - self.last_sequence_number) > 0 or not self._sent_any:
            self.last_sequence_number = seq
            self.last_timestamp = ts
            self._last_sent_ms = plane_now_ms()
            self._sent_any = True
        cdef int64_t tcc = self.transport._tcc_stamp(out, oh)
        if self.transport._protect(out, &length) != 0:
            self.protect_errors += 1
            return -1
        if tcc >= 0:
            self.transport._bwe.record(tcc, length, tcc_now_us())
        return length

    def retransmit(self, sequence_numbers) -> int:
        """Answer a NACK: resend these outbound sequence numbers from the cache (as RTX when
        negotiated). Returns how many went out; missing ones are counted."""
        cdef PlaneStream stream = self.stream
        cdef WorkerPlane plane = self.transport._plane
        cdef int sent = 0
        cdef uint16_t in_seq
        cdef int length
        cdef uint64_t stored_at
        cdef const uint8_t* cached
        cdef uint8_t* out
        cdef RtpHeader oh
        cdef int slot
        cdef int po
        cdef int plen
        if self.closed or plane is None or stream._cache is None or not self._synced \
                or not self.transport.ready or self.paused:
            return 0    # paused: repairs would only crowd out what still flows (audio)
        cdef uint16_t out_seq
        cdef int index
        cdef int64_t tcc
        for value in sequence_numbers:
            out_seq = <uint16_t>(<int>value & 0xFFFF)
            index = out_seq & (PLANE_SEQ_MAP - 1)
            if not self._map_used[index] or self._map_out[index] != out_seq:
                self.retransmit_missing += 1    # never sent, or too long ago
                continue
            in_seq = self._map_in[index]
            cached = stream._cache.get_c(in_seq, &length, &stored_at)
            if cached == NULL:
                self.retransmit_missing += 1
                continue
            slot = plane._out.count
            out = plane._out.data[slot]
            if self.rtx_payload_type:
                if rtp_parse(cached, length, &oh) != 0:
                    continue
                po = <int>oh.payload_offset
                plen = <int>oh.payload_length
                memcpy(out, cached, po)
                out[0] &= 0xDF                       # no padding in the RTX packet
                store16(out + po, out_seq)
                memcpy(out + po + 2, cached + po, plen)
                length = po + 2 + plen
                if rtp_parse(out, length, &oh) != 0:
                    continue
                rtp_set_ssrc(out, &oh, self.rtx_ssrc)
                rtp_set_sequence_number(out, &oh, self._rtx_seq)
                self._rtx_seq += 1
                rtp_set_timestamp(out, &oh, self._map_ts[index])
                rtp_set_payload_type(out, &oh, self.rtx_payload_type)
                if self._remap and oh.element_count:
                    rtp_remap_extension_ids(out, &oh, self._ext_map)
                if self._vp8_continuity and plen > 0:
                    self._rewrite_vp8(out + po + 2, plen, False, self._map_pid_offset[index],
                                      self._map_tl0_offset[index])
                tcc = self.transport._tcc_stamp(out, &oh)
                if self.transport._protect(out, &length) != 0:
                    self.protect_errors += 1
                    continue
                if tcc >= 0:
                    self.transport._bwe.record(tcc, length, tcc_now_us())
            else:
                memcpy(out, cached, length)
                if rtp_parse(out, length, &oh) != 0:
                    continue
                rtp_set_ssrc(out, &oh, self.ssrc)
                rtp_set_sequence_number(out, &oh, out_seq)
                rtp_set_timestamp(out, &oh, self._map_ts[index])
                rtp_set_payload_type(out, &oh, self.payload_type)
                if self._remap and oh.element_count:
                    rtp_remap_extension_ids(out, &oh, self._ext_map)
                if self._vp8_continuity and oh.payload_length > 0:
                    self._rewrite_vp8(out + oh.payload_offset, oh.payload_length, False,
                                      self._map_pid_offset[index], self._map_tl0_offset[index])
                tcc = self.transport._tcc_stamp(out, &oh)
                if self.transport._protect(out, &length) != 0:
                    self.protect_errors += 1
                    continue
                if tcc >= 0:
                    self.transport._bwe.record(tcc, length, tcc_now_us())
            plane._queue(slot, length, self.transport)
            sent += 1
            self.retransmitted += 1
        plane._flush()
        return sent

    def send_padding(self, int count, int size=PLANE_PADDING_SIZE) -> int:
        """Send count padding-only RTX packets of size padding bytes (a bandwidth probe: each
        carries a transport-wide sequence number, the subscriber discards it). Needs RTX and
        send-side estimation on the transport; returns how many went out."""
        cdef PlaneTransport t = self.transport
        cdef WorkerPlane plane = t._plane
        cdef int sent = 0, slot, length, i
        cdef uint8_t* out
        cdef RtpHeader oh
        cdef int64_t tcc
        if not 1 <= size <= 255 or count < 0:
            raise ValueError("padding size is 1..255 bytes, count >= 0")
        if self.closed or not self.rtx_payload_type or not self._sent_any or t._bwe is None \
                or not t._tcc_out_id or not t._can_send() or t._journal is not None:
            return 0
        for i in range(count):
            slot = plane._out.count
            out = plane._out.data[slot]
            out[0] = 0x80 | 0x20 | 0x10            # V=2, padding, extension
            out[1] = self.rtx_payload_type
            store16(out + 2, self._rtx_seq)
            self._rtx_seq += 1
            store32(out + 4, self.last_timestamp)
            store32(out + 8, self.rtx_ssrc)
            store16(out + 12, 0xBEDE)               # one-byte header extensions, one word
            store16(out + 14, 1)
            out[16] = (t._tcc_out_id << 4) | 1      # transport-wide sequence number, 2 bytes
            out[17] = 0
            out[18] = 0
            out[19] = 0
            memset(out + 20, 0, size - 1)
            out[20 + size - 1] = <uint8_t>size
            length = 20 + size
            if rtp_parse(out, length, &oh) != 0:
                return sent
            tcc = t._tcc_stamp(out, &oh)
            if t._protect(out, &length) != 0:
                self.protect_errors += 1
                return sent
            if tcc >= 0:
                t._bwe.record(tcc, length, tcc_now_us())
            plane._queue(slot, length, t)
            sent += 1
        self.padding_sent += sent
        plane._flush()
        return sent


cdef class PlaneStream:
    """One inbound RTP stream (one SSRC) of a producer, with its consumers."""

    cdef readonly PlaneTransport transport
    cdef readonly uint32_t ssrc
    cdef readonly uint32_t rtx_ssrc
    cdef readonly uint8_t payload_type
    cdef readonly uint8_t rtx_payload_type
    cdef readonly int codec
    cdef readonly bint kind_video
    cdef readonly uint32_t clock_rate
    cdef readonly uint8_t audio_level_id
    cdef readonly uint8_t red_payload_type      # RED around this stream's codec (0: none)
    cdef readonly uint64_t red_packets
    cdef PacketCache _cache
    cdef list _consumers
    cdef readonly object owner
    # receive statistics (RFC 3550 A.1, A.3, A.8)
    cdef bint _started
    cdef int64_t _highest            # extended highest sequence number
    cdef int64_t _base
    cdef readonly uint64_t packets
    cdef readonly uint64_t bytes
    cdef readonly uint64_t rtx_packets
    cdef readonly uint64_t keyframes
    cdef readonly uint64_t duplicates
    cdef uint64_t _expected_prior
    cdef uint64_t _received_prior
    cdef double _jitter
    cdef int64_t _last_transit
    cdef bint _have_transit
    cdef readonly uint64_t last_packet_ms
    cdef readonly uint64_t last_keyframe_ms
    # NACK list: extended sequence numbers still missing
    cdef int64_t _missing[PLANE_NACK_MAX]
    cdef uint64_t _missing_sent_ms[PLANE_NACK_MAX]
    cdef uint8_t _missing_tries[PLANE_NACK_MAX]
    cdef int _missing_count
    cdef readonly uint64_t nack_requested
    cdef readonly uint64_t nack_recovered
    # packets missing when later ones arrived (a gap counted once; repairs do not undo it, and a
    # restart of the sequence is not a gap): a monotonic loss counter for metrics
    cdef readonly uint64_t gaps
    # audio levels since the last take_audio_levels()
    cdef uint64_t _level_sum
    cdef uint32_t _level_count
    cdef uint32_t _voice_count
    # a packet far from the run, held until the next one shows whether the publisher restarted
    cdef uint8_t _held[UDP_DATAGRAM_MAX]
    cdef int _held_length
    cdef uint16_t _held_seq
    cdef readonly uint64_t restarts
    cdef uint64_t _base_packets       # packets before the last restart (reports count after it)
    cdef readonly uint64_t bad_sequence
    cdef readonly bint closed

    def __init__(self, PlaneTransport transport not None, *, ssrc, int payload_type, int codec,
                 int clock_rate, rtx_ssrc=0, int rtx_payload_type=0, int audio_level_id=0,
                 int cache_size=0, object owner=None):
        if clock_rate <= 0:
            raise ValueError("clock rate must be positive")
        if codec not in (CODEC_OPUS, CODEC_VP8, CODEC_H264, CODEC_VP9, CODEC_OTHER):
            raise ValueError(f"unknown codec {codec}")
        if not 0 <= audio_level_id <= 255:
            raise ValueError("audio level extension id must be in 0..255")
        self.transport = transport
        self.ssrc = _u32(ssrc, "SSRC")
        self.rtx_ssrc = _u32(rtx_ssrc, "RTX SSRC")
        self.payload_type = payload_type
        self.rtx_payload_type = rtx_payload_type
        self.codec = codec
        self.kind_video = codec in (CODEC_VP8, CODEC_H264, CODEC_VP9)
        self.clock_rate = clock_rate
        self.audio_level_id = audio_level_id
        self._cache = PacketCache(cache_size) if cache_size > 0 else None
        self._consumers = []
        self.owner = owner

    @property
    def consumers(self) -> list:
        return list(self._consumers)

    def set_red_payload_type(self, int payload_type) -> None:
        """Packets of this payload type are RED (RFC 2198) around the stream's codec."""
        if not 0 <= payload_type <= 127:
            raise ValueError("payload types must be in 0..127")
        self.red_payload_type = payload_type

    def add_consumer(self, PlaneConsumer consumer not None) -> None:
        if consumer.stream is not self:
            raise ValueError("the consumer belongs to another stream")
        if consumer not in self._consumers:
            self._consumers.append(consumer)

    def set_rtx(self, rtx_ssrc, int rtx_payload_type) -> None:
        """The RTX stream that repairs this one (learnt later, e.g. from repaired-rid)."""
        if not 0 < rtx_payload_type <= 127:
            raise ValueError("RTX payload type must be in 1..127")
        self.rtx_ssrc = _u32(rtx_ssrc, "RTX SSRC")
        self.rtx_payload_type = rtx_payload_type

    cdef void _remove(self, PlaneConsumer consumer):
        if consumer in self._consumers:
            self._consumers.remove(consumer)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for consumer in list(self._consumers):
                consumer.close()
            self.transport._remove_stream(self)

    @property
    def highest_sequence(self) -> int:
        return self._highest

    @property
    def jitter(self) -> int:
        """Interarrival jitter in timestamp units."""
        return <uint32_t>self._jitter

    @property
    def lost(self) -> int:
        """Packets missing since the stream (re)started: expected minus received, never
        negative (duplicates and repairs can make received run ahead)."""
        if not self._started:
            return 0
        cdef int64_t expected = self._highest - self._base + 1
        return max(0, expected - <int64_t>(self.packets - self._base_packets))

    def report(self) -> tuple:
        """(fraction_lost, cumulative_lost, extended_highest_seq, jitter) for a report block,
        counted since the previous call (RFC 3550 A.3)."""
        if not self._started:
            return (0, 0, 0, 0)
        cdef int64_t expected = self._highest - self._base + 1
        cdef int64_t lost = expected - <int64_t>(self.packets - self._base_packets)
        cdef int64_t expected_interval = expected - <int64_t>self._expected_prior
        cdef int64_t received = <int64_t>(self.packets - self._base_packets)
        cdef int64_t received_interval = received - <int64_t>self._received_prior
        cdef int64_t lost_interval = expected_interval - received_interval
        self._expected_prior = expected
        self._received_prior = received
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = (lost_interval << 8) // expected_interval
        lost = max(min(lost, 0x7FFFFF), -0x800000)
        return (min(fraction, 255), lost, self._highest & 0xFFFFFFFF, <uint32_t>self._jitter)

    def take_nacks(self) -> list:
        """Sequence numbers to NACK now (each at most PLANE_NACK_RETRIES times, spaced)."""
        cdef uint64_t now = plane_now_ms()
        cdef int i
        cdef int kept = 0
        result = []
        for i in range(self._missing_count):
            if self._missing_tries[i] >= PLANE_NACK_RETRIES \
                    or self._missing[i] < self._highest - 2 * PLANE_NACK_MAX_GAP:
                continue
            if now - self._missing_sent_ms[i] >= PLANE_NACK_INTERVAL_MS \
                    or self._missing_tries[i] == 0:
                result.append(<uint16_t>(self._missing[i] & 0xFFFF))
                self._missing_tries[i] += 1
                self._missing_sent_ms[i] = now
            self._missing[kept] = self._missing[i]
            self._missing_tries[kept] = self._missing_tries[i]
            self._missing_sent_ms[kept] = self._missing_sent_ms[i]
            kept += 1
        self._missing_count = kept
        self.nack_requested += len(result)
        return result

    def take_audio_levels(self) -> tuple:
        """(packets, mean level in -dBov 0..127, packets flagged as voice) since the last call."""
        cdef uint32_t count = self._level_count
        mean = 127 if count == 0 else <int>(self._level_sum // count)
        result = (count, mean, self._voice_count)
        self._level_sum = 0
        self._level_count = 0
        self._voice_count = 0
        return result

    cdef inline bint _repairable(self, uint16_t osn) noexcept:
        """Whether a repair (RTX) of osn can be of use: at most the highest sequence number seen
        and not older than the repair window."""
        cdef int64_t ext
        if not self._started:
            return False
        ext = extend_sequence(self._highest, osn)
        return self._highest - PLANE_MAX_MISORDER <= ext <= self._highest

    cdef void _hold(self, const uint8_t* buf, int length, uint16_t seq) noexcept:
        if self._held_length:
            self.bad_sequence += 1
        if length > UDP_DATAGRAM_MAX:
            self._held_length = 0
            return
        memcpy(self._held, buf, length)
        self._held_length = length
        self._held_seq = seq

    cdef void _restart(self, WorkerPlane plane, uint64_t now) noexcept:
        """The publisher restarted its sequence numbers: start over with the held packet, and
        resynchronise every consumer (their own numbers stay continuous)."""
        cdef RtpHeader hh
        cdef PlaneConsumer consumer
        cdef int length = self._held_length
        cdef uint16_t seq = self._held_seq
        self._held_length = 0
        self.restarts += 1
        self._missing_count = 0
        self._have_transit = False
        self._started = False
        self._expected_prior = 0
        self._received_prior = 0
        self._base_packets = self.packets
        if self._cache is not None:
            self._cache.clear()
        for consumer in self._consumers:
            consumer._synced = False
            consumer.waiting_keyframe = self.kind_video
            consumer._seen_in = False
            # its sent numbers map to the old run's inbound numbers: forget them
            memset(consumer._map_used, 0, PLANE_SEQ_MAP)
        if rtp_parse(self._held, length, &hh) == 0:
            self._receive(plane, self._held, length, &hh, now, False)
        if not self._started:   # the held packet did not parse: start from the current one
            self._started = True
            self._base = self._highest = 0x10000 + <uint16_t>(seq + 1)

    cdef inline void _note_missing(self, int64_t first, int64_t stop) noexcept:
        cdef int64_t s
        for s in range(first, stop):
            if self._missing_count == PLANE_NACK_MAX:
                # keep the newest: drop the oldest entry
                memmove(&self._missing[0], &self._missing[1], (PLANE_NACK_MAX - 1) * sizeof(int64_t))
                memmove(&self._missing_sent_ms[0], &self._missing_sent_ms[1],
                        (PLANE_NACK_MAX - 1) * sizeof(uint64_t))
                memmove(&self._missing_tries[0], &self._missing_tries[1], PLANE_NACK_MAX - 1)
                self._missing_count -= 1
            self._missing[self._missing_count] = s
            self._missing_sent_ms[self._missing_count] = 0
            self._missing_tries[self._missing_count] = 0
            self._missing_count += 1

    cdef inline bint _recovered(self, int64_t ext) noexcept:
        cdef int i
        for i in range(self._missing_count):
            if self._missing[i] == ext:
                self._missing_count -= 1
                self._missing[i] = self._missing[self._missing_count]
                self._missing_tries[i] = self._missing_tries[self._missing_count]
                self._missing_sent_ms[i] = self._missing_sent_ms[self._missing_count]
                self.nack_recovered += 1
                return True
        return False

    cdef void _receive(self, WorkerPlane plane, uint8_t* buf, int length, RtpHeader* h,
                       uint64_t now, bint repaired) noexcept:
        cdef int64_t ext
        cdef int64_t transit
        cdef int64_t d
        cdef bint keyframe = False
        cdef Vp8Descriptor vp8
        cdef const uint8_t* payload = buf + h.payload_offset
        cdef bint voice
        cdef uint8_t level
        cdef PlaneConsumer consumer
        cdef int slot
        cdef int out_len
        cdef RtpHeader oh
        cdef uint64_t stored_at
        cdef uint64_t now_us = 0
        cdef JournalSink journal
        # sequence tracking (RFC 3550 A.1: a large jump is believed only when the next packet
        # continues it; the first packet of the new run is held until then)
        if not self._started:
            self._started = True
            ext = 0x10000 + h.sequence_number
            self._base = ext
            self._highest = ext
        else:
            ext = extend_sequence(self._highest, h.sequence_number)
            if ext > self._highest + PLANE_MAX_DROPOUT or ext < self._highest - PLANE_MAX_MISORDER:
                if self._held_length == 0 or h.sequence_number != <uint16_t>(self._held_seq + 1):
                    self._hold(buf, length, h.sequence_number)
                    return
                self._restart(plane, now)
                ext = extend_sequence(self._highest, h.sequence_number)
            elif self._held_length:
                self._held_length = 0   # the run went on where it was: the held one was stray
                self.bad_sequence += 1
            if ext > self._highest:
                if 1 < ext - self._highest <= PLANE_NACK_MAX_GAP:
                    self.gaps += <uint64_t>(ext - self._highest - 1)
                    self._note_missing(self._highest + 1, ext)
                elif ext - self._highest > PLANE_NACK_MAX_GAP:
                    self._missing_count = 0
                self._highest = ext
            elif ext == self._highest or (not self._recovered(ext) and self._cache is not None
                                          and self._cache.get_c(h.sequence_number, &out_len,
                                                                &stored_at) != NULL):
                self.duplicates += 1
                return
        self.packets += 1
        if self.red_payload_type and h.payload_type == self.red_payload_type:
            self.red_packets += 1
        self.bytes += length
        if repaired:
            self.rtx_packets += 1
        else:
            # interarrival jitter in timestamp units (RFC 3550 A.8)
            transit = <int64_t>(now * self.clock_rate // 1000) - <int64_t>h.timestamp
            if self._have_transit:
                d = transit - self._last_transit
                if d < 0:
                    d = -d
                if d < <int64_t>self.clock_rate * 10:
                    self._jitter += (<double>d - self._jitter) / 16.0
            self._last_transit = transit
            self._have_transit = True
        self.last_packet_ms = now
        if self._cache is not None:
            self._cache.put_c(h.sequence_number, buf, length, now)
        if self.kind_video and h.payload_length > 0:
            if self.codec == CODEC_VP8:
                if vp8_parse(payload, h.payload_length, &vp8) == 0:
                    keyframe = vp8.keyframe
            elif self.codec == CODEC_H264:
                keyframe = h264_is_keyframe(payload, h.payload_length) == 1
            elif self.codec == CODEC_VP9:
                # VP9 descriptor: P bit clear on the first packet (B) of a picture
                keyframe = (payload[0] & 0x40) == 0 and (payload[0] & 0x08) != 0
            if keyframe:
                self.keyframes += 1
                self.last_keyframe_ms = now
        elif self.audio_level_id:
            if rtp_read_audio_level(buf, h, self.audio_level_id, &voice, &level) == 1:
                self._level_sum += level
                self._level_count += 1
                if voice:
                    self._voice_count += 1
        for consumer in self._consumers:
            # a subscriber whose transport is not up yet must not sync on a keyframe it
            # cannot receive
            if not consumer.transport._can_send():
                continue
            if not consumer._accept(self, buf, h, keyframe):
                continue
            slot = plane._out.count
            memcpy(plane._out.data[slot], buf, length)
            oh = h[0]
            out_len = consumer._write(plane._out.data[slot], length, &oh)
            if out_len < 0:
                continue
            consumer.packets += 1
            consumer.bytes += out_len
            journal = consumer.transport._journal
            if journal is not None:
                if now_us == 0:
                    now_us = journal_now_us()
                journal.append_c(JOURNAL_RTP, now_us, plane._out.data[slot], out_len)
                continue
            plane._queue(slot, out_len, consumer.transport)


cdef class PlaneTransport:
    """The data plane side of one WebRtcTransport or PlainRtpTransport: its remote address once
    ICE has passed, its SRTP sessions and its inbound streams."""

    cdef WorkerPlane _plane
    cdef readonly object owner
    cdef SrtpSession _inbound
    cdef SrtpSession _outbound
    cdef sockaddr_storage _addr
    cdef socklen_t _addrlen
    cdef uint64_t _key
    cdef TcpConnection _tcp              # bound to an ICE-TCP connection instead of an address
    # transport-cc: toward a subscriber, sequence numbers and the send-side estimator; from a
    # publisher, the arrivals to report (each with the extension id negotiated)
    cdef SendSideEstimator _bwe
    cdef uint8_t _tcc_out_id
    cdef TccReceiver _tcc_in
    cdef uint8_t _tcc_in_id
    cdef readonly object remote_address
    cdef list _streams
    cdef readonly uint64_t rtp_packets_in
    cdef readonly uint64_t rtp_bytes_in
    cdef readonly uint64_t rtcp_packets_in
    cdef readonly uint64_t packets_out
    cdef readonly uint64_t bytes_out
    cdef readonly uint64_t unknown_ssrc
    cdef readonly uint64_t unprotect_errors
    cdef readonly bint srtp
    cdef readonly bint closed
    # a recording transport: its consumers' packets go to this journal, not to the network
    cdef JournalSink _journal
    # unknown SSRCs recently reported to Python (each at most once a second)
    cdef uint32_t _unknown_ssrcs[8]
    cdef uint64_t _unknown_ms[8]

    def __init__(self, WorkerPlane plane not None, object owner=None, *, bint srtp=True):
        self._plane = plane
        self.owner = owner
        self._streams = []
        self.srtp = srtp

    def set_srtp(self, SrtpSession inbound not None, SrtpSession outbound not None) -> None:
        """Install the sessions made from the DTLS keying material."""
        self._inbound = inbound
        self._outbound = outbound

    @property
    def streams(self) -> list:
        return list(self._streams)

    def set_journal(self, JournalSink sink not None) -> None:
        """Make this a recording transport: what its consumers forward is appended to the
        journal sink (rewritten like a subscriber's copy, not protected, never sent)."""
        if self.srtp:
            raise ValueError("a recording transport is made with srtp=False")
        self._journal = sink

    @property
    def journal(self):
        return self._journal

    @property
    def ready(self) -> bool:
        return not self.closed and (not self.srtp or self._outbound is not None)

    def add_stream(self, PlaneStream stream not None) -> None:
        if stream.transport is not self:
            raise ValueError("the stream belongs to another transport")
        for other in self._streams:
            if (<PlaneStream>other).ssrc == stream.ssrc:
                raise ValueError(f"SSRC {stream.ssrc} already has a stream on this transport")
        self._streams.append(stream)

    cdef void _remove_stream(self, PlaneStream stream):
        if stream in self._streams:
            self._streams.remove(stream)

    def set_remote_address(self, tuple address not None) -> None:
        """Bind this transport to a remote (host, port): its datagrams now reach it."""
        self._plane._bind(self, address)

    def set_tcp_connection(self, TcpConnection connection not None) -> None:
        """Bind this transport to an ICE-TCP connection (leaving any UDP address): what it
        sends goes framed on the connection, and the connection's frames reach it."""
        self._plane._bind_tcp(self, connection)

    @property
    def tcp(self):
        """The ICE-TCP connection this transport is bound to, or None."""
        return self._tcp

    def enable_send_side_estimation(self, int ext_id, double start_bitrate,
                                    double min_bitrate, double max_bitrate):
        """Number what goes out with transport-wide sequence numbers (extension ext_id, as
        the subscriber negotiated it) and estimate from the subscriber's feedback; returns
        the SendSideEstimator (the same one when already on)."""
        if not 1 <= ext_id <= 14:
            raise ValueError("the transport-cc extension id is 1..14 (one-byte headers)")
        if self._bwe is None or self._tcc_out_id != ext_id:
            self._bwe = SendSideEstimator(start_bitrate, min_bitrate, max_bitrate)
            self._tcc_out_id = ext_id
        return self._bwe

    @property
    def estimator(self):
        """The SendSideEstimator (transport-cc toward this subscriber), or None."""
        return self._bwe

    def enable_transport_feedback(self, int ext_id) -> None:
        """Record arrivals of packets with the transport-wide sequence number (extension
        ext_id, as the publisher negotiated it), for send_transport_feedback()."""
        if not 1 <= ext_id <= 255:
            raise ValueError("extension id is 1..255")
        if self._tcc_in is None:
            self._tcc_in = TccReceiver()
        self._tcc_in_id = ext_id

    @property
    def transport_feedback(self):
        """The TccReceiver of this publisher's arrivals, or None."""
        return self._tcc_in

    def send_transport_feedback(self, uint32_t sender_ssrc, uint32_t media_ssrc) -> int:
        """Send transport-cc feedback for what arrived since the last (protected, as RTCP);
        the messages sent."""
        cdef WorkerPlane plane = self._plane
        cdef Py_ssize_t n
        cdef int length, slot, sent = 0
        if self._tcc_in is None or self.closed or self.remote_address is None:
            return 0
        if self.srtp and self._outbound is None:
            return 0
        while sent < 4:
            slot = plane._out.count
            n = self._tcc_in.write_feedback(plane._out.data[slot], PLANE_FEEDBACK_MAX,
                                            sender_ssrc, media_ssrc, tcc_now_us())
            if n <= 0:
                break
            length = <int>n
            if self.srtp and self._outbound.protect_rtcp_c(plane._out.data[slot], &length) != 0:
                break
            plane._queue(slot, length, self)
            sent += 1
        if sent:
            plane._flush()
        return sent

    cdef inline int64_t _tcc_stamp(self, uint8_t* out, RtpHeader* oh) noexcept:
        """Write the next transport-wide sequence number into a packet going out (one that
        has the extension): the number, or -1 when not numbered."""
        cdef Py_ssize_t off, length
        cdef int64_t seq
        if self._bwe is None or not self._tcc_out_id or not oh.element_count:
            return -1
        if not rtp_find_extension(oh, self._tcc_out_id, &off, &length) or length != 2:
            return -1
        seq = self._bwe.assign()
        store16(out + off, <uint16_t>(seq & 0xFFFF))
        return seq

    @property
    def protocol(self) -> str:
        """'tcp' when bound to an ICE-TCP connection, else 'udp'."""
        return "tcp" if self._tcp is not None else "udp"

    def send_rtcp(self, bytes packet not None) -> bool:
        """Protect (when SRTP) and send one RTCP compound; False when not ready or refused."""
        cdef WorkerPlane plane = self._plane
        cdef int slot
        cdef int length = len(packet)
        if self.closed or self.remote_address is None or length > UDP_RECV_MAX:
            return False
        if self.srtp and self._outbound is None:
            return False
        slot = plane._out.count
        memcpy(plane._out.data[slot], PyBytes_AS_STRING(packet), length)
        if self.srtp and self._outbound.protect_rtcp_c(plane._out.data[slot], &length) != 0:
            return False
        plane._queue(slot, length, self)
        plane._flush()
        return True

    def redeliver(self, bytes packet not None) -> bool:
        """Route an already unprotected RTP packet (the one that revealed a new SSRC, once
        Python has created its stream), so that a stream's first packet — often the start of a
        keyframe — is not lost. False if it does not parse or still has no stream."""
        cdef uint8_t buf[UDP_DATAGRAM_MAX]
        cdef RtpHeader h
        cdef bint rtx = False
        cdef int length = len(packet)
        if self.closed or length > UDP_RECV_MAX:
            return False
        memcpy(buf, PyBytes_AS_STRING(packet), length)
        if rtp_parse(buf, length, &h) != 0 or self._find(h.ssrc, &rtx) is None:
            return False
        self._plane._route(self, buf, length, &h, plane_now_ms())
        self._plane._flush()
        return True

    def send_raw(self, bytes data not None) -> bool:
        """Send a datagram as it is (STUN, DTLS) to the bound remote address."""
        if self.closed or self.remote_address is None:
            return False
        if self._tcp is not None:
            return self._tcp.send_frame(data)
        return self._plane._sock.sendto(data, self.remote_address) == len(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for stream in list(self._streams):
                stream.close()
            self._plane._unbind(self)
            if self._tcp is not None:
                # the connection was made for this transport's ICE: nothing else may use it
                self._tcp.close("transport_closed")
            self._inbound = None
            self._outbound = None

    cdef bint _report_unknown(self, uint32_t ssrc, uint64_t now) noexcept:
        """Whether to tell Python about this unknown SSRC now: once a second per SSRC, for up
        to 8 interleaved SSRCs (the least recently reported one makes room)."""
        cdef int i
        cdef int oldest = 0
        for i in range(8):
            if self._unknown_ssrcs[i] == ssrc and self._unknown_ms[i] != 0:
                if now - self._unknown_ms[i] < 1000:
                    return False
                self._unknown_ms[i] = now
                return True
            if self._unknown_ms[i] < self._unknown_ms[oldest]:
                oldest = i
        self._unknown_ssrcs[oldest] = ssrc
        self._unknown_ms[oldest] = now if now else 1
        return True

    cdef inline bint _can_send(self) noexcept:
        if self._journal is not None:
            return not self.closed
        return not self.closed and (self._key != 0 or self._tcp is not None) and \
            (not self.srtp or self._outbound is not None)

    cdef inline int _protect(self, uint8_t* buf, int* length) noexcept:
        """SRTP-protect an outgoing RTP packet in place (plain transports send it as it is)."""
        if not self.srtp:
            return 0
        if self._outbound is None:
            return -1
        return self._outbound.protect_rtp_c(buf, length)

    cdef PlaneStream _find(self, uint32_t ssrc, bint* rtx) noexcept:
        cdef PlaneStream stream
        for stream in self._streams:
            if stream.ssrc == ssrc:
                rtx[0] = False
                return stream
            if stream.rtx_ssrc == ssrc and stream.rtx_ssrc != 0:
                rtx[0] = True
                return stream
        return None


cdef class WorkerPlane:
    """The data plane of one worker: one UDP socket, the address table and the forwarding loop."""

    cdef readonly UdpBatchSocket socket
    cdef UdpBatchSocket _sock
    cdef object _handler
    cdef object _loop
    cdef DatagramBatch* _in
    cdef DatagramBatch* _out
    # open-addressing table: address key -> PlaneTransport (borrowed; _by_key owns them)
    cdef uint64_t* _keys
    cdef PyObject** _values
    cdef int _capacity
    cdef int _used
    cdef dict _by_key
    cdef readonly uint64_t received
    cdef readonly uint64_t forwarded
    cdef readonly uint64_t send_errors
    cdef readonly uint64_t handler_errors
    cdef uint64_t _drops[9]
    # ICE-TCP: the connection whose frames are being dispatched (None: datagrams of the UDP
    # socket), the connections with frames to write at the next flush, and their counters
    cdef TcpConnection _source
    cdef list _tcp_pending
    cdef readonly int tcp_connections
    cdef readonly uint64_t tcp_accepted
    cdef readonly uint64_t tcp_bad_frames
    cdef readonly uint64_t tcp_send_dropped
    # forwarding latency: from the start of processing a received batch to the sendmmsg of
    # each packet forwarded from it, counted per packet in fixed buckets (PLANE_LATENCY_BOUNDS)
    cdef uint64_t _batch_start_ns
    cdef uint64_t _latency_counts[PLANE_LATENCY_BUCKETS]
    cdef double _latency_sum

    def __cinit__(self):
        self._in = <DatagramBatch*>PyMem_Malloc(sizeof(DatagramBatch))
        self._out = <DatagramBatch*>PyMem_Malloc(sizeof(DatagramBatch))
        self._keys = NULL
        self._values = NULL
        if self._in == NULL or self._out == NULL:
            raise MemoryError()
        self._out.count = 0
        self._alloc_table(PLANE_TABLE_INITIAL)

    def __init__(self, UdpBatchSocket sock not None, object handler not None):
        """handler gets: on_stun(data, addr), on_dtls(transport, data), on_rtcp(transport,
        data), on_unknown_ssrc(transport, ssrc, payload_type, packet)."""
        self.socket = sock
        self._sock = sock
        self._handler = handler
        self._by_key = {}
        self._tcp_pending = []

    def __dealloc__(self):
        PyMem_Free(self._in)
        PyMem_Free(self._out)
        PyMem_Free(self._keys)
        PyMem_Free(self._values)

    cdef int _alloc_table(self, int capacity) except -1:
        cdef uint64_t* keys = <uint64_t*>PyMem_Calloc(capacity, sizeof(uint64_t))
        cdef PyObject** values = <PyObject**>PyMem_Calloc(capacity, sizeof(PyObject*))
        if keys == NULL or values == NULL:
            PyMem_Free(keys)
            PyMem_Free(values)
            raise MemoryError()
        PyMem_Free(self._keys)
        PyMem_Free(self._values)
        self._keys = keys
        self._values = values
        self._capacity = capacity
        self._used = 0
        return 0

    cdef int _table_rebuild(self, int capacity) except -1:
        cdef PlaneTransport t
        self._alloc_table(capacity)
        for key, t in self._by_key.items():
            self._table_put(key, t)
        return 0

    cdef void _table_put(self, uint64_t key, PlaneTransport t) noexcept:
        cdef int i = <int>(key * 11400714819323198485ULL >> 40) & (self._capacity - 1)
        while self._keys[i] != 0 and self._keys[i] != key:
            i = (i + 1) & (self._capacity - 1)
        if self._keys[i] == 0:
            self._used += 1
        self._keys[i] = key
        self._values[i] = <PyObject*>t

    cdef PlaneTransport _lookup(self, const sockaddr_storage* addr):
        cdef uint64_t key = plane_address_key(addr)
        cdef int i
        cdef PlaneTransport t
        if key == 0:
            return None
        i = <int>(key * 11400714819323198485ULL >> 40) & (self._capacity - 1)
        while self._keys[i] != 0:
            if self._keys[i] == key and self._values[i] != NULL:
                t = <PlaneTransport>self._values[i]
                if plane_same_address(&t._addr, addr):
                    return t
                return None
            i = (i + 1) & (self._capacity - 1)
        return None

    cdef int _bind(self, PlaneTransport t, tuple address) except -1:
        cdef sockaddr_storage addr
        cdef socklen_t addrlen
        if t.closed:
            raise ValueError("the transport is closed")
        tuple_to_sockaddr(address, self._sock._family, &addr, &addrlen)
        cdef uint64_t key = plane_address_key(&addr)
        if t._tcp is not None:
            t._tcp._transport = None
            t._tcp = None
        other = self._by_key.get(key)
        if other is not None and other is not t:
            # the address moved to another transport (a peer reconnected): the newest wins
            self._unbind(<PlaneTransport>other)
        if t._key != 0 and t._key != key:
            self._unbind(t)
        t._addr = addr
        t._addrlen = addrlen
        t._key = key
        t.remote_address = address
        self._by_key[key] = t
        if (self._used + 1) * 2 > self._capacity:
            self._table_rebuild(self._capacity * 2)
        else:
            self._table_put(key, t)
        return 0

    cdef int _bind_tcp(self, PlaneTransport t, TcpConnection connection) except -1:
        if t.closed:
            raise ValueError("the transport is closed")
        if connection.closed:
            raise ValueError("the connection is closed")
        if connection._plane is not self:
            raise ValueError("the connection belongs to another worker")
        if connection._transport is not None and connection._transport is not t:
            raise ValueError("the connection is bound to another transport")
        self._unbind(t)
        if t._tcp is not None and t._tcp is not connection:
            t._tcp._transport = None       # the old connection stays open until it expires
        t._tcp = connection
        connection._transport = t
        t._addr = connection._addr
        t._addrlen = connection._addrlen
        t.remote_address = connection.remote_address
        return 0

    cdef int _unbind(self, PlaneTransport t) except -1:
        if t._key == 0 or self._by_key.get(t._key) is not t:
            return 0
        del self._by_key[t._key]
        t._key = 0
        self._table_rebuild(self._capacity)
        return 0

    @property
    def transports(self) -> int:
        return len(self._by_key)

    @property
    def dropped(self) -> dict:
        """Datagrams dropped in the data plane, by reason."""
        return {name: self._drops[i] for i, name in enumerate(PLANE_DROP_REASONS)}

    def start(self, loop) -> None:
        self._loop = loop
        loop.add_reader(self._sock.fileno(), self._on_readable)

    def stop(self) -> None:
        if self._loop is not None:
            if not self._sock.closed:
                self._loop.remove_reader(self._sock.fileno())
            self._loop = None

    def _on_readable(self) -> None:
        cdef int rounds
        cdef int count
        for rounds in range(UDP_BATCHES_PER_WAKEUP):
            count = self._sock.recv_c(self._in)
            if count <= 0:
                break
            self.process_batch(count)

    def feed(self, bytes data not None, tuple addr not None) -> None:
        """Process one datagram as if it had arrived from addr (tests, fuzzing)."""
        if len(data) > UDP_RECV_MAX:
            self._sock.truncated += 1
            return
        memcpy(self._in.data[0], PyBytes_AS_STRING(data), len(data))
        self._in.lengths[0] = len(data)
        tuple_to_sockaddr(addr, self._sock._family, &self._in.addrs[0], &self._in.addrlens[0])
        self._in.count = 1
        self.process_batch(1)

    cdef void process_batch(self, int count):
        cdef int i
        cdef uint64_t now = plane_now_ms()
        self._batch_start_ns = plane_now_ns()
        self.received += count
        for i in range(count):
            self._dispatch(self._in.data[i], self._in.lengths[i], &self._in.addrs[i], now)
        self._flush()
        self._batch_start_ns = 0

    @property
    def latency_histogram(self) -> tuple:
        """Forwarding latency so far: (bucket upper bounds in seconds, cumulative counts per
        bound, the +Inf count, the sum in seconds), as Prometheus histograms want them."""
        cdef int i
        cdef uint64_t running = 0
        counts = []
        for i in range(PLANE_LATENCY_BUCKETS - 1):
            running += self._latency_counts[i]
            counts.append(running)
        running += self._latency_counts[PLANE_LATENCY_BUCKETS - 1]
        return (PLANE_LATENCY_BOUNDS_S, tuple(counts), running, self._latency_sum)

    cdef void _dispatch(self, uint8_t* buf, int length, sockaddr_storage* addr, uint64_t now):
        cdef uint8_t b
        cdef PlaneTransport t
        if length < 1:
            self._drops[2] += 1
            return
        b = buf[0]
        if b <= 3:
            if self._source is not None:
                self._call(self._handler.on_stun_tcp,
                           PyBytes_FromStringAndSize(<char*>buf, length), self._source)
            else:
                self._call(self._handler.on_stun, PyBytes_FromStringAndSize(<char*>buf, length),
                           sockaddr_to_tuple(addr))
            return
        if 20 <= b <= 63:
            t = self._from(addr)
            if t is None:
                self._drops[0] += 1
                return
            self._call(self._handler.on_dtls, t, PyBytes_FromStringAndSize(<char*>buf, length))
            return
        if b < 128 or b > 191:
            self._drops[1] += 1
            return
        t = self._from(addr)
        if t is None or t.closed:
            self._drops[0] += 1
            return
        if length < 12:
            self._drops[2] += 1
            return
        if 192 <= buf[1] <= 223:
            self._rtcp(t, buf, length)
        else:
            self._rtp(t, buf, length, now)

    cdef inline PlaneTransport _from(self, const sockaddr_storage* addr):
        """The transport a datagram or frame is from: the one its ICE-TCP connection is
        bound to, or the one bound to its UDP source address."""
        if self._source is not None:
            return self._source._transport
        return self._lookup(addr)

    cdef void _rtcp(self, PlaneTransport t, uint8_t* buf, int length):
        cdef RtcpHeaderView view
        cdef Py_ssize_t offset = 0
        cdef int found
        cdef bint other = False
        cdef int64_t now_us
        if t.srtp:
            if t._inbound is None or t._inbound.unprotect_rtcp_c(buf, &length) != 0:
                self._drops[4] += 1
                t.unprotect_errors += 1
                return
        t.rtcp_packets_in += 1
        if t._bwe is not None:
            # transport-cc feedback goes to the estimator here; Python gets the rest (a
            # compound of feedback alone, the usual case, never reaches it)
            now_us = tcc_now_us()
            while True:
                found = rtcp_next(buf, length, offset, &view)
                if found != 1:
                    other = other or found != 0
                    break
                if view.packet_type == RTCP_RTPFB and view.fmt == 15:
                    t._bwe.on_feedback(buf + view.offset + 4, view.length - 4 - view.padding,
                                       now_us)
                else:
                    other = True
                offset = view.offset + view.length
            if not other:
                return
        self._call(self._handler.on_rtcp, t, PyBytes_FromStringAndSize(<char*>buf, length))

    cdef void _rtp(self, PlaneTransport t, uint8_t* buf, int length, uint64_t now):
        cdef RtpHeader h
        cdef PlaneStream stream
        cdef bint rtx = False
        cdef uint16_t osn
        cdef Py_ssize_t po
        if t.srtp:
            if t._inbound is None or t._inbound.unprotect_rtp_c(buf, &length) != 0:
                self._drops[3] += 1
                t.unprotect_errors += 1
                return
        if rtp_parse(buf, length, &h) != 0:
            self._drops[5] += 1
            return
        t.rtp_packets_in += 1
        t.rtp_bytes_in += length
        if t._tcc_in is not None and h.element_count and \
                rtp_read_transport_seq(buf, &h, t._tcc_in_id, &osn) == 1:
            t._tcc_in.record(osn, tcc_now_us())
        self._route(t, buf, length, &h, now)

    cdef void _route(self, PlaneTransport t, uint8_t* buf, int length, RtpHeader* hp,
                     uint64_t now):
        """An unprotected, parsed RTP packet to its stream (RTX unwrapped)."""
        cdef RtpHeader h = hp[0]
        cdef PlaneStream stream
        cdef bint rtx = False
        cdef uint16_t osn
        cdef Py_ssize_t po
        stream = t._find(h.ssrc, &rtx)
        if stream is None:
            t.unknown_ssrc += 1
            self._drops[6] += 1
            # tell Python once per SSRC per second, not per packet
            if t._report_unknown(h.ssrc, now):
                self._call(self._handler.on_unknown_ssrc, t, h.ssrc, h.payload_type,
                           PyBytes_FromStringAndSize(<char*>buf, length))
            return
        if stream.closed:
            return
        if rtx:
            if h.payload_length == 0:
                self._drops[7] += 1        # padding / bandwidth probe: never forwarded
                return
            if h.payload_length < 2 or h.payload_type != stream.rtx_payload_type:
                self._drops[8] += 1
                return
            # unwrap RFC 4588: original sequence number, then the original payload
            po = h.payload_offset
            osn = load16(buf + po)
            if not stream._repairable(osn):
                # not a repair of anything this stream can still be missing
                self._drops[8] += 1
                return
            memmove(buf + po, buf + po + 2, h.payload_length - 2)
            length = <int>(po + h.payload_length - 2)
            buf[0] &= 0xDF
            if rtp_parse(buf, length, &h) != 0:
                self._drops[8] += 1
                return
            rtp_set_ssrc(buf, &h, stream.ssrc)
            rtp_set_sequence_number(buf, &h, osn)
            rtp_set_payload_type(buf, &h, stream.payload_type)
        stream._receive(self, buf, length, &h, now, rtx)

    cdef inline void _queue(self, int slot, int length, PlaneTransport t) noexcept:
        if t._tcp is not None:
            # framed into the connection's send buffer (the slot is free again at once)
            if t._tcp._enqueue(self._out.data[slot], length):
                self.forwarded += 1
                t.packets_out += 1
                t.bytes_out += length
            return
        self._out.lengths[slot] = length
        self._out.addrs[slot] = t._addr
        self._out.addrlens[slot] = t._addrlen
        self._out.count = slot + 1
        t.packets_out += 1
        t.bytes_out += length
        if self._out.count == UDP_BATCH_MAX:
            self._flush()

    cdef void _flush(self) noexcept:
        cdef int dropped = 0
        cdef int sent = self._out.count
        cdef uint64_t waited
        cdef int bucket
        cdef list pending
        if self._tcp_pending:
            pending = self._tcp_pending
            self._tcp_pending = []
            for connection in pending:
                (<TcpConnection>connection)._write()
        self.forwarded += self._sock.flush_c(self._out, &dropped)
        self.send_errors += dropped
        if self._batch_start_ns and sent > dropped:
            waited = plane_now_ns() - self._batch_start_ns
            bucket = 0
            while bucket < PLANE_LATENCY_BUCKETS - 1 and waited > plane_latency_bounds_ns[bucket]:
                bucket += 1
            self._latency_counts[bucket] += sent - dropped
            self._latency_sum += (sent - dropped) * (waited * 1e-9)

    cdef void _call(self, object method, object a, object b, object c=None, object d=None):
        try:
            if d is not None:
                method(a, b, c, d)
            else:
                method(a, b)
        except Exception:
            self.handler_errors += 1
            _udp_logger.exception("data plane handler %r raised; still forwarding", method)
