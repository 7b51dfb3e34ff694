"""`mediasrv serve`: starts on the embedded default, says where it listens, stops on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest

LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:(\d+))")


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mediasrv", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for _ in range(50):
            line = proc.stdout.readline()
            match = LISTENING.search(line)
            if match:
                yield proc, match.group(1)
                break
            if not line and proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode} before listening")
        else:
            pytest.fail("server never said where it listens")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_serve_answers_health_and_info(server: tuple[subprocess.Popen[str], str]) -> None:
    _, url = server
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
        assert json.load(response) == {"status": "ok"}
    with urllib.request.urlopen(f"{url}/", timeout=5) as response:
        info = json.load(response)
    assert info["name"] == "mediasrv"
    assert "AES_CM_128_HMAC_SHA1_80" in info["srtp_profiles"]


def test_serve_stops_cleanly_on_sigterm(server: tuple[subprocess.Popen[str], str]) -> None:
    proc, _ = server
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert proc.stdout is not None
    assert "mediasrv stopped" in proc.stdout.read()


def test_serve_rejects_an_invalid_port() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mediasrv", "serve", "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "port: 70000 is outside 0..65535" in result.stderr
