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
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID
from hostile_util import Json, Outcome, dumps, outcome_of

from keyless.formats import sct as sct_format
from keyless.formats.bundle import BUNDLE_V03_NEW
from keyless.formats.dsse import IN_TOTO_PAYLOAD_TYPE, pae
from keyless.formats.note_keys import ed25519_key_id
from keyless.formats.trustroot import TRUSTED_ROOT_V01, TrustedRoot
from keyless.formats.tsp import HASH_ALGORITHMS, TimestampQuery, TokenBuilder, generalized_time
from keyless.services.tsa.certs import TsaCredentials
from keyless.verify.artifact import Artifact
from keyless.verify.policy import Identity
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

    def intoto_body(self, payload: bytes, signature: bytes,
                    payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> dict[str, Any]:
        """intoto 0.0.2 (Rekor v1, @sigstore/cli): payload and signatures base64-encoded twice."""
        return {
            "apiVersion": "0.0.2",
            "kind": "intoto",
            "spec": {"content": {
                "envelope": {
                    "payloadType": payload_type,
                    "payload": b64(b64(payload).encode()),
                    "signatures": [{"sig": b64(b64(signature).encode()),
                                    "publicKey": b64(_pem(self.signer))}],
                },
                "payloadHash": {"algorithm": "sha256",
                                "value": hashlib.sha256(payload).hexdigest()},
            }},
        }

    def dsse_signature(self, payload: bytes, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> bytes:
        return self.sign(pae(payload_type, payload), ec.ECDSA(hashes.SHA256()))

    def dsse_bundle(self, *, payload: bytes | None = None,
                    payload_type: str = IN_TOTO_PAYLOAD_TYPE,
                    body: Json | bytes | None = None, intoto: bool = False,
                    **entry: Any) -> dict[str, Any]:
        """A managed-key DSSE bundle (dsse 0.0.1, or intoto 0.0.2) whose statement names
        :data:`ARTIFACT`."""
        if payload is None:
            payload = dumps(statement(hashlib.sha256(ARTIFACT).digest()))
        signature = self.dsse_signature(payload, payload_type)
        if body is None:
            body = (self.intoto_body(payload, signature, payload_type) if intoto
                    else self.dsse_body(payload, signature))
        raw = body if isinstance(body, bytes) else dumps(body)
        kind = ("intoto", "0.0.2") if intoto else ("dsse", "0.0.1")
        return {
            "mediaType": BUNDLE_V03_NEW,
            "verificationMaterial": {
                "publicKey": {"hint": "hostile"},
                "tlogEntries": [self.entry(raw, *kind, **entry)],
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


# --- a Fulcio-like CA and CT log of our own ---------------------------------------------------

ISSUER = "https://issuer.hostile.test"
IDENTITY = "hostile@example.com"
SCT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
START = datetime.fromtimestamp(INTEGRATED_TIME - 60, tz=UTC)


def der_utf8(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 128
    return bytes([0x0C, len(data)]) + data


@dataclass
class OwnCA:
    """A CA (root only) and a CT log, trusted beside :class:`OwnLog`; leaves are built on demand
    with any extensions, and a valid embedded SCT unless told otherwise."""

    log: OwnLog = field(default_factory=OwnLog)
    ca_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    ct_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    leaf_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    #: the leaf's notBefore (valid for 10 minutes); its SCT is 30 s later
    start: datetime = START

    def __post_init__(self) -> None:
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "hostile root")])
        ski = x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key())
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.ca_key.public_key())
            .serial_number(1)
            .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )

    def message_signature(self) -> bytes:
        """The leaf key's signature over :data:`ARTIFACT`, made once (ECDSA is randomized)."""
        if not hasattr(self, "_signature"):
            digest = hashlib.sha256(ARTIFACT).digest()
            self._signature = self.leaf_key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        return self._signature

    def body(self, cert_pem: bytes) -> dict[str, Any]:
        """The hashedrekord 0.0.1 body for the leaf's signature, with ``cert_pem`` as logged."""
        digest = hashlib.sha256(ARTIFACT).digest()
        return {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                "signature": {"content": b64(self.message_signature()),
                              "publicKey": {"content": b64(cert_pem)}},
            },
        }

    @property
    def ct_log_id(self) -> bytes:
        return hashlib.sha256(_spki(self.ct_key)).digest()

    def trusted_root(self) -> dict[str, Any]:
        root = self.log.trusted_root()
        root["certificateAuthorities"] = [
            {
                "subject": {"organization": "hostile", "commonName": "hostile root"},
                "uri": "https://ca.hostile.test",
                "certChain": {"certificates": [
                    {"rawBytes": b64(self.ca_cert.public_bytes(serialization.Encoding.DER))}
                ]},
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            }
        ]
        root["ctlogs"] = [
            {
                "baseUrl": "https://ct.hostile.test",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": b64(_spki(self.ct_key)),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2020-01-01T00:00:00Z"},
                },
                "logId": {"keyId": b64(self.ct_log_id)},
            }
        ]
        return root

    def verifier(self) -> Verifier:
        return Verifier(TrustedRoot.from_json(self.trusted_root()))

    def _builder(self, extensions: list[tuple[x509.ExtensionType, bool]]) -> Any:
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca_cert.subject)
            .public_key(self.leaf_key.public_key())
            .serial_number(4242)
            .not_valid_before(self.start)
            .not_valid_after(self.start + timedelta(minutes=10))
        )
        for ext, critical in extensions:
            b = b.add_extension(ext, critical=critical)
        return b

    def default_extensions(self) -> list[tuple[x509.ExtensionType, bool]]:
        return [
            (x509.KeyUsage(True, False, False, False, False, False, False, False, False), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False),
            (x509.SubjectKeyIdentifier.from_public_key(self.leaf_key.public_key()), False),
            (x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), False),
            (x509.SubjectAlternativeName([x509.RFC822Name(IDENTITY)]), True),
            (x509.UnrecognizedExtension(ISSUER_V1, ISSUER.encode()), False),
            (x509.UnrecognizedExtension(ISSUER_V2, der_utf8(ISSUER)), False),
        ]

    def sct(
        self, tbs_precert: bytes, *, timestamp_ms: int | None = None, extensions: bytes = b"",
        log_id: bytes | None = None,
    ) -> sct_format.SignedCertificateTimestamp:
        unsigned = sct_format.SignedCertificateTimestamp(
            0, log_id or self.ct_log_id,
            (int(self.start.timestamp()) + 30) * 1000 if timestamp_ms is None else timestamp_ms,
            extensions, 4, 3, b"\x30\x00",
        )
        issuer_key_hash = hashlib.sha256(_spki(self.ca_key)).digest()
        signed = sct_format.precert_signed_data(unsigned, issuer_key_hash, tbs_precert)
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return dataclasses.replace(unsigned, signature=signature)

    def leaf(self, *, extensions: list[tuple[x509.ExtensionType, bool]] | None = None,
             sct_value: bytes | None = None,
             sct: Callable[[bytes], sct_format.SignedCertificateTimestamp] | None = None,
             ) -> x509.Certificate:
        """A leaf with ``extensions`` (default: the Fulcio profile), then the SCT list extension:
        ``sct_value`` raw, or a list of one SCT from ``sct(tbs_precert)`` (default: valid)."""
        exts = self.default_extensions() if extensions is None else extensions
        if sct_value is None:
            precert = self._builder(exts).sign(self.ca_key, hashes.SHA256())
            make = sct or self.sct
            sct_value = sct_format.encode_sct_list_extension([make(precert.tbs_certificate_bytes)])
        cert = self._builder([*exts, (x509.UnrecognizedExtension(SCT_OID, sct_value), False)])
        return cert.sign(self.ca_key, hashes.SHA256())  # type: ignore[no-any-return]

    def bundle(self, cert: x509.Certificate | bytes, *,
               cert_pem: bytes | None = None) -> dict[str, Any]:
        """A keyless v0.3 hashedrekord 0.0.1 bundle over :data:`ARTIFACT` by ``cert``'s key;
        ``cert_pem`` replaces the PEM the log recorded for it."""
        der = cert if isinstance(cert, bytes) else cert.public_bytes(serialization.Encoding.DER)
        digest = hashlib.sha256(ARTIFACT).digest()
        if cert_pem is None:
            cert_pem = (b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der)
                        + b"-----END CERTIFICATE-----\n")
        body = self.body(cert_pem)
        return {
            "mediaType": BUNDLE_V03_NEW,
            "verificationMaterial": {
                "certificate": {"rawBytes": b64(der)},
                "tlogEntries": [self.log.entry(dumps(body), "hashedrekord", "0.0.1")],
            },
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)},
                "signature": b64(self.message_signature()),
            },
        }

    def run(self, bundle: Json | bytes, verifier: Verifier, *, identity: str = IDENTITY,
            issuer: str = ISSUER) -> Outcome:
        data = bundle if isinstance(bundle, bytes) else dumps(bundle)
        policy = Identity(issuer=issuer, identity=identity)
        artifact = Artifact.from_bytes(ARTIFACT)
        return outcome_of(lambda: verifier.verify(data, artifact, policy=policy))


# --- a Rekor v2 log (Ed25519, C2SP checkpoint) and a TSA of our own ---------------------------

V2_ORIGIN = "rekor2.hostile.test"


@dataclass
class OwnRekorV2:
    """A Rekor-v2-style log (no SET: time comes from RFC 3161 tokens of our own TSA) for
    managed-key hashedrekord 0.0.2 bundles; ``tsa`` is a keyless TokenBuilder and its chain."""

    tsa: TsaCredentials
    log_key: ed25519.Ed25519PrivateKey = field(default_factory=ed25519.Ed25519PrivateKey.generate)
    signer: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    #: keyless mode: the CA whose leaf (for ``signer``) signs, instead of a managed key
    ca: OwnCA | None = None
    cert: x509.Certificate | None = None

    def __post_init__(self) -> None:
        self.builder = TokenBuilder(self.tsa.signer, self.tsa.chain)
        self.signature = self.signer.sign(
            hashlib.sha256(ARTIFACT).digest(), ec.ECDSA(Prehashed(hashes.SHA256()))
        )

    @property
    def log_id(self) -> bytes:
        return ed25519_key_id(V2_ORIGIN, self.log_key.public_key())

    def trusted_root(self) -> dict[str, Any]:
        raw = self.log_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "mediaType": TRUSTED_ROOT_V01,
            "tlogs": [{
                "baseUrl": f"https://{V2_ORIGIN}",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": b64(raw), "keyDetails": "PKIX_ED25519",
                              "validFor": {"start": "2020-01-01T00:00:00Z"}},
                "logId": {"keyId": b64(self.log_id)},
            }],
            "certificateAuthorities": [],
            "ctlogs": [],
            "timestampAuthorities": [{
                "subject": {"organization": "hostile", "commonName": "hostile tsa"},
                "uri": "https://tsa.hostile.test",
                "certChain": {"certificates": [
                    {"rawBytes": b64(c.public_bytes(serialization.Encoding.DER))}
                    for c in self.tsa.chain
                ]},
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            }],
        }

    def verifier(self) -> Verifier:
        root = self.trusted_root()
        if self.ca is not None:
            ca_root = self.ca.trusted_root()
            root["certificateAuthorities"] = ca_root["certificateAuthorities"]
            root["ctlogs"] = ca_root["ctlogs"]
        return Verifier(TrustedRoot.from_json(root))

    def token(self, *, gen_time: bytes | None = None, message: bytes | None = None,
              algorithm: str = "sha256") -> bytes:
        """A granted TimeStampResp over ``message`` (default: the bundle's signature)."""
        data = self.signature if message is None else message
        query = TimestampQuery(HASH_ALGORITHMS[algorithm], hashlib.new(algorithm, data).digest(),
                               cert_req=True)
        when = generalized_time(int(time.time()) - 60) if gen_time is None else gen_time
        return self.builder.issue(query, serial=b"\x02\x01\x07", gen_time=when)

    def body(self) -> dict[str, Any]:
        return {
            "apiVersion": "0.0.2",
            "kind": "hashedrekord",
            "spec": {"hashedRekordV002": {
                "data": {"algorithm": "SHA2_256",
                         "digest": b64(hashlib.sha256(ARTIFACT).digest())},
                "signature": {"content": b64(self.signature), "verifier": {
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    **({"publicKey": {"rawBytes": b64(_spki(self.signer))}} if self.cert is None
                       else {"x509Certificate": {"rawBytes": b64(self._cert_der())}}),
                }},
            }},
        }

    def _cert_der(self) -> bytes:
        assert self.cert is not None
        return self.cert.public_bytes(serialization.Encoding.DER)

    def _verifier(self) -> dict[str, Any]:
        return {"keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "publicKey": {"rawBytes": b64(_spki(self.signer))}}

    def dsse_bundle(self, *, kind: str = "hashedrekord", body: Json | bytes | None = None,
                    payload: bytes | None = None) -> dict[str, Any]:
        """A managed-key DSSE bundle on Rekor v2: logged as hashedrekord 0.0.2 over SHA-256(PAE)
        (sigstore-python) or as dsse 0.0.2 (sigstore-js 5); one token over the DSSE signature."""
        if payload is None:
            payload = dumps(statement(hashlib.sha256(ARTIFACT).digest()))
        signed = pae(IN_TOTO_PAYLOAD_TYPE, payload)
        sig = self.signer.sign(signed, ec.ECDSA(hashes.SHA256()))
        if body is None and kind == "hashedrekord":
            body = {"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {"hashedRekordV002": {
                "data": {"algorithm": "SHA2_256", "digest": b64(hashlib.sha256(signed).digest())},
                "signature": {"content": b64(sig), "verifier": self._verifier()},
            }}}
        elif body is None:
            body = {"apiVersion": "0.0.2", "kind": "dsse", "spec": {"dsseV002": {
                "payloadHash": {"algorithm": "SHA2_256",
                                "digest": b64(hashlib.sha256(payload).digest())},
                "signatures": [{"content": b64(sig), "verifier": self._verifier()}],
            }}}
        bundle = self.bundle(body=body, tokens=[self.token(message=sig)])
        entry = bundle["verificationMaterial"]["tlogEntries"][0]
        entry["kindVersion"]["kind"] = kind
        del bundle["messageSignature"]
        bundle["dsseEnvelope"] = {"payload": b64(payload), "payloadType": IN_TOTO_PAYLOAD_TYPE,
                                  "signatures": [{"sig": b64(sig), "keyid": ""}]}
        return bundle

    def checkpoint(self, root: bytes, size: int = 1) -> str:
        text = f"{V2_ORIGIN}\n{size}\n{b64(root)}\n".encode()
        sig = self.log_key.sign(text)
        return text.decode() + f"\n\u2014 {V2_ORIGIN} {b64(self.log_id[:4] + sig)}\n"

    def bundle(self, *, body: Json | bytes | None = None,
               tokens: list[bytes] | None = None) -> dict[str, Any]:
        raw = dumps(self.body() if body is None else body) if not isinstance(body, bytes) else body
        root = hashlib.sha256(b"\x00" + raw).digest()
        entry = {
            "logIndex": "0",
            "logId": {"keyId": b64(self.log_id)},
            "kindVersion": {"kind": "hashedrekord", "version": "0.0.2"},
            "integratedTime": "0",
            "inclusionProof": {"logIndex": "0", "rootHash": b64(root), "treeSize": "1",
                               "hashes": [], "checkpoint": {"envelope": self.checkpoint(root)}},
            "canonicalizedBody": b64(raw),
        }
        tokens = [self.token()] if tokens is None else tokens
        material: dict[str, Any] = (
            {"publicKey": {"hint": "hostile"}} if self.cert is None
            else {"certificate": {"rawBytes": b64(self._cert_der())}}
        )
        return {
            "mediaType": BUNDLE_V03_NEW,
            "verificationMaterial": {
                **material,
                "tlogEntries": [entry],
                "timestampVerificationData": {
                    "rfc3161Timestamps": [{"signedTimestamp": b64(t)} for t in tokens]
                },
            },
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256",
                                  "digest": b64(hashlib.sha256(ARTIFACT).digest())},
                "signature": b64(self.signature),
            },
        }

    def run(self, bundle: Json | bytes, verifier: Verifier) -> Outcome:
        data = bundle if isinstance(bundle, bytes) else dumps(bundle)
        artifact = Artifact.from_bytes(ARTIFACT)
        if self.cert is not None:
            policy = Identity(issuer=ISSUER, identity=IDENTITY)
            return outcome_of(lambda: verifier.verify(data, artifact, policy=policy))
        key = self.signer.public_key()
        return outcome_of(lambda: verifier.verify(data, artifact, key=key))
