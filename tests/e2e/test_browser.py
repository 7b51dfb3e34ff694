"""End-to-end: headless Chromium pages (Playwright), the browser SDK and a real MediaServer.

Each test starts a MediaServer on loopback (HTTP port 0, media port 0) and one Chromium
(/usr/bin/chromium, fake camera and microphone, a fresh profile) in the same event loop; every page
is its own browser context that loads the server's origin and imports
``/client/mediasrv-client.js``. Assertions read the browsers' own ``getStats()`` numbers. Every
wait is bounded; on failure the message carries each page's peer-connection states and RTP
stats, the server's view of each peer, and the pages' console output.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError

from mediasrv.config import ServerConfig
from mediasrv.http.frontend import HttpFrontend
from mediasrv.media_server import MediaServer

log = logging.getLogger("tests.e2e")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]
STEP_TIMEOUT = 15.0  # any single wait
TEST_TIMEOUT = 55.0  # a whole test, browser start to cleanup
POLL_INTERVAL = 0.2
FAKE_CAMERA_WIDTH = 640

# Joins the room from a page: getUserMedia (fake devices), Client.connect, event recording,
# publish. Returns the peer id and the local video size.
JOIN_JS = """
async ({url, room, name, publish, rtcConfiguration}) => {
  const { Client } = await import('/client/mediasrv-client.js');
  window.received = [];
  window.events = [];
  const client = await Client.connect(
      url, {token: 'test', room, displayName: name, rtcConfiguration: rtcConfiguration ?? {}});
  window.client = client;
  client.on('data', (label, message, peerId) => window.received.push([label, message, peerId]));
  for (const name of ['peerJoined', 'peerLeft', 'producerAdded', 'producerClosed',
                      'consumerClosed', 'disconnected', 'close', 'iceRestart']) {
    client.on(name, (params) => window.events.push([name, params ?? null]));
  }
  window.activeSpeaker = null;  // changes often: only the latest is kept
  client.on('activeSpeaker', (params) => { window.activeSpeaker = params; });
  client.on('track', (track, info, stream) => {
    window.events.push(['track', {kind: track.kind, info}]);
    // Chrome decodes (and counts samples of) remote audio only when something plays it
    const element = document.createElement(track.kind);
    element.autoplay = true;
    element.srcObject = new MediaStream([track]);
    document.body.append(element);
  });
  let width = null;
  let producers = [];
  if (publish) {
    const local = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
    window.local = local;
    width = local.getVideoTracks()[0].getSettings().width;
    producers = await client.publish(local);
  }
  return {peerId: client.peerId, room: client.room, peers: client.peers.map((p) => p.id),
          width, producers};
}
"""

# Per remote peer and kind: the inbound-rtp numbers of the receiver of that track.
SAMPLE_JS = """
async () => {
  const client = window.client;
  const out = {};
  if (!client || !client.recvPc) return out;
  for (const {track, info} of client.tracks) {
    const receiver = client.recvPc.getReceivers().find((r) => r.track === track);
    if (!receiver) continue;
    let inbound = null;
    (await receiver.getStats()).forEach((s) => { if (s.type === 'inbound-rtp') inbound = s; });
    const entry = {infoKind: info.kind ?? null, consumerId: info.consumerId ?? null,
                   producerId: info.producerId ?? null, mid: info.mid ?? null,
                   trackState: track.readyState, inbound: null};
    if (inbound) {
      entry.inbound = {
        packetsReceived: inbound.packetsReceived ?? 0, bytesReceived: inbound.bytesReceived ?? 0,
        packetsLost: inbound.packetsLost ?? 0, framesDecoded: inbound.framesDecoded ?? null,
        frameWidth: inbound.frameWidth ?? null, frameHeight: inbound.frameHeight ?? null,
        totalSamplesReceived: inbound.totalSamplesReceived ?? null,
        audioLevel: inbound.audioLevel ?? null, codecId: inbound.codecId ?? null,
      };
    }
    const peer = info.peerId ?? '?';
    out[peer] = out[peer] ?? {};
    out[peer][track.kind] = entry;
  }
  return out;
}
"""

# Everything useful when something did not work: connection states, RTP and candidate-pair
# stats of both peer connections, the server's stats of this peer, recorded events.
DIAGNOSE_JS = """
async () => {
  const client = window.client;
  if (!client) return {client: null};
  const summarize = async (pc) => {
    if (!pc) return null;
    const stats = [];
    (await pc.getStats()).forEach((s) => {
      if (['inbound-rtp', 'outbound-rtp', 'transport'].includes(s.type) ||
          (s.type === 'candidate-pair' && s.nominated)) {
        const keep = {};
        for (const key of ['type', 'kind', 'mid', 'rid', 'ssrc', 'packetsReceived',
          'packetsSent', 'bytesReceived', 'bytesSent', 'framesDecoded', 'framesEncoded',
          'frameWidth', 'frameHeight', 'totalSamplesReceived', 'audioLevel', 'nackCount',
          'pliCount', 'firCount', 'qualityLimitationReason', 'dtlsState', 'iceState',
          'selectedCandidatePairChanges', 'state', 'requestsSent', 'responsesReceived',
          'currentRoundTripTime', 'availableOutgoingBitrate']) {
          if (s[key] !== undefined) keep[key] = s[key];
        }
        stats.push(keep);
      }
    });
    return {connectionState: pc.connectionState, iceConnectionState: pc.iceConnectionState,
            signalingState: pc.signalingState, stats};
  };
  let server = null;
  try { server = await client.stats(); } catch (e) { server = String(e); }
  return {
    peerId: client.peerId, closed: client.closed,
    sendPc: await summarize(client.sendPc), recvPc: await summarize(client.recvPc),
    tracks: client.tracks.map(({track, info}) => ({kind: track.kind, state: track.readyState,
                                                  muted: track.muted, info})),
    server, events: window.events.slice(-40), activeSpeaker: window.activeSpeaker,
    received: window.received,
  };
}
"""


class BrowserPeer:
    """One page (its own browser context) in the room."""

    def __init__(self, name: str, context: BrowserContext, page: Page) -> None:
        self.name = name
        self.context = context
        self.page = page
        self.peer_id = ""
        self.width: int | None = None
        self.console: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        self.console.append(f"{message.type}: {message.text}")

    async def eval(self, script: str, arg: Any = None) -> Any:
        """page.evaluate, bounded: a promise that never settles fails the step."""
        return await asyncio.wait_for(self.page.evaluate(script, arg), STEP_TIMEOUT)

    async def join(
        self,
        url: str,
        room: str,
        *,
        publish: bool = True,
        rtc_configuration: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.eval(
            JOIN_JS,
            {
                "url": url,
                "room": room,
                "name": self.name,
                "publish": publish,
                "rtcConfiguration": rtc_configuration or {},
            },
        )
        self.peer_id = result["peerId"]
        self.width = result["width"]
        return result

    async def sample(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.eval(SAMPLE_JS)
        return result

    async def received(self) -> list[list[Any]]:
        result: list[list[Any]] = await self.eval("() => window.received")
        return result

    async def send_data(self, label: str, message: str) -> None:
        await self.eval(
            "([label, message]) => window.client.sendData(label, message)", [label, message]
        )

    async def diagnose(self) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await asyncio.wait_for(self.page.evaluate(DIAGNOSE_JS), 5)
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["console"] = self.console[-40:]
        return result


class Harness:
    """A MediaServer and one Chromium; pages join through new_peer()."""

    def __init__(self, server: MediaServer, browser: Browser) -> None:
        self.server = server
        self.browser = browser
        self.peers: list[BrowserPeer] = []
        assert server.http_address is not None
        host, port = server.http_address
        self.http_url = f"http://{host}:{port}"

    async def new_peer(self, name: str) -> BrowserPeer:
        context = await self.browser.new_context()
        page = await context.new_page()
        peer = BrowserPeer(name, context, page)
        self.peers.append(peer)
        await page.goto(self.http_url + "/healthz")
        return peer

    def server_view(self) -> dict[str, Any]:
        return {
            "server": self.server.stats(),
            "rooms": {
                room_id: {peer_id: peer.stats() for peer_id, peer in room.peers.items()}
                for room_id, room in self.server.rooms.items()
            },
        }

    async def diagnose(self) -> str:
        report: dict[str, Any] = {"server": self.server_view()}
        for peer in self.peers:
            report[f"page {peer.name} ({peer.peer_id})"] = await peer.diagnose()
        return json.dumps(report, indent=1, default=str)


@contextlib.asynccontextmanager
async def harness(
    config: ServerConfig | None = None, *, extra_args: tuple[str, ...] = ()
) -> AsyncIterator[Harness]:
    """A server (port 0, or the config given) and one Chromium (with extra_args besides the
    usual flags)."""
    server = MediaServer(config or ServerConfig(port=0))
    HttpFrontend(server)
    await server.start()
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[*CHROMIUM_ARGS, *extra_args],
                headless=True,
                timeout=15_000,
            )
            h = Harness(server, browser)
            try:
                yield h
            except (AssertionError, TimeoutError, PlaywrightError) as exc:
                diagnosis = await h.diagnose()
                raise AssertionError(f"{exc}\n\ndiagnosis:\n{diagnosis}") from exc
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(browser.close(), 10)
    finally:
        await server.close()


def run(body: Callable[[], Awaitable[None]]) -> None:
    """Run one async test body on a fresh event loop, bounded in time."""

    async def bounded() -> None:
        await asyncio.wait_for(body(), TEST_TIMEOUT)

    asyncio.run(bounded())


async def poll(
    what: str,
    probe: Callable[[], Awaitable[tuple[bool, Any]]],
    limit: float = STEP_TIMEOUT,
) -> Any:
    """Call probe() until it reports success; its detail is returned, or shown after `limit`
    seconds."""
    deadline = time.monotonic() + limit
    while True:
        ok, detail = await probe()
        if ok:
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what}: not within {limit:.0f} s; last seen:\n{json.dumps(detail, indent=1)}"
            )
        await asyncio.sleep(POLL_INTERVAL)


def _media_flowing(
    sample: dict[str, Any], senders: list[BrowserPeer], base: dict[str, Any] | None
) -> bool:
    """Video and audio from every sender, decoding (and further along than `base`)."""
    for sender in senders:
        tracks = sample.get(sender.peer_id) or {}
        video = (tracks.get("video") or {}).get("inbound")
        audio = (tracks.get("audio") or {}).get("inbound")
        if not video or not audio:
            return False
        if not video["framesDecoded"] or not audio["totalSamplesReceived"]:
            return False
        if base is not None:
            before = base[sender.peer_id]
            if video["framesDecoded"] <= before["video"]["inbound"]["framesDecoded"]:
                return False
            if audio["totalSamplesReceived"] <= before["audio"]["inbound"]["totalSamplesReceived"]:
                return False
            if video["frameWidth"] != sender.width or audio["audioLevel"] is None:
                return False
    return True


async def expect_media(receiver: BrowserPeer, senders: list[BrowserPeer]) -> dict[str, Any]:
    """receiver decodes every sender's video at the sender's width and plays its audio: frames
    decoded and audio samples received grow between two samples."""

    async def decoding() -> tuple[bool, Any]:
        sample = await receiver.sample()
        return _media_flowing(sample, senders, None), sample

    base = await poll(f"{receiver.name} receives media from every other page", decoding)

    async def growing() -> tuple[bool, Any]:
        sample = await receiver.sample()
        return _media_flowing(sample, senders, base), {"base": base, "now": sample}

    names = ", ".join(s.name for s in senders)
    result = await poll(f"{receiver.name}: media from {names} keeps flowing", growing)
    now: dict[str, Any] = result["now"]
    for sender in senders:
        for kind in ("audio", "video"):
            entry = now[sender.peer_id][kind]
            assert entry["infoKind"] == kind, f"{receiver.name}: consumer info {entry} for {kind}"
            assert entry["consumerId"] and entry["producerId"], entry
        video = now[sender.peer_id]["video"]["inbound"]
        assert video["frameWidth"] == FAKE_CAMERA_WIDTH, video
        assert isinstance(now[sender.peer_id]["audio"]["inbound"]["audioLevel"], (int, float))
    return now


async def expect_data(receiver: BrowserPeer, label: str, message: str, sender: BrowserPeer) -> None:
    async def arrived() -> tuple[bool, Any]:
        received = await receiver.received()
        return [label, message, sender.peer_id] in received, received

    await poll(f"{receiver.name} receives {message!r} from {sender.name}", arrived)


def test_two_pages_exchange_media_and_data_then_a_late_joiner_sees_both() -> None:
    async def body() -> None:
        async with harness() as h:
            room = "e2e-room"
            a = await h.new_peer("A")
            b = await h.new_peer("B")
            # the SDK normalizes the server URL: an http origin, and the ws endpoint itself
            joined_a = await a.join(h.http_url, room)
            joined_b = await b.join(h.http_url.replace("http://", "ws://") + "/ws", room)
            assert a.width == b.width == FAKE_CAMERA_WIDTH, (a.width, b.width)
            assert joined_a["peers"] == [] and joined_b["peers"] == [a.peer_id], (
                joined_a,
                joined_b,
            )
            assert {p["kind"] for p in joined_a["producers"]} == {"audio", "video"}, joined_a
            peers = h.server.rooms[room].peers
            assert set(peers) == {a.peer_id, b.peer_id}
            # join carried the codecs Chrome decodes (RTCRtpReceiver.getCapabilities)
            codecs = peers[a.peer_id].receive_codecs
            assert codecs is not None and {"audio/opus", "video/vp8"} <= codecs, codecs
            assert not codecs & {"video/rtx", "video/red", "video/ulpfec"}, codecs

            started = time.monotonic()
            await expect_media(a, [b])
            await expect_media(b, [a])
            log.info("A and B decode each other after %.1f s", time.monotonic() - started)

            await a.send_data("chat", "hi from A")
            await expect_data(b, "chat", "hi from A", a)
            await b.send_data("chat", "hi from B")
            await expect_data(a, "chat", "hi from B", b)

            # the server's view through the SDK's stats(): both producers, both consumers
            stats = await a.eval("() => window.client.stats()")
            assert len(stats["producers"]) == 2 and len(stats["consumers"]) == 2, stats
            assert stats["sendTransport"]["dtlsState"] == "connected", stats

            c = await h.new_peer("C")
            joined_c = await c.join(h.http_url + "/", room)
            assert sorted(joined_c["peers"]) == sorted([a.peer_id, b.peer_id]), joined_c
            started = time.monotonic()
            await expect_media(c, [a, b])
            await expect_media(a, [b, c])
            await expect_media(b, [a, c])
            log.info("the late joiner decodes both after %.1f s", time.monotonic() - started)

            # data reaches the late joiner, on channels opened before it joined and after
            await a.send_data("chat", "hi C, from A")
            await expect_data(c, "chat", "hi C, from A", a)
            await c.send_data("chat", "hi from C")
            await expect_data(a, "chat", "hi from C", c)
            await expect_data(b, "chat", "hi from C", c)

            events = await a.eval("() => window.events.map((e) => e[0])")
            assert events.count("peerJoined") == 2, events
            assert events.count("track") == 4, events

    run(body)


def test_sdk_errors_carry_protocol_codes() -> None:
    async def body() -> None:
        async with harness() as h:
            peer = await h.new_peer("X")
            result = await peer.eval(
                """async (origin) => {
                  const sdk = await import('/client/mediasrv-client.js');
                  const codeOf = async (promise) => {
                    try { await promise; return null; } catch (e) { return e.code ?? String(e); }
                  };
                  const urls = [origin, origin + '/', origin.replace('http', 'ws') + '/ws',
                                'https://example.com:8443/sfu'].map(sdk.signalingUrl);
                  const badRoom = await codeOf(
                    sdk.Client.connect(origin, {token: 't', room: ''}));
                  const client = await sdk.Client.connect(origin, {token: 't', room: 'solo'});
                  const unknownProducer = await codeOf(client.subscribe('nope'));
                  const unknownConsumer = await codeOf(client.pauseConsumer('nope'));
                  const state = client.sendPc.connectionState;
                  await client.close();
                  const afterClose = await codeOf(client.stats());
                  return {urls, badRoom, unknownProducer, unknownConsumer, state, afterClose};
                }""",
                h.http_url,
            )
            ws = h.http_url.replace("http://", "ws://") + "/ws"
            assert result["urls"] == [ws, ws, ws, "wss://example.com:8443/sfu/ws"], result
            assert result["badRoom"] == "invalid_params", result
            assert result["unknownProducer"] == "unknown_producer", result
            assert result["unknownConsumer"] == "unknown_consumer", result
            assert result["state"] == "connected", result
            assert result["afterClose"] == "closed", result

    run(body)


def test_pause_resume_then_unpublish_and_publish_again() -> None:
    async def body() -> None:
        async with harness() as h:
            a = await h.new_peer("A")
            b = await h.new_peer("B")
            await a.join(h.http_url, "e2e-pause")
            await b.join(h.http_url, "e2e-pause")
            await expect_media(b, [a])

            consumer_id = await b.eval(
                "() => window.client.tracks.find((t) => t.track.kind === 'video').info.consumerId"
            )
            await b.eval("(id) => window.client.pauseConsumer(id)", consumer_id)
            previous: list[int] = []

            async def stalled() -> tuple[bool, Any]:
                sample = await b.sample()
                frames = sample[a.peer_id]["video"]["inbound"]["framesDecoded"]
                previous.append(frames)
                await asyncio.sleep(0.3)
                return len(previous) >= 3 and len(set(previous[-3:])) == 1, previous

            await poll("B's video from A stops while its consumer is paused", stalled)
            await b.eval("(id) => window.client.resumeConsumer(id)", consumer_id)
            await expect_media(b, [a])  # decoding again: the server restarts at a keyframe

            # A stops sending video: B's consumer closes and its track leaves client.tracks
            await a.eval("() => window.client.unpublish(window.local.getVideoTracks()[0])")

            async def closed() -> tuple[bool, Any]:
                events = await b.eval("() => window.events.map((e) => e[0])")
                kinds = await b.eval("() => window.client.tracks.map((t) => t.track.kind).sort()")
                done = "consumerClosed" in events and "producerClosed" in events
                return done and kinds == ["audio"], {"events": events, "tracks": kinds}

            await poll("B learns that A's video is gone", closed)

            # and publishes a new camera track: B decodes it (a new m-line on B's receive side)
            await a.eval(
                """async () => {
                  window.local = await navigator.mediaDevices.getUserMedia({video: true});
                  await window.client.publish(window.local);
                }"""
            )
            await expect_media(b, [a])
            state = await b.eval("() => window.client.recvPc.signalingState")
            assert state == "stable", state

    run(body)


def test_ffmpeg_over_plain_rtp_reaches_a_browser() -> None:
    """ffmpeg publishes VP8 and Opus over PlainRtpTransports (`ffmpeg -re ... -f rtp`); a
    Chromium page that joins the room decodes the video and plays the audio."""

    async def body() -> None:
        async with harness() as h:
            room = h.server.get_or_create_room("e2e-ffmpeg")
            worker_port = h.server.workers[0].port
            ports = []
            for kind, mime, pt, ssrc in (("video", "video/VP8", 101, 1111),
                                         ("audio", "audio/opus", 109, 2222)):  # fmt: skip
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.bind(("127.0.0.1", 0))
                    port = probe.getsockname()[1]
                ingest = room.router.create_plain_transport()
                ingest.connect(("127.0.0.1", port))
                ingest.produce(kind=kind, mime_type=mime, payload_type=pt, ssrc=ssrc,
                               app_data={"peerId": "ffmpeg"})  # fmt: skip
                ports.append(port)

            def url(local: int) -> str:
                return (f"rtp://127.0.0.1:{worker_port}?localrtpport={local}"
                        f"&rtcpport={worker_port}&pkt_size=1200")  # fmt: skip

            ffmpeg = await asyncio.create_subprocess_exec(
                "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
                "-f", "lavfi", "-i", "testsrc=size=640x480:rate=30",
                "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "30",
                "-map", "0:v", "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
                "-b:v", "600k", "-g", "30", "-ssrc", "1111", "-payload_type", "101",
                "-f", "rtp", url(ports[0]),
                "-map", "1:a", "-c:a", "libopus", "-ac", "2", "-b:a", "48k", "-ssrc", "2222",
                "-payload_type", "109", "-f", "rtp", url(ports[1]),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            try:
                viewer = await h.new_peer("viewer")
                await viewer.join(h.http_url, "e2e-ffmpeg", publish=False)
                source = BrowserPeer("ffmpeg", viewer.context, viewer.page)
                source.peer_id, source.width = "ffmpeg", FAKE_CAMERA_WIDTH
                await expect_media(viewer, [source])
            finally:
                if ffmpeg.returncode is None:
                    ffmpeg.kill()
                _, stderr = await ffmpeg.communicate()
            assert not stderr.strip(), stderr.decode(errors="replace")

    run(body)
