"""SDP offer/answer with browsers and aiortc: answers to publishers' offers, offers to subscribers.

Parsing uses aiortc's SDP module (wrapped so that any malformed input becomes a
NegotiationError naming the problem); the server's own descriptions are written here, because
they carry what aiortc's writer does not (``a=ice-lite`` per session, ``a=rtcp-rsize``,
``x-google-start-bitrate``, rejected m-lines with port 0).
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field

from aiortc import sdp as aiortc_sdp

from mediasrv.rtp_capabilities import (
    AUDIO_FEEDBACK,
    EXT_MID,
    EXT_RID,
    EXT_TRANSPORT_CC,
    PUBLISH_EXTENSIONS,
    RED_PAYLOAD_TYPE,
    SUBSCRIBE_EXTENSIONS,
    VIDEO_FEEDBACK,
    CodecSpec,
    find_codec,
)

MAX_SDP_LENGTH = 64 * 1024
MAX_MEDIA_SECTIONS = 64
START_BITRATE_KBPS = 2500
SCTP_PORT = 5000
MAX_MESSAGE_SIZE = 262144


class NegotiationError(Exception):
    """An offer or answer the server cannot use; ``code`` is the protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# candidate priorities (RFC 8445 5.1.2.1): host type preference 126 for both; the local
# preference puts UDP first and the passive TCP candidate below it (RFC 6544 4.2), so a client
# uses TCP only when its UDP checks fail
UDP_PRIORITY = (126 << 24) | (65535 << 8) | 255
TCP_PRIORITY = (126 << 24) | (16383 << 8) | 255


@dataclass(frozen=True)
class LocalParameters:
    """What the server puts in every description of one transport."""

    ice_ufrag: str
    ice_pwd: str
    fingerprint: str  # sha-256, colon-separated hex
    host: str
    port: int
    tcp_port: int = 0  # the passive ICE-TCP candidate's port (0: none offered)


@dataclass
class RemoteParameters:
    ice_ufrag: str
    ice_pwd: str
    fingerprints: list[tuple[str, str]]
    setup: str  # actpass | active | passive
    # the peer's transport-cc extension id when it negotiated transport-cc feedback (0: not)
    transport_cc: int = 0
    # a subscriber's answer: the RED payload type it kept for its audio (0: none)
    red_payload_type: int = 0


@dataclass
class OfferedTrack:
    """One audio/video m-line of a publisher's offer, as accepted by the server."""

    mid: str
    kind: str
    codec: CodecSpec
    payload_type: int
    rtx_payload_type: int
    ssrc: int | None
    rtx_ssrc: int | None
    extensions: dict[str, int]
    stream_id: str
    track_id: str
    sending: bool
    # RID simulcast (a=rid / a=simulcast:send), layers from the lowest: e.g. ["q", "h", "f"]
    rids: list[str] = field(default_factory=list)
    # SSRC-group simulcast (a=ssrc-group:SIM, lowest first) and each layer's RTX SSRC (0: none)
    sim_ssrcs: list[int] = field(default_factory=list)
    sim_rtx_ssrcs: list[int] = field(default_factory=list)
    # RED (RFC 2198) around Opus, accepted when offered: its payload type (0: none)
    red_payload_type: int = 0


MAX_RIDS = 4
RID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


def _simulcast(section: str, mid: str) -> list[str]:
    """The send RIDs of a media section (RFC 8851/8853), in a=simulcast order."""
    declared: list[str] = []
    order: list[str] = []
    for raw in section.split("\n"):
        line = raw.strip()
        if line.startswith("a=rid:"):
            parts = line[6:].split()
            if len(parts) >= 2 and parts[1] == "send":
                declared.append(parts[0])
        elif line.startswith("a=simulcast:"):
            parts = line[12:].split()
            if len(parts) >= 2 and parts[0] == "send":
                # alternatives (a,b) and paused (~a) are not used by browsers: take the first
                order = [alt.split(",")[0].lstrip("~") for alt in parts[1].split(";")]
    if not declared and not order:
        return []
    rids = order or declared
    for rid in rids:
        if not RID_PATTERN.match(rid):
            raise NegotiationError("invalid_sdp", f"offer: media {mid}: bad rid {rid!r}")
        if rid not in declared:
            raise NegotiationError(
                "invalid_sdp", f"offer: media {mid}: simulcast names rid {rid!r} with no a=rid"
            )
    if len(rids) > MAX_RIDS or len(set(rids)) != len(rids):
        raise NegotiationError(
            "invalid_sdp", f"offer: media {mid}: at most {MAX_RIDS} distinct rids are accepted"
        )
    return rids


@dataclass
class PublishAnswer:
    sdp: str
    remote: RemoteParameters
    tracks: list[OfferedTrack]
    data_mid: str | None
    rejected: dict[str, str] = field(default_factory=dict)  # mid -> reason


@dataclass(frozen=True)
class SubscribeSlot:
    """One m-line of a subscriber offer: a consumer, or a closed slot kept for its mid."""

    mid: str
    kind: str
    codec: CodecSpec | None  # None: the slot is closed (port 0)
    ssrc: int = 0
    rtx_ssrc: int = 0
    stream_id: str = ""
    track_id: str = ""
    cname: str = "mediasrv"


def parse_description(text: object, expected_type: str) -> aiortc_sdp.SessionDescription:
    if not isinstance(text, str) or not text.strip():
        raise NegotiationError("invalid_sdp", f"{expected_type}: sdp must be a non-empty string")
    if len(text) > MAX_SDP_LENGTH:
        raise NegotiationError(
            "invalid_sdp",
            f"{expected_type}: sdp of {len(text)} characters exceeds {MAX_SDP_LENGTH}",
        )
    if not text.lstrip().startswith("v=0"):
        raise NegotiationError("invalid_sdp", f"{expected_type}: sdp must start with v=0")
    try:
        parsed = aiortc_sdp.SessionDescription.parse(
            text.replace("\r\n", "\n").replace("\n", "\r\n")
        )
    except Exception as exc:  # aiortc raises ValueError, KeyError, StopIteration, ...
        raise NegotiationError(
            "invalid_sdp", f"{expected_type}: malformed sdp ({type(exc).__name__}: {exc})"
        ) from None
    if not parsed.media:
        raise NegotiationError("invalid_sdp", f"{expected_type}: no media sections")
    if len(parsed.media) > MAX_MEDIA_SECTIONS:
        raise NegotiationError(
            "invalid_sdp", f"{expected_type}: more than {MAX_MEDIA_SECTIONS} media sections"
        )
    return parsed


def _remote_parameters(desc: aiortc_sdp.SessionDescription, what: str) -> RemoteParameters:
    for media in desc.media:
        if media.port == 0 or media.ice is None or media.dtls is None:
            continue
        if not media.ice.usernameFragment or not media.ice.password:
            raise NegotiationError(
                "invalid_sdp", f"{what}: media {media.rtp.muxId} lacks ice-ufrag or ice-pwd"
            )
        fingerprints = [(f.algorithm, f.value) for f in media.dtls.fingerprints]
        if not fingerprints:
            raise NegotiationError(
                "invalid_sdp", f"{what}: no a=fingerprint (DTLS-SRTP is required)"
            )
        role = media.dtls.role
        setup = {"auto": "actpass", "client": "active", "server": "passive"}.get(role, "actpass")
        return RemoteParameters(
            media.ice.usernameFragment,
            media.ice.password,
            fingerprints,
            setup,
            _transport_cc_id(desc),
        )
    raise NegotiationError("invalid_sdp", f"{what}: no usable media section with ICE and DTLS")


def _transport_cc_id(desc: aiortc_sdp.SessionDescription) -> int:
    """The transport-cc extension id of a description whose media use transport-cc feedback
    (the extension and ``a=rtcp-fb:* transport-cc``), else 0."""
    for media in desc.media:
        if media.port == 0 or media.kind not in ("audio", "video"):
            continue
        for ext in media.rtp.headerExtensions:
            if ext.uri == EXT_TRANSPORT_CC and any(
                fb.type == "transport-cc" for c in media.rtp.codecs for fb in c.rtcpFeedback
            ):
                return int(ext.id)
    return 0


def _fmtp_dict(params: object) -> dict[str, str]:
    if isinstance(params, dict):
        return {str(k): str(v) for k, v in params.items()}
    return {}


def _sections_with(text: str, attribute: str) -> list[bool]:
    """Per m-section of a description: whether it carries the attribute (for the attributes
    aiortc's parser does not keep, such as a=rtcp-rsize)."""
    sections = text.replace("\r\n", "\n").split("\nm=")[1:]
    return [any(line.strip() == attribute for line in s.split("\n")) for s in sections]


def _session_head(local: LocalParameters, version: int, bundle: list[str]) -> list[str]:
    """The session part of every description the server writes."""
    head = [
        "v=0",
        f"o=mediasrv {_session_id(local)} {version} IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=ice-lite",
        "a=msid-semantic: WMS *",
    ]
    if bundle:
        head.append("a=group:BUNDLE " + " ".join(bundle))
    return head


def _session_id(local: LocalParameters) -> int:
    return int.from_bytes(local.ice_ufrag.encode()[:6].ljust(6, b"0"), "big")


def _transport_lines(local: LocalParameters, setup: str, first: bool) -> list[str]:
    lines = [
        f"a=ice-ufrag:{local.ice_ufrag}",
        f"a=ice-pwd:{local.ice_pwd}",
        f"a=fingerprint:sha-256 {local.fingerprint}",
        f"a=setup:{setup}",
    ]
    if first:
        lines.append(f"a=candidate:1 1 udp {UDP_PRIORITY} {local.host} {local.port} typ host")
        if local.tcp_port:
            lines.append(
                f"a=candidate:2 1 tcp {TCP_PRIORITY} {local.host} {local.tcp_port} typ host "
                "tcptype passive"
            )
        lines.append("a=end-of-candidates")
    return lines


def _red_payload_type(media: aiortc_sdp.MediaDescription, opus_pt: int) -> int:
    """The payload type of RED carrying this Opus (fmtp ``111/111``) in an offer, or 0."""
    for codec in media.rtp.codecs:
        if codec.mimeType.lower() != "audio/red" or codec.clockRate != 48000:
            continue
        params = codec.parameters
        text = "/".join(str(k) for k in params) if isinstance(params, dict) else str(params)
        blocks = [b for b in text.replace(" ", "").split("/") if b]
        if blocks and all(b == str(opus_pt) for b in blocks):
            return int(codec.payloadType or 0)
    return 0


def _red_lines(red_pt: int, opus_pt: int) -> list[str]:
    return [f"a=rtpmap:{red_pt} red/48000/2", f"a=fmtp:{red_pt} {opus_pt}/{opus_pt}"]


def _codec_lines(
    spec: CodecSpec,
    pt: int,
    rtx_pt: int,
    feedback: list[tuple[str, str]],
    fmtp: dict[str, str],
    start_bitrate: bool,
) -> list[str]:
    channels = f"/{spec.channels}" if spec.kind == "audio" and spec.channels > 1 else ""
    lines = [f"a=rtpmap:{pt} {spec.name}/{spec.clock_rate}{channels}"]
    for kind, param in feedback:
        lines.append(f"a=rtcp-fb:{pt} {kind}{' ' + param if param else ''}")
    params = dict(fmtp)
    if start_bitrate and spec.kind == "video":
        params["x-google-start-bitrate"] = str(START_BITRATE_KBPS)
    if params:
        lines.append(f"a=fmtp:{pt} " + ";".join(f"{k}={v}" for k, v in params.items()))
    if rtx_pt:
        lines.append(f"a=rtpmap:{rtx_pt} rtx/{spec.clock_rate}")
        lines.append(f"a=fmtp:{rtx_pt} apt={pt}")
    return lines


def answer_publish_offer(offer_sdp: object, local: LocalParameters, version: int) -> PublishAnswer:
    """Accept what the server can receive from a publisher's offer and write the answer."""
    offer = parse_description(offer_sdp, "offer")
    assert isinstance(offer_sdp, str)
    rsize = _sections_with(offer_sdp, "a=rtcp-rsize")
    raw_sections = offer_sdp.replace("\r\n", "\n").split("\nm=")[1:]
    remote = _remote_parameters(offer, "offer")
    setup = "active" if remote.setup == "passive" else "passive"
    bundle: set[str] = set()
    for group in offer.group:
        if group.semantic == "BUNDLE":
            bundle.update(str(i) for i in group.items)
    tracks: list[OfferedTrack] = []
    rejected: dict[str, str] = {}
    data_mid: str | None = None
    sections: list[list[str]] = []
    accepted_mids: list[str] = []
    seen_mids: set[str] = set()
    seen_ssrcs: set[int] = set()
    for index, media in enumerate(offer.media):
        mid = media.rtp.muxId or str(index)
        if mid in seen_mids:
            raise NegotiationError("invalid_sdp", f"offer: duplicate mid {mid!r}")
        seen_mids.add(mid)
        reason = None
        if media.port == 0:
            reason = "the offer disabled it"
        elif bundle and mid not in bundle:
            reason = "not in the BUNDLE group"
        elif media.kind in ("audio", "video") and not media.rtcp_mux:
            reason = "rtcp-mux is required"
        lines: list[str]
        if reason is None and media.kind == "application":
            if "DTLS/SCTP" not in media.profile:
                reason = f"unsupported application profile {media.profile}"
            else:
                data_mid = mid
                lines = [
                    f"m=application 9 {media.profile} {' '.join(map(str, media.fmt))}",
                    "c=IN IP4 0.0.0.0",
                    f"a=mid:{mid}",
                ]
                lines += _transport_lines(local, setup, not accepted_mids)
                lines += [f"a=sctp-port:{SCTP_PORT}", f"a=max-message-size:{MAX_MESSAGE_SIZE}"]
                sections.append(lines)
                accepted_mids.append(mid)
                continue
        if reason is None and media.kind not in ("audio", "video"):
            reason = f"unsupported media kind {media.kind}"
        chosen: tuple[CodecSpec, int, list[tuple[str, str]], dict[str, str]] | None = None
        if reason is None:
            # in the order of the m-line's formats: the offerer's preference
            order = {int(f): i for i, f in enumerate(media.fmt) if str(f).isdigit()}
            offered = sorted(
                (c for c in media.rtp.codecs if c.payloadType in order),
                key=lambda c: order[int(c.payloadType or 0)],
            )
            for codec in offered:
                name = codec.mimeType.split("/", 1)[1]
                if name.lower() in ("rtx", "red", "ulpfec", "flexfec-03", "cn", "telephone-event"):
                    continue
                fmtp = _fmtp_dict(codec.parameters)
                spec = find_codec(media.kind, name, codec.clockRate, fmtp)
                if spec is not None:
                    offered_fb = {(fb.type, fb.parameter or "") for fb in codec.rtcpFeedback}
                    wanted = VIDEO_FEEDBACK if media.kind == "video" else AUDIO_FEEDBACK
                    chosen = (
                        spec,
                        int(codec.payloadType or 0),
                        [f for f in wanted if f in offered_fb],
                        fmtp,
                    )
                    break
            if chosen is None:
                names = ", ".join(c.mimeType for c in media.rtp.codecs) or "none"
                reason = f"no supported codec (offered: {names})"
        direction = media.direction or "sendrecv"
        if reason is not None or chosen is None:
            rejected[mid] = reason or "rejected"
            lines = [
                f"m={media.kind} 0 {media.profile} {' '.join(map(str, media.fmt[:1] or [0]))}",
                "c=IN IP4 0.0.0.0",
                f"a=mid:{mid}",
                "a=inactive",
            ]
            sections.append(lines)
            continue
        spec, pt, feedback, fmtp = chosen
        red_pt = _red_payload_type(media, pt) if spec.name == "opus" else 0
        rtx_pt = 0
        for codec in media.rtp.codecs:
            if codec.mimeType.lower().endswith("/rtx") and str(
                _fmtp_dict(codec.parameters).get("apt")
            ) == str(pt):
                rtx_pt = int(codec.payloadType or 0)
                break
        extensions = {
            h.uri: h.id for h in media.rtp.headerExtensions if h.uri in PUBLISH_EXTENSIONS
        }
        sending = direction in ("sendrecv", "sendonly")
        answer_direction = "recvonly" if sending else "inactive"
        ssrc, rtx_ssrc = _ssrcs(media)
        _check_rtp_numbers(mid, (pt, rtx_pt), extensions, (ssrc, rtx_ssrc), seen_ssrcs)
        stream_id, track_id = _msid(media)
        rids = _simulcast(raw_sections[index], mid) if media.kind == "video" else []
        if rids and (EXT_MID not in extensions or EXT_RID not in extensions):
            rids = []  # without MID and RID extensions the layers cannot be told apart
        sim_ssrcs, sim_rtx = (
            _sim_group(media, mid) if media.kind == "video" and not rids else ([], [])
        )
        if sim_ssrcs:
            rids = [str(i) for i in range(len(sim_ssrcs))]
            ssrc, rtx_ssrc = sim_ssrcs[0], sim_rtx[0] or None
        tracks.append(
            OfferedTrack(
                mid,
                media.kind,
                spec,
                pt,
                rtx_pt,
                None if rids and not sim_ssrcs else ssrc,
                None if rids and not sim_ssrcs else rtx_ssrc,
                extensions,
                stream_id,
                track_id,
                sending,
                rids,
                sim_ssrcs,
                sim_rtx,
                red_pt,
            )
        )
        # RED first: a browser sends redundant audio only when it is the preferred codec
        fmts = ([red_pt] if red_pt else []) + [pt] + ([rtx_pt] if rtx_pt else [])
        lines = [
            f"m={media.kind} 9 UDP/TLS/RTP/SAVPF {' '.join(map(str, fmts))}",
            "c=IN IP4 0.0.0.0",
            "a=rtcp:9 IN IP4 0.0.0.0",
            f"a=mid:{mid}",
            f"a={answer_direction}",
            "a=rtcp-mux",
        ]
        if index < len(rsize) and rsize[index]:
            lines.append("a=rtcp-rsize")
        lines += [
            f"a=extmap:{i} {uri}" for uri, i in sorted(extensions.items(), key=lambda x: x[1])
        ]
        lines += _transport_lines(local, setup, not accepted_mids)
        answer_fmtp = fmtp if spec.name != "opus" else {**spec.fmtp}
        if red_pt:
            lines += _red_lines(red_pt, pt)
        lines += _codec_lines(spec, pt, rtx_pt, feedback, answer_fmtp, start_bitrate=True)
        if rids and not sim_ssrcs:
            lines += [f"a=rid:{rid} recv" for rid in rids]
            lines.append("a=simulcast:recv " + ";".join(rids))
        sections.append(lines)
        accepted_mids.append(mid)
    if not accepted_mids:
        raise NegotiationError(
            "unsupported_media",
            "offer: no media section could be accepted: "
            + "; ".join(f"{m}: {r}" for m, r in rejected.items()),
        )
    head = _session_head(local, version, accepted_mids)
    text = "\r\n".join(head + [line for section in sections for line in section]) + "\r\n"
    return PublishAnswer(text, remote, tracks, data_mid, rejected)


def _sim_group(media: aiortc_sdp.MediaDescription, mid: str) -> tuple[list[int], list[int]]:
    """SSRC-group simulcast: the a=ssrc-group:SIM SSRCs (lowest layer first) and the RTX SSRC
    of each from its FID group (0 when it has none)."""
    sim: list[int] = []
    rtx_of: dict[int, int] = {}
    for group in media.ssrc_group:
        if group.semantic == "SIM" and len(group.items) >= 2 and not sim:
            sim = [int(item) for item in group.items]
        elif group.semantic == "FID" and len(group.items) >= 2:
            rtx_of[int(group.items[0])] = int(group.items[1])
    if len(sim) > MAX_RIDS or len(set(sim)) != len(sim):
        raise NegotiationError(
            "invalid_sdp",
            f"offer: media {mid}: a=ssrc-group:SIM needs 2..{MAX_RIDS} distinct SSRCs",
        )
    return sim, [rtx_of.get(ssrc, 0) for ssrc in sim]


def _ssrcs(media: aiortc_sdp.MediaDescription) -> tuple[int | None, int | None]:
    rtx_of: dict[int, int] = {}
    for group in media.ssrc_group:
        if group.semantic == "FID" and len(group.items) >= 2:
            rtx_of[int(group.items[0])] = int(group.items[1])
    rtx_set = set(rtx_of.values())
    for info in media.ssrc:
        if info.ssrc not in rtx_set:
            return info.ssrc, rtx_of.get(info.ssrc)
    return None, None


def _check_rtp_numbers(
    mid: str,
    payload_types: tuple[int, int],
    extensions: dict[str, int],
    ssrcs: tuple[int | None, int | None],
    seen_ssrcs: set[int],
) -> None:
    """aiortc parses any integer; RTP carries 7-bit payload types, 1..255 extension ids and
    32-bit SSRCs, and one SSRC belongs to one section."""
    for pt in payload_types:
        if not 0 <= pt <= 127:
            raise NegotiationError(
                "invalid_sdp", f"offer: media {mid}: payload type {pt} is outside 0..127"
            )
    for uri, ext_id in extensions.items():
        if not 1 <= ext_id <= 255:
            raise NegotiationError(
                "invalid_sdp", f"offer: media {mid}: extmap id {ext_id} of {uri} is outside 1..255"
            )
    for ssrc in ssrcs:
        if ssrc is None:
            continue
        if not 0 <= ssrc <= 0xFFFFFFFF:
            raise NegotiationError(
                "invalid_sdp", f"offer: media {mid}: ssrc {ssrc} is outside 0..4294967295"
            )
        if ssrc in seen_ssrcs:
            raise NegotiationError(
                "invalid_sdp", f"offer: media {mid}: ssrc {ssrc} is used by another section"
            )
        seen_ssrcs.add(ssrc)


def _msid(media: aiortc_sdp.MediaDescription) -> tuple[str, str]:
    value = media.msid if media.msid and media.msid.strip() else None
    if not value:
        for info in media.ssrc:
            if info.msid:
                value = info.msid
                break
    parts = (value or "").split()
    if parts:
        return parts[0], parts[1] if len(parts) > 1 else ""
    return "", ""


def sending_kinds(offer_sdp: object) -> set[str]:
    """The kinds ("audio", "video") of the sections an offer sends (for publish gates)."""
    offer = parse_description(offer_sdp, "offer")
    return {
        media.kind
        for media in offer.media
        if media.kind in ("audio", "video")
        and media.port != 0
        and (media.direction or "sendrecv") in ("sendrecv", "sendonly")
    }


def build_subscribe_offer(local: LocalParameters, slots: list[SubscribeSlot], version: int) -> str:
    """The server's offer to a subscriber: one sendonly m-line per consumer."""
    head = _session_head(local, version, [s.mid for s in slots if s.codec is not None])
    body: list[str] = []
    first = True
    for slot in slots:
        spec = slot.codec
        if spec is None:
            pt = 111 if slot.kind == "audio" else 96
            body += [
                f"m={slot.kind} 0 UDP/TLS/RTP/SAVPF {pt}",
                "c=IN IP4 0.0.0.0",
                f"a=mid:{slot.mid}",
                "a=inactive",
                "a=rtcp-mux",
            ]
            # ICE and DTLS attributes on a closed section too: aiortc refuses an offer with any
            # m-line lacking them (so does JSEP's recycling of mids); browsers ignore them here
            body += _transport_lines(local, "actpass", False)
            body.append(
                f"a=rtpmap:{pt} " + ("opus/48000/2" if slot.kind == "audio" else "VP8/90000")
            )
            continue
        rtx_pt = spec.rtx_payload_type if slot.rtx_ssrc else 0
        red_pt = RED_PAYLOAD_TYPE if spec.name == "opus" else 0
        fmts = [spec.payload_type] + ([rtx_pt] if rtx_pt else []) + ([red_pt] if red_pt else [])
        feedback = VIDEO_FEEDBACK if spec.kind == "video" else AUDIO_FEEDBACK
        body += [
            f"m={spec.kind} 9 UDP/TLS/RTP/SAVPF {' '.join(map(str, fmts))}",
            "c=IN IP4 0.0.0.0",
            "a=rtcp:9 IN IP4 0.0.0.0",
            f"a=mid:{slot.mid}",
            "a=sendonly",
            "a=rtcp-mux",
            "a=rtcp-rsize",
            f"a=msid:{slot.stream_id} {slot.track_id}",
        ]
        body += [f"a=extmap:{i} {uri}" for uri, i in SUBSCRIBE_EXTENSIONS[spec.kind].items()]
        body += _transport_lines(local, "actpass", first)
        first = False
        body += _codec_lines(
            spec, spec.payload_type, rtx_pt, feedback, spec.fmtp, start_bitrate=False
        )
        if red_pt:
            body += _red_lines(red_pt, spec.payload_type)
        if rtx_pt:
            body.append(f"a=ssrc-group:FID {slot.ssrc} {slot.rtx_ssrc}")
        for ssrc in [slot.ssrc] + ([slot.rtx_ssrc] if rtx_pt else []):
            body.append(f"a=ssrc:{ssrc} cname:{slot.cname}")
            body.append(f"a=ssrc:{ssrc} msid:{slot.stream_id} {slot.track_id}")
    return "\r\n".join(head + body) + "\r\n"


def parse_subscribe_answer(answer_sdp: object, open_mids: list[str]) -> RemoteParameters:
    """Check a subscriber's answer to the server's offer."""
    answer = parse_description(answer_sdp, "answer")
    mids = [m.rtp.muxId for m in answer.media]
    for mid in open_mids:
        if mid not in mids:
            raise NegotiationError("invalid_sdp", f"answer: media section {mid!r} is missing")
    remote = _remote_parameters(answer, "answer")
    for media in answer.media:
        if media.kind == "audio" and media.port != 0:
            for codec in media.rtp.codecs:
                if codec.mimeType.lower() == "audio/red" and codec.payloadType == RED_PAYLOAD_TYPE:
                    remote.red_payload_type = RED_PAYLOAD_TYPE
    return remote


def new_ice_credentials() -> tuple[str, str]:
    """A fresh ICE ufrag (8 chars) and password (24 chars), both within ice-char."""
    return secrets.token_hex(4), secrets.token_hex(12)


def new_ssrc(taken: set[int]) -> int:
    while True:
        value = secrets.randbits(32)
        if value not in taken and value != 0:
            taken.add(value)
            return value


def monotonic_version() -> int:
    return int(time.time())
