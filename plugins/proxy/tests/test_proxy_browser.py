"""A headless Chromium page (Debian chromium, Playwright) joins a visit on behalf of a child
through the browser SDK and is shown to the nurse's page as "<parent> for <child>"; a join for
someone the person has no right to act for is refused with the reason reaching the page; where
the basis does not permit video, the page's camera publish is refused and its microphone
publish still works (the SDK rolls the refused offer back)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright
from proxy_support import CHILD, ELDER, NURSE, PARENT, proxy_server, run

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
]  # fmt: skip

JOIN_JS = """
async ({token, room, joinParams}) => {
  const { Client } = await import('/client/mediasrv-client.js');
  try {
    const client = await Client.connect(location.origin, {token, room, joinParams});
    window.client = client;
    window.joined = [];
    client.on('peerJoined', ({peer}) => window.joined.push(peer));
    return {ok: true, peerId: client.peerId, self: client.self};
  } catch (error) {
    return {ok: false, code: error.code, message: error.message};
  }
}
"""


PUBLISH_JS = """
async () => {
  const media = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
  const result = {};
  try {
    await window.client.publish(media.getVideoTracks()[0]);
    result.video = {ok: true};
  } catch (error) {
    result.video = {ok: false, code: error.code, message: error.message};
  }
  const producers = await window.client.publish(media.getAudioTracks()[0]);
  result.audio = {kinds: producers.map((p) => p.kind), ids: producers.map((p) => p.id)};
  return result;
}
"""


def test_a_browser_joins_on_behalf_of_a_child_and_is_shown_as_such(tmp_path: Path) -> None:
    async def main() -> None:
        no_video = {"GUARDIAN_OF_MINOR": ["join", "speak", "chat", "attachments"]}
        async with (
            proxy_server(tmp_path, permissions=no_video) as s,
            async_playwright() as playwright,
        ):
            await s.grant(CHILD, PARENT, "GUARDIAN_OF_MINOR")
            browser = await playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True
            )
            try:
                context = await browser.new_context()
                nurse_page, parent_page = await context.new_page(), await context.new_page()
                for page in (nurse_page, parent_page):
                    await page.goto(f"{s.url}/healthz")
                nurse: dict[str, Any] = await nurse_page.evaluate(
                    JOIN_JS, {"token": s.token(NURSE), "room": "visit-1", "joinParams": {}}
                )
                assert nurse["ok"] is True, nurse
                refused: dict[str, Any] = await parent_page.evaluate(
                    JOIN_JS,
                    {
                        "token": s.token(PARENT),
                        "room": "visit-1",
                        "joinParams": {"onBehalfOf": {"principal": ELDER.code}},
                    },
                )
                assert refused["ok"] is False and refused["code"] == "proxy_disallowed", refused
                assert "no valid right" in refused["message"]
                parent: dict[str, Any] = await parent_page.evaluate(
                    JOIN_JS,
                    {
                        "token": s.token(PARENT),
                        "room": "visit-1",
                        "joinParams": {"onBehalfOf": {"principal": CHILD.code}},
                    },
                )
                assert parent["ok"] is True, parent
                assert parent["self"]["displayName"] == "Paula Vanhempi for Ville Lapsi"
                await nurse_page.wait_for_function("window.joined.length === 1", timeout=10_000)
                seen: dict[str, Any] = await nurse_page.evaluate("window.joined[0]")
                assert seen["displayName"] == "Paula Vanhempi for Ville Lapsi", seen
                assert seen["attributes"]["onBehalfOf"]["basis"] == "GUARDIAN_OF_MINOR"
                listed = await nurse_page.evaluate("window.client.peers.map((p) => p.displayName)")
                assert listed == ["Paula Vanhempi for Ville Lapsi"], listed
                published: dict[str, Any] = await parent_page.evaluate(PUBLISH_JS)
                assert published["video"]["code"] == "not_permitted", published
                assert "may not send video" in published["video"]["message"]
                assert published["audio"]["kinds"] == ["audio"], published
                room = s.server.rooms["visit-1"]
                producer = room.router.producers[published["audio"]["ids"][0]]
                for _ in range(100):
                    if producer.stats()["packets"] > 20:
                        break
                    await asyncio.sleep(0.1)
                assert producer.stats()["packets"] > 20, producer.stats()
                records = [(r["decision"], r["reason"]) for r in await s.records()]
                assert records[1:] == [
                    ("proxy_refused", "no_grant"),
                    ("proxy_allowed", ""),
                ], records
                for page in (parent_page, nurse_page):
                    await page.evaluate("() => window.client.close()")
            finally:
                with contextlib.suppress(Exception):
                    await browser.close()

    run(main())
