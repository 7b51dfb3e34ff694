"""A real coturn (Debian's ``turnserver``) on loopback for the tests: TURN over UDP and TCP on
one port, TURN over TLS on another with a self-signed certificate, the TURN REST API's
shared secret (``use-auth-secret``), relays on 127.0.0.1 in a port range of its own, no CLI and
no database."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from mediasrv.certificate import Certificate

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
SECRET = "a-test-turn-secret-of-some-length"
REALM = "mediasrv.test"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (coturn listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
            with socket.socket(socket.AF_INET, other) as second:
                try:
                    second.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port for both TCP and UDP")


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for TURN over TLS (the pages ignore certificate
    errors; aioice's client is told not to verify): the one mediasrv makes for DTLS."""
    certificate = Certificate.generate()
    cert_path, key_path = directory / "turn.crt", directory / "turn.key"
    cert_path.write_bytes(certificate.cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        certificate.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Coturn:
    port: int  # TURN over UDP and TCP
    tls_port: int  # TURN over TLS
    min_port: int  # relayed addresses come from this range
    max_port: int
    log_path: Path
    secret: str = SECRET

    @property
    def urls(self) -> tuple[str, ...]:
        return (
            f"turn:127.0.0.1:{self.port}?transport=udp",
            f"turn:127.0.0.1:{self.port}?transport=tcp",
            f"turns:127.0.0.1:{self.tls_port}",
        )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def _wait_listening(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"turnserver exited with {process.returncode}:\n{log_path.read_text()[-3000:]}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"turnserver not listening on {port}:\n{log_path.read_text()[-3000:]}")


@contextlib.contextmanager
def coturn(*, extra: tuple[str, ...] = ()) -> Iterator[Coturn]:
    """A running turnserver on 127.0.0.1 (stopped at exit); extra: more turnserver.conf lines."""
    with tempfile.TemporaryDirectory(prefix="coturn-") as tmp:
        directory = Path(tmp)
        cert, key = self_signed(directory)
        port, tls_port = free_port(), free_port()
        relay_base = free_port(socket.SOCK_DGRAM)
        min_port, max_port = relay_base, min(relay_base + 200, 65535)
        log_path = directory / "turnserver.log"
        server = Coturn(port, tls_port, min_port, max_port, log_path)
        options = [
            "listening-ip=127.0.0.1", "relay-ip=127.0.0.1", f"listening-port={port}",
            f"tls-listening-port={tls_port}", "alt-listening-port=0", "alt-tls-listening-port=0",
            f"min-port={min_port}", f"max-port={max_port}", "use-auth-secret",
            f"static-auth-secret={server.secret}", f"realm={REALM}", f"cert={cert}",
            f"pkey={key}", "no-dtls", "no-cli", "allow-loopback-peers", "fingerprint",
            "no-multicast-peers", "simple-log", f"log-file={log_path}",
            f"pidfile={directory / 'turnserver.pid'}", f"userdb={directory / 'turndb'}",
            *extra,
        ]  # fmt: skip
        conf = directory / "turnserver.conf"
        conf.write_text("\n".join(options) + "\n", encoding="utf-8")
        process = subprocess.Popen(
            [TURNSERVER, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=directory,
        )
        try:
            _wait_listening(port, process, log_path)
            _wait_listening(tls_port, process, log_path)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
