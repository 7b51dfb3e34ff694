"""The ``mediasrv`` command line: ``mediasrv serve [--host H] [--port P]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

import uvloop

from mediasrv.config import DEFAULT_CONFIG, ServerConfig
from mediasrv.config_file import config_from_dict, load_config, read_file, with_environment
from mediasrv.http.frontend import HttpFrontend
from mediasrv.logs import configure_logging
from mediasrv.media_server import MediaServer
from mediasrv.version import __version__

log = logging.getLogger("mediasrv")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mediasrv", description="mediasrv media server")
    parser.add_argument("--version", action="version", version=f"mediasrv {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--config", default=None, help="TOML configuration file (flags override)")
    serve.add_argument(
        "--host", default=None, help=f"address to bind (HTTP; {DEFAULT_CONFIG.host})"
    )
    serve.add_argument(
        "--port", type=int, default=None, help=f"port ({DEFAULT_CONFIG.port}; 0: any)"
    )
    serve.add_argument("--rtc-port", type=int, default=None, help="UDP media port (0: any free)")
    serve.add_argument("--announced-ip", default=None, help="address put in ICE candidates")
    serve.add_argument(
        "--token",
        action="append",
        default=None,
        help="accepted signaling token (repeatable; none: any token, with a warning)",
    )
    serve.add_argument(
        "--processes",
        type=int,
        default=None,
        help="worker processes behind one supervisor (1: one process; 0: one per core)",
    )
    check = commands.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("file")
    return parser


def _config(args: argparse.Namespace) -> ServerConfig:
    """The file (or the embedded default), then MEDIASRV_* variables, then the flags."""
    base = config_from_dict(with_environment(read_file(args.config) if args.config else {}))
    host = args.host if args.host is not None else base.host
    media = base.media
    listen_ip = media.listen_ip if args.config else _listen_ip(host)
    media = dataclasses.replace(
        media,
        listen_ip=listen_ip,
        rtc_port=args.rtc_port if args.rtc_port is not None else media.rtc_port,
        announced_ip=args.announced_ip if args.announced_ip is not None else media.announced_ip,
    )
    return dataclasses.replace(
        base,
        host=host,
        port=args.port if args.port is not None else base.port,
        media=media,
        tokens=frozenset(args.token) if args.token else base.tokens,
        processes=args.processes if args.processes is not None else base.processes,
    )


def stop_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM. Installed first: whoever reads "listening" may
    signal us at once."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def until_stopped(
    stop: asyncio.Event, config: ServerConfig, drain: Callable[[], Awaitable[None]]
) -> None:
    """Serve until a stop signal (or cancellation), then drain, saying so."""
    try:
        await stop.wait()
    finally:
        print(f"mediasrv draining (up to {config.drain_timeout:.0f} s)", flush=True)
        await drain()
        print("mediasrv stopped", flush=True)


async def serve(config: ServerConfig) -> None:
    stop = stop_signals()
    server = MediaServer(config)
    HttpFrontend(server)
    await server.start()
    assert server.http_address is not None
    host, port = server.http_address
    ports = ", ".join(f"udp {w.config.listen_ip}:{w.port}" for w in server.workers)
    if not config.is_loopback:
        log.warning("listening on a non-loopback address %s: put it behind TLS", host)
    print(f"mediasrv {__version__} listening on http://{host}:{port} (media {ports})", flush=True)
    print(f"browser client SDK: http://{host}:{port}/client/mediasrv-client.js", flush=True)
    await until_stopped(stop, config, server.drain)


async def serve_supervised(config: ServerConfig) -> None:
    """Worker processes behind a supervisor (``processes`` other than 1)."""
    from mediasrv.cluster.supervisor import Supervisor

    stop = stop_signals()
    supervisor = Supervisor(config)
    try:
        await supervisor.start()
    except BaseException:
        await supervisor.close()  # the workers already started stop too
        raise
    assert supervisor.http_address is not None
    host, port = supervisor.http_address
    ports = ", ".join(f"udp {config.media.listen_ip}:{p}" for w in supervisor.workers
                      for p in w.rtc_ports)  # fmt: skip
    print(f"mediasrv {__version__} listening on http://{host}:{port} "
          f"({len(supervisor.workers)} worker processes; media {ports})", flush=True)  # fmt: skip
    await until_stopped(stop, config, supervisor.close)


def _listen_ip(host: str) -> str:
    """Media binds where HTTP does; a host name binds media on the loopback address."""
    if host in ("localhost", ""):
        return "127.0.0.1"
    return host


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.command == "check-config":
        try:
            config = load_config(args.file)
            MediaServer(config)  # loads and validates every plugin's configuration
        except ValueError as exc:
            print(f"mediasrv: invalid configuration: {exc}", file=sys.stderr)
            return 2
        names = ", ".join(spec.name for spec in config.plugins) or "none"
        print(f"{args.file}: ok (http {config.host}:{config.port}; plugins: {names})")
        return 0
    if args.command == "serve":
        try:
            config = _config(args)
            MediaServer(config)  # plugin configuration errors before anything binds
        except ValueError as exc:
            print(f"mediasrv: invalid configuration: {exc}", file=sys.stderr)
            return 2
        configure_logging(config)
        from mediasrv.cluster.supervisor import supervised

        run = serve_supervised if supervised(config) else serve
        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(run(config))
        return 0
    return 2
