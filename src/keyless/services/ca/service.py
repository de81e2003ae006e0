"""The Fulcio-compatible CA: verified identity + proven key → 10-minute certificate with SCT.

Issuance (protocols.md §1, §2, Fulcio ``pkg/server/grpc_server.go``):

1. verify the identity token (:class:`keyless.identity.IdentityVerifier`, protocols.md §1.3);
2. check the proof of possession (:mod:`keyless.services.ca.pop`, §1.2);
3. build the precertificate (profile §1.4 + critical poison), log it in the CT log in-process
   under a dedup key that binds what the token means (issuer + jti, …) to the key
   (:mod:`keyless.services.ca.replay`, Fulcio issue #975) and get one SCT (§2 steps 1, 2);
4. refuse the request if the token was already bound to another key;
5. build the final certificate from the same profile: the precert's TBS minus poison plus the
   SCT list, extension order kept (§2 step 3, RFC 6962 §3.3).
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509

from keyless.formats.sct import SignedCertificateTimestamp, encode_sct_list_extension
from keyless.formats.x509profile import (
    LeafProfile,
    build_final_certificate,
    build_precertificate,
    certificate_pem,
    finalize_precertificate,
    leaf_builder,
    sigstore_extensions,
)
from keyless.identity import Identity, IssuerConfig
from keyless.keys import PublicKey, spki_der
from keyless.services.ca.authority import CAMaterial
from keyless.services.ca.pop import verify_challenge, verify_csr
from keyless.services.ca.replay import TokenReplayGuard
from keyless.services.ctlog.service import LoggedEntry

_log = logging.getLogger("keyless.ca")


class TokenVerifier(Protocol):
    """What the CA needs of :class:`keyless.identity.IdentityVerifier`."""

    async def verify(self, token: str) -> Identity: ...

    @property
    def issuers(self) -> tuple[IssuerConfig, ...]: ...


class PrecertificateLog(Protocol):
    """What the CA needs of :class:`keyless.services.ctlog.CTLogService` (in-process CT)."""

    async def log_precertificate(
        self,
        precert: x509.Certificate,
        chain: Sequence[x509.Certificate],
        *,
        dedup_key: bytes | None = None,
    ) -> LoggedEntry: ...


@dataclass(frozen=True)
class IssuedCertificate:
    """A leaf with its chain (issuer → root) and the SCT embedded in it."""

    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    sct: SignedCertificateTimestamp
    #: ``chain`` already in PEM (the CA encodes its constant chain once); empty: encode here
    chain_pem: tuple[str, ...] = ()

    def pem_chain(self) -> list[str]:
        """Leaf first, then intermediate(s), then root; each standard PEM (interop.md §5.3)."""
        chain = self.chain_pem or tuple(certificate_pem(c) for c in self.chain)
        return [certificate_pem(self.leaf), *chain]


class CAService:
    """Issues code-signing certificates; constructor-injected keys, identity, CT log and clock."""

    def __init__(
        self,
        *,
        material: CAMaterial,
        identity: TokenVerifier,
        ctlog: PrecertificateLog,
        replay_guard: TokenReplayGuard,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.material = material
        self._identity = identity
        self._ctlog = ctlog
        self._replay = replay_guard
        self._clock = clock
        self._chain_pem = tuple(certificate_pem(c) for c in material.chain)
        #: certificates issued by this process, by OIDC issuer (retries of a token not counted)
        self.issued: collections.Counter[str] = collections.Counter()

    # -- what the trusted root needs ---------------------------------------------------------
    def chain_der(self) -> list[bytes]:
        """CA certificates intermediate → root, DER (trusted root ``certChain``)."""
        return self.material.chain_der()

    def chain_pem(self) -> list[str]:
        return self.material.chain_pem()

    def issuers_api(self) -> list[dict[str, Any]]:
        """``GET /api/v2/configuration`` ``issuers`` (protocols.md §1.3)."""
        return [i.to_api() for i in self._identity.issuers]

    # -- issuance ------------------------------------------------------------------------------
    async def issue_for_csr(
        self, token: str, csr: x509.CertificateSigningRequest
    ) -> IssuedCertificate:
        """Certify the key of a self-signed CSR (sigstore-python, cosign)."""
        key = verify_csr(csr)
        identity = await self._identity.verify(token)
        return await self._issue(identity, key)

    async def issue_for_key(self, token: str, key: PublicKey, proof: bytes) -> IssuedCertificate:
        """Certify ``key`` proven by a signature over the identity's challenge (sigstore-js)."""
        identity = await self._identity.verify(token)
        verify_challenge(key, proof, identity.pop_subject)
        return await self._issue(identity, key)

    async def _issue(self, identity: Identity, key: PublicKey) -> IssuedCertificate:
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC).replace(microsecond=0)
        profile = LeafProfile(
            public_key=key,
            san=identity.subject_alternative_name,
            san_type=identity.san_type,
            not_before=now,
            extensions=sigstore_extensions(identity.issuer_type, identity.issuer, identity.claims),
        )
        issuer = self.material.issuer
        base = leaf_builder(profile, issuer)
        precert = build_precertificate(profile, issuer, self.material.signer, base)
        logged = await self._ctlog.log_precertificate(
            precert, self.material.chain, dedup_key=self._replay.dedup_key(identity)
        )
        sct_ext = encode_sct_list_extension([logged.sct])
        if not logged.duplicate:
            leaf = build_final_certificate(profile, issuer, self.material.signer, sct_ext, base)
            self._audit(leaf, identity, retry=False)
            self.issued[identity.issuer] += 1
            return IssuedCertificate(leaf, self.material.chain, logged.sct, self._chain_pem)
        # The token was seen before: the same key is a retry, any other key a replay.
        if logged.precertificate is None:
            raise self._replay.refuse()
        existing = x509.load_der_x509_certificate(logged.precertificate)
        if spki_der(existing.public_key()) != spki_der(key):
            raise self._replay.refuse()
        leaf = finalize_precertificate(existing, self.material.signer, sct_ext)
        self._audit(leaf, identity, retry=True)
        return IssuedCertificate(leaf, self.material.chain, logged.sct, self._chain_pem)

    @staticmethod
    def _audit(leaf: x509.Certificate, identity: Identity, *, retry: bool) -> None:
        """One audit line per issued certificate (the CT log holds the certificate itself)."""
        _log.info(
            "issued certificate serial=%x san=%s issuer=%s retry=%s",
            leaf.serial_number, identity.subject_alternative_name, identity.issuer, retry,
            extra={"serial": f"{leaf.serial_number:x}", "san": identity.subject_alternative_name,
                   "oidc_issuer": identity.issuer, "retry": retry},
        )
