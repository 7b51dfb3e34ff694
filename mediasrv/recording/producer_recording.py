"""ProducerRecording: one producer recorded into one journal.

A consumer of the producer on a :class:`~mediasrv.recording_transport.RecordingTransport`
hands every packet it would forward to a journal sink in the data plane; at each flush the
records go to the file, with the producer's latest sender report (mapped to the journal's
timestamps, for audio/video alignment) and events (layer changes, stop).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mediasrv import _core
from mediasrv.recording.journal import EVENT, SR, encode_json, encode_sr, journal_metadata
from mediasrv.recording.journal_file import JournalFile

if TYPE_CHECKING:
    from mediasrv.config import RecordingConfig
    from mediasrv.consumer import Consumer
    from mediasrv.producer import Producer
    from mediasrv.recording_transport import RecordingTransport
    from mediasrv.router import Router

log = logging.getLogger("mediasrv.recording")


def _now_us() -> int:
    return int(time.time() * 1_000_000)


class ProducerRecording:
    def __init__(
        self,
        recording_id: str,
        room_id: str,
        producer: Producer,
        router: Router,
        directory: Path,
        config: RecordingConfig,
        display_name: str = "",
    ) -> None:
        self.producer = producer
        self.config = config
        self.file_name = f"{producer.id}.{producer.kind}.msrec"
        self.started = time.time()
        self.stopped: float | None = None
        self.stop_reason: str | None = None
        owner = producer.app_data.get("peerId")
        self.peer_id = str(owner) if owner is not None else None
        self.display_name = display_name
        codec = producer.codec
        metadata = journal_metadata(
            recording=recording_id,
            room=room_id,
            producer=producer.id,
            peer=self.peer_id,
            display_name=display_name,
            kind=producer.kind,
            mime_type=codec.mime_type,
            clock_rate=codec.clock_rate,
            channels=codec.channels if producer.kind == "audio" else 1,
            payload_type=codec.payload_type,
            fmtp=";".join(f"{k}={v}" for k, v in codec.fmtp.items()),
            started=self.started,
        )
        self.file = JournalFile(directory / self.file_name, metadata)
        self.sink = _core.JournalSink(config.max_pending_bytes)
        self.transport: RecordingTransport = router.create_recording_transport(
            self.sink, app_data={"recording": recording_id}
        )
        self.consumer: Consumer = self.transport.consume(producer)
        self._sr_written: tuple[int, int, float] | None = None
        self._layer: int | None = None
        self.event({"event": "start"})
        self.consumer.start()

    @property
    def active(self) -> bool:
        return self.stopped is None

    def event(self, event: dict[str, Any]) -> None:
        self.sink.append(EVENT, encode_json(event), _now_us())

    def _note_state(self) -> None:
        """Sender reports and layer changes since the last flush, as records."""
        plane = self.consumer.plane
        if not plane.synced:
            return
        layer = self.consumer.current_layer()
        if self.producer.simulcast and layer is not None and layer != self._layer:
            self._layer = layer
            self.event({"event": "layer", "spatial": layer})
        sr = self.producer.sender_reports.get(plane.stream.ssrc)
        if sr is None or sr == self._sr_written:
            return
        self._sr_written = sr
        ntp, rtp_ts, arrived = sr
        # when it arrived, on the wall clock (the records' time base)
        wall = time.time() - (time.monotonic() - arrived)
        mapped = (rtp_ts + plane.timestamp_offset) & 0xFFFFFFFF
        self.sink.append(SR, encode_sr(ntp, mapped), int(wall * 1_000_000))

    def flush(self, note_state: bool = True) -> int:
        """Write what the data plane collected; the bytes written. OSError on a write error
        (the caller stops the recording)."""
        if self.file.closed:
            return 0
        if note_state:
            self._note_state()
        pending = self.sink.pending()
        if not pending:
            return 0
        limit = self.config.max_journal_bytes
        if limit and self.file.size + pending > limit:
            raise OSError(f"the journal would pass max_journal_bytes ({limit})")
        return self.file.append_from(self.sink)

    def stop(self, reason: str) -> None:
        """Stop forwarding to the journal and write the last records (errors are logged: the
        journal up to them is valid); ``file.finish()`` then fsyncs and closes it."""
        if self.stopped is not None:
            return
        self.stopped = time.time()
        self.stop_reason = reason
        self._note_state()  # the last sender report, before the end
        self.transport.close()  # its consumer first: nothing more reaches the sink
        try:
            self.event({"event": "stop", "reason": reason})
            self.flush(note_state=False)
        except OSError as exc:
            log.error("recording of %s: last write failed: %s", self.producer.id, exc)
        finally:
            self.sink.close()  # the file is fsynced and closed by its recording, in a thread

    def stats(self) -> dict[str, Any]:
        return {
            "file": self.file_name,
            "producer": self.producer.id,
            "peer": self.peer_id,
            "displayName": self.display_name,
            "kind": self.producer.kind,
            "mimeType": self.producer.codec.mime_type,
            "started": self.started,
            "stopped": self.stopped,
            "stopReason": self.stop_reason,
            "bytes": self.file.size,
            "records": self.sink.records,
            "dropped": self.sink.dropped,
            "packets": self.consumer.plane.packets,
            "layer": self.consumer.current_layer(),
        }
