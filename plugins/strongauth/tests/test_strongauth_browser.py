"""Strong authentication from a browser: a headless Chromium page (Debian chromium, Playwright)
joins with a valid ID token from the local test issuer and is refused with an invalid one, the
refusal code reaching the page through the browser SDK; both attempts are audited."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright
from test_strongauth import HETU, expected_subject, run, strongauth

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
]  # fmt: skip

JOIN_JS = """
async ({token, room}) => {
  const { Client } = await import('/client/mediasrv-client.js');
  try {
    const client = await Client.connect(location.origin, {token, room});
    window.client = client;
    return {ok: true, peerId: client.peerId};
  } catch (error) {
    return {ok: false, code: error.code, message: error.message};
  }
}
"""


def test_a_browser_joins_with_a_valid_token_and_is_refused_with_an_invalid_one(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with strongauth(tmp_path) as setup, async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True
            )
            try:
                page = await (await browser.new_context()).new_page()
                await page.goto(f"http://127.0.0.1:{setup.port}/healthz")
                issuer = setup.issuer
                expired = issuer.token(issuer.claims(exp=1_000_000_000))
                refused: dict[str, Any] = await page.evaluate(
                    JOIN_JS, {"token": expired, "room": "visit-1"}
                )
                assert refused["ok"] is False and refused["code"] == "token_expired", refused
                assert HETU not in refused["message"]
                joined: dict[str, Any] = await page.evaluate(
                    JOIN_JS, {"token": issuer.token(), "room": "visit-1"}
                )
                assert joined["ok"] is True, joined
                peer = setup.server.rooms["visit-1"].peers[joined["peerId"]]
                assert peer.identity is not None
                assert peer.identity.subject == expected_subject()
                records = await setup.records()
                decisions = [(r["decision"], r["reason"]) for r in records[:2]]
                assert decisions[0] == ("refused", "token_expired"), records
                assert decisions[1][0] == "accepted", records
                await page.evaluate("() => window.client.close()")
            finally:
                with contextlib.suppress(Exception):
                    await browser.close()

    run(main())
