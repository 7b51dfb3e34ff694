"""Decoding frames with PyAV (room mode and audio transcoding)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext
from av.video.codeccontext import VideoCodecContext

from mediasrv.recording.frames import Frame
from mediasrv.recording.pcm_timeline import Samples

AUDIO_RATE = 48000


class AudioDecoder:
    """Opus frames to float32 samples at 48 kHz with a fixed channel count."""

    def __init__(self, codec_name: str, channels: int) -> None:
        self.channels = channels
        layout = "mono" if channels == 1 else "stereo"
        context = av.CodecContext.create(codec_name, "r")
        assert isinstance(context, AudioCodecContext)
        context.sample_rate = AUDIO_RATE
        context.layout = layout
        self._context = context
        self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=AUDIO_RATE)
        self.errors = 0

    def decode(self, frame: Frame) -> Samples | None:
        """The samples of one frame, shape (n, channels); None when it does not decode."""
        try:
            decoded = self._context.decode(av.Packet(frame.data))
            planes = [
                out.to_ndarray() for audio in decoded for out in self._resampler.resample(audio)
            ]
        except av.FFmpegError:
            self.errors += 1
            return None
        if not planes:
            return None
        return np.ascontiguousarray(np.concatenate(planes, axis=1).T, dtype=np.float32)


class VideoDecoder:
    """Video frames to decoded pictures; a picture's ``pts`` is its frame's RTP timestamp."""

    def __init__(self, codec_name: str) -> None:
        context = av.CodecContext.create(codec_name, "r")
        assert isinstance(context, VideoCodecContext)
        context.thread_type = "SLICE"  # no frame threading: a picture per frame, no delay
        self._context = context
        self.errors = 0

    def decode(self, frame: Frame | None) -> list[av.VideoFrame]:
        """The pictures a frame completes (None at the end: the pictures still held)."""
        try:
            if frame is None:
                decoded = self._context.decode(None)
            else:
                packet = av.Packet(frame.data)
                packet.pts = frame.ts
                packet.time_base = Fraction(1, 90000)
                decoded = self._context.decode(packet)
        except av.FFmpegError:
            self.errors += 1
            return []
        return decoded
