"""The supervisor's metrics: its own series (workers ready, restarts, relayed connections,
rooms, the cluster directory) and the workers' scraped series merged into one set of
families, each sample labelled ``worker``."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence, Sized
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from mediasrv.cluster.directory import ClusterDirectory
from mediasrv.cluster.worker_handle import WorkerHandle


class SupervisedState(Protocol):
    """What the supervisor's own series are read from (a Supervisor)."""

    @property
    def workers(self) -> Sequence[WorkerHandle]: ...

    @property
    def restarts(self) -> Counter[int]: ...

    @property
    def rooms(self) -> Mapping[str, WorkerHandle]: ...

    @property
    def remote_relays(self) -> Sized: ...

    @property
    def directory(self) -> ClusterDirectory | None: ...

    @property
    def forged_relays(self) -> int: ...


class SupervisorCollector(Collector):
    def __init__(self, supervisor: SupervisedState) -> None:
        self.supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        s = self.supervisor
        ready = GaugeMetricFamily(
            "mediasrv_supervisor_workers_ready",
            "Worker processes running and ready",
            labels=["worker"],
        )
        restarts = CounterMetricFamily(
            "mediasrv_supervisor_worker_restarts",
            "Worker processes that exited unasked and were started again",
            labels=["worker"],
        )
        sessions = GaugeMetricFamily(
            "mediasrv_supervisor_relayed_sessions",
            "Signaling connections relayed",
            labels=["worker"],
        )
        for w in s.workers:
            label = [str(w.index)]
            ready.add_metric(label, 1.0 if w.ready else 0.0)
            restarts.add_metric(label, float(s.restarts[w.index]))
            sessions.add_metric(label, float(w.load))
        yield ready
        yield restarts
        yield sessions
        yield GaugeMetricFamily(
            "mediasrv_supervisor_rooms", "Rooms placed on workers", value=float(len(s.rooms))
        )
        yield GaugeMetricFamily(
            "mediasrv_supervisor_relayed_to_nodes",
            "Signaling connections relayed to other nodes of the cluster",
            value=float(len(s.remote_relays)),
        )
        if s.directory is not None:
            yield CounterMetricFamily(
                "mediasrv_cluster_relay_proofs_refused",
                "Connections claiming to be relayed by a node, without a valid proof",
                value=float(s.forged_relays),
            )
            yield CounterMetricFamily(
                "mediasrv_cluster_directory_errors",
                "Redis operations of the cluster directory that failed",
                value=float(s.directory.errors),
            )
            yield CounterMetricFamily(
                "mediasrv_cluster_heartbeats",
                "Heartbeats written to the cluster directory",
                value=float(s.directory.heartbeats),
            )


class WorkersCollector(Collector):
    """The workers' scraped metrics as one set of families, each sample labelled ``worker``."""

    def __init__(self, scraped: list[tuple[WorkerHandle, str]]) -> None:
        self.scraped = scraped

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for worker, text in self.scraped:
            with contextlib.suppress(ValueError):
                for family in text_string_to_metric_families(text):
                    merged = families.get(family.name)
                    if merged is None:
                        merged = families[family.name] = Metric(
                            family.name, family.documentation, family.type, family.unit
                        )
                    for sample in family.samples:
                        merged.add_sample(
                            sample.name,
                            {**sample.labels, "worker": str(worker.index)},
                            sample.value,
                            sample.timestamp,
                        )
        yield from families.values()
