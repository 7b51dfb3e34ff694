"""WorkerHandle: the supervisor's handle on one worker process
(``mediasrv.cluster.worker_process``): starting it with its configuration, waiting for it to
listen, its signaling relays, and stopping or killing it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pickle
import signal
import sys
from typing import Any, Protocol

from mediasrv.config import ServerConfig

log = logging.getLogger("mediasrv.supervisor")
START_TIMEOUT = 30.0  # seconds from spawn to "ready"


class WorkerStartError(RuntimeError):
    """The worker process exited or did not say it was ready in time."""


class Relay(Protocol):
    """A client's signaling relayed to this worker (a SignalRelay)."""

    async def worker_failed(self) -> None: ...


class WorkerHandle:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.http_port = 0
        self.rtc_ports: list[int] = []
        self.pid = 0
        self.ready = False
        self.starts = 0
        self.relays: set[Relay] = set()
        self._stdout_task: asyncio.Task[None] | None = None

    @property
    def load(self) -> int:
        """How busy it is, for placing new rooms: its signaling sessions."""
        return len(self.relays)

    async def start(self, config: ServerConfig, token: str = "") -> None:
        self.ready = False
        self.starts += 1
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mediasrv.cluster.worker_process",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        # stdin stays open: the worker exits when it closes (the supervisor died)
        payload = {"config": config, "index": self.index, "token": token or None}
        process.stdin.write(pickle.dumps(payload))
        await process.stdin.drain()
        try:
            ready = await asyncio.wait_for(self._read_ready(process.stdout), START_TIMEOUT)
        except (TimeoutError, WorkerStartError) as exc:
            await self.kill()
            raise WorkerStartError(f"worker {self.index} did not start: {exc}") from None
        self.http_port = int(ready["http"])
        self.rtc_ports = [int(p) for p in ready["rtc"]]
        self.pid = int(ready["pid"])
        self.ready = True
        self._stdout_task = asyncio.ensure_future(self._drain_stdout(process.stdout))
        log.info(
            "worker %d: pid %d, signaling on 127.0.0.1:%d, media udp %s",
            self.index,
            self.pid,
            self.http_port,
            self.rtc_ports,
        )

    @staticmethod
    async def _read_ready(stdout: asyncio.StreamReader) -> dict[str, Any]:
        while True:
            line = await stdout.readline()
            if not line:
                raise WorkerStartError("it exited")
            with contextlib.suppress(ValueError):
                found = json.loads(line)
                if isinstance(found, dict) and found.get("ready"):
                    return found

    @staticmethod
    async def _drain_stdout(stdout: asyncio.StreamReader) -> None:
        while await stdout.readline():
            pass

    async def wait(self) -> int:
        """Until the process exits; its exit status."""
        assert self.process is not None
        code = await self.process.wait()
        self.ready = False
        return code

    async def stop(self, grace: float) -> None:
        """SIGTERM (the worker drains), then SIGKILL after ``grace`` seconds."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        self.ready = False
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            await self.kill()

    async def kill(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        if self._stdout_task is not None:
            self._stdout_task.cancel()
