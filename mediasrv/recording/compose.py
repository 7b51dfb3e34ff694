"""Room mode: every participant of a recording in one file, videos tiled, audio mixed.

The journals of a recording directory are grouped by publishing peer. Each stream's frames get
server times (:mod:`mediasrv.recording.timing`): within a peer by its sender reports (lip sync),
across peers by when those reports reached the server, since each publisher's NTP clock is its
own. Videos are decoded and shown as tiles of a grid at a fixed frame rate (a tile holds the
latest picture; black before a stream's first picture and from one second after its last);
audio is decoded, laid on one sample timeline per stream, summed and clipped. The result is
encoded: VP8 and Opus for .webm/.mkv, H.264 and AAC for .mp4.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.stream import VideoStream

from mediasrv.recording.av_output import output_container, output_format
from mediasrv.recording.decoders import AUDIO_RATE, AudioDecoder, VideoDecoder
from mediasrv.recording.frames import Frame
from mediasrv.recording.journal import JournalReader
from mediasrv.recording.pcm_timeline import PcmTimeline, Samples
from mediasrv.recording.postprocess import clock_warnings
from mediasrv.recording.progress import Progress
from mediasrv.recording.report import RecordingError, Report
from mediasrv.recording.tiles import TileCanvas
from mediasrv.recording.timing import StreamClock, StreamTiming, publisher_offset, scan_timing
from mediasrv.recording.tracks import Track, journal_codec, peer_of

DEFAULT_FPS = 15
DEFAULT_TILE = (640, 360)
LEFT_AFTER = 1.0
"""Seconds a tile keeps a stream's last picture before it turns black."""
AUDIO_BLOCK = 960
"""Samples mixed at a time (20 ms)."""
ENCODERS = {
    "webm": ("libvpx", "libopus"),
    "matroska": ("libvpx", "libopus"),
    "mp4": ("libx264", "aac"),
}
VIDEO_OPTIONS = {
    "libvpx": {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"},
    "libx264": {"preset": "veryfast", "tune": "zerolatency"},
}
ENCODER_THREADS = {"libvpx": 1, "libx264": 0}
"""Threads per video encoder (0: FFmpeg's choice). libvpx's VP8 threads wait for each other so
badly on a small VM that two are 20 times slower than one, which encodes 1280x360 in 3 ms."""
VIDEO_BIT_RATE_PER_TILE = 600_000
AUDIO_BIT_RATE = 96_000
RECORDING_JSON = "recording.json"


class _Pull:
    """A track's timed frames with one frame of look-ahead."""

    def __init__(self, track: Track, progress: Progress) -> None:
        self.track = track
        self._frames: Iterator[tuple[float, Frame]] = track.frames(progress.advance)
        self.next: tuple[float, Frame] | None = next(self._frames, None)

    def pop(self) -> tuple[float, Frame]:
        item = self.next
        assert item is not None
        self.next = next(self._frames, None)
        return item


class VideoCursor:
    """The picture a video track shows at a time."""

    def __init__(self, pull: _Pull) -> None:
        self._pull = pull
        self._decoder = VideoDecoder(pull.track.codec.name)
        self._clock = pull.track.clock
        self.current: av.VideoFrame | None = None
        self.current_time: float | None = None
        self.done = self._pull.next is None

    @property
    def errors(self) -> int:
        return self._decoder.errors

    def at(self, time: float) -> av.VideoFrame | None:
        """The latest picture at or before `time` (None before the first and after leaving)."""
        while self._pull.next is not None and self._pull.next[0] <= time:
            _, frame = self._pull.pop()
            self._show(self._decoder.decode(frame))
        if self._pull.next is None and not self.done:
            self._show(self._decoder.decode(None))
            self.done = True
        if self.current_time is None:
            return None
        if self.done and time > self.current_time + LEFT_AFTER:
            return None
        return self.current

    def _show(self, pictures: list[av.VideoFrame]) -> None:
        for picture in pictures:
            if picture.pts is not None:
                self.current_time = self._clock.time(picture.pts)
            self.current = picture

    def end(self) -> float | None:
        """The time of the last picture (once done)."""
        return self.current_time


class AudioCursor:
    """A track's decoded audio on the output's sample timeline."""

    def __init__(self, pull: _Pull, origin: float, channels: int) -> None:
        self._pull = pull
        self._decoder = AudioDecoder(pull.track.codec.name, channels)
        self.origin = origin
        self.timeline = PcmTimeline(channels)

    @property
    def errors(self) -> int:
        return self._decoder.errors

    @property
    def done(self) -> bool:
        return self._pull.next is None

    def read(self, start: int, count: int) -> Samples:
        """Samples [start, start + count) of the output timeline."""
        limit = self.origin + (start + count) / AUDIO_RATE
        while self._pull.next is not None and self._pull.next[0] < limit:
            time, frame = self._pull.pop()
            samples = self._decoder.decode(frame)
            if samples is not None:
                self.timeline.put(round((time - self.origin) * AUDIO_RATE), samples)
        return self.timeline.read(start, count)

    def end(self) -> int:
        return self.timeline.end or 0


def _room_journals(directory: Path, report: Report) -> list[tuple[Path, dict[str, Any]]]:
    """The readable journals of a recording directory (the others are reported as damage)."""
    if not directory.is_dir():
        raise RecordingError(f"{directory}: not a directory")
    info_path = directory / RECORDING_JSON
    info: Any = None
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problem = "missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problem = f"unreadable ({exc})"
    else:
        problem = "" if isinstance(info, dict) else "not a JSON object"
    if problem:
        report.warnings.append(
            f"{info_path}: {problem}: taking every journal (*.msrec) of the directory"
        )
    recording = info.get("recording") if isinstance(info, dict) else None
    journals = []
    for path in sorted(directory.glob("*.msrec")):
        try:
            with JournalReader(path) as reader:
                metadata = reader.metadata
        except OSError as exc:
            report.damage.append(f"{path}: cannot read: {exc.strerror or exc}")
            continue
        except ValueError as exc:
            report.damage.append(f"{path}: {exc} (left out)")
            continue
        if recording is not None and metadata["recording"] != recording:
            report.warnings.append(
                f"{path}: belongs to recording {metadata['recording']!r}, "
                f"not {recording!r}: left out"
            )
            continue
        try:
            journal_codec(path, metadata)
        except RecordingError as exc:
            report.warnings.append(f"{exc}: left out")
            continue
        journals.append((path, metadata))
    if not journals:
        raise RecordingError(f"{directory}: no readable journal (*.msrec) in the directory")
    return journals


def compose_room(
    directory: Path,
    output: Path,
    *,
    fps: int = DEFAULT_FPS,
    tile: tuple[int, int] = DEFAULT_TILE,
    progress: Progress | None = None,
) -> Report:
    """Compose the recording in `directory` into `output` (see the module doc)."""
    directory, output = Path(directory), Path(output)
    fmt = output_format(output)
    report = Report(output)
    journals = _room_journals(directory, report)
    progress = progress or Progress(1, "", enabled=False)
    progress.total = 2 * sum(path.stat().st_size for path, _ in journals)
    progress.set_label("scanning")
    timings: list[StreamTiming] = []
    for path, _ in journals:
        try:
            timings.append(scan_timing(path, progress.advance))
        except (OSError, ValueError) as exc:
            report.damage.append(f"{path}: {exc} (left out)")
    report.damage += [f"{t.path}: {t.damage}" for t in timings if t.damage]
    peers: dict[str, list[StreamTiming]] = {}
    for timing in timings:
        peers.setdefault(peer_of(timing.metadata), []).append(timing)
    offsets = {peer: publisher_offset(group) for peer, group in peers.items()}
    tracks = [Track(t, StreamClock(t, offsets[peer_of(t.metadata)])) for t in timings]
    tracks.sort(key=lambda t: (t.timing.first_arrival_us or 0, str(t.metadata["producer"])))
    report.warnings += clock_warnings(tracks)

    progress.set_label("composing")
    pulls = []
    for track in tracks:
        pull = _Pull(track, progress)
        if pull.next is None:
            what = "keyframe" if track.kind == "video" else "frame"
            report.warnings.append(f"{track.path}: no {what}: left out")
        else:
            pulls.append(pull)
    if not pulls:
        details = "; ".join(w for t in tracks for w in t.warnings())
        raise RecordingError(f"{directory}: nothing to write: no decodable frame ({details})")
    origin = min(pull.next[0] for pull in pulls if pull.next is not None)
    videos = [VideoCursor(pull) for pull in pulls if pull.track.kind == "video"]
    audios = [AudioCursor(pull, origin, 2) for pull in pulls if pull.track.kind == "audio"]

    with output_container(output, fmt) as container:
        _encode(container, fmt, videos, audios, origin, fps, tile, report)
    for track in tracks:
        report.warnings += track.warnings()
    errors = sum(c.errors for c in videos) + sum(c.errors for c in audios)
    if errors:
        report.warnings.append(f"{errors} frame(s) did not decode")
    progress.close()
    return report


def _encode(
    container: OutputContainer,
    fmt: str,
    videos: Sequence[VideoCursor],
    audios: Sequence[AudioCursor],
    origin: float,
    fps: int,
    tile: tuple[int, int],
    report: Report,
) -> None:
    video_codec, audio_codec = ENCODERS[fmt]
    canvas = TileCanvas(len(videos), tile) if videos else None
    video_stream: VideoStream | None = None
    audio_stream: AudioStream | None = None
    if canvas is not None:
        stream = container.add_stream(video_codec, rate=fps, options=VIDEO_OPTIONS[video_codec])
        assert isinstance(stream, VideoStream)
        stream.width = canvas.width
        stream.height = canvas.height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = VIDEO_BIT_RATE_PER_TILE * len(videos)
        stream.codec_context.gop_size = 2 * fps
        stream.codec_context.thread_count = ENCODER_THREADS[video_codec]
        video_stream = stream
    if audios:
        sound = container.add_stream(audio_codec, rate=AUDIO_RATE)
        assert isinstance(sound, AudioStream)
        sound.layout = "stereo"
        sound.bit_rate = AUDIO_BIT_RATE
        audio_stream = sound
    container.start_encoding()

    frame_index = 0
    sample = 0
    video_done = video_stream is None
    audio_done = audio_stream is None
    while not (video_done and audio_done):
        video_time = frame_index / fps
        audio_time = sample / AUDIO_RATE
        if not video_done and (audio_done or video_time <= audio_time):
            assert canvas is not None and video_stream is not None
            now = origin + video_time
            pictures = [cursor.at(now) for cursor in videos]
            if _finished(videos, audios, now, 1 / fps):
                video_done = True
                continue
            frame = canvas.frame(pictures)
            frame.pts = frame_index
            frame.time_base = Fraction(1, fps)
            container.mux(video_stream.encode(frame))
            frame_index += 1
        else:
            assert audio_stream is not None
            now = origin + (sample + AUDIO_BLOCK) / AUDIO_RATE
            mixed: Samples = np.zeros((AUDIO_BLOCK, 2), dtype=np.float32)
            for cursor in audios:
                mixed += cursor.read(sample, AUDIO_BLOCK)
            if _finished(videos, audios, now - AUDIO_BLOCK / AUDIO_RATE, 1 / fps):
                audio_done = True
                continue
            np.clip(mixed, -1.0, 1.0, out=mixed)
            audio = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(mixed.T), format="fltp", layout="stereo"
            )
            audio.sample_rate = AUDIO_RATE
            audio.pts = sample
            audio.time_base = Fraction(1, AUDIO_RATE)
            container.mux(audio_stream.encode(audio))
            sample += AUDIO_BLOCK
    if video_stream is not None:
        container.mux(video_stream.encode(None))
        report.streams["video"] = frame_index
    if audio_stream is not None:
        container.mux(audio_stream.encode(None))
        report.streams["audio"] = sample // AUDIO_BLOCK
    report.duration = max(frame_index / fps, sample / AUDIO_RATE)


def _finished(
    videos: Sequence[VideoCursor], audios: Sequence[AudioCursor], now: float, frame_time: float
) -> bool:
    """Whether every stream has ended at `now` (server time); a picture lasts `frame_time`."""
    ends = []
    for video in videos:
        if not video.done:
            return False
        end = video.end()
        if end is not None:
            ends.append(end + frame_time)
    for audio in audios:
        if not audio.done:
            return False
        ends.append(audio.origin + audio.end() / AUDIO_RATE)
    return not ends or now >= max(ends)
