"""The visit service in browser tests: a VisitService on loopback (HTTP port 0, the development
identity provider on port 0, a temporary data directory, the test people and their grants),
one headless Chromium whose contexts are different people, sign-in through the development
identity provider's login page, screenshots (test-artifacts/visit/) and media checks read from
the pages' own getStats()."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from axe_support import axe_violations, describe
from browser_support import CHROMIUM, CHROMIUM_ARGS
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from visit_http_support import visit_service as http_visit_service

ROOT = Path(__file__).resolve().parent.parent.parent
SHOTS = ROOT / "test-artifacts" / "visit"
STEP = 20.0  # seconds: any single wait


def visit_service(data_dir: Path, **settings: Any) -> Any:
    """The HTTP tests' service (tests/visit_http_support.py) with a small camera: four pages
    publish at once on two cores."""
    return http_visit_service(data_dir, **{"video_width": 640, "video_height": 480, **settings})


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required",
                  "--auto-select-desktop-capture-source=Entire screen"],
            headless=True,
        )  # fmt: skip
        try:
            yield browser
        finally:
            with contextlib.suppress(Exception):
                await browser.close()


async def person_page(browser: Browser, *, locale: str = "en-GB", phone: bool = False) -> Page:
    """A page of its own browser context (cookies: one person). axe-core is injected by the
    tests, so the context bypasses the service's Content-Security-Policy."""
    viewport = {"width": 390, "height": 844} if phone else {"width": 1280, "height": 900}
    context: BrowserContext = await browser.new_context(
        locale=locale,
        bypass_csp=True,
        viewport=viewport,  # type: ignore[arg-type]
    )
    page = await context.new_page()
    page.set_default_timeout(STEP * 1000)
    return page


async def sign_in(page: Page, url: str, person: str) -> None:
    """Open ``url`` (a page that needs sign-in) and pick ``person`` at the identity provider."""
    await page.goto(url)
    await page.get_by_role("button", name=person).click()
    await page.wait_for_load_state()


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def accessible(page: Page, where: str) -> None:
    """Zero serious or critical WCAG 2.1 A/AA violations (axe-core) on the page as it is."""
    found = await axe_violations(page)
    assert not found, f"{where}: {describe(found)}"


async def until(check: Callable[[], Awaitable[Any]], what: str, limit: float = STEP) -> Any:
    """Poll ``check`` until it returns something true; its value."""
    deadline = time.monotonic() + limit
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out after {limit} s waiting for {what} (last: {last!r})")


REMOTE_VIDEO_JS = """
() => [...document.querySelectorAll('#grid figure.tile')]
  .filter((f) => f.dataset.key !== 'local')
  .map((f) => ({name: f.querySelector('.name')?.textContent || '',
                width: f.querySelector('video').videoWidth,
                time: f.querySelector('video').currentTime}))
"""

AUDIO_IN_JS = """
async () => {
  const pc = window.visitClient && window.visitClient.recvPc;
  if (!pc) return {packets: 0, energy: 0};
  let packets = 0, energy = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      packets += s.packetsReceived || 0;
      energy += s.totalAudioEnergy || 0;
    }
  });
  return {packets, energy};
}
"""


async def sees_video(page: Page, count: int) -> list[dict[str, Any]]:
    """Wait until ``count`` remote videos play (decoded size and advancing time)."""

    async def playing() -> list[dict[str, Any]] | None:
        first = await page.evaluate(REMOTE_VIDEO_JS)
        await asyncio.sleep(0.4)
        second = await page.evaluate(REMOTE_VIDEO_JS)
        moving = [
            b
            for a, b in zip(first, second, strict=False)
            if b["width"] > 0 and b["time"] > a["time"]
        ]
        return moving if len(moving) >= count else None

    found: list[dict[str, Any]] = await until(playing, f"{count} playing remote video(s)")
    return found


async def hears_audio(page: Page) -> dict[str, Any]:
    async def heard() -> dict[str, Any] | None:
        stats: dict[str, Any] = await page.evaluate(AUDIO_IN_JS)
        return stats if stats["packets"] > 20 and stats["energy"] > 0 else None

    found: dict[str, Any] = await until(heard, "remote audio with energy")
    return found
