"""Test helpers for the transparency log: throwaway CA + Fulcio-like leaf certificates, the exact
request bodies sigstore-python and sigstore-js send (interop.md §3, tests/interop/sign*.js),
and an independent verifier of responses (inclusion proof, checkpoint signature, tiles).

The verifier deliberately does not use keyless.formats.checkpoint or the log engine: it re-derives
everything from RFC 6962 / C2SP definitions so that a bug in the log cannot hide itself.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keyless.services.tlog.identities import TrustedIssuers

ISSUER = "https://issuer.example/oidc"
EMAIL = "alice@example.com"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass
class CA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls) -> CA:
        key = ec.generate_private_key(ec.SECP384R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tlog-test-ca")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA384())
        )
        return cls(key, cert)

    def issue(
        self,
        public_key: Any,
        *,
        email: str | None = EMAIL,
        uri: str | None = None,
        issuer: str = ISSUER,
    ) -> x509.Certificate:
        """A Fulcio-like leaf: empty subject, critical SAN, issuer in 57264.1.1 and .1.8."""
        now = datetime.datetime.now(datetime.UTC)
        names: list[x509.GeneralName] = []
        if email:
            names.append(x509.RFC822Name(email))
        if uri:
            names.append(x509.UniformResourceIdentifier(uri))
        issuer_der = b"\x0c" + bytes([len(issuer.encode())]) + issuer.encode()
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(seconds=30))
            .not_valid_after(now + datetime.timedelta(minutes=10))
            .add_extension(x509.SubjectAlternativeName(names), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1"), issuer.encode()
                ),
                critical=False,
            )
            .add_extension(
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), issuer_der
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA384())
        )


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@dataclass
class Signer:
    """An ephemeral signing key + its certificate, as a Sigstore client holds them."""

    key: Any
    cert: x509.Certificate

    @classmethod
    def create(cls, ca: CA, kind: str = "p256", **identity: Any) -> Signer:
        key: Any
        if kind == "p256":
            key = ec.generate_private_key(ec.SECP256R1())
        elif kind == "p384":
            key = ec.generate_private_key(ec.SECP384R1())
        elif kind == "p521":
            key = ec.generate_private_key(ec.SECP521R1())
        elif kind == "ed25519":
            key = ed25519.Ed25519PrivateKey.generate()
        elif kind.startswith("rsa"):
            key = rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
        else:
            raise ValueError(kind)
        return cls(key, ca.issue(key.public_key(), **identity))

    @property
    def hash(self) -> hashes.HashAlgorithm:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[
                self.key.curve.key_size
            ]
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return hashes.SHA512()
        return hashes.SHA256()

    @property
    def key_details(self) -> str:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return {
                256: "PKIX_ECDSA_P256_SHA_256",
                384: "PKIX_ECDSA_P384_SHA_384",
                521: "PKIX_ECDSA_P521_SHA_512",
            }[self.key.curve.key_size]
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return "PKIX_ED25519"
        return f"PKIX_RSA_PKCS1V15_{self.key.key_size}_SHA256"

    def sign_digest(self, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return bytes(self.key.sign(digest, ec.ECDSA(Prehashed(algorithm))))
        if isinstance(self.key, rsa.RSAPrivateKey):
            return bytes(self.key.sign(digest, padding.PKCS1v15(), Prehashed(algorithm)))
        raise ValueError("Ed25519 cannot sign a digest here")

    def sign_message(self, message: bytes) -> bytes:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return bytes(self.key.sign(message, ec.ECDSA(self.hash)))
        if isinstance(self.key, rsa.RSAPrivateKey):
            return bytes(self.key.sign(message, padding.PKCS1v15(), hashes.SHA256()))
        return bytes(self.key.sign(message))


def digest_of(data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


# ---- request bodies, as the real clients send them -------------------------------------------


def hashedrekord_v1(
    signer: Signer, artifact: bytes, *, cert_pem: bytes | None = None
) -> dict[str, Any]:
    """sigstore-python / sigstore-js Rekor v1 ``hashedrekord`` 0.0.1 (protocols.md §3.1)."""
    digest = hashlib.sha256(artifact).digest()
    sig = signer.sign_digest(digest, hashes.SHA256())
    return {
        "kind": "hashedrekord",
        "apiVersion": "0.0.1",
        "spec": {
            "signature": {
                "content": b64(sig),
                "publicKey": {"content": b64(cert_pem or pem(signer.cert))},
            },
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
        },
    }


def hashedrekord_v2(signer: Signer, artifact: bytes) -> dict[str, Any]:
    """sigstore-python / sign-v2.js Rekor v2 ``hashedRekordRequestV002`` (protocols.md §4)."""
    digest = digest_of(artifact, signer.hash)
    sig = signer.sign_digest(digest, signer.hash)
    return {
        "hashedRekordRequestV002": {
            "digest": b64(digest),
            "signature": {
                "content": b64(sig),
                "verifier": {
                    "x509Certificate": {"rawBytes": b64(der(signer.cert))},
                    "keyDetails": signer.key_details,
                },
            },
        }
    }


def envelope(
    signer: Signer,
    payload: bytes,
    payload_type: str = "application/vnd.in-toto+json",
    keyid: str = "",
) -> dict[str, Any]:
    sig = signer.sign_message(pae(payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": b64(payload),
        "signatures": [{"sig": b64(sig), "keyid": keyid}],
    }


def statement(subject_digest: str = "ab" * 32) -> bytes:
    return json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "a.txt", "digest": {"sha256": subject_digest}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {},
        }
    ).encode()


def dsse_v1(signer: Signer, payload: bytes) -> dict[str, Any]:
    """sigstore-python / sigstore-js Rekor v1 ``dsse`` 0.0.1 (envelope as a JSON string)."""
    env = envelope(signer, payload)
    return {
        "kind": "dsse",
        "apiVersion": "0.0.1",
        "spec": {
            "proposedContent": {
                "envelope": json.dumps(env, separators=(",", ":")),
                "verifiers": [b64(pem(signer.cert))],
            }
        },
    }


def dsse_v2(signer: Signer, payload: bytes) -> dict[str, Any]:
    """sigstore-js 5 Rekor v2 ``dsseRequestV002`` (deprecated upstream, still sent)."""
    env = envelope(signer, payload)
    return {
        "dsseRequestV002": {
            "envelope": env,
            "verifiers": [
                {
                    "x509Certificate": {"rawBytes": b64(der(signer.cert))},
                    "keyDetails": signer.key_details,
                }
            ],
        }
    }


def dsse_over_hashedrekord_v2(signer: Signer, payload: bytes) -> dict[str, Any]:
    """sigstore-python ≥ 4.3 DSSE on Rekor v2: hashedrekord with digest = SHA-256(PAE)."""
    env = envelope(signer, payload)
    message = pae(env["payloadType"], payload)
    return {
        "hashedRekordRequestV002": {
            "digest": b64(hashlib.sha256(message).digest()),
            "signature": {
                "content": env["signatures"][0]["sig"],
                "verifier": {
                    "x509Certificate": {"rawBytes": b64(der(signer.cert))},
                    "keyDetails": signer.key_details,
                },
            },
        }
    }


def intoto_v1(signer: Signer, payload: bytes) -> dict[str, Any]:
    """@sigstore/cli ``attest``: Rekor v1 ``intoto`` 0.0.2 (sign/src/witness/tlog/entry.ts)."""
    env = envelope(signer, payload)
    cert_pem = pem(signer.cert).decode()
    hashed = {
        "payloadType": env["payloadType"],
        "payload": env["payload"],
        "signatures": [{"sig": env["signatures"][0]["sig"], "publicKey": cert_pem}],
    }
    import rfc8785

    envelope_hash = hashlib.sha256(rfc8785.dumps(hashed)).hexdigest()
    return {
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": {
            "content": {
                "envelope": {
                    "payloadType": env["payloadType"],
                    "payload": b64(env["payload"].encode()),
                    "signatures": [
                        {
                            "sig": b64(env["signatures"][0]["sig"].encode()),
                            "publicKey": b64(cert_pem.encode()),
                        }
                    ],
                },
                "hash": {"algorithm": "sha256", "value": envelope_hash},
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(payload).hexdigest(),
                },
            }
        },
    }


# ---- independent verification ----------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 Merkle tree hash over leaf *hashes*."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def root_from_proof(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2 inclusion verification, returning the computed root."""
    assert index < size
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        assert sn != 0, "proof too long"
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    assert sn == 0, "proof too short"
    return r


@dataclass
class Note:
    origin: str
    size: int
    root: bytes
    text: bytes
    signatures: list[tuple[str, bytes, bytes]]  # (name, 4-byte hint, signature)


def parse_note(envelope_text: bytes) -> Note:
    text, _, sigs = envelope_text.partition(b"\n\n")
    text += b"\n"
    lines = text.decode().split("\n")
    out: list[tuple[str, bytes, bytes]] = []
    for line in sigs.decode().splitlines():
        assert line.startswith("\u2014 "), line
        name, sig = line[2:].rsplit(" ", 1)
        raw = base64.b64decode(sig)
        out.append((name, raw[:4], raw[4:]))
    return Note(lines[0], int(lines[1]), base64.b64decode(lines[2]), text, out)


def verify_note_ed25519(note: Note, name: str, public_key: ed25519.Ed25519PublicKey) -> bytes:
    """C2SP signed-note Ed25519: key ID = SHA-256(name‖0x0A‖0x01‖key); returns the full key ID."""
    raw = public_key.public_bytes_raw()
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + raw).digest()
    for signer_name, hint, sig in note.signatures:
        if signer_name == name and hint == key_id[:4]:
            public_key.verify(sig, note.text)
            return key_id
    raise AssertionError(f"no signature line by {name}")


def verify_note_ecdsa(note: Note, name: str, public_key: ec.EllipticCurvePublicKey) -> bytes:
    """Rekor v1 checkpoint: hint = SHA-256(SPKI)[:4], ECDSA-SHA256 over the note text."""
    key_id = hashlib.sha256(spki(public_key)).digest()
    for signer_name, hint, sig in note.signatures:
        if signer_name == name and hint == key_id[:4]:
            public_key.verify(sig, note.text, ec.ECDSA(hashes.SHA256()))
            return key_id
    raise AssertionError(f"no signature line by {name}")


def verify_v2_entry(
    tle: dict[str, Any], *, origin: str, public_key: ed25519.Ed25519PublicKey
) -> Note:
    """Check a v2 TransparencyLogEntry the way sigstore-python does (protocols.md §9 step 5)."""
    assert set(tle) == {
        "logIndex",
        "logId",
        "kindVersion",
        "integratedTime",
        "inclusionPromise",
        "inclusionProof",
        "canonicalizedBody",
    }
    proof = tle["inclusionProof"]
    assert set(proof) == {"logIndex", "rootHash", "treeSize", "hashes", "checkpoint"}
    for field in ("logIndex", "treeSize"):
        assert isinstance(proof[field], str)
    assert isinstance(tle["logIndex"], str) and tle["integratedTime"] == "0"
    assert tle["inclusionPromise"] is None
    body = base64.b64decode(tle["canonicalizedBody"])
    root = root_from_proof(
        leaf_hash(body),
        int(proof["logIndex"]),
        int(proof["treeSize"]),
        [base64.b64decode(h) for h in proof["hashes"]],
    )
    assert root == base64.b64decode(proof["rootHash"])
    note = parse_note(proof["checkpoint"]["envelope"].encode())
    assert note.origin == origin and note.size == int(proof["treeSize"]) and note.root == root
    key_id = verify_note_ed25519(note, origin, public_key)
    assert base64.b64decode(tle["logId"]["keyId"]) == key_id
    body_json = json.loads(body)
    assert tle["kindVersion"] == {"kind": body_json["kind"], "version": body_json["apiVersion"]}
    return note


def verify_v1_entry(
    entries: dict[str, Any], *, name: str, tree_id: int, public_key: ec.EllipticCurvePublicKey
) -> tuple[str, dict[str, Any]]:
    """Check a v1 ``{entryID: LogEntry}`` answer: entryID, SET, inclusion proof, checkpoint."""
    import rfc8785

    assert len(entries) == 1
    ((entry_id, entry),) = entries.items()
    body = base64.b64decode(entry["body"])
    assert entry_id == f"{tree_id:016x}" + leaf_hash(body).hex()
    log_id = hashlib.sha256(spki(public_key)).hexdigest()
    assert entry["logID"] == log_id
    payload = rfc8785.dumps(
        {
            "body": entry["body"],
            "integratedTime": entry["integratedTime"],
            "logID": log_id,
            "logIndex": entry["logIndex"],
        }
    )
    public_key.verify(
        base64.b64decode(entry["verification"]["signedEntryTimestamp"]),
        payload,
        ec.ECDSA(hashes.SHA256()),
    )
    proof = entry["verification"]["inclusionProof"]
    root = root_from_proof(
        leaf_hash(body),
        proof["logIndex"],
        proof["treeSize"],
        [bytes.fromhex(h) for h in proof["hashes"]],
    )
    assert root.hex() == proof["rootHash"]
    note = parse_note(proof["checkpoint"].encode())
    assert note.origin == f"{name} - {tree_id}"
    assert note.size == proof["treeSize"] and note.root == root
    verify_note_ecdsa(note, name, public_key)
    return entry_id, entry


def tile_index_path(n: int) -> str:
    groups = []
    while True:
        groups.append(n % 1000)
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    return "/".join(([f"x{g:03d}" for g in groups[:-1]]) + [f"{groups[-1]:03d}"])


def verify_tiles(fetch: Callable[[str], bytes], size: int, root: bytes) -> list[bytes]:
    """Recompute the root of a tree of ``size`` from its served level-0 tiles and entry bundles.

    Returns the entries (canonical bodies) read from the entry bundles, checked against the
    level-0 hashes. ``fetch(path)`` GETs ``<base>/<path>``.
    """
    hashes_: list[bytes] = []
    entries: list[bytes] = []
    for n in range((size + 255) // 256):
        width = min(256, size - n * 256)
        suffix = "" if width == 256 else f".p/{width}"
        tile = fetch(f"tile/0/{tile_index_path(n)}{suffix}")
        assert len(tile) == 32 * width
        hashes_.extend(tile[i : i + 32] for i in range(0, len(tile), 32))
        bundle = fetch(f"tile/entries/{tile_index_path(n)}{suffix}")
        pos = 0
        while pos < len(bundle):
            length = int.from_bytes(bundle[pos : pos + 2], "big")
            entries.append(bundle[pos + 2 : pos + 2 + length])
            pos += 2 + length
    assert len(hashes_) == size and len(entries) == size
    assert [leaf_hash(e) for e in entries] == hashes_
    assert mth(hashes_) == root
    return entries


# ---- a pair of logs (v1 + v2) over one storage, as `keyless serve` wires them ------------------

HOST = "localhost:3000"
ORIGIN_V2 = f"{HOST}/rekor"
TREE_ID = 1234567890123
SEED = b"keyless-test: placeholder entry (interop.md gotcha 1)"


@dataclass
class LogStack:
    storage: Any
    v1_log: Any
    v2_log: Any
    v1: Any
    v2: Any
    v1_key: ec.EllipticCurvePrivateKey
    v2_key: ed25519.Ed25519PrivateKey
    app: Any

    async def close(self) -> None:
        for closeable in (self.v1, self.v2, self.v1_log, self.v2_log):
            await closeable.close()
        await self.storage.close()


async def build_stack(
    url: str = "memory://",
    *,
    limits: Any = None,
    max_pending: int = 65536,
    data_dir: Any = None,
    batch_age: float = 0.0,
    host: str = HOST,
    keys: tuple[Any, Any] | None = None,
    trusted_cas: Sequence[x509.Certificate] = (),
) -> LogStack:
    """Rekor v1 at the root and v2 under /rekor, as docs/internal-apis.md lays them out.

    ``trusted_cas``: the CAs whose certificates' identities the search index believes.
    """
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from keyless.formats.note_keys import NoteSigner
    from keyless.http.errors import EXCEPTION_HANDLERS
    from keyless.keys import InMemorySigner
    from keyless.log import TransparencyLog
    from keyless.services.tlog.routes import routes as tlog_routes
    from keyless.services.tlog.service import RekorV1Service, RekorV2Service, ed25519_log_id
    from keyless.storage import open_storage

    trusted = TrustedIssuers(list(trusted_cas))

    storage = await open_storage(url, data_dir=data_dir)
    v1_key, v2_key = keys or (
        ec.generate_private_key(ec.SECP256R1()),
        ed25519.Ed25519PrivateKey.generate(),
    )
    origin_v2 = f"{host}/rekor"
    v2_log = TransparencyLog(
        storage,
        name="rekor-v2",
        origin=origin_v2,
        signer=NoteSigner.ed25519(origin_v2, InMemorySigner(v2_key)),
        seed=[SEED],
        max_pending=max_pending,
        batch_age=batch_age,
    )
    v1_log = TransparencyLog(
        storage,
        name="rekor-v1",
        origin=f"{host} - {TREE_ID}",
        signer=NoteSigner.ecdsa(host, InMemorySigner(v1_key)),
        seed=[SEED],
        max_pending=max_pending,
        batch_age=batch_age,
    )
    await v2_log.start()
    await v1_log.start()
    v2 = RekorV2Service(
        v2_log,
        log_id=ed25519_log_id(origin_v2, v2_key.public_key().public_bytes_raw()),
        search_index=storage.search_index,
        kv=storage.kv,
        limits=limits,
        trusted=trusted,
    )
    v1 = RekorV1Service(
        v1_log,
        signer=InMemorySigner(v1_key),
        tree_id=TREE_ID,
        search_index=storage.search_index,
        kv=storage.kv,
        limits=limits,
        trusted=trusted,
    )
    await v2.start()
    await v1.start()
    app = Starlette(
        routes=[Mount("/rekor", routes=tlog_routes(v2)), *tlog_routes(v1)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    return LogStack(storage, v1_log, v2_log, v1, v2, v1_key, v2_key, app)


def hostile_retrieve_body(ca: CA, *, entries: int = 10, payload_size: int = 270_000) -> bytes:
    """The ``POST /api/v1/log/entries/retrieve`` body of issue #13 defect 7 (~3.8 MB): ``entries``
    copies of a dsse 0.0.1 proposal with 16 signatures and 16 verifiers over a large payload.
    Verifying it cost seconds of CPU on the event loop (16 x 16 signature checks per entry)."""
    signers = [Signer.create(ca) for _ in range(16)]
    payload = b"A" * payload_size
    message = pae("application/vnd.in-toto+json", payload)
    env = {
        "payloadType": "application/vnd.in-toto+json",
        "payload": b64(payload),
        # every signature by the last key: each is tried against the 15 others first
        "signatures": [{"sig": b64(signers[-1].sign_message(message)), "keyid": ""}
                       for _ in range(16)],
    }
    proposal = {
        "kind": "dsse",
        "apiVersion": "0.0.1",
        "spec": {"proposedContent": {
            "envelope": json.dumps(env, separators=(",", ":")),
            "verifiers": [b64(pem(s.cert)) for s in signers],
        }},
    }
    return json.dumps({"entries": [proposal] * entries}).encode()


class CountingIssuers(TrustedIssuers):
    """Trusted issuers that record every certificate they are asked to vouch for."""

    def __init__(self, certificates: list[x509.Certificate]) -> None:
        super().__init__(certificates)
        self.checked: list[x509.Certificate] = []

    def vouches_for(self, cert: x509.Certificate) -> bool:
        self.checked.append(cert)
        return super().vouches_for(cert)


def naming_email(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
                  ) -> x509.CertificateBuilder:
    """A ten-minute certificate of ``key`` whose critical SAN names :data:`EMAIL`."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(EMAIL)]), critical=True)
    )
