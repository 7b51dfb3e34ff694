"""Operations: /metrics changing as a real session runs (a Chromium publisher, an aiortc
subscriber), a separate token-protected metrics listener, /readyz, the admin API (tokens, room
detail, kick, close, layers, OpenAPI), a graceful drain of `mediasrv serve` on SIGTERM with a
recording running, JSON logs with room and peer, and configuration from the environment."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvloop
from browser_support import PUBLISH_JS, chromium_page
from sfu_support import Harness, PatternTrack, ToneTrack, wait_for

from mediasrv.client import Client
from mediasrv.config import MetricsConfig, RecordingConfig
from mediasrv.config_file import ConfigError, config_from_dict, with_environment
from mediasrv.logs import IDENTITY_CODE, MASK, ContextFilter, JsonFormatter, TextFormatter
from mediasrv.recording.journal import EVENT, read_journal

ADMIN = "admin-token-for-operations-tests"
SCRAPE = "scrape-token-for-operations-tests"
SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$")


def run(coro: Any, limit: float = 90.0) -> None:
    uvloop.run(asyncio.wait_for(coro, limit))


def parse(text: str) -> dict[str, float]:
    """Prometheus text format samples by name{labels}."""
    samples = {}
    for line in text.splitlines():
        found = SAMPLE.match(line)
        if found:
            samples[found.group(1) + (found.group(2) or "")] = float(found.group(3))
    return samples


async def scrape(http: aiohttp.ClientSession, url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(url, headers=headers) as reply:
        return reply.status, await reply.text()


def test_metrics_follow_a_browser_session(tmp_path: Path) -> None:
    async def main() -> None:
        async with Harness() as h, aiohttp.ClientSession() as http:
            assert h.server.http_address is not None
            base = f"http://127.0.0.1:{h.server.http_address[1]}"
            status, text = await scrape(http, f"{base}/metrics")
            assert status == 200
            before = parse(text)
            assert before["mediasrv_peers"] == 0 and before["mediasrv_rooms"] == 0
            assert before["mediasrv_ready"] == 1
            async with chromium_page(h.server) as page:
                await page.evaluate(PUBLISH_JS, {"room": "visit"})
                alone = parse((await scrape(http, f"{base}/metrics"))[1])
                assert alone["mediasrv_peers"] == 1 and alone["mediasrv_rooms"] == 1
                assert alone['mediasrv_producers{kind="video"}'] == 1
                subscriber = await h.client("visit")
                counter = h.counter(subscriber)
                await wait_for(lambda: counter.frames["video"] > 20, 15, "video decoded")
                first = parse((await scrape(http, f"{base}/metrics"))[1])
                await asyncio.sleep(1.5)
                second = parse((await scrape(http, f"{base}/metrics"))[1])
            assert first["mediasrv_peers"] == 2 and first["mediasrv_rooms"] == 1
            assert first['mediasrv_producers{kind="video"}'] == 1
            assert first['mediasrv_consumers{kind="audio"}'] == 1
            assert first['mediasrv_transports{kind="webrtc",state="connected"}'] >= 3
            for name in (
                'mediasrv_rtp_received_packets_total{kind="video"}',
                'mediasrv_rtp_forwarded_packets_total{kind="video"}',
                'mediasrv_rtp_forwarded_bytes_total{kind="audio"}',
                "mediasrv_datagrams_received_total",
                "mediasrv_forwarding_latency_seconds_count",
            ):
                assert second[name] > first[name] > 0, name
            # the data plane's latency: almost everything well under 10 ms on loopback
            assert (
                second['mediasrv_forwarding_latency_seconds_bucket{le="0.01"}']
                >= 0.95 * (second["mediasrv_forwarding_latency_seconds_count"])
            )
            assert second["mediasrv_event_loop_lag_seconds_count"] > 0
            assert second['mediasrv_worker_cpu_seconds_total{worker="0"}'] > 0
            assert second["mediasrv_keyframe_requests_total"] >= 1  # the subscriber's start
            assert second["mediasrv_rtt_seconds_gcount"] >= 0

    run(main())


def test_a_separate_metrics_listener_wants_its_token() -> None:
    async def main() -> None:
        metrics = MetricsConfig(host="127.0.0.1", port=0, token=SCRAPE)
        async with Harness(metrics=metrics) as h, aiohttp.ClientSession() as http:
            assert h.server.metrics_address is not None and h.server.http_address is not None
            url = f"http://127.0.0.1:{h.server.metrics_address[1]}"
            assert (await scrape(http, f"{url}/metrics"))[0] == 401
            assert (await scrape(http, f"{url}/metrics", "wrong-token-0123456789"))[0] == 401
            status, text = await scrape(http, f"{url}/metrics", SCRAPE)
            assert status == 200 and "mediasrv_rooms 0.0" in text
            assert (await scrape(http, f"{url}/readyz"))[0] == 200
            main_url = f"http://127.0.0.1:{h.server.http_address[1]}/metrics"
            assert (await scrape(http, main_url, SCRAPE))[0] == 404  # not on the main port

    run(main())


def test_the_admin_api(tmp_path: Path) -> None:
    async def main() -> None:
        recording = RecordingConfig(directory=str(tmp_path))
        async with (
            Harness(admin_token=ADMIN, recording=recording) as h,
            aiohttp.ClientSession() as http,
        ):
            assert h.server.http_address is not None
            base = f"http://127.0.0.1:{h.server.http_address[1]}/admin"

            async def call(method: str, path: str, token: str | None = ADMIN, **kw: Any) -> Any:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                async with http.request(method, base + path, headers=headers, **kw) as reply:
                    return reply.status, await reply.json()

            publisher = await h.client("visit", display_name="Nurse")
            watcher = await h.client("visit", display_name="Client")
            await publisher.publish([PatternTrack(), ToneTrack()])
            counter = h.counter(watcher)
            await wait_for(lambda: counter.frames["video"] > 5, 15, "video at the watcher")
            paths = [
                ("GET", "/rooms"),
                ("GET", "/rooms/visit"),
                ("DELETE", "/rooms/visit"),
                ("DELETE", f"/rooms/visit/peers/{watcher.peer_id}"),
                ("PUT", "/rooms/visit/consumers/x/layers"),
                ("GET", "/openapi.json"),
            ]
            for method, path in paths:
                for token in (None, "wrong-token-0123456789"):
                    status, body = await call(method, path, token)
                    assert status == 401 and body["error"] == "unauthorized", (method, path)
            status, rooms = await call("GET", "/rooms")
            assert rooms["rooms"] == [
                {"id": "visit", "peers": 2, "producers": 2, "recording": None}
            ]
            status, room = await call("GET", "/rooms/visit")
            names = {p["displayName"]: p for p in room["peers"]}
            nurse = names["Nurse"]["stats"]
            assert {p["kind"] for p in nurse["producers"]} == {"audio", "video"}
            assert all(p["packets"] > 0 for p in nurse["producers"])
            consumers = names["Client"]["stats"]["consumers"]
            video = next(c for c in consumers if c["kind"] == "video")
            assert video["packets"] > 0
            status, body = await call(
                "PUT", f"/rooms/visit/consumers/{video['id']}/layers", json={"temporalLayer": 0}
            )
            assert status == 200 and body["preferredTemporalLayer"] == 0, body
            status, body = await call(
                "PUT", f"/rooms/visit/consumers/{video['id']}/layers", json={"spatialLayer": 1}
            )
            assert status == 400 and "not simulcast" in body["message"]
            status, body = await call(
                "PUT", f"/rooms/visit/consumers/{video['id']}/layers", json={"temporalLayer": 9}
            )
            assert status == 400, body
            status, body = await call("PUT", "/rooms/visit/consumers/nope/layers", json={})
            assert status == 404 and body["error"] == "unknown_consumer"
            removed: list[dict[str, Any]] = []
            watcher.on("removed", removed.append)
            status, body = await call("DELETE", f"/rooms/visit/peers/{watcher.peer_id}")
            assert status == 200 and body["removed"] == watcher.peer_id
            await wait_for(lambda: removed == [{"reason": "kicked"}], 5, "the kick notice")
            assert watcher.peer_id not in h.server.rooms["visit"].peers
            status, body = await call("DELETE", "/rooms/visit/peers/nope")
            assert status == 404 and body["error"] == "unknown_peer"
            status, spec = await call("GET", "/openapi.json")
            assert spec["openapi"].startswith("3.1")
            assert "/admin/rooms/{room}/consumers/{consumer}/layers" in spec["paths"]
            status, body = await call("DELETE", "/rooms/visit")
            assert status == 200 and body == {"closed": "visit", "peers": 1}
            assert "visit" not in h.server.rooms
            status, body = await call("GET", "/rooms/visit")
            assert status == 404

    run(main())


LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


async def start_serve(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mediasrv", "serve", "--port", "0",
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    while True:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert line, "the server exited before listening"
        found = LISTENING.search(line)
        if found:
            return process, int(found.group(1))


def test_sigterm_drains_peers_and_leaves_whole_journals(tmp_path: Path) -> None:
    async def main() -> None:
        env = {
            "MEDIASRV_ADMIN_TOKEN": ADMIN,
            "MEDIASRV_RECORDING_DIRECTORY": str(tmp_path),
            "MEDIASRV_DRAIN_TIMEOUT": "3",
            "MEDIASRV_LOG_FORMAT": "json",
        }
        process, port = await start_serve(env)
        url = f"ws://127.0.0.1:{port}/ws"
        http = aiohttp.ClientSession()
        publisher = await Client.connect(url, token="t", room="visit")
        try:
            notices: list[dict[str, Any]] = []
            publisher.on("serverDraining", notices.append)
            await publisher.publish([PatternTrack(), ToneTrack()])
            await asyncio.sleep(0.5)
            headers = {"Authorization": f"Bearer {ADMIN}"}
            admin = f"http://127.0.0.1:{port}/admin/rooms/visit/recording"
            async with http.post(admin, headers=headers) as reply:
                assert reply.status == 201, await reply.text()
            await asyncio.sleep(1.0)
            process.send_signal(signal.SIGTERM)
            await wait_for(lambda: bool(notices), 5, "serverDraining")
            assert notices[0]["seconds"] == 3
            async with http.get(f"http://127.0.0.1:{port}/readyz") as reply:
                assert reply.status == 503 and (await reply.json())["status"] == "draining"
            with pytest.raises(Exception, match="draining"):
                await Client.connect(url, token="t", room="other")
            # the publisher stays; after 3 s the server closes it and exits on its own
            code = await asyncio.wait_for(process.wait(), 20)
            assert code == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            with contextlib.suppress(Exception):
                await publisher.close()
            await http.close()
        assert process.stdout is not None and process.stderr is not None
        stdout = (await process.stdout.read()).decode()
        stderr = (await process.stderr.read()).decode()
        assert "mediasrv stopped" in stdout
        lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
        assert lines and all({"time", "level", "logger", "message"} <= set(x) for x in lines)
        assert any(x.get("room") == "visit" and "peer" in x for x in lines), lines[-5:]
        assert any("draining" in x["message"] for x in lines)
        (directory,) = [p for p in (tmp_path / "visit").iterdir() if p.is_dir()]
        manifest = json.loads((directory / "recording.json").read_text())
        assert manifest["stopReason"] == "server_stopping" and manifest["stopped"]
        for path in directory.glob("*.msrec"):
            journal = read_journal(path)
            assert journal.damage is None, journal.damage
            last = list(journal.records)[-1]
            assert last.type == EVENT
            assert json.loads(last.payload) == {"event": "stop", "reason": "server_stopping"}

    run(main())


def test_json_logs_mask_identity_codes() -> None:
    import logging

    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "person %s joined", ("131052-308T",), None
    )
    assert ContextFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == f"person {MASK} joined"
    assert IDENTITY_CODE.search("code 010115A901T here")
    try:
        raise ValueError("bad id 131052-308T")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    assert ContextFilter().filter(failed)
    for formatter in (TextFormatter(), JsonFormatter()):
        text = formatter.format(failed)
        assert "131052-308T" not in text and MASK in text, text


def test_configuration_from_the_environment() -> None:
    config = config_from_dict(
        with_environment(
            {"port": 8000, "media": {"rtc_port": 40000}},
            {
                "MEDIASRV_PORT": "9000",
                "MEDIASRV_MEDIA_MAX_PEERS_PER_ROOM": "12",
                "MEDIASRV_RECORDING_FSYNC_INTERVAL": "2.5",
                "MEDIASRV_METRICS_ENABLED": "false",
                "MEDIASRV_TOKENS": "a-token, b-token",
                "MEDIASRV_LIBSRTP": "system",  # the build's own: not a setting
                # Kubernetes service links for a Service named "mediasrv": not settings
                "MEDIASRV_SERVICE_HOST": "10.96.0.12",
                "MEDIASRV_SERVICE_PORT": "8080",
                "MEDIASRV_PORT_8080_TCP_ADDR": "10.96.0.12",
                "MEDIASRV_METRICS_PORT": "tcp://10.96.0.12:9464",
                "OTHER": "x",
            },
        )
    )
    assert config.port == 9000 and config.media.rtc_port == 40000
    assert config.media.max_peers_per_room == 12 and config.recording.fsync_interval == 2.5
    assert config.metrics.enabled is False and config.tokens == frozenset({"a-token", "b-token"})
    for env, message in (
        ({"MEDIASRV_PORT": "http"}, "MEDIASRV_PORT: expected an integer, got 'http'"),
        ({"MEDIASRV_PROT": "1"}, "MEDIASRV_PROT: unknown setting"),
        ({"MEDIASRV_MEDIA_RTC_PROT": "1"}, "MEDIASRV_MEDIA_RTC_PROT: unknown setting (known media"),
        ({"MEDIASRV_METRICS_ENABLED": "maybe"}, "expected true or false, got 'maybe'"),
        ({"MEDIASRV_LOG_FORMAT": "xml"}, "log_format: 'xml' is not 'text' or 'json'"),
        ({"MEDIASRV_METRICS_TOKEN": "short"}, "metrics.token: at least 16 characters"),
        ({"MEDIASRV_DRAIN_TIMEOUT": "-1"}, "drain_timeout: -1.0 is outside 0..3600"),
        ({"MEDIASRV_RECORDING_FSYNC_INTERVAL": "nan"}, "expected a finite number, got 'nan'"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            config_from_dict(with_environment({}, env))
    with pytest.raises(ConfigError, match=re.escape("metrics.prot: unknown key")):
        config_from_dict({"metrics": {"prot": 1}})


def test_serve_takes_the_environment_without_a_file() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mediasrv", "serve"],
        env={**os.environ, "MEDIASRV_PORT": "not-a-port"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "MEDIASRV_PORT: expected an integer, got 'not-a-port'" in done.stderr


def test_the_dashboard_and_the_alert_rules_use_metrics_that_exist(tmp_path: Path) -> None:
    """Every mediasrv_* name in docs/grafana-dashboard.json and in docs/operations.md's alert
    rules is exported by a server that has run a session and a recording."""
    docs = Path(__file__).resolve().parent.parent / "docs"
    dashboard = (docs / "grafana-dashboard.json").read_text()
    json.loads(dashboard)  # valid JSON for Grafana to import
    rules = (docs / "operations.md").read_text().split("```yaml")[1].split("```")[0]
    referenced = set(re.findall(r"\bmediasrv_[a-z_]+", dashboard + rules))

    async def main() -> None:
        async with Harness(recording=RecordingConfig(directory=str(tmp_path))) as h:
            publisher = await h.client("visit")
            await publisher.publish([PatternTrack(), ToneTrack()])
            counter = h.counter(await h.client("visit"))
            await wait_for(lambda: counter.frames["video"] > 5, 15, "video")
            room = h.server.rooms["visit"]
            await room.start_recording()
            await asyncio.sleep(0.7)
            room.stop_recording()
            # families, from their TYPE lines (labelled ones may have no sample yet)
            text = h.server.metrics_text().decode()
            families = set(re.findall(r"^# TYPE (mediasrv_[a-z_]+) ", text, re.MULTILINE))
            suffixes = ("", "_total", "_bucket", "_count", "_sum", "_gcount", "_gsum")
            missing = {
                name
                for name in referenced
                if not any(name == family + suffix for family in families for suffix in suffixes)
            }
            assert not missing, f"not exported: {sorted(missing)}"

    run(main())
