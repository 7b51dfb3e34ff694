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
from aiohttp import web

from mediasrv import __version__
from mediasrv.config import DEFAULT_CONFIG, ServerConfig
from mediasrv.http_app import create_app

log = logging.getLogger("mediasrv")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mediasrv", description="mediasrv media server")
    parser.add_argument("--version", action="version", version=f"mediasrv {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", default=DEFAULT_CONFIG.host, help="address to bind (HTTP)")
    serve.add_argument("--port", type=int, default=DEFAULT_CONFIG.port, help="port (0: any free)")
    return parser


async def serve(config: ServerConfig) -> None:
    # Handlers first: whoever reads "listening" may signal us at once.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    if not config.is_loopback:
        log.warning("listening on a non-loopback address %s: put it behind TLS", host)
    print(f"mediasrv {__version__} listening on http://{host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        print("mediasrv stopping", flush=True)
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.command == "serve":
        try:
            config = ServerConfig(host=args.host, port=args.port)
        except ValueError as exc:
            print(f"mediasrv: invalid configuration: {exc}", file=sys.stderr)
            return 2
        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(serve(config))
        return 0
    return 2
