"""The axe-core helper against a headless Chromium page (no server): it reports the serious
problems of a page with a nameless image button and low-contrast text, and none on clean markup."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import axe_support
import pytest
from axe_support import axe_violations, describe
from browser_support import CHROMIUM, CHROMIUM_ARGS
from playwright.async_api import Page, async_playwright

TEST_TIMEOUT = 30.0

BAD_PAGE = """<!doctype html>
<html lang="en"><head><title>Bad</title></head>
<body style="background: #fff">
  <main>
    <h1>Room</h1>
    <button id="mute"><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt=""></button>
    <p id="faint" style="color: #bbb; background: #fff">Waiting for others to join</p>
  </main>
</body></html>
"""

GOOD_PAGE = """<!doctype html>
<html lang="en"><head><title>Join a room</title></head>
<body style="background: #fff; color: #222">
  <main>
    <h1>Join a room</h1>
    <form>
      <label for="name">Your name</label>
      <input id="name" type="text" autocomplete="name">
      <button type="submit">Join</button>
    </form>
  </main>
</body></html>
"""


@contextlib.asynccontextmanager
async def blank_page() -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield await (await browser.new_context()).new_page()
        finally:
            with contextlib.suppress(Exception):
                await browser.close()


def run_on_page(body: Callable[[Page], Awaitable[None]]) -> None:
    async def main() -> None:
        async with blank_page() as page:
            await body(page)

    asyncio.run(asyncio.wait_for(main(), TEST_TIMEOUT))


def by_id(violations: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {v["id"]: v for v in violations}


def test_reports_nameless_image_button_and_low_contrast_text() -> None:
    async def body(page: Page) -> None:
        await page.set_content(BAD_PAGE)
        violations = await axe_violations(page)
        found = by_id(violations)
        assert {"button-name", "color-contrast"} <= found.keys(), describe(violations)
        assert found["button-name"]["impact"] == "critical", describe(violations)
        assert found["color-contrast"]["impact"] == "serious", describe(violations)
        assert found["button-name"]["nodes"][0]["target"] == ["#mute"]
        assert found["color-contrast"]["nodes"][0]["target"] == ["#faint"]
        assert "#mute" in describe(violations)

        # excluded parts are not checked; a second run reuses the injected axe
        rest = by_id(await axe_violations(page, exclude=["#mute", "#faint"]))
        assert not {"button-name", "color-contrast"} & rest.keys(), describe(list(rest.values()))

    run_on_page(body)


def test_clean_page_has_no_violations(monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(page: Page) -> None:
        await page.set_content(GOOD_PAGE)
        with monkeypatch.context() as patch:
            patch.setattr(axe_support, "AXE_JS", axe_support.AXE_JS.with_name("missing.js"))
            with pytest.raises(RuntimeError, match="make test"):
                await axe_violations(page)
        violations = await axe_violations(
            page, impacts=("minor", "moderate", "serious", "critical")
        )
        assert violations == [], describe(violations)

    run_on_page(body)
