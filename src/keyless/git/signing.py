"""Sign a commit or tag payload: CMS over the payload, logged and timestamped (docs/git.md).

The signed attributes are hashed, and that digest is signed with keyless's
:class:`keyless.sign.Signer` exactly like an artifact: the signer gets the certificate (or reuses
the cached one), timestamps the signature with every TSA of the signing config and records a
hashedrekord entry over the digest in the transparency log. The signature, the timestamps and
the entry with its inclusion proof and checkpoint then go into the CMS (:mod:`keyless.git.cms`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from keyless.errors import ConfigError
from keyless.git import cache
from keyless.git.config import GitSettings

__all__ = ["TOKEN_ENV", "SignedPayload", "sign_payload"]

TOKEN_ENV = ("SIGSTORE_IDENTITY_TOKEN", "SIGSTORE_ID_TOKEN")


@dataclass(frozen=True)
class SignedPayload:
    armored: bytes
    certificate: x509.Certificate
    signed_at: datetime
    log_index: int
    reused_certificate: bool


def _explicit_token() -> str | None:
    return next((os.environ[n] for n in TOKEN_ENV if os.environ.get(n)), None)


def _same_signer(cert: x509.Certificate, token: str) -> bool:
    """Whether a cached certificate names whom ``token`` names (its claims, unverified: the
    token is only compared, never trusted here)."""
    from keyless.oidc import IdentityToken
    from keyless.verify.policy import certificate_identities, certificate_issuer

    claims = IdentityToken.parse(token)
    try:
        issuer = certificate_issuer(cert)
    except Exception:  # a cached certificate without the issuer extension: not reusable
        return False
    return issuer == claims.issuer and claims.identity in certificate_identities(cert)


def _tty_writer() -> Callable[[str], None] | None:
    """Where to show sign-in instructions: git captures stdout and stderr, so the terminal."""
    try:
        tty = open("/dev/tty", "w")  # noqa: SIM115 - kept open for the sign-in's duration
    except OSError:
        return None

    def write(message: str) -> None:
        tty.write(message + "\n")
        tty.flush()

    return write


def _token(signing_config: Any, explicit: str | None) -> str:
    """SIGSTORE_ID_TOKEN, ambient CI credentials, else an interactive sign-in on the terminal."""
    from keyless.oidc import get_identity_token

    oidc_urls = getattr(signing_config, "oidc_urls", ()) or ()
    issuer = oidc_urls[0].url if oidc_urls else None
    out = None if explicit else _tty_writer()
    if out is None:
        return get_identity_token(explicit=explicit, issuer=issuer, interactive="none").raw
    return get_identity_token(explicit=explicit, issuer=issuer, interactive="auto", out=out).raw


def sign_payload(
    payload: bytes,
    settings: GitSettings,
    *,
    on_warning: Callable[[str], None] | None = None,
    cache_directory: Any = None,
) -> SignedPayload:
    """Sign ``payload`` (what git passes on stdin) and return the armored CMS signature."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from keyless.git import cms, tlogpb
    from keyless.sign import Signer, SigningServices
    from keyless.trust.sources import resolve_trust

    config = resolve_trust(
        trust_config=settings.trust_config, server=settings.server, on_warning=on_warning
    )
    if config.signing_config is None:
        raise ConfigError("the trust config has no signing config (set keyless.server)")
    services = SigningServices.from_config(
        config.signing_config, rekor_version=settings.rekor_version
    )
    instance = services.ca.url
    explicit = _explicit_token()
    cached = cache.load(instance, cache_directory)
    reuse = (
        cached is not None
        and cached.usable()
        and (explicit is None or _same_signer(cached.leaf, explicit))
    )
    if reuse:
        assert cached is not None
        signer = Signer(
            trusted_root=config.trusted_root,
            services=services,
            identity_token=explicit or "",
            key=cached.key,
            certificate_chain=cached.chain,
        )
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        signer = Signer(
            trusted_root=config.trusted_root,
            services=services,
            identity_token=_token(config.signing_config, explicit),
            key=key,
        )
        try:
            cache.store(instance, key, [signer.certificate], cache_directory)
        except OSError as exc:  # signing goes on; the next commit asks for a token again
            if on_warning is not None:
                on_warning(f"the certificate is not cached: {exc.strerror or exc}")
    now = datetime.now(UTC)
    attrs = cms.signed_attributes(payload, now)
    bundle = signer.sign_digest(hashlib.sha256(attrs).digest())
    assert bundle.message_signature is not None
    material = bundle.verification_material
    (entry,) = material.tlog_entries
    der = cms.assemble(
        attrs,
        bundle.message_signature.signature,
        material.certificates[0],
        timestamps=material.rfc3161_timestamps,
        log_entry=tlogpb.encode_entry(entry),
    )
    return SignedPayload(
        armored=cms.armor(der),
        certificate=x509.load_der_x509_certificate(material.certificates[0]),
        signed_at=now,
        log_index=entry.log_index,
        reused_certificate=reuse,
    )
