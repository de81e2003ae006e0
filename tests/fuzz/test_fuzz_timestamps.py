"""RFC 3161 at the trust boundary: DER walking, signed tokens (bundle side) and requests (TSA
side), mutated from the real tokens and requests of the test vectors.

Invariants: der raises only DERError; parse_signed_timestamp only MalformedTimestamp; the bundle
verifier's timestamp step only TimestampError; the TSA request parsers only TimestampRejected
(an InvalidInput), and the fast request parser agrees with the asn1crypto reference on every
input it accepts; encode_query/parse_query round-trip.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

from fuzz_support import FUZZ, mutated_bytes, mutated_json, only, root_conftest, value_of
from hypothesis import given
from hypothesis import strategies as st

from keyless.errors import InvalidInput
from keyless.formats import der, tsp
from keyless.formats.trustroot import TrustedRoot
from keyless.formats.tstoken import MalformedTimestamp, parse_signed_timestamp
from keyless.trust.material import TrustMaterial
from keyless.verify.errors import TimestampError
from keyless.verify.timestamps import TimestampVerifier


@functools.cache
def _cases() -> list[tuple[bytes, bytes, Any]]:
    """(token, signature, trusted root) for every RFC 3161 token in the vectors."""
    vectors = root_conftest().VECTORS
    root_conftest().require(vectors.is_dir(), f"test vectors at {vectors}")
    out: list[tuple[bytes, bytes, Any]] = []
    for path in sorted((vectors / "conformance" / "bundle-verify").glob("*/bundle.sigstore.json")):
        root_path = path.parent / "trusted_root.json"
        if not root_path.exists():
            continue
        try:
            TrustedRoot.from_json(root_path.read_bytes())
        except InvalidInput:
            continue  # a conformance case about a deliberately broken trusted root
        bundle = json.loads(path.read_bytes())
        timestamps = bundle.get("verificationMaterial", {}).get("timestampVerificationData", {})
        sig = bundle.get("messageSignature", {}).get("signature") or ""
        for item in timestamps.get("rfc3161Timestamps", []):
            out.append((base64.b64decode(item["signedTimestamp"]), base64.b64decode(sig),
                        root_path))
    out.append(((vectors / "sigstore-python" / "tsr.der").read_bytes(), b"", None))
    return out


def _tokens() -> list[bytes]:
    return [token for token, _sig, _root in _cases()]


@functools.cache
def _verifier(root_path: Any) -> TimestampVerifier:
    return TimestampVerifier(TrustMaterial(TrustedRoot.from_json(root_path.read_bytes())))


tokens = st.deferred(lambda: mutated_bytes(_tokens()))


@FUZZ
@given(data=tokens)
def test_der_walk_raises_only_der_error(data: bytes) -> None:
    def walk(start: int, stop: int, depth: int) -> None:
        for tag, s, e in der.children(data, start, stop):
            if tag & 0x20 and depth < 40:  # constructed
                walk(s, e, depth + 1)
            elif tag == 0x02:
                der.integer(data, s, e, "integer")
            elif tag == 0x18:
                der.generalized_time(data, s, e, "time")
    with only(der.DERError):
        walk(0, len(data), 0)


@FUZZ
@given(data=tokens)
def test_signed_timestamp_parser_raises_only_malformed(data: bytes) -> None:
    with only(MalformedTimestamp):
        parsed = parse_signed_timestamp(data)
        assert parsed.tst_info in data and parsed.signature in data


@FUZZ
@given(pick=st.integers(0), data=st.data())
def test_timestamp_verification_raises_only_timestamp_error(pick: int, data: Any) -> None:
    with_root = [c for c in _cases() if c[2] is not None]
    token, signature, root = with_root[pick % len(with_root)]
    mutated = data.draw(mutated_bytes([token]))
    with only(TimestampError):
        _verifier(root).verified_times([mutated], signature)


# --------------------------------------------------------------------------------------------
# The TSA's request parsers.

HASHES = {"sha256": 32, "sha384": 48, "sha512": 64}


@st.composite
def queries(draw: st.DrawFn) -> tuple[bytes, str, bytes, int | None, bool, str | None]:
    name = draw(st.sampled_from(sorted(HASHES)))
    digest = draw(st.binary(min_size=HASHES[name], max_size=HASHES[name]))
    nonce = draw(st.none() | st.integers(0, 2**64 - 1))
    cert_req = draw(st.booleans())
    policy = draw(st.none() | st.sampled_from(["1.3.6.1.4.1.57264.2", "1.2.3", "2.999.1"]))
    return (tsp.encode_query(digest, name, nonce=nonce, cert_req=cert_req, policy=policy),
            name, digest, nonce, cert_req, policy)


SEED_QUERIES = [tsp.encode_query(b"\x11" * 32), tsp.encode_query(b"\x22" * 48, "sha384", nonce=7),
                tsp.encode_query(b"\x33" * 64, "sha512", nonce=2**63, cert_req=True,
                                 policy="1.3.6.1.4.1.57264.2")]


@FUZZ
@given(query=queries())
def test_query_round_trip(query: tuple[bytes, str, bytes, int | None, bool, str | None]) -> None:
    encoded, name, digest, nonce, cert_req, policy = query
    parsed = tsp.parse_query(encoded)
    assert (parsed.hash_algorithm.name, parsed.digest, parsed.nonce, parsed.cert_req,
            parsed.policy) == (name, digest, nonce, cert_req, policy)
    assert parsed == tsp.parse_query_asn1(encoded)


@FUZZ
@given(data=mutated_bytes(SEED_QUERIES))
def test_query_parser_raises_only_rejection_and_agrees_with_reference(data: bytes) -> None:
    with only(tsp.TimestampRejected):
        fast = tsp.parse_query(data)
        assert fast == tsp.parse_query_asn1(data)


SEED_JSON = [{"artifactHash": base64.b64encode(b"\x11" * 32).decode(), "hashAlgorithm": "sha256",
              "certificates": True, "nonce": 42, "tsaPolicyOID": "1.3.6.1.4.1.57264.2"},
             {"artifactHash": base64.b64encode(b"\x11" * 64).decode(), "hashAlgorithm": "sha512"}]


@FUZZ
@given(body=mutated_json(SEED_JSON).filter(lambda body: isinstance(body, dict)))
def test_json_query_raises_only_invalid_input(body: dict[str, Any]) -> None:
    with only(InvalidInput):
        tsp.query_from_json(value_of(body))


# --------------------------------------------------------------------------------------------
# Regressions found by the properties above.


def test_json_query_does_not_echo_a_huge_hash_name_or_policy() -> None:
    """A 70 kB hashAlgorithm or tsaPolicyOID was copied whole into the 400 answer (and logs)."""
    body = {"artifactHash": base64.b64encode(b"\x11" * 32).decode()}
    for extra in ({"hashAlgorithm": "A" * 70_000},
                  {"hashAlgorithm": "sha256", "tsaPolicyOID": "x" * 70_000}):
        try:
            tsp.query_from_json({**body, **extra})
        except InvalidInput as exc:
            assert len(str(exc)) < 300, str(exc)[:100]
        else:
            raise AssertionError("accepted")


def test_der_query_does_not_echo_a_huge_hash_oid() -> None:
    hostile = tsp.encode_query(b"\x11" * 32, "1.2." + ".".join(["12345"] * 2000))
    try:
        tsp.parse_query(hostile)
    except tsp.TimestampRejected as exc:
        assert len(str(exc)) < 300, str(exc)[:100]
    else:
        raise AssertionError("accepted")
