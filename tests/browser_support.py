"""Headless Chromium for tests: the flags that work here (../shared/TESTING.md), a page on a
server's origin, and a page that publishes its fake camera and microphone."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from playwright.async_api import Page, async_playwright

from mediasrv.media_server import MediaServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
]  # fmt: skip

# joins `room` through the browser SDK and publishes the fake camera and microphone
PUBLISH_JS = """
async ({room}) => {
  const { Client } = await import('/client/mediasrv-client.js');
  const client = await Client.connect(location.origin, {token: 't', room});
  window.client = client;
  const media = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
  await client.publish(media);
  return client.peerId;
}
"""


@contextlib.asynccontextmanager
async def chromium_page(server: MediaServer) -> AsyncIterator[Page]:
    """A headless Chromium page on the server's origin; its client (if any) closed at the end."""
    assert server.http_address is not None
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await (await browser.new_context()).new_page()
            await page.goto(f"http://127.0.0.1:{server.http_address[1]}/healthz")
            yield page
            await page.evaluate("() => window.client && window.client.close()")
        finally:
            with contextlib.suppress(Exception):
                await browser.close()
