"""Which OpenID Connect issuers the CA trusts, and what each one's tokens mean.

Mirrors Fulcio's ``OIDCIssuer`` (protocols.md §1.3, ``sigstore/fulcio pkg/config/config.go``): an
issuer is named either by its exact URL or by a *meta-issuer* pattern in which every ``*`` stands
for one URL-safe label (``[-_a-zA-Z0-9]+``, anchored), e.g. ``https://oidc.eks.*.amazonaws.com/id/*``.
The issuer *type* decides how a verified token becomes a certificate identity
(:mod:`keyless.identity.principals`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from keyless.errors import ConfigError

IssuerType = Literal[
    "email",
    "github-workflow",
    "gitlab-pipeline",
    "buildkite-job",
    "spiffe",
    "kubernetes",
    "uri",
    "username",
]
ISSUER_TYPES: tuple[str, ...] = get_args(IssuerType)

#: What one ``*`` of a meta-issuer pattern may match (Fulcio ``metaRegex``).
_WILDCARD_LABEL = "[-_a-zA-Z0-9]+"


@dataclass(frozen=True)
class IssuerConfig:
    """One trusted issuer (exact URL or meta-issuer pattern) and how to read its tokens.

    ``subject_domain`` is required by the ``uri`` and ``username`` types (Fulcio: the subject's
    scheme + host must match it; usernames become ``sub!subject_domain``); ``spiffe_trust_domain``
    by the ``spiffe`` type. ``issuer_claim`` (a dotted path such as
    ``federated_claims.connector_id``, optionally prefixed ``$.``) names the claim whose value is
    embedded in certificates as the issuer instead of ``iss`` (Fulcio ``IssuerClaim``, used by Dex).
    """

    url: str
    type: IssuerType = "email"
    client_id: str = "sigstore"
    subject_domain: str | None = None
    spiffe_trust_domain: str | None = None
    issuer_claim: str | None = None
    skip_email_verification: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if self.type not in ISSUER_TYPES:
            raise ConfigError(
                f"issuer {self.url!r}: unknown type {self.type!r} "
                f"(one of {', '.join(ISSUER_TYPES)})"
            )
        parts = urlsplit(self.url.replace("*", "x"))
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigError(f"issuer URL {self.url!r} must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ConfigError(f"issuer URL {self.url!r} must not have a query or fragment")
        if not self.client_id:
            raise ConfigError(f"issuer {self.url!r}: client_id must not be empty")
        if self.type in ("uri", "username"):
            if not self.subject_domain:
                raise ConfigError(f"issuer {self.url!r} of type {self.type} needs subject_domain")
            if self.type == "uri":
                domain = urlsplit(self.subject_domain)
                if not domain.scheme or not domain.hostname:
                    raise ConfigError(
                        f"issuer {self.url!r}: subject_domain {self.subject_domain!r} must be a "
                        "URL with scheme and host for the uri type"
                    )
            elif "!" in self.subject_domain:
                raise ConfigError(f"issuer {self.url!r}: subject_domain must not contain '!'")
        if self.type == "spiffe" and not self.spiffe_trust_domain:
            raise ConfigError(f"issuer {self.url!r} of type spiffe needs spiffe_trust_domain")

    @property
    def is_meta(self) -> bool:
        """Whether :attr:`url` is a meta-issuer pattern (contains ``*``)."""
        return "*" in self.url

    @property
    def challenge_claim(self) -> str:
        """The claim the proof of possession is signed over (Fulcio ``ChallengeClaim`` default)."""
        return "email" if self.type == "email" else "sub"

    def matches(self, issuer: str) -> bool:
        """Whether the token issuer ``issuer`` is this configuration's (exact or pattern match)."""
        if not self.is_meta:
            return issuer == self.url
        return _pattern(self.url).fullmatch(issuer) is not None

    def to_api(self) -> dict[str, Any]:
        """The ``OIDCIssuer`` element of Fulcio's ``GET /api/v2/configuration`` (protocols §1.3)."""
        out: dict[str, Any] = {
            ("wildcardIssuerUrl" if self.is_meta else "issuerUrl"): self.url,
            "audience": self.client_id,
            "challengeClaim": self.challenge_claim,
            "issuerType": self.type,
        }
        if self.subject_domain:
            out["subjectDomain"] = self.subject_domain
        if self.spiffe_trust_domain:
            out["spiffeTrustDomain"] = self.spiffe_trust_domain
        if self.skip_email_verification:
            out["skipEmailVerification"] = True
        return out

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> IssuerConfig:
        """Build from a config-file mapping; accepts snake_case and Fulcio's CamelCase keys."""
        aliases = {
            "IssuerURL": "url", "issuer_url": "url", "issuerUrl": "url", "url": "url",
            "ClientID": "client_id", "client_id": "client_id", "clientId": "client_id",
            "Type": "type", "type": "type",
            "SubjectDomain": "subject_domain", "subject_domain": "subject_domain",
            "SPIFFETrustDomain": "spiffe_trust_domain",
            "spiffe_trust_domain": "spiffe_trust_domain",
            "IssuerClaim": "issuer_claim", "issuer_claim": "issuer_claim",
            "SkipEmailVerification": "skip_email_verification",
            "skip_email_verification": "skip_email_verification",
            "Description": "description", "description": "description",
        }  # fmt: skip
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            name = aliases.get(key)
            if name is None:
                raise ConfigError(f"issuer configuration: unknown key {key!r}")
            if name == "skip_email_verification":
                if not isinstance(value, bool):
                    raise ConfigError(f"issuer configuration: {key} must be a boolean")
            elif not isinstance(value, str):
                raise ConfigError(f"issuer configuration: {key} must be a string")
            kwargs[name] = value
        if "url" not in kwargs:
            raise ConfigError("issuer configuration: the issuer URL is missing")
        return cls(**kwargs)


def _pattern(url: str) -> re.Pattern[str]:
    return re.compile(_WILDCARD_LABEL.join(re.escape(part) for part in url.split("*")))


def find_issuer(issuers: tuple[IssuerConfig, ...], issuer: str) -> IssuerConfig | None:
    """The configuration for token issuer ``issuer``: exact URLs win over meta-issuer patterns.

    Fulcio looks up ``OIDCIssuers`` first and only then ``MetaIssuers`` (``pkg/config``), so an
    exact entry can narrow what a wildcard would otherwise allow.
    """
    for config in issuers:
        if not config.is_meta and config.url == issuer:
            return config
    for config in issuers:
        if config.is_meta and config.matches(issuer):
            return config
    return None
