"""Prometheus metrics of a MediaServer, read from its objects at scrape time.

``server.metrics`` is a :class:`prometheus_client.CollectorRegistry` of the server's own (no
global state: several servers in one process keep theirs apart); ``server.metrics_text()`` is
the exposition text. Nothing is counted per packet in Python: counters come from the data
plane's and the objects' own totals when scraped. Labels are bounded (kinds, reasons), never per
peer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from mediasrv.media_server import MediaServer


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
        for kind in ("audio", "video"):
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
        yield CounterMetricFamily(
            "mediasrv_recording_bytes",
            "Bytes written to recording journals",
            value=totals["bytes"],
        )
        yield CounterMetricFamily(
            "mediasrv_recording_dropped_records",
            "Journal records dropped because the flush fell behind",
            value=totals["dropped"],
        )
        yield CounterMetricFamily(
            "mediasrv_recording_write_errors",
            "Journal writes that failed (each stops its recording)",
            value=totals["write_errors"],
        )
        stopped = CounterMetricFamily(
            "mediasrv_recordings_stopped", "Recordings stopped, by reason", labels=["reason"]
        )
        for reason, count in sorted(server.recordings_stopped.items()):
            stopped.add_metric([reason], count)
        yield stopped


def server_registry(server: MediaServer) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RecordingCollector(server))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
