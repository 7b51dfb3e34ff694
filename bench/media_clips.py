"""Pre-encoded media for the load generator (bench/loadgen.py): short VP8 (IVF), H.264 (Annex B,
baseline) and Opus (Ogg) clips made once with ffmpeg from its test sources and cached, read
back frame by frame with PyAV and cut into RTP payloads here:

* VP8: RFC 7741 — each frame split into payloads of at most MAX_PAYLOAD bytes; the 4-byte
  payload descriptor (X, S, 15-bit PictureID) is written at send time by ``vp8_descriptor``.
* H.264: RFC 6184 packetization-mode 1 — a NAL unit that fits in one packet goes alone (single
  NAL unit packet), a larger one in FU-A fragments; SPS and PPS precede every IDR
  (x264 ``repeat-headers``).
* Opus: one 20 ms frame per packet.

Nothing is decoded: the payloads are sent as the encoder made them, at the clip's timing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

MAX_PAYLOAD = 1200  # bytes of RTP payload at most (with the VP8 descriptor)
VP8_DESCRIPTOR_SIZE = 4  # X=1, I=1, 15-bit PictureID
FPS = 30
GOP = 60  # frames between keyframes (the sender also jumps to the next one on a PLI)
AUDIO_FRAME_SAMPLES = 960  # 20 ms at 48 kHz
NAL_FU_A = 28
NAL_AUD = 9


class ClipError(Exception):
    """ffmpeg is missing or failed, or a clip could not be read: the message says which."""


@dataclass(frozen=True)
class VideoSize:
    width: int
    height: int
    kbps: int

    @property
    def label(self) -> str:
        return f"{self.width}x{self.height}@{self.kbps}k"


#: the single-stream video size, and the three simulcast layers (lowest first)
SINGLE = VideoSize(640, 360, 800)
SIMULCAST = (VideoSize(320, 180, 150), VideoSize(640, 360, 500), VideoSize(1280, 720, 1500))
SIMULCAST_RIDS = ("q", "h", "f")


@dataclass(frozen=True)
class Frame:
    """One frame's RTP payloads (VP8: without the descriptor); ``logged[i]``: payload i is
    unique in the whole media set, so a receiver can look its send time up by its bytes."""

    keyframe: bool
    payloads: tuple[bytes, ...]
    logged: tuple[bool, ...] = ()


@dataclass
class Clip:
    """A looped stream: its frames, the RTP clock ticks per frame and the frame interval."""

    codec: str  # "vp8", "h264", "opus"
    path: Path
    frames: list[Frame]
    ticks_per_frame: int
    interval: float  # seconds between frames
    keyframes: list[int] = field(default_factory=list)

    @property
    def packets(self) -> int:
        return sum(len(f.payloads) for f in self.frames)

    @property
    def bytes(self) -> int:
        return sum(len(p) for f in self.frames for p in f.payloads)

    @property
    def duration(self) -> float:
        return len(self.frames) * self.interval

    def next_keyframe(self, index: int) -> int:
        """The index of the first keyframe at or after ``index`` (wrapping), else ``index``."""
        for k in self.keyframes:
            if k >= index:
                return k
        return self.keyframes[0] if self.keyframes else index

    def describe(self) -> dict[str, object]:
        return {
            "codec": self.codec,
            "file": self.path.name,
            "frames": len(self.frames),
            "seconds": round(self.duration, 2),
            "packets": self.packets,
            "kbps": round(self.bytes * 8 / max(self.duration, 1e-9) / 1000),
            "keyframes": len(self.keyframes),
        }


@dataclass
class MediaSet:
    """What one publisher sends: video layers (one, or three for simulcast) and audio."""

    video: list[Clip]
    audio: Clip | None


def default_media_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mediasrv-bench"


def _ffmpeg(args: list[str], out: Path) -> None:
    """Run ffmpeg writing to a temporary name, then move it into place (atomic, so concurrent
    runs and interrupted ones never leave a half clip in the cache)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise ClipError("ffmpeg not found: install it (apt-get install ffmpeg) to make the clips")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args, str(tmp)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        tmp.unlink(missing_ok=True)
        raise ClipError(f"ffmpeg took over 300 s making {out.name}") from None
    if done.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        tail = " ".join(done.stderr.strip().splitlines()[-3:])
        raise ClipError(f"ffmpeg failed making {out.name} (exit {done.returncode}): {tail}")
    os.replace(tmp, out)


def ensure_video(codec: str, size: VideoSize, seconds: int, media_dir: Path) -> Path:
    name = f"{codec}_{size.width}x{size.height}_{FPS}fps_{size.kbps}k_g{GOP}_{seconds}s"
    source = ["-f", "lavfi", "-i", f"testsrc2=size={size.width}x{size.height}:rate={FPS}"]
    common = ["-t", str(seconds), "-pix_fmt", "yuv420p", "-b:v", f"{size.kbps}k"]
    gop = ["-g", str(GOP), "-keyint_min", str(GOP)]
    if codec == "vp8":
        path = media_dir / f"{name}.ivf"
        encoder = ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
                   "-auto-alt-ref", "0", "-lag-in-frames", "0", "-error-resilient", "1",
                   *gop, "-f", "ivf"]  # fmt: skip
    elif codec == "h264":
        path = media_dir / f"{name}.h264"
        encoder = ["-c:v", "libx264", "-profile:v", "baseline", "-preset", "veryfast",
                   "-tune", "zerolatency", *gop, "-sc_threshold", "0",
                   "-x264-params", "repeat-headers=1", "-f", "h264"]  # fmt: skip
    else:
        raise ClipError(f"unknown video codec {codec!r} (vp8 or h264)")
    if not path.exists():
        _ffmpeg([*source, *common, *encoder], path)
    return path


def ensure_audio(seconds: int, media_dir: Path) -> Path:
    path = media_dir / f"opus_48k_stereo_48k_20ms_{seconds}s.ogg"
    if not path.exists():
        # two tones, one per channel, slowly beating: frames that differ from one another
        source = ["-f", "lavfi", "-i",
                  "aevalsrc=0.4*sin(2*PI*440*t)*(1+0.5*sin(2*PI*0.7*t))|"
                  "0.4*sin(2*PI*554*t)*(1+0.5*sin(2*PI*0.3*t)):s=48000:c=stereo"]  # fmt: skip
        encoder = ["-t", str(seconds), "-c:a", "libopus", "-b:a", "48k", "-frame_duration", "20",
                   "-application", "audio", "-f", "ogg"]  # fmt: skip
        _ffmpeg([*source, *encoder], path)
    return path


def _packets(path: Path, kind: str) -> list[tuple[bytes, bool]]:
    """(data, keyframe) of every packet of the file's first stream of this kind, in order."""
    import av

    try:
        with av.open(str(path)) as container:
            streams = container.streams.video if kind == "video" else container.streams.audio
            if not streams:
                raise ClipError(f"{path}: no {kind} stream")
            return [
                (bytes(packet), bool(packet.is_keyframe))
                for packet in container.demux(streams[0])
                if packet.size
            ]
    except av.error.FFmpegError as exc:
        raise ClipError(f"{path}: cannot read it ({exc}); delete it to make it again") from None


def vp8_descriptor(picture_id: int, start: bool) -> bytes:
    """RFC 7741 payload descriptor: X=1 (S on a frame's first packet, partition 0), I=1 with a
    15-bit PictureID."""
    return bytes(
        (0x90 if start else 0x80, 0x80, 0x80 | ((picture_id >> 8) & 0x7F), picture_id & 0xFF)
    )


def split_vp8(frame: bytes, max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """A VP8 frame cut into payload bodies of near-equal size that fit with the descriptor."""
    room = max_payload - VP8_DESCRIPTOR_SIZE
    count = max(1, -(-len(frame) // room))
    size = -(-len(frame) // count)
    return [frame[i : i + size] for i in range(0, len(frame), size)]


def annexb_nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (start codes 00 00 01 / 00 00 00 01 removed,
    trailing zero bytes too: a NAL unit never ends in 00)."""
    units = []
    for chunk in data.split(b"\x00\x00\x01"):
        unit = chunk.rstrip(b"\x00")
        if unit:
            units.append(unit)
    return units


def packetize_h264(access_unit: bytes, max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """RFC 6184 packetization-mode 1 payloads of one access unit: a single NAL unit packet for
    each unit that fits, FU-A fragments (S on the first, E on the last) for a larger one.
    Access unit delimiters are left out."""
    payloads: list[bytes] = []
    for nal in annexb_nal_units(access_unit):
        nal_type = nal[0] & 0x1F
        if nal_type == NAL_AUD:
            continue
        if len(nal) <= max_payload:
            payloads.append(nal)
            continue
        indicator = bytes(((nal[0] & 0xE0) | NAL_FU_A,))
        body = nal[1:]
        room = max_payload - 2
        count = -(-len(body) // room)
        size = -(-len(body) // count)
        for i in range(0, len(body), size):
            header = nal_type | (0x80 if i == 0 else 0) | (0x40 if i + size >= len(body) else 0)
            payloads.append(indicator + bytes((header,)) + body[i : i + size])
    return payloads


def h264_keyframe(access_unit: bytes) -> bool:
    return any(nal[0] & 0x1F == 5 for nal in annexb_nal_units(access_unit))


def _check_length(path: Path, frames: int, expected: float) -> None:
    if frames < 0.9 * expected:
        raise ClipError(
            f"{path}: {frames} frames where about {expected:.0f} were expected (a damaged "
            "clip?); delete it to make it again"
        )


def load_video(codec: str, path: Path, seconds: int) -> Clip:
    frames = []
    for data, keyframe in _packets(path, "video"):
        if codec == "vp8":
            frames.append(Frame(keyframe, tuple(split_vp8(data))))
        else:
            key = h264_keyframe(data)
            frames.append(Frame(key, tuple(packetize_h264(data))))
    _check_length(path, len(frames), seconds * FPS)
    keyframes = [i for i, f in enumerate(frames) if f.keyframe]
    if not keyframes:
        raise ClipError(f"{path}: no keyframe")
    return Clip(codec, path, frames, 90000 // FPS, 1 / FPS, keyframes)


def load_audio(path: Path, seconds: int) -> Clip:
    frames = [Frame(True, (data,)) for data, _ in _packets(path, "audio")]
    _check_length(path, len(frames), seconds * 48000 / AUDIO_FRAME_SAMPLES)
    return Clip("opus", path, frames, AUDIO_FRAME_SAMPLES, AUDIO_FRAME_SAMPLES / 48000)


def _mark_unique(clips: list[Clip]) -> None:
    """Mark the payloads that occur once in the whole set (and are long enough to tell apart):
    the ones whose send time a receiver can look up by their bytes."""
    counts = Counter(p for clip in clips for frame in clip.frames for p in frame.payloads)
    for clip in clips:
        clip.frames = [
            Frame(
                f.keyframe,
                f.payloads,
                tuple(counts[p] == 1 and len(p) >= 8 for p in f.payloads),
            )
            for f in clip.frames
        ]


def load_media(
    codec: str, audio: bool, simulcast: bool, media_dir: Path, seconds: int = 6
) -> MediaSet:
    """Make (once, cached in media_dir) and read the clips one publisher sends."""
    try:
        media_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ClipError(f"cannot create the media directory {media_dir}: {exc}") from None
    sizes = SIMULCAST if simulcast else (SINGLE,)
    video = [
        load_video(codec, ensure_video(codec, size, seconds, media_dir), seconds) for size in sizes
    ]
    sound = load_audio(ensure_audio(seconds, media_dir), seconds) if audio else None
    _mark_unique([*video, *([sound] if sound else [])])
    return MediaSet(video, sound)
