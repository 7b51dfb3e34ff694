"""The visit service's parts without a server: the waiting room's rules, sessions (expiry on an
injected clock, CSRF, cookie flags), settings and secrets, the language choice, and the texts
(both languages for every key, and every key the browser scripts use sent to them)."""

from __future__ import annotations

import asyncio
import json
import re
import stat
import string
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from mediasrv_strongauth import loa

from examples.visit_service import lobby as lobby_module
from examples.visit_service import sessions as sessions_module
from examples.visit_service.config import (
    DEFAULT_UNITS,
    SECRET_NAMES,
    VisitConfig,
    VisitConfigError,
    load,
    load_secrets,
)
from examples.visit_service.lobby import MAX_MESSAGE, MAX_WAITING, Lobbies, Lobby, LobbyError
from examples.visit_service.sessions import COOKIE, IDLE_SECONDS, MAX_SECONDS, Sessions
from examples.visit_service.texts import CLIENT_KEYS, TEXTS, client_texts, pick_language, t
from mediasrv.plugin import Identity

ROOT = Path(__file__).resolve().parent.parent
VISIT = ROOT / "examples" / "visit_service"


# ---- the waiting room ----


def exactly(message: str) -> str:
    """A ``match=`` pattern for exactly this message."""
    return f"^{re.escape(message)}$"


def drain(queue: asyncio.Queue[Any]) -> list[Any]:
    found = []
    while not queue.empty():
        found.append(queue.get_nowait())
    return found


def test_lobby_arrive_decide_and_leave() -> None:
    lobby = Lobby("a1")
    watcher = lobby.watch()
    assert drain(watcher) == [[]]
    entry = lobby.arrive("p1", "Aino Asiakas", "client")
    assert (entry.state, entry.message, entry.actingFor) == ("waiting", "", "")
    assert not lobby.admitted("p1")
    (snapshot,) = drain(watcher)
    assert [(e["participantId"], e["state"]) for e in snapshot] == [("p1", "waiting")]

    held = lobby.decide("p1", "hold", "  Tulen pian.  ")
    assert (held.state, held.message) == ("held", "Tulen pian.")
    assert lobby.arrive("p1", "Aino Asiakas", "client").state == "held"  # a reload keeps it
    admitted = lobby.decide("p1", "admit")
    assert (admitted.state, admitted.message) == ("admitted", "")
    assert lobby.admitted("p1")
    again = lobby.arrive("p1", "Aino A.", "client", "")
    assert again is admitted and again.state == "admitted" and again.name == "Aino A."
    lobby.left("p1")  # closing the waiting-room page after being let in changes nothing
    assert lobby.admitted("p1")
    assert [s[0]["state"] for s in drain(watcher)] == ["held", "held", "admitted", "admitted"]

    lobby.arrive("p2", "Raili Sukulainen", "client", "Eino Vanhus")
    assert lobby.snapshot()[1]["actingFor"] == "Eino Vanhus"
    lobby.left("p2")
    assert lobby.entries["p2"].state == "left" and not lobby.admitted("p2")
    with pytest.raises(LobbyError, match=exactly("that participant is not in the waiting room")):
        lobby.decide("p2", "admit")
    with pytest.raises(LobbyError, match=exactly("that participant is not in the waiting room")):
        lobby.decide("p9", "admit")
    assert lobby.arrive("p2", "Raili Sukulainen", "client", "Eino Vanhus").state == "waiting"
    denied = lobby.decide("p2", "deny", "Väärä aika.")
    assert (denied.state, denied.message) == ("denied", "Väärä aika.")
    assert lobby.arrive("p2", "Raili Sukulainen", "client").state == "denied"
    assert lobby.decide("p2", "admit").state == "admitted"  # a professional may change a mind

    assert drain(watcher)[-1][1]["state"] == "admitted"
    lobby.unwatch(watcher)
    lobby.arrive("p3", "Teija Nuori", "client")
    assert drain(watcher) == []


def test_a_reloaded_waiting_room_page_stays_waiting() -> None:
    """A reload opens the new page before the old one is noticed gone: the participant left
    only when their last page closes."""
    lobby = Lobby("a1")
    lobby.arrive("p1", "Aino Asiakas", "client")
    lobby.arrive("p1", "Aino Asiakas", "client")  # the reloaded page
    lobby.left("p1")  # the old page, noticed late
    assert lobby.entries["p1"].state == "waiting"
    assert lobby.decide("p1", "admit").state == "admitted"
    lobby.left("p1")
    assert lobby.entries["p1"].state == "admitted"  # admitted people stay admitted


def test_a_lobby_decision_is_about_a_person_not_a_seat() -> None:
    """The client is let in; a delegate then arriving on the same seat waits anew, and the
    client's admission does not let the delegate in."""
    lobby = Lobby("a1")
    lobby.arrive("p1", "Eino Vanhus", "client", subject="eino")
    lobby.decide("p1", "admit")
    assert lobby.admitted("p1", "eino")
    entry = lobby.arrive("p1", "Raili Sukulainen", "client", "Eino Vanhus", subject="raili")
    assert entry.state == "waiting"
    assert not lobby.admitted("p1", "raili") and not lobby.admitted("p1", "eino")
    lobby.decide("p1", "admit")
    assert lobby.admitted("p1", "raili")


def test_lobby_refuses_bad_decisions() -> None:
    lobby = Lobby("a1")
    lobby.arrive("p1", "Aino Asiakas", "client")
    with pytest.raises(LobbyError, match=exactly("action must be one of admit, deny, hold")):
        lobby.decide("p1", "kick")
    with pytest.raises(LobbyError, match=exactly("holding someone needs a message for them")):
        lobby.decide("p1", "hold", "   ")
    with pytest.raises(LobbyError, match=exactly("holding someone needs a message for them")):
        lobby.decide("p1", "hold")
    too_long = exactly(f"the message is a text of at most {MAX_MESSAGE} characters")
    with pytest.raises(LobbyError, match=too_long):
        lobby.decide("p1", "hold", "x" * (MAX_MESSAGE + 1))
    with pytest.raises(LobbyError, match=too_long):
        lobby.decide("p1", "deny", 42)  # type: ignore[arg-type]
    assert lobby.entries["p1"].state == "waiting"  # nothing changed
    assert lobby.decide("p1", "hold", "x" * MAX_MESSAGE).message == "x" * MAX_MESSAGE


def test_lobby_limits_the_people_waiting() -> None:
    lobby = Lobby("a1")
    for n in range(MAX_WAITING):
        lobby.arrive(f"p{n}", f"Person {n}", "client")
    lobby.decide("p0", "hold", "Hetki vielä.")  # held people wait too
    with pytest.raises(LobbyError, match=exactly("the waiting room is full")):
        lobby.arrive("late", "Late", "client")
    assert lobby.arrive("p1", "Person 1 again", "client").state == "waiting"  # back: fine
    lobby.decide("p1", "admit")  # let in: a place is free
    assert lobby.arrive("late", "Late", "client").state == "waiting"
    with pytest.raises(LobbyError, match="full"):
        lobby.arrive("later", "Later", "client")
    lobby.left("p2")  # gone: a place is free
    assert lobby.arrive("later", "Later", "client").state == "waiting"


def test_lobby_watchers_keep_the_latest_snapshot() -> None:
    lobby = Lobby("a1")
    watcher = lobby.watch()
    for n in range(10):
        lobby.arrive(f"p{n}", f"Person {n}", "client")
    snapshots = drain(watcher)
    assert len(snapshots) == 4  # bounded: old snapshots dropped
    assert len(snapshots[-1]) == 10  # never the latest


def test_lobbies_drop_ends_the_waiting() -> None:
    lobbies = Lobbies()
    lobby = lobbies.get("a1")
    assert lobbies.get("a1") is lobby and lobbies.get("a2") is not lobby
    lobby.arrive("p1", "Aino", "client")
    lobby.arrive("p2", "Eino", "client")
    lobby.decide("p2", "admit")
    watcher = lobby.watch()
    drain(watcher)
    lobbies.drop("a1")
    found = drain(watcher)
    assert found[-1] is None  # the streams end
    (last,) = [s for s in found if s is not None]
    assert {e["participantId"]: e["state"] for e in last} == {"p1": "ended", "p2": "admitted"}
    assert lobbies.get("a1") is not lobby  # a fresh one
    lobbies.drop("nothing")  # no lobby: nothing happens


def test_lobby_constants_are_what_the_pages_say() -> None:
    assert lobby_module.ACTIONS == ("admit", "deny", "hold")
    assert MAX_MESSAGE == 300 and MAX_WAITING == 50


# ---- sessions ----


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def person(name: str = "Aino Asiakas", roles: frozenset[str] = frozenset()) -> Identity:
    return Identity(subject="s" * 32, display_name=name, roles=roles, plugin="strongauth")


def request_with(cookie: str | None) -> web.Request:
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie is not None else {}
    return make_mocked_request("GET", "/visit/", headers=headers)


def test_session_cookie_flags() -> None:
    for secure in (False, True):
        sessions = Sessions(secure=secure)
        response = web.Response()
        session = sessions.create(response, person())
        morsel = response.cookies[COOKIE]
        assert morsel.value == session.id and len(session.id) >= 40
        assert morsel["httponly"] is True
        assert morsel["samesite"] == "Lax"
        assert morsel["path"] == "/"
        assert bool(morsel["secure"]) is secure
        assert session.csrf != session.id
    text = response.cookies[COOKIE].OutputString()
    assert "HttpOnly" in text and "SameSite=Lax" in text and "Secure" in text


def test_session_identity_stays_on_the_server() -> None:
    sessions = Sessions(secure=False)
    response = web.Response()
    nurse = person("Hanna Hoitaja", frozenset({"professional"}))
    session = sessions.create(response, nurse)
    assert "Hanna" not in response.cookies[COOKIE].OutputString()
    found = sessions.get(request_with(session.id))
    assert found is session
    assert (found.subject, found.name, found.professional) == ("s" * 32, "Hanna Hoitaja", True)
    assert not sessions.create(web.Response(), person()).professional
    assert sessions.get(request_with(None)) is None
    assert sessions.get(request_with("nope")) is None
    assert sessions.get(request_with(session.id + "x" * 40)) is None  # longer than any id


def test_session_idle_and_absolute_expiry() -> None:
    clock = Clock()
    sessions = Sessions(secure=False, clock=clock)
    session = sessions.create(web.Response(), person())
    clock.now += IDLE_SECONDS - 1
    assert sessions.get(request_with(session.id)) is session  # in use: seen now
    clock.now += IDLE_SECONDS - 1
    assert sessions.get(request_with(session.id)) is session
    clock.now += IDLE_SECONDS + 1
    assert sessions.get(request_with(session.id)) is None  # idle too long
    assert len(sessions) == 0

    busy = sessions.create(web.Response(), person())
    started = clock.now
    while clock.now + 20 * 60 - started <= MAX_SECONDS:
        clock.now += 20 * 60
        assert sessions.get(request_with(busy.id)) is busy
    clock.now = started + MAX_SECONDS + 1
    assert sessions.get(request_with(busy.id)) is None  # eight hours at most, however busy
    assert len(sessions) == 0


def test_sessions_are_swept_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    sessions = Sessions(secure=False, clock=clock)
    stale = sessions.create(web.Response(), person())
    clock.now += IDLE_SECONDS + 1
    fresh = sessions.create(web.Response(), person())
    assert len(sessions) == 1 and sessions.get(request_with(stale.id)) is None
    monkeypatch.setattr(sessions_module, "MAX_SESSIONS", 3)
    clock.now += 1
    second = sessions.create(web.Response(), person())
    clock.now += 1
    third = sessions.create(web.Response(), person())
    clock.now += 1
    sessions.get(request_with(fresh.id))  # seen last: kept
    clock.now += 1
    sessions.create(web.Response(), person())
    assert len(sessions) == 3
    assert sessions.get(request_with(second.id)) is None  # the least recently seen went
    assert sessions.get(request_with(fresh.id)) is fresh
    assert sessions.get(request_with(third.id)) is third


def test_session_end_and_csrf() -> None:
    sessions = Sessions(secure=False)
    session = sessions.create(web.Response(), person())
    other = sessions.create(web.Response(), person())
    assert Sessions.csrf_ok(session, session.csrf)
    assert not Sessions.csrf_ok(session, other.csrf)
    assert not Sessions.csrf_ok(session, "")
    assert not Sessions.csrf_ok(session, None)
    assert not Sessions.csrf_ok(session, session.csrf[:-1])
    assert not Sessions.csrf_ok(session, 123)  # type: ignore[arg-type]
    assert len(session.csrf) >= 24 and session.csrf != other.csrf

    response = web.Response()
    sessions.end(request_with(session.id), response)
    assert sessions.get(request_with(session.id)) is None
    assert sessions.get(request_with(other.id)) is other
    gone = response.cookies[COOKIE]
    assert gone.value == "" and str(gone["max-age"]) == "0" and gone["path"] == "/"
    sessions.end(request_with("unknown"), web.Response())  # nothing to end: fine
    assert len(sessions) == 1


# ---- settings and secrets ----


def test_config_defaults_and_overrides() -> None:
    cfg = load()
    assert cfg == VisitConfig()
    assert (cfg.host, cfg.port, cfg.language, cfg.identity_provider) == (
        "127.0.0.1",
        8080,
        "fi",
        "dev",
    )
    assert cfg.units == DEFAULT_UNITS and cfg.min_acr == loa.FTN_LOA2
    assert cfg.url == "http://127.0.0.1:8080" and not cfg.secure_cookies
    made = load(None, port=0, units=["Neuvola"], public_url="https://visits.example/",
                language="en")  # fmt: skip
    assert made.units == ("Neuvola",) and made.port == 0
    assert made.url == "https://visits.example" and made.secure_cookies
    assert made.path("x.sqlite3") == str(Path(".visit-demo") / "x.sqlite3")
    oidc = load(None, identity_provider="oidc", oidc_issuer="https://broker.example")
    assert oidc.identity_provider == "oidc"
    assert "secret" not in repr(load(None, oidc_client_secret="secret"))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"colour": "blue"}, "visit.colour: not a setting (data_dir, demo_data, dev_idp_port, "),
        ({"port": "80"}, "visit.port: expected an integer, got '80'"),
        ({"port": True}, "visit.port: expected an integer, got True"),
        ({"port": 1.5}, "visit.port: expected an integer, got 1.5"),
        ({"demo_data": "yes"}, "visit.demo_data: expected true or false"),
        ({"demo_data": 1}, "visit.demo_data: expected true or false"),
        ({"units": "Lahti"}, "visit.units: expected a list"),
        ({"language": 1}, "visit.language: expected a string, got 1"),
        ({"port": 70000}, "visit.port: expected 0..65535, got 70000"),
        ({"dev_idp_port": -1}, "visit.dev_idp_port: expected 0..65535, got -1"),
        ({"language": "sv"}, "visit.language: expected 'fi' or 'en', got 'sv'"),
        ({"identity_provider": "saml"},
         "visit.identity_provider: expected 'dev' or 'oidc', got 'saml'"),
        ({"identity_provider": "oidc"},
         "visit.oidc_issuer: an https URL is required with 'oidc'"),
        ({"identity_provider": "oidc", "oidc_issuer": "http://broker.example"},
         "visit.oidc_issuer: an https URL is required with 'oidc'"),
        ({"min_acr": "loa9"}, "visit.min_acr: not a known level of assurance: 'loa9'"),
        ({"units": []}, "visit.units: a list of one or more unit names"),
        ({"units": ["Lahti", " "]}, "visit.units: a list of one or more unit names"),
        ({"units": ["Lahti", 3]}, "visit.units: a list of one or more unit names"),
        ({"video_width": 100}, "visit.video_width: expected 120..1920"),
        ({"video_height": 4000}, "visit.video_height: expected 120..1920"),
        ({"public_url": "ftp://visits.example"}, "visit.public_url: an http(s) URL"),
    ],
)  # fmt: skip
def test_config_refuses_bad_settings(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(VisitConfigError) as caught:
        load(None, **settings)
    assert str(caught.value).startswith(message), str(caught.value)


def test_config_from_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "visit.toml"
    path.write_text(
        '[visit]\nport = 9000\nlanguage = "en"\nunits = ["Neuvola", "Kotihoito"]\n'
        '[other]\nignored = true\n',
        "utf-8",
    )  # fmt: skip
    cfg = load(str(path))
    assert (cfg.port, cfg.language, cfg.units) == (9000, "en", ("Neuvola", "Kotihoito"))
    assert load(str(path), port=0).port == 0  # overrides win over the file
    empty = tmp_path / "empty.toml"
    empty.write_text("[other]\nx = 1\n", "utf-8")
    assert load(str(empty)) == VisitConfig()

    missing = tmp_path / "missing.toml"
    with pytest.raises(VisitConfigError) as caught:
        load(str(missing))
    assert str(caught.value) == f"{missing}: No such file or directory"
    broken = tmp_path / "broken.toml"
    broken.write_text("[visit\nport = 1\n", "utf-8")
    with pytest.raises(VisitConfigError) as caught:
        load(str(broken))
    assert str(caught.value).startswith(f"{broken}: ") and "line 1" in str(caught.value)
    scalar = tmp_path / "scalar.toml"
    scalar.write_text("visit = 3\n", "utf-8")
    with pytest.raises(VisitConfigError) as caught:
        load(str(scalar))
    assert str(caught.value) == f"{scalar}: [visit] must be a table"
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[visit]\nport = "eighty"\n', "utf-8")
    with pytest.raises(VisitConfigError, match=r"^visit\.port: expected an integer"):
        load(str(wrong))


def test_secrets_are_made_once_and_kept_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = load_secrets(str(data))  # the directory is made too
    path = data / "secrets.json"
    assert set(made) == set(SECRET_NAMES)
    assert all(isinstance(v, str) and len(v) >= 32 for v in made.values())
    assert len(set(made.values())) == len(SECRET_NAMES)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text("utf-8")) == made
    before = path.stat().st_mtime_ns, path.stat().st_ino
    assert load_secrets(str(data)) == made  # reused, the file untouched
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    assert not (data / "secrets.tmp").exists()

    partial = {**made, "session": "short"}
    del partial["chat_url"]
    path.write_text(json.dumps(partial), "utf-8")
    path.chmod(0o644)
    mended = load_secrets(str(data))
    assert {k: mended[k] for k in SECRET_NAMES if k not in ("session", "chat_url")} == {
        k: made[k] for k in SECRET_NAMES if k not in ("session", "chat_url")
    }
    assert len(mended["session"]) >= 32 and mended["session"] != "short"
    assert len(mended["chat_url"]) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secrets(str(data)) == mended


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "unreadable secrets file"), ("[1, 2]", "expected a JSON object")],
)
def test_secrets_file_errors(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "secrets.json").write_text(content, "utf-8")
    with pytest.raises(VisitConfigError) as caught:
        load_secrets(str(tmp_path))
    assert str(caught.value).startswith(f"{tmp_path / 'secrets.json'}: {message}")


# ---- languages and texts ----


@pytest.mark.parametrize(
    ("requested", "cookie", "accept", "default", "expected"),
    [
        ("en", "fi", "fi-FI", "fi", "en"),  # ?lang= first
        (None, "en", "fi-FI", "fi", "en"),  # then the cookie
        ("sv", "en", "fi", "fi", "en"),  # an unknown ?lang= is passed over
        (None, None, "sv-SE, en-GB;q=0.8, fi;q=0.5", "fi", "en"),  # the first one known
        (None, "de", "EN-us", "fi", "en"),
        (None, None, "fi-FI,fi;q=0.9", "en", "fi"),
        (None, None, "de-DE, sv", "en", "en"),  # none known: the default
        (None, None, "", "fi", "fi"),
        ("", "", " ; q=1, *", "en", "en"),
    ],
)
def test_pick_language(
    requested: str | None, cookie: str | None, accept: str, default: str, expected: str
) -> None:
    assert pick_language(requested, cookie, accept, default) == expected


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_text_has_both_languages_with_the_same_placeholders() -> None:
    for key, value in TEXTS.items():
        assert isinstance(value, tuple) and len(value) == 2, key
        fi, en = value
        assert fi.strip() and en.strip(), key
        assert placeholders(fi) == placeholders(en), key
        values = {name: "X" for name in placeholders(en)}
        assert t("en", key, **values) == en.format(**values)
        assert t("fi", key, **values) == fi.format(**values)
    assert t("en", "signed_in_as", name="Aino") == "Signed in: Aino"
    assert t("fi", "for_person", delegate="Raili", principal="Eino") == "Raili (Eino puolesta)"
    assert t("sv", "home") == "Etusivu"  # anything but English is Finnish


def test_the_browser_gets_every_text_its_scripts_use() -> None:
    assert set(CLIENT_KEYS) <= set(TEXTS)
    assert client_texts("en")["leave"] == "Leave" and client_texts("fi")["leave"] == "Poistu"
    assert set(client_texts("fi")) == set(CLIENT_KEYS)
    # the console's boot adds these families of texts (routes.console)
    console_extra = ("type_", "status_", "role_")
    checked = 0
    for script in ("visit.js", "console.js"):
        source = (VISIT / "static" / script).read_text("utf-8")
        literal = set(re.findall(r"\bT\.([A-Za-z_]\w*)", source))
        literal |= set(re.findall(r"\bT\[\s*['\"](\w+)['\"]\s*\]", source))
        for argument in re.findall(r"\bfmt\(\s*T\s*,\s*([^,]+),?", source):
            literal |= set(re.findall(r"['\"](\w+)['\"]", argument))
        prefixes = set(re.findall(r"\bT\[\s*`(\w+)\$\{", source))
        assert literal, script
        missing = sorted(k for k in literal if k not in CLIENT_KEYS)
        assert not missing, f"{script} uses texts the page does not get: {missing}"
        for prefix in prefixes:
            family = [k for k in TEXTS if k.startswith(prefix)]
            assert family, f"{script}: no texts {prefix}*"
            sent = script == "console.js" and prefix in console_extra
            assert sent or all(k in CLIENT_KEYS for k in family), f"{script}: {prefix}*"
        checked += len(literal) + len(prefixes)
    assert checked > 80


def test_every_text_the_server_uses_exists() -> None:
    used: set[str] = set()
    for module in ("routes.py", "pages.py"):
        source = (VISIT / module).read_text("utf-8")
        used |= set(re.findall(r"\bt\(\s*lang\s*,\s*['\"](\w+)['\"]", source))
    assert len(used) > 40
    assert not sorted(used - set(TEXTS))


def test_the_development_identity_provider_runs_on_loopback_only() -> None:
    with pytest.raises(VisitConfigError, match="loopback host only"):
        load(None, host="0.0.0.0")
    assert load(None, host="0.0.0.0", identity_provider="oidc",
                oidc_issuer="https://broker.example").host == "0.0.0.0"  # fmt: skip


def test_boot_data_cannot_end_its_script_element() -> None:
    from examples.visit_service.pages import layout

    page = layout("en", "t", "", boot={"title": "</script><!--<script>alert(1)"})
    script = page[page.index('<script type="application/json" id="boot">') :]
    script = script[: script.index("</script>") + len("</script>")]
    assert "<!--" not in script and script.count("<") == 2  # its own tags only
    assert json.loads(script[script.index(">") + 1 : script.rindex("<")]) == {
        "title": "</script><!--<script>alert(1)"
    }
