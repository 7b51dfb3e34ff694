"""One participant's journals (one video and/or one audio) to one file, without re-encoding.

Two passes over each journal: the first collects sender reports and arrival times
(:mod:`mediasrv.recording.timing`), the second reads frames (:mod:`mediasrv.recording.tracks`)
and muxes them in time order. The video starts on a keyframe; the output starts at the earliest
aligned frame of its streams. Opus is copied into WebM, Matroska or MP4; ``audio_codec="aac"``
transcodes the audio (only the audio) to AAC.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.stream import Stream

from mediasrv.recording.av_output import (
    add_audio_copy_stream,
    add_video_copy_stream,
    check_codecs,
    output_container,
    output_format,
    picture_size,
)
from mediasrv.recording.decoders import AUDIO_RATE, AudioDecoder
from mediasrv.recording.frames import Frame
from mediasrv.recording.h264_frames import parameter_sets_of
from mediasrv.recording.journal import JournalReader
from mediasrv.recording.opus_frames import opus_head, opus_packet_samples, opus_silence
from mediasrv.recording.pcm_timeline import PcmTimeline
from mediasrv.recording.progress import Progress
from mediasrv.recording.report import RecordingError, Report
from mediasrv.recording.timing import StreamClock, StreamTiming, publisher_offset, scan_timing
from mediasrv.recording.tracks import Track, journal_codec, peer_of

AUDIO_CODECS = ("opus", "aac")
SILENCE_SECONDS = 0.02
MIN_INTERVAL, MAX_INTERVAL = 1 / 120, 1.0
"""Frame intervals (seconds) taken as a video's frame rate when placing time zero."""
AAC_BIT_RATE = 128_000


def read_headers(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Every journal's metadata, or RecordingError naming the first unreadable one."""
    out = []
    for path in paths:
        try:
            with JournalReader(path) as reader:
                out.append(reader.metadata)
        except OSError as exc:
            raise RecordingError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except ValueError as exc:  # JournalError
            raise RecordingError(f"{path}: {exc}") from None
    return out


def scan_all(paths: Sequence[Path], progress: Progress) -> list[StreamTiming]:
    """The first pass over every journal."""
    progress.set_label("scanning")
    timings = []
    for path in paths:
        try:
            timings.append(scan_timing(path, progress.advance))
        except OSError as exc:
            raise RecordingError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise RecordingError(f"{path}: {exc}") from None
    return timings


def clock_warnings(tracks: Sequence[Track]) -> list[str]:
    return [
        f"{track.path}: no sender reports: {track.kind} aligned by packet arrival times, "
        "which is only as good as the network delay was steady"
        for track in tracks
        if not track.clock.uses_reports
    ]


class _Writer:
    """Muxes one stream's packets with increasing timestamps; holds a video frame back until
    the next one gives its duration."""

    def __init__(self, container: OutputContainer, stream: Stream, start: float) -> None:
        self.container = container
        self.stream = stream
        self.start = start
        self.time_base: Fraction = stream.time_base or Fraction(1, 1000)
        self.last_pts = -1
        self.first_pts: int | None = None
        self.frames = 0
        self.padding = 0
        """Silent packets put in front of the first frame (counted in `frames`)."""
        self.end = start
        self._held: av.Packet[Stream] | None = None

    def pts(self, time: float) -> int:
        pts = round((time - self.start) / self.time_base)
        if pts <= self.last_pts:
            pts = self.last_pts + 1
        self.last_pts = pts
        return pts

    def write(self, frame: Frame, time: float, duration: float | None) -> None:
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = self.pts(time)
        packet.is_keyframe = frame.keyframe
        packet.stream = self.stream
        packet.time_base = self.time_base
        if self.first_pts is None:
            self.first_pts = packet.pts
        self.frames += 1
        if duration is not None:
            packet.duration = max(1, round(duration / self.time_base))
            self.end = max(self.end, time + duration)
            self.container.mux(packet)
            return
        held = self._held
        if held is not None and held.pts is not None:
            held.duration = max(1, packet.pts - held.pts)
            self.container.mux(held)
        self._held = packet
        self.end = max(self.end, time)

    def close(self) -> None:
        held = self._held
        if held is not None:
            if held.pts is not None and self.first_pts is not None and self.frames > 1:
                average = (held.pts - self.first_pts) / (self.frames - 1)
                held.duration = max(1, round(average))
                self.end += float(held.duration * self.time_base)
            self.container.mux(held)
            self._held = None


class _AacWriter:
    """Decodes Opus, lays it on a gapless timeline, encodes AAC."""

    def __init__(
        self,
        container: OutputContainer,
        stream: AudioStream,
        start: float,
        channels: int,
        *,
        from_zero: bool,
    ) -> None:
        self.from_zero = from_zero
        """Whether the audio starts at time zero (silence up to the first frame)."""
        self.container = container
        self.stream = stream
        self.start = start
        self.decoder = AudioDecoder("opus", channels)
        self.timeline = PcmTimeline(channels)
        self.layout = "mono" if channels == 1 else "stereo"
        self.next: int | None = None
        self.frames = 0
        self.padding = 0
        self.end = start

    def write(self, frame: Frame, time: float) -> None:
        samples = self.decoder.decode(frame)
        if samples is None:
            return
        position = round((time - self.start) * AUDIO_RATE)
        self.timeline.put(position, samples)
        if self.next is None:
            self.next = 0 if self.from_zero else max(0, position)
        self.frames += 1
        self._encode(final=False)

    def _encode(self, *, final: bool) -> None:
        end = self.timeline.end
        if self.next is None or end is None:
            return
        size = self.stream.codec_context.frame_size or 1024
        while self.next + size <= end or (final and self.next < end):
            block = self.timeline.read(self.next, size)
            audio = av.AudioFrame.from_ndarray(block.T.copy(), format="fltp", layout=self.layout)
            audio.sample_rate = AUDIO_RATE
            audio.pts = self.next
            audio.time_base = Fraction(1, AUDIO_RATE)
            self.container.mux(self.stream.encode(audio))
            self.next += size
        self.end = self.start + self.next / AUDIO_RATE

    def close(self) -> None:
        self._encode(final=True)
        self.container.mux(self.stream.encode(None))


def remux(
    journals: Sequence[Path],
    output: Path,
    *,
    audio_codec: str | None = None,
    progress: Progress | None = None,
) -> Report:
    """Write the frames of `journals` (at most one audio, one video) to `output`.

    RecordingError for bad usage or input (nothing is written then); a returned report lists
    warnings and the damage of journals that were read up to a bad record.
    """
    paths = [Path(path) for path in journals]
    output = Path(output)
    if not paths:
        raise RecordingError("no journal given")
    fmt = output_format(output)
    if audio_codec is not None and audio_codec not in AUDIO_CODECS:
        raise RecordingError(
            f"unknown audio codec {audio_codec!r} (use {' or '.join(AUDIO_CODECS)})"
        )
    metadata = read_headers(paths)
    kinds: dict[str, Path] = {}
    names: dict[str, str] = {}
    for path, meta in zip(paths, metadata, strict=True):
        codec = journal_codec(path, meta)
        if codec.kind in kinds:
            raise RecordingError(
                f"{path}: a second {codec.kind} journal (the first is {kinds[codec.kind]}); "
                "one participant has at most one video and one audio journal"
            )
        kinds[codec.kind] = path
        names[codec.kind] = codec.name
    peers = {peer_of(meta) for meta in metadata}
    warnings = []
    if len(peers) > 1:
        warnings.append(
            f"the journals are of different peers ({', '.join(sorted(peers))}): "
            "aligned as if one participant had sent them"
        )
    audio_out = None
    if "audio" in names:
        audio_out = audio_codec or "opus"
    check_codecs(output, fmt, names.get("video"), audio_out)

    progress = progress or Progress(1, "", enabled=False)
    progress.total = 2 * sum(path.stat().st_size for path in paths)
    timings = scan_all(paths, progress)
    report = Report(output, warnings)
    report.damage = [f"{t.path}: {t.damage}" for t in timings if t.damage]
    publisher = publisher_offset(timings)
    tracks = [Track(t, StreamClock(t, publisher)) for t in timings]
    report.warnings += clock_warnings(tracks)

    progress.set_label("writing")
    heads: list[tuple[float, int, Frame, Iterator[tuple[float, Frame]]]] = []
    for index, track in enumerate(tracks):
        frames = track.frames(progress.advance)
        first = next(frames, None)
        if first is None:
            what = "keyframe" if track.kind == "video" else "frame"
            report.warnings.append(f"{track.path}: no {what}: no {track.kind} written")
            continue
        heads.append((first[0], index, first[1], frames))
    if not heads:
        report.warnings += [w for track in tracks for w in track.warnings()]
        details = "; ".join(report.warnings + report.damage)
        raise RecordingError(f"nothing to write: no decodable frame in the journals ({details})")
    start = _output_start(tracks, heads)

    with output_container(output, fmt) as container:
        writers = _open_streams(container, tracks, heads, start, audio_out)
        container.start_encoding()
        for writer in writers.values():
            if isinstance(writer, _Writer):
                writer.time_base = writer.stream.time_base or writer.time_base
        audio_first = min((h[0] for h in heads if tracks[h[1]].kind == "audio"), default=None)
        if audio_first is not None:
            _pad_audio(writers, tracks, start, audio_first)
        _mux_all(tracks, heads, writers)
        for writer in writers.values():
            writer.close()
        for index, writer in writers.items():
            report.streams[tracks[index].kind] = writer.frames - writer.padding
            report.duration = max(report.duration, writer.end - start)
    for track in tracks:
        report.warnings += track.warnings()
    for writer in writers.values():
        if isinstance(writer, _AacWriter) and writer.decoder.errors:
            report.warnings.append(f"{writer.decoder.errors} audio frame(s) did not decode")
    progress.close()
    return report


def _output_start(
    tracks: Sequence[Track],
    heads: Sequence[tuple[float, int, Frame, Iterator[tuple[float, Frame]]]],
) -> float:
    """Time zero of the output: the earliest first frame of the streams or, with video, a whole
    number of video frame intervals before the first video frame, at most one interval (plus
    room for one 20 ms audio packet) before the earliest frame.

    Video frame times jitter by a few milliseconds around their nominal instants. Tools that put
    frames on a constant-rate grid starting where the file starts (ffmpeg with its guessed frame
    rate, for one) round each frame to the nearest grid point; with frames near grid points
    rather than halfway between, that rounding never makes two frames collide. When the audio
    starts first, :func:`_pad_audio` puts silence from time zero, so that the file does start
    there."""
    earliest = min(head[0] for head in heads)
    video = [head for head in heads if tracks[head[1]].kind == "video"]
    if not video:
        return earliest
    first = video[0][0]
    interval = tracks[video[0][1]].timing.frame_interval
    if interval is None or not MIN_INTERVAL <= interval <= MAX_INTERVAL:
        return earliest
    start = first - math.ceil((first - earliest) / interval - 1e-9) * interval
    while 0.001 < earliest - start < SILENCE_SECONDS:  # room for a whole silent packet
        start -= interval
    return start


def _pad_audio(
    writers: dict[int, _Writer | _AacWriter], tracks: Sequence[Track], start: float, until: float
) -> None:
    """Silent Opus packets from `start` up to the audio's first frame at `until` (copied Opus
    only: the AAC timeline is read from time zero anyway)."""
    for index, writer in writers.items():
        if tracks[index].kind != "audio" or not isinstance(writer, _Writer):
            continue
        channels = int(tracks[index].metadata.get("channels", 2))
        silence = Frame(0, opus_silence(channels), True, 0)
        count = int((until - start) / SILENCE_SECONDS + 1e-9)
        for i in range(count if until - start > 0.001 else 0):
            writer.write(silence, start + i * SILENCE_SECONDS, SILENCE_SECONDS)
        writer.padding = count


def _open_streams(
    container: OutputContainer,
    tracks: Sequence[Track],
    heads: Sequence[tuple[float, int, Frame, Iterator[tuple[float, Frame]]]],
    start: float,
    audio_out: str | None,
) -> dict[int, _Writer | _AacWriter]:
    writers: dict[int, _Writer | _AacWriter] = {}
    for _, index, first, _ in sorted(heads, key=lambda head: tracks[head[1]].kind != "video"):
        track = tracks[index]
        channels = int(track.metadata.get("channels", 2)) or 2
        channels = 1 if channels == 1 else 2
        if track.kind == "video":
            size = picture_size(track.codec.name, first.data)
            if size is None:
                raise RecordingError(f"{track.path}: the first keyframe does not decode")
            extradata = parameter_sets_of(first.data) if track.codec.name == "h264" else b""
            stream = add_video_copy_stream(container, track.codec.name, *size, extradata)
            writers[index] = _Writer(container, stream, start)
        elif audio_out == "aac":
            stream = container.add_stream("aac", rate=AUDIO_RATE)
            stream.layout = "mono" if channels == 1 else "stereo"
            stream.bit_rate = AAC_BIT_RATE
            stream.time_base = Fraction(1, AUDIO_RATE)
            video = any(tracks[head[1]].kind == "video" for head in heads)
            writers[index] = _AacWriter(container, stream, start, channels, from_zero=video)
        else:
            stream = add_audio_copy_stream(
                container, track.codec.name, AUDIO_RATE, channels, opus_head(channels)
            )
            writers[index] = _Writer(container, stream, start)
    return writers


def _mux_all(
    tracks: Sequence[Track],
    heads: Sequence[tuple[float, int, Frame, Iterator[tuple[float, Frame]]]],
    writers: dict[int, _Writer | _AacWriter],
) -> None:
    """Write every frame of every track in time order."""
    queue = [(time, index, frame) for time, index, frame, _ in heads]
    iterators = {index: frames for _, index, _, frames in heads}
    heapq.heapify(queue)
    while queue:
        time, index, frame = queue[0]
        writer = writers[index]
        if isinstance(writer, _AacWriter):
            writer.write(frame, time)
        elif tracks[index].kind == "audio":
            samples = opus_packet_samples(frame.data)
            writer.write(frame, time, (samples or 960) / AUDIO_RATE)
        else:
            writer.write(frame, time, None)
        following = next(iterators[index], None)
        if following is None:
            heapq.heappop(queue)
        else:
            heapq.heapreplace(queue, (following[0], index, following[1]))
