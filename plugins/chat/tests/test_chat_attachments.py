"""Chat attachments with a real MediaServer, real aiortc clients, real files on disk and a
killed server subprocess."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_chat import RUNNER, Chat, run, wait_for

from mediasrv.client import ChatError, Client

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR"


def png(size: int) -> bytes:
    return PNG + os.urandom(size - len(PNG))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def http_status(url: str) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.read(), response.headers.get("Content-Type", "")


def test_upload_fan_out_download_and_signed_url(tmp_path: Path) -> None:
    async def main() -> None:
        async with Chat(tmp_path, attachments_dir=str(tmp_path / "files")) as chat:
            ann, bob = await chat.client("Ann"), await chat.client("Bob")
            await ann.chat.open()
            await bob.chat.open()
            data = png(2 * 1024 * 1024)
            message_id = await ann.chat.upload(data, "photo.png")
            await wait_for(lambda: bob.chat.last_id == message_id, 5, "Bob gets the attachment")
            attachment = bob.chat.history[-1]["attachment"]
            assert attachment == {
                "sha256": sha(data),
                "name": "photo.png",
                "size": len(data),
                "mime": "image/png",
            }
            assert (tmp_path / "files" / sha(data)[:2] / sha(data)).read_bytes() == data
            assert await bob.chat.download(sha(data)) == data
            url = await bob.chat.file_url(sha(data))
            status, body, mime = await http_status(url)
            assert (status, mime) == (200, "image/png") and body == data
            bad = url[:-1] + ("0" if url[-1] != "0" else "1")
            assert (await http_status(bad))[0] == 403
            expired = url.replace("exp=", "exp=1", 1)  # a different expiry: bad signature
            assert (await http_status(expired))[0] == 403
            # a truly expired URL, correctly signed
            past = 1_000_000
            sig = chat.plugin._sign(sha(data), "r", past)
            base = url.split("?")[0]
            assert (await http_status(f"{base}?room=r&exp={past}&sig={sig}"))[0] == 403
            # not posted in this room: not_found
            other = await chat.client("Cid", room="elsewhere")
            with pytest.raises(ChatError) as missing:
                await other.chat.download(sha(data))
            assert missing.value.code == "not_found"

    run(main())


def test_refusals_keep_the_client_connected(tmp_path: Path) -> None:
    async def main() -> None:
        config = {"attachments_dir": str(tmp_path / "files"), "max_attachment_bytes": 100_000}
        async with Chat(tmp_path, **config) as chat:
            ann = await chat.client("Ann")
            await ann.chat.open()
            elf = b"\x7fELF\x02\x01\x01\x00" + os.urandom(5000)
            with pytest.raises(ChatError) as exe:
                await ann.chat.upload(elf, "photo.jpg")
            assert exe.value.code == "type_not_allowed"
            assert isinstance(await ann.chat.send("still here 1"), int)
            with pytest.raises(ChatError) as large:
                await ann.chat.upload(png(100_001), "big.png")
            assert large.value.code == "attachment_too_large"
            assert isinstance(await ann.chat.send("still here 2"), int)
            # a wrong sha256: the server checks what arrives
            data = png(40_000)
            events: list[dict[str, Any]] = []
            ann.on("data", lambda label, raw, peer: events.append(json.loads(raw)))
            wrong = sha(b"something else")
            ann.chat._write(
                {
                    "type": "upload-start",
                    "clientId": "w",
                    "name": "x.png",
                    "size": len(data),
                    "sha256": wrong,
                }
            )
            await wait_for(lambda: any(e["type"] == "upload-ready" for e in events), 5, "ready")
            ready = next(e for e in events if e["type"] == "upload-ready")
            chunk = {"type": "upload-chunk", "uploadId": ready["uploadId"], "offset": 0}
            ann.chat._write({**chunk, "data": base64.b64encode(data).decode()})
            await wait_for(lambda: any(e["type"] == "error" for e in events), 5, "the refusal")
            error = next(e for e in events if e["type"] == "error")
            assert error["code"] == "checksum_mismatch" and error["clientId"] == "w"
            assert not list((tmp_path / "files" / "partial").iterdir())
            assert isinstance(await ann.chat.send("still here 3"), int)
            assert [m["text"] for m in ann.chat.history] == [f"still here {i}" for i in (1, 2, 3)]

    run(main())


def test_an_upload_cut_off_resumes_from_the_stored_offset(tmp_path: Path) -> None:
    async def main() -> None:
        async with Chat(tmp_path, attachments_dir=str(tmp_path / "files")) as chat:
            data = png(600_000)
            ann = await chat.client("Ann")
            await ann.chat.open()
            events: list[dict[str, Any]] = []
            ann.on("data", lambda label, raw, peer: events.append(json.loads(raw)))
            start = {"type": "upload-start", "name": "p.png", "size": len(data)}
            ann.chat._write({**start, "clientId": "a", "sha256": sha(data)})
            await wait_for(lambda: any(e["type"] == "upload-ready" for e in events), 5, "ready")
            upload_id = events[-1]["uploadId"]
            half = 300_000
            step = 30_000
            for offset in range(0, half, step):
                ann.chat._write(
                    {
                        "type": "upload-chunk",
                        "uploadId": upload_id,
                        "offset": offset,
                        "data": base64.b64encode(data[offset : offset + step]).decode(),
                    }
                )
            await wait_for(
                lambda: any(e.get("offset") == half for e in events), 5, "half acknowledged"
            )
            await ann.close()
            ann2 = await chat.client("Ann")
            await ann2.chat.open()
            readies: list[dict[str, Any]] = []
            ann2.on(
                "data",
                lambda label, raw, peer: (
                    readies.append(json.loads(raw)) if '"upload-ready"' in raw else None
                ),
            )
            message_id = await ann2.chat.upload(data, "p.png")
            assert readies and readies[0]["offset"] == half
            assert ann2.chat.history[-1]["id"] == message_id
            assert await ann2.chat.download(sha(data)) == data

    run(main())


def test_an_acknowledged_attachment_survives_a_killed_server(tmp_path: Path) -> None:
    database = str(tmp_path / "chat.sqlite3")
    extra = json.dumps({"attachments_dir": str(tmp_path / "files")})

    def start() -> tuple[subprocess.Popen[str], int]:
        process = subprocess.Popen(
            [sys.executable, str(RUNNER), database, "0", extra],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip().isdigit(), f"the runner printed {line!r}"
        return process, int(line)

    async def main() -> None:
        data = png(500_000)
        process, port = await asyncio.to_thread(start)
        try:
            url = f"ws://127.0.0.1:{port}/ws"
            ann = await Client.connect(url, token="t", room="r", display_name="Ann")
            message_id = await ann.chat.upload(data, "kept.png")
            process.send_signal(signal.SIGKILL)  # right after the ack
            await asyncio.to_thread(process.wait, 10)
            await ann.close()
        finally:
            process.kill()
        process, port = await asyncio.to_thread(start)
        try:
            url = f"ws://127.0.0.1:{port}/ws"
            bob = await Client.connect(url, token="t", room="r", display_name="Bob")
            await bob.chat.open()
            assert bob.chat.history[-1]["id"] == message_id
            assert bob.chat.history[-1]["attachment"]["sha256"] == sha(data)
            assert await bob.chat.download(sha(data)) == data
            await bob.close()
        finally:
            process.kill()
            await asyncio.to_thread(process.wait, 10)

    run(main())


def test_at_most_two_uploads_at_once_per_peer(tmp_path: Path) -> None:
    async def main() -> None:
        async with Chat(tmp_path, attachments_dir=str(tmp_path / "files")) as chat:
            ann = await chat.client("Ann")
            await ann.chat.open()
            events: list[dict[str, Any]] = []
            ann.on("data", lambda label, raw, peer: events.append(json.loads(raw)))
            for i in range(3):
                data = png(1000 + i)
                start = {"type": "upload-start", "name": "p.png", "size": len(data)}
                ann.chat._write({**start, "clientId": f"u{i}", "sha256": sha(data)})
            await wait_for(lambda: len(events) == 3, 5, "three answers")
            assert [e["type"] for e in events] == ["upload-ready", "upload-ready", "error"]
            assert events[2]["code"] == "too_many_uploads"
            assert isinstance(await ann.chat.send("still here"), int)

    run(main())
