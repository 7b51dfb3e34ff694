"""ffmpeg publishes VP8 and Opus over PlainRtpTransports; a WebRTC subscriber decodes them."""

from __future__ import annotations

import asyncio
import socket
import subprocess

import pytest
import uvloop
from sfu_support import FrameCounter, started_server, wait_for, ws_url

from mediasrv.client import Client


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ffmpeg_rtp(worker_port: int, video_port: int, audio_port: int, seconds: int) -> list[str]:
    def url(local: int) -> str:
        return (
            f"rtp://127.0.0.1:{worker_port}?localrtpport={local}&rtcpport={worker_port}"
            "&pkt_size=1200"
        )

    return [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds),
        "-map", "0:v", "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
        "-b:v", "400k", "-g", "15", "-ssrc", "1111", "-payload_type", "101", "-f", "rtp",
        url(video_port),
        "-map", "1:a", "-c:a", "libopus", "-ac", "2", "-b:a", "48k", "-ssrc", "2222",
        "-payload_type", "109", "-f", "rtp", url(audio_port),
    ]  # fmt: skip


def test_ffmpeg_ingest_reaches_a_webrtc_subscriber() -> None:
    async def main() -> None:
        server = await started_server()
        worker = server.workers[0]
        room = server.get_or_create_room("tv")
        video_port, audio_port = free_udp_port(), free_udp_port()
        video_in = room.router.create_plain_transport()
        video_in.connect(("127.0.0.1", video_port))
        video_in.produce(kind="video", mime_type="video/VP8", payload_type=101, ssrc=1111,
                         app_data={"peerId": "ffmpeg"})  # fmt: skip
        audio_in = room.router.create_plain_transport()
        audio_in.connect(("127.0.0.1", audio_port))
        audio_in.produce(kind="audio", mime_type="audio/opus", payload_type=109, ssrc=2222,
                         app_data={"peerId": "ffmpeg"})  # fmt: skip
        ffmpeg = await asyncio.create_subprocess_exec(
            *ffmpeg_rtp(worker.port, video_port, audio_port, 15),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        subscriber = await Client.connect(ws_url(server), token="t", room="tv")
        counter = FrameCounter(subscriber)
        try:
            await wait_for(
                lambda: counter.frames["video"] >= 45 and counter.frames["audio"] >= 75,
                15,
                "ffmpeg's video and audio decoded at the subscriber",
            )
            assert counter.sizes == {(320, 240)}
            assert {i["peerId"] for i in counter.infos} == {"ffmpeg"}
        finally:
            if ffmpeg.returncode is None:
                ffmpeg.kill()
            _, stderr = await ffmpeg.communicate()
            await counter.close()
            await subscriber.close()
            await server.close()
        assert not stderr.strip(), stderr.decode(errors="replace")

    uvloop.run(asyncio.wait_for(main(), 60))


def test_plain_transport_rejects_bad_arguments() -> None:
    async def main() -> None:
        server = await started_server()
        try:
            router = server.get_or_create_room("r").router
            transport = router.create_plain_transport()
            with pytest.raises(ValueError, match="remote must be"):
                transport.connect(("127.0.0.1", 0))
            with pytest.raises(ValueError, match="unsupported codec 'video/AV1'"):
                transport.produce(kind="video", mime_type="video/AV1", payload_type=96, ssrc=1)
            with pytest.raises(ValueError, match="payload type 200"):
                transport.produce(kind="video", mime_type="video/VP8", payload_type=200, ssrc=1)
            transport.close()
            transport.close()  # idempotent
            with pytest.raises(RuntimeError, match="closed"):
                transport.produce(kind="video", mime_type="video/VP8", payload_type=96, ssrc=1)
        finally:
            await server.close()

    uvloop.run(main())
