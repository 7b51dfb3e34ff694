"""Router: one room's forwarding table — its transports and producers — and active-speaker
detection from RFC 6464 audio levels measured in the data plane."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from mediasrv import _core
from mediasrv.events import Emitter
from mediasrv.pipe_transport import PipeTransport
from mediasrv.plain_rtp_transport import PlainRtpTransport
from mediasrv.producer import Producer
from mediasrv.recording_transport import RecordingTransport
from mediasrv.transport import Transport
from mediasrv.webrtc_transport import WebRtcTransport, WebRtcWorker

_Plain = TypeVar("_Plain", bound=PlainRtpTransport)
SPEAKER_MAX_LEVEL = 70  # -dBov: quieter than this is not speech
SPEAKER_MIN_VOICE_PACKETS = 5  # per interval


class Router(Emitter):
    """Events: ``producer`` (added), ``producerclose``, ``activespeaker`` (producer or None),
    ``close``. close() closes every transport (and so every producer and consumer), then the
    producers piped into it from another worker's pipe; its worker forgets it on ``close``."""

    def __init__(self, worker: WebRtcWorker, app_data: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.id = uuid.uuid4().hex
        self.worker = worker
        self.app_data = dict(app_data or {})
        self.transports: dict[str, Transport] = {}
        self.producers: dict[str, Producer] = {}
        self.active_speaker: Producer | None = None
        self.closed = False

    def create_webrtc_transport(
        self, *, enable_sctp: bool = True, app_data: dict[str, Any] | None = None
    ) -> WebRtcTransport:
        if self.closed:
            raise RuntimeError("the router is closed")
        cfg = self.worker.config
        transport = WebRtcTransport(
            self,
            max_incoming_bitrate=cfg.max_incoming_bitrate,
            ice_timeout=cfg.ice_timeout,
            consent_timeout=cfg.consent_timeout,
            enable_sctp=enable_sctp,
            app_data=app_data,
        )
        self._add(transport)
        return transport

    def create_plain_transport(
        self, *, srtp: str | None = None, app_data: dict[str, Any] | None = None
    ) -> PlainRtpTransport:
        return self._add_plain(PlainRtpTransport, srtp, app_data)

    def create_pipe_transport(
        self, *, srtp: str | None = None, app_data: dict[str, Any] | None = None
    ) -> PipeTransport:
        """A transport carrying producers to or from another router's worker (PipeTransport);
        ``connect()`` it to the other side's ``local_address`` (and, with ``srtp``, one of
        SRTP_SUITES, its ``srtp_parameters``)."""
        return self._add_plain(PipeTransport, srtp, app_data)

    def _add_plain(
        self, kind: type[_Plain], srtp: str | None, app_data: dict[str, Any] | None
    ) -> _Plain:
        if self.closed:
            raise RuntimeError("the router is closed")
        max_bitrate = self.worker.config.max_incoming_bitrate
        transport = kind(self, max_incoming_bitrate=max_bitrate, srtp=srtp, app_data=app_data)
        self._add(transport)
        return transport

    def create_recording_transport(
        self, sink: _core.JournalSink, *, app_data: dict[str, Any] | None = None
    ) -> RecordingTransport:
        """A transport whose consumers append to a journal sink (see RecordingTransport)."""
        if self.closed:
            raise RuntimeError("the router is closed")
        transport = RecordingTransport(self, sink, app_data=app_data)
        self._add(transport)
        return transport

    def _add(self, transport: Transport) -> None:
        self.transports[transport.id] = transport
        transport.on("close", lambda: self.transports.pop(transport.id, None))

    def adopt_producer(self, producer: Producer) -> None:
        """A producer of this router's room: one of its transports', or one piped in from
        another worker (see PipeTransport.receive). Forgotten when it closes."""
        self.producers[producer.id] = producer
        producer.on("close", lambda: self._producer_closed(producer))
        self.emit("producer", producer)

    def _producer_closed(self, producer: Producer) -> None:
        if self.producers.pop(producer.id, None) is not None:
            if self.active_speaker is producer:
                self.active_speaker = None
            self.emit("producerclose", producer)

    def tick_active_speaker(self) -> None:
        loudest: Producer | None = None
        loudest_level = SPEAKER_MAX_LEVEL
        for producer in self.producers.values():
            if producer.kind != "audio" or producer.closed:
                continue
            count, level, voice = producer.stream.take_audio_levels()
            # senders that set the voice-activity flag (browsers) must set it; aiortc never does
            active = voice >= SPEAKER_MIN_VOICE_PACKETS or (voice == 0 and count >= 5)
            if count and active and level < loudest_level:
                loudest, loudest_level = producer, level
        if loudest is not None and loudest is not self.active_speaker:
            self.active_speaker = loudest
            self.emit("activespeaker", loudest)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for transport in list(self.transports.values()):
            transport.close()
        for producer in list(self.producers.values()):  # piped in: on another router's pipe
            producer.close()
        self.emit("close")
