"""Entry kinds: canonical bodies rebuilt byte-for-byte from real bundles, every key type, and
hostile variants (each must be a clean 4xx-class error naming the problem)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from tlog_support import (
    CA,
    Signer,
    b64,
    der,
    dsse_over_hashedrekord_v2,
    dsse_v1,
    dsse_v2,
    hashedrekord_v1,
    hashedrekord_v2,
    intoto_v1,
    pem,
    spki,
    statement,
)

from keyless.errors import InvalidInput, VerificationError
from keyless.services.tlog.kinds import camel_keys, common, propose_v1, propose_v2
from keyless.services.tlog.kinds.common import EntrySignatureError

ARTIFACT = b"hello, transparency\n"


def _body(bundle: dict[str, Any]) -> bytes:
    return base64.b64decode(bundle["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"])


def _leaf_der(bundle: dict[str, Any]) -> bytes:
    vm = bundle["verificationMaterial"]
    if "certificate" in vm:
        return base64.b64decode(vm["certificate"]["rawBytes"])
    return base64.b64decode(vm["x509CertificateChain"]["certificates"][0]["rawBytes"])


def _pem_of(der_bytes: bytes) -> bytes:
    return x509.load_der_x509_certificate(der_bytes).public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA.create()


@pytest.fixture(scope="module")
def p256(ca: CA) -> Signer:
    return Signer.create(ca)


# ---- real vectors -------------------------------------------------------------------------------


def test_hashedrekord_v001_rebuilds_public_good_body(vectors: Path) -> None:
    bundle = json.loads((vectors / "sigstore-python/bundle_v3_github.whl.sigstore").read_text())
    sig = bundle["messageSignature"]
    request = {
        "kind": "hashedrekord",
        "apiVersion": "0.0.1",
        "spec": {
            "signature": {
                "content": sig["signature"],
                "publicKey": {"content": b64(_pem_of(_leaf_der(bundle)))},
            },
            "data": {
                "hash": {
                    "algorithm": "sha256",
                    "value": base64.b64decode(sig["messageDigest"]["digest"]).hex(),
                }
            },
        },
    }
    assert propose_v1(request).body == _body(bundle)


@pytest.mark.parametrize(
    "name", ["staging-rekor-v2.txt.sigstore.json", "a.dsse.staging-rekor-v2.txt.sigstore.json"]
)
def test_hashedrekord_v002_rebuilds_staging_body(vectors: Path, name: str) -> None:
    bundle = json.loads((vectors / "sigstore-python" / name).read_text())
    if "messageSignature" in bundle:
        digest = bundle["messageSignature"]["messageDigest"]["digest"]
        sig = bundle["messageSignature"]["signature"]
    else:  # hashedrekord-over-DSSE: digest = SHA-256(PAE)
        env = bundle["dsseEnvelope"]
        t = env["payloadType"].encode()
        payload = base64.b64decode(env["payload"])
        message = b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)
        digest = b64(hashlib.sha256(message).digest())
        sig = env["signatures"][0]["sig"]
    request = {
        "hashedRekordRequestV002": {
            "digest": digest,
            "signature": {
                "content": sig,
                "verifier": {
                    "x509Certificate": {"rawBytes": b64(_leaf_der(bundle))},
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                },
            },
        }
    }
    proposed = propose_v2(request)
    assert (proposed.kind, proposed.api_version) == ("hashedrekord", "0.0.2")
    assert proposed.body == _body(bundle)


def test_dsse_v001_rebuilds_conformance_body(vectors: Path) -> None:
    bundle = json.loads(
        (
            vectors / "conformance/bundle-verify/happy-path-intoto-in-dsse-v3/bundle.sigstore.json"
        ).read_text()
    )
    # sigstore-python sends the envelope as compact JSON; the log hashes the string as sent.
    request = {
        "kind": "dsse",
        "apiVersion": "0.0.1",
        "spec": {
            "proposedContent": {
                "envelope": json.dumps(bundle["dsseEnvelope"], separators=(",", ":")),
                "verifiers": [b64(_pem_of(_leaf_der(bundle)))],
            }
        },
    }
    assert propose_v1(request).body == _body(bundle)


def test_intoto_v002_rebuilds_conformance_body(vectors: Path) -> None:
    bundle = json.loads(
        (
            vectors / "conformance/bundle-verify/intoto-with-custom-trust-root/bundle.sigstore.json"
        ).read_text()
    )
    body = _body(bundle)
    spec = json.loads(body)["spec"]
    assert propose_v1({"kind": "intoto", "apiVersion": "0.0.2", "spec": spec}).body == body
    # The log computes the hashes itself when the client leaves them out.
    del spec["content"]["hash"], spec["content"]["payloadHash"]
    assert propose_v1({"kind": "intoto", "apiVersion": "0.0.2", "spec": spec}).body == body


def test_dsse_v001_mismatched_signature_vector_is_refused(vectors: Path) -> None:
    bundle = json.loads(
        (
            vectors / "conformance/bundle-verify/dsse-invalid-sig_fail/bundle.sigstore.json"
        ).read_text()
    )
    request = {
        "kind": "dsse",
        "apiVersion": "0.0.1",
        "spec": {
            "proposedContent": {
                "envelope": json.dumps(bundle["dsseEnvelope"]),
                "verifiers": [b64(_pem_of(_leaf_der(bundle)))],
            }
        },
    }
    with pytest.raises(EntrySignatureError):
        propose_v1(request)


# ---- every key type -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["p256", "p384", "p521", "rsa2048", "rsa3072", "rsa4096"])
def test_hashedrekord_v002_every_allowed_key(ca: CA, kind: str) -> None:
    signer = Signer.create(ca, kind)
    proposed = propose_v2(hashedrekord_v2(signer, ARTIFACT))
    spec = json.loads(proposed.body)["spec"]["hashedRekordV002"]
    assert spec["signature"]["verifier"]["keyDetails"] == signer.key_details
    assert (
        spec["data"]["algorithm"]
        == {"sha256": "SHA2_256", "sha384": "SHA2_384", "sha512": "SHA2_512"}[signer.hash.name]
    )


def _reencoded(text: str) -> str:
    return b64(base64.b64decode(text, validate=True))


@pytest.mark.parametrize("form", ["x509Certificate", "publicKey"])
@pytest.mark.parametrize("kind", ["p256", "p384", "p521", "rsa2048"])
def test_hashedrekord_v002_body_is_the_jcs_of_its_fields(ca: CA, kind: str, form: str) -> None:
    """The 0.0.2 body is written out directly: byte for byte the RFC 8785 form of the entry
    built as a dict, for every key type, both verifier forms, and base64 that is not in
    canonical form (non-zero trailing bits: re-encoded, as before)."""
    signer = Signer.create(ca, kind)
    request = hashedrekord_v2(signer, ARTIFACT)
    inner = request["hashedRekordRequestV002"]
    verifier = inner["signature"]["verifier"]
    raw = der(signer.cert) if form == "x509Certificate" else spki(signer.key.public_key())
    verifier.pop("x509Certificate", None)
    verifier[form] = {"rawBytes": b64(raw)}
    # Non-canonical base64 of the digest: the last character carries non-zero spare bits.
    digest_text = inner["digest"]
    pad = len(digest_text) - len(digest_text.rstrip("="))
    if pad:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        last = alphabet.index(digest_text[-pad - 1])
        inner["digest"] = digest_text[:-pad - 1] + alphabet[last | 1] + "=" * pad
    assert base64.b64decode(inner["digest"]) == base64.b64decode(digest_text)
    expected = {
        "apiVersion": "0.0.2",
        "kind": "hashedrekord",
        "spec": {"hashedRekordV002": {
            "data": {"algorithm": {"sha256": "SHA2_256", "sha384": "SHA2_384",
                                   "sha512": "SHA2_512"}[signer.hash.name],
                     "digest": _reencoded(inner["digest"])},
            "signature": {"content": inner["signature"]["content"], "verifier": {
                "keyDetails": verifier["keyDetails"], form: {"rawBytes": b64(raw)}}},
        }},
    }
    assert propose_v2(request).body == rfc8785.dumps(expected)


@pytest.mark.parametrize("kind", ["p256", "p384", "rsa2048"])
def test_hashedrekord_v001_keys_and_public_key_form(ca: CA, kind: str) -> None:
    signer = Signer.create(ca, kind)
    assert propose_v1(hashedrekord_v1(signer, ARTIFACT)).kind == "hashedrekord"
    # A bare PEM public key (cosign --key) instead of a certificate.
    key_pem = signer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = json.loads(propose_v1(hashedrekord_v1(signer, ARTIFACT, cert_pem=key_pem)).body)
    assert base64.b64decode(body["spec"]["signature"]["publicKey"]["content"]) == key_pem


def test_hashedrekord_v001_canonicalises_client_pem(p256: Signer) -> None:
    """sigstore-js sends the CA's PEM verbatim (gotcha 3): the body must hold canonical PEM."""
    sloppy = pem(p256.cert).replace(b"\n", b"\r\n")
    body = json.loads(propose_v1(hashedrekord_v1(p256, ARTIFACT, cert_pem=sloppy)).body)
    assert base64.b64decode(body["spec"]["signature"]["publicKey"]["content"]) == pem(p256.cert)


def test_ed25519ph_rfc8032_vector_over_v2_public_key() -> None:
    public = ed25519.Ed25519PublicKey.from_public_bytes(
        bytes.fromhex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
    )
    sig = bytes.fromhex(
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
        "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
    )
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def request(message: bytes) -> dict[str, Any]:
        return {
            "hashedRekordRequestV002": {
                "digest": b64(hashlib.sha512(message).digest()),
                "signature": {
                    "content": b64(sig),
                    "verifier": {
                        "publicKey": {"rawBytes": b64(spki)},
                        "keyDetails": "PKIX_ED25519_PH",
                    },
                },
            }
        }

    body = propose_v2(request(b"abc")).body
    assert body == rfc8785.dumps({"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {
        "hashedRekordV002": {
            "data": {"algorithm": "SHA2_512", "digest": b64(hashlib.sha512(b"abc").digest())},
            "signature": {"content": b64(sig), "verifier": {
                "keyDetails": "PKIX_ED25519_PH", "publicKey": {"rawBytes": b64(spki)}}}}}})
    with pytest.raises(EntrySignatureError):
        propose_v2(request(b"abd"))


@pytest.mark.parametrize("kind", ["p256", "p384", "ed25519", "rsa2048"])
def test_dsse_both_versions_and_intoto_every_key(ca: CA, kind: str) -> None:
    signer = Signer.create(ca, kind)
    payload = statement()
    v1 = json.loads(propose_v1(dsse_v1(signer, payload)).body)
    assert v1["spec"]["payloadHash"]["value"] == hashlib.sha256(payload).hexdigest()
    assert base64.b64decode(v1["spec"]["signatures"][0]["verifier"]) == pem(signer.cert)
    v2 = json.loads(propose_v2(dsse_v2(signer, payload)).body)
    assert v2["kind"] == "dsse" and v2["apiVersion"] == "0.0.2"
    sig = v2["spec"]["dsseV002"]["signatures"][0]
    assert sig["verifier"]["x509Certificate"]["rawBytes"] == b64(der(signer.cert))
    intoto = propose_v1(intoto_v1(signer, payload))
    assert intoto.kind == "intoto"


def test_dsse_over_hashedrekord_v2(p256: Signer) -> None:
    assert propose_v2(dsse_over_hashedrekord_v2(p256, statement())).kind == "hashedrekord"


def test_snake_case_v2_request_is_accepted(p256: Signer) -> None:
    request = hashedrekord_v2(p256, ARTIFACT)
    inner = request["hashedRekordRequestV002"]
    verifier = inner["signature"]["verifier"]
    snake = {
        "hashed_rekord_request_v002": {
            "digest": inner["digest"],
            "signature": {
                "content": inner["signature"]["content"],
                "verifier": {
                    "x509_certificate": {"raw_bytes": verifier["x509Certificate"]["rawBytes"]},
                    "key_details": verifier["keyDetails"],
                },
            },
        }
    }
    assert propose_v2(snake).body == propose_v2(request).body


# ---- hostile input --------------------------------------------------------------------------


def _mutate(request: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(request)
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


SIG_V2 = ["hashedRekordRequestV002", "signature"]


@pytest.mark.parametrize(
    ("path", "value", "error", "words"),
    [
        (["hashedRekordRequestV002", "digest"], "not base64!", InvalidInput, "digest"),
        (["hashedRekordRequestV002", "digest"], b64(b"\x00" * 20), InvalidInput, "digest"),
        (
            [*SIG_V2, "content"],
            b64(b"\x30\x06\x02\x01\x01\x02\x01\x01"),
            EntrySignatureError,
            "signature",
        ),
        (
            [*SIG_V2, "verifier", "keyDetails"],
            "PKIX_ECDSA_P384_SHA_384",
            InvalidInput,
            "keyDetails",
        ),
        ([*SIG_V2, "verifier", "keyDetails"], "PKIX_ED25519", InvalidInput, "keyDetails"),
        ([*SIG_V2, "verifier", "keyDetails"], "PKCS1_RSA_PKCS1V5", InvalidInput, "allowed"),
        (
            [*SIG_V2, "verifier", "x509Certificate", "rawBytes"],
            b64(b"garbage"),
            InvalidInput,
            "certificate",
        ),
        ([*SIG_V2, "verifier", "publicKey"], {"rawBytes": "AA=="}, InvalidInput, "exactly one"),
        ([*SIG_V2, "verifier"], KeyError, InvalidInput, "verifier"),
        ([*SIG_V2, "extra"], 1, InvalidInput, "unknown field"),
        (["hashedRekordRequestV002"], [], InvalidInput, "object"),
    ],
)
def test_hostile_v2_hashedrekord(
    p256: Signer, path: list[Any], value: Any, error: type[Exception], words: str
) -> None:
    request = _mutate(hashedrekord_v2(p256, ARTIFACT), path, value)
    with pytest.raises(error) as info:
        propose_v2(request)
    assert words in str(info.value)


SPEC = ["spec"]


@pytest.mark.parametrize(
    ("path", "value", "error", "words"),
    [
        (["kind"], "rekord", InvalidInput, "unsupported entry kind"),
        (["apiVersion"], "0.0.9", InvalidInput, "unsupported entry kind"),
        (["spec"], KeyError, InvalidInput, "spec"),
        ([*SPEC, "data", "hash", "value"], "ab" * 20, InvalidInput, "32 bytes"),
        ([*SPEC, "data", "hash", "value"], "xyz", InvalidInput, "hex"),
        ([*SPEC, "data", "hash", "value"], "ABC", InvalidInput, "hex"),
        ([*SPEC, "data", "hash", "algorithm"], "sha1", InvalidInput, "algorithm"),
        ([*SPEC, "signature", "content"], "%%%", InvalidInput, "base64"),
        (
            [*SPEC, "signature", "publicKey", "content"],
            b64(b"-----BEGIN CERTIFICATE-----\nxx"),
            InvalidInput,
            "PEM",
        ),
        ([*SPEC, "signature", "publicKey", "content"], b64(b"hello"), InvalidInput, "PEM"),
        (
            [*SPEC, "data", "hash", "value"],
            hashlib.sha256(b"other").hexdigest(),
            EntrySignatureError,
            "does not verify",
        ),
    ],
)
def test_hostile_v1_hashedrekord(
    p256: Signer, path: list[Any], value: Any, error: type[Exception], words: str
) -> None:
    request = _mutate(hashedrekord_v1(p256, ARTIFACT), path, value)
    with pytest.raises(error) as info:
        propose_v1(request)
    assert words in str(info.value)


def test_hostile_dsse_and_intoto(ca: CA, p256: Signer) -> None:
    other = Signer.create(ca)
    payload = statement()
    good = dsse_v1(p256, payload)
    wrong_key = _mutate(good, ["spec", "proposedContent", "verifiers"], [b64(pem(other.cert))])
    with pytest.raises(VerificationError):
        propose_v1(wrong_key)
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(InvalidInput):
        propose_v1(_mutate(good, ["spec", "proposedContent", "envelope"], deep))
    with pytest.raises(InvalidInput, match="verifiers"):
        propose_v1(_mutate(good, ["spec", "proposedContent", "verifiers"], []))
    env = json.loads(good["spec"]["proposedContent"]["envelope"])
    env["payload"] = b64(b"tampered")
    with pytest.raises(EntrySignatureError):
        propose_v1(_mutate(good, ["spec", "proposedContent", "envelope"], json.dumps(env)))
    bad_hash = _mutate(intoto_v1(p256, payload), ["spec", "content", "hash", "value"], "00" * 32)
    with pytest.raises(InvalidInput, match="hash"):
        propose_v1(bad_hash)
    single = _mutate(
        intoto_v1(p256, payload), ["spec", "content", "envelope", "payload"], b64(payload)
    )  # single instead of double base64
    with pytest.raises(InvalidInput, match="base64"):
        propose_v1(single)
    v2 = dsse_v2(p256, payload)
    with pytest.raises(InvalidInput):
        propose_v2(_mutate(v2, ["dsseRequestV002", "envelope", "signatures"], []))
    with pytest.raises(InvalidInput, match="exactly one"):
        propose_v2({**v2, **hashedrekord_v2(p256, ARTIFACT)})
    with pytest.raises(InvalidInput, match="unknown request field"):
        propose_v2({"rekordRequestV002": {}})


def test_camel_keys_refuses_excessive_nesting() -> None:
    value: Any = {}
    for _ in range(100):
        value = {"a": value}
    with pytest.raises(InvalidInput, match="nested"):
        camel_keys(value)


def test_verify_digest_refuses_wrong_digest_size_for_ecdsa(p256: Signer) -> None:
    from keyless.services.tlog.kinds import common

    verifier = common.load_der_certificate(der(p256.cert), "cert")
    with pytest.raises(InvalidInput, match="32 bytes"):
        common.verify_digest(verifier, b"sig", b"\x00" * 48, hashes.SHA256())


def test_lone_surrogates_are_invalid_input(p256: Signer) -> None:
    payload = statement()
    request = json.loads(json.dumps(intoto_v1(p256, payload)))
    request["spec"]["content"]["envelope"]["payloadType"] = "\ud800"
    with pytest.raises(InvalidInput, match="Unicode"):
        propose_v1(request)
    v2 = dsse_v2(p256, payload)
    v2["dsseRequestV002"]["envelope"]["payloadType"] = "x\udfff"
    with pytest.raises(InvalidInput, match="Unicode"):
        propose_v2(v2)


@pytest.mark.parametrize("kind", ["p256", "p521", "rsa2048"])
def test_identity_keys_come_only_from_trusted_certificates(ca: CA, kind: str) -> None:
    from keyless.services.tlog.identities import TrustedIssuers
    from keyless.services.tlog.search import keys_for_body

    signer = Signer.create(ca, kind, uri="https://ci.example/workflow@main")
    fingerprint = "key:sha256:" + hashlib.sha256(spki(signer.key.public_key())).hexdigest()
    for proposed in (
        propose_v1(hashedrekord_v1(signer, ARTIFACT)),
        propose_v2(hashedrekord_v2(signer, ARTIFACT)),
    ):
        keys = keys_for_body(proposed.body, TrustedIssuers([ca.cert]))
        assert f"identity:https://issuer.example/oidc|{EMAIL_LOWER}" in keys
        assert "uri:https://ci.example/workflow@main" in keys
        for untrusted in (None, TrustedIssuers([]), TrustedIssuers([CA.create().cert])):
            keys = keys_for_body(proposed.body, untrusted)
            assert fingerprint in keys
            assert not [k for k in keys if k.split(":")[0] in ("email", "uri", "identity")]


EMAIL_LOWER = "alice@example.com"


def test_dsse_v001_as_sigstore_python_sends_it(p256: Signer) -> None:
    """sigstore-python's pydantic model emits the server-computed fields as null."""
    request = dsse_v1(p256, statement())
    request["spec"].update({"signatures": None, "envelopeHash": None, "payloadHash": None})
    assert propose_v1(request).kind == "dsse"
    request["spec"]["bogus"] = 1
    with pytest.raises(InvalidInput, match="unknown field"):
        propose_v1(request)


@pytest.mark.parametrize("size", range(1, 7))
def test_b64_canonical_is_what_reencoding_gives(size: int) -> None:
    """Canonical base64 is passed through, anything else strict decoding accepts (non-zero pad
    bits, in every position they can be) is re-encoded: always exactly ``b64e(b64(text))``."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    data = bytes(range(7, 7 + size))
    text = base64.b64encode(data).decode()
    pad = len(text) - len(text.rstrip("="))
    seen = 0
    for char in alphabet:
        candidate = text[: len(text) - pad - 1] + char + "=" * pad
        try:
            decoded = common.b64(candidate, "x")
        except InvalidInput:  # pragma: no cover - strict decoding accepts any last character
            continue
        seen += 1
        assert common.b64_canonical(candidate, "x") == (decoded, common.b64e(decoded))
        if common.b64e(decoded) == candidate:
            assert common.b64_canonical(candidate, "x")[1] is candidate
    assert seen == len(alphabet)
