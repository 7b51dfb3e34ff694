"""Chat with a browser: two aiortc clients and a headless Chromium page (the browser SDK's
``client.chat``) exchange messages through the chat plugin."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright
from test_chat import Chat, run, texts, wait_for

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
]  # fmt: skip

PAGE_JS = """
async () => {
  const { Client } = await import('/client/mediasrv-client.js');
  const client = await Client.connect(location.origin, {token: 't', room: 'r', displayName: 'Cat'});
  window.client = client;
  client.chat.open();
  const id = await client.chat.send('hello from the browser');
  return {peerId: client.peerId, id};
}
"""


def test_two_aiortc_clients_and_a_chromium_page_chat(tmp_path: Path) -> None:
    async def main() -> None:
        async with Chat(tmp_path) as chat, async_playwright() as playwright:
            ann, bob = await chat.client("Ann"), await chat.client("Bob")
            await ann.chat.open()
            await bob.chat.open()
            await ann.chat.send("hello from Ann")
            browser = await playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True
            )
            try:
                assert chat.server.http_address is not None
                page = await (await browser.new_context()).new_page()
                await page.goto(f"http://127.0.0.1:{chat.server.http_address[1]}/healthz")
                result: dict[str, Any] = await page.evaluate(PAGE_JS)
                # the page's message reaches both aiortc clients, with the page's identity
                await wait_for(lambda: "hello from the browser" in texts(bob), 10, "at Bob")
                await wait_for(lambda: "hello from the browser" in texts(ann), 10, "at Ann")
                from_page = next(m for m in bob.chat.history if m["id"] == result["id"])
                assert from_page["from"] == {"peerId": result["peerId"], "displayName": "Cat"}
                # the page got the history (Ann's first message) and gets Bob's reply
                await bob.chat.send("hello, browser")
                seen: list[str] = []
                for _ in range(50):
                    seen = await page.evaluate("() => window.client.chat.history.map(m => m.text)")
                    if "hello, browser" in seen:
                        break
                    await page.wait_for_timeout(100)
                assert seen == ["hello from Ann", "hello from the browser", "hello, browser"]
                # a refusal reaches the page with its code; the page stays connected
                code = await page.evaluate(
                    "() => window.client.chat.send('x'.repeat(10000)).catch(e => e.code)"
                )
                assert code == "message_too_large"
                await page.evaluate("() => window.client.chat.send('still here')")
                await wait_for(lambda: "still here" in texts(ann), 10, "the page still chats")
                await page.evaluate("() => window.client.close()")
            finally:
                with contextlib.suppress(Exception):
                    await browser.close()

    run(main())


UPLOAD_JS = """
async () => {
  const { Client } = await import('/client/mediasrv-client.js');
  const client = await Client.connect(location.origin, {token: 't', room: 'r', displayName: 'Cat'});
  window.client = client;
  const body = new Uint8Array(2000000);  // 2 MB
  for (let i = 0; i < body.length; i++) body[i] = (i * 7919) % 251;
  body.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const id = await client.chat.upload(new File([body], 'page.png'));
  const elf = new Uint8Array(2000);
  elf.set([0x7f, 0x45, 0x4c, 0x46]);
  const code = await client.chat.upload(new Blob([elf]), 'photo.jpg').catch((e) => e.code);
  const after = await client.chat.send('still here');
  await client.close();
  return {id, code, after};
}
"""


def test_a_chromium_page_uploads_an_attachment(tmp_path: Path) -> None:
    async def main() -> None:
        config = {"attachments_dir": str(tmp_path / "files")}
        async with Chat(tmp_path, **config) as chat, async_playwright() as playwright:
            ann = await chat.client("Ann")
            await ann.chat.open()
            browser = await playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True
            )
            try:
                assert chat.server.http_address is not None
                page = await (await browser.new_context()).new_page()
                await page.goto(f"http://127.0.0.1:{chat.server.http_address[1]}/healthz")
                result: dict[str, Any] = await page.evaluate(UPLOAD_JS)
                assert result["code"] == "type_not_allowed" and result["after"] > result["id"]
                await wait_for(lambda: ann.chat.last_id >= result["id"], 10, "the attachment")
                message = next(m for m in ann.chat.history if m["id"] == result["id"])
                expected = bytearray((i * 7919) % 251 for i in range(2_000_000))
                expected[:8] = b"\x89PNG\r\n\x1a\n"
                assert message["attachment"]["name"] == "page.png"
                assert message["attachment"]["mime"] == "image/png"
                assert await ann.chat.download(message["attachment"]["sha256"]) == expected
            finally:
                with contextlib.suppress(Exception):
                    await browser.close()

    run(main())
