r"""Identity policies: who must have signed (protocols.md §9 step 4, §1.4; interop.md §5 item 7).

Fulcio records the OIDC issuer twice: the legacy extension 1.3.6.1.4.1.57264.1.1 (raw UTF-8, what
sigstore-python reads) and 1.3.6.1.4.1.57264.1.8 (DER UTF8String, what sigstore-js reads). A policy
requires at least one of them and every one present to equal the expected issuer, so a
certificate cannot pass with contradicting values. The identity is the SAN (URI, e-mail, or the
Sigstore OtherName 1.3.6.1.4.1.57264.1.7), compared exactly or by a regular expression.

A regular expression (identity or issuer) must match the WHOLE value, as sigstore-python's
``Identity`` and cosign's ``--certificate-identity-regexp`` do: it is applied with Python's
:func:`re.fullmatch`, so ``alice@example\.com`` does not accept ``mallory-alice@example.com``;
write ``.*@example\.com`` to accept a family. A pattern that matches only part of the value is
refused with an error that says so.
GitHub Actions claims come from the .9-.22 DER extensions, falling back to the legacy raw .2-.6.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from keyless.errors import shown
from keyless.verify.errors import IdentityMismatchError

__all__ = [
    "OID_BUILD_TRIGGER",
    "OID_GITHUB_REF",
    "OID_GITHUB_REPOSITORY",
    "OID_GITHUB_SHA",
    "OID_GITHUB_TRIGGER",
    "OID_GITHUB_WORKFLOW_NAME",
    "OID_ISSUER_V1",
    "OID_ISSUER_V2",
    "OID_OTHERNAME_SAN",
    "OID_SOURCE_REPOSITORY_DIGEST",
    "OID_SOURCE_REPOSITORY_REF",
    "OID_SOURCE_REPOSITORY_URI",
    "AllOf",
    "GitHubWorkflow",
    "Identity",
    "Policy",
    "certificate_identities",
    "certificate_issuer",
    "extension_text",
]

OID_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_GITHUB_TRIGGER = ObjectIdentifier("1.3.6.1.4.1.57264.1.2")
OID_GITHUB_SHA = ObjectIdentifier("1.3.6.1.4.1.57264.1.3")
OID_GITHUB_WORKFLOW_NAME = ObjectIdentifier("1.3.6.1.4.1.57264.1.4")
OID_GITHUB_REPOSITORY = ObjectIdentifier("1.3.6.1.4.1.57264.1.5")
OID_GITHUB_REF = ObjectIdentifier("1.3.6.1.4.1.57264.1.6")
OID_OTHERNAME_SAN = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
OID_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OID_SOURCE_REPOSITORY_URI = ObjectIdentifier("1.3.6.1.4.1.57264.1.12")
OID_SOURCE_REPOSITORY_DIGEST = ObjectIdentifier("1.3.6.1.4.1.57264.1.13")
OID_SOURCE_REPOSITORY_REF = ObjectIdentifier("1.3.6.1.4.1.57264.1.14")
OID_BUILD_TRIGGER = ObjectIdentifier("1.3.6.1.4.1.57264.1.20")


class Policy(Protocol):
    """Anything that checks a signing certificate and raises IdentityMismatchError on mismatch."""

    def verify(self, cert: x509.Certificate) -> None: ...


def _raw_extension(cert: x509.Certificate, oid: ObjectIdentifier) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    if isinstance(value, x509.UnrecognizedExtension):
        return value.value
    return None


def _der_utf8(data: bytes) -> str | None:
    """Decode a DER UTF8String (tag 0x0C) with a short or long length; None if it is not one."""
    if len(data) < 2 or data[0] != 0x0C:
        return None
    length = data[1]
    offset = 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or len(data) < 2 + n:
            return None
        length = int.from_bytes(data[2 : 2 + n], "big")
        offset = 2 + n
    if offset + length != len(data):
        return None
    try:
        return data[offset:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def extension_text(
    cert: x509.Certificate, v2: ObjectIdentifier | None, v1: ObjectIdentifier | None = None
) -> list[str]:
    """The values of a Sigstore claim: the DER-encoded ``v2`` extension and/or the raw ``v1``."""
    values: list[str] = []
    if v2 is not None and (raw := _raw_extension(cert, v2)) is not None:
        text = _der_utf8(raw)
        if text is None:
            raise IdentityMismatchError(f"certificate extension {v2.dotted_string} is malformed")
        values.append(text)
    if v1 is not None and (raw := _raw_extension(cert, v1)) is not None:
        try:
            values.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise IdentityMismatchError(
                f"certificate extension {v1.dotted_string} is not UTF-8"
            ) from exc
    return values


def certificate_issuer(cert: x509.Certificate) -> str:
    """The OIDC issuer recorded in the certificate; contradicting .1/.8 values are rejected."""
    values = extension_text(cert, OID_ISSUER_V2, OID_ISSUER_V1)
    if not values:
        raise IdentityMismatchError("certificate carries no OIDC issuer extension (.1 or .8)")
    if len(set(values)) != 1:
        raise IdentityMismatchError("certificate's OIDC issuer extensions .1 and .8 disagree")
    return values[0]


def certificate_identities(cert: x509.Certificate) -> list[str]:
    """Every identity in the SAN: URIs, e-mail addresses and Sigstore OtherName values."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = []
    names.extend(san.get_values_for_type(x509.UniformResourceIdentifier))
    names.extend(san.get_values_for_type(x509.RFC822Name))
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == OID_OTHERNAME_SAN and (text := _der_utf8(other.value)) is not None:
            names.append(text)
    return names


def _partial_match(pattern: re.Pattern[str], values: list[str]) -> str | None:
    """The first value ``pattern`` matches only part of (to explain a refusal), if any."""
    return next((v for v in values if pattern.search(v)), None)


def _check_regex(regex: str, values: list[str], *, noun: str, mismatch: str) -> None:
    """Raise :class:`IdentityMismatchError` unless ``regex`` fully matches one of ``values``:
    ``mismatch`` when nothing matches, a sentence about whole-value matching when the pattern
    matches only part of a value (the usual mistake: a forgotten ``.*``)."""
    pattern = re.compile(regex)
    if any(pattern.fullmatch(v) for v in values):
        return
    partial = _partial_match(pattern, values)
    if partial is not None:
        raise IdentityMismatchError(
            f"the pattern {shown(regex)} matches only part of {shown(partial)}; "
            f"regexps must match the whole {noun}"
        )
    raise IdentityMismatchError(mismatch)


@dataclass(frozen=True)
class Identity:
    """Who must have signed: the SAN (exactly, or ``identity_regex``) and the OIDC issuer
    (exactly, or ``issuer_regex``). Regular expressions must match the whole value
    (:func:`re.fullmatch`, as sigstore-python and cosign)."""

    issuer: str | None = None
    identity: str | None = None
    identity_regex: str | None = None
    issuer_regex: str | None = None

    def __post_init__(self) -> None:
        if (self.identity is None) == (self.identity_regex is None):
            raise ValueError("give exactly one of identity or identity_regex")
        if (self.issuer is None) == (self.issuer_regex is None):
            raise ValueError("give exactly one of issuer or issuer_regex")
        for regex in (self.identity_regex, self.issuer_regex):
            if regex is not None:
                re.compile(regex)  # an invalid pattern raises re.error here, not when verifying

    def verify(self, cert: x509.Certificate) -> None:
        """Raise :class:`IdentityMismatchError` unless SAN and issuer match (§9 step 4)."""
        issuer = certificate_issuer(cert)
        if self.issuer is not None:
            if issuer != self.issuer:
                raise IdentityMismatchError(
                    f"certificate's OIDC issuer {issuer!r} is not the expected {self.issuer!r}"
                )
        else:
            assert self.issuer_regex is not None
            _check_regex(
                self.issuer_regex,
                [issuer],
                noun="issuer",
                mismatch=f"certificate's OIDC issuer {issuer!r} does not match "
                f"{self.issuer_regex!r}",
            )
        names = certificate_identities(cert)
        if self.identity is not None:
            if self.identity not in names:
                raise IdentityMismatchError(
                    f"certificate's SANs {names} do not match the expected {self.identity!r}"
                )
        else:
            assert self.identity_regex is not None
            _check_regex(
                self.identity_regex,
                names,
                noun="identity",
                mismatch=f"no certificate SAN in {names} matches {self.identity_regex!r}",
            )


@dataclass(frozen=True)
class GitHubWorkflow:
    """GitHub Actions claims (sigstore-python ``verify github``): each given claim must match."""

    repository: str | None = None  # "owner/name"
    ref: str | None = None
    sha: str | None = None
    trigger: str | None = None
    workflow_name: str | None = None

    def verify(self, cert: x509.Certificate) -> None:
        checks: list[tuple[str, str | None, list[str]]] = [
            ("repository", self.repository, self._repositories(cert)),
            ("ref", self.ref, extension_text(cert, OID_SOURCE_REPOSITORY_REF, OID_GITHUB_REF)),
            ("sha", self.sha, extension_text(cert, OID_SOURCE_REPOSITORY_DIGEST, OID_GITHUB_SHA)),
            ("trigger", self.trigger, extension_text(cert, OID_BUILD_TRIGGER, OID_GITHUB_TRIGGER)),
            (
                "workflow name",
                self.workflow_name,
                extension_text(cert, None, OID_GITHUB_WORKFLOW_NAME),
            ),
        ]
        for what, expected, values in checks:
            if expected is None:
                continue
            if not values or any(v != expected for v in values):
                raise IdentityMismatchError(
                    f"certificate's GitHub workflow {what} {shown(values)} is not {shown(expected)}"
                )

    @staticmethod
    def _repositories(cert: x509.Certificate) -> list[str]:
        values = [
            v.removeprefix("https://github.com/")
            for v in extension_text(cert, OID_SOURCE_REPOSITORY_URI)
        ]
        values.extend(extension_text(cert, None, OID_GITHUB_REPOSITORY))
        return values


@dataclass(frozen=True)
class AllOf:
    """Every policy must hold."""

    policies: Sequence[Policy]

    def verify(self, cert: x509.Certificate) -> None:
        if not self.policies:
            raise IdentityMismatchError("an empty policy accepts nothing")
        for policy in self.policies:
            policy.verify(cert)
