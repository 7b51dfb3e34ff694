"""Prometheus metrics of a MediaServer, read from its objects at scrape time.

The HTTP frontend registers these collectors on the server's own registry
(``server.metrics``); ``server.metrics_text()`` is the exposition text, served at ``/metrics``
(docs/operations.md). Nothing is counted per packet
in Python: counters come from the data plane's and the objects' own totals when scraped
(closed producers and consumers leave theirs in their worker's ``closed_totals``), and the
forwarding latency histogram is kept by the data plane itself. Labels are bounded (kinds,
states, reasons, plugin hooks), never per room or peer.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from mediasrv.media_server import MediaServer

KINDS = ("audio", "video")
RTT_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
ESTIMATE_BOUNDS = (100e3, 250e3, 500e3, 1e6, 2e6, 4e6, 8e6)
JITTER_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
LOOP_LAG_BOUNDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def _counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_text, value=value)


def _labelled(
    family: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    help_text: str,
    labels: list[str],
    values: Iterable[tuple[tuple[str, ...], float]],
) -> Metric:
    metric = family(name, help_text, labels=labels)
    for label_values, value in values:
        metric.add_metric(list(label_values), value)
    return metric


def _gauge_histogram(
    name: str, help_text: str, bounds: tuple[float, ...], values: list[float]
) -> GaugeHistogramMetricFamily:
    buckets = [(str(bound), float(sum(1 for v in values if v <= bound))) for bound in bounds]
    buckets.append(("+Inf", float(len(values))))
    return GaugeHistogramMetricFamily(name, help_text, buckets=buckets, gsum_value=sum(values))


class ServerCollector(Collector):
    """Everything but recordings: rooms, peers, transports, producers, consumers, packets,
    losses, repairs, keyframe requests, layers, RTT, jitter, forwarding latency, drops,
    DTLS/ICE failures, refused requests, plugins, CPU."""

    def __init__(self, server: MediaServer, sessions: set[web.WebSocketResponse]) -> None:
        self.server = server
        self.sessions = sessions

    def collect(self) -> Iterator[Metric]:
        server = self.server
        rooms = list(server.rooms.values())
        transports = [
            t for w in server.workers for r in w.routers.values() for t in r.transports.values()
        ]
        producers = [p for t in transports for p in t.producers.values()]
        consumers = [c for t in transports for c in t.consumers.values()]
        yield GaugeMetricFamily("mediasrv_rooms", "Rooms open", value=len(rooms))
        yield GaugeMetricFamily(
            "mediasrv_peers", "Peers in rooms", value=sum(len(r.peers) for r in rooms)
        )
        yield GaugeMetricFamily(
            "mediasrv_signaling_sessions",
            "Signaling WebSocket connections",
            value=len(self.sessions),
        )
        yield GaugeMetricFamily(
            "mediasrv_ready", "1 while the server takes joins", value=server.ready
        )
        yield GaugeMetricFamily(
            "mediasrv_draining", "1 while the server drains for a stop", value=server.draining
        )
        states: Counter[tuple[str, str]] = Counter(
            (t.kind, getattr(t, "state", "connected" if t.connected else "new")) for t in transports
        )
        yield _labelled(
            GaugeMetricFamily,
            "mediasrv_transports",
            "Transports by kind and state",
            ["kind", "state"],
            ((key, float(n)) for key, n in sorted(states.items())),
        )
        protocols: Counter[str] = Counter(
            protocol
            for t in transports
            if (protocol := getattr(t, "ice_protocol", None)) is not None
        )
        yield _labelled(
            GaugeMetricFamily,
            "mediasrv_ice_transports",
            "WebRTC transports with an ICE path, by the protocol it runs on (udp, tcp)",
            ["protocol"],
            (((p,), float(protocols[p])) for p in ("udp", "tcp")),
        )
        yield _labelled(
            GaugeMetricFamily,
            "mediasrv_producers",
            "Producers by kind",
            ["kind"],
            (((k,), float(sum(1 for p in producers if p.kind == k))) for k in KINDS),
        )
        yield _labelled(
            GaugeMetricFamily,
            "mediasrv_consumers",
            "Consumers by kind (recordings included)",
            ["kind"],
            (((k,), float(sum(1 for c in consumers if c.kind == k))) for k in KINDS),
        )
        totals: Counter[str] = Counter()
        for worker in server.workers:
            totals.update(worker.closed_totals)
        for producer in producers:
            totals.update(producer.counters())
        for consumer in consumers:
            totals.update(consumer.counters())
        for transport in transports:
            totals.update(transport.counters())
        for direction, prefix, help_text in (
            ("received", "mediasrv_rtp_received", "RTP from publishers"),
            ("forwarded", "mediasrv_rtp_forwarded", "RTP copies forwarded to consumers"),
        ):
            yield _labelled(
                CounterMetricFamily,
                f"{prefix}_packets",
                f"{help_text}: packets",
                ["kind"],
                (((k,), float(totals[f"{direction}_packets_{k}"])) for k in KINDS),
            )
            yield _labelled(
                CounterMetricFamily,
                f"{prefix}_bytes",
                f"{help_text}: bytes",
                ["kind"],
                (((k,), float(totals[f"{direction}_bytes_{k}"])) for k in KINDS),
            )
        for name, key, help_text in (
            ("mediasrv_rtp_lost_packets", "lost", "Packets publishers sent that never arrived"),
            ("mediasrv_nacks_sent", "nacks_sent", "Packets asked again from publishers (NACK)"),
            ("mediasrv_nack_recovered_packets", "nack_recovered", "Packets NACKs brought back"),
            ("mediasrv_nacks_received", "nacks_received", "Packets subscribers asked again"),
            ("mediasrv_retransmissions", "retransmitted", "Packets resent to subscribers"),
            ("mediasrv_keyframe_requests", "keyframe_requests", "PLIs sent to publishers"),
            ("mediasrv_pli_received", "pli_received", "Keyframe requests from subscribers"),
            ("mediasrv_layer_switches", "layer_switches", "Simulcast layer switches"),
            ("mediasrv_bandwidth_overuses", "bwe_overuses", "Delay-based overuse detections"),
            ("mediasrv_bandwidth_probes", "bwe_probes", "Bandwidth probes with a result"),
            ("mediasrv_ice_restarts", "ice_restarts", "ICE restarts completed"),
        ):
            yield _counter(name, help_text, float(totals[key]))
        planes = [w.plane for w in server.workers if w.plane is not None]
        yield _counter(
            "mediasrv_datagrams_received",
            "UDP datagrams received by the workers",
            float(sum(p.received for p in planes)),
        )
        yield _counter(
            "mediasrv_datagrams_sent",
            "UDP datagrams sent by the data plane",
            float(sum(p.forwarded for p in planes)),
        )
        yield _counter(
            "mediasrv_send_errors",
            "Datagrams the kernel refused to send",
            float(sum(p.send_errors for p in planes)),
        )
        yield from self._ice_tcp(planes)
        drops: Counter[str] = Counter()
        for worker in server.workers:
            if worker.plane is not None:
                drops.update(worker.plane.dropped)
            drops.update(worker.drops)
        yield _labelled(
            CounterMetricFamily,
            "mediasrv_datagrams_dropped",
            "Datagrams dropped, by reason",
            ["reason"],
            (((reason,), float(n)) for reason, n in sorted(drops.items())),
        )
        for name, attr, help_text in (
            ("mediasrv_dtls_failures", "dtls_failures", "DTLS handshakes failed, by reason"),
            ("mediasrv_ice_failures", "ice_failures", "ICE sessions failed, by reason"),
        ):
            failures: Counter[str] = Counter()
            for worker in server.workers:
                failures.update(getattr(worker, attr))
            yield _labelled(
                CounterMetricFamily,
                name,
                help_text,
                ["reason"],
                (((reason,), float(n)) for reason, n in sorted(failures.items())),
            )
        yield _counter(
            "mediasrv_timer_errors",
            "Worker timer callbacks that raised (logged; the others ran)",
            float(sum(w.timer_errors for w in server.workers)),
        )
        yield _labelled(
            CounterMetricFamily,
            "mediasrv_requests_rejected",
            "Requests refused, by what and why",
            ["reason"],
            (((reason,), float(n)) for reason, n in sorted(server.rejected.items())),
        )
        yield from self._latency(planes)
        yield _gauge_histogram(
            "mediasrv_rtt_seconds",
            "Round-trip times of the consumers now (from receiver reports)",
            RTT_BOUNDS,
            [c.rtt_ms / 1000 for c in consumers if c.rtt_ms is not None],
        )
        yield _gauge_histogram(
            "mediasrv_bandwidth_estimate_bits",
            "Send-side bandwidth estimates of the subscribers now (transport-cc), bit/s",
            ESTIMATE_BOUNDS,
            [
                float(t.estimator.estimate)
                for t in transports
                if t.estimator is not None and t.estimator.feedbacks
            ],
        )
        yield _gauge_histogram(
            "mediasrv_jitter_seconds",
            "Interarrival jitter of the producers now",
            JITTER_BOUNDS,
            [p.stream.jitter / p.codec.clock_rate for p in producers if p.stream is not None],
        )
        yield from self._plugins()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = CounterMetricFamily(
            "mediasrv_worker_cpu_seconds", "CPU time of the worker process", labels=["worker"]
        )
        cpu.add_metric(["0"], usage.ru_utime + usage.ru_stime)
        yield cpu

    def _ice_tcp(self, planes: list[Any]) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "mediasrv_ice_tcp_connections",
            "ICE-TCP connections open on the workers' passive candidates",
            value=float(sum(p.tcp_connections for p in planes)),
        )
        yield _counter(
            "mediasrv_ice_tcp_accepted",
            "ICE-TCP connections accepted",
            float(sum(p.tcp_accepted for p in planes)),
        )
        closed: Counter[str] = Counter()
        for worker in self.server.workers:
            closed.update(worker.tcp_closed)
        yield _labelled(
            CounterMetricFamily,
            "mediasrv_ice_tcp_closed",
            "ICE-TCP connections closed, by reason (bad_frame: framing refused)",
            ["reason"],
            (((reason,), float(n)) for reason, n in sorted(closed.items())),
        )
        yield _counter(
            "mediasrv_ice_tcp_send_dropped",
            "Packets dropped because an ICE-TCP connection's send buffer was full",
            float(sum(p.tcp_send_dropped for p in planes)),
        )

    @staticmethod
    def _latency(planes: list[Any]) -> Iterator[Metric]:
        if not planes:
            return
        bounds: tuple[float, ...] = planes[0].latency_histogram[0]
        cumulative = [0] * len(bounds)
        count, total = 0, 0.0
        for plane in planes:
            _, counts, plane_count, plane_sum = plane.latency_histogram
            cumulative = [a + b for a, b in zip(cumulative, counts, strict=True)]
            count += plane_count
            total += plane_sum
        buckets = [(str(b), float(n)) for b, n in zip(bounds, cumulative, strict=True)]
        buckets.append(("+Inf", float(count)))
        yield HistogramMetricFamily(
            "mediasrv_forwarding_latency_seconds",
            "From a packet's arrival batch to its sendmmsg, per forwarded packet (data plane)",
            buckets=buckets,
            sum_value=total,
        )

    def _plugins(self) -> Iterator[Metric]:
        manager = self.server.plugins
        for name, source, help_text in (
            ("mediasrv_plugin_hook_calls", manager.calls, "Plugin hook calls"),
            ("mediasrv_plugin_errors", manager.errors, "Plugin hooks and listeners that raised"),
        ):
            yield _labelled(
                CounterMetricFamily,
                name,
                help_text,
                ["plugin", "hook"],
                ((key, float(n)) for key, n in sorted(source.items())),
            )
        yield _labelled(
            CounterMetricFamily,
            "mediasrv_plugin_hook_seconds",
            "Time spent in plugin hooks",
            ["plugin", "hook"],
            ((key, seconds) for key, seconds in sorted(manager.seconds.items())),
        )
        yield _labelled(
            CounterMetricFamily,
            "mediasrv_plugin_denials",
            "Refusals by plugin gates, by code",
            ["plugin", "code"],
            ((key, float(n)) for key, n in sorted(manager.denials.items())),
        )


class RecordingCollector(Collector):
    """Recordings: how many run, how many journals, bytes written, drops and write errors."""

    def __init__(self, server: MediaServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        totals = server.recording_totals
        active = [r.recording for r in server.rooms.values() if r.recording_active]
        yield GaugeMetricFamily(
            "mediasrv_recordings_active", "Room recordings running", value=len(active)
        )
        journals = GaugeMetricFamily(
            "mediasrv_recording_journals_active", "Journals being written", labels=["kind"]
        )
        for kind in KINDS:
            journals.add_metric(
                [kind],
                sum(
                    1
                    for r in active
                    if r is not None
                    for j in r.journals.values()
                    if j.active and j.producer.kind == kind
                ),
            )
        yield journals
        yield _counter(
            "mediasrv_recording_bytes", "Bytes written to recording journals", totals["bytes"]
        )
        yield _counter(
            "mediasrv_recording_dropped_records",
            "Journal records dropped because the flush fell behind",
            totals["dropped"],
        )
        yield _counter(
            "mediasrv_recording_write_errors",
            "Journal writes that failed (each stops its recording)",
            totals["write_errors"],
        )
        yield _labelled(
            CounterMetricFamily,
            "mediasrv_recordings_stopped",
            "Recordings stopped, by reason",
            ["reason"],
            (((reason,), float(n)) for reason, n in sorted(server.recordings_stopped.items())),
        )


class LoopLagMonitor:
    """How late the event loop runs a timer: every ``interval`` seconds, the overshoot of a
    sleep, observed into a histogram (``mediasrv_event_loop_lag_seconds``)."""

    def __init__(self, registry: CollectorRegistry, interval: float = 0.25) -> None:
        self.interval = interval
        self.last = 0.0
        self.histogram = Histogram(
            "mediasrv_event_loop_lag_seconds",
            "How late the event loop ran a timer",
            buckets=LOOP_LAG_BOUNDS,
            registry=registry,
        )

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(self.interval)
            self.last = max(0.0, time.monotonic() - started - self.interval)
            self.histogram.observe(self.last)


def register_collectors(
    server: MediaServer, sessions: set[web.WebSocketResponse]
) -> LoopLagMonitor:
    """The server's collectors on its registry; the loop-lag monitor to run."""
    server.metrics.register(ServerCollector(server, sessions))
    server.metrics.register(RecordingCollector(server))
    return LoopLagMonitor(server.metrics)
