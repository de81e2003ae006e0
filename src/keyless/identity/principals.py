"""How a verified token becomes a certificate identity, per issuer type.

Each rule follows Fulcio's ``pkg/identity/<type>/principal.go`` (protocols.md §1.2-§1.4): it
names the Subject Alternative Name the CA puts in the certificate and the value the proof of
possession is signed over (``principal.Name()``: the ``email`` claim for email issuers, ``sub``
for every other type).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from keyless.errors import Unauthenticated
from keyless.identity.config import IssuerConfig

SanType = Literal["email", "uri", "username"]

#: Claims Fulcio requires of a GitHub Actions token (``pkg/identity/github/principal.go``).
GITHUB_REQUIRED_CLAIMS = (
    "job_workflow_ref", "sha", "event_name", "repository", "workflow", "ref",
    "job_workflow_sha", "runner_environment", "repository_id", "repository_owner",
    "repository_owner_id", "workflow_ref", "workflow_sha", "run_id", "run_attempt",
)  # fmt: skip

#: Claims Fulcio requires of a GitLab CI token (``pkg/identity/gitlabcom/principal.go``).
GITLAB_REQUIRED_CLAIMS = (
    "project_path", "pipeline_source", "pipeline_id", "ci_config_ref_uri", "job_id", "ref",
    "ref_type", "namespace_path", "namespace_id", "project_id", "sha", "runner_environment",
    "runner_id",
)  # fmt: skip

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_SPIFFE_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")
_SPIFFE_SEGMENT = re.compile(r"[a-zA-Z0-9._-]+")


@dataclass(frozen=True)
class Principal:
    """The identity-bearing part of a token: SAN, its kind, and the PoP challenge value."""

    subject_alternative_name: str
    san_type: SanType
    pop_subject: str


def _string_claim(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise Unauthenticated(f"identity token has no {name!r} claim (required for this issuer)")
    return str(value)


def _email(claims: Mapping[str, Any], config: IssuerConfig) -> Principal:
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise Unauthenticated("identity token has no 'email' claim, required by an email issuer")
    if not _EMAIL.fullmatch(email):
        raise Unauthenticated(f"identity token 'email' claim {email!r} is not an email address")
    if not config.skip_email_verification:
        verified = claims.get("email_verified")
        # Fulcio accepts the boolean and the strings "true"/"True" (pkg/identity/email).
        if verified is not True and verified not in ("true", "True"):
            raise Unauthenticated(
                "identity token's email is not verified (email_verified must be true)"
            )
    return Principal(email, "email", email)


def _github(claims: Mapping[str, Any], config: IssuerConfig) -> Principal:
    for name in GITHUB_REQUIRED_CLAIMS:
        _string_claim(claims, name)
    sub = _string_claim(claims, "sub")
    return Principal("https://github.com/" + str(claims["job_workflow_ref"]), "uri", sub)


def _gitlab(claims: Mapping[str, Any], config: IssuerConfig) -> Principal:
    for name in GITLAB_REQUIRED_CLAIMS:
        _string_claim(claims, name)
    if claims["ref_type"] not in ("branch", "tag"):
        raise Unauthenticated(f"identity token has unexpected ref_type {claims['ref_type']!r}")
    sub = _string_claim(claims, "sub")
    # ci_config_ref_uri has no scheme ("gitlab.com/g/p//.gitlab-ci.yml@refs/heads/main"):
    # https, or the issuer's scheme when it names the issuer's host.
    ref_uri = str(claims["ci_config_ref_uri"])
    issuer = urlsplit(str(claims.get("iss", "")))
    scheme = issuer.scheme if issuer.hostname and ref_uri.split("/", 1)[0] == issuer.netloc else ""
    return Principal(f"{scheme or 'https'}://{ref_uri}", "uri", sub)


def _buildkite(claims: Mapping[str, Any], config: IssuerConfig) -> Principal:
    org = _string_claim(claims, "organization_slug")
    pipeline = _string_claim(claims, "pipeline_slug")
    sub = _string_claim(claims, "sub")
    return Principal(f"https://buildkite.com/{org}/{pipeline}", "uri", sub)


def _kubernetes(claims: Mapping[str, Any], config: IssuerConfig) -> Principal:
    k8s = claims.get("kubernetes.io")
    namespace = k8s.get("namespace") if isinstance(k8s, dict) else None
    account = k8s.get("serviceaccount") if isinstance(k8s, dict) else None
    name = account.get("name") if isinstance(account, dict) else None
    if not isinstance(namespace, str) or not namespace or not isinstance(name, str) or not name:
        raise Unauthenticated("identity token lacks kubernetes.io namespace/serviceaccount claims")
    sub = _string_claim(claims, "sub")
    uri = f"https://kubernetes.io/namespaces/{namespace}/serviceaccounts/{name}"
    return Principal(uri, "uri", sub)


def spiffe_trust_domain(spiffe_id: str) -> str:
    """The trust domain of a SPIFFE ID, validating its syntax (SPIFFE-ID standard §2)."""
    if not spiffe_id.startswith("spiffe://"):
        raise Unauthenticated(f"subject {spiffe_id!r} is not a SPIFFE ID (spiffe://…)")
    rest = spiffe_id[len("spiffe://") :]
    domain, _, path = rest.partition("/")
    if not _SPIFFE_TRUST_DOMAIN.fullmatch(domain):
        raise Unauthenticated(f"SPIFFE ID {spiffe_id!r} has an invalid trust domain")
    if path and not all(_SPIFFE_SEGMENT.fullmatch(seg) for seg in path.split("/")):
        raise Unauthenticated(f"SPIFFE ID {spiffe_id!r} has an invalid path")
    if path and all(seg in (".", "..") for seg in path.split("/")):
        raise Unauthenticated(f"SPIFFE ID {spiffe_id!r} has an invalid path")
    return domain


def _spiffe(claims: Mapping[str, Any], config: IssuerConfig) -> Principal:
    sub = _string_claim(claims, "sub")
    domain = spiffe_trust_domain(sub)
    if domain != config.spiffe_trust_domain:
        raise Unauthenticated(
            f"SPIFFE ID trust domain {domain!r} does not match the configured trust domain "
            f"{config.spiffe_trust_domain!r}"
        )
    return Principal(sub, "uri", sub)


def _uri(claims: Mapping[str, Any], config: IssuerConfig) -> Principal:
    sub = _string_claim(claims, "sub")
    if _EMAIL.fullmatch(sub) and "://" not in sub:
        raise Unauthenticated("the subject of a uri issuer must be a URI, not an email address")
    subject = urlsplit(sub)
    domain = urlsplit(config.subject_domain or "")
    if not subject.scheme or subject.scheme != domain.scheme:
        raise Unauthenticated(
            f"subject URI scheme {subject.scheme!r} must match the expected domain's "
            f"scheme {domain.scheme!r}"
        )
    if subject.hostname != domain.hostname:
        raise Unauthenticated(
            f"subject hostname {subject.hostname!r} must match the expected domain "
            f"{domain.hostname!r}"
        )
    return Principal(sub, "uri", sub)


def _username(claims: Mapping[str, Any], config: IssuerConfig) -> Principal:
    sub = _string_claim(claims, "sub")
    if "!" in sub:
        raise Unauthenticated("a username subject must not contain '!'")
    return Principal(f"{sub}!{config.subject_domain}", "username", sub)


RULES: dict[str, Callable[[Mapping[str, Any], IssuerConfig], Principal]] = {
    "email": _email,
    "github-workflow": _github,
    "gitlab-pipeline": _gitlab,
    "buildkite-job": _buildkite,
    "kubernetes": _kubernetes,
    "spiffe": _spiffe,
    "uri": _uri,
    "username": _username,
}


def principal_for(claims: Mapping[str, Any], config: IssuerConfig) -> Principal:
    """Apply the issuer type's rule to verified ``claims``; raises :class:`Unauthenticated`."""
    return RULES[config.type](claims, config)


def certificate_issuer(claims: Mapping[str, Any], config: IssuerConfig) -> str:
    """The issuer to embed in certificates: ``iss``, or the configured ``issuer_claim`` value."""
    if not config.issuer_claim:
        return str(claims["iss"])
    path = config.issuer_claim.removeprefix("$.")
    value: Any = claims
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, str) or not value:
        raise Unauthenticated(f"identity token has no {config.issuer_claim!r} issuer claim")
    return value
