"""SRTP/SRTCP sessions (cext/srtp.pyx): interop with pylibsrtp, DTLS-SRTP keying, errors."""

from __future__ import annotations

import contextlib
import os
import re
import struct

import pylibsrtp
import pytest
from aiortc.rtcdtlstransport import (
    SRTP_AEAD_AES_128_GCM,
    SRTP_AES128_CM_SHA1_80,
    SRTPProtectionProfile,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from mediasrv._core import (
    SRTP_MAX_TRAILER_LEN,
    SrtpError,
    SrtpProfile,
    SrtpSession,
    srtp_key_length,
    srtp_sessions_from_keying_material,
)

CM = SrtpProfile.AES_CM_128_HMAC_SHA1_80
GCM = SrtpProfile.AEAD_AES_128_GCM
PROFILES = [CM, GCM]
TAG_LENGTH = {CM: 10, GCM: 16}
SRTCP_INDEX_LENGTH = 4
LIBSRTP_PROFILE = {
    CM: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    GCM: pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
}
# aiortc's own key/salt split, an implementation independent of ours.
AIORTC_PROFILE: dict[SrtpProfile, SRTPProtectionProfile] = {
    CM: SRTP_AES128_CM_SHA1_80,
    GCM: SRTP_AEAD_AES_128_GCM,
}

STATUS_AUTH_FAIL = 7
STATUS_REPLAY_FAIL = 9
STATUS_REPLAY_OLD = 10
STATUS_NO_SUCH_OP = 12
STATUS_NO_CTX = 13
STATUS_BAD_PARAM = 2


def exactly(message: str) -> str:
    """A pytest.raises(match=...) pattern for exactly this message."""
    return f"^{re.escape(message)}$"


def rtp_packet(seq: int, payload: bytes = b"media payload", *, ssrc: int = 0x11223344) -> bytes:
    return struct.pack("!BBHII", 0x80, 96, seq, seq * 960, ssrc) + payload


def rtp_with_csrc_and_extension(seq: int) -> bytes:
    header = struct.pack("!BBHII", 0x91, 0xE0, seq, 1234, 0x55667788)  # X=1, CC=1, marker
    csrc = struct.pack("!I", 0xCAFEBABE)
    extension = struct.pack("!HH", 0xBEDE, 1) + bytes([0x10, 0x7F, 0, 0])  # one-byte, id 1
    return header + csrc + extension + b"\x01" * 100


def rtcp_sender_report(ssrc: int = 0x11223344, packets: int = 7) -> bytes:
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 1, 2, 3, packets, packets * 100)


def libsrtp_session(profile: SrtpProfile, key: bytes, *, outbound: bool) -> pylibsrtp.Session:
    ssrc_type = (
        pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
    )
    policy = pylibsrtp.Policy(key=key, ssrc_type=ssrc_type, srtp_profile=LIBSRTP_PROFILE[profile])
    return pylibsrtp.Session(policy)


def new_key(profile: SrtpProfile) -> bytes:
    return os.urandom(srtp_key_length(profile))


def rtp_packets() -> list[bytes]:
    return [
        rtp_packet(1),
        rtp_packet(2, b""),
        rtp_packet(3, os.urandom(1000)),
        rtp_with_csrc_and_extension(4),
        rtp_packet(0xFFFF, b"before the wrap"),
    ]


def test_key_lengths_and_constants() -> None:
    assert srtp_key_length(CM) == 30
    assert srtp_key_length(GCM) == 28
    assert srtp_key_length(1) == 30
    assert SRTP_MAX_TRAILER_LEN == 16 + 128
    with pytest.raises(ValueError, match="unsupported SRTP profile 2"):
        srtp_key_length(2)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_rtp_we_protect_libsrtp_unprotects(profile: SrtpProfile) -> None:
    key = new_key(profile)
    ours = SrtpSession(profile, key, outbound=True)
    reference = libsrtp_session(profile, key, outbound=True)
    receiver = libsrtp_session(profile, key, outbound=False)
    for packet in rtp_packets():
        protected = ours.protect(packet)
        assert len(protected) == len(packet) + TAG_LENGTH[profile]
        assert protected == reference.protect(packet)  # SRTP is deterministic
        assert receiver.unprotect(protected) == packet


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_rtp_libsrtp_protects_we_unprotect(profile: SrtpProfile) -> None:
    key = new_key(profile)
    sender = libsrtp_session(profile, key, outbound=True)
    ours = SrtpSession(profile, key, outbound=False)
    for packet in rtp_packets():
        assert ours.unprotect(sender.protect(packet)) == packet


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_rtcp_interop_both_directions(profile: SrtpProfile) -> None:
    key = new_key(profile)
    ours_out = SrtpSession(profile, key, outbound=True)
    ours_in = SrtpSession(profile, key, outbound=False)
    reference = libsrtp_session(profile, key, outbound=True)
    lib_out = libsrtp_session(profile, key, outbound=True)
    lib_in = libsrtp_session(profile, key, outbound=False)
    for count in range(5):
        report = rtcp_sender_report(packets=count)
        protected = ours_out.protect_rtcp(report)
        assert len(protected) == len(report) + SRTCP_INDEX_LENGTH + TAG_LENGTH[profile]
        assert protected == reference.protect_rtcp(report)  # same SRTCP index, same bytes
        assert lib_in.unprotect_rtcp(protected) == report
        assert ours_in.unprotect_rtcp(lib_out.protect_rtcp(report)) == report


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_keying_material_split_matches_aiortc(profile: SrtpProfile) -> None:
    aiortc_profile = AIORTC_PROFILE[profile]
    material = os.urandom(2 * srtp_key_length(profile))
    client_key = aiortc_profile.get_key_and_salt(material, 0)
    server_key = aiortc_profile.get_key_and_salt(material, 1)
    client_out, client_in = srtp_sessions_from_keying_material(material, profile, is_client=True)
    server_out, server_in = srtp_sessions_from_keying_material(material, profile, is_client=False)
    assert (client_out.outbound, client_in.outbound) == (True, False)
    assert client_out.profile is profile

    packet = rtp_packet(10)
    from_client = client_out.protect(packet)
    from_server = server_out.protect(packet)
    assert from_client == libsrtp_session(profile, client_key, outbound=True).protect(packet)
    assert from_server == libsrtp_session(profile, server_key, outbound=True).protect(packet)
    assert server_in.unprotect(from_client) == packet
    assert client_in.unprotect(from_server) == packet

    report = rtcp_sender_report()
    assert server_in.unprotect_rtcp(client_out.protect_rtcp(report)) == report
    assert client_in.unprotect_rtcp(server_out.protect_rtcp(report)) == report


def test_keying_material_split_by_hand() -> None:
    material = bytes(range(60))
    client_key = material[0:16] + material[32:46]
    outbound, _ = srtp_sessions_from_keying_material(material, CM, is_client=True)
    packet = rtp_packet(5)
    assert outbound.protect(packet) == libsrtp_session(CM, client_key, outbound=True).protect(
        packet
    )


@pytest.mark.parametrize(("profile", "size"), [(CM, 60), (GCM, 56)], ids=["CM", "GCM"])
def test_keying_material_length_is_exact(profile: SrtpProfile, size: int) -> None:
    for wrong in (size - 1, size + 1, 0):
        message = f"DTLS-SRTP keying material must be {size} bytes for {profile.name}, got {wrong}"
        with pytest.raises(SrtpError, match=exactly(message)) as info:
            srtp_sessions_from_keying_material(bytes(wrong), profile, is_client=True)
        assert info.value.status == STATUS_BAD_PARAM


def test_wrong_key_length() -> None:
    message = "SRTP key must be 30 bytes for AES_CM_128_HMAC_SHA1_80, got 16"
    with pytest.raises(SrtpError, match=exactly(message)) as info:
        SrtpSession(CM, bytes(16), outbound=True)
    assert info.value.status == STATUS_BAD_PARAM
    with pytest.raises(
        SrtpError, match=exactly("SRTP key must be 28 bytes for AEAD_AES_128_GCM, got 30")
    ):
        SrtpSession(GCM, bytes(30), outbound=False)


def test_bad_window_size() -> None:
    with pytest.raises(ValueError, match="window_size must be between 64 and 32767, got 10"):
        SrtpSession(CM, new_key(CM), outbound=False, window_size=10)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_replay_is_rejected(profile: SrtpProfile) -> None:
    key = new_key(profile)
    sender = SrtpSession(profile, key, outbound=True)
    receiver = SrtpSession(profile, key, outbound=False)
    protected = sender.protect(rtp_packet(100))
    receiver.unprotect(protected)
    with pytest.raises(
        SrtpError, match=exactly("SRTP replay check failed: packet already received")
    ) as e:
        receiver.unprotect(protected)
    assert e.value.status == STATUS_REPLAY_FAIL

    srtcp = sender.protect_rtcp(rtcp_sender_report())
    receiver.unprotect_rtcp(srtcp)
    with pytest.raises(
        SrtpError, match=exactly("SRTCP replay check failed: packet already received")
    ):
        receiver.unprotect_rtcp(srtcp)


def test_packet_older_than_the_window_is_rejected() -> None:
    key = new_key(CM)
    sender = SrtpSession(CM, key, outbound=True)
    receiver = SrtpSession(CM, key, outbound=False, window_size=64)
    old = sender.protect(rtp_packet(1000))
    receiver.unprotect(sender.protect(rtp_packet(1100)))
    with pytest.raises(
        SrtpError, match=exactly("SRTP replay check failed: packet too old")
    ) as info:
        receiver.unprotect(old)
    assert info.value.status == STATUS_REPLAY_OLD


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_tampered_packets_fail_authentication(profile: SrtpProfile) -> None:
    key = new_key(profile)
    sender = SrtpSession(profile, key, outbound=True)
    receiver = SrtpSession(profile, key, outbound=False)
    protected = bytearray(sender.protect(rtp_packet(7)))
    protected[20] ^= 0x01
    with pytest.raises(SrtpError, match=exactly("SRTP authentication failed")) as info:
        receiver.unprotect(bytes(protected))
    assert info.value.status == STATUS_AUTH_FAIL
    # The genuine packet still goes through: a forgery doesn't poison the replay window.
    protected[20] ^= 0x01
    assert receiver.unprotect(bytes(protected)) == rtp_packet(7)

    srtcp = bytearray(sender.protect_rtcp(rtcp_sender_report()))
    srtcp[-1] ^= 0x80
    with pytest.raises(SrtpError, match=exactly("SRTCP authentication failed")):
        receiver.unprotect_rtcp(bytes(srtcp))


def test_wrong_key_fails_authentication() -> None:
    sender = SrtpSession(CM, new_key(CM), outbound=True)
    receiver = SrtpSession(CM, new_key(CM), outbound=False)
    with pytest.raises(SrtpError, match=exactly("SRTP authentication failed")):
        receiver.unprotect(sender.protect(rtp_packet(1)))


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_too_short(profile: SrtpProfile) -> None:
    key = new_key(profile)
    sender = SrtpSession(profile, key, outbound=True)
    receiver = SrtpSession(profile, key, outbound=False)
    shortest_srtp = 12 + TAG_LENGTH[profile]
    shortest_srtcp = 8 + 4 + TAG_LENGTH[profile]
    cases = [
        (receiver.unprotect, b"\x80" * 5, "SRTP packet is too short (5 bytes)"),
        (receiver.unprotect, b"", "SRTP packet is too short (0 bytes)"),
        (
            receiver.unprotect,
            b"\x80" * (shortest_srtp - 1),
            f"SRTP packet is too short ({shortest_srtp - 1} bytes)",
        ),
        (
            receiver.unprotect_rtcp,
            b"\x80" * (shortest_srtcp - 1),
            f"SRTCP packet is too short ({shortest_srtcp - 1} bytes)",
        ),
        (sender.protect, b"\x80" * 11, "RTP packet is too short (11 bytes)"),
        (sender.protect_rtcp, b"\x80" * 7, "RTCP packet is too short (7 bytes)"),
    ]
    for method, data, message in cases:
        with pytest.raises(SrtpError, match=exactly(message)) as info:
            method(data)
        assert info.value.status == STATUS_BAD_PARAM


def test_malformed_header_is_rejected() -> None:
    sender = SrtpSession(CM, new_key(CM), outbound=True)
    csrc_count_15 = b"\x8f" + bytes(19)  # claims 60 bytes of CSRCs
    with pytest.raises(SrtpError, match=r"^SRTP malformed packet") as info:
        sender.protect(csrc_count_15)
    assert info.value.status == STATUS_BAD_PARAM


def test_wrong_direction() -> None:
    key = new_key(CM)
    outbound = SrtpSession(CM, key, outbound=True)
    inbound = SrtpSession(CM, key, outbound=False)
    cases = [
        (inbound.protect, "protect() needs an outbound SrtpSession, this one is inbound"),
        (inbound.protect_rtcp, "protect_rtcp() needs an outbound SrtpSession, this one is inbound"),
        (outbound.unprotect, "unprotect() needs an inbound SrtpSession, this one is outbound"),
        (
            outbound.unprotect_rtcp,
            "unprotect_rtcp() needs an inbound SrtpSession, this one is outbound",
        ),
    ]
    for method, message in cases:
        with pytest.raises(SrtpError, match=exactly(message)):
            method(rtp_packet(1))


def test_closed_session() -> None:
    session = SrtpSession(GCM, new_key(GCM), outbound=True)
    assert not session.closed
    session.close()
    session.close()
    assert session.closed
    assert "closed" in repr(session)
    with pytest.raises(SrtpError, match=exactly("SRTP session is closed")) as info:
        session.protect(rtp_packet(1))
    assert info.value.status == STATUS_NO_CTX
    with pytest.raises(SrtpError, match=exactly("SRTP session is closed")):
        session.protect_rtcp(rtcp_sender_report())


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_repeat_tx(profile: SrtpProfile) -> None:
    key = new_key(profile)
    packet = rtp_packet(42)
    strict = SrtpSession(profile, key, outbound=True)
    strict.protect(packet)
    with pytest.raises(SrtpError, match="allow_repeat_tx is off") as info:
        strict.protect(packet)
    assert info.value.status == STATUS_REPLAY_FAIL

    lenient = SrtpSession(profile, key, outbound=True, allow_repeat_tx=True)
    assert lenient.protect(packet) == lenient.protect(packet)

    material = os.urandom(2 * srtp_key_length(profile))
    outbound, _ = srtp_sessions_from_keying_material(
        material, profile, is_client=False, allow_repeat_tx=True
    )
    assert outbound.protect(packet) == outbound.protect(packet)


@settings(max_examples=300, deadline=None)
@given(
    profile=st.sampled_from(PROFILES),
    data=st.one_of(
        st.binary(max_size=200),
        st.tuples(
            st.sampled_from([b"\x80", b"\x90", b"\x8f", b"\x9f"]), st.binary(max_size=120)
        ).map(b"".join),
    ),
)
def test_random_bytes_never_crash_unprotect(profile: SrtpProfile, data: bytes) -> None:
    receiver = SrtpSession(profile, bytes(srtp_key_length(profile)), outbound=False)
    for method in (receiver.unprotect, receiver.unprotect_rtcp):
        with contextlib.suppress(SrtpError):
            method(data)


@settings(max_examples=200, deadline=None)
@given(
    profile=st.sampled_from(PROFILES),
    data=st.tuples(
        st.sampled_from([b"\x80", b"\x90", b"\x8f", b"\x9f"]), st.binary(max_size=200)
    ).map(b"".join),
)
def test_random_rtp_round_trips_or_is_rejected(profile: SrtpProfile, data: bytes) -> None:
    key = bytes(range(srtp_key_length(profile)))
    sender = SrtpSession(profile, key, outbound=True)
    receiver = SrtpSession(profile, key, outbound=False)
    try:
        protected = sender.protect(data)
    except SrtpError as error:
        assert error.status == STATUS_BAD_PARAM
        return
    assert receiver.unprotect(protected) == data
