"""PyAV plumbing for output files: container formats, streams for already-encoded packets,
decoding a keyframe to learn its picture size."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
from av.audio.codeccontext import AudioCodecContext
from av.container import OutputContainer
from av.stream import Stream
from av.video.codeccontext import VideoCodecContext

from mediasrv.recording.report import RecordingError

FORMATS = {".webm": "webm", ".mkv": "matroska", ".mp4": "mp4"}
"""Output format by file extension."""

VIDEO_CODECS = {
    "webm": ("vp8", "vp9"),
    "matroska": ("vp8", "vp9", "h264"),
    "mp4": ("h264", "vp9"),
}
AUDIO_CODECS = {"webm": ("opus",), "matroska": ("opus", "aac"), "mp4": ("opus", "aac")}


def output_format(path: Path) -> str:
    """The container format for an output path, by its extension."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise RecordingError(
            f"{path}: cannot tell the output format from the extension {path.suffix!r} "
            f"(use {', '.join(FORMATS)})"
        )
    return fmt


def check_codecs(path: Path, fmt: str, video: str | None, audio: str | None) -> None:
    """RecordingError when the container cannot hold these codecs (a usage error)."""
    if video is not None and video not in VIDEO_CODECS[fmt]:
        hint = ".mp4 or .mkv" if video == "h264" else ".webm or .mkv"
        raise RecordingError(f"{path}: {fmt} cannot hold {video.upper()} video: use {hint}")
    if audio is not None and audio not in AUDIO_CODECS[fmt]:
        raise RecordingError(f"{path}: {fmt} cannot hold {audio} audio (use .mp4 or .mkv)")


@contextlib.contextmanager
def output_container(path: Path, fmt: str) -> Iterator[OutputContainer]:
    """The output file open for writing. It is written under a temporary name beside `path`
    and renamed to `path` when complete: a failed run leaves no half file (and an older file
    of that name untouched)."""
    partial = path.with_name(f".{path.name}.partial")
    container = av.open(str(partial), "w", format=fmt)
    try:
        yield container
        container.close()
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(Exception):
            container.close()
        partial.unlink(missing_ok=True)
        raise


def add_copy_stream(container: OutputContainer, codec_name: str) -> Stream:
    """A stream of `codec_name` for packets that are already encoded: its codec context is never
    opened; the caller sets the codec parameters (size, rate, layout, extradata) on it."""
    scratch = av.open(io.BytesIO(), "w", format="matroska")
    try:
        template = scratch.add_stream(codec_name)
        return container.add_stream_from_template(template, opaque=True)
    finally:
        scratch.close()


def add_video_copy_stream(
    container: OutputContainer, codec_name: str, width: int, height: int, extradata: bytes
) -> Stream:
    stream = add_copy_stream(container, codec_name)
    context = stream.codec_context
    assert isinstance(context, VideoCodecContext)
    context.width = width
    context.height = height
    context.pix_fmt = "yuv420p"
    # WebRTC video has no fixed frame rate: claim none (the template's default is 24 fps)
    context.framerate = Fraction(0, 1)
    if extradata:
        context.extradata = extradata
    stream.time_base = Fraction(1, 90000)
    return stream


def add_audio_copy_stream(
    container: OutputContainer, codec_name: str, rate: int, channels: int, extradata: bytes
) -> Stream:
    stream = add_copy_stream(container, codec_name)
    context = stream.codec_context
    assert isinstance(context, AudioCodecContext)
    context.sample_rate = rate
    context.layout = "mono" if channels == 1 else "stereo"
    if extradata:
        context.extradata = extradata
    stream.time_base = Fraction(1, rate)
    return stream


def picture_size(codec_name: str, keyframe: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a keyframe, by decoding it (None when it does not decode)."""
    try:
        context = av.CodecContext.create(codec_name, "r")
        assert isinstance(context, VideoCodecContext)
        frames = context.decode(av.Packet(keyframe)) + context.decode(None)
    except av.FFmpegError:
        return None
    return (frames[0].width, frames[0].height) if frames else None
