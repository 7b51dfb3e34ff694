"""Server-rendered HTML of the visit service: one layout (language switch, skip link, header,
main landmark, status region) and the pages. Every value is escaped here; scripts get their
data as JSON in a ``<script type="application/json">`` element."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from examples.visit_service.texts import t

e = html.escape


def layout(
    lang: str,
    title: str,
    body: str,
    *,
    name: str | None = None,
    csrf: str = "",
    here: str = "/visit/",
    scripts: Sequence[str] = (),
    boot: dict[str, Any] | None = None,
    wide: bool = False,
) -> str:
    other = "en" if lang == "fi" else "fi"
    service = t(lang, "service_name")
    full_title = title if title == service else f"{title} – {service}"
    sep = "&" if "?" in here else "?"
    switch = (
        f'<a href="{e(here)}{sep}lang={other}" lang="{other}" hreflang="{other}">'
        f"{e(t(lang, 'other_language'))}</a>"
    )
    account = ""
    if name:
        account = (
            f'<span class="who">{e(t(lang, "signed_in_as", name=name))}</span>'
            f'<form method="post" action="/visit/logout" class="inline">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}">'
            f'<button type="submit" class="link">{e(t(lang, "sign_out"))}</button></form>'
        )
    boot_json = ""
    if boot is not None:
        # no "<" at all inside the script element: "</script" and "<!--" cannot occur
        text = json.dumps(boot).replace("<", "\\u003c")
        boot_json = f'<script type="application/json" id="boot">{text}</script>'
    script_tags = "".join(
        f'<script type="module" src="/visit/static/{e(s)}"></script>' for s in scripts
    )
    return f"""<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(full_title)}</title>
<link rel="stylesheet" href="/visit/static/visit.css">
{boot_json}{script_tags}
</head>
<body>
<a class="skip" href="#main">{e(t(lang, "skip_to_content"))}</a>
<header class="top">
<a class="brand" href="/visit/">{e(t(lang, "service_name"))}</a>
<nav aria-label="{e(t(lang, "language"))}">{switch}</nav>
<div class="account">{account}</div>
</header>
<main id="main" class="{"wide" if wide else ""}" tabindex="-1">
{body}
</main>
</body>
</html>"""


def error_page(lang: str, message: str, *, name: str | None = None, csrf: str = "") -> str:
    body = (
        f'<h1>{e(t(lang, "error_title"))}</h1><p role="alert">{e(message)}</p>'
        f'<p><a href="/visit/">{e(t(lang, "back_home"))}</a></p>'
    )
    return layout(lang, t(lang, "error_title"), body, name=name, csrf=csrf)


def landing(lang: str, *, name: str | None, professional: bool, csrf: str, dev: bool) -> str:
    pro = (
        f'<p><a class="button" href="/visit/pro">{e(t(lang, "open_console"))}</a></p>'
        f'<p><a href="/visit/stats">{e(t(lang, "statistics"))}</a></p>'
        if professional
        else f'<p><a class="button" href="/visit/login?next=/visit/pro">'
        f"{e(t(lang, 'sign_in'))}</a></p>"
    )
    client = f"<p>{e(t(lang, 'client_help'))}</p>"
    if name:
        client += (
            f'<p><a href="/visit/visits">{e(t(lang, "my_visits"))}</a></p>'
            f'<p><a href="/visit/log">{e(t(lang, "my_log"))}</a></p>'
        )
    else:
        client += (
            f'<p><a href="/visit/login?next=/visit/visits">'
            f"{e(t(lang, 'sign_in'))}: {e(t(lang, 'my_visits'))}</a></p>"
        )
    notice = f'<p class="notice">{e(t(lang, "dev_notice"))}</p>' if dev else ""
    body = f"""<h1>{e(t(lang, "service_name"))}</h1>
<p class="lead">{e(t(lang, "landing_intro"))}</p>{notice}
<div class="cards">
<section aria-labelledby="pro-h" class="card">
<h2 id="pro-h">{e(t(lang, "for_professionals"))}</h2>{pro}</section>
<section aria-labelledby="client-h" class="card">
<h2 id="client-h">{e(t(lang, "for_clients"))}</h2>{client}</section>
</div>"""
    return layout(lang, t(lang, "service_name"), body, name=name, csrf=csrf)


def table(
    caption: str, headers: Sequence[str], rows: Sequence[Sequence[str]], *, raw: bool = False
) -> str:
    """A table; cells are escaped unless ``raw`` (then the caller escaped them)."""
    head = "".join(f'<th scope="col">{e(h)}</th>' for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if raw else e(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return (
        f'<div class="table-wrap" tabindex="0" role="region" aria-label="{e(caption)}">'
        f"<table><caption>{e(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></div>"
    )
