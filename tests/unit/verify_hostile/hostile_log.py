"""A transparency log of our own, to sign hostile content validly.

Real bundles only reach the verifier's first failing check: a tampered body fails the inclusion
proof long before anything parses it. Here a throwaway Rekor-v1-style log (ECDSA P-256: SET,
checkpoint, one-leaf tree) and a managed signing key (no CA needed: protocols.md "managed-key"
bundles) sign whatever we give them, so the deeper checks (log entry body, in-toto statement,
signed integrated time, signed checkpoint text) see hostile input that every earlier check
accepts: a compromised or buggy log, or a signer attacking verifiers.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from hostile_util import Json, Outcome, dumps, outcome_of

from keyless.formats.bundle import BUNDLE_V03_NEW, TRUSTED_ROOT_V01, TrustedRoot
from keyless.formats.dsse import IN_TOTO_PAYLOAD_TYPE, pae
from keyless.verify.artifact import Artifact
from keyless.verify.verifier import Verifier

HOST = "rekor.hostile.test"
ORIGIN = f"{HOST} - 4242"
ARTIFACT = b"hostile artifact\n"
INTEGRATED_TIME = 1_760_000_000  # 2025-10-09


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def statement(digest: bytes) -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "artifact", "digest": {"sha256": digest.hex()}}],
        "predicateType": "https://example.com/hostile/v1",
        "predicate": {},
    }


@dataclass
class OwnLog:
    """The log key, the signer key and a verifier that trusts the log."""

    log_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    signer: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    _sigs: dict[bytes, bytes] = field(default_factory=dict)

    def sign(self, data: bytes, algorithm: ec.ECDSA) -> bytes:
        """The signer's signature over ``data``, made once (ECDSA is randomized: a body built
        earlier must keep matching the bundle's signature)."""
        if data not in self._sigs:
            self._sigs[data] = self.signer.sign(data, algorithm)
        return self._sigs[data]

    def message_signature(self) -> bytes:
        digest = hashlib.sha256(ARTIFACT).digest()
        return self.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))

    @property
    def log_id(self) -> bytes:
        return hashlib.sha256(_spki(self.log_key)).digest()

    def trusted_root(self) -> dict[str, Any]:
        return {
            "mediaType": TRUSTED_ROOT_V01,
            "tlogs": [
                {
                    "baseUrl": f"https://{HOST}",
                    "hashAlgorithm": "SHA2_256",
                    "publicKey": {
                        "rawBytes": b64(_spki(self.log_key)),
                        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                        "validFor": {"start": "2020-01-01T00:00:00Z"},
                    },
                    "logId": {"keyId": b64(self.log_id)},
                }
            ],
            "certificateAuthorities": [],
            "ctlogs": [],
            "timestampAuthorities": [],
        }

    def verifier(self) -> Verifier:
        return Verifier(TrustedRoot.from_json(self.trusted_root()))

    # --- signing pieces ---------------------------------------------------------------------

    def note_line(self, text: bytes, name: str = HOST) -> str:
        sig = self.log_key.sign(text, ec.ECDSA(hashes.SHA256()))
        return f"\u2014 {name} {b64(self.log_id[:4] + sig)}\n"

    def checkpoint(self, size: int, root: bytes, *, origin: str = ORIGIN,
                   extensions: tuple[str, ...] = (), extra_lines: str = "") -> str:
        text = "".join(f"{line}\n" for line in (origin, str(size), b64(root), *extensions))
        return text + "\n" + extra_lines + self.note_line(text.encode())

    def set_for(self, body: bytes, integrated_time: int, log_index: int) -> bytes:
        payload = json.dumps(
            {"body": b64(body), "integratedTime": integrated_time,
             "logID": self.log_id.hex(), "logIndex": log_index},
            sort_keys=True, separators=(",", ":"),
        ).encode()
        return self.log_key.sign(payload, ec.ECDSA(hashes.SHA256()))

    def entry(self, body: bytes, kind: str, version: str, *,
              integrated_time: int = INTEGRATED_TIME, log_index: int = 7,
              checkpoint: str | None = None) -> dict[str, Any]:
        """A one-leaf-tree entry with a SET and a signed checkpoint over ``body``."""
        root = hashlib.sha256(b"\x00" + body).digest()
        return {
            "logIndex": str(log_index),
            "logId": {"keyId": b64(self.log_id)},
            "kindVersion": {"kind": kind, "version": version},
            "integratedTime": str(integrated_time),
            "inclusionPromise": {
                "signedEntryTimestamp": b64(self.set_for(body, integrated_time, log_index))
            },
            "inclusionProof": {
                "logIndex": "0",
                "rootHash": b64(root),
                "treeSize": "1",
                "hashes": [],
                "checkpoint": {"envelope": checkpoint or self.checkpoint(1, root)},
            },
            "canonicalizedBody": b64(body),
        }

    # --- bundles ----------------------------------------------------------------------------

    def message_body(self, signature: bytes, digest: bytes) -> dict[str, Any]:
        return {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                "signature": {
                    "content": b64(signature),
                    "publicKey": {"content": b64(_pem(self.signer))},
                },
            },
        }

    def message_bundle(self, *, body: Json | bytes | None = None, **entry: Any) -> dict[str, Any]:
        """A managed-key hashedrekord 0.0.1 bundle over :data:`ARTIFACT`; ``body`` replaces the
        logged body (JSON value, or raw bytes as logged)."""
        digest = hashlib.sha256(ARTIFACT).digest()
        signature = self.message_signature()
        if body is None:
            body = self.message_body(signature, digest)
        raw = body if isinstance(body, bytes) else dumps(body)
        return {
            "mediaType": BUNDLE_V03_NEW,
            "verificationMaterial": {
                "publicKey": {"hint": "hostile"},
                "tlogEntries": [self.entry(raw, "hashedrekord", "0.0.1", **entry)],
                "timestampVerificationData": {"rfc3161Timestamps": []},
            },
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)},
                "signature": b64(signature),
            },
        }

    def dsse_body(self, payload: bytes, signature: bytes) -> dict[str, Any]:
        return {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "payloadHash": {"algorithm": "sha256",
                                "value": hashlib.sha256(payload).hexdigest()},
                "signatures": [{"signature": b64(signature), "verifier": b64(_pem(self.signer))}],
            },
        }

    def dsse_bundle(self, *, payload: bytes | None = None,
                    payload_type: str = IN_TOTO_PAYLOAD_TYPE,
                    body: Json | bytes | None = None, **entry: Any) -> dict[str, Any]:
        """A managed-key DSSE bundle (dsse 0.0.1) whose statement names :data:`ARTIFACT`."""
        if payload is None:
            payload = dumps(statement(hashlib.sha256(ARTIFACT).digest()))
        signature = self.sign(pae(payload_type, payload), ec.ECDSA(hashes.SHA256()))
        if body is None:
            body = self.dsse_body(payload, signature)
        raw = body if isinstance(body, bytes) else dumps(body)
        return {
            "mediaType": BUNDLE_V03_NEW,
            "verificationMaterial": {
                "publicKey": {"hint": "hostile"},
                "tlogEntries": [self.entry(raw, "dsse", "0.0.1", **entry)],
            },
            "dsseEnvelope": {
                "payload": b64(payload),
                "payloadType": payload_type,
                "signatures": [{"sig": b64(signature), "keyid": ""}],
            },
        }

    def run(self, bundle: Json | bytes, verifier: Verifier) -> Outcome:
        data = bundle if isinstance(bundle, bytes) else dumps(bundle)
        key = self.signer.public_key()
        artifact = Artifact.from_bytes(ARTIFACT)
        return outcome_of(lambda: verifier.verify(data, artifact, key=key))
