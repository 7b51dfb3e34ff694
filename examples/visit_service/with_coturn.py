"""The visit service demo with a local coturn beside it (``make run-turn``): TURN over UDP and TCP
on 127.0.0.1:3478 with a secret made for this run, relays on loopback only, and the service
configured to hand out credentials for it. Loopback only: to try what a client behind a
firewall sees, open the visit page in a browser with iceTransportPolicy 'relay' (or block UDP)
on the same machine. A real deployment runs coturn as docs/operations.md shows.

    python -m examples.visit_service.with_coturn [--turn-port 3478] [visit service options]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from examples.visit_service.__main__ import main as visit_main

TURN_HOST = "127.0.0.1"


def start_coturn(port: int, secret: str, directory: Path) -> subprocess.Popen[bytes]:
    turnserver = shutil.which("turnserver")
    if turnserver is None:
        raise SystemExit("turnserver not found: apt-get install coturn (make run-turn does)")
    log_path = directory / "turnserver.log"
    # the options in a 0600 file, so that the secret is not on a command line others can read
    conf = directory / "turnserver.conf"
    options = [
        f"listening-ip={TURN_HOST}", f"relay-ip={TURN_HOST}", f"listening-port={port}",
        "no-tls", "no-dtls", "no-cli", "use-auth-secret", f"static-auth-secret={secret}",
        "realm=visit.local", "fingerprint", "allow-loopback-peers", "no-multicast-peers",
        "min-port=49160", "max-port=49660", "simple-log", f"log-file={log_path}",
        f"pidfile={directory / 'turnserver.pid'}", f"userdb={directory / 'turndb'}",
    ]  # fmt: skip
    conf.touch(0o600)
    conf.write_text("\n".join(options) + "\n", encoding="utf-8")
    process = subprocess.Popen(
        [turnserver, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"turnserver exited ({process.returncode}); see {log_path}")
        try:
            socket.create_connection((TURN_HOST, port), 0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise SystemExit(f"turnserver did not listen on {TURN_HOST}:{port}; see {log_path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--turn-port", type=int, default=3478)
    args, rest = parser.parse_known_args(argv)
    secret = secrets.token_urlsafe(32)  # this run's only: never written to a file or logged
    with tempfile.TemporaryDirectory(prefix="visit-coturn-") as tmp:
        process = start_coturn(args.turn_port, secret, Path(tmp))
        config = Path(tmp) / "visit.toml"
        urls = [
            f"turn:{TURN_HOST}:{args.turn_port}?transport=udp",
            f"turn:{TURN_HOST}:{args.turn_port}?transport=tcp",
        ]
        config.write_text(
            "[visit]\nturn_urls = [" + ", ".join(f'"{u}"' for u in urls) + "]\n"
            f'turn_secret = "{secret}"\n',
            encoding="utf-8",
        )
        config.chmod(0o600)
        print(f"coturn on {TURN_HOST}:{args.turn_port} (UDP and TCP), relays on loopback")
        try:
            return asyncio.run(visit_main(["--config", str(config), *rest]))
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
