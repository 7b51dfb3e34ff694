"""The program of one worker process of a supervised server (``python -m
mediasrv.cluster.worker_process``): a whole MediaServer (rooms, plugins, its own UDP port)
listening for signaling on an internal loopback port, with the links of its spread rooms;
started by the :class:`~mediasrv.cluster.supervisor.Supervisor`.

It reads its configuration (a pickled ``ServerConfig``) and its index from stdin, prints one
JSON line ``{"ready": true, "http": PORT, "rtc": [PORTS], "pid": PID}`` once it listens, and
drains and exits on SIGTERM (or when stdin closes: the supervisor is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import pickle
import signal
import sys

import uvloop

from mediasrv.cluster.room_links import serve_links
from mediasrv.config import ServerConfig
from mediasrv.http.frontend import HttpFrontend
from mediasrv.logs import configure_logging
from mediasrv.media_server import MediaServer


def worker_config(config: ServerConfig, index: int, token: str | None = None) -> ServerConfig:
    """A worker's configuration: HTTP on an internal loopback port, UDP on the base port plus
    its index (any free port when the base is 0), metrics on that listener."""
    media = config.media
    return dataclasses.replace(
        config,
        host="127.0.0.1",
        port=0,
        processes=1,
        trust_forwarded=True,
        # each process's workers take media.workers ports from base + index * media.workers
        media=dataclasses.replace(
            media, rtc_port=media.rtc_port + index * media.workers if media.rtc_port else 0
        ),
        metrics=dataclasses.replace(config.metrics, host="", token=None),
        internal_token=token,
    )


async def run(config: ServerConfig, index: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # the supervisor holds our stdin: when it closes, the supervisor is gone
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    watch = asyncio.ensure_future(reader.read())
    watch.add_done_callback(lambda _: stop.set())
    server = MediaServer(config)
    serve_links(server, HttpFrontend(server))
    await server.start()
    assert server.http_address is not None
    ready = {
        "ready": True,
        "index": index,
        "http": server.http_address[1],
        "rtc": [w.port for w in server.workers],
        "pid": os.getpid(),
    }
    print(json.dumps(ready), flush=True)
    try:
        await stop.wait()
    finally:
        watch.cancel()
        await server.drain()


def main() -> int:
    payload = pickle.load(sys.stdin.buffer)  # from the supervisor only (a pipe it made)
    config = worker_config(payload["config"], payload["index"], payload.get("token"))
    configure_logging(config)
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(run(config, payload["index"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
