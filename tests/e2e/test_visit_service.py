"""End-to-end: the video visit service (examples/visit_service) in headless Chromium.

Real pieces only: the VisitService with the media server and its strongauth, proxy and chat
plugins, the development identity provider issuing signed ID tokens, SQLite, and Chromium pages
(one browser context per person) with fake cameras and microphones. Each step is checked on
the pages (what a person sees), media from the browsers' own getStats(), and every page is run
through axe-core (no serious or critical WCAG 2.1 AA violations). Screenshots of the steps go
to test-artifacts/visit/.
"""

from __future__ import annotations

import asyncio
import re
import struct
import zlib
from pathlib import Path

from playwright.async_api import FilePayload, Page, expect
from visit_support import (
    accessible,
    chromium,
    hears_audio,
    person_page,
    sees_video,
    shot,
    sign_in,
    visit_service,
)

TEST_TIMEOUT = 150.0
FETCH_BYTES_JS = "async (url) => Array.from(new Uint8Array(await (await fetch(url)).arrayBuffer()))"


def attachment(name: str, data: bytes) -> FilePayload:
    return {"name": name, "mimeType": "image/png", "buffer": data}


def tiny_png() -> bytes:
    """A real 2x2 PNG (the chat plugin checks the magic bytes)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))  # fmt: skip


async def book(
    page: Page, base: str, *, kind: str, title: str, people: list[dict[str, str]]
) -> dict[str, str]:
    """Book an appointment in the console; the invitation links by participant name."""
    await page.goto(f"{base}/visit/pro")
    await page.select_option("#type", kind)
    await page.fill("#title", title)
    for index, person in enumerate(people):
        if index:
            await page.get_by_role(
                "button", name=re.compile("Add participant|Lisää osallistuja")
            ).click()
        row = page.locator("fieldset.participant").nth(index)
        await row.locator("[name=role]").select_option(person["role"])
        await row.locator("[name=name]").fill(person["name"])
        if person.get("code"):
            await row.locator("[name=identityCode]").fill(person["code"])
        if person.get("actsFor"):
            await row.locator("[name=actsFor]").select_option(person["actsFor"])
    await page.locator("#new-appointment button[type=submit]").click()
    card = page.locator("article.appointment", has_text=title)
    await expect(card).to_be_visible()
    links: dict[str, str] = {}
    for person in people:
        field = card.get_by_label(re.compile(f"(Invitation link|Kutsulinkki): {person['name']}"))
        links[person["name"]] = await field.input_value()
    return links


async def enter(page: Page, *, professional: bool) -> None:
    """Pass the device check (camera preview, microphone, connection) and go on."""
    await expect(page.locator("#check-camera")).to_contain_text(re.compile("works|toimii"))
    await expect(page.locator("#check-connection")).to_contain_text(re.compile("ms"))
    await expect(page.locator("#continue")).to_be_enabled()
    await page.locator("#continue").click()
    if professional:
        await expect(page.locator("#grid")).to_be_visible()


def test_video_visit_from_booking_to_statistics(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A nurse books a 1:1 video visit, the client identifies, passes the device check, waits
    and is let in; both see and hear each other; chat and attachments both ways; recording with
    the client's consent; the nurse ends the visit; the client answers the survey; the
    statistics count the visit and the client's access log shows the nurse's access."""

    async def scenario() -> None:
        async with visit_service(tmp_path) as service, chromium() as browser:
            base = service.url
            nurse = await person_page(browser, locale="en-GB")
            client = await person_page(browser, locale="fi-FI")

            await sign_in(nurse, f"{base}/visit/login?next=/visit/pro", "Hanna Hoitaja")
            await expect(nurse.locator("h1")).to_have_text("Appointments")
            await accessible(nurse, "console")
            await shot(nurse, "01-console")
            links = await book(nurse, base, kind="video_visit", title="Verenpaineen seuranta",
                               people=[{"role": "client", "name": "Aino Asiakas"}])  # fmt: skip
            await shot(nurse, "02-appointment-booked")
            await accessible(nurse, "console with an appointment")

            await nurse.get_by_role("link", name=re.compile("Open the visit")).click()
            await enter(nurse, professional=True)

            await sign_in(client, links["Aino Asiakas"], "Aino Asiakas")
            await expect(client.locator("#check-h")).to_have_text("Laitteiden tarkistus")
            await expect(client.locator("#check-camera")).to_contain_text("toimii")
            await accessible(client, "device check")
            await shot(client, "03-device-check")
            await enter(client, professional=False)
            await expect(client.locator("#waiting-status")).to_contain_text("Odota")
            await accessible(client, "waiting room")
            await shot(client, "04-waiting-room")

            lobby = nurse.locator("#lobby li", has_text="Aino Asiakas")
            await expect(lobby).to_be_visible()
            await accessible(nurse, "visit with someone waiting")
            await shot(nurse, "05-lobby")
            await nurse.get_by_role("button", name="Let in: Aino Asiakas").click()

            await expect(client.locator("#grid")).to_be_visible()
            await sees_video(client, 1)
            await sees_video(nurse, 1)
            await hears_audio(client)
            await hears_audio(nurse)
            await expect(nurse.locator("#people")).to_contain_text("Aino Asiakas")
            await expect(client.locator("#people")).to_contain_text("Hanna Hoitaja")
            await expect(client.locator("#quality")).to_contain_text(
                re.compile("hyvä|kohtalainen"), timeout=15000
            )

            # chat and attachments, both ways
            await nurse.fill("#chat-text", "Hei Aino, kuuluuko?")
            await nurse.locator("#chat-form button[type=submit]").click()
            await expect(client.locator("#messages")).to_contain_text("Hei Aino, kuuluuko?")
            await client.fill("#chat-text", "Kuuluu hyvin!")
            await client.locator("#chat-form button[type=submit]").click()
            await expect(nurse.locator("#messages")).to_contain_text("Kuuluu hyvin!")
            png = tiny_png()
            await client.set_input_files(
                "#chat-file",
                files=attachment("verenpaine.png", png),
            )
            got = nurse.locator("#messages a.attachment", has_text="verenpaine.png")
            await expect(got).to_have_attribute("href", re.compile("/plugins/chat/files/"))
            body = await nurse.evaluate(FETCH_BYTES_JS, await got.get_attribute("href"))
            assert bytes(body) == png
            await nurse.set_input_files("#chat-file", files=attachment("ohje.png", png))
            back = client.locator("#messages a.attachment", has_text="ohje.png")
            await expect(back).to_have_attribute("href", re.compile("/plugins/chat/files/"))

            # screen share: a second video for the client while it runs
            await nurse.locator("#share").click()
            await expect(nurse.locator("#share")).to_have_attribute("aria-pressed", "true")
            await sees_video(client, 2)
            await nurse.locator("#share").click()
            await expect(nurse.locator("#share")).to_have_attribute("aria-pressed", "false")
            await expect(client.locator("#grid figure.tile")).to_have_count(2)  # own + the nurse

            # recording, with the client's consent
            await nurse.locator("#record").click()
            await expect(client.locator("#consent")).to_be_visible()
            await accessible(client, "consent dialog")
            await shot(client, "06-consent")
            await client.locator("#consent-yes").click()
            await expect(nurse.locator("#recording")).to_be_visible()
            await expect(client.locator("#recording")).to_be_visible()
            await accessible(nurse, "visit in progress")
            await accessible(client, "visit in progress (client)")
            await shot(nurse, "07-visit-nurse")
            await shot(client, "08-visit-client")

            # the nurse ends the visit; the client gets the survey link (and it is in the chat)
            await nurse.locator("#end").click()
            await nurse.locator("#end-confirm").click()
            await expect(client.locator("#survey-link")).to_be_visible()
            await shot(client, "09-visit-ended")
            await client.locator("#survey-link").click()
            await expect(client.locator("h1")).to_have_text("Palautekysely")
            await accessible(client, "survey")
            await client.locator("label.nps", has_text="9").click()
            await client.fill("#comment", "Sujui hyvin.")
            await client.get_by_role("button", name="Lähetä vastaus").click()
            await expect(client.locator("[role=status]")).to_contain_text("Kiitos")
            await shot(client, "10-survey-answered")

            await nurse.goto(f"{base}/visit/stats")
            month = service.now().strftime("%Y-%m")
            visits = nurse.locator(
                "table", has=nurse.locator("caption", has_text="Visits by month")
            )
            await expect(visits.locator("tr", has_text=month)).to_contain_text("1")
            nps = nurse.locator("table", has=nurse.locator("caption", has_text="NPS"))
            await expect(nps.locator("tr", has_text=month)).to_contain_text("100")
            await accessible(nurse, "statistics")
            await shot(nurse, "11-statistics")

            await client.goto(f"{base}/visit/log")
            row = client.locator("tr", has_text="Hanna Hoitaja").filter(
                has_text="liittyi vastaanotolle"
            )
            await expect(row.first).to_contain_text("hoitosuhde")
            await accessible(client, "access log")
            await shot(client, "12-access-log")

    run(asyncio.wait_for(scenario(), TEST_TIMEOUT))


def code_of(key: str) -> str:
    from examples.visit_service.dev_idp import TEST_PEOPLE

    return next(p.identity_code for p in TEST_PEOPLE if p.key == key)


NO_SIDEWAYS_SCROLL_JS = "() => document.documentElement.scrollWidth <= window.innerWidth + 1"


def test_relative_joins_on_behalf_of_an_elderly_client(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A home-care call booked for Eino; Raili, who has a mandate, opens his invitation on a
    phone, is offered to join on his behalf, is shown as "Raili Sukulainen for Eino Vanhus",
    and Eino's access log shows that she acted for him."""

    async def scenario() -> None:
        async with visit_service(tmp_path) as service, chromium() as browser:
            base = service.url
            nurse = await person_page(browser)
            relative = await person_page(browser, locale="en-GB", phone=True)
            await sign_in(nurse, f"{base}/visit/login?next=/visit/pro", "Hanna Hoitaja")
            links = await book(nurse, base, kind="home_care_call", title="Kotihoidon soitto",
                               people=[{"role": "client", "name": "Eino Vanhus",
                                        "code": code_of("elder")}])  # fmt: skip
            await nurse.get_by_role("link", name=re.compile("Open the visit")).click()
            await enter(nurse, professional=True)

            await sign_in(relative, links["Eino Vanhus"], "Raili Sukulainen")
            await expect(relative.locator("#acting")).to_contain_text("on behalf of Eino Vanhus")
            assert await relative.evaluate(NO_SIDEWAYS_SCROLL_JS), "the device check reflows"
            await accessible(relative, "device check on a phone")
            await shot(relative, "20-on-behalf-device-check-phone")
            await enter(relative, professional=False)
            entry = nurse.locator("#lobby li", has_text="Raili Sukulainen")
            await expect(entry).to_contain_text("Eino Vanhus")
            await nurse.locator("#lobby li button", has_text="Let in").first.click()
            await expect(nurse.locator("#people")).to_contain_text(
                "Raili Sukulainen for Eino Vanhus"
            )
            await sees_video(nurse, 1)
            await sees_video(relative, 1)
            assert await relative.evaluate(NO_SIDEWAYS_SCROLL_JS), "the visit reflows on a phone"
            await accessible(relative, "visit on a phone")
            await shot(relative, "21-on-behalf-visit-phone")
            await shot(nurse, "22-on-behalf-nurse")
            await nurse.locator("#end").click()
            await nurse.locator("#end-confirm").click()
            await expect(relative.locator("#survey-link")).to_be_visible()

            elder = await person_page(browser)
            await sign_in(elder, f"{base}/visit/log", "Eino Vanhus")
            acted = elder.locator("tr", has_text="Raili Sukulainen").filter(
                has_text="acted on your behalf"
            )
            await expect(acted.first).to_contain_text("MANDATE")
            await accessible(elder, "access log of a principal")
            await shot(elder, "23-elder-access-log")

    run(asyncio.wait_for(scenario(), TEST_TIMEOUT))


def test_group_visit_with_four_participants(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A nurse, a doctor and two clients in a group visit: each sees the three others; a
    microphone muted from the keyboard shows on the others' participant lists."""

    async def scenario() -> None:
        async with visit_service(tmp_path) as service, chromium() as browser:
            base = service.url
            nurse = await person_page(browser)
            await sign_in(nurse, f"{base}/visit/login?next=/visit/pro", "Hanna Hoitaja")
            links = await book(nurse, base, kind="group_visit", title="Ryhmävastaanotto",
                               people=[{"role": "professional", "name": "Lauri Lääkäri",
                                        "code": code_of("doctor")},
                                       {"role": "client", "name": "Aino Asiakas"},
                                       {"role": "client", "name": "Paula Vanhempi"}])  # fmt: skip
            await nurse.get_by_role("link", name=re.compile("Open the visit")).click()
            await enter(nurse, professional=True)
            doctor = await person_page(browser)
            await sign_in(doctor, links["Lauri Lääkäri"], "Lauri Lääkäri")
            await enter(doctor, professional=True)
            clients = []
            for name in ("Aino Asiakas", "Paula Vanhempi"):
                page = await person_page(browser)
                await sign_in(page, links[name], name)
                await enter(page, professional=False)
                await nurse.get_by_role("button", name=f"Let in: {name}").click()
                await expect(page.locator("#grid")).to_be_visible()
                clients.append(page)
            everyone = [nurse, doctor, *clients]
            for page in everyone:
                await sees_video(page, 3)
                await expect(page.locator("#people-h")).to_contain_text("(4)")
            await accessible(nurse, "group visit")
            await shot(nurse, "30-group-visit")

            await nurse.locator("#mute").focus()
            await nurse.keyboard.press("Enter")
            await expect(nurse.locator("#mute")).to_have_attribute("aria-pressed", "true")
            for page in (doctor, *clients):
                await expect(page.locator("#people li", has_text="Hanna Hoitaja")).to_contain_text(
                    "microphone muted"
                )
            await nurse.locator("#end").click()
            await nurse.locator("#end-confirm").click()
            for page in (doctor, *clients):
                await expect(page.locator("#ended-h")).to_be_visible()

    run(asyncio.wait_for(scenario(), TEST_TIMEOUT))
