"""mediasrv-bench: a load generator for a mediasrv server, over real WebRTC transports.

    mediasrv-bench --rooms 2 --publishers 1 --ramp 1,5,10,20 --seconds 5 \\
        --json load.json --plot load.png

N rooms, each with P publishers and S subscribers. A publisher sends pre-encoded media (VP8 or
H.264 video, optionally three simulcast layers, and Opus audio) that ffmpeg makes once
(cached in --media-dir) and this tool packetizes itself (bench/media_clips.py), at the clips'
real timing, through a BenchPeer (ICE, DTLS, SRTP; bench/webrtc_peer.py). Subscribers join with
auto-subscribe and count the packets that arrive at their transport without decoding them; a
few of them (--samplers) also unprotect each packet to time it.

The load ramps: at each step more subscribers join every room (their join time measured),
a warm-up passes, then for --seconds the tool measures the server's CPU per forwarded packet,
the forwarded packets/s, the loss at the receivers (what the publishers sent times the
subscribers, against what arrived), the added latency (publisher send to subscriber receive,
both in this process) and the join times. By default it starts its own server process
(bench/loadserver.py) so it can read that server's CPU; --server targets a running one on
loopback instead (its CPU and forwarded counters read from its /metrics when it serves them).

Everything stays on this machine (loopback addresses only), with a hard cap on the peers
(--max-peers) and on the whole run's time (--max-seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import ipaddress
import itertools
import resource
import secrets
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import uvloop

from bench.loadgen_peers import Publisher, Subscriber
from bench.loadgen_report import (
    StepResult,
    check_matplotlib,
    machine,
    percentile,
    render_table,
    steps_json,
    write_json,
    write_plot,
)
from bench.media_clips import ClipError, MediaSet, default_media_dir, load_media
from bench.server_bench import ServerProcess
from mediasrv.recording.progress import Progress

PROG = "mediasrv-bench"
JOIN_BATCH = 10  # subscribers joining at once
SETTLE = 0.5  # seconds between the publishers' start and the first joins
CLOSE_SECONDS = 5.0  # closing every peer at the end, at most
OVERHEAD_SECONDS = SETTLE + CLOSE_SECONDS + 2  # and starting: the least a run takes besides
DEFAULT_RAMP = "1,2,4,8"


class UsageError(Exception):
    """Bad input: reported as one line, exit status 2."""


class LoadgenError(Exception):
    """The run could not be done: reported as one line, exit status 1."""


@dataclass(frozen=True)
class Plan:
    rooms: int
    publishers: int
    steps: list[int]  # subscribers per room at each step
    codec: str
    audio: bool
    simulcast: bool
    seconds: float
    warmup: float
    samplers: int
    max_peers: int
    max_seconds: float
    server: str | None  # ws URL of a running server, or None: start one
    metrics: str | None  # its /metrics URL
    token: str
    media_dir: Path
    json_path: Path | None
    plot_path: Path | None
    progress: bool

    @property
    def peak_peers(self) -> int:
        return self.rooms * (self.publishers + max(self.steps))

    @property
    def tracks(self) -> int:
        """Tracks each subscriber receives."""
        return self.publishers * (2 if self.audio else 1)

    @property
    def measured_seconds(self) -> float:
        return len(self.steps) * (self.warmup + self.seconds)

    def describe(self) -> dict[str, Any]:
        return {
            "rooms": self.rooms,
            "publishers_per_room": self.publishers,
            "subscribers_per_room": self.steps,
            "codec": self.codec,
            "audio": self.audio,
            "simulcast": self.simulcast,
            "seconds": self.seconds,
            "warmup": self.warmup,
            "samplers": self.samplers,
            "max_peers": self.max_peers,
            "max_seconds": self.max_seconds,
            "server": self.server or "own process (bench/loadserver.py)",
        }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Load generator for mediasrv: N rooms x P publishers x S subscribers of "
        "pre-encoded media over real WebRTC transports, on loopback, with a ramp of S.",
        epilog="Exit status: 0 done, 1 the run failed or hit --max-seconds (the steps done are "
        "still reported), 2 bad arguments.",
    )
    parser.add_argument("--rooms", type=int, default=1, help="rooms (default 1)")
    parser.add_argument("--publishers", type=int, default=1, help="publishers per room (1)")
    load = parser.add_mutually_exclusive_group()
    load.add_argument("--subscribers", type=int, help="subscribers per room (one step)")
    load.add_argument(
        "--ramp",
        help=f"subscribers per room at each step, increasing (default {DEFAULT_RAMP})",
    )
    parser.add_argument("--codec", choices=("vp8", "h264"), default="vp8", help="video (vp8)")
    parser.add_argument(
        "--audio",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="an Opus track per publisher too (default: yes)",
    )
    parser.add_argument(
        "--simulcast", action="store_true", help="three video layers per publisher (RID)"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per step (5)")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds from a step's joins to its window (1)"
    )
    parser.add_argument(
        "--samplers",
        type=int,
        default=5,
        help="subscribers that decrypt and time every packet, per step (5)",
    )
    parser.add_argument(
        "--max-peers", type=int, default=400, help="refuse plans with more peers than this (400)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=600.0,
        help="hard limit on the whole run's time; stops after the steps done by then (600)",
    )
    parser.add_argument(
        "--server",
        metavar="URL",
        help="a running server's signaling URL on loopback (ws://127.0.0.1:8080/ws); "
        "default: start one in its own process",
    )
    parser.add_argument(
        "--metrics",
        metavar="URL",
        help="with --server: its Prometheus endpoint (default: /metrics beside --server)",
    )
    parser.add_argument("--token", default="bench", help="signaling token (bench)")
    parser.add_argument(
        "--media-dir",
        type=Path,
        default=None,
        help=f"where the ffmpeg-made clips are cached (default {default_media_dir()})",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON")
    parser.add_argument("--plot", type=Path, metavar="OUT.png", help="plot CPU and loss (PNG)")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    return parser


def _loopback_url(value: str, option: str, default_path: str, schemes: dict[str, str]) -> str:
    """The URL with its scheme mapped through ``schemes`` and default_path when it has none;
    UsageError unless its host is an IPv4 loopback address or localhost."""
    default_scheme = next(iter(schemes))  # host:port alone: the first scheme
    parsed = urllib.parse.urlsplit(value if "://" in value else f"{default_scheme}://{value}")
    if parsed.scheme not in schemes:
        raise UsageError(
            f"{option} {value!r}: expected a URL such as "
            f"{'ws://127.0.0.1:8080/ws' if option == '--server' else 'http://127.0.0.1:8080/metrics'}"
        )
    host = parsed.hostname or ""
    try:
        port = parsed.port
    except ValueError:
        raise UsageError(f"{option} {value!r}: the port is not a number") from None
    if host != "localhost":
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is None or not address.is_loopback:
            raise UsageError(
                f"{option} {value!r}: {host or 'no host'} is not a loopback address; "
                f"{PROG} sends load only to this machine (127.0.0.0/8 or localhost)"
            )
        if address.version != 4:
            raise UsageError(f"{option} {value!r}: only IPv4 loopback is supported (127.0.0.1)")
    if port is None:
        raise UsageError(f"{option} {value!r}: give the port")
    path = parsed.path or default_path
    return urllib.parse.urlunsplit((schemes[parsed.scheme], parsed.netloc, path, "", ""))


def _positive(value: float, option: str, limit: float) -> None:
    if not 0 < value <= limit:
        raise UsageError(f"{option} must be more than 0 and at most {limit:g} (got {value:g})")


def make_plan(args: argparse.Namespace) -> Plan:
    if args.subscribers is not None:
        steps = [args.subscribers]
    else:
        text = args.ramp if args.ramp is not None else DEFAULT_RAMP
        try:
            steps = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise UsageError(f"--ramp {text!r}: expected numbers separated by commas") from None
        if not steps:
            raise UsageError("--ramp: no step given")
    if any(s < 1 for s in steps):
        raise UsageError("subscribers per room must be at least 1 at every step")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise UsageError(f"--ramp {args.ramp}: the steps must increase (subscribers only join)")
    _positive(args.rooms, "--rooms", 1000)
    _positive(args.publishers, "--publishers", 100)
    _positive(args.seconds, "--seconds", 3600)
    _positive(args.max_peers, "--max-peers", 5000)
    _positive(args.max_seconds, "--max-seconds", 24 * 3600)
    if not 0 <= args.warmup <= 600:
        raise UsageError(f"--warmup must be within 0..600 s (got {args.warmup:g})")
    if not 0 <= args.samplers <= 50:
        raise UsageError(f"--samplers must be within 0..50 (got {args.samplers})")
    server = metrics = None
    if args.server is not None:
        server = _loopback_url(
            args.server, "--server", "/ws", {"ws": "ws", "http": "ws", "wss": "wss", "https": "wss"}
        )
        metrics_source = args.metrics
        if metrics_source is None:
            parsed = urllib.parse.urlsplit(server)
            scheme = "https" if parsed.scheme == "wss" else "http"
            metrics_source = urllib.parse.urlunsplit((scheme, parsed.netloc, "/metrics", "", ""))
        metrics = _loopback_url(
            metrics_source, "--metrics", "/metrics", {"http": "http", "https": "https"}
        )
    elif args.metrics is not None:
        raise UsageError("--metrics goes with --server (its own server's CPU is read directly)")
    plan = Plan(
        rooms=args.rooms,
        publishers=args.publishers,
        steps=steps,
        codec=args.codec,
        audio=args.audio,
        simulcast=args.simulcast,
        seconds=args.seconds,
        warmup=args.warmup,
        samplers=args.samplers,
        max_peers=args.max_peers,
        max_seconds=args.max_seconds,
        server=server,
        metrics=metrics,
        token=args.token,
        media_dir=args.media_dir if args.media_dir is not None else default_media_dir(),
        json_path=args.json,
        plot_path=args.plot,
        progress=args.progress if args.progress is not None else sys.stderr.isatty(),
    )
    if plan.peak_peers > plan.max_peers:
        raise UsageError(
            f"{plan.rooms} room(s) x ({plan.publishers} publisher(s) + {max(steps)} "
            f"subscribers) = {plan.peak_peers} peers exceeds --max-peers {plan.max_peers}; "
            "lower --rooms, --publishers or the subscriber counts, or raise --max-peers"
        )
    if plan.measured_seconds + OVERHEAD_SECONDS > plan.max_seconds:
        raise UsageError(
            f"{len(steps)} step(s) x ({plan.warmup:g} s warm-up + {plan.seconds:g} s) + "
            f"{OVERHEAD_SECONDS:g} s to start and stop = "
            f"{plan.measured_seconds + OVERHEAD_SECONDS:g} s exceeds --max-seconds "
            f"{plan.max_seconds:g}"
        )
    for option, path in (("--json", plan.json_path), ("--plot", plan.plot_path)):
        if path is not None and not path.resolve().parent.is_dir():
            raise UsageError(f"{option} {path}: no directory {path.resolve().parent}")
    if plan.plot_path is not None and (hint := check_matplotlib()) is not None:
        raise UsageError(hint)
    _file_limit(plan.peak_peers)
    return plan


def _file_limit(peers: int) -> None:
    """Each peer holds a WebSocket and a UDP socket here (and the server as many): raise the
    soft descriptor limit to the hard one when needed; refuse when even that is too low."""
    needed = 3 * peers + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed or soft == resource.RLIM_INFINITY:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise UsageError(
            f"{peers} peers need about {needed} file descriptors; the limit is {hard} "
            "(ulimit -n): lower the load"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


# ---- servers ----


class Server(Protocol):
    url: str

    async def stats(self) -> dict[str, float] | None: ...

    def close(self) -> None: ...


class OwnServer:
    """bench/loadserver.py in its own process: its CPU time and data-plane counters."""

    def __init__(self) -> None:
        try:
            self.process = ServerProcess()
        except (OSError, RuntimeError) as exc:
            raise LoadgenError(f"the server process did not start: {exc}") from None
        self.url = f"ws://127.0.0.1:{self.process.port}/ws"

    async def stats(self) -> dict[str, float] | None:
        try:
            raw = await asyncio.to_thread(self.process.stats)
        except (OSError, ValueError) as exc:
            raise LoadgenError(f"the server process stopped answering: {exc}") from None
        stats = {"cpu": float(raw["cpu"]), "forwarded": float(raw["forwarded"])}
        dropped = raw.get("dropped")  # by reason
        if isinstance(dropped, dict):
            stats["dropped"] = float(sum(dropped.values()))
        elif isinstance(dropped, int | float):
            stats["dropped"] = float(dropped)
        return stats

    def close(self) -> None:
        self.process.close()


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format: each metric name's samples summed over their labels."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, rest = line[: line.index("{")], line[line.rindex("}") + 1 :]
        else:
            name, _, rest = line.partition(" ")
        fields = rest.split()
        if not fields:
            continue
        try:
            totals[name] = totals.get(name, 0.0) + float(fields[0])
        except ValueError:
            continue
    return totals


CPU_METRICS = ("process_cpu_seconds_total", "mediasrv_worker_cpu_seconds_total")
FORWARDED_METRICS = ("mediasrv_rtp_forwarded_packets_total", "mediasrv_rtp_forwarded_total")


def _first(values: dict[str, float], names: tuple[str, ...]) -> float | None:
    for name in names:
        if name in values:
            return values[name]
    return None


class ExternalServer:
    """A running server (--server): CPU and forwarded packets from its /metrics, if it serves
    them (CPU_METRICS, FORWARDED_METRICS, summed over their labels); else None."""

    def __init__(self, url: str, metrics: str | None) -> None:
        self.url = url
        self.metrics = metrics
        self.problem: str | None = None

    async def stats(self) -> dict[str, float] | None:
        if self.metrics is None:
            return None
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session,
                session.get(self.metrics) as response,
            ):
                if response.status != 200:
                    self.problem = f"{self.metrics} answered HTTP {response.status}"
                    return None
                values = parse_metrics(await response.text())
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.problem = f"{self.metrics}: {exc or type(exc).__name__}"
            return None
        cpu = _first(values, CPU_METRICS)
        forwarded = _first(values, FORWARDED_METRICS)
        if cpu is None or forwarded is None:
            self.problem = (
                f"{self.metrics} lacks a CPU counter ({' or '.join(CPU_METRICS)}) or a "
                f"forwarded one ({' or '.join(FORWARDED_METRICS)})"
            )
            return None
        stats = {"cpu": cpu, "forwarded": forwarded}
        if "mediasrv_datagrams_dropped_total" in values:
            stats["dropped"] = values["mediasrv_datagrams_dropped_total"]
        return stats

    def close(self) -> None:
        pass


# ---- the run ----


@dataclass
class Snapshot:
    at: float
    client_cpu: float
    server: dict[str, float] | None
    expected: int  # packets the subscribers should have received together so far
    published: int
    received: int
    failed: int
    skipped: int
    keyframe_requests: int


class Clock:
    """The progress bar, advanced by time through the planned warm-ups and windows."""

    def __init__(self, plan: Plan) -> None:
        self.progress = Progress(int(plan.measured_seconds * 10), "starting", enabled=plan.progress)
        self._base = 0.0  # tenths of seconds of finished phases
        self._phase: tuple[float, float] | None = None  # (started, length)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick())

    def phase(self, label: str, length: float) -> None:
        self._finish()
        self.progress.set_label(label)
        self._phase = (time.monotonic(), length) if length > 0 else None

    def _finish(self) -> None:
        if self._phase is not None:
            self._base += self._phase[1] * 10
            self._phase = None
        self._advance_to(self._base)

    def _advance_to(self, tenths: float) -> None:
        self.progress.advance(max(0, int(tenths) - self.progress.done))

    async def _tick(self) -> None:
        while True:
            if self._phase is not None:
                started, length = self._phase
                self._advance_to(self._base + min(time.monotonic() - started, length) * 10)
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.progress.close()


class Run:
    def __init__(self, plan: Plan, media: MediaSet, server: Server, clock: Clock) -> None:
        self.plan = plan
        self.media = media
        self.server = server
        self.clock = clock
        tag = secrets.token_hex(3)
        self.room_names = [f"loadgen-{tag}-{r}" for r in range(plan.rooms)]
        self.publishers: list[list[Publisher]] = [[] for _ in range(plan.rooms)]
        self.subscribers: list[list[Subscriber]] = [[] for _ in range(plan.rooms)]
        self.by_peer: dict[str, Publisher] = {}
        self.steps: list[StepResult] = []
        self.notes: list[str] = []
        self._samplers: list[Subscriber] = []

    def _all_publishers(self) -> list[Publisher]:
        return [p for room in self.publishers for p in room]

    def _all_subscribers(self) -> list[Subscriber]:
        return [s for room in self.subscribers for s in room]

    async def start_publishers(self) -> None:
        self.clock.phase("publishing", 0)
        seed = int.from_bytes(secrets.token_bytes(4), "big")
        for r, room in enumerate(self.room_names):
            for p in range(self.plan.publishers):
                publisher = Publisher(
                    self.server.url,
                    room,
                    self.media,
                    self.plan.codec,
                    token=self.plan.token,
                    seed=seed + 1000 * r + p,
                )
                self.publishers[r].append(publisher)
                try:
                    await publisher.start()
                except (OSError, aiohttp.ClientError, RuntimeError, TimeoutError) as exc:
                    raise LoadgenError(f"a publisher could not publish: {_reason(exc)}") from None
                except ValueError as exc:  # a non-loopback ICE candidate
                    raise LoadgenError(str(exc)) from None
                self.by_peer[publisher.peer_id] = publisher
        await asyncio.sleep(SETTLE)

    async def _join(self, room: int, joins: list[float], failures: list[str]) -> None:
        subscriber = Subscriber(self.server.url, self.room_names[room], token=self.plan.token)
        try:
            joins.append(await subscriber.join(self.plan.tracks))
        except (OSError, aiohttp.ClientError, RuntimeError, TimeoutError, ValueError) as exc:
            failures.append(_reason(exc))
            with contextlib.suppress(Exception):
                await subscriber.close()
            return
        self.subscribers[room].append(subscriber)

    async def step(self, per_room: int) -> StepResult:
        plan = self.plan
        self.clock.phase(f"S={per_room} join", 0)
        wanted = [
            (r, per_room - len(self.subscribers[r])) for r in range(plan.rooms)
        ]  # fmt: skip
        pending = [r for r, count in wanted for _ in range(max(0, count))]
        joins: list[float] = []
        failures: list[str] = []
        joining = time.monotonic()
        for start in range(0, len(pending), JOIN_BATCH):
            batch = pending[start : start + JOIN_BATCH]
            await asyncio.gather(*(self._join(r, joins, failures) for r in batch))
        if failures and not joins:
            raise LoadgenError(f"no subscriber could join ({len(failures)} tried): {failures[0]}")
        if failures:
            self.notes.append(
                f"step S={per_room}: {len(failures)} join(s) failed, first: {failures[0]}"
            )
        self._choose_samplers()
        self.clock.phase(f"S={per_room} warm", plan.warmup)
        await asyncio.sleep(plan.warmup)
        self.clock.phase(f"S={per_room} run", plan.seconds)
        for subscriber in self._samplers:
            subscriber.sample(self.by_peer)
        before = await self._snapshot()
        await asyncio.sleep(plan.seconds)
        after = await self._snapshot()
        latencies = [
            float(v)
            for s in self._samplers
            if s.link is not None
            for v in s.link.latencies_us
        ]  # fmt: skip
        result = self._result(per_room, before, after, latencies, joins, len(failures))
        result.joining_seconds = round(before.at - joining - plan.warmup, 2)
        if result.skipped_frames or result.send_failures:
            self.notes.append(
                f"step S={per_room}: this process fell behind ({result.skipped_frames} frames "
                f"skipped, {result.send_failures} packets not sent): its own CPU "
                f"({result.client_cpu_share:.0%}) limits the load, not the server"
            )
        return result

    def _choose_samplers(self) -> None:
        """Up to --samplers subscribers, taken from the rooms in turn, measure latency."""
        rooms = [list(room) for room in self.subscribers]
        chosen: list[Subscriber] = []
        while len(chosen) < self.plan.samplers and any(rooms):
            for room in rooms:
                if room and len(chosen) < self.plan.samplers:
                    chosen.append(room.pop(0))
        for subscriber in self._all_subscribers():
            subscriber.sample(None)
        self._samplers = chosen

    async def _snapshot(self) -> Snapshot:
        server = await self.server.stats()
        publishers = self._all_publishers()
        expected = sum(
            len(self.subscribers[r]) * p.expected_per_subscriber()
            for r in range(self.plan.rooms)
            for p in self.publishers[r]
        )
        return Snapshot(
            at=time.monotonic(),
            client_cpu=time.process_time(),
            server=server,
            expected=expected,
            published=sum(p.sent for p in publishers),
            received=sum(s.received for s in self._all_subscribers()),
            failed=sum(p.failed for p in publishers),
            skipped=sum(p.skipped for p in publishers),
            keyframe_requests=sum(p.keyframe_requests for p in publishers),
        )

    def _result(
        self,
        per_room: int,
        before: Snapshot,
        after: Snapshot,
        latencies: list[float],
        joins: list[float],
        join_failures: int,
    ) -> StepResult:
        elapsed = after.at - before.at
        subscribers = len(self._all_subscribers())
        expected = after.expected - before.expected
        received = after.received - before.received
        forwarded = cpu = dropped = None
        if before.server is not None and after.server is not None:
            forwarded = after.server["forwarded"] - before.server["forwarded"]
            cpu = after.server["cpu"] - before.server["cpu"]
            if "dropped" in after.server and "dropped" in before.server:
                dropped = int(after.server["dropped"] - before.server["dropped"])
        p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
        j50, j99 = percentile(joins, 0.50), percentile(joins, 0.99)
        return StepResult(
            subscribers_per_room=per_room,
            subscribers=subscribers,
            peers=subscribers + len(self._all_publishers()),
            seconds=round(elapsed, 2),
            published_pps=round((after.published - before.published) / elapsed, 1),
            expected_pps=round(expected / elapsed, 1),
            received_pps=round(received / elapsed, 1),
            forwarded_pps=None if forwarded is None else round(forwarded / elapsed, 1),
            server_cpu_us_per_packet=(
                None if cpu is None or not forwarded else round(cpu / forwarded * 1e6, 2)
            ),
            server_cpu_share=None if cpu is None else round(cpu / elapsed, 3),
            client_cpu_share=round((after.client_cpu - before.client_cpu) / elapsed, 3),
            loss=round(max(0.0, 1 - received / expected), 4) if expected else 0.0,
            latency_p50_us=p50,
            latency_p99_us=p99,
            latency_samples=len(latencies),
            join_p50_ms=None if j50 is None else round(j50 * 1000, 1),
            join_p99_ms=None if j99 is None else round(j99 * 1000, 1),
            joins=len(joins),
            join_failures=join_failures,
            keyframe_requests=after.keyframe_requests - before.keyframe_requests,
            send_failures=after.failed - before.failed,
            skipped_frames=after.skipped - before.skipped,
            server_dropped=dropped,
        )

    async def close(self) -> None:
        closing = [s.close() for s in self._all_subscribers()]
        closing += [p.close() for p in self._all_publishers()]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*closing, return_exceptions=True),
                CLOSE_SECONDS,
            )


def _reason(exc: BaseException) -> str:
    if exc.args and isinstance(exc.args[0], dict):  # a signaling error: {code, message}
        error = exc.args[0]
        return f"{error.get('code', 'error')}: {error.get('message', '')}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _measure(plan: Plan, media: MediaSet, server: Server, deadline: float) -> Run:
    clock = Clock(plan)
    run = Run(plan, media, server, clock)
    clock.start()
    try:
        async with asyncio.timeout_at(deadline):
            await run.start_publishers()
            for per_room in plan.steps:
                run.steps.append(await run.step(per_room))
    except TimeoutError:
        run.notes.append(
            f"stopped at --max-seconds {plan.max_seconds:g} after {len(run.steps)} of "
            f"{len(plan.steps)} steps"
        )
    finally:
        await clock.close()
        await run.close()
    return run


def execute(plan: Plan) -> tuple[Run, dict[str, Any]]:
    """Make the clips, start (or reach) the server, run the steps; the run and its media."""
    started = time.monotonic()
    media = load_media(plan.codec, plan.audio, plan.simulcast, plan.media_dir)
    clips = {
        "video": [c.describe() for c in media.video],
        "audio": media.audio.describe() if media.audio is not None else None,
        "directory": str(plan.media_dir),
    }
    server: Server = (
        ExternalServer(plan.server, plan.metrics) if plan.server is not None else OwnServer()
    )
    try:
        # what is left of --max-seconds, less the time closing the peers may take
        remaining = plan.max_seconds - (time.monotonic() - started) - CLOSE_SECONDS
        if remaining <= 0:
            raise LoadgenError(f"--max-seconds {plan.max_seconds:g} ran out making the clips")

        async def main() -> Run:
            deadline = asyncio.get_running_loop().time() + remaining
            return await _measure(plan, media, server, deadline)

        run = uvloop.run(main())
    finally:
        server.close()
    if isinstance(server, ExternalServer) and server.problem is not None:
        run.notes.append(f"server CPU not measured: {server.problem}")
    return run, clips


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or argparse's own usage errors (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        plan = make_plan(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc} (see {PROG} --help)", file=sys.stderr)
        return 2
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    try:
        run, clips = execute(plan)
    except (LoadgenError, ClipError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    complete = len(run.steps) == len(plan.steps)
    title = (
        f"{PROG}: {plan.rooms} room(s) x {plan.publishers} publisher(s), "
        f"{plan.codec.upper()}{' simulcast' if plan.simulcast else ''}"
        f"{' + Opus' if plan.audio else ''}, {plan.seconds:g} s per step"
    )
    print(f"{title}\n")
    print(render_table(run.steps))
    for note in run.notes:
        print(f"note: {note}", file=sys.stderr)
    document = {
        "tool": PROG,
        "format": 1,
        "started": started,
        "complete": complete,
        "parameters": plan.describe(),
        "machine": machine(),
        "clips": clips,
        "notes": run.notes,
        "steps": steps_json(run.steps),
    }
    try:
        if plan.json_path is not None:
            write_json(plan.json_path, document)
            print(f"\nJSON: {plan.json_path}")
        if plan.plot_path is not None and run.steps:
            write_plot(plan.plot_path, run.steps, title)
            print(f"plot: {plan.plot_path}")
    except OSError as exc:
        print(f"{PROG}: error: cannot write the results: {exc}", file=sys.stderr)
        return 1
    if not run.steps:
        print(f"{PROG}: error: no step completed", file=sys.stderr)
        return 1
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
