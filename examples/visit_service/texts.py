"""The visit service's texts in Finnish and English (``t(lang, key, **values)``); the browser
gets the ones its scripts need (``CLIENT_KEYS``)."""

from __future__ import annotations

from typing import Any

LANGUAGES = ("fi", "en")

TEXTS: dict[str, tuple[str, str]] = {
    # -- common
    "service_name": ("Etävastaanotto", "Video visits"),
    "skip_to_content": ("Siirry sisältöön", "Skip to content"),
    "language": ("Kieli", "Language"),
    "other_language": ("In English", "Suomeksi"),
    "sign_in": ("Tunnistaudu", "Sign in"),
    "sign_out": ("Kirjaudu ulos", "Sign out"),
    "signed_in_as": ("Tunnistautunut: {name}", "Signed in: {name}"),
    "home": ("Etusivu", "Home"),
    "error_title": ("Virhe", "Error"),
    "forbidden": ("Sinulla ei ole pääsyä tälle sivulle.", "You do not have access to this page."),
    "not_found": ("Sivua ei löydy.", "The page was not found."),
    "back_home": ("Palaa etusivulle", "Back to the home page"),
    # -- landing
    "landing_intro": (
        "Tapaa hoitaja, lääkäri tai sosiaalityöntekijä videoyhteydellä kotoa käsin.",
        "Meet your nurse, doctor or social worker by video from home.",
    ),
    "for_professionals": ("Ammattilaisille", "For professionals"),
    "for_clients": ("Asiakkaille", "For clients"),
    "open_console": ("Avaa ajanvaraus ja vastaanotot", "Open appointments and visits"),
    "client_help": (
        "Saat kutsulinkin tekstiviestillä tai sähköpostilla. Avaa linkki ja tunnistaudu.",
        "You get an invitation link by text message or e-mail. Open it and identify yourself.",
    ),
    "my_visits": ("Omat käyntini", "My visits"),
    "my_log": ("Tietojeni käyttöloki", "Access log of my data"),
    "statistics": ("Tilastot", "Statistics"),
    "dev_notice": (
        "Kehitysympäristö: tunnistus tapahtuu testihenkilöillä.",
        "Development environment: identification uses test people.",
    ),
    # -- console
    "console_title": ("Vastaanotot", "Appointments"),
    "calendar": ("Kalenteri", "Calendar"),
    "no_appointments": ("Ei varattuja aikoja tällä viikolla.", "No appointments this week."),
    "previous_week": ("Edellinen viikko", "Previous week"),
    "next_week": ("Seuraava viikko", "Next week"),
    "new_appointment": ("Uusi ajanvaraus", "New appointment"),
    "visit_type": ("Käyntityyppi", "Visit type"),
    "type_video_visit": ("Videovastaanotto (1:1)", "Video visit (1:1)"),
    "type_group_visit": ("Ryhmävastaanotto", "Group visit"),
    "type_network_meeting": ("Verkostopalaveri", "Network meeting"),
    "type_consultation": ("Ammattilaisten konsultaatio", "Professional consultation"),
    "type_home_care_call": ("Kotihoidon videopuhelu", "Home-care video call"),
    "unit": ("Yksikkö", "Unit"),
    "title": ("Aihe", "Subject"),
    "starts_at": ("Alkaa", "Starts"),
    "duration": ("Kesto", "Duration"),
    "minutes": ("{n} min", "{n} min"),
    "participants": ("Osallistujat", "Participants"),
    "participant": ("Osallistuja {n}", "Participant {n}"),
    "role": ("Rooli", "Role"),
    "role_professional": ("Ammattilainen", "Professional"),
    "role_client": ("Asiakas", "Client"),
    "role_relative": ("Omainen tai läheinen", "Relative or close person"),
    "name": ("Nimi", "Name"),
    "identity_code": ("Henkilötunnus (valinnainen)", "Identity code (optional)"),
    "identity_code_help": (
        "Jos annat henkilötunnuksen, vain tämä henkilö voi käyttää kutsua. Tunnusta ei tallenneta.",
        "With an identity code only this person can use the invitation. The code is not stored.",
    ),
    "on_behalf_of": ("Asioi asiakkaan puolesta", "Acts for the client"),
    "add_participant": ("Lisää osallistuja", "Add participant"),
    "remove_participant": ("Poista osallistuja {n}", "Remove participant {n}"),
    "create": ("Varaa aika", "Book the appointment"),
    "created": ("Aika varattu: {title}", "Appointment booked: {title}"),
    "invitation_links": ("Kutsulinkit", "Invitation links"),
    "invitation_for": ("Kutsulinkki: {name}", "Invitation link: {name}"),
    "copy": ("Kopioi", "Copy"),
    "copy_link_for": ("Kopioi kutsulinkki: {name}", "Copy the invitation link: {name}"),
    "copied": ("Linkki kopioitu leikepöydälle.", "Link copied to the clipboard."),
    "open_visit": ("Avaa vastaanotto", "Open the visit"),
    "status": ("Tila", "Status"),
    "status_scheduled": ("Varattu", "Scheduled"),
    "status_in_progress": ("Käynnissä", "In progress"),
    "status_ended": ("Päättynyt", "Ended"),
    "status_cancelled": ("Peruttu", "Cancelled"),
    "cancel_appointment": ("Peru aika", "Cancel the appointment"),
    "form_errors": ("Tarkista lomake: {error}", "Please check the form: {error}"),
    # -- invitation and device check
    "invitation_title": ("Kutsu etävastaanotolle", "Invitation to a video visit"),
    "identify_to_continue": (
        "Tunnistaudu vahvasti jatkaaksesi vastaanotolle.",
        "Identify yourself strongly to continue to the visit.",
    ),
    "invitation_invalid": (
        "Kutsulinkki ei kelpaa: {error}",
        "The invitation is not valid: {error}",
    ),
    "device_check": ("Laitteiden tarkistus", "Device check"),
    "camera_preview": ("Kameran esikatselu", "Camera preview"),
    "microphone_level": ("Mikrofonin äänitaso", "Microphone level"),
    "connection_test": ("Yhteystesti", "Connection test"),
    "checking": ("Tarkistetaan…", "Checking…"),
    "camera_ok": ("Kamera toimii.", "The camera works."),
    "camera_failed": (
        "Kameraa ei saatu käyttöön: {error}",
        "The camera could not be used: {error}",
    ),
    "mic_ok": ("Mikrofoni toimii.", "The microphone works."),
    "connection_ok": ("Yhteys toimii ({ms} ms).", "The connection works ({ms} ms)."),
    "connection_failed": ("Yhteys palvelimeen ei toimi.", "The server cannot be reached."),
    "join_as": ("Osallistun", "I am joining"),
    "join_as_myself": ("omana itsenäni", "as myself"),
    "join_for": ("{name} puolesta", "on behalf of {name}"),
    "continue_to_waiting": ("Siirry odotushuoneeseen", "Go to the waiting room"),
    "start_visit": ("Aloita vastaanotto", "Start the visit"),
    # -- waiting room
    "waiting_room": ("Odotushuone", "Waiting room"),
    "waiting": (
        "Odota, ammattilainen päästää sinut pian sisään.",
        "Please wait: the professional will let you in soon.",
    ),
    "held": (
        "Ammattilainen pyytää odottamaan: {message}",
        "The professional asks you to wait: {message}",
    ),
    "denied": ("Et päässyt vastaanotolle. {message}", "You were not let in. {message}"),
    "admitted": ("Pääset sisään. Yhdistetään…", "You are let in. Connecting…"),
    "visit_over": ("Vastaanotto on päättynyt.", "The visit has ended."),
    "lobby": ("Odottajat", "Waiting"),
    "lobby_empty": ("Kukaan ei odota.", "Nobody is waiting."),
    "admit": ("Päästä sisään", "Let in"),
    "deny": ("Älä päästä", "Deny"),
    "hold": ("Pyydä odottamaan", "Ask to wait"),
    "hold_message": ("Viesti odottajalle", "Message to the person waiting"),
    "hold_default": (
        "Edellinen vastaanotto jatkuu, tulen pian.",
        "My previous visit runs late, I will be with you soon.",
    ),
    "lobby_arrived": ("{name} odottaa odotushuoneessa.", "{name} is in the waiting room."),
    # -- in the visit
    "visit": ("Vastaanotto", "Visit"),
    "you": ("Sinä", "You"),
    "for_person": ("{delegate} ({principal} puolesta)", "{delegate} for {principal}"),
    "mute": ("Mykistä mikrofoni", "Mute the microphone"),
    "unmute": ("Mikrofoni mykistetty – poista mykistys", "Microphone muted – unmute"),
    "camera_off": ("Sulje kamera", "Turn the camera off"),
    "camera_on": ("Kamera suljettu – avaa kamera", "Camera off – turn it on"),
    "share_screen": ("Jaa näyttö", "Share the screen"),
    "stop_share": ("Lopeta näytön jakaminen", "Stop sharing the screen"),
    "chat": ("Keskustelu", "Chat"),
    "message": ("Viesti", "Message"),
    "send": ("Lähetä", "Send"),
    "attach": ("Liitä tiedosto", "Attach a file"),
    "attachment_sent": ("Liite lähetetty: {name}", "Attachment sent: {name}"),
    "attachment_failed": (
        "Liitettä ei voitu lähettää: {error}",
        "The attachment could not be sent: {error}",
    ),
    "open_attachment": ("Avaa liite {name}", "Open the attachment {name}"),
    "participants_list": ("Osallistujat ({n})", "Participants ({n})"),
    "muted": ("mikrofoni mykistetty", "microphone muted"),
    "camera_is_off": ("kamera suljettu", "camera off"),
    "record": ("Pyydä lupa tallentaa", "Ask to record"),
    "stop_record": ("Lopeta tallennus", "Stop recording"),
    "recording_on": ("Tallennus käynnissä", "Recording"),
    "recording_off": ("Tallennus päättyi", "Recording stopped"),
    "recording_waiting": ("Odotetaan suostumusta: {names}", "Waiting for consent: {names}"),
    "consent_title": ("Suostumus tallennukseen", "Consent to recording"),
    "consent_question": (
        "{name} pyytää lupaa tallentaa tämän vastaanoton. Tallenne liitetään asiakirjoihisi. Suostutko?",
        "{name} asks to record this visit. The recording is kept with your records. Do you consent?",
    ),
    "consent_yes": ("Kyllä, saa tallentaa", "Yes, you may record"),
    "consent_no": ("Ei, älä tallenna", "No, do not record"),
    "consent_given": ("{name} suostui tallennukseen.", "{name} consented to recording."),
    "consent_refused": ("{name} kieltäytyi tallennuksesta.", "{name} refused recording."),
    "quality": ("Yhteyden laatu", "Connection quality"),
    "quality_good": ("hyvä", "good"),
    "quality_fair": ("kohtalainen", "fair"),
    "quality_poor": ("heikko", "poor"),
    "quality_unknown": ("mitataan", "measuring"),
    "leave": ("Poistu", "Leave"),
    "end_visit": ("Päätä vastaanotto", "End the visit"),
    "cancel": ("Peruuta", "Cancel"),
    "end_confirm": ("Päätetäänkö vastaanotto kaikilta?", "End the visit for everyone?"),
    "joined": ("{name} liittyi.", "{name} joined."),
    "left": ("{name} poistui.", "{name} left."),
    "speaking": ("puhuu", "speaking"),
    "visit_ended": (
        "Vastaanotto päättyi. Kiitos! Kerro mielipiteesi palautekyselyssä.",
        "The visit has ended. Thank you! Please tell us what you thought in the survey.",
    ),
    "survey_link": ("Vastaa palautekyselyyn", "Answer the feedback survey"),
    "disconnected": ("Yhteys katkesi. Yhdistetään uudelleen…", "Disconnected. Reconnecting…"),
    "join_failed": (
        "Vastaanotolle liittyminen epäonnistui: {error}",
        "Joining the visit failed: {error}",
    ),
    # -- survey
    "survey_title": ("Palautekysely", "Feedback survey"),
    "nps_question": (
        "Kuinka todennäköisesti suosittelisit etävastaanottoa läheisellesi? (0 = en lainkaan, 10 = erittäin todennäköisesti)",
        "How likely would you recommend video visits to someone close to you? (0 = not at all, 10 = very likely)",
    ),
    "comment": ("Kommentti (valinnainen)", "Comment (optional)"),
    "submit": ("Lähetä vastaus", "Send the answer"),
    "thanks": ("Kiitos vastauksestasi!", "Thank you for your answer!"),
    "survey_not_yet": (
        "Kysely avautuu, kun vastaanotto on päättynyt.",
        "The survey opens when the visit has ended.",
    ),
    "survey_invalid": ("Kyselylinkki ei kelpaa.", "The survey link is not valid."),
    # -- statistics
    "stats_title": ("Tilastot {year}", "Statistics {year}"),
    "visits_by_month": ("Käynnit kuukausittain ja tyypeittäin", "Visits by month and type"),
    "visits_by_unit": ("Käynnit yksiköittäin", "Visits by unit"),
    "average": ("Keskiarvo", "Average"),
    "average_minutes": ("Käyntien keskimääräinen kesto (min)", "Average duration of visits (min)"),
    "nps_by_month": ("Suositteluindeksi (NPS) kuukausittain", "Net promoter score (NPS) by month"),
    "no_data": ("Ei vielä tietoja.", "No data yet."),
    "month": ("Kuukausi", "Month"),
    "visits": ("Käynnit", "Visits"),
    "answers": ("Vastauksia", "Answers"),
    "latest_comments": ("Uusimmat kommentit", "Latest comments"),
    # -- access log
    "log_title": ("Tietojeni käyttöloki", "Access log of my data"),
    "log_intro": (
        "Kuka on käsitellyt käyntejäsi tai liittynyt niille, milloin ja millä perusteella.",
        "Who has viewed or joined your visits, when, and on what basis.",
    ),
    "log_empty": ("Ei merkintöjä.", "No entries."),
    "when": ("Aika", "When"),
    "who": ("Kuka", "Who"),
    "what": ("Mitä", "What"),
    "basis": ("Peruste", "Basis"),
    "method": ("Tunnistustapa", "Identification"),
    "loa2": ("korotettu", "substantial"),
    "loa3": ("vahva", "high"),
    "log_joined": ("liittyi vastaanotolle", "joined the visit"),
    "log_left": ("poistui vastaanotolta", "left the visit"),
    "log_accepted": ("tunnistettiin vastaanotolle", "was identified for the visit"),
    "log_viewed": ("katsoi käynnin tietoja", "viewed the visit's details"),
    "log_verified": ("tunnistautui palveluun", "signed in to the service"),
    "log_proxy_allowed": ("asioi puolestasi", "acted on your behalf"),
    "log_proxy_refused": ("yritti asioida puolestasi (estetty)", "tried to act for you (refused)"),
    "log_recording_consent": ("suostui tallennukseen", "consented to recording"),
    "log_recording_refused": ("kieltäytyi tallennuksesta", "refused recording"),
    "log_refused": ("tunnistus hylättiin", "identification refused"),
    "basis_own": ("oma käynti", "your own visit"),
    "basis_professional": (
        "hoitosuhde: vastaanoton ammattilainen",
        "care relationship: the visit's professional",
    ),
    "basis_participant": ("kutsuttu osallistuja", "invited participant"),
    "basis_on_behalf": ("puolesta asiointi: {basis}", "acting for you: {basis}"),
    "someone": ("tuntematon", "unknown"),
}

CLIENT_KEYS = tuple(
    k
    for k in TEXTS
    if not k.startswith(("type_", "status_", "log_", "basis_", "landing", "stats", "nps"))
)


def pick_language(requested: str | None, cookie: str | None, accept: str, default: str) -> str:
    """``?lang=``, then the cookie, then the browser's Accept-Language, then the default."""
    for choice in (requested, cookie):
        if choice in LANGUAGES:
            return str(choice)
    for part in accept.split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return default


def t(lang: str, key: str, **values: Any) -> str:
    fi, en = TEXTS[key]
    text = en if lang == "en" else fi
    return text.format(**values) if values else text


def client_texts(lang: str) -> dict[str, str]:
    return {k: t(lang, k) for k in CLIENT_KEYS}
