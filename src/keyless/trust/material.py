"""Trust material selection: which CA, CT log, transparency log or TSA a verifier may use.

A :class:`TrustMaterial` wraps a parsed :class:`~keyless.formats.trustroot.TrustedRoot` (the
model the server publishes too) and keeps the decoded keys and certificates so that a warm
verifier parses nothing twice (the ≤ 1 ms/bundle target). Selection follows what the
sigstore-conformance suite expects (interop.md §4.2, §5 item 11; vectors/README.md): keys and CAs
are chosen by log ID / chain and must have a ``validFor`` window (inclusive at both ends,
protocols.md §7) containing the time being verified — not merely a
start in the past as sigstore-python 4.5.1 does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_der_public_key

from keyless.errors import ConfigError
from keyless.formats.jsonreader import ValidityPeriod
from keyless.formats.trustroot import CertificateAuthority, TransparencyLogInstance, TrustedRoot
from keyless.keys import KEY_DETAILS

__all__ = [
    "SUPPORTED_KEY_DETAILS",
    "Authority",
    "LogKey",
    "TrustMaterial",
]

#: keyDetails names whose keys keyless can use (protocols.md §6 PublicKeyDetails): the registry
#: and the deprecated RSA names older trusted roots still carry.
SUPPORTED_KEY_DETAILS = frozenset(KEY_DETAILS) | {"PKCS1_RSA_PKCS1V5", "PKIX_RSA_PKCS1V5"}


@dataclass(frozen=True)
class LogKey:
    """A decoded transparency- or CT-log key with its trusted-root entry."""

    instance: TransparencyLogInstance
    key: Any  # a cryptography public key

    @property
    def valid_for(self) -> ValidityPeriod:
        return self.instance.valid_for


@dataclass(frozen=True)
class Authority:
    """A decoded CA or TSA: its trusted-root entry and certificates (leaf/intermediate first)."""

    entry: CertificateAuthority
    certificates: tuple[x509.Certificate, ...]

    @property
    def valid_for(self) -> ValidityPeriod:
        return self.entry.valid_for


def _decode_log(instance: TransparencyLogInstance, where: str) -> LogKey | None:
    if instance.key_details not in SUPPORTED_KEY_DETAILS:
        return None  # an unknown algorithm cannot verify anything; other keys stay usable
    try:
        key = load_der_public_key(instance.public_key)
    except ValueError as exc:
        raise ConfigError(f"{where} ({instance.base_url}) has an unreadable public key") from exc
    return LogKey(instance, key)


def _decode_authority(entry: CertificateAuthority, where: str) -> Authority:
    try:
        certs = tuple(x509.load_der_x509_certificate(c) for c in entry.cert_chain)
    except ValueError as exc:
        raise ConfigError(f"{where} ({entry.uri}) has an unreadable certificate") from exc
    return Authority(entry, certs)


class TrustMaterial:
    """Decoded, indexed trust material of one trusted root (decoding happens once, lazily)."""

    def __init__(self, root: TrustedRoot) -> None:
        self.root = root

    @cached_property
    def tlog_keys(self) -> tuple[LogKey, ...]:
        return tuple(
            k
            for i, t in enumerate(self.root.tlogs)
            if (k := _decode_log(t, f"tlogs[{i}]")) is not None
        )

    @cached_property
    def ct_keys(self) -> tuple[LogKey, ...]:
        return tuple(
            k
            for i, t in enumerate(self.root.ctlogs)
            if (k := _decode_log(t, f"ctlogs[{i}]")) is not None
        )

    @cached_property
    def certificate_authorities(self) -> tuple[Authority, ...]:
        return tuple(
            _decode_authority(c, f"certificateAuthorities[{i}]")
            for i, c in enumerate(self.root.certificate_authorities)
        )

    @cached_property
    def timestamp_authorities(self) -> tuple[Authority, ...]:
        return tuple(
            _decode_authority(c, f"timestampAuthorities[{i}]")
            for i, c in enumerate(self.root.timestamp_authorities)
        )

    @cached_property
    def _tlog_by_id(self) -> dict[bytes, list[LogKey]]:
        index: dict[bytes, list[LogKey]] = {}
        for k in self.tlog_keys:
            index.setdefault(k.instance.log_id, []).append(k)
            if k.instance.checkpoint_key_id and k.instance.checkpoint_key_id != k.instance.log_id:
                index.setdefault(k.instance.checkpoint_key_id, []).append(k)
        return index

    @cached_property
    def _ct_by_id(self) -> dict[bytes, list[LogKey]]:
        index: dict[bytes, list[LogKey]] = {}
        for k in self.ct_keys:
            index.setdefault(k.instance.log_id, []).append(k)
        return index

    def tlogs_for(self, log_id: bytes) -> list[LogKey]:
        """Trusted transparency logs whose log ID equals ``log_id`` exactly (interop.md §5.8)."""
        return self._tlog_by_id.get(log_id, [])

    def ctlogs_for(self, log_id: bytes) -> list[LogKey]:
        """Trusted CT logs with this RFC 6962 log ID (SHA-256 of the SPKI)."""
        return self._ct_by_id.get(log_id, [])

    @cached_property
    def fulcio_certificates(self) -> tuple[x509.Certificate, ...]:
        """Every CA certificate (root and intermediates), deduplicated by DER."""
        seen: dict[bytes, x509.Certificate] = {}
        for ca in self.certificate_authorities:
            for der, cert in zip(ca.entry.cert_chain, ca.certificates, strict=True):
                seen.setdefault(hashlib.sha256(der).digest(), cert)
        return tuple(seen.values())

    def authorities_at(self, when: datetime) -> list[Authority]:
        """CAs whose trusted-root ``validFor`` contains ``when`` (closed interval)."""
        return [ca for ca in self.certificate_authorities if ca.valid_for.contains(when)]
