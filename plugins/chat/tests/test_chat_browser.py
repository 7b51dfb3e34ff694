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
