"""The ``mediasrv`` command line: ``mediasrv serve [--host H] [--port P]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

import uvloop

from mediasrv import __version__
from mediasrv.config import DEFAULT_CONFIG, MediaConfig, ServerConfig
from mediasrv.media_server import MediaServer

log = logging.getLogger("mediasrv")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mediasrv", description="mediasrv media server")
    parser.add_argument("--version", action="version", version=f"mediasrv {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", default=DEFAULT_CONFIG.host, help="address to bind (HTTP)")
    serve.add_argument("--port", type=int, default=DEFAULT_CONFIG.port, help="port (0: any free)")
    serve.add_argument("--rtc-port", type=int, default=0, help="UDP media port (0: any free)")
    serve.add_argument("--announced-ip", default=None, help="address put in ICE candidates")
    serve.add_argument(
        "--token",
        action="append",
        default=None,
        help="accepted signaling token (repeatable; none: any token, with a warning)",
    )
    return parser


async def serve(config: ServerConfig) -> None:
    # Handlers first: whoever reads "listening" may signal us at once.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = MediaServer(config)
    await server.start()
    assert server.http_address is not None
    host, port = server.http_address
    ports = ", ".join(f"udp {w.config.listen_ip}:{w.port}" for w in server.workers)
    if not config.is_loopback:
        log.warning("listening on a non-loopback address %s: put it behind TLS", host)
    print(f"mediasrv {__version__} listening on http://{host}:{port} (media {ports})", flush=True)
    print(f"browser client SDK: http://{host}:{port}/client/mediasrv-client.js", flush=True)
    try:
        await stop.wait()
    finally:
        print("mediasrv stopping", flush=True)
        await server.close()


def _listen_ip(host: str) -> str:
    """Media binds where HTTP does; a host name binds media on the loopback address."""
    if host in ("localhost", ""):
        return "127.0.0.1"
    return host


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.command == "serve":
        try:
            media = MediaConfig(
                listen_ip=_listen_ip(args.host),
                rtc_port=args.rtc_port,
                announced_ip=args.announced_ip,
            )
            tokens = frozenset(args.token) if args.token else None
            config = ServerConfig(host=args.host, port=args.port, media=media, tokens=tokens)
        except ValueError as exc:
            print(f"mediasrv: invalid configuration: {exc}", file=sys.stderr)
            return 2
        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(serve(config))
        return 0
    return 2
