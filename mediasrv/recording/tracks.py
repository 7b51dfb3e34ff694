"""The second pass over a journal: frames in order, each with its server time.

journal records → RTP packets (extended numbers) → reordering → frame assembly → frames, each
with ``clock.time(ts)``. Everything streams: memory stays bounded by the reorder window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mediasrv.recording.codecs import Codec, codec_of, supported_mime_types
from mediasrv.recording.frames import Frame
from mediasrv.recording.journal import JournalReader
from mediasrv.recording.reorder import Reorderer
from mediasrv.recording.report import RecordingError
from mediasrv.recording.rtp_stream import RtpPacket, StreamStats, read_stream
from mediasrv.recording.timing import StreamClock, StreamTiming


def journal_codec(path: Path, metadata: dict[str, Any]) -> Codec:
    """The codec of a journal, or RecordingError naming the unsupported MIME type."""
    codec = codec_of(metadata["mimeType"])
    if codec is None:
        raise RecordingError(
            f"{path}: codec {metadata['mimeType']!r} is not supported "
            f"(supported: {supported_mime_types()})"
        )
    if codec.kind != metadata["kind"]:
        raise RecordingError(
            f"{path}: metadata says kind {metadata['kind']!r} but {codec.mime_type} is {codec.kind}"
        )
    return codec


def peer_of(metadata: dict[str, Any]) -> str:
    """The publishing peer of a journal (its producer when the peer is not known)."""
    return str(metadata["peer"] if metadata["peer"] is not None else metadata["producer"])


class Track:
    """One journal's frames with server times, and what was lost on the way."""

    def __init__(self, timing: StreamTiming, clock: StreamClock) -> None:
        self.timing = timing
        self.clock = clock
        self.path = timing.path
        self.metadata = timing.metadata
        self.kind: str = timing.metadata["kind"]
        self.codec = journal_codec(timing.path, timing.metadata)
        self.stats = StreamStats()
        self.reorderer = Reorderer()
        self.assembler = self.codec.assembler(str(timing.metadata.get("fmtp", "")))

    def frames(
        self, progress: Callable[[int], None] | None = None
    ) -> Iterator[tuple[float, Frame]]:
        """``(server time, frame)`` in stream order; reads the journal once."""
        time = self.clock.time
        reorder = self.reorderer.push
        assemble = self.assembler.push
        count = 0
        done = 0
        with JournalReader(self.path) as reader:
            for item in read_stream(reader, self.stats):
                if type(item) is not RtpPacket:
                    continue
                for packet in reorder(item):
                    for frame in assemble(packet):
                        yield time(frame.ts), frame
                count += 1
                if progress is not None and count & 0x3FF == 0:
                    progress(reader.position - done)
                    done = reader.position
            for packet in self.reorderer.flush():
                for frame in assemble(packet):
                    yield time(frame.ts), frame
            for frame in self.assembler.flush():
                yield time(frame.ts), frame
            if progress is not None:
                progress(reader.size - done)

    def warnings(self) -> list[str]:
        """What was skipped or lost in this journal, one sentence each (after :meth:`frames`)."""
        out = self.stats.warnings()
        if self.reorderer.late:
            out.append(
                f"dropped {self.reorderer.late} {self.kind} packet(s) that came too late "
                "or repeated one already used"
            )
        if self.reorderer.restarts:
            out.append(
                f"the {self.kind} sequence numbers jumped back {self.reorderer.restarts} time(s) "
                "(a restarted sender?): read on from there"
            )
        if self.reorderer.duplicates:
            out.append(f"dropped {self.reorderer.duplicates} duplicate {self.kind} packet(s)")
        out += self.assembler.stats.warnings(self.kind)
        return [f"{self.path}: {message}" for message in out]
