"""Real RTP for the recording tests: ffmpeg sends, Python captures with arrival times, journals
are written with the reference JournalWriter; ffprobe and PyAV check the results."""

from __future__ import annotations

import json
import random
import selectors
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from mediasrv.recording.journal import JournalWriter, journal_metadata

FFMPEG = "/usr/bin/ffmpeg"
FFPROBE = "/usr/bin/ffprobe"

VP8_ARGS = (
    "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0",
    "-b:v", "400k", "-g", "30", "-payload_type", "96",
)  # fmt: skip
H264_ARGS = (
    "-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-preset", "ultrafast",
    "-tune", "zerolatency", "-g", "30", "-payload_type", "96",
)  # fmt: skip
VP9_ARGS = (
    "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0",
    "-b:v", "300k", "-g", "30", "-strict", "experimental", "-payload_type", "96",
)  # fmt: skip
OPUS_ARGS = ("-c:a", "libopus", "-b:a", "48k", "-payload_type", "111")

TESTSRC = ("-f", "lavfi", "-i", "testsrc=size=320x240:rate=30")
SINE = ("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000")
# a 100 ms white flash (three frames) and a 100 ms 1 kHz beep at every whole second
FLASH = (
    "-f", "lavfi", "-i",
    "color=c=black:size=160x120:rate=30,"
    "drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t\\,1)\\,0.1)'",
)  # fmt: skip
BEEP = (
    "-f", "lavfi", "-i",
    "aevalsrc='if(lt(mod(t\\,1)\\,0.1)\\,0.8*sin(2*PI*1000*t)\\,0)':s=48000:c=stereo",
)  # fmt: skip


@dataclass
class Packets:
    """The UDP datagrams of one RTP stream and its RTCP port, with arrival times (µs)."""

    rtp: list[tuple[int, bytes]] = field(default_factory=list)
    rtcp: list[tuple[int, bytes]] = field(default_factory=list)

    def sender_reports(self) -> list[tuple[int, int, int]]:
        """``(arrival µs, NTP, RTP timestamp)`` of the RTCP sender reports."""
        out = []
        for arrival, data in self.rtcp:
            if len(data) >= 20 and data[1] == 200:
                ntp, rtp_ts = struct.unpack_from("!QI", data, 8)
                out.append((arrival, ntp, rtp_ts))
        return out


@dataclass
class Capture:
    """What one ffmpeg run sent: video and audio packets, and the SDP it wrote."""

    video: Packets
    audio: Packets
    sdp: str
    seconds: float


def _port_pair() -> tuple[socket.socket, socket.socket, int]:
    """Two bound UDP sockets on consecutive ports, the first even (RTP, RTCP)."""
    for _ in range(200):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        port = rtp.getsockname()[1]
        if port % 2 == 0 and port < 65535:
            rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rtcp.bind(("127.0.0.1", port + 1))
            except OSError:
                rtcp.close()
            else:
                for sock in (rtp, rtcp):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
                return rtp, rtcp, port
        rtp.close()
    raise RuntimeError("no free pair of UDP ports")


class RunningCapture:
    """An ffmpeg sender and a thread receiving what it sends, until it exits."""

    def __init__(
        self,
        video_input: Sequence[str],
        audio_input: Sequence[str],
        video_args: Sequence[str],
        seconds: float,
        sdp_path: Path,
    ) -> None:
        self.seconds = seconds
        self.sdp_path = sdp_path
        self.video = Packets()
        self.audio = Packets()
        video_rtp, video_rtcp, video_port = _port_pair()
        audio_rtp, audio_rtcp, audio_port = _port_pair()
        self._sockets = {
            video_rtp: self.video.rtp,
            video_rtcp: self.video.rtcp,
            audio_rtp: self.audio.rtp,
            audio_rtcp: self.audio.rtcp,
        }
        duration = ("-t", str(seconds))
        command = [
            FFMPEG, "-nostdin", "-v", "error", "-re",
            *duration, *video_input, *duration, *audio_input,
            "-map", "0:v", *video_args, "-f", "rtp", f"rtp://127.0.0.1:{video_port}",
            "-map", "1:a", *OPUS_ARGS, "-f", "rtp", f"rtp://127.0.0.1:{audio_port}",
            "-sdp_file", str(sdp_path),
        ]  # fmt: skip
        self._process = subprocess.Popen(command, stderr=subprocess.PIPE)
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        selector = selectors.DefaultSelector()
        for sock in self._sockets:
            selector.register(sock, selectors.EVENT_READ, sock)
        deadline = time.monotonic() + self.seconds + 30
        ended: float | None = None
        while time.monotonic() < deadline:
            for key, _ in selector.select(0.05):
                receiver: socket.socket = key.data
                data = receiver.recv(65536)
                self._sockets[receiver].append((time.time_ns() // 1000, data))
            if self._process.poll() is not None:
                ended = ended or time.monotonic()
                if time.monotonic() - ended > 0.3:
                    break
        selector.close()
        for sock in self._sockets:
            sock.close()

    def result(self) -> Capture:
        self._thread.join(self.seconds + 40)
        if self._process.poll() is None:
            self._process.kill()
        _, stderr = self._process.communicate()
        if self._process.returncode != 0:
            raise RuntimeError(f"ffmpeg failed ({self._process.returncode}): {stderr.decode()}")
        return Capture(self.video, self.audio, self.sdp_path.read_text(), self.seconds)


# --- journals ----------------------------------------------------------------------------------

VIDEO_MIME = {"vp8": "video/VP8", "h264": "video/H264", "vp9": "video/VP9"}


def metadata(kind: str, mime: str, producer: str, peer: str, fmtp: str = "") -> dict[str, Any]:
    audio = kind == "audio"
    return journal_metadata(
        recording="rec-1",
        room="room-1",
        producer=producer,
        peer=peer,
        display_name=peer.title(),
        kind=kind,
        mime_type=mime,
        clock_rate=48000 if audio else 90000,
        channels=2 if audio else 1,
        payload_type=111 if audio else 96,
        fmtp=fmtp,
        started=time.time(),
    )


PacketFilter = Callable[[list[tuple[int, bytes]]], list[tuple[int, bytes]]]


def write_journal(
    path: Path,
    packets: Packets,
    meta: dict[str, Any],
    *,
    transform: PacketFilter | None = None,
    sr_ts_offset: int = 0,
    time_offset_us: int = 0,
    rtp_delay_us: int = 0,
    sender_reports: bool = True,
    ntp_offset_s: float = 0.0,
) -> Path:
    """A journal of `packets` (RTP and the SRs of its RTCP) in arrival order; every record's
    time moved by `time_offset_us`, RTP records' also by `rtp_delay_us`; the SRs' NTP times
    moved by `ntp_offset_s` (a publisher whose clock is off)."""
    rtp = transform(list(packets.rtp)) if transform else list(packets.rtp)
    shift = time_offset_us + rtp_delay_us
    items: list[tuple[int, int, Any]] = [(t + shift, 0, data) for t, data in rtp]
    if sender_reports:
        for arrival, ntp, rtp_ts in packets.sender_reports():
            sr = (ntp + round(ntp_offset_s * 2**32), (rtp_ts + sr_ts_offset) & 0xFFFFFFFF)
            items.append((arrival + time_offset_us, 1, sr))
    items.sort(key=lambda item: (item[0], item[1]))
    with JournalWriter.open(path, meta) as writer:
        writer.event({"event": "start"}, items[0][0] if items else 0)
        for arrival, kind, value in items:
            if kind == 0:
                writer.rtp(value, arrival)
            else:
                writer.sr(value[0], value[1], arrival)
    return path


def write_participant(
    directory: Path,
    capture: Capture,
    video_codec: str,
    peer: str = "alice",
    **options: Any,
) -> tuple[Path, Path]:
    """The video and audio journals of one capture (same options for both)."""
    directory.mkdir(parents=True, exist_ok=True)
    video = write_journal(
        directory / f"{peer}-v.video.msrec",
        capture.video,
        metadata("video", VIDEO_MIME[video_codec], f"{peer}-v", peer),
        **options,
    )
    audio = write_journal(
        directory / f"{peer}-a.audio.msrec",
        capture.audio,
        metadata("audio", "audio/opus", f"{peer}-a", peer),
        **options,
    )
    return video, audio


def rewrite_seq(start: int) -> PacketFilter:
    """Renumber RTP sequence numbers to begin at `start` (mod 2^16), keeping their differences."""

    def transform(packets: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        first = struct.unpack_from("!H", packets[0][1], 2)[0]
        out = []
        for arrival, data in packets:
            seq = (struct.unpack_from("!H", data, 2)[0] - first + start) & 0xFFFF
            out.append((arrival, data[:2] + struct.pack("!H", seq) + data[4:]))
        return out

    return transform


def shift_ts(offset: int) -> PacketFilter:
    """Add `offset` to every RTP timestamp (mod 2^32)."""

    def transform(packets: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        out = []
        for arrival, data in packets:
            ts = (struct.unpack_from("!I", data, 4)[0] + offset) & 0xFFFFFFFF
            out.append((arrival, data[:4] + struct.pack("!I", ts) + data[8:]))
        return out

    return transform


def first_ts(packets: Packets) -> int:
    return int(struct.unpack_from("!I", packets.rtp[0][1], 4)[0])


def drop_random(fraction: float, seed: int) -> PacketFilter:
    """Lose a random `fraction` of the packets (but never the first)."""

    def transform(packets: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        rng = random.Random(seed)
        return [p for i, p in enumerate(packets) if i == 0 or rng.random() >= fraction]

    return transform


def shuffle_nearby(seed: int) -> PacketFilter:
    """Swap some neighbouring packets (network reordering), arrival times kept in order."""

    def transform(packets: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        rng = random.Random(seed)
        out = list(packets)
        for i in range(1, len(out) - 1, 7):
            if rng.random() < 0.5:
                (t0, a), (t1, b) = out[i], out[i + 1]
                out[i], out[i + 1] = (t0, b), (t1, a)
        return out

    return transform


# --- checking outputs --------------------------------------------------------------------------


def ffprobe(path: Path) -> dict[str, Any]:
    """ffprobe's streams (with counted frames) and format of a file."""
    result = subprocess.run(
        [FFPROBE, "-v", "error", "-count_frames", "-show_streams", "-show_format",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    probed: dict[str, Any] = json.loads(result.stdout)
    return probed


def stream_of(probe: dict[str, Any], kind: str) -> dict[str, Any]:
    streams: list[dict[str, Any]] = [s for s in probe["streams"] if s["codec_type"] == kind]
    assert len(streams) == 1, f"{len(streams)} {kind} streams in {probe['streams']}"
    return streams[0]


def decode_errors(path: Path) -> str:
    """What ffmpeg says when decoding the whole file at error level ("" when nothing)."""
    result = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    status = "" if result.returncode == 0 else f" (exit {result.returncode})"
    return result.stderr.strip() + status


def packet_digest(path: Path) -> list[tuple[str, int | None, bool, bytes]]:
    """Every packet of a file: stream type, pts in its time base, keyframe flag, bytes."""
    out: list[tuple[str, int | None, bool, bytes]] = []
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.size:
                out.append((packet.stream.type, packet.pts, packet.is_keyframe, bytes(packet)))
    return out


def cut(path: Path, size: int) -> None:
    """Truncate a file to `size` bytes."""
    with open(path, "r+b") as file:
        file.truncate(size)


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def flash_times(path: Path, region: slice | None = None) -> list[float]:
    """Times of the decoded video frames that turn bright (mean luma > 128) after a dark one;
    `region` picks columns of the picture (e.g. one tile)."""
    out = []
    bright = False
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            luma = frame.to_ndarray(format="gray")
            if region is not None:
                luma = luma[:, region]
            now = bool(luma.mean() > 128)
            if now and not bright and frame.time is not None:
                out.append(float(frame.time))
            bright = now
    return out


def beep_times(path: Path, threshold: float = 0.1, quiet: float = 0.5) -> list[float]:
    """Onsets of loud audio (|sample| > threshold after at least `quiet` seconds of quiet)."""
    import numpy as np

    chunks = []
    start: float | None = None
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            if start is None:
                start = float(frame.time or 0.0)
            assert frame.format.is_planar, frame.format.name
            chunks.append(np.abs(frame.to_ndarray()).max(axis=0))
    if start is None:
        return []
    loud = np.flatnonzero(np.concatenate(chunks) > threshold)
    out: list[float] = []
    last = -1.0
    for index in loud:
        time = start + float(index) / 48000
        if time - last > quiet:
            out.append(time)
        last = time
    return out


def nearest_differences(events: list[float], others: list[float]) -> list[float]:
    """For each event, the signed distance to the nearest of `others`."""
    return [min((other - event for other in others), key=abs) for event in events]
