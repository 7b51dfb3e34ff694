"""The chat plugin: a JSON protocol on the data channel label "chat" (see README.md)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web

from mediasrv.blocking_thread import BlockingThread
from mediasrv.plugin import Denied, Plugin, Setting
from mediasrv.room import Room
from mediasrv.tasks import spawn
from mediasrv_chat.store import ChatStore, SqliteChatStore, StoredMessage

log = logging.getLogger("mediasrv.chat")

LABEL = "chat"
CHUNK_MAX = 48 * 1024  # decoded bytes per upload-chunk
DOWNLOAD_CHUNK = 32 * 1024
UPLOADS_PER_PEER = 2
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_TYPES = ["image/jpeg", "image/png", "image/gif", "application/pdf"]
T = TypeVar("T")

# (peer, action, room_id); raises Denied. Actions: "post", "read", and for attachments
# "upload" (after "post") and "download" (after "read"; a download or a file URL)
Policy = Callable[[Any, str, str], None]
Moderator = Callable[[Any, str], "str | None"]  # (peer, text) -> text, or None to drop


def _now_ms() -> int:
    return int(time.time() * 1000)


def _purge(room: str | None, cutoff: int, exclude: tuple[str, ...], store: ChatStore) -> int:
    return store.purge(room, cutoff, exclude)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class _Bucket:
    """A token bucket: rate tokens per second, up to burst."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def _sniff(head: bytes) -> str | None:
    """The MIME type from the magic bytes (only the types the allowlist may name)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _write_at(path: Path, offset: int, data: bytes) -> None:
    """Write at offset (truncating anything after) and fsync before returning."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.ftruncate(fd, offset)
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def _hash_file(path: Path) -> tuple[str, bytes]:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        head = f.read(64)
        digest.update(head)
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest(), head


def _commit_file(partial_path: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial_path, final)
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_at(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(size)


class _Upload:
    def __init__(
        self, upload_id: str, member: Any, key: str, client_id: str, name: str, size: int,
        sha256: str, path: Path, offset: int,
    ) -> None:  # fmt: skip
        self.id = upload_id
        self.member = member
        self.key = key
        self.client_id = client_id
        self.name = name
        self.size = size
        self.sha256 = sha256
        self.path = path
        self.offset = offset


class _Member:
    def __init__(self, peer: Any, channel: Any, bucket: _Bucket) -> None:
        self.peer = peer
        self.channel = channel
        self.bucket = bucket
        self.last_typing = 0.0


class ChatPlugin(Plugin):
    name = "chat"
    api_version = 1
    config_schema = {
        "database": Setting(str, default="mediasrv-chat.sqlite3", help="SQLite file"),
        "edit_window_seconds": Setting(
            (int, float), default=300, check=lambda n: n >= 0, help="own messages: edit/delete"
        ),
        "max_text_bytes": Setting(int, default=4096, check=lambda n: n > 0, help="UTF-8 bytes"),
        "rate_per_second": Setting(
            (int, float), default=5, check=lambda n: n > 0, help="posts per peer per second"
        ),
        "rate_burst": Setting(int, default=10, check=lambda n: n >= 1, help="bucket size"),
        "history_page": Setting(int, default=500, check=lambda n: n >= 1, help="per request"),
        "retention_days": Setting(
            (int, float), default=30, check=lambda n: n >= 0, help="0: keep forever"
        ),
        "room_retention_days": Setting(dict, default={}, help="room id -> days (overrides)"),
        "purge_interval_seconds": Setting(
            (int, float), default=3600, check=lambda n: n > 0, help="how often to purge"
        ),
        "attachments_dir": Setting(str, default="mediasrv-chat-files", help="attachment files"),
        "max_attachment_bytes": Setting(
            int, default=10 * 1024 * 1024, check=lambda n: n > 0, help="largest attachment"
        ),
        "allowed_types": Setting(list, default=DEFAULT_TYPES, help="MIME types (magic bytes)"),
        "url_secret": Setting(str, default="", secret=True, help="file URL HMAC key"),
        "url_seconds": Setting(
            (int, float), default=300, check=lambda n: n > 0, help="file URL lifetime"
        ),
    }
    data_labels = (LABEL,)

    def __init__(self, server: Any, config: Any) -> None:
        super().__init__(server, config)
        self.store: ChatStore | None = None
        self._thread = BlockingThread("mediasrv-chat")
        self._thread.start()
        self._policies: list[Policy] = []
        self._moderators: list[Moderator] = []
        self._members: dict[str, dict[str, _Member]] = {}  # room id -> peer id -> member
        self._purger: asyncio.Task[None] | None = None
        self._uploads: dict[str, _Upload] = {}  # upload id -> upload
        secret = self.config["url_secret"]
        self._url_key = secret.encode() if secret else secrets.token_bytes(32)
        self._files = Path(self.config["attachments_dir"])

    # ---- the Python API for embedders and other plugins ----

    def add_policy(self, policy: Policy) -> None:
        """``policy(peer, action, room_id)`` with action "post" or "read" (messages), "upload"
        or "download" (attachments: asked after "post" and "read" allowed); raise Denied to
        refuse. A policy should let actions it does not know pass."""
        self._policies.append(policy)

    def add_moderator(self, moderator: Moderator) -> None:
        """``moderator(peer, text)`` returns the text to store (maybe changed), or None to
        drop the message (the sender gets the error ``moderated``)."""
        self._moderators.append(moderator)

    async def post_system(self, room_id: str, text: str, **extra: Any) -> int:
        """Store a system message in the room and send it to every reader there; its id."""
        message = StoredMessage(
            id=0,
            room=room_id,
            kind="system",
            sender="",
            peer_id="",
            display_name="",
            client_id="",
            text=text,
            ts=_now_ms(),
            extra=json.dumps(extra) if extra else "",
        )
        stored, _ = await self._db(lambda s: s.add(message))
        self._fan_out(room_id, self._render(stored))
        return stored.id

    # ---- life ----

    async def setup(self) -> None:
        self.store = SqliteChatStore(self.config["database"])
        self.on("peerleft", self._peer_left)
        await self.purge()
        self._purger = spawn(self._purge_loop(), "chat purge")

    async def close(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
        if self.store is not None:
            store = self.store
            await self._thread.call(store.close)
        self._thread.shutdown()

    async def purge(self) -> int:
        """Delete what retention allows; how many messages."""
        now = _now_ms()
        per_room: dict[str, Any] = self.config["room_retention_days"]
        count = 0
        for room, room_days in per_room.items():
            if room_days:
                room_cutoff = now - int(room_days * 86_400_000)
                count += await self._db(partial(_purge, room, room_cutoff, ()))
        days = self.config["retention_days"]
        if days:
            cutoff = now - int(days * 86_400_000)
            count += await self._db(partial(_purge, None, cutoff, tuple(per_room)))
        return count

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config["purge_interval_seconds"])
            try:
                await self.purge()
            except Exception:
                log.exception("chat: purging failed")

    async def _db(self, work: Callable[[ChatStore], T]) -> T:
        """Run a store call on the store's single thread (calls run in the order made)."""
        store = self.store
        assert store is not None
        return await self._thread.call(work, store)

    # ---- peers and channels ----

    def _peer_left(self, room: Room, peer: Any) -> None:
        members = self._members.get(room.id)
        if members is not None:
            members.pop(peer.id, None)
            if not members:
                del self._members[room.id]

    def on_data_channel(self, peer: Any, channel: Any) -> None:
        room_id = peer.room.id
        member = _Member(
            peer, channel, _Bucket(self.config["rate_per_second"], self.config["rate_burst"])
        )
        self._members.setdefault(room_id, {})[peer.id] = member
        # one peer's messages are handled one after another, in order
        queue: asyncio.Queue[str | bytes] = asyncio.Queue()

        async def work() -> None:
            while True:
                raw = await queue.get()
                try:
                    await self._handle(member, raw)
                except Exception:
                    log.exception("chat: handling a message failed")
                    self._send(member, {"type": "error", "code": "internal_error", "message": ""})

        task = spawn(work(), "chat peer")
        channel.on("message", queue.put_nowait)

        def closed() -> None:
            task.cancel()
            for upload_id in [u.id for u in self._uploads.values() if u.member is member]:
                del self._uploads[upload_id]
            members = self._members.get(room_id)
            if members is not None and members.get(peer.id) is member:
                del members[peer.id]

        channel.on("close", closed)

    def _send(self, member: _Member, message: dict[str, Any]) -> bool:
        if member.channel.readyState != "open":
            return False
        try:
            member.channel.send(json.dumps(message, separators=(",", ":")))
        except Exception:
            return False
        return True

    def _error(self, member: _Member, code: str, text: str, client_id: Any = None) -> None:
        error: dict[str, Any] = {"type": "error", "code": code, "message": text}
        if client_id is not None:
            error["clientId"] = client_id
        self._send(member, error)

    def _check(self, peer: Any, action: str, room_id: str) -> Denied | None:
        for policy in self._policies:
            try:
                policy(peer, action, room_id)
            except Denied as denied:
                return denied
            except Exception:
                log.exception("chat: a policy failed")
                return Denied("policy_error", "a chat policy failed")
        return None

    def _fan_out(self, room_id: str, message: dict[str, Any], sender: str = "") -> None:
        """To every member of the room that may read; a "delivered" receipt to the sender."""
        members = list(self._members.get(room_id, {}).values())
        delivered: list[str] = []
        for member in members:
            if self._check(member.peer, "read", room_id) is not None:
                continue
            if self._send(member, message) and member.peer.id != sender:
                delivered.append(member.peer.id)
        if sender and delivered:
            source = self._members.get(room_id, {}).get(sender)
            if source is not None:
                self._send(source, {"type": "delivered", "id": message["id"], "to": delivered})

    @staticmethod
    def _sender_key(peer: Any) -> str:
        identity = getattr(peer, "identity", None)
        if identity is not None and identity.subject:
            return f"{identity.plugin}:{identity.subject}"
        return f"name:{peer.display_name}"

    @staticmethod
    def _render(message: StoredMessage) -> dict[str, Any]:
        if message.kind == "system":
            rendered: dict[str, Any] = json.loads(message.extra) if message.extra else {}
            rendered.update(
                {"type": "system", "id": message.id, "room": message.room, "text": message.text}
            )
            rendered["ts"] = message.ts
            return rendered
        rendered = {
            "type": "message",
            "id": message.id,
            "room": message.room,
            "from": {"peerId": message.peer_id, "displayName": message.display_name},
            "text": message.text,
            "ts": message.ts,
        }
        if message.edited is not None:
            rendered["edited"] = message.edited
        if message.deleted:
            rendered["deleted"] = True
        elif message.extra:
            attachment = json.loads(message.extra).get("attachment")
            if attachment is not None:
                rendered["attachment"] = attachment
        return rendered

    # ---- the protocol ----

    async def _handle(self, member: _Member, raw: str | bytes) -> None:
        limit = self.config["max_text_bytes"]
        if not isinstance(raw, str):
            self._error(member, "invalid_message", "messages are JSON text")
            return
        if len(raw) > max(4 * limit, CHUNK_MAX * 4 // 3) + 1024:
            self._error(member, "message_too_large", f"at most {limit} bytes of text")
            return
        try:
            message = json.loads(raw)
        except ValueError:
            self._error(member, "invalid_message", "not JSON")
            return
        if not isinstance(message, dict):
            self._error(member, "invalid_message", "not a JSON object")
            return
        kind = message.get("type")
        handler = {
            "send": self._on_send,
            "edit": self._on_edit,
            "delete": self._on_edit,
            "typing": self._on_typing,
            "read": self._on_read,
            "history": self._on_history,
            "upload-start": self._on_upload_start,
            "upload-chunk": self._on_upload_chunk,
            "download": self._on_download,
            "file-url": self._on_file_url,
        }.get(kind if isinstance(kind, str) else "")
        if handler is None:
            self._error(member, "invalid_message", f"unknown type {kind!r}")
            return
        await handler(member, message)

    def _text(self, member: _Member, message: dict[str, Any], client_id: Any) -> str | None:
        text = message.get("text")
        if not isinstance(text, str) or not text:
            self._error(member, "invalid_message", "text must be a non-empty string", client_id)
            return None
        limit = self.config["max_text_bytes"]
        if len(text.encode()) > limit:
            self._error(member, "message_too_large", f"at most {limit} bytes", client_id)
            return None
        return text

    def _may_post(self, member: _Member, client_id: Any) -> bool:
        room_id = member.peer.room.id
        denied = self._check(member.peer, "post", room_id)
        if denied is not None:
            self._error(member, "post_denied", denied.message, client_id)
            return False
        if not member.bucket.take():
            self._error(member, "rate_limited", "too many messages; slow down", client_id)
            return False
        return True

    def _moderate(self, member: _Member, text: str) -> str | None:
        for moderator in self._moderators:
            replaced = moderator(member.peer, text)
            if replaced is None:
                return None
            text = replaced
        return text

    async def _on_send(self, member: _Member, message: dict[str, Any]) -> None:
        client_id = message.get("clientId")
        if not isinstance(client_id, str) or not client_id or len(client_id) > 128:
            self._error(member, "invalid_message", "clientId must be a string (1-128)", client_id)
            return
        text = self._text(member, message, client_id)
        if text is None or not self._may_post(member, client_id):
            return
        moderated = self._moderate(member, text)
        if moderated is None:
            self._error(member, "moderated", "the message was not accepted", client_id)
            return
        peer = member.peer
        room_id = peer.room.id
        sender = self._sender_key(peer)
        new = StoredMessage(
            id=0,
            room=room_id,
            kind="message",
            sender=sender,
            peer_id=peer.id,
            display_name=peer.display_name,
            client_id=f"{sender}\n{client_id}",
            text=moderated,
            ts=_now_ms(),
        )
        stored, created = await self._db(lambda s: s.add(new))
        self._send(member, {"type": "ack", "clientId": client_id, "id": stored.id, "ts": stored.ts})
        if created:
            self._fan_out(room_id, self._render(stored), sender=peer.id)

    async def _on_edit(self, member: _Member, message: dict[str, Any]) -> None:
        client_id = message.get("clientId")
        message_id: Any = message.get("id")
        delete = message["type"] == "delete"
        if not _is_id(message_id):
            self._error(member, "invalid_message", "id must be a message id", client_id)
            return
        text = "" if delete else self._text(member, message, client_id)
        if text is None or not self._may_post(member, client_id):
            return
        wanted = int(message_id)
        stored = await self._db(lambda s: s.get(wanted))
        room_id = member.peer.room.id
        if stored is None or stored.room != room_id or stored.kind != "message":
            self._error(member, "not_found", f"no message {message_id}", client_id)
            return
        if stored.sender != self._sender_key(member.peer):
            self._error(member, "not_owner", "only your own messages", client_id)
            return
        now = _now_ms()
        if stored.deleted or now - stored.ts > self.config["edit_window_seconds"] * 1000:
            self._error(member, "edit_window_expired", "too late to change it", client_id)
            return
        if not delete:
            moderated = self._moderate(member, text)
            if moderated is None:
                self._error(member, "moderated", "the edit was not accepted", client_id)
                return
            text = moderated
        updated = await self._db(lambda s: s.update(stored.id, text, now, delete))
        if client_id is not None:
            self._send(member, {"type": "ack", "clientId": client_id, "id": updated.id, "ts": now})
        self._fan_out(room_id, self._render(updated))

    async def _on_typing(self, member: _Member, message: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - member.last_typing < 1.0:  # at most one typing notice a second per peer
            return
        member.last_typing = now
        room_id = member.peer.room.id
        if self._check(member.peer, "post", room_id) is not None:
            return
        notice = {"type": "typing", "peerId": member.peer.id}
        for other in list(self._members.get(room_id, {}).values()):
            if other is not member and self._check(other.peer, "read", room_id) is None:
                self._send(other, notice)

    async def _on_read(self, member: _Member, message: dict[str, Any]) -> None:
        up_to = message.get("upTo")
        if not _is_id(up_to):
            self._error(member, "invalid_message", "upTo must be a message id")
            return
        room_id = member.peer.room.id
        if self._check(member.peer, "read", room_id) is not None:
            return
        receipt = {"type": "read", "peerId": member.peer.id, "upTo": up_to}
        for other in list(self._members.get(room_id, {}).values()):
            if other is not member and self._check(other.peer, "read", room_id) is None:
                self._send(other, receipt)

    async def _on_history(self, member: _Member, message: dict[str, Any]) -> None:
        since = message.get("since", 0)
        if not _is_id(since):
            self._error(member, "invalid_message", "since must be a message id")
            return
        room_id = member.peer.room.id
        denied = self._check(member.peer, "read", room_id)
        if denied is not None:
            self._error(member, "read_denied", denied.message)
            return
        page = self.config["history_page"]
        rows = await self._db(lambda s: s.since(room_id, since, page + 1))
        more = len(rows) > page
        rows = rows[:page]
        # one data channel message each (browsers refuse messages over 64 KiB), then the end
        for row in rows:
            self._send(member, self._render(row))
        last = rows[-1].id if rows else since
        self._send(
            member,
            {"type": "history", "since": since, "count": len(rows), "last": last, "more": more},
        )

    # ---- attachments ----

    def _file_path(self, sha256: str) -> Path:
        return self._files / sha256[:2] / sha256

    async def _on_upload_start(self, member: _Member, message: dict[str, Any]) -> None:
        client_id = message.get("clientId")
        if not isinstance(client_id, str) or not client_id or len(client_id) > 128:
            self._error(member, "invalid_message", "clientId must be a string (1-128)", client_id)
            return
        name, size, sha256 = message.get("name"), message.get("size"), message.get("sha256")
        if not isinstance(name, str) or not name or len(name) > 255:
            self._error(member, "invalid_message", "name must be a string (1-255)", client_id)
            return
        if not _is_id(size) or size == 0:
            self._error(member, "invalid_message", "size must be a positive integer", client_id)
            return
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            self._error(member, "invalid_message", "sha256 must be 64 hex digits", client_id)
            return
        assert isinstance(size, int)
        limit = self.config["max_attachment_bytes"]
        if size > limit:
            self._error(member, "attachment_too_large", f"at most {limit} bytes", client_id)
            return
        sender = self._sender_key(member.peer)
        key = hashlib.sha256(f"{member.peer.room.id}\n{sender}".encode()).hexdigest()[:24]
        key = f"{key}-{sha256}"
        # a new start of the same file by the same sender takes the upload over (a reconnect)
        for old in [u for u in self._uploads.values() if u.key == key]:
            del self._uploads[old.id]
        mine = [u for u in self._uploads.values() if u.member is member]
        if len(mine) >= UPLOADS_PER_PEER:
            self._error(
                member, "too_many_uploads", f"at most {UPLOADS_PER_PEER} at once", client_id
            )
            return
        if not self._may_post(member, client_id):
            return
        denied = self._check(member.peer, "upload", member.peer.room.id)
        if denied is not None:
            self._error(member, "upload_denied", denied.message, client_id)
            return
        path = self._files / "partial" / f"{key}.part"
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        offset = 0
        if path.exists():
            offset = path.stat().st_size
            if offset > size:
                path.unlink()
                offset = 0
        upload = _Upload(uuid.uuid4().hex, member, key, client_id, name, size, sha256, path, offset)
        final = self._file_path(sha256)
        if final.exists() and final.stat().st_size == size:
            upload.offset = size  # already stored (content addressed): nothing to send
        self._uploads[upload.id] = upload
        ready = {"type": "upload-ready", "uploadId": upload.id, "offset": upload.offset}
        self._send(member, {**ready, "clientId": client_id})
        if upload.offset == size:
            await self._finish(upload)

    async def _on_upload_chunk(self, member: _Member, message: dict[str, Any]) -> None:
        upload = self._uploads.get(str(message.get("uploadId")))
        if upload is None or upload.member is not member:
            self._error(member, "not_found", "no such upload (start it again)")
            return
        offset, data = message.get("offset"), message.get("data")
        if not _is_id(offset) or offset != upload.offset or not isinstance(data, str):
            self._error(
                member, "invalid_message", f"the next offset is {upload.offset}", upload.client_id
            )
            return
        try:
            chunk = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            self._error(member, "invalid_message", "data must be base64", upload.client_id)
            return
        if not chunk or len(chunk) > CHUNK_MAX or offset + len(chunk) > upload.size:
            del self._uploads[upload.id]
            self._error(member, "invalid_message", "chunk too large or past size", upload.client_id)
            return
        await asyncio.to_thread(_write_at, upload.path, offset, chunk)
        upload.offset = offset + len(chunk)
        self._send(
            member,
            {
                "type": "upload-progress",
                "uploadId": upload.id,
                "offset": upload.offset,
                "clientId": upload.client_id,
            },
        )
        if upload.offset == upload.size:
            await self._finish(upload)

    async def _finish(self, upload: _Upload) -> None:
        self._uploads.pop(upload.id, None)
        member, client_id = upload.member, upload.client_id
        final = self._file_path(upload.sha256)
        if not (final.exists() and final.stat().st_size == upload.size):
            digest, head = await asyncio.to_thread(_hash_file, upload.path)
            if digest != upload.sha256:
                upload.path.unlink(missing_ok=True)
                self._error(member, "checksum_mismatch", "the SHA-256 does not match", client_id)
                return
            mime = _sniff(head)
            if mime is None or mime not in self.config["allowed_types"]:
                upload.path.unlink(missing_ok=True)
                self._error(member, "type_not_allowed", f"not allowed: {mime}", client_id)
                return
            await asyncio.to_thread(_commit_file, upload.path, final)
        else:
            upload.path.unlink(missing_ok=True)
            mime = _sniff(await asyncio.to_thread(_read_at, final, 0, 64)) or ""
        peer = member.peer
        room_id = peer.room.id
        sender = self._sender_key(peer)
        attachment = {
            "sha256": upload.sha256, "name": upload.name, "size": upload.size, "mime": mime
        }  # fmt: skip
        new = StoredMessage(
            id=0,
            room=room_id,
            kind="message",
            sender=sender,
            peer_id=peer.id,
            display_name=peer.display_name,
            client_id=f"{sender}\n{client_id}",
            text="",
            ts=_now_ms(),
            extra=json.dumps({"attachment": attachment}),
        )
        stored, created = await self._db(lambda s: s.add(new))
        self._send(member, {"type": "ack", "clientId": client_id, "id": stored.id, "ts": stored.ts})
        if created:
            self._fan_out(room_id, self._render(stored), sender=peer.id)

    async def _readable(self, member: _Member, message: dict[str, Any]) -> dict[str, Any] | None:
        client_id = message.get("clientId")
        sha256 = message.get("sha256")
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            self._error(member, "invalid_message", "sha256 must be 64 hex digits", client_id)
            return None
        room_id = member.peer.room.id
        denied = self._check(member.peer, "read", room_id)
        if denied is not None:
            self._error(member, "read_denied", denied.message, client_id)
            return None
        denied = self._check(member.peer, "download", room_id)
        if denied is not None:
            self._error(member, "download_denied", denied.message, client_id)
            return None
        found = await self._db(lambda s: s.attachment(room_id, sha256))
        if found is None or not self._file_path(sha256).exists():
            self._error(member, "not_found", "no such attachment in this room", client_id)
            return None
        return found

    async def _on_download(self, member: _Member, message: dict[str, Any]) -> None:
        found = await self._readable(member, message)
        if found is None:
            return
        sha256 = found["sha256"]
        path = self._file_path(sha256)
        offset = 0
        while True:
            data = await asyncio.to_thread(_read_at, path, offset, DOWNLOAD_CHUNK)
            if not data:
                break
            for _ in range(1000):  # let the channel drain (at most 10 s)
                if member.channel.bufferedAmount < 1 << 20:
                    break
                await asyncio.sleep(0.01)
            chunk = {"type": "download-chunk", "sha256": sha256, "offset": offset}
            if not self._send(member, {**chunk, "data": base64.b64encode(data).decode()}):
                return
            offset += len(data)
        self._send(member, {"type": "download-end", "sha256": sha256, "size": offset})

    def _sign(self, sha256: str, room: str, exp: int) -> str:
        text = f"{sha256}\n{room}\n{exp}".encode()
        return hmac.new(self._url_key, text, hashlib.sha256).hexdigest()

    async def _on_file_url(self, member: _Member, message: dict[str, Any]) -> None:
        found = await self._readable(member, message)
        if found is None:
            return
        sha256, room = found["sha256"], member.peer.room.id
        exp = int(time.time() + self.config["url_seconds"])
        query = urlencode({"room": room, "exp": exp, "sig": self._sign(sha256, room, exp)})
        url = f"/plugins/chat/files/{sha256}?{query}"
        answer: dict[str, Any] = {"type": "file-url", "sha256": sha256, "url": url}
        if message.get("clientId") is not None:
            answer["clientId"] = message["clientId"]
        self._send(member, answer)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/files/{sha256}", self._serve_file)]

    async def _serve_file(self, request: web.Request) -> web.StreamResponse:
        sha256 = request.match_info["sha256"]
        room = request.query.get("room", "")
        sig = request.query.get("sig", "")
        try:
            exp = int(request.query.get("exp", ""))
        except ValueError:
            raise web.HTTPForbidden() from None
        if not _SHA256.match(sha256) or exp < time.time():
            raise web.HTTPForbidden()
        if not hmac.compare_digest(sig, self._sign(sha256, room, exp)):
            raise web.HTTPForbidden()
        found = await self._db(lambda s: s.attachment(room, sha256))
        path = self._file_path(sha256)
        if found is None or not path.exists():
            raise web.HTTPNotFound()
        return web.FileResponse(
            path, headers={"Content-Type": found["mime"], "Cache-Control": "private, no-store"}
        )
