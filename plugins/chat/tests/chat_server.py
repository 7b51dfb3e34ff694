"""Runs a MediaServer with the chat plugin for the durability test:
``python chat_server.py DATABASE [PORT [CONFIG_JSON]]`` prints the HTTP port (PORT 0 or none:
any free one) once the server is up, then serves until it is killed. CONFIG_JSON: more chat
plugin settings."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from mediasrv_chat.plugin import ChatPlugin

from mediasrv.config import ServerConfig
from mediasrv.http.frontend import HttpFrontend
from mediasrv.media_server import MediaServer


async def main(database: str, port: int, extra: dict[str, Any]) -> None:
    server = MediaServer(ServerConfig(host="127.0.0.1", port=port))
    HttpFrontend(server)
    server.plugins.add(ChatPlugin, {"database": database, **extra})
    await server.start()
    assert server.http_address is not None
    print(server.http_address[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    asyncio.run(main(sys.argv[1], port, extra))
