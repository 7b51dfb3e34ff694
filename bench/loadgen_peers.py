"""The load generator's peers (bench/loadgen.py): publishers that send pre-encoded media
(bench/media_clips.py) at the clips' timing through BenchPeers (bench/webrtc_peer.py), and
subscribers that count what arrives at the transport without decoding it.

Latency without touching the media: a publisher logs the send time of each payload that is
unique in its clips (``send_log``, by the payload's bytes — for VP8 those after the payload
descriptor, whose PictureID the server may rewrite); a sampling subscriber unprotects each
packet and looks its payload up in the log of the publisher its SSRC belongs to (from the
``a=ssrc:… msid:<publisher peer id>`` lines of the server's offer).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from dataclasses import dataclass

from bench.media_clips import SIMULCAST_RIDS, VP8_DESCRIPTOR_SIZE, Clip, MediaSet, vp8_descriptor
from bench.webrtc_peer import EXT_MID_ID, EXT_RID_ID, H264_PT, OPUS_PT, VP8_PT, BenchPeer, Link
from mediasrv import _core

TICK = 0.01  # seconds between the sender's wake-ups
MAX_LATE = 0.2  # a sender this far behind (a starved event loop) skips frames, never bursts
SSRC_RANGE = (0x10000, 0x7FFFFFFF)


@dataclass
class OutStream:
    """One RTP stream a publisher sends: a clip looped, its numbering and its counters."""

    clip: Clip
    ssrc: int
    payload_type: int
    video: bool
    vp8: bool
    extensions: list[tuple[int, bytes]] | None
    seq: int
    ts_base: int
    cursor: int  # the next frame of the clip
    frames: int = 0  # frames sent or skipped: the RTP timestamp and the schedule
    packets: int = 0
    failed: int = 0  # not sent: the socket's buffer was full
    skipped: int = 0  # frames skipped because the sender was late
    picture_id: int = 0
    want_keyframe: bool = False


class Publisher:
    """A BenchPeer that publishes one video track (one stream, or three RID layers) and
    optionally an Opus track, sending the clips' real payloads; answers PLI/FIR by jumping to
    the clip's next keyframe (as an encoder would make one)."""

    def __init__(
        self, url: str, room: str, media: MediaSet, codec: str, *, token: str, seed: int
    ) -> None:
        self.peer = BenchPeer(url, room, token=token, loopback_only=True)
        self.media = media
        self.codec = codec
        self.simulcast = len(media.video) > 1
        self.send_log: dict[bytes, int] = {}
        self.keyframe_requests = 0
        self._rng = random.Random(seed)
        self._link: Link | None = None
        self._task: asyncio.Task[None] | None = None
        self.streams: list[OutStream] = []

    def _stream(self, clip: Clip, payload_type: int, rid: bytes | None) -> OutStream:
        video = clip.codec != "opus"
        return OutStream(
            clip=clip,
            ssrc=self._rng.randint(*SSRC_RANGE),
            payload_type=payload_type,
            video=video,
            vp8=clip.codec == "vp8",
            extensions=[(EXT_MID_ID, b"0"), (EXT_RID_ID, rid)] if rid is not None else None,
            seq=self._rng.randrange(1 << 16),
            ts_base=self._rng.randrange(1 << 32),
            # publishers start at different places of the clip (not in lock step)
            cursor=self._rng.randrange(len(clip.frames)),
            picture_id=self._rng.randrange(1 << 15),
        )

    @property
    def peer_id(self) -> str:
        return self.peer.peer_id

    @property
    def top(self) -> OutStream:
        """The video stream subscribers receive (simulcast: the top layer)."""
        return self.streams[len(self.media.video) - 1]

    @property
    def audio(self) -> OutStream | None:
        return self.streams[-1] if self.media.audio is not None else None

    def expected_per_subscriber(self) -> int:
        """Packets sent so far that each subscriber of the room should receive."""
        audio = self.audio
        return self.top.packets + (audio.packets if audio is not None else 0)

    @property
    def sent(self) -> int:
        return sum(s.packets for s in self.streams)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.streams)

    @property
    def skipped(self) -> int:
        return sum(s.skipped for s in self.streams)

    async def start(self) -> None:
        pt = VP8_PT if self.codec == "vp8" else H264_PT
        if self.simulcast:
            rids = list(SIMULCAST_RIDS[: len(self.media.video)])
            self.streams = [
                self._stream(clip, pt, rid.encode())
                for clip, rid in zip(self.media.video, rids, strict=True)
            ]
        else:
            rids = None
            self.streams = [self._stream(self.media.video[0], pt, None)]
        if self.media.audio is not None:
            self.streams.append(self._stream(self.media.audio, OPUS_PT, None))
        audio = self.audio
        await self.peer.join(auto_subscribe=False)
        self._link = await self.peer.publish_media(
            video=self.codec,
            video_ssrc=self.streams[0].ssrc,
            rids=rids,
            audio_ssrc=audio.ssrc if audio is not None else None,
            stream_id=f"loadgen-{self.peer_id}",
        )
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        start = time.monotonic()
        while True:
            self._read_rtcp()
            elapsed = time.monotonic() - start
            for stream in self.streams:
                self._catch_up(stream, int(elapsed / stream.clip.interval) + 1)
            await asyncio.sleep(TICK)

    def _catch_up(self, stream: OutStream, due: int) -> None:
        late = due - stream.frames
        if late > max(2, int(MAX_LATE / stream.clip.interval)):
            skip = late - 1
            stream.skipped += skip
            stream.frames += skip
            stream.cursor = (stream.cursor + skip) % len(stream.clip.frames)
        while stream.frames < due:
            self._send_frame(stream)

    def _send_frame(self, stream: OutStream) -> None:
        link = self._link
        assert link is not None
        clip = stream.clip
        if stream.want_keyframe:
            stream.cursor = clip.next_keyframe(stream.cursor)
            stream.want_keyframe = False
        frame = clip.frames[stream.cursor]
        timestamp = stream.ts_base + stream.frames * clip.ticks_per_frame
        last = len(frame.payloads) - 1
        log = self.send_log
        for i, body in enumerate(frame.payloads):
            payload = vp8_descriptor(stream.picture_id, i == 0) + body if stream.vp8 else body
            now = time.monotonic_ns()
            sent = link.send_rtp(
                stream.ssrc,
                stream.seq,
                timestamp,
                payload,
                payload_type=stream.payload_type,
                marker=stream.video and i == last,
                extensions=stream.extensions,
            )
            stream.seq += 1
            if sent:
                stream.packets += 1
                if frame.logged[i]:
                    log[body] = now
            else:
                stream.failed += 1
        stream.picture_id = (stream.picture_id + 1) & 0x7FFF
        stream.cursor = (stream.cursor + 1) % len(clip.frames)
        stream.frames += 1

    def _read_rtcp(self) -> None:
        link = self._link
        if link is None or not link.rtcp:
            return
        compounds, link.rtcp = link.rtcp, []
        for data in compounds:
            for packet in _core.parse_rtcp(data).packets:
                if isinstance(packet, _core.RtcpPli):
                    ssrcs = {packet.media_ssrc}
                elif isinstance(packet, _core.RtcpFir):
                    ssrcs = {ssrc for ssrc, _ in packet.entries}
                else:
                    continue
                for stream in self.streams:
                    if stream.video and stream.ssrc in ssrcs:
                        stream.want_keyframe = True
                        self.keyframe_requests += 1

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.peer.close()


_SSRC_MSID = re.compile(r"a=ssrc:(\d+) msid:(\S+)")


class SendTimes:
    """A sampling subscriber's ``Link.send_time``: the send time of a received packet's payload
    from the log of the publisher its SSRC belongs to (None: unknown or not logged)."""

    def __init__(self, offer_sdp: str, publishers: dict[str, Publisher]) -> None:
        self.logs: dict[int, dict[bytes, int]] = {}
        for ssrc, stream_id in _SSRC_MSID.findall(offer_sdp):
            publisher = publishers.get(stream_id)
            if publisher is not None:
                self.logs[int(ssrc)] = publisher.send_log

    def __call__(self, rtp: bytes) -> int | None:
        if len(rtp) < 12:
            return None
        log = self.logs.get(int.from_bytes(rtp[8:12], "big"))
        if log is None:
            return None
        start = 12 + 4 * (rtp[0] & 0x0F)
        if rtp[0] & 0x10:
            if len(rtp) < start + 4:
                return None
            start += 4 + 4 * ((rtp[start + 2] << 8) | rtp[start + 3])
        if rtp[1] & 0x7F == VP8_PT:
            start += VP8_DESCRIPTOR_SIZE
        end = len(rtp) - (rtp[-1] if rtp[0] & 0x20 else 0)
        return log.get(rtp[start:end])


class Subscriber:
    """A BenchPeer that joins with auto-subscribe, answers the server's offers until it has
    every track of the room, and counts packets at the transport (``link.received``)."""

    def __init__(self, url: str, room: str, *, token: str) -> None:
        self.peer = BenchPeer(url, room, token=token, loopback_only=True)
        self.link: Link | None = None

    async def join(self, tracks: int) -> float:
        """Join, answer the first offer and connect (ICE, DTLS): the seconds that took — then
        answer renegotiations until ``tracks`` tracks are offered."""
        started = time.monotonic()
        await self.peer.join(auto_subscribe=True)
        link = await self.peer.answer_next_offer()
        link.measure = False  # count datagrams; a few samplers measure (see sample())
        self.link = link
        joined = time.monotonic() - started
        while link.remote_sdp.count("a=sendonly") < tracks:
            await self.peer.answer_renegotiation(link)
        return joined

    @property
    def received(self) -> int:
        return self.link.received if self.link is not None else 0

    def sample(self, publishers: dict[str, Publisher] | None) -> None:
        """Start (publishers given) or stop measuring latency at this subscriber."""
        link = self.link
        if link is None:
            return
        link.latencies_us.clear()
        link.rtcp.clear()
        if publishers is None:
            link.measure = False
            link.send_time = None
        else:
            link.send_time = SendTimes(link.remote_sdp, publishers)
            link.measure = True

    async def close(self) -> None:
        await self.peer.close()
