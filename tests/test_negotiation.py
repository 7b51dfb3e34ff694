"""SDP negotiation (mediasrv/negotiation.py) with descriptions of real clients: aiortc offers made
in the test, a Chrome 120 unified-plan offer (tests/fixtures/chrome_offer.sdp), and aiortc
answering the server's offers to subscribers."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from conftest import FIXTURES, Run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediasrv.rtp_capabilities import (
    CODECS,
    EXT_ABS_SEND_TIME,
    EXT_AUDIO_LEVEL,
    EXT_VIDEO_ORIENTATION,
    PUBLISH_EXTENSIONS,
)
from mediasrv.sdp.negotiation import (
    MAX_SDP_LENGTH,
    LocalParameters,
    NegotiationError,
    PublishAnswer,
    SubscribeSlot,
    answer_publish_offer,
    build_subscribe_offer,
    new_ice_credentials,
    new_ssrc,
    parse_subscribe_answer,
)

OPUS, VP8, VP9, H264 = CODECS
LOCAL = LocalParameters(
    ice_ufrag="srvufrag",
    ice_pwd="0123456789abcdef01234567",
    fingerprint=":".join(f"{i * 7 % 256:02X}" for i in range(32)),
    host="127.0.0.1",
    port=40000,
)
# keep CRLF as Chrome sends it (read_text would translate line endings)
CHROME_OFFER = (FIXTURES / "chrome_offer.sdp").read_bytes().decode()
TRANSPORT_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"

# ---- SDP text helpers ----


def split_sdp(text: str) -> tuple[list[str], list[list[str]]]:
    """Session lines and the lines of each media section."""
    session: list[str] = []
    sections: list[list[str]] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            session.append(line)
    return session, sections


def join_sdp(session: list[str], sections: list[list[str]]) -> str:
    return "\r\n".join(session + [line for s in sections for line in s]) + "\r\n"


def section_mid(lines: list[str]) -> str:
    return next(line[6:] for line in lines if line.startswith("a=mid:"))


def section(text: str, mid: str) -> list[str]:
    return next(s for s in split_sdp(text)[1] if section_mid(s) == mid)


def values(lines: list[str], attribute: str) -> list[str]:
    """The values of every ``a=attribute:value`` line."""
    prefix = f"a={attribute}:"
    return [line[len(prefix) :] for line in lines if line.startswith(prefix)]


def extmaps(lines: list[str]) -> dict[str, int]:
    found = {}
    for value in values(lines, "extmap"):
        ext_id, uri = value.split()
        found[uri] = int(ext_id.split("/")[0])
    return found


def edit_section(text: str, mid: str, edit: Callable[[list[str]], list[str]]) -> str:
    session, sections = split_sdp(text)
    return join_sdp(session, [edit(s) if section_mid(s) == mid else s for s in sections])


def drop_section(text: str, mid: str) -> str:
    session, sections = split_sdp(text)
    kept = [s for s in sections if section_mid(s) != mid]
    session = [
        " ".join(w for w in line.split(" ") if w != mid) if line.startswith("a=group:") else line
        for line in session
    ]
    return join_sdp(session, kept)


CODEC_LINE = re.compile(r"^a=(rtpmap|rtcp-fb|fmtp):(\d+)[ ]")


def keep_codecs(lines: list[str], payload_types: list[int]) -> list[str]:
    """The section with only these payload types, in this order (m-line and codec lines)."""
    fields = lines[0].split(" ")
    head = [" ".join([*fields[:3], *map(str, payload_types)])]
    codec_lines: dict[int, list[str]] = {pt: [] for pt in payload_types}
    first_codec = None
    rest: list[str] = []
    for line in lines[1:]:
        match = CODEC_LINE.match(line)
        if match is None:
            rest.append(line)
            continue
        first_codec = len(rest) if first_codec is None else first_codec
        pt = int(match.group(2))
        if pt in codec_lines:
            codec_lines[pt].append(line)
    assert first_codec is not None
    ordered = [line for pt in payload_types for line in codec_lines[pt]]
    return head + rest[:first_codec] + ordered + rest[first_codec:]


def offered_payload_types(lines: list[str]) -> list[int]:
    return [int(pt) for pt in lines[0].split(" ")[3:]]


def with_rtx(lines: list[str], *payload_types: int) -> list[int]:
    """These payload types each followed by its rtx payload type, as offered."""
    rtx: dict[int, int] = {}
    for value in values(lines, "fmtp"):
        rtx_pt, params = value.split(" ", 1)
        if params.startswith("apt="):
            rtx[int(params[4:])] = int(rtx_pt)
    result: list[int] = []
    for pt in payload_types:
        result += [pt] + ([rtx[pt]] if pt in rtx else [])
    return result


def new_pc() -> RTCPeerConnection:
    """An aiortc peer without aiortc's default Google STUN server: gathering host candidates
    only, it never waits on the network."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def aiortc_offer(*kinds: str, data: bool = True, direction: str = "sendonly") -> str:
    pc = new_pc()
    try:
        if data:
            pc.createDataChannel("mediasrv-control")
        for kind in kinds:
            pc.addTransceiver(kind, direction=direction)
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


def answer(offer: str, version: int = 1) -> PublishAnswer:
    result = answer_publish_offer(offer, LOCAL, version)
    aiortc_sdp.SessionDescription.parse(result.sdp)  # the answer is valid SDP for aiortc too
    return result


# ---- the Chrome offer ----


def test_chrome_answer_session_level() -> None:
    result = answer(CHROME_OFFER, version=7)
    session, sections = split_sdp(result.sdp)
    assert session[0] == "v=0"
    assert re.fullmatch(r"o=mediasrv \d+ 7 IN IP4 0\.0\.0\.0", session[1])
    assert "a=ice-lite" in session
    assert "a=group:BUNDLE 0 1 2" in session
    assert [section_mid(s) for s in sections] == ["0", "1", "2"]
    for lines in sections:
        assert values(lines, "ice-ufrag") == [LOCAL.ice_ufrag]
        assert values(lines, "ice-pwd") == [LOCAL.ice_pwd]
        assert values(lines, "fingerprint") == [f"sha-256 {LOCAL.fingerprint}"]
        assert values(lines, "setup") == ["passive"]  # Chrome offers actpass
    # one host candidate, on the first bundled section only
    candidates = [values(s, "candidate") for s in sections]
    assert candidates == [["1 1 udp 2130706431 127.0.0.1 40000 typ host"], [], []]
    assert "a=end-of-candidates" in sections[0]
    # what the server learnt about Chrome
    assert result.remote.ice_ufrag == "Qx7r"
    assert result.remote.ice_pwd == "8cS0yJm3hXp1VfKz2LtNwB9d"
    assert result.remote.setup == "actpass"
    assert result.remote.fingerprints == [
        (
            "sha-256",
            "5B:3E:91:0C:7A:D4:22:E8:6F:19:B0:4D:83:C5:2A:F7:"
            "11:9E:60:3B:D2:48:AF:75:0E:C9:94:1D:6A:B3:58:E2",
        )
    ]
    assert result.rejected == {}
    assert result.data_mid == "0"


def test_chrome_answer_data_channel_section() -> None:
    lines = section(answer(CHROME_OFFER).sdp, "0")
    assert lines[0] == "m=application 9 UDP/DTLS/SCTP webrtc-datachannel"
    assert values(lines, "sctp-port") == ["5000"]
    assert values(lines, "max-message-size") == ["262144"]


def test_chrome_audio_is_answered_with_red_over_opus_and_nothing_else() -> None:
    result = answer(CHROME_OFFER)
    lines = section(result.sdp, "1")
    # RED first (Chrome sends redundant audio only then), around Opus
    assert lines[0] == "m=audio 9 UDP/TLS/RTP/SAVPF 63 111"
    assert values(lines, "rtpmap") == ["63 red/48000/2", "111 opus/48000/2"]  # no G722, CN...
    assert values(lines, "fmtp") == ["63 111/111", "111 minptime=10;useinbandfec=1"]
    [audio] = [t for t in result.tracks if t.kind == "audio"]
    assert audio.codec.name == "opus" and audio.red_payload_type == 63
    # transport-cc is offered and answered: the server sends the publisher feedback
    assert values(lines, "rtcp-fb") == ["111 transport-cc"]
    assert "a=recvonly" in lines
    assert "a=rtcp-mux" in lines


def test_chrome_video_is_answered_with_vp8_and_its_rtx() -> None:
    lines = section(answer(CHROME_OFFER).sdp, "2")
    assert lines[0] == "m=video 9 UDP/TLS/RTP/SAVPF 96 97"
    assert values(lines, "rtpmap") == ["96 VP8/90000", "97 rtx/90000"]
    # the rtcp-fb subset the server speaks; Chrome's transport-cc is left out
    assert values(lines, "rtcp-fb") == [
        "96 goog-remb",
        "96 transport-cc",
        "96 nack",
        "96 nack pli",
        "96 ccm fir",
    ]
    assert values(lines, "fmtp") == ["96 x-google-start-bitrate=2500", "97 apt=96"]
    assert "a=recvonly" in lines
    assert "a=rtcp-mux" in lines
    assert "a=rtcp-rsize" in lines


def test_chrome_extmaps_keep_the_offer_ids_of_accepted_uris_only() -> None:
    result = answer(CHROME_OFFER)
    for mid in ("1", "2"):
        offered = extmaps(section(CHROME_OFFER, mid))
        answered = extmaps(section(result.sdp, mid))
        assert answered == {uri: i for uri, i in offered.items() if uri in PUBLISH_EXTENSIONS}
        assert TRANSPORT_CC in offered and TRANSPORT_CC in answered  # the server gives feedback
    assert extmaps(section(result.sdp, "1")) == {
        EXT_AUDIO_LEVEL: 1,
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time": 2,
        TRANSPORT_CC: 3,
        "urn:ietf:params:rtp-hdrext:sdes:mid": 4,
    }
    assert result.remote.transport_cc == 3
    assert extmaps(section(result.sdp, "2"))[EXT_VIDEO_ORIENTATION] == 13


def test_chrome_tracks() -> None:
    audio, video = answer(CHROME_OFFER).tracks
    stream = "5c2d6bb1-0b8f-4a5c-9b8b-0f3f6f0e6c2a"
    assert (audio.mid, audio.kind, audio.codec, audio.payload_type) == ("1", "audio", OPUS, 111)
    assert (audio.ssrc, audio.rtx_ssrc, audio.rtx_payload_type) == (1843275913, None, 0)
    assert (audio.stream_id, audio.track_id) == (stream, "e1a7c3f0-44b2-4d59-a0c6-3f8e2b7d9a11")
    assert (video.mid, video.kind, video.codec, video.payload_type) == ("2", "video", VP8, 96)
    assert (video.ssrc, video.rtx_ssrc, video.rtx_payload_type) == (2739124860, 3482016574, 97)
    assert (video.stream_id, video.track_id) == (stream, "9b0d2e7c-1f63-4c8a-b5e4-72a1c0d3f8b6")
    assert audio.sending and video.sending
    assert audio.extensions == extmaps(section(answer(CHROME_OFFER).sdp, "1"))


@pytest.mark.parametrize(
    ("preferred", "expected_pts", "expected_fmtp"),
    [
        # H.264 constrained baseline, packetization-mode 1: its own fmtp comes back
        (
            [106, 107],
            "106 107",
            "106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f;"
            "x-google-start-bitrate=2500",
        ),
        # H.264 packetization-mode 0 and AV1 are skipped: the next codec in the offer wins
        ([104, 105], "96 97", "96 x-google-start-bitrate=2500"),
        ([45, 46], "96 97", "96 x-google-start-bitrate=2500"),
        ([100, 101], "100 101", "100 profile-id=2;x-google-start-bitrate=2500"),
        ([98, 99], "98 99", "98 profile-id=0;x-google-start-bitrate=2500"),
    ],
)
def test_chrome_codec_preference_is_followed(
    preferred: list[int], expected_pts: str, expected_fmtp: str
) -> None:
    """setCodecPreferences puts a codec first (on the m-line and in the rtpmap order)."""

    def prefer(lines: list[str]) -> list[str]:
        rest = [pt for pt in offered_payload_types(lines) if pt not in preferred]
        return keep_codecs(lines, preferred + rest)

    result = answer(edit_section(CHROME_OFFER, "2", prefer))
    lines = section(result.sdp, "2")
    assert lines[0] == f"m=video 9 UDP/TLS/RTP/SAVPF {expected_pts}"
    main_pt, rtx_pt = expected_pts.split()
    assert values(lines, "fmtp") == [expected_fmtp, f"{rtx_pt} apt={main_pt}"]
    video = result.tracks[1]
    assert (video.payload_type, video.rtx_payload_type) == (int(main_pt), int(rtx_pt))


@pytest.mark.parametrize(
    ("offer_setup", "answer_setup"),
    [("actpass", "passive"), ("active", "passive"), ("passive", "active")],
)
def test_dtls_setup_of_the_answer(offer_setup: str, answer_setup: str) -> None:
    result = answer(CHROME_OFFER.replace("a=setup:actpass", f"a=setup:{offer_setup}"))
    assert result.remote.setup == offer_setup
    assert {v for s in split_sdp(result.sdp)[1] for v in values(s, "setup")} == {answer_setup}


# ---- rejected sections ----


def _port_zero(lines: list[str]) -> list[str]:
    fields = lines[0].split(" ")
    return [" ".join([fields[0], "0", *fields[2:]]), *lines[1:]]


def _not_bundled(text: str) -> str:
    return text.replace("a=group:BUNDLE 0 1 2", "a=group:BUNDLE 0 1")


REJECTIONS: list[tuple[str, Callable[[str], str], str]] = [
    ("port 0", lambda t: edit_section(t, "2", _port_zero), "the offer disabled it"),
    ("not bundled", _not_bundled, "not in the BUNDLE group"),
    (
        "no rtcp-mux",
        lambda t: edit_section(t, "2", lambda s: [x for x in s if x != "a=rtcp-mux"]),
        "rtcp-mux is required",
    ),
    (
        "only AV1",
        lambda t: edit_section(t, "2", lambda s: keep_codecs(s, [45, 46])),
        "no supported codec (offered: video/AV1, video/rtx)",
    ),
    (
        "only H.264 packetization-mode 0",
        lambda t: edit_section(t, "2", lambda s: keep_codecs(s, [104, 105, 108, 109])),
        "no supported codec (offered: video/H264, video/rtx, video/H264, video/rtx)",
    ),
    (
        "only red and ulpfec",
        lambda t: edit_section(t, "2", lambda s: keep_codecs(s, [116, 117, 118])),
        "no supported codec (offered: video/red, video/rtx, video/ulpfec)",
    ),
]


@pytest.mark.parametrize(("edit", "reason"), [pytest.param(e, r, id=n) for n, e, r in REJECTIONS])
def test_rejected_video_section(edit: Callable[[str], str], reason: str) -> None:
    result = answer(edit(CHROME_OFFER))
    assert result.rejected == {"2": reason}
    lines = section(result.sdp, "2")
    assert lines[0].startswith("m=video 0 UDP/TLS/RTP/SAVPF ")
    assert "a=inactive" in lines
    assert values(lines, "ice-ufrag") == [] and values(lines, "rtpmap") == []
    assert "a=group:BUNDLE 0 1" in split_sdp(result.sdp)[0]
    assert [t.mid for t in result.tracks] == ["1"]
    # the accepted sections are untouched
    assert section(result.sdp, "1")[0] == "m=audio 9 UDP/TLS/RTP/SAVPF 63 111"


def test_rejected_application_and_unknown_kind_sections() -> None:
    session, sections = split_sdp(CHROME_OFFER)
    app = [
        "m=application 9 TCP/MSRP *",
        "c=IN IP4 0.0.0.0",
        "a=mid:3",
        "a=accept-types:text/plain",
    ]
    text = ["m=text 9 UDP/TLS/RTP/SAVPF 98", "c=IN IP4 0.0.0.0", "a=mid:4", "a=rtcp-mux"]
    session = [s + " 3 4" if s.startswith("a=group:BUNDLE") else s for s in session]
    result = answer(join_sdp(session, [*sections, app, text]))
    assert result.rejected == {
        "3": "unsupported application profile TCP/MSRP",
        "4": "unsupported media kind text",
    }
    assert section(result.sdp, "3")[0] == "m=application 0 TCP/MSRP *"
    assert section(result.sdp, "4")[0] == "m=text 0 UDP/TLS/RTP/SAVPF 98"
    assert "a=group:BUNDLE 0 1 2" in split_sdp(result.sdp)[0]
    assert result.data_mid == "0"


@pytest.mark.parametrize(
    ("keep", "offered"),
    [
        pytest.param(("1", [0]), "audio/PCMU", id="only PCMU audio"),
        pytest.param(("2", [45, 46]), "video/AV1, video/rtx", id="only AV1 video"),
    ],
)
def test_nothing_acceptable_is_unsupported_media(keep: tuple[str, list[int]], offered: str) -> None:
    mid, pts = keep
    text = drop_section(drop_section(CHROME_OFFER, "0"), "2" if mid == "1" else "1")
    text = edit_section(text, mid, lambda s: keep_codecs(s, pts))
    with pytest.raises(NegotiationError) as caught:
        answer_publish_offer(text, LOCAL, 1)
    assert caught.value.code == "unsupported_media"
    assert str(caught.value) == (
        f"offer: no media section could be accepted: {mid}: no supported codec (offered: {offered})"
    )


# ---- offers the server refuses ----


def _sections(count: int) -> str:
    session, sections = split_sdp(CHROME_OFFER)
    app = sections[0]
    extra = [
        [x if not x.startswith("a=mid:") else f"a=mid:x{i}" for x in app] for i in range(count)
    ]
    return join_sdp(session, sections + extra)


INVALID_OFFERS: list[tuple[str, object, str]] = [
    ("not a string", 42, "offer: sdp must be a non-empty string"),
    ("empty", "", "offer: sdp must be a non-empty string"),
    ("blank", " \r\n\t", "offer: sdp must be a non-empty string"),
    ("garbage", "hello, this is not SDP", "offer: sdp must start with v=0"),
    (
        "over 64 KiB",
        CHROME_OFFER + "a=x-padding:" + "p" * MAX_SDP_LENGTH + "\r\n",
        f"exceeds {MAX_SDP_LENGTH}",
    ),
    (
        "bad setup value",
        CHROME_OFFER.replace("a=setup:actpass", "a=setup:sideways"),
        "offer: malformed sdp (KeyError: 'sideways')",
    ),
    (
        "truncated rtcp-fb",
        CHROME_OFFER.replace("a=rtcp-fb:96 nack\r\n", "a=rtcp-fb:96\r\n"),
        "offer: malformed sdp (IndexError",
    ),
    (
        "non-numeric format",
        CHROME_OFFER.replace("m=audio 9 UDP/TLS/RTP/SAVPF 111", "m=audio 9 UDP/TLS/RTP/SAVPF x"),
        "offer: malformed sdp (ValueError",
    ),
    ("no media", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "offer: no media sections"),
    ("65 sections", _sections(62), "offer: more than 64 media sections"),
    (
        "duplicate mid",
        CHROME_OFFER.replace("a=mid:2", "a=mid:1"),
        "offer: duplicate mid '1'",
    ),
    (
        "no fingerprint",
        re.sub(r"a=fingerprint:[^\r]*\r\n", "", CHROME_OFFER),
        "offer: no a=fingerprint (DTLS-SRTP is required)",
    ),
    (
        "no ice-ufrag",
        re.sub(r"a=ice-ufrag:[^\r]*\r\n", "", CHROME_OFFER),
        "offer: media 0 lacks ice-ufrag or ice-pwd",
    ),
    (
        "no setup",
        re.sub(r"a=setup:[^\r]*\r\n", "", CHROME_OFFER),
        "offer: no usable media section with ICE and DTLS",
    ),
    # numbers aiortc parses but RTP cannot carry
    (
        "extmap id 0",
        CHROME_OFFER.replace("a=extmap:1 urn:ietf", "a=extmap:0 urn:ietf"),
        f"offer: media 1: extmap id 0 of {EXT_AUDIO_LEVEL} is outside 1..255",
    ),
    (
        "extmap id 256",
        CHROME_OFFER.replace("a=extmap:13 urn", "a=extmap:256 urn"),
        f"offer: media 2: extmap id 256 of {EXT_VIDEO_ORIENTATION} is outside 1..255",
    ),
    (
        "payload type 200",
        CHROME_OFFER.replace("SAVPF 111 63", "SAVPF 200 63")
        .replace("a=rtpmap:111 ", "a=rtpmap:200 ")
        .replace("a=fmtp:111 ", "a=fmtp:200 "),
        "offer: media 1: payload type 200 is outside 0..127",
    ),
    (
        "ssrc over 32 bits",
        CHROME_OFFER.replace("a=ssrc:1843275913 ", "a=ssrc:4294967296 "),
        "offer: media 1: ssrc 4294967296 is outside 0..4294967295",
    ),
    (
        "ssrc in two sections",
        CHROME_OFFER.replace("a=ssrc:1843275913 ", "a=ssrc:2739124860 "),
        "offer: media 2: ssrc 2739124860 is used by another section",
    ),
]


@pytest.mark.parametrize(
    ("offer", "message"), [pytest.param(o, m, id=n) for n, o, m in INVALID_OFFERS]
)
def test_invalid_offer(offer: object, message: str) -> None:
    with pytest.raises(NegotiationError) as caught:
        answer_publish_offer(offer, LOCAL, 1)
    assert caught.value.code == "invalid_sdp"
    assert message in str(caught.value)


def test_blank_msid_is_not_a_crash() -> None:
    result = answer(re.sub(r"a=msid:[^\r]*", "a=msid: ", CHROME_OFFER, count=1))
    assert result.tracks[0].stream_id == "5c2d6bb1-0b8f-4a5c-9b8b-0f3f6f0e6c2a"  # from a=ssrc


def _mutate(text: str, data: st.DataObject) -> str:
    lines = text.split("\r\n")
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(
            st.sampled_from(["delete", "duplicate", "truncate", "replace", "insert"])
        )
        line = lines[index]
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, line)
        elif action == "truncate":
            lines[index] = line[: data.draw(st.integers(0, len(line)))]
        elif action == "replace" and line:
            at = data.draw(st.integers(0, len(line) - 1))
            char = data.draw(st.sampled_from([*" :=/;0123456789-aZ\t", "999999999999"]))
            lines[index] = line[:at] + char + line[at + 1 :]
        elif action == "insert":
            lines.insert(index, data.draw(st.text(max_size=40)))
    return "\r\n".join(lines)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), base=st.sampled_from(["chrome", "aiortc"]))
def test_mutated_offers_are_answered_or_refused_with_a_code(data: st.DataObject, base: str) -> None:
    """Any damage to a real offer gives an answer aiortc can parse or a NegotiationError with a
    protocol code: never another exception (which signaling would turn into internal_error)."""
    text = _mutate(CHROME_OFFER if base == "chrome" else AIORTC_OFFER_TEXT, data)
    try:
        result = answer_publish_offer(text, LOCAL, 1)
    except NegotiationError as exc:
        assert exc.code in ("invalid_sdp", "unsupported_media")
        return
    aiortc_sdp.SessionDescription.parse(result.sdp)
    for track in result.tracks:
        assert 0 <= track.payload_type <= 127 and 0 <= track.rtx_payload_type <= 127
        assert all(1 <= i <= 255 for i in track.extensions.values())


# a fixed aiortc offer for the hypothesis test (which cannot await); made like aiortc_offer()
AIORTC_FINGERPRINT = ":".join(f"{(i * 37 + 11) % 256:02X}" for i in range(32))
AIORTC_OFFER_TEXT = """v=0
o=- 3915633372 3915633372 IN IP4 0.0.0.0
s=-
t=0 0
a=group:BUNDLE 0 1 2
a=msid-semantic:WMS *
m=application 40519 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 127.0.0.1
a=mid:0
a=sctp-port:5000
a=max-message-size:65536
a=candidate:8c5f4d3c1f0f1e2b 1 udp 2130706431 127.0.0.1 40519 typ host
a=end-of-candidates
a=ice-ufrag:Vd2c
a=ice-pwd:eyIg3pOqSxQ1wKxF7v3bQm
a=fingerprint:sha-256 FINGERPRINT
a=setup:actpass
m=audio 40519 UDP/TLS/RTP/SAVPF 96 9 0 8
c=IN IP4 127.0.0.1
a=sendonly
a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=mid:1
a=msid:2f438a9b-3ed4-4d2a-9a84-9388a96bd6d7 0a461ef4-d594-41a8-9778-9a28648499f2
a=rtcp:9 IN IP4 0.0.0.0
a=rtcp-mux
a=ssrc:2976385119 cname:180d78ce-df0f-452d-b758-cebc3d1403e8
a=rtpmap:96 opus/48000/2
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=ice-ufrag:Vd2c
a=ice-pwd:eyIg3pOqSxQ1wKxF7v3bQm
a=fingerprint:sha-256 FINGERPRINT
a=setup:actpass
m=video 40519 UDP/TLS/RTP/SAVPF 97 98 99 100
c=IN IP4 127.0.0.1
a=sendonly
a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=mid:2
a=msid:2f438a9b-3ed4-4d2a-9a84-9388a96bd6d7 b1906dd0-30d1-49ee-9ed5-4076fdd1dd57
a=rtcp:9 IN IP4 0.0.0.0
a=rtcp-mux
a=ssrc-group:FID 3293193415 764099313
a=ssrc:3293193415 cname:180d78ce-df0f-452d-b758-cebc3d1403e8
a=ssrc:764099313 cname:180d78ce-df0f-452d-b758-cebc3d1403e8
a=rtpmap:97 VP8/90000
a=rtcp-fb:97 nack
a=rtcp-fb:97 nack pli
a=rtcp-fb:97 goog-remb
a=rtpmap:98 rtx/90000
a=fmtp:98 apt=97
a=rtpmap:99 H264/90000
a=rtcp-fb:99 nack
a=rtcp-fb:99 nack pli
a=rtcp-fb:99 goog-remb
a=fmtp:99 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f
a=rtpmap:100 rtx/90000
a=fmtp:100 apt=99
a=ice-ufrag:Vd2c
a=ice-pwd:eyIg3pOqSxQ1wKxF7v3bQm
a=fingerprint:sha-256 FINGERPRINT
a=setup:actpass
""".replace("\n", "\r\n").replace("FINGERPRINT", AIORTC_FINGERPRINT)


# ---- aiortc offers ----


def test_aiortc_offer_is_answered_and_aiortc_accepts_the_answer(run: Run[None]) -> None:
    async def main() -> None:
        pc = new_pc()
        try:
            pc.createDataChannel("mediasrv-control")
            pc.addTransceiver("audio", direction="sendonly")
            pc.addTransceiver("video", direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            offer = pc.localDescription.sdp
            result = answer(offer)
            await pc.setRemoteDescription(RTCSessionDescription(result.sdp, "answer"))
            audio, video = pc.getTransceivers()
            assert (audio.currentDirection, video.currentDirection) == ("sendonly", "sendonly")
            assert [c.mimeType for c in audio._codecs] == ["audio/opus"]
            assert [c.mimeType for c in video._codecs] == ["video/VP8", "video/rtx"]
            assert pc.sctp is not None
        finally:
            await pc.close()
        session, _ = split_sdp(result.sdp)
        assert "a=group:BUNDLE 0 1 2" in session
        assert [t.kind for t in result.tracks] == ["audio", "video"]
        audio_offer, video_offer = section(offer, "0"), section(offer, "1")
        # aiortc's own payload types and extension ids come back
        assert result.tracks[0].payload_type == offered_payload_types(audio_offer)[0]
        assert section(result.sdp, "1")[0] == (
            "m=video 9 UDP/TLS/RTP/SAVPF "
            + " ".join(map(str, with_rtx(video_offer, offered_payload_types(video_offer)[0])))
        )
        assert extmaps(section(result.sdp, "0")) == extmaps(audio_offer)
        assert extmaps(section(result.sdp, "1")) == extmaps(video_offer)
        assert result.tracks[1].rtx_ssrc is not None
        assert section(result.sdp, "1").count("a=recvonly") == 1
        # aiortc offers no ccm fir: the answer has only what was offered
        assert "ccm fir" not in " ".join(values(section(result.sdp, "1"), "rtcp-fb"))

    run(main())


@pytest.mark.parametrize(
    ("direction", "sending", "answered"),
    [
        ("sendrecv", True, "recvonly"),
        ("recvonly", False, "inactive"),
        ("inactive", False, "inactive"),
    ],
)
def test_aiortc_offer_directions(
    run: Run[str], direction: str, sending: bool, answered: str
) -> None:
    offer = run(aiortc_offer("video", direction=direction))
    result = answer(offer)
    assert [t.sending for t in result.tracks] == [sending]
    assert f"a={answered}" in section(result.sdp, "0")


def test_offer_without_ssrc_lines_gives_a_pending_track(run: Run[str]) -> None:
    offer = run(aiortc_offer("audio", "video"))
    offer = re.sub(r"a=ssrc(-group)?:[^\r]*\r\n", "", offer)
    result = answer(offer)
    assert [(t.kind, t.ssrc, t.rtx_ssrc, t.sending) for t in result.tracks] == [
        ("audio", None, None, True),
        ("video", None, None, True),
    ]


def test_answers_of_one_transport_share_the_session_id() -> None:
    first, second = answer(CHROME_OFFER, 1), answer(CHROME_OFFER, 2)
    origin = [split_sdp(a.sdp)[0][1].split(" ") for a in (first, second)]
    assert origin[0][1] == origin[1][1]
    assert (origin[0][2], origin[1][2]) == ("1", "2")


# ---- offers to subscribers ----

SLOTS = [
    SubscribeSlot("0", "audio", OPUS, 1111, 0, "peerA", "trackA", "peerA"),
    SubscribeSlot("1", "video", VP8, 2222, 3333, "peerA", "trackV", "peerA"),
    SubscribeSlot("2", "video", None),  # a closed consumer's slot, kept for its mid
    SubscribeSlot("3", "video", H264, 4444, 5555, "peerB", "trackH", "peerB"),
    SubscribeSlot("4", "audio", None),
]


def test_subscribe_offer_text() -> None:
    text = build_subscribe_offer(LOCAL, SLOTS, 5)
    parsed = aiortc_sdp.SessionDescription.parse(text)
    session, sections = split_sdp(text)
    assert re.fullmatch(r"o=mediasrv \d+ 5 IN IP4 0\.0\.0\.0", session[1])
    assert "a=ice-lite" in session
    assert "a=group:BUNDLE 0 1 3" in session  # only the open slots
    assert [m.rtp.muxId for m in parsed.media] == ["0", "1", "2", "3", "4"]
    assert [m.port for m in parsed.media] == [9, 9, 0, 9, 0]
    assert [m.direction for m in parsed.media] == [
        "sendonly",
        "sendonly",
        "inactive",
        "sendonly",
        "inactive",
    ]
    # canonical payload types, rtx only where an rtx ssrc exists
    assert [s[0] for s in sections] == [
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
        "m=video 0 UDP/TLS/RTP/SAVPF 96",
        "m=video 9 UDP/TLS/RTP/SAVPF 102 103",
        "m=audio 0 UDP/TLS/RTP/SAVPF 111",
    ]
    audio, vp8, _, h264, _ = sections
    # transport-cc numbers what the server sends, for its send-side estimator
    assert extmaps(audio) == {EXT_AUDIO_LEVEL: 1, EXT_ABS_SEND_TIME: 3, TRANSPORT_CC: 5}
    assert (
        extmaps(vp8)
        == extmaps(h264)
        == {EXT_ABS_SEND_TIME: 3, EXT_VIDEO_ORIENTATION: 4, TRANSPORT_CC: 5}
    )
    assert values(vp8, "rtcp-fb") == [
        "96 goog-remb",
        "96 transport-cc",
        "96 nack",
        "96 nack pli",
        "96 ccm fir",
    ]
    # RED offered beside Opus: a subscriber that keeps it gets the redundancy
    assert values(audio, "fmtp") == ["111 minptime=10;useinbandfec=1", "63 111/111"]
    assert values(h264, "fmtp") == [
        "102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        "103 apt=102",
    ]
    assert "x-google-start-bitrate" not in text
    assert values(vp8, "ssrc-group") == ["FID 2222 3333"]
    assert values(vp8, "msid") == ["peerA trackV"]
    assert values(audio, "ssrc") == ["1111 cname:peerA", "1111 msid:peerA trackA"]
    for lines in (audio, vp8, h264):
        assert values(lines, "setup") == ["actpass"]
        assert {"a=rtcp-mux", "a=rtcp-rsize"} <= set(lines)
    assert [len(values(s, "candidate")) for s in sections] == [1, 0, 0, 0, 0]


def test_aiortc_answers_the_subscribe_offer(run: Run[None]) -> None:
    async def main() -> None:
        offer = build_subscribe_offer(LOCAL, SLOTS, 1)
        pc = new_pc()
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            text = pc.localDescription.sdp
            transceivers = pc.getTransceivers()
            assert [t.mid for t in transceivers] == ["0", "1", "2", "3", "4"]
            assert [t.kind for t in transceivers] == ["audio", "video", "video", "video", "audio"]
            codecs = [[c.mimeType for c in transceivers[i]._codecs] for i in (0, 1, 3)]
            assert codecs == [
                ["audio/opus"],
                ["video/VP8", "video/rtx"],
                ["video/H264", "video/rtx"],
            ]
            assert [t.receiver.track.kind for t in transceivers if t.mid in ("0", "1", "3")] == [
                "audio",
                "video",
                "video",
            ]
        finally:
            await pc.close()
        parsed = aiortc_sdp.SessionDescription.parse(text)
        assert [m.direction for m in parsed.media] == [
            "recvonly",
            "recvonly",
            "inactive",  # the closed slots
            "recvonly",
            "inactive",
        ]
        remote = parse_subscribe_answer(text, ["0", "1", "3"])
        assert remote.setup == "active"  # aiortc answers actpass as the DTLS client
        ice = parsed.media[0].ice
        assert ice is not None and remote.ice_ufrag == ice.usernameFragment
        assert remote.fingerprints and all(a.startswith("sha-") for a, _ in remote.fingerprints)

    run(main())


def test_subscribe_answer_must_keep_every_open_section(run: Run[str]) -> None:
    async def main() -> str:
        pc = new_pc()
        try:
            await pc.setRemoteDescription(
                RTCSessionDescription(build_subscribe_offer(LOCAL, SLOTS[:2], 1), "offer")
            )
            await pc.setLocalDescription(await pc.createAnswer())
            return str(pc.localDescription.sdp)
        finally:
            await pc.close()

    text = run(main())
    assert parse_subscribe_answer(text, ["0", "1"]).ice_ufrag
    with pytest.raises(NegotiationError) as caught:
        parse_subscribe_answer(drop_section(text, "1"), ["0", "1"])
    assert (caught.value.code, str(caught.value)) == (
        "invalid_sdp",
        "answer: media section '1' is missing",
    )
    with pytest.raises(NegotiationError) as caught:
        parse_subscribe_answer(re.sub(r"a=fingerprint:[^\r]*\r\n", "", text), ["0", "1"])
    assert str(caught.value) == "answer: no a=fingerprint (DTLS-SRTP is required)"
    with pytest.raises(NegotiationError) as caught:
        parse_subscribe_answer("", ["0"])
    assert str(caught.value) == "answer: sdp must be a non-empty string"


# ---- credentials and ssrcs ----


def test_ice_credentials_are_fresh_and_within_ice_char() -> None:
    seen: set[tuple[str, str]] = set()
    for _ in range(50):
        ufrag, pwd = new_ice_credentials()
        assert re.fullmatch(r"[0-9a-f]{8}", ufrag) and re.fullmatch(r"[0-9a-f]{24}", pwd)
        seen.add((ufrag, pwd))
    assert len(seen) == 50


def test_new_ssrc_is_nonzero_and_unique() -> None:
    taken: set[int] = {1, 2, 3}
    found = [new_ssrc(taken) for _ in range(200)]
    assert len(set(found)) == 200 and 0 not in found
    assert taken >= set(found) | {1, 2, 3}
    assert all(0 < s < 2**32 for s in found)


def test_codec_choice_follows_the_m_line_order_not_the_rtpmap_order() -> None:
    """Only the order of the formats on the m-line is a preference; rtpmap lines may come in
    any order."""

    def reorder(lines: list[str]) -> list[str]:
        head = lines[0].split()
        # H.264 packetization-mode 1 (106) first on the m-line, rtpmaps left as they were
        pts = [pt for pt in head[3:] if pt != "106"]
        return [" ".join([*head[:3], "106", *pts]), *lines[1:]]

    result = answer(edit_section(CHROME_OFFER, "2", reorder))
    assert result.tracks[1].codec.name == "H264"
    assert result.tracks[1].payload_type == 106


def test_rtcp_rsize_is_answered_only_where_offered() -> None:
    def drop_rsize(lines: list[str]) -> list[str]:
        return [line for line in lines if line != "a=rtcp-rsize"]

    with_rsize = answer(CHROME_OFFER)
    assert "a=rtcp-rsize" in section(with_rsize.sdp, "2")
    without = answer(edit_section(CHROME_OFFER, "2", drop_rsize))
    assert "a=rtcp-rsize" not in section(without.sdp, "2")
