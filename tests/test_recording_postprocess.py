"""mediasrv-rec: journals of real RTP (sent by ffmpeg, captured with arrival times) to WebM and
MP4, checked with ffprobe, ffmpeg and PyAV; plus the depacketizers' parts on crafted packets."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from recording_support import (
    BEEP,
    FLASH,
    H264_ARGS,
    SINE,
    TESTSRC,
    VP8_ARGS,
    VP9_ARGS,
    Capture,
    RunningCapture,
    beep_times,
    cut,
    decode_errors,
    drop_random,
    ffprobe,
    first_ts,
    flash_times,
    flip_byte,
    metadata,
    nearest_differences,
    packet_digest,
    rewrite_seq,
    shift_ts,
    shuffle_nearby,
    stream_of,
    write_participant,
)

from mediasrv.recording.av_output import output_container
from mediasrv.recording.compose import compose_room
from mediasrv.recording.frames import (
    AudioFrameAssembler,
    MalformedPayload,
    PayloadInfo,
    VideoFrameAssembler,
)
from mediasrv.recording.h264_frames import (
    H264Depayloader,
    parameter_sets_of,
    sprop_parameter_sets,
)
from mediasrv.recording.journal import MAGIC, JournalWriter, read_journal
from mediasrv.recording.opus_frames import opus_head, opus_packet_samples
from mediasrv.recording.pcm_timeline import PcmTimeline
from mediasrv.recording.progress import Progress
from mediasrv.recording.rec_cli import main
from mediasrv.recording.reorder import Reorderer
from mediasrv.recording.rtp_stream import RtpPacket, Unwrapper, parse_rtp
from mediasrv.recording.tiles import fit, grid
from mediasrv.recording.vp8_frames import Vp8Depayloader
from mediasrv.recording.vp9_frames import Vp9Depayloader, vp9_is_keyframe, vp9_superframe

# --- real media --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Capture]:
    """ffmpeg sends four clips at once (real time, about 5 s in all); Python captures them."""
    directory = tmp_path_factory.mktemp("sdp")
    running = {
        "vp8": RunningCapture(TESTSRC, SINE, VP8_ARGS, 4, directory / "vp8.sdp"),
        "h264": RunningCapture(TESTSRC, SINE, H264_ARGS, 3, directory / "h264.sdp"),
        "vp9": RunningCapture(TESTSRC, SINE, VP9_ARGS, 2, directory / "vp9.sdp"),
        "sync": RunningCapture(FLASH, BEEP, VP8_ARGS, 4, directory / "sync.sdp"),
    }
    return {name: capture.result() for name, capture in running.items()}


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    """mediasrv-rec in this process: exit status and what it printed on stderr."""
    status = main([str(arg) for arg in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return status, err


def sent_video_frames(capture: Capture) -> int:
    return len({struct.unpack_from("!I", data, 4)[0] for _, data in capture.video.rtp})


def check_output(
    path: Path, capture: Capture, video: str, audio: str, *, min_share: float = 0.9
) -> dict[str, object]:
    probe = ffprobe(path)
    v, a = stream_of(probe, "video"), stream_of(probe, "audio")
    assert (v["codec_name"], a["codec_name"]) == (video, audio)
    assert abs(float(probe["format"]["duration"]) - capture.seconds) < 0.5, probe["format"]
    assert int(v["nb_read_frames"]) >= min_share * sent_video_frames(capture)
    if audio == "opus":  # AAC frames are 1024 samples, not 20 ms
        assert int(a["nb_read_frames"]) >= min_share * len(capture.audio.rtp)
    assert decode_errors(path) == ""
    return probe


def test_vp8_opus_to_webm(
    captures: dict[str, Capture], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video, audio = write_participant(tmp_path, captures["vp8"], "vp8")
    out = tmp_path / "out.webm"
    status, err = run(capsys, video, audio, "-o", out)
    assert status == 0, err
    assert "warning" not in err
    probe = check_output(out, captures["vp8"], "vp8", "opus")
    assert stream_of(probe, "video")["width"] == 320
    digest = packet_digest(out)
    assert digest[0][0] == "video" and digest[0][2], "the output starts on a keyframe"


def test_vp8_opus_to_mkv_video_only(
    captures: dict[str, Capture], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video, _ = write_participant(tmp_path, captures["vp8"], "vp8")
    out = tmp_path / "out.mkv"
    assert run(capsys, video, "-o", out)[0] == 0
    probe = ffprobe(out)
    assert [s["codec_name"] for s in probe["streams"]] == ["vp8"]
    # audio of somebody else: written, with a warning
    _, audio = write_participant(tmp_path / "bob", captures["vp8"], "vp8", peer="bob")
    status, err = run(capsys, video, audio, "-o", out)
    assert status == 0
    assert "the journals are of different peers (alice, bob)" in err


def test_h264_opus_to_mp4(
    captures: dict[str, Capture], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video, audio = write_participant(tmp_path, captures["h264"], "h264")
    out = tmp_path / "out.mp4"
    status, err = run(capsys, video, audio, "-o", out)
    assert status == 0, err
    probe = check_output(out, captures["h264"], "h264", "opus")
    assert stream_of(probe, "video")["profile"] in ("Constrained Baseline", "Baseline")


def test_h264_aac_to_mp4(
    captures: dict[str, Capture], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video, audio = write_participant(tmp_path, captures["h264"], "h264")
    out = tmp_path / "out.mp4"
    status, err = run(capsys, video, audio, "-o", out, "--audio-codec", "aac")
    assert status == 0, err
    check_output(out, captures["h264"], "h264", "aac")


def test_vp9_opus_to_webm(
    captures: dict[str, Capture], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video, audio = write_participant(tmp_path, captures["vp9"], "vp9")
    out = tmp_path / "out.webm"
    status, err = run(capsys, video, audio, "-o", out)
    assert status == 0, err
    check_output(out, captures["vp9"], "vp9", "opus")


def test_wraps_and_reordering_give_the_same_output(
    captures: dict[str, Capture], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = captures["vp8"]
    outputs = []
    cases: dict[str, dict[str, Any]] = {
        "plain": {},
        "seq-wrap": {"transform": rewrite_seq(65500)},
        "reordered": {"transform": shuffle_nearby(seed=3)},
    }
    for name, options in cases.items():
        video, audio = write_participant(tmp_path / name, capture, "vp8", **options)
        out = tmp_path / f"{name}.webm"
        assert run(capsys, video, audio, "-o", out)[0] == 0
        outputs.append(packet_digest(out))
    # timestamps that wrap a few frames in: both streams (and their SRs) shifted alike
    directory = tmp_path / "ts-wrap"
    paths = []
    for kind, packets in (("video", capture.video), ("audio", capture.audio)):
        offset = (2**32 - 3000 - first_ts(packets)) % 2**32
        paths.append(
            write_participant(
                directory / kind, capture, "vp8", transform=shift_ts(offset), sr_ts_offset=offset
            )[0 if kind == "video" else 1]
        )
    assert run(capsys, *paths, "-o", tmp_path / "ts.webm")[0] == 0
    outputs.append(packet_digest(tmp_path / "ts.webm"))
    assert len(outputs[0]) > 300
    for name, output in zip([*cases, "ts-wrap"], outputs, strict=True):
        assert output == outputs[0], name


def test_packet_loss(
    captures: dict[str, Capture], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = captures["vp8"]
    video, audio = write_participant(tmp_path, capture, "vp8", transform=drop_random(0.05, 7))
    out = tmp_path / "out.webm"
    status, err = run(capsys, video, audio, "-o", out)
    assert status == 0, err  # loss is not damage
    assert "gap(s) in the video packet sequence (packet loss)" in err
    assert decode_errors(out) == ""
    probe = ffprobe(out)
    frames = int(stream_of(probe, "video")["nb_read_frames"])
    assert 0 < frames < sent_video_frames(capture)
    assert int(stream_of(probe, "audio")["nb_read_frames"]) < len(capture.audio.rtp)
    digest = packet_digest(out)
    first_video = next(packet for packet in digest if packet[0] == "video")
    assert first_video[2], "the video starts on a keyframe"


def test_truncated_journal(
    captures: dict[str, Capture], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video, audio = write_participant(tmp_path, captures["vp8"], "vp8")
    records = read_journal(video).records
    torn = records[len(records) // 2]
    cut(video, torn.offset + 30)
    out = tmp_path / "out.webm"
    status, err = run(capsys, video, audio, "-o", out)
    assert status == 1
    length = 12 + len(torn.payload)
    assert (
        f"mediasrv-rec: damaged journal: {video}: record {torn.index} at byte {torn.offset}: "
        f"truncated: its length field says {length} bytes plus 4 for the CRC, 26 remain "
        f"(stopped there; {torn.index - 1} records before it are intact)"
    ) in err
    assert decode_errors(out) == ""
    probe = ffprobe(out)
    frames = int(stream_of(probe, "video")["nb_read_frames"])
    assert 0.3 < frames / sent_video_frames(captures["vp8"]) < 0.7, frames
    assert abs(float(probe["format"]["duration"]) - 4) < 0.5  # the audio is whole


def test_corrupted_byte(
    captures: dict[str, Capture], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video, audio = write_participant(tmp_path, captures["vp8"], "vp8")
    records = read_journal(audio).records
    bad = records[len(records) // 3]
    flip_byte(audio, bad.offset + 4 + 12 + 3)
    out = tmp_path / "out.webm"
    status, err = run(capsys, video, audio, "-o", out)
    assert status == 1
    assert re.search(
        rf"damaged journal: {re.escape(str(audio))}: record {bad.index} at byte {bad.offset}: "
        rf"CRC mismatch \(stored [0-9a-f]{{8}}, computed [0-9a-f]{{8}}\) "
        rf"\(stopped there; {bad.index - 1} records before it are intact\)",
        err,
    ), err
    assert decode_errors(out) == ""
    probe = ffprobe(out)
    frames = int(stream_of(probe, "audio")["nb_read_frames"])
    assert 0.2 < frames / len(captures["vp8"].audio.rtp) < 0.5, frames
    assert abs(float(probe["format"]["duration"]) - 4) < 0.5  # the video is whole


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"OggS" + bytes(30), "not a mediasrv journal: bad magic 4f 67 67 53 00 00 00 00"),
        (MAGIC + b"\x00\x07" + bytes(10), "unsupported journal version 7 (this reader reads 1)"),
    ],
)
def test_bad_header_is_a_usage_error(
    captures: dict[str, Capture],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    header: bytes,
    message: str,
) -> None:
    video, audio = write_participant(tmp_path, captures["vp8"], "vp8")
    audio.write_bytes(header + audio.read_bytes()[len(header) :])
    out = tmp_path / "out.webm"
    status, err = run(capsys, video, audio, "-o", out)
    assert status == 2
    assert f"mediasrv-rec: error: {audio}: {message}" in err
    assert not out.exists()


def test_usage_errors(
    captures: dict[str, Capture], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video, audio = write_participant(tmp_path, captures["h264"], "h264")
    missing = tmp_path / "missing.msrec"
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ((video, "-o", tmp_path / "o.webm"), "webm cannot hold H264 video: use .mp4 or .mkv"),
        ((video, "-o", tmp_path / "o.avi"), "cannot tell the output format from the extension"),
        ((video, video, "-o", tmp_path / "o.mp4"), "a second video journal"),
        ((missing, "-o", tmp_path / "o.mp4"), f"{missing}: cannot read: No such file"),
        ((audio, "-o", audio), "is one of the journals"),
        (("-o", tmp_path / "o.mp4"), "give the journals of one participant"),
        ((video, "--room", tmp_path, "-o", tmp_path / "o.mp4"), "either journals or --room"),
        (("--room", tmp_path / "bob", "-o", tmp_path / "o.mp4"), "bob: not a directory"),
        (("--room", empty, "-o", tmp_path / "o.mp4"), "no readable journal (*.msrec) in"),
        ((audio, "-o", tmp_path / "o.webm", "--audio-codec", "mp3"), "invalid choice: 'mp3'"),
    ]
    for args, message in cases:
        status, err = run(capsys, *args)
        assert (status, message in err) == (2, True), (args, err)
    assert run(capsys, "--help")[0] == 0


def test_command_line_process(captures: dict[str, Capture], tmp_path: Path) -> None:
    """The real command: exit status and messages, never a traceback."""
    video, audio = write_participant(tmp_path, captures["vp8"], "vp8")
    audio.write_bytes(b"garbage!" + audio.read_bytes()[8:])
    command = [sys.executable, "-m", "mediasrv.recording.rec_cli"]
    result = subprocess.run(
        [*command, str(video), str(audio), "-o", str(tmp_path / "o.webm")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "bad magic 67 61 72 62 61 67 65 21" in result.stderr
    assert "Traceback" not in result.stderr
    result = subprocess.run(
        [*command, str(video), "-o", str(tmp_path / "o.webm"), "--progress"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "100%" in result.stderr and "wrote" in result.stderr


def test_av_sync_by_sender_reports(
    captures: dict[str, Capture], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A flash and a beep at the same instants; the audio packets' arrival times are 300 ms
    late, the sender reports right: the output keeps them together."""
    capture = captures["sync"]
    video, _ = write_participant(tmp_path / "sr", capture, "vp8")
    _, audio = write_participant(tmp_path / "sr-late", capture, "vp8", rtp_delay_us=300_000)
    out = tmp_path / "sync.webm"
    status, err = run(capsys, video, audio, "-o", out)
    assert status == 0, err
    flashes, beeps = flash_times(out), beep_times(out)
    assert len(flashes) >= 3 and len(beeps) >= 3, (flashes, beeps)
    differences = nearest_differences(flashes, beeps)
    assert max(map(abs, differences)) < 0.1, differences

    # without sender reports the arrival times are all there is: off by the 300 ms, and said
    video, _ = write_participant(tmp_path / "no-sr", capture, "vp8", sender_reports=False)
    _, audio = write_participant(
        tmp_path / "no-sr-late", capture, "vp8", rtp_delay_us=300_000, sender_reports=False
    )
    out = tmp_path / "arrival.webm"
    status, err = run(capsys, video, audio, "-o", out)
    assert status == 0
    assert f"{audio}: no sender reports: audio aligned by packet arrival times" in err
    differences = nearest_differences(flash_times(out), beep_times(out))
    assert all(0.2 < d < 0.4 for d in differences), differences


def test_room(
    captures: dict[str, Capture], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two participants sending flashes and beeps: bob's reach the server 0.5 s after alice's,
    and bob's clock (the NTP time of his sender reports) is 1234.5 s off. Across peers the
    server's clock counts: bob's flashes come 0.5 s after alice's, each with its beep."""
    capture = captures["sync"]
    room = tmp_path / "rec-1"
    write_participant(room, capture, "vp8", peer="alice")
    write_participant(room, capture, "vp8", peer="bob", time_offset_us=500_000, ntp_offset_s=1234.5)
    (room / "recording.json").write_text(json.dumps({"recording": "rec-1", "room": "room-1"}))
    out = tmp_path / "room.webm"
    status, err = run(capsys, "--room", room, "-o", out, "--fps", "15")
    assert status == 0, err
    probe = ffprobe(out)
    video, audio = stream_of(probe, "video"), stream_of(probe, "audio")
    assert (video["codec_name"], video["width"], video["height"]) == ("vp8", 1280, 360)
    assert audio["codec_name"] == "opus"
    assert abs(float(probe["format"]["duration"]) - 4.5) < 0.5, probe["format"]
    assert decode_errors(out) == ""
    alice = flash_times(out, region=slice(0, 640))
    bob = flash_times(out, region=slice(640, 1280))
    assert len(alice) == len(bob) >= 3, (alice, bob)
    assert all(abs(b - a - 0.5) < 0.07 for a, b in zip(alice, bob, strict=True)), (alice, bob)
    beeps = beep_times(out, quiet=0.3)
    differences = nearest_differences(alice + bob, beeps)
    assert max(map(abs, differences)) < 0.1, (alice, bob, beeps)


def test_room_mp4_and_damage(
    captures: dict[str, Capture], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    room = tmp_path / "rec-1"
    video, _ = write_participant(room, captures["h264"], "h264", peer="carol")
    (room / "recording.json").write_text(json.dumps({"recording": "rec-1"}))
    (room / "junk.audio.msrec").write_bytes(b"not a journal")
    cut(video, video.stat().st_size - 5)
    out = tmp_path / "room.mp4"
    status, err = run(capsys, "--room", room, "-o", out, "--tile", "320x180", "--fps", "10")
    assert status == 1, err
    assert f"{room / 'junk.audio.msrec'}: not a mediasrv journal: bad magic" in err
    assert f"{video}: record " in err and "truncated" in err
    probe = ffprobe(out)
    assert [s["codec_name"] for s in probe["streams"]] == ["h264", "aac"]
    assert (stream_of(probe, "video")["width"], stream_of(probe, "video")["height"]) == (320, 180)
    assert decode_errors(out) == ""


def test_room_api_reports_streams(captures: dict[str, Capture], tmp_path: Path) -> None:
    room = tmp_path / "r"
    write_participant(room, captures["vp9"], "vp9", peer="dave")
    report = compose_room(room, tmp_path / "r.webm", fps=10, tile=(160, 120))
    assert report.damage == []
    assert report.warnings == [
        f"{room / 'recording.json'}: missing: taking every journal (*.msrec) of the directory"
    ]
    assert set(report.streams) == {"video", "audio"}
    assert abs(report.duration - 2.0) < 0.5


# --- the parts on crafted packets --------------------------------------------------------------


def packet(seq: int, ts: int = 0, payload: bytes = b"x", marker: bool = False) -> RtpPacket:
    return RtpPacket(seq, ts, marker, payload, arrival_us=seq * 1000)


def test_unwrapper() -> None:
    seqs = Unwrapper(16)
    values = [65534, 65535, 0, 65533, 1, 2]
    assert [seqs.unwrap(v) for v in values] == [65534, 65535, 65536, 65533, 65537, 65538]
    stamps = Unwrapper(32)
    assert [stamps.unwrap(v) for v in (2**32 - 10, 5, 2**32 - 20)] == [
        2**32 - 10,
        2**32 + 5,
        2**32 - 20,
    ]


def test_parse_rtp() -> None:
    header = bytes([0x80 | 0x20 | 0x10 | 0x01, 0x80 | 96]) + struct.pack("!HII", 7, 9000, 1)
    csrc = bytes(4)
    extension = b"\xbe\xde\x00\x01" + bytes(4)
    data = header + csrc + extension + b"payload" + b"\x00\x00\x03"
    assert parse_rtp(data) == (7, 9000, True, 96, b"payload")
    assert parse_rtp(data[:14]) is None
    assert parse_rtp(b"\x40" + data[1:]) is None  # version 1
    assert parse_rtp(header[:1] + header[1:] + csrc + extension + b"\x00\x00\xff") is None


def test_reorderer() -> None:
    reorder = Reorderer(window_us=10_000, max_packets=100)
    out: list[int] = []
    for seq in (1, 3, 2, 2, 4, 6, 7):
        out += [p.seq for p in reorder.push(packet(seq))]
    assert out == []  # the first packets wait for the window: 1 might not be the first
    out += [p.seq for p in reorder.push(packet(20))]  # 20 ms later: the window passed
    assert out == [1, 2, 3, 4, 6, 7]
    assert [p.seq for p in reorder.push(packet(5))] == []  # too late
    assert [p.seq for p in reorder.flush()] == [20]
    assert (reorder.late, reorder.duplicates) == (1, 1)


def test_reorderer_restart() -> None:
    reorder = Reorderer(window_us=10_000, max_packets=4)
    out = [p.seq for seq in (100, 101, 102) for p in reorder.push(packet(seq))]
    out += [p.seq for p in reorder.push(packet(140))]  # the window passed: 100..102 out
    out += [p.seq for seq in (5, 6) for p in reorder.push(packet(seq))]  # numbering restarted
    out += [p.seq for p in reorder.flush()]
    assert out == [100, 101, 102, 140, 5, 6]
    assert (reorder.restarts, reorder.late) == (1, 0)


def test_output_container_leaves_no_half_file(tmp_path: Path) -> None:
    out = tmp_path / "o.webm"
    out.write_bytes(b"an older file")
    with pytest.raises(RuntimeError), output_container(out, "webm"):
        raise RuntimeError("failed halfway")
    assert out.read_bytes() == b"an older file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.webm"]


def test_vp8_depayloader() -> None:
    depayloader = Vp8Depayloader()
    keyframe = b"\x10\x02\x00\x9d\x01\x2a\x40\x01\xf0\x00"
    # X, I with a 15-bit picture id, L, T: 5 descriptor bytes
    info = depayloader.parse(bytes([0x90, 0xE0, 0x81, 0x23, 0x05, 0x40]) + keyframe)
    assert info == PayloadInfo(True, True, keyframe)
    info = depayloader.parse(bytes([0x90, 0x80, 0x12]) + keyframe)
    assert (info.start, info.keyframe, info.data) == (True, True, keyframe)
    assert depayloader.parse(b"\x10\x01" + keyframe[1:]).keyframe is False  # P=1
    assert depayloader.parse(b"\x00" + keyframe).start is False  # S=0
    assert depayloader.parse(b"\x11" + keyframe).start is False  # partition 1
    with pytest.raises(MalformedPayload):
        depayloader.parse(b"\x80")


def test_vp9_depayloader() -> None:
    depayloader = Vp9Depayloader()
    key = bytes([0b10_0_0_0_0_00, 0x49, 0x83, 0x42])  # profile 0, KEY_FRAME, sync code
    inter = bytes([0b10_0_0_0_1_00])  # frame_type 1
    assert vp9_is_keyframe(key) and not vp9_is_keyframe(inter)
    assert not vp9_is_keyframe(bytes([0b10_0_0_1_000]))  # show_existing_frame
    # non-flexible: I (7-bit), L (+TL0PICIDX), B, V with Y (one layer) and G (one group)
    descriptor = bytes([0xA0 | 0x08 | 0x02, 0x05, 0x00, 0x11, 0x18, 1, 64, 0, 48, 1, 0x04 | 1, 1])
    info = depayloader.parse(descriptor + key)
    assert (info.start, info.keyframe, info.data, info.layer_start) == (True, True, key, True)
    # flexible, predicted, two reference indices (N bit chains them)
    info = depayloader.parse(bytes([0x40 | 0x10 | 0x08, 0x03, 0x02]) + inter)
    assert (info.start, info.keyframe, info.data) == (True, False, inter)
    # spatial layer 1 (L: SID 1) is no keyframe start
    assert not depayloader.parse(bytes([0x20 | 0x08, 0x02, 0x00]) + key).keyframe
    parts = [
        PayloadInfo(True, True, b"\x82aa", True),
        PayloadInfo(False, False, b"bb"),
        PayloadInfo(True, False, b"\x86c", True),
    ]
    assert depayloader.assemble(parts, True) == vp9_superframe([b"\x82aabb", b"\x86c"])
    assert vp9_superframe([b"\x82aabb", b"\x86c"]) == b"\x82aabb\x86c" + b"\xc1\x05\x02\xc1"
    with pytest.raises(MalformedPayload):
        depayloader.parse(bytes([0x80]))


def nal(nal_type: int, body: bytes = b"\x88\x84") -> bytes:
    return bytes([0x60 | nal_type]) + body


def test_h264_depayloader() -> None:
    sps, pps, idr = nal(7, b"\x42\xc0\x1e"), nal(8, b"\xce"), nal(5, b"\x88" + bytes(20))
    depayloader = H264Depayloader()
    stap = b"\x78" + b"".join(struct.pack("!H", len(n)) + n for n in (sps, pps))
    first = depayloader.parse(stap)
    assert (first.start, first.keyframe) == (True, False)
    fu_start = depayloader.parse(bytes([0x7C, 0x80 | 5]) + idr[1:11])
    fu_end = depayloader.parse(bytes([0x7C, 0x40 | 5]) + idr[11:])
    assert (fu_start.start, fu_start.keyframe, fu_end.start) == (True, True, False)
    frame = depayloader.assemble([first, fu_start, fu_end], True)
    start = b"\x00\x00\x00\x01"
    assert frame == start + sps + start + pps + start + idr
    assert parameter_sets_of(frame) == start + sps + start + pps
    # a later IDR without parameter sets gets the remembered ones in front
    alone = depayloader.parse(idr)
    assert depayloader.assemble([alone], True) == start + sps + start + pps + start + idr
    assert depayloader.parse(nal(1, b"\x9a")).start  # first_mb_in_slice 0
    assert not depayloader.parse(nal(1, b"\x1a")).start  # a later slice
    for bad in (b"\x78\x00\x05ab", bytes([0x60 | 25, 0]), b"\xe5ab", bytes([0x7C, 0x85])):
        with pytest.raises(MalformedPayload):
            depayloader.parse(bad)


def test_sprop_parameter_sets() -> None:
    fmtp = "profile-level-id=42e01f;sprop-parameter-sets=Z0LAHg==,aM4=;packetization-mode=1"
    assert sprop_parameter_sets(fmtp) == [b"\x67\x42\xc0\x1e", b"\x68\xce"]
    assert H264Depayloader(fmtp).parameter_sets() == (
        b"\x00\x00\x00\x01\x67\x42\xc0\x1e\x00\x00\x00\x01\x68\xce"
    )
    assert sprop_parameter_sets("sprop-parameter-sets=!!") == []


def test_opus_durations_and_head() -> None:
    assert opus_packet_samples(bytes([0xFC])) == 960  # CELT FB 20 ms, code 0
    assert opus_packet_samples(bytes([0x08 | 1])) == 1920  # SILK 20 ms, two frames
    assert opus_packet_samples(bytes([0x18 | 3, 3])) == 3 * 2880  # SILK 60 ms x3
    assert opus_packet_samples(bytes([0x03])) is None
    assert opus_head(2) == b"OpusHead\x01\x02\x00\x00\x80\xbb\x00\x00\x00\x00\x00"


def frames_of(assembler: VideoFrameAssembler, packets: list[RtpPacket]) -> Iterator[int]:
    for p in packets:
        for frame in assembler.push(p):
            yield frame.ts
    for frame in assembler.flush():
        yield frame.ts


def test_video_frames_skip_to_keyframes_after_a_loss() -> None:
    key = b"\x10\x00\x00\x00\x9d\x01\x2a\x40\x01\xf0\x00"  # S, partition 0, keyframe
    delta = b"\x10\x01\x00\x00"
    middle = b"\x00\x55"
    packets = [
        packet(1, 100, key),
        packet(2, 100, middle, marker=True),
        packet(3, 200, delta, marker=True),
        packet(4, 300, delta),  # 5 (the end of frame 300) is lost
        packet(6, 400, delta, marker=True),  # skipped: after a loss, until a keyframe
        packet(7, 500, key, marker=True),
        packet(8, 600, delta, marker=True),
        packet(9, 700, b"", marker=False),  # padding only
        packet(10, 800, delta, marker=True),
    ]
    assembler = VideoFrameAssembler(Vp8Depayloader())
    assert list(frames_of(assembler, packets)) == [100, 200, 500, 600, 800]
    stats = assembler.stats
    assert (stats.incomplete, stats.skipped_until_keyframe, stats.losses) == (1, 1, 1)


def test_video_frames_start_on_a_keyframe() -> None:
    delta = b"\x10\x01\x00\x00"
    key = b"\x10\x00\x00\x00\x9d\x01\x2a\x40\x01\xf0\x00"
    packets = [
        packet(1, 100, b"\x00\x01"),  # the middle of a frame whose start was not recorded
        packet(2, 100, b"\x00\x01", marker=True),
        packet(3, 200, delta, marker=True),
        packet(4, 300, key, marker=True),
    ]
    assembler = VideoFrameAssembler(Vp8Depayloader())
    assert list(frames_of(assembler, packets)) == [300]
    assert assembler.stats.before_first_keyframe == 1
    assert "before the first keyframe" in assembler.stats.warnings("video")[-1]


def test_audio_frames() -> None:
    assembler = AudioFrameAssembler()
    out = [f.ts for p in (packet(1, 0), packet(3, 960), packet(4, 1920, b"")) for f in
           assembler.push(p)]  # fmt: skip
    assert out == [0, 960]
    assert assembler.stats.losses == 1


def test_pcm_timeline() -> None:
    timeline = PcmTimeline(1, tolerance=4)
    ones = np.ones((10, 1), dtype=np.float32)
    timeline.put(0, ones)
    timeline.put(12, 2 * ones)  # within tolerance: joined at 10
    timeline.put(40, 3 * ones)  # a gap: silence from 20 to 40
    timeline.put(45, 4 * ones)  # overlaps 45..50: those samples dropped
    out = timeline.read(0, 60)[:, 0]
    assert list(out[:20]) == [1] * 10 + [2] * 10
    assert list(out[20:40]) == [0] * 20
    assert list(out[40:60]) == [3] * 10 + [4] * 5 + [0] * 5
    assert timeline.end == 55
    timeline.put(50, ones)  # behind what was read: dropped
    assert list(timeline.read(60, 5)[:, 0]) == [0] * 5


def test_grid_and_fit() -> None:
    assert [grid(n) for n in (1, 2, 3, 4, 5, 9, 10)] == [
        (1, 1), (2, 1), (2, 2), (2, 2), (3, 2), (3, 3), (4, 3),
    ]  # fmt: skip
    assert fit(640, 480, 640, 360) == (480, 360)
    assert fit(1280, 720, 640, 360) == (640, 360)
    assert fit(360, 640, 640, 360) == (202, 360)


def test_progress_bar() -> None:
    import io

    stream = io.StringIO()
    progress = Progress(200, "writing", enabled=True, stream=stream)
    progress.advance(100)
    progress.close()
    assert stream.getvalue().endswith("100%  \n") and "writing" in stream.getvalue()
    quiet = io.StringIO()
    progress = Progress(10, "x", enabled=False, stream=quiet)
    progress.advance(5)
    progress.close()
    assert quiet.getvalue() == ""


def test_unsupported_codec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "av1.msrec"
    with JournalWriter.open(path, metadata("video", "video/AV1", "p", "eve")):
        pass
    status, err = run(capsys, path, "-o", tmp_path / "o.webm")
    assert status == 2
    assert f"{path}: codec 'video/AV1' is not supported (supported: video/VP8, " in err
