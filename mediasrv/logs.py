"""Logging: text or structured JSON lines, with the room and peer a line is about.

``configure_logging(config)`` sets the root logger up from ``log_format`` ("text" or "json")
and ``log_level``. Signaling sets :data:`room_id` and :data:`peer_id` (context variables) for
the connection's task once it joins, so every line logged on its behalf carries them; both
formats add them. As a last guard, anything shaped like a Finnish personal identity code is
masked in every line (the code never logs one on purpose).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mediasrv.config import ServerConfig

room_id: ContextVar[str | None] = ContextVar("mediasrv_room", default=None)
peer_id: ContextVar[str | None] = ContextVar("mediasrv_peer", default=None)
IDENTITY_CODE = re.compile(r"\b\d{6}[-+A-FU-Y]\d{3}[0-9A-FHJ-NPR-Y]\b")
MASK = "[identity code]"


class ContextFilter(logging.Filter):
    """Adds ``room`` and ``peer`` to each record and masks identity codes in its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "room"):  # (ids: hex, never identity codes)
            record.room = room_id.get()
        if not hasattr(record, "peer"):
            record.peer = peer_id.get()
        message = record.getMessage()
        if IDENTITY_CODE.search(message):
            record.msg = IDENTITY_CODE.sub(MASK, message)
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, room, peer, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("room", "peer"):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = IDENTITY_CODE.sub(MASK, self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = IDENTITY_CODE.sub(MASK, super().format(record))  # tracebacks too
        context = " ".join(
            f"{key}={value}"
            for key in ("room", "peer")
            if (value := getattr(record, key, None)) is not None
        )
        return f"{text} [{context}]" if context else text


def configure_logging(config: ServerConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if config.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.log_level.upper())
