"""Recording in the server: real aiortc publishers, the data plane's journal sink, journals on
disk read back with the reference reader; control through the Python API and signaling, the
``authorize_recording`` gate (a consent plugin), announcements to peers, producers published
later, the room closing, and the C writer checked byte for byte against the reference one."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvloop
from sfu_support import Harness, PatternTrack, ToneTrack, wait_for

from mediasrv import _core
from mediasrv.client import Client, SignalingError
from mediasrv.config import RecordingConfig
from mediasrv.plugin import Denied, Plugin
from mediasrv.recording.journal import EVENT, RTP, SR, decode_sr, encode_record, read_journal
from mediasrv.recording.room_recording import MANIFEST, room_directory
from mediasrv.room import Room

TIMEOUT = 60.0


def run(coro: Any) -> None:
    uvloop.run(asyncio.wait_for(coro, TIMEOUT))


def test_the_data_plane_writes_the_reference_bytes() -> None:
    sink = _core.JournalSink()
    cases = [
        (RTP, 1_763_900_000_123_456, bytes(range(12)) + b"payload" * 100),
        (SR, 1, (0x1234_5678_9ABC_DEF0).to_bytes(8, "big") + (42).to_bytes(4, "big")),
        (EVENT, 2**63, b'{"event":"stop","reason":"stopped"}'),
        (EVENT, 0, b""),
    ]
    for record_type, time_us, payload in cases:
        sink.append(record_type, payload, time_us)
    assert sink.take() == b"".join(encode_record(t, us, p) for t, us, p in cases)
    assert sink.records == 4 and sink.pending() == 0 and sink.take() == b""
    small = _core.JournalSink(2048)
    small.append(RTP, bytes(1500), 0)
    small.append(RTP, bytes(1500), 0)  # past the limit: dropped and counted
    assert small.records == 1 and small.dropped == 1
    with pytest.raises(ValueError):
        sink.append(0, b"", 0)


def journals(directory: Path) -> dict[str, Any]:
    return {p.name: read_journal(p) for p in sorted(directory.glob("*.msrec"))}


def test_a_room_recording_journals_every_producer(tmp_path: Path) -> None:
    async def main() -> None:
        async with Harness(recording=RecordingConfig(directory=str(tmp_path))) as h:
            publisher = await h.client("visit", display_name="Nurse")
            watcher = await h.client("visit", display_name="Client")
            states: list[dict[str, Any]] = []
            watcher.on("recordingState", states.append)
            await publisher.publish([PatternTrack(), ToneTrack()])
            room = h.server.rooms["visit"]
            await wait_for(lambda: len(room.router.producers) == 2, 10, "two producers")
            recording = await room.start_recording()
            assert recording.directory == tmp_path / room_directory("visit") / recording.id
            await wait_for(lambda: bool(states) and states[-1]["recording"], 5, "the announcement")
            metrics = h.server.metrics_text().decode()
            assert "mediasrv_recordings_active 1.0" in metrics
            assert 'mediasrv_recording_journals_active{kind="video"} 1.0' in metrics
            assert sorted(states[-1]["producers"]) == sorted(room.router.producers)
            await asyncio.sleep(3.0)
            video = next(p for p in room.router.producers.values() if p.kind == "video")
            stopped = room.stop_recording()
            assert stopped is recording and not recording.active
            await recording.settled()  # fsyncs and the manifest, done in a thread
            await wait_for(lambda: not states[-1]["recording"], 5, "the stop announcement")
            assert states[-1]["reason"] == "stopped"
            found = journals(recording.directory)
            assert set(found) == {f"{p.id}.{p.kind}.msrec" for p in room.router.producers.values()}
            for journal in found.values():
                assert journal.damage is None, journal.damage
                meta = journal.metadata
                assert meta["recording"] == recording.id and meta["room"] == "visit"
                assert meta["displayName"] == "Nurse"
                records = list(journal.records)
                kinds = [r.type for r in records]
                assert kinds[0] == EVENT and json.loads(records[0].payload)["event"] == "start"
                assert json.loads(records[-1].payload) == {"event": "stop", "reason": "stopped"}
                rtp = [r for r in records if r.type == RTP]
                # about 3 s of media: 30 fps video (1+ packets a frame), 50 audio packets/s
                assert len(rtp) >= (80 if meta["kind"] == "video" else 130), len(rtp)
                times = [r.time_us for r in rtp]
                assert times == sorted(times)
                assert 2.5 < (times[-1] - times[0]) / 1e6 < 4.0
                seqs = [int.from_bytes(r.payload[2:4], "big") for r in rtp]
                assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
                if meta["kind"] == "video":
                    assert meta["mimeType"] == "video/VP8" and meta["clockRate"] == 90000
                    # the journal starts on a keyframe
                    first = rtp[0].payload
                    descriptor = _core.Vp8PayloadDescriptor.parse(first[12:])
                    assert descriptor.start_of_partition
                    assert not first[12 + descriptor.size] & 0x01  # P bit clear: a keyframe
                srs = [decode_sr(r.payload) for r in records if r.type == SR]
                assert srs, f"no sender report in the {meta['kind']} journal"
            manifest = json.loads((recording.directory / MANIFEST).read_text())
            assert manifest["stopReason"] == "stopped" and len(manifest["journals"]) == 2
            # the metrics saw it: bytes written (all but the headers), a stop by reason
            metrics = h.server.metrics_text().decode()
            written = sum(j["bytes"] for j in manifest["journals"])
            line = next(x for x in metrics.splitlines() if x.startswith("mediasrv_recording_bytes"))
            assert 0.9 * written < float(line.split()[-1]) <= written, line
            assert 'mediasrv_recordings_stopped_total{reason="stopped"} 1.0' in metrics
            assert "mediasrv_recordings_active 0.0" in metrics
            assert all(j["stopped"] and j["bytes"] > 1000 for j in manifest["journals"])
            assert video.stats()["packets"] > 0

    run(main())


class ConsentPlugin(Plugin):
    """Recording needs every participant's consent, given over signaling."""

    name = "consent"
    namespace = "consent"

    def __init__(self, server: Any, config: Any) -> None:
        super().__init__(server, config)
        self.given: set[str] = set()

    async def handle_request(self, peer: Any, method: str, params: dict[str, Any]) -> Any:
        if method == "give" and peer is not None:
            self.given.add(peer.id)
            return {}
        raise Denied("unknown_method", method)

    async def authorize_recording(self, room: Room, producers: list[Any]) -> None:
        missing = [p.display_name for p in room.peers.values() if p.id not in self.given]
        if missing:
            raise Denied("consent_missing", f"not consented yet: {', '.join(sorted(missing))}")


def test_signaling_control_with_consent_and_late_producers(tmp_path: Path) -> None:
    async def main() -> None:
        config = RecordingConfig(directory=str(tmp_path))
        async with Harness(plugins=[ConsentPlugin], recording=config) as h:
            plugin = h.server.plugins.get("consent")
            assert isinstance(plugin, ConsentPlugin)
            nurse = await h.client("visit", display_name="Nurse")
            client = await h.client("visit", display_name="Client")
            await nurse.publish([ToneTrack()])
            await nurse.request("consent.give", {})
            with pytest.raises(SignalingError) as refused:
                await nurse.request("startRecording", {})
            assert refused.value.code == "consent_missing"
            assert "Client" in str(refused.value)
            await client.request("consent.give", {})
            started = await nurse.start_recording()
            assert started["recording"] is True and len(started["producers"]) == 1
            with pytest.raises(SignalingError) as twice:
                await nurse.request("startRecording", {})
            assert twice.value.code == "already_recording"
            # a producer published during a whole-room recording is recorded too
            await client.publish([PatternTrack()])
            room = h.server.rooms["visit"]
            recording = room.recording
            assert recording is not None
            await wait_for(lambda: len(recording.journals) == 2, 10, "the late producer")
            # a peer joining now hears the state in its join result
            late = await Client.connect(h.url, token="t", room="visit", display_name="Late")
            h.clients.append(late)
            assert late.recording is not None and late.recording["id"] == recording.id
            await asyncio.sleep(1.0)
            stopped = await client.stop_recording()
            assert stopped["recording"] is False
            with pytest.raises(SignalingError) as none:
                await client.request("stopRecording", {})
            assert none.value.code == "not_recording"
            for bad, message in (
                ({"producerIds": "x"}, "params.producerIds must be a list"),
                ({"producerIds": ["nope"]}, "no producer 'nope'"),
            ):
                with pytest.raises(SignalingError) as error:
                    await nurse.request("startRecording", bad)
                assert message in str(error.value)
            files = journals(recording.directory)
            assert len(files) == 2 and all(j.damage is None for j in files.values())

    run(main())


def test_the_room_closing_stops_and_closes_the_recording(tmp_path: Path) -> None:
    async def main() -> None:
        async with Harness(recording=RecordingConfig(directory=str(tmp_path))) as h:
            publisher = await h.client("r1")
            await publisher.publish([ToneTrack()])
            room = h.server.rooms["r1"]
            await wait_for(lambda: len(room.router.producers) == 1, 10, "the producer")
            recording = await room.start_recording()
            await asyncio.sleep(0.8)
            await publisher.close()
            await wait_for(lambda: room.closed, 10, "the room to close")
            await recording.settled()
            assert recording.stop_reason in ("room_closed", "producer_closed")
            (journal,) = journals(recording.directory).values()
            assert journal.damage is None
            last = list(journal.records)[-1]
            assert last.type == EVENT and json.loads(last.payload)["event"] == "stop"
            manifest = json.loads((recording.directory / MANIFEST).read_text())
            assert manifest["stopped"] is not None

    run(main())


ADMIN = "admin-token-for-recording-tests"


def test_the_admin_api_starts_and_stops_recordings(tmp_path: Path) -> None:
    async def main() -> None:
        config = RecordingConfig(directory=str(tmp_path))
        async with (
            Harness(plugins=[ConsentPlugin], recording=config, admin_token=ADMIN) as h,
            aiohttp.ClientSession() as http,
        ):
            assert h.server.http_address is not None
            base = f"http://127.0.0.1:{h.server.http_address[1]}/admin"
            nurse = await h.client("visit", display_name="Nurse")
            await nurse.publish([ToneTrack()])

            async def call(method: str, path: str, token: str | None = ADMIN, **kw: Any) -> Any:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                async with http.request(method, base + path, headers=headers, **kw) as reply:
                    return reply.status, await reply.json()

            for token in (None, "wrong-token-0123456789"):
                status, body = await call("POST", "/rooms/visit/recording", token)
                assert status == 401 and body["error"] == "unauthorized"
            status, body = await call("POST", "/rooms/visit/recording", json={})
            assert status == 403 and body["error"] == "consent_missing", body
            await nurse.request("consent.give", {})
            status, body = await call("POST", "/rooms/nowhere/recording")
            assert status == 404 and body["error"] == "unknown_room"
            status, body = await call("POST", "/rooms/visit/recording", json={"producerIds": 5})
            assert status == 400 and "producerIds" in body["message"]
            status, body = await call("POST", "/rooms/visit/recording", data=b"{oops")
            assert status == 400 and body["error"] == "invalid_json"
            status, started = await call("POST", "/rooms/visit/recording")
            assert status == 201 and started["recording"] is True, started
            status, body = await call("POST", "/rooms/visit/recording")
            assert status == 409 and body["error"] == "already_recording"
            await asyncio.sleep(1.2)
            status, stats = await call("GET", "/rooms/visit/recording")
            assert status == 200 and stats["bytes"] > 1000, stats
            assert stats["journals"][0]["packets"] > 20
            status, listed = await call("GET", "/rooms")
            assert listed["rooms"][0]["recording"]["id"] == started["id"]
            status, stopped = await call("DELETE", "/rooms/visit/recording")
            assert status == 200 and stopped["recording"] is False
            status, body = await call("DELETE", "/rooms/visit/recording")
            assert status == 404 and body["error"] == "not_recording"

    run(main())


def test_without_an_admin_token_there_is_no_admin_api(tmp_path: Path) -> None:
    async def main() -> None:
        async with Harness() as h, aiohttp.ClientSession() as http:
            assert h.server.http_address is not None
            url = f"http://127.0.0.1:{h.server.http_address[1]}/admin/rooms"
            async with http.get(url, headers={"Authorization": "Bearer x"}) as reply:
                assert reply.status == 404

    run(main())


class SlowConsentPlugin(Plugin):
    """Consent that takes a while (every participant asked), and is given."""

    name = "slowconsent"

    async def authorize_recording(self, room: Room, producers: list[Any]) -> None:
        await asyncio.sleep(0.8)


def test_a_producer_published_while_the_gates_run_is_recorded_too(tmp_path: Path) -> None:
    async def main() -> None:
        config = RecordingConfig(directory=str(tmp_path))
        async with Harness(plugins=[SlowConsentPlugin], recording=config) as h:
            first = await h.client("visit")
            await first.publish([ToneTrack()])
            room = h.server.rooms["visit"]
            await wait_for(lambda: len(room.router.producers) == 1, 10, "the first producer")
            starting = asyncio.ensure_future(room.start_recording())
            await asyncio.sleep(0.1)
            second = await h.client("visit")
            await second.publish([ToneTrack()])  # while the consent gate runs
            recording = await starting
            await wait_for(lambda: len(recording.journals) == 2, 10, "both producers recorded")
            room.stop_recording()

    run(main())


def test_long_room_ids_make_short_safe_directory_names() -> None:
    long_id = "ä" * 128
    name = room_directory(long_id)
    assert len(name.encode()) <= 200 and "/" not in name
    assert name != room_directory("ä" * 127)  # distinct ids stay distinct
    assert room_directory("../etc") == "..%2Fetc" and room_directory("..") == "room-%2E%2E"
