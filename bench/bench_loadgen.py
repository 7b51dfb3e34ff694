"""Smoke runs of the load generator (bench/loadgen.py, ``mediasrv-bench``) inside `make test`:
short, bounded runs against its own server process, with real WebRTC transports and clips that
ffmpeg makes (into a temporary directory); its packetizers; and its refusals of bad plans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.loadgen import main
from bench.media_clips import (
    MAX_PAYLOAD,
    NAL_FU_A,
    annexb_nal_units,
    load_media,
    packetize_h264,
    split_vp8,
)
from mediasrv import _core

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


def _steps(path: Path) -> list[dict[str, float]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["complete"] is True
    assert document["machine"]["nproc"] >= 1
    steps: list[dict[str, float]] = document["steps"]
    return steps


def test_loadgen_ramp_vp8_opus_writes_json_and_plot(media_dir: Path, tmp_path: Path) -> None:
    out, plot = tmp_path / "load.json", tmp_path / "load.png"
    status = main(
        ["--rooms", "1", "--publishers", "1", "--ramp", "1,2", "--seconds", "1.5",
         "--warmup", "0.5", "--codec", "vp8", "--audio", "--media-dir", str(media_dir),
         "--json", str(out), "--plot", str(plot), "--no-progress", "--max-seconds", "60"]
    )  # fmt: skip
    assert status == 0
    steps = _steps(out)
    assert [s["subscribers_per_room"] for s in steps] == [1, 2]
    for step in steps:
        assert step["forwarded_pps"] > 0, step
        # VP8 (~800 kbit/s) and Opus: over 100 packets/s reach each subscriber
        assert step["received_pps"] > 100 * step["subscribers"], step
        assert step["loss"] < 0.05, step
        assert step["server_cpu_us_per_packet"] > 0, step
        assert step["join_p50_ms"] > 0 and step["join_p99_ms"] >= step["join_p50_ms"], step
        assert step["latency_samples"] > 0 and step["latency_p50_us"] > 0, step
    data = plot.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 10_000  # a drawn figure, not an empty canvas


def test_loadgen_h264(media_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "h264.json"
    status = main(
        ["--subscribers", "1", "--seconds", "1", "--warmup", "0.5", "--codec", "h264",
         "--no-audio", "--media-dir", str(media_dir), "--json", str(out), "--no-progress"]
    )  # fmt: skip
    assert status == 0
    (step,) = _steps(out)
    assert step["received_pps"] > 30, step  # at least a packet per frame at 30 fps
    assert step["loss"] < 0.05, step
    assert step["latency_samples"] > 0, step


def test_h264_packetization_round_trip(media_dir: Path) -> None:
    """The clip's access units come back from their payloads (single NAL units, FU-A
    fragments); the server sees a keyframe where an IDR starts."""
    clip = load_media("h264", False, False, media_dir).video[0]
    key = clip.frames[clip.keyframes[0]]
    assert _core.h264_payload_nal_types(key.payloads[0]) == [7]  # SPS first
    assert any(p[0] & 0x1F == NAL_FU_A for p in key.payloads)  # the IDR is fragmented
    assert all(len(p) <= MAX_PAYLOAD for f in clip.frames for p in f.payloads)
    nal = bytes([0x65]) + bytes(range(256)) * 20  # an IDR slice of 5,121 bytes
    payloads = packetize_h264(b"\x00\x00\x00\x01" + nal)
    assert len(payloads) > 1
    assert payloads[0][1] & 0x80 and payloads[-1][1] & 0x40  # S on the first, E on the last
    rebuilt = bytes([(payloads[0][0] & 0xE0) | (payloads[0][1] & 0x1F)])
    rebuilt += b"".join(p[2:] for p in payloads)
    assert annexb_nal_units(b"\x00\x00\x01" + rebuilt) == [nal]
    assert b"".join(split_vp8(nal)) == nal


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--server", "ws://10.0.0.5:8080/ws"], "is not a loopback address"),
        (["--server", "ws://example.com:8080/ws"], "is not a loopback address"),
        (["--rooms", "4", "--ramp", "10,120"], "exceeds --max-peers 400"),
        (["--subscribers", "30", "--max-peers", "20"], "exceeds --max-peers 20"),
        (["--ramp", "4,2"], "the steps must increase"),
        (["--seconds", "400", "--ramp", "1,2"], "exceeds --max-seconds"),
    ],
)
def test_loadgen_refuses(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
