"""The signer: ephemeral key → certificate → signature → timestamps → log entry → bundle v0.3.

protocols.md §9 "Signing flow" (sigstore-python ``sigstore/sign.py``), interop.md §5:

1. an ephemeral P-256 key and a CSR (empty subject, critical BasicConstraints CA:false) sent to
   the CA's ``/api/v2/signingCert`` in the sigstore-python dialect (interop.md §5 item 4), Bearer
   identity token; the returned leaf's embedded SCT is checked against the trusted CT logs before
   anything is signed (as sigstore-python does);
2. the artifact's SHA-256 is signed (prehashed ECDSA), or the PAE of a DSSE envelope;
3. every selected TSA timestamps the signature bytes (RFC 3161, DER request, nonce, certReq);
   a failing TSA only warns, but a Rekor v2 bundle without any timestamp is refused;
4. the first selected Rekor log records it: v2 ``hashedRekordRequestV002`` (DSSE as
   hashedrekord-over-PAE), or v1 ``hashedrekord``/``dsse`` 0.0.1;
5. a v0.3 bundle with ``certificate``, always fully populated (interop.md §5 item 1).

One :class:`Signer` holds one key and one certificate, so several files can be signed with a
single certificate (``keyless sign a b c``); a new signer is needed after the certificate's
10 minutes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from keyless.errors import ConfigError, Error, InvalidInput
from keyless.formats.bundle import (
    BUNDLE_V03_NEW,
    Bundle,
    HashOutput,
    MessageSignature,
    TransparencyLogEntry,
    VerificationMaterial,
)
from keyless.formats.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, Signature
from keyless.formats.signingconfig import Service, ServiceSelector, SigningConfig
from keyless.formats.trustroot import TrustedRoot
from keyless.trust.material import TrustMaterial

_log = logging.getLogger(__name__)

SUPPORTED_VERSIONS = {"ca": (1,), "tsa": (1,), "rekor": (1, 2), "oidc": (1,)}
TSA_TIMEOUT = 10.0
SERVICE_TIMEOUT = 60.0  # Rekor v2 may block until a checkpoint covers the entry
#: a certificate this close to its end is replaced before signing: the timestamp and log entry
#: that follow the signature must still fall inside its validity (protocols.md §9 step 5)
RENEW_MARGIN = 60.0


__all__ = [
    "RENEW_MARGIN",
    "Signer",
    "SigningError",
    "SigningServices",
    "entry_from_rekor_v1",
    "select_services",
    "sign_files",
]


class SigningError(Error):
    """A service refused or failed a signing step; the message names the service and step."""


def select_services(
    services: Sequence[Service],
    kind: str,
    selector: ServiceSelector | None = None,
    now: datetime | None = None,
    versions: Sequence[int] | None = None,
) -> list[Service]:
    """Service selection of protocols.md §7 (sigstore-python ``_get_valid_services``).

    Keep services with a supported ``majorApiVersion`` whose ``validFor`` contains now; per
    operator keep the highest version (the first listed among equals: the spec orders services
    newest first); then ALL keeps all, ANY the first, EXACT the first ``count``.
    """
    now = now or datetime.now(UTC)
    allowed = SUPPORTED_VERSIONS[kind] if versions is None else versions
    usable = [s for s in services if s.major_api_version in allowed and s.valid_for.contains(now)]
    best: dict[str, Service] = {}
    order: list[str] = []
    for s in usable:
        current = best.get(s.operator)
        if current is None:
            order.append(s.operator)
            best[s.operator] = s
        elif s.major_api_version > current.major_api_version:
            best[s.operator] = s
    chosen = [best[op] for op in order]
    selector = selector or ServiceSelector()
    if selector.selector == "ANY":
        chosen = chosen[:1]
    elif selector.selector == "EXACT":
        if len(chosen) < selector.count:
            raise ConfigError(
                f"signing config selects exactly {selector.count} {kind} service(s), "
                f"but only {len(chosen)} are usable"
            )
        chosen = chosen[: selector.count]
    return chosen


@dataclass(frozen=True)
class SigningServices:
    """The concrete endpoints one signing run uses."""

    ca: Service
    rekor: Service
    tsas: tuple[Service, ...]

    @classmethod
    def from_config(
        cls, config: SigningConfig, *, rekor_version: int | None = None
    ) -> SigningServices:
        cas = select_services(config.ca_urls, "ca")
        if not cas:
            raise ConfigError("the signing config names no usable CA")
        versions = None if rekor_version is None else (rekor_version,)
        rekors = select_services(
            config.rekor_tlog_urls, "rekor", config.rekor_tlog_config, versions=versions
        )
        if not rekors:
            which = "transparency log" if rekor_version is None else f"Rekor v{rekor_version} log"
            raise ConfigError(f"the signing config names no usable {which}")
        tsas = select_services(config.tsa_urls, "tsa", config.tsa_config)
        return cls(cas[0], rekors[0], tuple(tsas))


def _pem_chain(text: Any) -> list[x509.Certificate]:
    if not isinstance(text, list) or not text:
        raise SigningError("the CA answered without a certificate chain")
    try:
        return [x509.load_pem_x509_certificate(str(c).encode()) for c in text]
    except ValueError as exc:
        raise SigningError("the CA answered with an unreadable certificate") from exc


class Signer:
    """Signs artifacts and in-toto statements with one ephemeral key and certificate."""

    def __init__(
        self,
        *,
        trusted_root: TrustedRoot,
        services: SigningServices,
        identity_token: str,
        http: Any = None,
        key: ec.EllipticCurvePrivateKey | None = None,
        check_sct: bool = True,
        clock: Callable[[], float] = time.time,
        certificate_chain: Sequence[x509.Certificate] | None = None,
    ) -> None:
        """``key`` with ``certificate_chain`` (leaf first) reuses a certificate issued earlier
        for that key (``keyless-git`` signs a burst of commits with one); otherwise a key is
        made and a certificate requested on first use."""
        import httpx

        self.trust = TrustMaterial(trusted_root)
        self.services = services
        self._token = identity_token
        self._http: httpx.Client = http or httpx.Client(
            timeout=SERVICE_TIMEOUT, headers={"User-Agent": "keyless"}
        )
        self._key = key or ec.generate_private_key(ec.SECP256R1())
        self._check_sct = check_sct
        self._clock = clock
        self._chain: list[x509.Certificate] | None = None
        if certificate_chain:
            leaf_key = certificate_chain[0].public_key()
            if key is None or not isinstance(leaf_key, ec.EllipticCurvePublicKey) or (
                leaf_key.public_numbers() != key.public_key().public_numbers()
            ):
                raise ConfigError("the certificate given to the signer is not for its key")
            self._chain = list(certificate_chain)

    @classmethod
    def from_config(
        cls,
        trusted_root: TrustedRoot,
        signing_config: SigningConfig,
        *,
        identity_token: str,
        rekor_version: int | None = None,
        http: Any = None,
    ) -> Signer:
        services = SigningServices.from_config(signing_config, rekor_version=rekor_version)
        return cls(
            trusted_root=trusted_root, services=services, identity_token=identity_token, http=http
        )

    # --- certificate --------------------------------------------------------------------------

    @property
    def certificate(self) -> x509.Certificate:
        """The signing certificate, requested from the CA on first use."""
        if self._chain is None:
            self._chain = self._request_certificate()
        return self._chain[0]

    def _usable_certificate(self) -> x509.Certificate:
        """The certificate to sign with now: one certificate serves many files, but a batch
        that outlives it (10 minutes) continues with a new key and certificate instead of
        producing bundles whose timestamps fall after the certificate's end."""
        cert = self.certificate
        if self._clock() + RENEW_MARGIN >= cert.not_valid_after_utc.timestamp():
            _log.info("the signing certificate is about to expire; requesting a new one")
            self._key = ec.generate_private_key(ec.SECP256R1())
            self._chain = None
            try:
                cert = self.certificate
            except SigningError as exc:
                raise SigningError(
                    f"the signing certificate expired and a new one was refused ({exc})"
                ) from exc
        return cert

    def _request_certificate(self) -> list[x509.Certificate]:
        import httpx

        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        pem = csr.public_bytes(serialization.Encoding.PEM)
        url = self.services.ca.url.rstrip("/") + "/api/v2/signingCert"
        try:
            response = self._http.post(
                url,
                json={"certificateSigningRequest": base64.b64encode(pem).decode()},
                headers={
                    "Authorization": f"Bearer {self._token}",
                    "Accept": "application/json",
                },
            )
        except httpx.HTTPError as exc:
            raise SigningError(f"the CA at {url} is unreachable: {exc}") from exc
        if response.status_code not in (200, 201):
            raise SigningError(f"the CA refused the certificate request: {_message(response)}")
        try:
            body = response.json()
        except ValueError as exc:
            raise SigningError("the CA answered with invalid JSON") from exc
        embedded = body.get("signedCertificateEmbeddedSct") if isinstance(body, dict) else None
        if not isinstance(embedded, dict) or not isinstance(embedded.get("chain"), dict):
            raise SigningError("the CA answered without signedCertificateEmbeddedSct")
        chain = _pem_chain(embedded["chain"].get("certificates"))
        if len(chain) < 2:
            raise SigningError("the CA's chain lacks the issuer of the leaf")
        leaf_key = chain[0].public_key()
        own = self._key.public_key()
        if not isinstance(leaf_key, ec.EllipticCurvePublicKey) or leaf_key.public_numbers() != (
            own.public_numbers()
        ):
            raise SigningError("the CA certified another public key")
        if self._check_sct:
            from keyless.verify.certificate import verify_embedded_sct

            verify_embedded_sct(chain[0], chain[1], self.trust)
        return chain

    # --- signing ------------------------------------------------------------------------------

    def sign_artifact(self, data: bytes) -> Bundle:
        """A message-signature bundle over ``data`` (hashedrekord)."""
        return self.sign_digest(hashlib.sha256(data).digest())

    def sign_digest(self, digest: bytes) -> Bundle:
        """A message-signature bundle over a SHA-256 digest (no need for the bytes)."""
        if len(digest) != 32:
            raise InvalidInput("a SHA-256 digest is 32 bytes")
        cert = self._usable_certificate()
        signature = self._key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        timestamps = self._timestamps(signature)
        if self.services.rekor.major_api_version == 2:
            entry = self._rekor_v2(digest, signature, cert)
        else:
            entry = self._rekor_v1(_hashedrekord_v1(digest, signature, cert))
        return Bundle(
            media_type=BUNDLE_V03_NEW,
            verification_material=self._material(cert, entry, timestamps),
            message_signature=MessageSignature(signature, HashOutput("SHA2_256", digest)),
        )

    def sign_statement(self, statement: bytes) -> Bundle:
        """A DSSE bundle over an in-toto statement (``keyless attest``, conformance --in-toto)."""
        try:
            parsed = json.loads(statement)
        except ValueError as exc:
            raise InvalidInput("the in-toto statement is not JSON") from exc
        if not isinstance(parsed, dict) or not str(parsed.get("_type", "")).startswith(
            "https://in-toto.io/Statement/"
        ):
            raise InvalidInput("the payload is not an in-toto Statement")
        return self.sign_dsse(IN_TOTO_PAYLOAD_TYPE, statement)

    def sign_dsse(self, payload_type: str, payload: bytes) -> Bundle:
        """A DSSE bundle; Rekor v2 logs it as hashedrekord over SHA-256(PAE) (protocols.md §4)."""
        cert = self._usable_certificate()
        unsigned = Envelope(payload_type, payload, ())
        pae = unsigned.pae()
        signature = self._key.sign(pae, ec.ECDSA(hashes.SHA256()))
        envelope = Envelope(payload_type, payload, (Signature(signature),))
        timestamps = self._timestamps(signature)
        if self.services.rekor.major_api_version == 2:
            entry = self._rekor_v2(hashlib.sha256(pae).digest(), signature, cert)
        else:
            entry = self._rekor_v1(_dsse_v1(envelope, cert))
        return Bundle(
            media_type=BUNDLE_V03_NEW,
            verification_material=self._material(cert, entry, timestamps),
            dsse_envelope=envelope,
        )

    def _material(
        self, cert: x509.Certificate, entry: TransparencyLogEntry, timestamps: list[bytes]
    ) -> VerificationMaterial:
        return VerificationMaterial(
            certificates=(cert.public_bytes(serialization.Encoding.DER),),
            tlog_entries=(entry,),
            rfc3161_timestamps=tuple(timestamps),
        )

    # --- TSA ----------------------------------------------------------------------------------

    def _timestamps(self, signature: bytes) -> list[bytes]:
        import httpx
        from rfc3161_client import TimestampRequestBuilder, decode_timestamp_response
        from rfc3161_client.base import HashAlgorithm

        tokens: list[bytes] = []
        for tsa in self.services.tsas:
            request = (
                TimestampRequestBuilder()
                .hash_algorithm(HashAlgorithm.SHA256)
                .data(signature)
                .nonce(nonce=True)
                .build()
            )
            try:
                response = self._http.post(
                    tsa.url,
                    content=request.as_bytes(),
                    headers={"Content-Type": "application/timestamp-query"},
                    timeout=TSA_TIMEOUT,
                )
                response.raise_for_status()
                token = decode_timestamp_response(response.content)
            except (httpx.HTTPError, ValueError) as exc:
                _log.warning("TSA %s failed, continuing without its timestamp: %s", tsa.url, exc)
                continue
            if token.tst_info.nonce != request.nonce:
                _log.warning("TSA %s echoed another nonce; timestamp dropped", tsa.url)
                continue
            tokens.append(token.as_bytes())
        if not tokens and self.services.rekor.major_api_version == 2:
            raise SigningError(
                "no TSA returned a timestamp, and a Rekor v2 bundle needs one (no integrated time)"
            )
        return tokens

    # --- Rekor --------------------------------------------------------------------------------

    def _rekor_v2(
        self, digest: bytes, signature: bytes, cert: x509.Certificate
    ) -> TransparencyLogEntry:
        request = {
            "hashedRekordRequestV002": {
                "digest": base64.b64encode(digest).decode(),
                "signature": {
                    "content": base64.b64encode(signature).decode(),
                    "verifier": {
                        "x509Certificate": {
                            "rawBytes": base64.b64encode(
                                cert.public_bytes(serialization.Encoding.DER)
                            ).decode()
                        },
                        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    },
                },
            }
        }
        url = self.services.rekor.url.rstrip("/") + "/api/v2/log/entries"
        body = self._post_json(url, request, "the Rekor v2 log")
        try:
            return TransparencyLogEntry.from_json(body, "Rekor v2 response")
        except InvalidInput as exc:
            raise SigningError(f"the Rekor v2 log answered with a malformed entry: {exc}") from exc

    def _rekor_v1(self, proposed: dict[str, Any]) -> TransparencyLogEntry:
        url = self.services.rekor.url.rstrip("/") + "/api/v1/log/entries"
        body = self._post_json(url, proposed, "the Rekor v1 log")
        if not isinstance(body, dict) or len(body) != 1:
            raise SigningError("the Rekor v1 log answered with an unexpected shape")
        (entry,) = body.values()
        try:
            return entry_from_rekor_v1(entry)
        except (KeyError, TypeError, ValueError, InvalidInput) as exc:
            raise SigningError(f"the Rekor v1 log answered with a malformed entry: {exc}") from exc

    def _post_json(self, url: str, payload: dict[str, Any], what: str) -> Any:
        import httpx

        try:
            response = self._http.post(url, json=payload)
        except httpx.HTTPError as exc:
            raise SigningError(f"{what} at {url} is unreachable: {exc}") from exc
        if response.status_code not in (200, 201):
            raise SigningError(f"{what} refused the entry: {_message(response)}")
        try:
            return response.json()
        except ValueError as exc:
            raise SigningError(f"{what} answered with invalid JSON") from exc


def _message(response: Any) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and "message" in body:
            return f"HTTP {response.status_code}: {body['message']}"
    except ValueError:
        pass
    return f"HTTP {response.status_code}"


def _b64_pem(cert: x509.Certificate) -> str:
    """64-column PEM with a trailing newline, base64-encoded (interop.md §5 item 3)."""
    return base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()


def _hashedrekord_v1(digest: bytes, signature: bytes, cert: x509.Certificate) -> dict[str, Any]:
    """The hashedrekord 0.0.1 proposed entry sigstore-python sends (protocols.md §3.1)."""
    return {
        "kind": "hashedrekord",
        "apiVersion": "0.0.1",
        "spec": {
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "publicKey": {"content": _b64_pem(cert)},
            },
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
        },
    }


def _dsse_v1(envelope: Envelope, cert: x509.Certificate) -> dict[str, Any]:
    """The dsse 0.0.1 proposed entry (protocols.md §3.1)."""
    return {
        "kind": "dsse",
        "apiVersion": "0.0.1",
        "spec": {
            "proposedContent": {
                "envelope": json.dumps(envelope.to_json()),
                "verifiers": [_b64_pem(cert)],
            }
        },
    }


def entry_from_rekor_v1(entry: dict[str, Any]) -> TransparencyLogEntry:
    """A Rekor v1 LogEntry (protocols.md §3.2) as a bundle entry: hex → bytes, kind and
    version from the body; the response must carry an inclusion proof with checkpoint and SET."""
    body = base64.b64decode(entry["body"], validate=True)
    decoded = json.loads(body)
    verification = entry["verification"]
    proof = verification["inclusionProof"]
    if not proof.get("checkpoint"):
        raise InvalidInput("inclusionProof.checkpoint is missing")
    return TransparencyLogEntry.from_json(
        {
            "logIndex": str(entry["logIndex"]),
            "logId": {"keyId": base64.b64encode(bytes.fromhex(entry["logID"])).decode()},
            "kindVersion": {"kind": decoded["kind"], "version": decoded["apiVersion"]},
            "integratedTime": str(entry["integratedTime"]),
            "inclusionPromise": {"signedEntryTimestamp": verification["signedEntryTimestamp"]},
            "inclusionProof": {
                "logIndex": str(proof["logIndex"]),
                "rootHash": base64.b64encode(bytes.fromhex(proof["rootHash"])).decode(),
                "treeSize": str(proof["treeSize"]),
                "hashes": [base64.b64encode(bytes.fromhex(h)).decode() for h in proof["hashes"]],
                "checkpoint": {"envelope": proof["checkpoint"]},
            },
            "canonicalizedBody": entry["body"],
        },
        "Rekor v1 response",
    )


def sign_files(
    signer: Signer,
    paths: Sequence[str],
    *,
    on_done: Callable[[str, Bundle], None] | None = None,
) -> list[Bundle]:
    """Sign several files with one certificate; ``on_done`` reports progress per file."""
    bundles: list[Bundle] = []
    for path in paths:
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from exc
        bundle = signer.sign_digest(h.digest())
        bundles.append(bundle)
        if on_done is not None:
            on_done(path, bundle)
    return bundles
