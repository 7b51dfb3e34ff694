"""Recording end to end, with real media tools: a Chromium publisher recorded and turned into
WebM by ``mediasrv-rec`` and checked with ffprobe; a server killed with SIGKILL mid-recording;
damaged journal tails; H.264 from ffmpeg over plain RTP to MP4; the audio/video offset of a
synced flash-and-beep source; a write error that stops the recording and not the forwarding."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import uvloop
from browser_support import PUBLISH_JS, chromium_page
from sfu_support import FrameCounter, PatternTrack, ToneTrack, started_server, wait_for, ws_url
from test_plain_rtp import free_udp_port

from mediasrv.client import Client
from mediasrv.config import RecordingConfig
from mediasrv.recording.journal import EVENT, RTP, read_journal
from mediasrv.room import Room

ADMIN = "admin-token-for-recording-e2e"
HERE = Path(__file__).resolve().parent


def run(coro: Any, limit: float = 90.0) -> None:
    uvloop.run(asyncio.wait_for(coro, limit))


def rec(*args: str) -> subprocess.CompletedProcess[str]:
    """The post-processor as users run it."""
    return subprocess.run(
        [sys.executable, "-m", "mediasrv.recording.rec_cli", "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format",
         "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(out)
    return result


def decode_errors(path: Path) -> str:
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.stderr.strip()


def stream(probe: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in probe["streams"] if s["codec_type"] == kind)
    return found


def journals_of(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.msrec"))


# ---- a Chromium publisher ----


FRAMES_JS = """
async () => {
  const stats = await window.client.sendPc.getStats();
  let frames = 0;
  stats.forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') frames += s.framesEncoded || 0;
  });
  return frames;
}
"""


def test_a_chromium_publisher_is_recorded_to_a_playable_webm(tmp_path: Path) -> None:
    async def main() -> None:
        server = await started_server(recording=RecordingConfig(directory=str(tmp_path)))
        try:
            async with chromium_page(server) as page:
                await page.evaluate(PUBLISH_JS, {"room": "visit"})
                room = server.rooms["visit"]
                await wait_for(lambda: len(room.router.producers) == 2, 15, "producers")

                def video_keyframes() -> int:
                    # looked up each time: a renegotiation may have replaced the producer
                    return sum(p.stats()["keyframes"] for p in room.router.producers.values()
                               if p.kind == "video" and not p.closed)  # fmt: skip

                try:
                    await wait_for(lambda: video_keyframes() > 0, 20, "video flowing")
                except AssertionError as failed:
                    # what the server saw, for a failure on a machine where it cannot be rerun
                    seen = {
                        "producers": [p.stats() for p in room.router.producers.values()],
                        "worker": server.workers[0].stats(),
                    }
                    raise AssertionError(f"{failed}: {seen}") from None
                await asyncio.sleep(1.0)
                recording = await room.start_recording()
                frames_before = await page.evaluate(FRAMES_JS)
                started = time.monotonic()
                await asyncio.sleep(5.0)
                frames_after = await page.evaluate(FRAMES_JS)
                room.stop_recording()
                recorded_for = time.monotonic() - started
        finally:
            await server.close()
        sent = frames_after - frames_before
        output = tmp_path / "visit.webm"
        done = rec(*map(str, journals_of(recording.directory)), "-o", str(output))
        assert done.returncode == 0, done.stderr
        probe = ffprobe(output)
        assert stream(probe, "video")["codec_name"] == "vp8"
        assert stream(probe, "audio")["codec_name"] == "opus"
        duration = float(probe["format"]["duration"])
        assert abs(duration - recorded_for) <= 0.5, (duration, recorded_for)
        frames = int(stream(probe, "video")["nb_read_frames"])
        assert frames >= 0.9 * sent, (frames, sent)
        assert decode_errors(output) == ""

    run(main())


SIMULCAST_JS = """
async ({room}) => {
  const { Client } = await import('/client/mediasrv-client.js');
  const client = await Client.connect(location.origin, {token: 't', room});
  window.client = client;
  const media = await navigator.mediaDevices.getUserMedia(
      {audio: false, video: {width: 1280, height: 720, frameRate: 15}});
  await client.publish(media, {simulcast: true});
  return client.peerId;
}
"""


def test_a_simulcast_publisher_is_recorded_at_its_top_layer(tmp_path: Path) -> None:
    async def main() -> None:
        server = await started_server(recording=RecordingConfig(directory=str(tmp_path)))
        try:
            async with chromium_page(server) as page:
                await page.evaluate(SIMULCAST_JS, {"room": "visit"})
                room = server.rooms["visit"]
                await wait_for(lambda: len(room.router.producers) == 1, 15, "the producer")
                (producer,) = room.router.producers.values()
                await wait_for(lambda: 2 in producer.active_layers(), 20, "the top layer")
                recording = await room.start_recording()
                (journal,) = recording.journals.values()
                await wait_for(lambda: journal.consumer.current_layer() == 2, 15, "layer 2")
                await asyncio.sleep(3.0)
                room.stop_recording()
        finally:
            await server.close()
        (path,) = journals_of(recording.directory)
        records = list(read_journal(path).records)
        layers = [json.loads(r.payload) for r in records if r.type == EVENT]
        assert {"event": "layer", "spatial": 2} in layers, layers
        output = tmp_path / "simulcast.webm"
        done = rec(str(path), "-o", str(output))
        assert done.returncode == 0, done.stderr
        video = stream(ffprobe(output), "video")
        assert (video["width"], video["height"]) == (1280, 720), video
        assert int(video["nb_read_frames"]) >= 30
        assert decode_errors(output) == ""

    run(main())


def test_a_room_of_two_publishers_is_composed_side_by_side(tmp_path: Path) -> None:
    async def main() -> None:
        server = await started_server(recording=RecordingConfig(directory=str(tmp_path)))
        clients = []
        try:
            for name in ("Nurse", "Client"):
                client = await Client.connect(ws_url(server), token="t", room="visit",
                                              display_name=name)  # fmt: skip
                clients.append(client)
                await client.publish([PatternTrack(), ToneTrack()])
            room = server.rooms["visit"]
            await wait_for(lambda: len(room.router.producers) == 4, 10, "four producers")
            recording = await room.start_recording()
            await asyncio.sleep(3.0)
            room.stop_recording()
        finally:
            for client in clients:
                await client.close()
            await server.close()
        output = tmp_path / "room.webm"
        done = rec("--room", str(recording.directory), "-o", str(output))
        assert done.returncode == 0, done.stderr
        probe = ffprobe(output)
        video = stream(probe, "video")
        assert (video["width"], video["height"]) == (1280, 360), video  # two 640x360 tiles
        assert stream(probe, "audio")["codec_name"] == "opus"
        assert 2.5 < float(probe["format"]["duration"]) < 4.0, probe["format"]
        assert decode_errors(output) == ""

    run(main())


# ---- a killed server ----

SERVER_SCRIPT = """
import asyncio, resource, signal, sys
from mediasrv.config import RecordingConfig, ServerConfig
from mediasrv.http.frontend import HttpFrontend
from mediasrv.media_server import MediaServer

async def main(directory, limit):
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails: EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    server = MediaServer(ServerConfig(port=0, admin_token=sys.argv[3],
                                      recording=RecordingConfig(directory=directory)))
    HttpFrontend(server)
    await server.start()
    print(server.http_address[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def server_process(
    directory: Path, file_limit: int = 0
) -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER_SCRIPT, str(directory), str(file_limit), ADMIN,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    return process, int(line)


async def admin(port: int, method: str, path: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method,
            f"http://127.0.0.1:{port}/admin{path}",
            headers={"Authorization": f"Bearer {ADMIN}"},
        ) as reply,
    ):
        return reply.status, await reply.json()


def test_a_server_killed_mid_recording_loses_at_most_the_last_second(tmp_path: Path) -> None:
    async def main() -> None:
        process, port = await server_process(tmp_path)
        publisher = await Client.connect(f"ws://127.0.0.1:{port}/ws", token="t", room="visit")
        try:
            await publisher.publish([PatternTrack(), ToneTrack()])
            await asyncio.sleep(1.0)
            status, started = await admin(port, "POST", "/rooms/visit/recording")
            assert status == 201 and len(started["producers"]) == 2, started
            started_at = time.time()
            await asyncio.sleep(4.0)
            process.send_signal(signal.SIGKILL)
            killed_at = time.time()
            await process.wait()
        finally:
            with contextlib.suppress(Exception):
                await publisher.close()
            if process.returncode is None:  # a failure before the kill: no stray server
                process.kill()
                await process.wait()
        (directory,) = [p for p in (tmp_path / "visit").iterdir() if p.is_dir()]
        manifest = json.loads((directory / "recording.json").read_text())
        assert manifest["stopped"] is None  # it never got to say so
        paths = journals_of(directory)
        assert len(paths) == 2
        for path in paths:
            journal = read_journal(path)
            rtp = [r for r in journal.records if r.type == RTP]
            last = rtp[-1].time_us / 1e6
            assert killed_at - last <= 1.0, f"{path.name}: lost {killed_at - last:.2f} s"
            assert rtp[0].time_us / 1e6 - started_at < 1.0
        output = tmp_path / "killed.webm"
        done = rec(*map(str, paths), "-o", str(output))
        assert done.returncode in (0, 1), done.stderr  # 1: a torn last record, reported
        probe = ffprobe(output)
        duration = float(probe["format"]["duration"])
        assert duration >= (killed_at - started_at) - 1.0 - 0.5, duration  # 0.5: first keyframe
        assert decode_errors(output) == ""

    run(main())


def test_damaged_journal_tails_are_processed_up_to_the_damage(tmp_path: Path) -> None:
    async def main() -> None:
        server = await started_server(recording=RecordingConfig(directory=str(tmp_path)))
        publisher = await Client.connect(ws_url(server), token="t", room="visit")
        try:
            await publisher.publish([PatternTrack()])
            room = server.rooms["visit"]
            await wait_for(lambda: len(room.router.producers) == 1, 10, "the producer")
            recording = await room.start_recording()
            await asyncio.sleep(3.0)
            room.stop_recording()
        finally:
            await publisher.close()
            await server.close()
        (path,) = journals_of(recording.directory)
        data = path.read_bytes()
        whole = read_journal(path)
        records = list(whole.records)
        full = tmp_path / "full.webm"
        assert rec(str(path), "-o", str(full)).returncode == 0
        full_frames = int(stream(ffprobe(full), "video")["nb_read_frames"])
        # a torn tail: the file ends in the middle of a record
        torn = tmp_path / "torn.msrec"
        cut = records[-40].offset + 7
        torn.write_bytes(data[:cut])
        out = tmp_path / "torn.webm"
        done = rec(str(torn), "-o", str(out))
        assert done.returncode == 1, done
        message = done.stdout + done.stderr
        assert f"record {records[-40].index} at byte {records[-40].offset}: truncated" in message
        assert f"{records[-40].index - 1} records before it are intact" in message
        frames = int(stream(ffprobe(out), "video")["nb_read_frames"])
        # every frame completed before the cut (a marker bit ends a frame) is in the output
        complete = sum(1 for r in records[:-40] if r.type == RTP and r.payload[1] & 0x80)
        assert complete - 2 <= frames <= complete < full_frames, (frames, complete)
        assert decode_errors(out) == ""
        # a flipped byte in the middle: everything before that record, and a CRC message
        middle = records[len(records) // 2]
        broken = bytearray(data)
        broken[middle.offset + 20] ^= 0xFF
        corrupt = tmp_path / "corrupt.msrec"
        corrupt.write_bytes(bytes(broken))
        out = tmp_path / "corrupt.webm"
        done = rec(str(corrupt), "-o", str(out))
        assert done.returncode == 1
        assert f"record {middle.index} at byte {middle.offset}: CRC mismatch" in (
            done.stdout + done.stderr
        )
        assert decode_errors(out) == ""
        # not a journal at all: exit 2, one clear line, no traceback
        junk = tmp_path / "junk.msrec"
        junk.write_bytes(b"GIF89a" + bytes(100))
        done = rec(str(junk), "-o", str(tmp_path / "junk.webm"))
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert "magic" in done.stderr

    run(main())


# ---- ffmpeg over plain RTP: H.264 to MP4, and the A/V offset ----


def ingest(room: Room, port: int, kind: str, mime: str, pt: int, ssrc: int) -> None:
    transport = room.router.create_plain_transport()
    transport.connect(("127.0.0.1", port))
    transport.produce(kind=kind, mime_type=mime, payload_type=pt, ssrc=ssrc,
                      app_data={"peerId": "ffmpeg"})  # fmt: skip


def rtp_url(worker_port: int, local: int) -> str:
    return (
        f"rtp://127.0.0.1:{worker_port}?localrtpport={local}&rtcpport={worker_port}&pkt_size=1200"
    )


async def ffmpeg(*args: str, limit: float = 30.0) -> tuple[int, bytes]:
    """Run ffmpeg to its end (killed if it outlives ``limit``): exit status and stderr."""
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", *args,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), limit)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stderr


def test_h264_from_ffmpeg_over_plain_rtp_is_recorded_to_mp4(tmp_path: Path) -> None:
    async def main() -> None:
        server = await started_server(recording=RecordingConfig(directory=str(tmp_path)))
        try:
            room = server.get_or_create_room("tv")
            port = free_udp_port()
            ingest(room, port, "video", "video/H264", 102, 3333)
            recording = await room.start_recording()
            status, stderr = await ffmpeg(
                "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "4",
                "-c:v", "libx264", "-profile:v", "baseline", "-tune", "zerolatency",
                "-g", "25", "-pix_fmt", "yuv420p", "-ssrc", "3333", "-payload_type", "102",
                "-f", "rtp", rtp_url(server.workers[0].port, port),
            )  # fmt: skip
            assert status == 0, stderr
            await asyncio.sleep(0.3)
            room.stop_recording()
        finally:
            await server.close()
        (path,) = journals_of(recording.directory)
        output = tmp_path / "tv.mp4"
        done = rec(str(path), "-o", str(output))
        assert done.returncode == 0, done.stderr
        probe = ffprobe(output)
        video = stream(probe, "video")
        assert video["codec_name"] == "h264" and (video["width"], video["height"]) == (320, 240)
        assert int(video["nb_read_frames"]) >= 0.9 * 4 * 25 - 25  # from its first keyframe
        assert abs(float(probe["format"]["duration"]) - 4.0) < 0.6
        assert decode_errors(output) == ""

    run(main())


def flash_and_beep_times(path: Path) -> tuple[list[float], list[float]]:
    """When the picture turns white and when a beep starts, in the file's own time."""
    flashes, beeps = [], []
    with av.open(str(path)) as container:
        dark = True
        for frame in container.decode(video=0):
            luma = float(frame.to_ndarray(format="gray").mean())
            if dark and luma > 128 and frame.time is not None:
                flashes.append(float(frame.time))
            dark = luma <= 128
    with av.open(str(path)) as container:
        quiet = True
        for chunk in container.decode(audio=0):
            samples = chunk.to_ndarray().astype(np.float64)
            if chunk.time is None:
                continue
            rate = chunk.sample_rate
            mono = samples.mean(axis=0) if samples.ndim > 1 else samples
            mono = mono.reshape(-1)
            for start in range(0, len(mono), 96):  # 2 ms windows
                level = float(np.abs(mono[start : start + 96]).max(initial=0.0))
                loud = level > 0.2 * (32767 if np.abs(mono).max() > 2 else 1)
                if quiet and loud:
                    beeps.append(float(chunk.time) + start / rate)
                quiet = not loud
    return flashes, beeps


def test_audio_and_video_are_aligned_within_100_ms(tmp_path: Path) -> None:
    async def main() -> None:
        server = await started_server(recording=RecordingConfig(directory=str(tmp_path)))
        try:
            room = server.get_or_create_room("sync")
            video_port, audio_port = free_udp_port(), free_udp_port()
            ingest(room, video_port, "video", "video/VP8", 101, 1111)
            ingest(room, audio_port, "audio", "audio/opus", 109, 2222)
            recording = await room.start_recording()
            worker = server.workers[0].port
            status, stderr = await ffmpeg(
                "-t", "6", "-f", "lavfi", "-i",
                "color=c=black:size=320x240:rate=30,"
                "drawbox=c=white:t=fill:enable='lt(mod(t\\,1)\\,0.1)'",
                "-t", "6", "-f", "lavfi", "-i",
                "aevalsrc='0.8*sin(2*PI*1000*t)*lt(mod(t\\,1)\\,0.1)':s=48000",
                "-map", "0:v", "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
                "-b:v", "300k", "-g", "15", "-ssrc", "1111", "-payload_type", "101",
                "-f", "rtp", rtp_url(worker, video_port),
                "-map", "1:a", "-c:a", "libopus", "-b:a", "64k", "-ssrc", "2222",
                "-payload_type", "109", "-f", "rtp", rtp_url(worker, audio_port),
            )  # fmt: skip
            assert status == 0, stderr
            await asyncio.sleep(0.3)
            room.stop_recording()
        finally:
            await server.close()
        output = tmp_path / "sync.webm"
        done = rec(*map(str, journals_of(recording.directory)), "-o", str(output))
        assert done.returncode == 0, done.stderr
        flashes, beeps = flash_and_beep_times(output)
        assert len(flashes) >= 4 and len(beeps) >= 4, (flashes, beeps)
        offsets = [min(abs(f - b) for b in beeps) for f in flashes]
        assert max(offsets) < 0.1, (offsets, flashes, beeps)

    run(main())


# ---- a write error ----


def test_a_write_error_stops_the_recording_and_not_the_forwarding(tmp_path: Path) -> None:
    async def main() -> None:
        process, port = await server_process(tmp_path, file_limit=300_000)
        url = f"ws://127.0.0.1:{port}/ws"
        publisher = await Client.connect(url, token="t", room="visit")
        watcher = await Client.connect(url, token="t", room="visit")
        states: list[dict[str, Any]] = []
        watcher.on("recordingState", states.append)
        counter = FrameCounter(watcher)
        try:
            await publisher.publish([PatternTrack(noisy=True)])
            await wait_for(lambda: counter.frames["video"] > 10, 15, "video at the watcher")
            status, _ = await admin(port, "POST", "/rooms/visit/recording")
            assert status == 201
            await wait_for(
                lambda: bool(states) and not states[-1]["recording"], 20, "the recording to stop"
            )
            assert states[-1]["reason"].startswith("write_error"), states[-1]
            status, stats = await admin(port, "GET", "/rooms/visit/recording")
            assert stats["writeErrors"] >= 1 and stats["recording"] is False
            before = counter.frames["video"]
            await asyncio.sleep(2.0)
            assert counter.frames["video"] >= before + 30, "forwarding stopped too"
        finally:
            await counter.close()
            for client in (watcher, publisher):
                with contextlib.suppress(Exception):
                    await client.close()
            process.kill()
            await process.wait()
        (directory,) = [p for p in (tmp_path / "visit").iterdir() if p.is_dir()]
        (path,) = journals_of(directory)
        journal = read_journal(path)
        assert journal.damage is None or "truncated" in journal.damage
        assert path.stat().st_size <= 300_000

    run(main())
