"""The DTLS certificate of a worker: a self-signed ECDSA P-256 certificate and its fingerprint."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def fingerprint_of(der: bytes, algorithm: str = "sha-256") -> str:
    """The SDP form of a certificate fingerprint: upper-case hex pairs joined by colons."""
    name = algorithm.lower().replace("-", "")
    try:
        digest = hashes.Hash(getattr(hashes, name.upper())())
    except AttributeError:
        raise ValueError(f"unsupported fingerprint algorithm {algorithm!r}") from None
    digest.update(der)
    return ":".join(f"{b:02X}" for b in digest.finalize())


@dataclass(frozen=True)
class Certificate:
    """A DTLS identity; generate() makes a new one valid for 30 days."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def generate(cls) -> Certificate:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, os.urandom(8).hex())])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, cert=cert)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def fingerprint(self) -> str:
        """The sha-256 fingerprint announced in SDP (``a=fingerprint:sha-256 ...``)."""
        return fingerprint_of(self.der)
