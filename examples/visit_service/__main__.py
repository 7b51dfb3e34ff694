"""``python -m examples.visit_service [--config FILE] [--host H] [--port P]``: run the video
visit service (on the embedded default: SQLite files in .visit-demo/, the development identity
provider on port 8081)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from examples.visit_service.config import VisitConfigError, load
from examples.visit_service.service import VisitService


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.visit_service")
    parser.add_argument("--config", help="a TOML file with a [visit] table")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port),
                                   ("data_dir", args.data_dir)) if v is not None}  # fmt: skip
    try:
        config = load(args.config, **overrides)
    except VisitConfigError as exc:
        print(f"visit service: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    service = VisitService(config)
    await service.start()
    url = f"{service.url}/visit/"
    print(f"\nThe video visit service is running: open {url}", flush=True)
    if service.idp is not None:
        print(
            "Sign in through the development identity provider (test people):\n"
            "  professional: Hanna Hoitaja (nurse) - open 'Appointments', copy an invitation link\n"
            "  client:       Aino Asiakas - open the link in another browser or a private window\n"
            "  on behalf:    Paula Vanhempi (for Ville), Raili Sukulainen (for Eino)\n",
            flush=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await service.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
