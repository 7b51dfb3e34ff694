"""RecordingTransport: a transport whose consumers write to a journal instead of a network.

It is a router's transport like any other: consumers on it get the producer's stream with the
same rewriting a subscriber gets (a simulcast producer's top layer actually received, switched
at keyframes with sequence numbers and timestamps continuous), keyframes are requested for
it, and the worker's layer timer moves it up when a higher layer appears. Instead of SRTP and
sendmmsg, the data plane appends each packet to the transport's journal sink
(:class:`mediasrv._core.JournalSink`); :class:`mediasrv.recording.producer_recording.
ProducerRecording` takes the records from there.
"""

from __future__ import annotations

from typing import Any

from mediasrv import _core
from mediasrv.transport import Transport, TransportRouter


class RecordingTransport(Transport):
    kind = "recording"

    def __init__(
        self,
        router: TransportRouter,
        sink: _core.JournalSink,
        *,
        app_data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(router, srtp=False, max_incoming_bitrate=0, app_data=app_data)
        self.sink = sink
        self.plane.set_journal(sink)

    @property
    def connected(self) -> bool:
        return not self.closed  # a journal is always there to write to

    def tick_nack(self) -> None:
        pass  # nothing is received here, and nothing asks for repairs

    def tick_reports(self) -> None:
        pass  # nobody receives reports from a journal
