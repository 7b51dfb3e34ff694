# Transport-wide congestion control (draft-holmer-rmcat-transport-wide-cc-extensions-01) in the
# data plane, both ways:
#
# - TccReceiver, on a publisher's transport: the arrival time of every packet carrying a
#   transport-wide sequence number, reported back as transport-cc feedback (so the browser's own
#   send-side estimator drives its uplink).
# - SendSideEstimator, on a subscriber's transport: every packet sent gets the transport's next
#   sequence number and is remembered (send time, size); the subscriber's feedback gives arrival
#   times, from which a delay-based estimate (packet groups, a trendline over the queueing
#   delay, an adaptive threshold, AIMD rate control — draft-ietf-rmcat-gcc-02 as libwebrtc
#   refines it) and a loss-based one are kept; the estimate is the lower of the two. Probes
#   (bursts of padding at a target rate) measure room above what is sent.
#
# All per-packet work is here; Python reads ``estimate`` and ``state`` a few times a second.

from libc.math cimport fabs, pow, sqrt
from libc.stdint cimport int16_t, int32_t, int64_t


cdef enum:
    TCC_HISTORY = 8192          # packets sent, remembered for feedback (power of 2)
    TCC_RECEIVED = 4096         # packets received, waiting to be reported (power of 2)
    TCC_FEEDBACK_PACKETS = 512  # packets per feedback message written
    TCC_DECODE_MAX = 4096       # statuses decoded per feedback message read
    TCC_GROUP_US = 5000         # packets sent within 5 ms form one group
    TCC_TREND_WINDOW = 20
    TCC_RATE_BUCKETS = 20       # acknowledged rate: 20 buckets of 50 ms by arrival time
    TCC_RATE_BUCKET_US = 50000
    TCC_REORDER_US = 50000      # a gap is reported lost once a later packet is this old

cpdef enum BweState:
    BWE_NORMAL = 0
    BWE_OVERUSE = 1
    BWE_UNDERUSE = 2

cdef enum:
    RC_HOLD = 0
    RC_INCREASE = 1
    RC_DECREASE = 2


cdef struct TccSent:
    int64_t seq         # unwrapped; -1: free
    int64_t send_us
    int32_t size
    int32_t probe       # probe cluster, 0: none
    bint acked          # reported received
    bint lost           # reported lost (a later report may still say received: reordering)


cdef inline int64_t tcc_now_us() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000 + ts.tv_nsec // 1000


cdef inline int64_t tcc_unwrap(uint16_t seq, int64_t near) noexcept nogil:
    """The 64-bit sequence number closest to ``near`` whose low 16 bits are ``seq``."""
    cdef int64_t value = (near & ~<int64_t>0xFFFF) | seq
    if value - near > 0x8000:
        value -= 0x10000
    elif near - value > 0x8000:
        value += 0x10000
    return value


cdef class TccReceiver:
    """Arrival times of a publisher's packets by transport-wide sequence number, and the
    transport-cc feedback that reports them."""

    cdef int64_t* _arrival_us
    cdef int64_t* _seqs
    cdef int64_t _highest       # -1: nothing received
    cdef int64_t _next_report   # the first sequence number not reported yet
    cdef uint8_t _feedback_count
    cdef readonly uint64_t packets
    cdef readonly uint64_t feedbacks

    def __cinit__(self):
        self._arrival_us = <int64_t*>PyMem_Malloc(TCC_RECEIVED * sizeof(int64_t))
        self._seqs = <int64_t*>PyMem_Malloc(TCC_RECEIVED * sizeof(int64_t))
        if self._arrival_us == NULL or self._seqs == NULL:
            raise MemoryError()
        cdef int i
        for i in range(TCC_RECEIVED):
            self._seqs[i] = -1
        self._highest = -1
        self._next_report = -1

    def __dealloc__(self):
        PyMem_Free(self._arrival_us)
        PyMem_Free(self._seqs)

    cdef void record(self, uint16_t seq, int64_t now_us) noexcept:
        cdef int64_t s
        if self._highest < 0:
            s = seq + 0x10000     # room below for reordered packets
            self._highest = s
            self._next_report = s
        else:
            s = tcc_unwrap(seq, self._highest)
            if s < self._next_report:
                return            # already reported (as lost), or far too old
            if s > self._highest:
                if s - self._highest > TCC_RECEIVED:
                    # a jump (a restarted sender): report from here on
                    self._next_report = s
                self._highest = s
                if self._highest - self._next_report >= TCC_RECEIVED:
                    self._next_report = self._highest - TCC_RECEIVED + 1
        self._seqs[s & (TCC_RECEIVED - 1)] = s
        self._arrival_us[s & (TCC_RECEIVED - 1)] = now_us
        self.packets += 1

    cdef Py_ssize_t write_feedback(self, uint8_t* out, Py_ssize_t capacity, uint32_t sender,
                                   uint32_t media, int64_t now_us) noexcept:
        """One transport-cc feedback message for what arrived since the last one; its size,
        0 when there is nothing to report, -1 on an error. A missing packet is reported lost
        only once a later one has been here TCC_REORDER_US (it may be reordered, not lost)."""
        cdef int32_t deltas[TCC_FEEDBACK_PACKETS]
        cdef int64_t first = self._next_report
        cdef int64_t n, i, s, ticks, settled = -1
        cdef int64_t reference_us = -1, previous_us
        cdef Py_ssize_t written
        if self._highest < 0 or first > self._highest:
            return 0
        n = self._highest - first + 1
        if n > TCC_FEEDBACK_PACKETS:
            n = TCC_FEEDBACK_PACKETS
        for i in range(n):
            s = first + i
            if self._seqs[s & (TCC_RECEIVED - 1)] == s:
                reference_us = self._arrival_us[s & (TCC_RECEIVED - 1)]
                break
        if reference_us < 0:
            return 0              # nothing received in the range yet
        # the reference time is in 64 ms units; the first delta is from it
        reference_us = (reference_us // 64000) * 64000
        previous_us = reference_us
        for i in range(n):
            s = first + i
            if self._seqs[s & (TCC_RECEIVED - 1)] != s:
                deltas[i] = RTCP_TWCC_NOT_RECEIVED
                continue
            ticks = (self._arrival_us[s & (TCC_RECEIVED - 1)] - previous_us) // 250
            if ticks < -0x8000 or ticks > 0x7FFF:
                n = i             # the rest goes in the next message
                break
            deltas[i] = <int32_t>ticks
            previous_us += ticks * 250
        if n == 0:
            self._next_report = first + 1   # unrepresentable: give it up
            return 0
        # missing packets after the last one that has settled wait for a later message
        for i in range(n):
            s = first + i
            if deltas[i] != RTCP_TWCC_NOT_RECEIVED and \
                    now_us - self._arrival_us[s & (TCC_RECEIVED - 1)] >= TCC_REORDER_US:
                settled = i
        while n > 0 and deltas[n - 1] == RTCP_TWCC_NOT_RECEIVED:
            n -= 1
        for i in range(settled + 1, n):
            if deltas[i] == RTCP_TWCC_NOT_RECEIVED:
                n = i
                break
        written = rtcp_write_twcc(out, capacity, sender, media, <uint16_t>(first & 0xFFFF),
                                  <int32_t>((reference_us // 64000) & 0x7FFFFF),
                                  self._feedback_count, deltas, n)
        if written < 0:
            return -1
        self._feedback_count += 1
        self._next_report = first + n
        self.feedbacks += 1
        return written


cdef class SendSideEstimator:
    """A subscriber's bandwidth, estimated from its transport-cc feedback (see the header)."""

    cdef TccSent* _sent
    cdef int64_t _next_seq
    cdef readonly double estimate          # bit/s: the lower of the two below
    cdef readonly double delay_based
    cdef readonly double loss_based
    cdef readonly int state                # BweState of the delay detector
    cdef readonly double min_bitrate
    cdef readonly double max_bitrate
    # packet groups
    cdef bint _have_group
    cdef bint _have_previous
    cdef int64_t _group_first_send
    cdef int64_t _group_last_send
    cdef int64_t _group_last_arrival
    cdef int64_t _previous_send
    cdef int64_t _previous_arrival
    cdef int64_t _first_arrival
    # trendline
    cdef double _accumulated
    cdef double _smoothed
    cdef double _window_x[TCC_TREND_WINDOW]
    cdef double _window_y[TCC_TREND_WINDOW]
    cdef int _window_n
    cdef int _window_pos
    cdef int _num_deltas
    cdef readonly double trend
    cdef double _previous_trend
    cdef readonly double threshold
    cdef double _threshold_updated_ms
    cdef double _time_over_using
    cdef int _overuse_count
    # rate control
    cdef int _rc_state
    cdef int64_t _rc_updated_us
    cdef int64_t _last_decrease_us
    cdef double _capacity                  # kbit/s at the last overuse (-1: unknown)
    cdef double _capacity_var
    # acknowledged rate (by arrival time)
    cdef int64_t _bucket_epoch[TCC_RATE_BUCKETS]
    cdef int64_t _bucket_bytes[TCC_RATE_BUCKETS]
    cdef int64_t _latest_epoch
    cdef int64_t _rate_since_us
    # loss
    cdef uint64_t _window_received
    cdef uint64_t _window_lost
    cdef int64_t _loss_updated_us
    cdef int64_t _loss_decreased_us
    cdef readonly double loss_fraction
    # probes
    cdef int32_t _probing                  # the cluster being sent now (0: none)
    cdef int32_t _cluster
    cdef int64_t _cluster_sent_bytes
    cdef int64_t _cluster_first_send
    cdef int64_t _cluster_last_send
    cdef int32_t _cluster_last_size
    cdef int64_t _cluster_sent_count
    cdef int64_t _cluster_received_bytes
    cdef int64_t _cluster_first_arrival
    cdef int64_t _cluster_last_arrival
    cdef int32_t _cluster_first_size
    cdef int64_t _cluster_received_count
    cdef bint _cluster_done
    cdef int64_t _cluster_last_seq
    cdef int64_t _highest_reported
    cdef readonly double last_probe
    # counters
    cdef readonly uint64_t packets_sent
    cdef readonly uint64_t packets_acked
    cdef readonly uint64_t packets_lost
    cdef readonly uint64_t feedbacks
    cdef readonly uint64_t feedback_errors
    cdef readonly uint64_t overuses
    cdef readonly uint64_t probes

    def __cinit__(self):
        self._sent = <TccSent*>PyMem_Malloc(TCC_HISTORY * sizeof(TccSent))
        if self._sent == NULL:
            raise MemoryError()
        cdef int i
        for i in range(TCC_HISTORY):
            self._sent[i].seq = -1

    def __init__(self, double start_bitrate=1_000_000, double min_bitrate=30_000,
                 double max_bitrate=20_000_000):
        if not 0 < min_bitrate <= start_bitrate <= max_bitrate:
            raise ValueError("need 0 < min_bitrate <= start_bitrate <= max_bitrate")
        self.min_bitrate = min_bitrate
        self.max_bitrate = max_bitrate
        self.estimate = self.delay_based = self.loss_based = start_bitrate
        self._next_seq = 1
        self.threshold = 12.5
        self._threshold_updated_ms = -1
        self._time_over_using = -1
        self._capacity = -1
        self._capacity_var = 0.4
        self._rc_state = RC_INCREASE
        self._latest_epoch = -1
        self._rate_since_us = -1

    def __dealloc__(self):
        PyMem_Free(self._sent)

    # ---- sending ----

    cdef inline int64_t assign(self) noexcept:
        """The next transport-wide sequence number (its low 16 bits go in the packet)."""
        cdef int64_t seq = self._next_seq
        self._next_seq += 1
        return seq

    cdef void record(self, int64_t seq, int size, int64_t now_us) noexcept:
        cdef TccSent* entry = &self._sent[seq & (TCC_HISTORY - 1)]
        entry.seq = seq
        entry.send_us = now_us
        entry.size = size
        entry.probe = self._probing
        entry.acked = False
        entry.lost = False
        self.packets_sent += 1
        if self._probing and self._probing == self._cluster:
            if self._cluster_sent_count == 0:
                self._cluster_first_send = now_us
            self._cluster_sent_bytes += size
            self._cluster_last_send = now_us
            self._cluster_last_size = size
            self._cluster_sent_count += 1
            self._cluster_last_seq = seq

    def start_probe(self) -> int:
        """Mark what is sent from now on as one probe cluster (until end_probe)."""
        self._cluster += 1
        self._probing = self._cluster
        self._cluster_sent_bytes = self._cluster_sent_count = 0
        self._cluster_received_bytes = self._cluster_received_count = 0
        self._cluster_first_arrival = self._cluster_last_arrival = -1
        self._cluster_done = False
        return self._cluster

    def end_probe(self) -> None:
        self._probing = 0

    @property
    def probing(self) -> bool:
        return self._probing != 0

    # ---- feedback ----

    cdef void on_feedback(self, const uint8_t* p, Py_ssize_t n, int64_t now_us) noexcept:
        """One transport-cc feedback message, from its sender SSRC on (the RTCP header
        stripped); a malformed one is counted and ignored."""
        cdef uint8_t symbols[TCC_DECODE_MAX]
        cdef Py_ssize_t count, have = 0, pos = 16, i
        cdef uint16_t base
        cdef int64_t arrival_us, seq, near
        cdef TccSent* entry
        if n < 16:
            self.feedback_errors += 1
            return
        base = _rtcp_u16(p + 8)
        count = _rtcp_u16(p + 10)
        if count == 0:
            self.feedback_errors += 1
            return
        if count > TCC_DECODE_MAX:
            count = TCC_DECODE_MAX
        arrival_us = <int64_t>_rtcp_s24(p + 12) * 64000
        while have < count:
            if n - pos < 2:
                self.feedback_errors += 1
                return
            have = _rtcp_twcc_decode_chunk(_rtcp_u16(p + pos), symbols, have, count)
            if have < 0:
                self.feedback_errors += 1
                return
            pos += 2
        near = self._next_seq - 1
        self.feedbacks += 1
        for i in range(count):
            if symbols[i] == 1:
                if pos + 1 > n:
                    self.feedback_errors += 1
                    break
                arrival_us += <int64_t>p[pos] * 250
                pos += 1
            elif symbols[i] == 2:
                if pos + 2 > n:
                    self.feedback_errors += 1
                    break
                arrival_us += <int64_t>(<int16_t>_rtcp_u16(p + pos)) * 250
                pos += 2
            seq = tcc_unwrap(<uint16_t>(base + i), near)
            if seq > self._highest_reported:
                self._highest_reported = seq
            entry = &self._sent[seq & (TCC_HISTORY - 1)]
            if entry.seq != seq or entry.acked:
                continue
            if symbols[i] == 0:
                if not entry.lost:
                    entry.lost = True
                    self.packets_lost += 1
                    self._window_lost += 1
                continue     # a later message may still report it received
            if entry.lost:
                # reordered, not lost: take back the loss it was counted as
                entry.lost = False
                self.packets_lost -= 1
                if self._window_lost:
                    self._window_lost -= 1
            entry.acked = True
            self.packets_acked += 1
            self._window_received += 1
            self._on_packet(entry, arrival_us)
        self._update(now_us)

    cdef void _on_packet(self, TccSent* entry, int64_t arrival_us) noexcept:
        cdef int64_t epoch = arrival_us // TCC_RATE_BUCKET_US
        cdef int b = <int>(epoch % TCC_RATE_BUCKETS)
        if self._bucket_epoch[b] != epoch:
            self._bucket_epoch[b] = epoch
            self._bucket_bytes[b] = 0
        self._bucket_bytes[b] += entry.size
        if epoch > self._latest_epoch:
            self._latest_epoch = epoch
        if self._rate_since_us < 0:
            self._rate_since_us = arrival_us
        if entry.probe and entry.probe == self._cluster:
            if self._cluster_received_count == 0:
                self._cluster_first_arrival = arrival_us
                self._cluster_first_size = entry.size
            self._cluster_received_bytes += entry.size
            if arrival_us > self._cluster_last_arrival:
                self._cluster_last_arrival = arrival_us
            self._cluster_received_count += 1
        # packet groups by send time
        if not self._have_group:
            self._have_group = True
            self._group_first_send = self._group_last_send = entry.send_us
            self._group_last_arrival = arrival_us
            self._first_arrival = arrival_us
            return
        if entry.send_us < self._group_first_send:
            return       # sent before the group: reordered far back, not a delay sample
        if entry.send_us - self._group_first_send <= TCC_GROUP_US:
            if entry.send_us > self._group_last_send:
                self._group_last_send = entry.send_us
            if arrival_us > self._group_last_arrival:
                self._group_last_arrival = arrival_us
            return
        if self._have_previous:
            self._trendline((self._group_last_arrival - self._previous_arrival) / 1000.0,
                            (self._group_last_send - self._previous_send) / 1000.0,
                            (self._group_last_arrival - self._first_arrival) / 1000.0)
        self._have_previous = True
        self._previous_send = self._group_last_send
        self._previous_arrival = self._group_last_arrival
        self._group_first_send = self._group_last_send = entry.send_us
        self._group_last_arrival = arrival_us

    cdef void _trendline(self, double arrival_delta_ms, double send_delta_ms,
                         double arrival_ms) noexcept:
        cdef double x_mean = 0, y_mean = 0, numerator = 0, denominator = 0
        cdef int i
        if self._num_deltas < 1000:
            self._num_deltas += 1
        self._accumulated += arrival_delta_ms - send_delta_ms
        self._smoothed = 0.9 * self._smoothed + 0.1 * self._accumulated
        self._window_x[self._window_pos] = arrival_ms
        self._window_y[self._window_pos] = self._smoothed
        self._window_pos = (self._window_pos + 1) % TCC_TREND_WINDOW
        if self._window_n < TCC_TREND_WINDOW:
            self._window_n += 1
        if self._window_n == TCC_TREND_WINDOW:
            for i in range(TCC_TREND_WINDOW):
                x_mean += self._window_x[i]
                y_mean += self._window_y[i]
            x_mean /= TCC_TREND_WINDOW
            y_mean /= TCC_TREND_WINDOW
            for i in range(TCC_TREND_WINDOW):
                numerator += (self._window_x[i] - x_mean) * (self._window_y[i] - y_mean)
                denominator += (self._window_x[i] - x_mean) * (self._window_x[i] - x_mean)
            if denominator != 0:
                self.trend = numerator / denominator
        self._detect(send_delta_ms, arrival_ms)

    cdef void _detect(self, double send_delta_ms, double now_ms) noexcept:
        cdef int n = self._num_deltas if self._num_deltas < 60 else 60
        cdef double modified = n * self.trend * 4.0
        cdef double k, dt
        if modified > self.threshold:
            if self._time_over_using < 0:
                self._time_over_using = send_delta_ms / 2
            else:
                self._time_over_using += send_delta_ms
            self._overuse_count += 1
            if self._time_over_using > 10 and self._overuse_count > 1 and \
                    self.trend >= self._previous_trend:
                self._time_over_using = 0
                self._overuse_count = 0
                self.state = BWE_OVERUSE
        elif modified < -self.threshold:
            self._time_over_using = -1
            self._overuse_count = 0
            self.state = BWE_UNDERUSE
        else:
            self._time_over_using = -1
            self._overuse_count = 0
            self.state = BWE_NORMAL
        self._previous_trend = self.trend
        # the adaptive threshold follows |modified| (fast down, slow up), 6..600
        if self._threshold_updated_ms < 0:
            self._threshold_updated_ms = now_ms
        if fabs(modified) > self.threshold + 15:
            self._threshold_updated_ms = now_ms
            return
        k = 0.039 if fabs(modified) < self.threshold else 0.0087
        dt = now_ms - self._threshold_updated_ms
        if dt > 100:
            dt = 100
        if dt < 0:
            dt = 0
        self.threshold += k * (fabs(modified) - self.threshold) * dt
        if self.threshold < 6:
            self.threshold = 6
        elif self.threshold > 600:
            self.threshold = 600
        self._threshold_updated_ms = now_ms

    cdef double acknowledged(self) noexcept:
        """Bit/s received by the subscriber over the last second (by its arrival times)."""
        cdef int64_t total = 0
        cdef int b
        cdef double span
        if self._latest_epoch < 0:
            return 0
        for b in range(TCC_RATE_BUCKETS):
            if self._latest_epoch - self._bucket_epoch[b] < TCC_RATE_BUCKETS:
                total += self._bucket_bytes[b]
        span = (self._latest_epoch + 1) * TCC_RATE_BUCKET_US - self._rate_since_us
        if span > TCC_RATE_BUCKETS * TCC_RATE_BUCKET_US:
            span = TCC_RATE_BUCKETS * TCC_RATE_BUCKET_US
        if span < 200000:
            return 0      # too little to go by
        return total * 8 * 1e6 / span

    cdef void _update(self, int64_t now_us) noexcept:
        cdef double acked = self.acknowledged()
        cdef double dt, rate = self.delay_based, kbps, increase, loss
        if self._rc_updated_us == 0:
            self._rc_updated_us = now_us
        dt = (now_us - self._rc_updated_us) / 1e6
        if dt > 1.0:
            dt = 1.0
        self._rc_updated_us = now_us
        if self.state == BWE_OVERUSE:
            if now_us - self._last_decrease_us > 200000:
                rate = 0.85 * acked if acked > 0 else 0.85 * rate
                if rate > self.delay_based:
                    rate = self.delay_based
                kbps = acked / 1000
                if kbps > 0:
                    if self._capacity < 0:
                        self._capacity = kbps
                    else:
                        self._capacity = 0.95 * self._capacity + 0.05 * kbps
                self._last_decrease_us = now_us
                self._rc_state = RC_HOLD
                self.overuses += 1
        elif self.state == BWE_UNDERUSE:
            self._rc_state = RC_HOLD
        else:
            if self._rc_state == RC_HOLD:
                self._rc_state = RC_INCREASE
            if self._rc_state == RC_INCREASE and acked > 0:
                kbps = acked / 1000
                if self._capacity > 0 and kbps > self._capacity + 3 * sqrt(self._capacity_var *
                                                                           self._capacity):
                    self._capacity = -1       # well above what was seen: search again
                if self._capacity > 0:
                    # near the last capacity: about a packet per response time
                    increase = 1200 * 8 * dt / 0.2
                    if increase < 1000 * dt:
                        increase = 1000 * dt
                    rate += increase
                else:
                    rate *= pow(1.08, dt)
                if rate > 1.5 * acked + 10000:
                    rate = 1.5 * acked + 10000
                if rate < self.delay_based and self.state == BWE_NORMAL:
                    rate = self.delay_based   # the cap does not lower it
        self.delay_based = self._clamp(rate)
        # loss-based: over windows of at least a second and 50 packets (shorter ones see random
        # loss of a few percent as bursts over 10%, and walk the estimate down)
        if self._window_received + self._window_lost >= 50 and \
                now_us - self._loss_updated_us >= 1000000:
            loss = self._window_lost / <double>(self._window_received + self._window_lost)
            self.loss_fraction = loss
            if loss > 0.1:
                if now_us - self._loss_decreased_us > 300000:
                    self.loss_based = self._clamp(self.loss_based * (1 - 0.5 * loss))
                    self._loss_decreased_us = now_us
            elif loss < 0.02:
                self.loss_based = self._clamp(self.loss_based * 1.08)
            if self.loss_based < self.delay_based * 0.5 and loss <= 0.1:
                self.loss_based = self._clamp(self.delay_based * 0.5)
            self._window_received = self._window_lost = 0
            self._loss_updated_us = now_us
        if self.loss_based > self.delay_based * 1.5 + 10000:
            self.loss_based = self._clamp(self.delay_based * 1.5 + 10000)
        self._probe_result()
        self.estimate = self.delay_based if self.delay_based < self.loss_based else self.loss_based

    cdef void _probe_result(self) noexcept:
        """A finished probe cluster whose packets were reported: the rate it got through."""
        cdef double send_rate, receive_rate, result
        if self._cluster_done or self._probing == self._cluster or \
                self._cluster_received_count < 5 or self._cluster_sent_count < 5:
            return
        if self._cluster_received_count < self._cluster_sent_count * 0.8 and \
                self._highest_reported < self._cluster_last_seq:
            return       # wait for the rest of its feedback
        self._cluster_done = True
        if self._cluster_last_send <= self._cluster_first_send or \
                self._cluster_last_arrival <= self._cluster_first_arrival:
            return
        send_rate = (self._cluster_sent_bytes - self._cluster_last_size) * 8 * 1e6 / \
            (self._cluster_last_send - self._cluster_first_send)
        receive_rate = (self._cluster_received_bytes - self._cluster_first_size) * 8 * 1e6 / \
            (self._cluster_last_arrival - self._cluster_first_arrival)
        result = send_rate if send_rate < receive_rate else receive_rate
        if receive_rate < 0.9 * send_rate:
            result = 0.95 * receive_rate   # the path could not carry the probe: its rate
        self.last_probe = result
        self.probes += 1
        if self.state != BWE_OVERUSE and result > self.delay_based:
            self.delay_based = self._clamp(result)
            self._capacity = -1
            if self.loss_based < self.delay_based:
                self.loss_based = self.delay_based

    cdef inline double _clamp(self, double value) noexcept:
        if value < self.min_bitrate:
            return self.min_bitrate
        if value > self.max_bitrate:
            return self.max_bitrate
        return value

    def feed(self, bytes message not None, now_us=None) -> None:
        """Process one transport-cc feedback message, RTCP header included, received at
        now_us (default: now) — tests and simulations."""
        cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(message)
        if len(message) < 4:
            self.feedback_errors += 1
            return
        self.on_feedback(p + 4, len(message) - 4, tcc_now_us() if now_us is None else now_us)

    def sent(self, int size, int64_t send_us) -> int:
        """Record a packet as sent (tests): its transport-wide sequence number."""
        cdef int64_t seq = self.assign()
        self.record(seq, size, send_us)
        return <int>(seq & 0xFFFF)

    @property
    def acknowledged_bitrate(self) -> float:
        return self.acknowledged()


def tcc_feedback(TccReceiver receiver not None, uint32_t sender, uint32_t media, now_us=None):
    """The next transport-cc feedback message of a receiver at now_us (default: now), or
    None (tests)."""
    cdef uint8_t out[4 + 20 + 4 * TCC_FEEDBACK_PACKETS + 4]
    cdef Py_ssize_t n = receiver.write_feedback(out, sizeof(out), sender, media,
                                                tcc_now_us() if now_us is None else now_us)
    if n <= 0:
        return None
    return PyBytes_FromStringAndSize(<char*>out, n)


def tcc_record(TccReceiver receiver not None, int seq, int64_t arrival_us) -> None:
    """Record an arrival (tests)."""
    receiver.record(<uint16_t>(seq & 0xFFFF), arrival_us)
