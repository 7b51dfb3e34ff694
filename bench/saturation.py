"""mediasrv-saturation: the most packets/s the server forwards, per number of worker processes.

    python -m bench.saturation --processes 1,2 --json saturation.json
    python -m bench.saturation --quick          # a smoke run of a few seconds

bench/loadgen.py cannot saturate the server on a small machine: its subscribers read and count
every packet in Python, so the load generator spends CPU on each forwarded packet, on the same
cores as the server. Here the subscribers are sinks: real BenchPeers (bench/webrtc_peer.py)
that join with auto-subscribe and complete ICE, DTLS and SRTP, so the server encrypts and sends
every packet to each of them; then they stop reading their UDP socket and shrink its receive
buffer, and the kernel drops what arrives: this process spends nothing per forwarded packet.
They go on sending ICE consent checks (every 5 s; the server closes a transport after
``MediaConfig.consent_timeout`` without any).

For each process count, the tool starts ``mediasrv serve --processes N`` on 127.0.0.1, one
publisher per room (a BenchPeer sending synthetic 1,100-byte VP8 packets with
``Link.send_video``, a keyframe every 30 packets), then the sinks. The supervisor gives each
new room to its least loaded worker, so the rooms alternate between the workers. The
publishers' rate then ramps; each step is a warm-up and a measured window, over which the tool
reads:

- from the server's /metrics, per worker: the datagrams its data plane handed to the kernel
  (``mediasrv_datagrams_sent_total``: the forwarded packets/s), its CPU
  (``mediasrv_worker_cpu_seconds_total``), its video consumers and connected transports;
- from /proc: the supervisor process's CPU (it relays signaling and is not in the media path),
  the whole machine's busy time, and the datagrams the kernel dropped at the server's UDP
  sockets (its input overflowing: the server is saturated) and at the sinks' (they should
  match the forwarded count);
- this process's own CPU (getrusage).

Offered packets/s: what each publisher sent times the subscribers of its room. The ramp stops
once the server saturates: a step forwards less than 90% of what was offered and no more than
3% above the best step so far. Everything stays on loopback, with a hard cap on the peers
(--max-peers) and on the whole run's time (--max-seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from bench.loadgen import CPU_METRICS, UsageError, _file_limit, _first, parse_metrics
from bench.loadgen_peers import Subscriber
from bench.loadgen_report import machine, write_json
from bench.webrtc_peer import BenchPeer, Link

PROG = "mediasrv-saturation"
ROOT = Path(__file__).resolve().parent.parent  # where `mediasrv` and `bench` import from
TOKEN = "bench"
SSRC = 0x5A7
KEYFRAME_EVERY = 30  # packets
TICK = 0.01  # seconds between a publisher's wake-ups
MAX_LATE = 0.2  # seconds of packets a late publisher skips rather than sending in one burst
JOIN_BATCH = 10  # subscribers joining at once
SINK_RCVBUF = 4096  # bytes (the kernel's minimum is near this)
ROOM_LIMIT = 50  # MediaConfig.max_peers_per_room of `mediasrv serve`
SATURATED = 0.9  # forwarded / offered below this ...
GROWTH = 1.03  # ... and no more than this above the best step so far: saturated
START_SECONDS = 30.0
CLOSE_SECONDS = 5.0
FORWARDED = "mediasrv_datagrams_sent_total"
RTP_FORWARDED = "mediasrv_rtp_forwarded_packets_total"
TRANSPORTS = 'mediasrv_transports{kind="webrtc",state="connected"'
CONNECTED = "connected transports"  # a key of Server.metrics()' answers
LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+) \((.*)\)")
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
DEFAULTS = {"rooms": 8, "subscribers": 48, "rates": "250,500,750,1000,1250,1500,1750,2000"}
QUICK = {"rooms": 2, "subscribers": 3, "rates": "100,200", "seconds": 1.0, "warmup": 0.5}


class RunError(Exception):
    """The run could not be done: reported as one line, exit status 1."""


@dataclass(frozen=True)
class Plan:
    processes: list[int]
    rooms: int
    subscribers: int  # per room
    rates: list[int]  # packets/s of each publisher, one per step
    seconds: float
    warmup: float
    max_peers: int
    max_seconds: float
    json_path: Path | None

    @property
    def peers(self) -> int:
        return self.rooms * (1 + self.subscribers)


@dataclass
class Step:
    processes: int
    rate: int  # asked of each publisher
    seconds: float
    published_pps: float
    offered_pps: float  # published x subscribers of the room
    forwarded_pps: float
    forwarded_pps_by_worker: list[float]
    rtp_forwarded_pps: float  # the consumers' count (datagrams less RTCP and STUN)
    server_cpu: float  # workers and supervisor, CPU seconds per second (1.0: one core)
    worker_cpu: list[float]
    supervisor_cpu: float
    worker_kernel_share: float  # of the workers' CPU, the share spent in the kernel
    loadgen_cpu: float
    machine_busy: float  # all processes and the kernel, cores busy
    steal: float  # cores the hypervisor took from this machine
    server_input_drops_pps: float  # dropped by the kernel at the server's UDP sockets
    sink_drops_pps: float  # dropped by the kernel at the sinks' sockets
    publisher_skipped: int  # packets the publishers skipped, late (this process was slow)
    subscribers: int
    connected: int  # subscribers with their consumer and connected transport at the end
    consumers_by_worker: list[int]


@dataclass
class ProcessRun:
    processes: int
    join_seconds: float = 0.0
    steps: list[Step] = field(default_factory=list)

    @property
    def max_forwarded(self) -> float:
        return max((s.forwarded_pps for s in self.steps), default=0.0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="The server's maximum forwarded packets/s with 1 and 2 worker processes: "
        "publishers ramp their rate to sink subscribers that the kernel drops for, on loopback.",
        epilog="Exit status: 0 done, 1 the run failed or hit --max-seconds (the steps done are "
        "still reported), 2 bad arguments.",
    )
    parser.add_argument("--processes", default="1,2", help="worker process counts to compare (1,2)")
    parser.add_argument(
        "--rooms", type=int, help=f"rooms, one publisher each ({DEFAULTS['rooms']})"
    )
    parser.add_argument(
        "--subscribers", type=int, help=f"sink subscribers per room ({DEFAULTS['subscribers']})"
    )
    parser.add_argument(
        "--rates", help=f"packets/s of each publisher, one per step ({DEFAULTS['rates']})"
    )
    parser.add_argument("--seconds", type=float, help="measured seconds per step (4)")
    parser.add_argument("--warmup", type=float, help="seconds before each step's window (1)")
    parser.add_argument("--max-peers", type=int, default=450, help="peers at most (450)")
    parser.add_argument(
        "--max-seconds", type=float, default=240.0, help="the whole run at most, seconds (240)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny run: 2 rooms x 3 subscribers, rates 100,200, 1 s steps (defaults only)",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON")
    return parser


def _numbers(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected numbers separated by commas") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"{option} {text!r}: expected numbers of at least 1")
    return values


def make_plan(args: argparse.Namespace) -> Plan:
    base: dict[str, Any] = {**DEFAULTS, "seconds": 4.0, "warmup": 1.0}
    if args.quick:
        base.update(QUICK)
    given = {k: getattr(args, k) for k in ("rooms", "subscribers", "rates", "seconds", "warmup")}
    base.update({k: v for k, v in given.items() if v is not None})
    rates = _numbers(base["rates"], "--rates")
    if sorted(set(rates)) != rates:
        raise UsageError(f"--rates {base['rates']}: the steps must increase")
    plan = Plan(
        processes=_numbers(args.processes, "--processes"),
        rooms=base["rooms"],
        subscribers=base["subscribers"],
        rates=rates,
        seconds=base["seconds"],
        warmup=base["warmup"],
        max_peers=args.max_peers,
        max_seconds=args.max_seconds,
        json_path=args.json,
    )
    if any(n > (os.cpu_count() or 1) * 4 for n in plan.processes):
        raise UsageError(f"--processes {args.processes}: more than 4 per core")
    if not 1 <= plan.rooms <= 100 or not 1 <= plan.subscribers < ROOM_LIMIT:
        raise UsageError(
            f"--rooms within 1..100 and --subscribers within 1..{ROOM_LIMIT - 1} (the server "
            f"takes {ROOM_LIMIT} peers a room, the publisher included)"
        )
    if plan.seconds <= 0 or plan.warmup < 0 or plan.rates[-1] > 20_000:
        raise UsageError("--seconds must be more than 0, --warmup not negative, rates <= 20000")
    if plan.peers > plan.max_peers:
        raise UsageError(
            f"{plan.rooms} rooms x (1 publisher + {plan.subscribers} subscribers) = "
            f"{plan.peers} peers exceeds --max-peers {plan.max_peers}"
        )
    measured = len(plan.processes) * len(plan.rates) * (plan.warmup + plan.seconds)
    if measured + 10 > plan.max_seconds:
        raise UsageError(
            f"the steps alone take {measured:g} s (+ about 10 s to start and stop): more than "
            f"--max-seconds {plan.max_seconds:g}"
        )
    if plan.json_path is not None and not plan.json_path.resolve().parent.is_dir():
        raise UsageError(f"--json {plan.json_path}: no directory {plan.json_path.parent}")
    _file_limit(plan.peers)
    return plan


# ---- the server and what /proc tells about it ----


def process_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds in user mode and in the kernel of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICK, int(fields[12]) / CLOCK_TICK


def machine_cpu() -> tuple[float, float]:
    """CPU seconds all cores spent busy (user, system, interrupts) and stolen by the
    hypervisor, since boot (/proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text(encoding="ascii").split()[1:9]
    )
    return (user + nice + system + irq + softirq) / CLOCK_TICK, steal / CLOCK_TICK


def udp_drops(ports: set[int]) -> int:
    """Datagrams the kernel dropped at the UDP sockets bound to these ports (/proc/net/udp)."""
    total = 0
    for line in Path("/proc/net/udp").read_text(encoding="ascii").splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) in ports:
            total += int(fields[-1])
    return total


class Server:
    """``mediasrv serve --processes N`` on 127.0.0.1 with any free port, its output in a log."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.log_path = Path(tempfile.mkstemp(prefix="mediasrv-saturation-", suffix=".log")[1])
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mediasrv", "serve", "--host", "127.0.0.1", "--port",
                 "0", "--processes", str(processes), "--token", TOKEN],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        self.port = 0
        self.media_ports: set[int] = set()
        self.worker_pids = [self.proc.pid]

    async def started(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            match = LISTENING.search(self.log_path.read_text(errors="replace"))
            if match is not None:
                self.port = int(match.group(1))
                self.media_ports = {int(p) for p in re.findall(r"udp [\d.]+:(\d+)", match[2])}
                if self.processes > 1:
                    await self._find_workers()
                return
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        raise RunError(f"the server did not start (its output: {self.log_path})")

    async def _find_workers(self) -> None:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(f"http://127.0.0.1:{self.port}/") as response,
        ):
            info = await response.json()
        self.worker_pids = [int(w["pid"]) for w in info["workers"]]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def metrics(self, http: aiohttp.ClientSession) -> list[dict[str, float]]:
        """Each worker's metrics (summed over their other labels)."""
        try:
            async with http.get(f"http://127.0.0.1:{self.port}/metrics") as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RunError(f"the server's /metrics did not answer: {exc!r}") from None
        lines = text.splitlines()
        # a single MediaServer: every series is its one worker's
        workers = [lines] if self.processes == 1 else [
            [line for line in lines if f'worker="{i}"' in line] for i in range(self.processes)
        ]  # fmt: skip
        found = []
        for own in workers:
            values = parse_metrics("\n".join(own))
            connected = [line for line in own if line.startswith(TRANSPORTS)]
            values[CONNECTED] = parse_metrics("\n".join(connected)).get("mediasrv_transports", 0)
            found.append(values)
        return found

    def supervisor_cpu(self) -> float:
        """The supervisor's CPU seconds (0 with one process: the worker is the process)."""
        return sum(process_cpu(self.proc.pid)) if self.processes > 1 else 0.0

    def workers_kernel_cpu(self) -> float:
        """The workers' CPU seconds in the kernel (system calls, loopback delivery)."""
        return sum(process_cpu(pid)[1] for pid in self.worker_pids)

    def close(self, failed: bool) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not failed:
            self.log_path.unlink(missing_ok=True)


# ---- the peers ----


class Source:
    """A publisher: a BenchPeer sending synthetic VP8 packets at ``rate`` packets/s."""

    def __init__(self, url: str, room: str) -> None:
        self.room = room
        self.peer = BenchPeer(url, room, token=TOKEN, loopback_only=True)
        self.rate = 0
        self.sent = 0
        self.skipped = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self, rate: int) -> None:
        self.rate = rate
        await self.peer.join(auto_subscribe=False)
        link = await self.peer.publish_video(SSRC)
        self._task = asyncio.create_task(self._send(link))

    async def _send(self, link: Link) -> None:
        rate, start, base = 0, 0.0, 0
        while True:
            if self.rate != rate:  # a new step: a new schedule from now
                rate, start, base = self.rate, time.monotonic(), self.sent + self.skipped
            due = base + int((time.monotonic() - start) * rate) - self.sent - self.skipped
            if due > rate * MAX_LATE:  # the loop was starved: skip, never burst
                self.skipped += due - 1
                due = 1
            for _ in range(due):
                n = self.sent
                link.send_video(SSRC, n, n * 300, keyframe=n % KEYFRAME_EVERY == 0)
                self.sent += 1
            link.rtcp.clear()  # the server's receiver reports: not needed
            await asyncio.sleep(TICK)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.peer.close()


async def join_sink(url: str, room: str) -> Subscriber:
    """A subscriber that connects (ICE, DTLS, SRTP), receives its consumer's offer and brings
    its send transport up too (as the browser client does at join), then stops reading its
    receive transport: a tiny buffer the kernel drops at, consent checks still sent."""
    subscriber = Subscriber(url, room, token=TOKEN)
    try:
        await subscriber.join(1)
    except BaseException:
        with contextlib.suppress(Exception):
            await subscriber.close()
        raise
    link = subscriber.link
    assert link is not None
    link.udp.stop()
    with socket.fromfd(link.udp.fileno(), socket.AF_INET, socket.SOCK_DGRAM) as dup:
        dup.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SINK_RCVBUF)
    while link.udp.recv_batch(64):  # what arrived while connecting
        pass
    return subscriber


# ---- the run ----


@dataclass
class Snapshot:
    at: float
    workers: list[dict[str, float]]
    supervisor_cpu: float
    kernel_cpu: float
    loadgen_cpu: float
    machine_busy: float
    steal: float
    published: list[int]  # by publisher
    skipped: int
    server_drops: int
    sink_drops: int


class Measurement:
    """One process count: the server, its rooms' publishers and sinks, the ramp."""

    def __init__(self, plan: Plan, processes: int, http: aiohttp.ClientSession) -> None:
        self.plan = plan
        self.http = http
        self.server = Server(processes)
        self.run = ProcessRun(processes)
        tag = os.urandom(3).hex()
        self.rooms = [f"saturation-{tag}-{r}" for r in range(plan.rooms)]
        self.sources: list[Source] = []
        self.sinks: dict[str, list[Subscriber]] = {room: [] for room in self.rooms}
        self.sink_ports: set[int] = set()
        self.notes: list[str] = []

    async def setup(self) -> None:
        await self.server.started()
        for room in self.rooms:  # one after the other: each lands on the least loaded worker
            source = Source(self.server.url, room)
            self.sources.append(source)
            await source.start(self.plan.rates[0])
        started = time.monotonic()
        pending = [room for _ in range(self.plan.subscribers) for room in self.rooms]
        for first in range(0, len(pending), JOIN_BATCH):
            batch = pending[first : first + JOIN_BATCH]
            joined = await asyncio.gather(
                *(join_sink(self.server.url, room) for room in batch), return_exceptions=True
            )
            for room, sink in zip(batch, joined, strict=True):
                if isinstance(sink, BaseException):
                    raise RunError(f"a subscriber could not join {room}: {sink!r}")
                self.sinks[room].append(sink)
                assert sink.link is not None
                self.sink_ports.add(sink.link.udp.local_address[1])
        self.run.join_seconds = round(time.monotonic() - started, 1)

    async def snapshot(self) -> Snapshot:
        workers = await self.server.metrics(self.http)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        busy, steal = machine_cpu()
        return Snapshot(
            at=time.monotonic(),
            workers=workers,
            supervisor_cpu=self.server.supervisor_cpu(),
            kernel_cpu=self.server.workers_kernel_cpu(),
            loadgen_cpu=usage.ru_utime + usage.ru_stime,
            machine_busy=busy,
            steal=steal,
            published=[s.sent for s in self.sources],
            skipped=sum(s.skipped for s in self.sources),
            server_drops=udp_drops(self.server.media_ports),
            sink_drops=udp_drops(self.sink_ports),
        )

    async def step(self, rate: int) -> Step:
        for source in self.sources:
            source.rate = rate
        await asyncio.sleep(self.plan.warmup)
        before = await self.snapshot()
        await asyncio.sleep(self.plan.seconds)
        after = await self.snapshot()
        elapsed = after.at - before.at

        def per_s(value: float) -> float:
            return round(value / elapsed, 1)

        def delta(name: str) -> list[float]:
            return [
                (_first(a, (name,)) or 0.0) - (_first(b, (name,)) or 0.0)
                for a, b in zip(after.workers, before.workers, strict=True)
            ]

        published = [a - b for a, b in zip(after.published, before.published, strict=True)]
        rooms = [len(self.sinks[source.room]) for source in self.sources]
        offered = sum(n * subs for n, subs in zip(published, rooms, strict=True))
        forwarded = delta(FORWARDED)
        worker_cpu = [
            (_first(a, CPU_METRICS) or 0.0) - (_first(b, CPU_METRICS) or 0.0)
            for a, b in zip(after.workers, before.workers, strict=True)
        ]
        supervisor = after.supervisor_cpu - before.supervisor_cpu
        consumers = [int(w.get("mediasrv_consumers", 0)) for w in after.workers]
        subscribers = sum(len(sinks) for sinks in self.sinks.values())
        return Step(
            processes=self.server.processes,
            rate=rate,
            seconds=round(elapsed, 2),
            published_pps=per_s(sum(published)),
            offered_pps=per_s(offered),
            forwarded_pps=per_s(sum(forwarded)),
            forwarded_pps_by_worker=[per_s(f) for f in forwarded],
            rtp_forwarded_pps=per_s(sum(delta(RTP_FORWARDED))),
            server_cpu=round((sum(worker_cpu) + supervisor) / elapsed, 3),
            worker_cpu=[round(c / elapsed, 3) for c in worker_cpu],
            supervisor_cpu=round(supervisor / elapsed, 3),
            worker_kernel_share=round(
                (after.kernel_cpu - before.kernel_cpu) / max(sum(worker_cpu), 1e-9), 3
            ),
            loadgen_cpu=round((after.loadgen_cpu - before.loadgen_cpu) / elapsed, 3),
            machine_busy=round((after.machine_busy - before.machine_busy) / elapsed, 3),
            steal=round((after.steal - before.steal) / elapsed, 3),
            server_input_drops_pps=per_s(after.server_drops - before.server_drops),
            sink_drops_pps=per_s(after.sink_drops - before.sink_drops),
            publisher_skipped=after.skipped - before.skipped,
            subscribers=subscribers,
            connected=min(sum(consumers), self._connected(after.workers, subscribers)),
            consumers_by_worker=consumers,
        )

    def _connected(self, workers: list[dict[str, float]], subscribers: int) -> int:
        """Subscribers whose signaling connection is open here and whose receive transport
        the server still counts as connected (less the publishers'; a sink never negotiates
        its send transport)."""
        transports = sum(int(w.get(CONNECTED, 0)) for w in workers)
        open_here = sum(
            1
            for sinks in self.sinks.values()
            for s in sinks
            if s.peer._ws is not None and not s.peer._ws.closed
            and s.link is not None and not s.link.sock.closed
        )  # fmt: skip
        return min(open_here, transports - len(self.sources), subscribers)

    async def ramp(self) -> None:
        best = 0.0
        for rate in self.plan.rates:
            step = await self.step(rate)
            self.run.steps.append(step)
            if step.published_pps < 0.95 * rate * len(self.sources):
                self.notes.append(
                    f"{self.server.processes} process(es), rate {rate}: the publishers sent "
                    f"{step.published_pps:,.0f} of {rate * len(self.sources):,} packets/s "
                    "(this process was late)"
                )
            if step.steal > 0.05:
                self.notes.append(
                    f"{self.server.processes} process(es), rate {rate}: the hypervisor took "
                    f"{step.steal:.0%} of a core (steal): the numbers are low"
                )
            rest = step.machine_busy - step.server_cpu - step.loadgen_cpu
            if rest > 0.15:
                self.notes.append(
                    f"{self.server.processes} process(es), rate {rate}: {rest:.0%} of a core "
                    "went to other processes or the kernel besides the server and this tool"
                )
            if step.connected < step.subscribers:
                self.notes.append(
                    f"{self.server.processes} process(es), rate {rate}: only {step.connected} "
                    f"of {step.subscribers} subscribers still connected"
                )
            saturated = step.forwarded_pps < SATURATED * step.offered_pps
            if saturated and best and step.forwarded_pps <= GROWTH * best:
                break
            best = max(best, step.forwarded_pps)
        last = self.run.steps[-1] if self.run.steps else None
        if last is not None and self.server.processes > 1 and 0 in last.consumers_by_worker:
            self.notes.append(
                f"{self.server.processes} processes: a worker had no subscriber "
                f"(consumers by worker {last.consumers_by_worker}): the rooms were not spread"
            )

    async def close(self, failed: bool) -> None:
        peers = [s.close() for sinks in self.sinks.values() for s in sinks]
        peers += [s.close() for s in self.sources]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*peers, return_exceptions=True), CLOSE_SECONDS)
        await asyncio.to_thread(self.server.close, failed)
        if failed:
            self.notes.append(f"the server's output: {self.server.log_path}")


async def measure_all(plan: Plan) -> tuple[list[ProcessRun], list[str]]:
    runs: list[ProcessRun] = []
    notes: list[str] = []
    deadline = asyncio.get_running_loop().time() + plan.max_seconds - CLOSE_SECONDS - 15
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for processes in plan.processes:
            measurement = Measurement(plan, processes, http)
            runs.append(measurement.run)
            failed = True
            try:
                async with asyncio.timeout_at(deadline):
                    await measurement.setup()
                    await measurement.ramp()
                failed = False
            except TimeoutError:
                notes.append(f"stopped at --max-seconds {plan.max_seconds:g}")
            finally:
                await measurement.close(failed)
                notes += measurement.notes
            if failed:
                break
    return runs, notes


# ---- the report ----


def _shares(values: list[float]) -> str:
    return " + ".join(f"{v:.0%}" for v in values)


def render(runs: list[ProcessRun]) -> str:
    lines = [
        "| processes | step | rate / publisher | offered pkt/s | forwarded pkt/s | forwarded / "
        "offered | forwarded by worker | worker CPU | of which kernel | supervisor CPU | "
        "load generator CPU | "
        "machine busy (cores) | rest of machine | server input drops/s | connected |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: |",
    ]
    for run in runs:
        for i, s in enumerate(run.steps, 1):
            by_worker = " + ".join(f"{f:,.0f}" for f in s.forwarded_pps_by_worker)
            share = s.forwarded_pps / s.offered_pps if s.offered_pps else 0.0
            lines.append(
                f"| {s.processes} | {i} | {s.rate:,} | {s.offered_pps:,.0f} | "
                f"{s.forwarded_pps:,.0f} | {share:.0%} | {by_worker} | {_shares(s.worker_cpu)} | "
                f"{s.worker_kernel_share:.0%} | "
                f"{s.supervisor_cpu:.0%} | {s.loadgen_cpu:.0%} | {s.machine_busy:.2f} | "
                f"{max(0.0, s.machine_busy - s.server_cpu - s.loadgen_cpu):.0%} | "
                f"{s.server_input_drops_pps:,.0f} | {s.connected}/{s.subscribers} |"
            )
    return "\n".join(lines)


def summary(runs: list[ProcessRun]) -> dict[str, Any]:
    best = {str(run.processes): run.max_forwarded for run in runs if run.steps}
    result: dict[str, Any] = {"max_forwarded_pps": best}
    if "1" in best and "2" in best and best["1"]:
        result["ratio_2_to_1"] = round(best["2"] / best["1"], 3)
    return result


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
        runs, notes = uvloop.run(measure_all(plan))
    except RunError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    complete = len(runs) == len(plan.processes) and all(run.steps for run in runs)
    print(
        f"{PROG}: {plan.rooms} rooms x (1 publisher + {plan.subscribers} sink subscribers), "
        f"{plan.seconds:g} s per step, {os.cpu_count()} cores\n"
    )
    print(render(runs))
    result = summary(runs)
    print()
    for processes, best in result["max_forwarded_pps"].items():
        print(f"max forwarded, {processes} process(es): {best:,.0f} packets/s")
    if "ratio_2_to_1" in result:
        print(f"ratio 2 / 1 processes: {result['ratio_2_to_1']:.2f}")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if plan.json_path is not None:
        document = {
            "tool": PROG,
            "format": 1,
            "started": started,
            "complete": complete,
            "parameters": {k: v for k, v in asdict(plan).items() if k != "json_path"},
            "machine": machine(),
            "notes": notes,
            "runs": [
                {
                    "processes": r.processes,
                    "join_seconds": r.join_seconds,
                    "max_forwarded_pps": r.max_forwarded,
                    "steps": [asdict(s) for s in r.steps],
                }
                for r in runs
            ],
            "summary": result,
        }
        try:
            write_json(plan.json_path, document)
        except OSError as exc:
            print(f"{PROG}: error: cannot write the results: {exc}", file=sys.stderr)
            return 1
        print(f"JSON: {plan.json_path}")
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
