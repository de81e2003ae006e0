"""Rekor v2 (Ed25519 checkpoint, hashedrekord 0.0.2) with time from RFC 3161 tokens of a TSA of
our own (keyless's TokenBuilder): validly signed tokens with hostile genTime and imprint values,
and validly logged hostile bodies (hostile_log.OwnRekorV2)."""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hostile_log import OwnCA, OwnRekorV2
from hostile_util import (
    Json,
    check,
    flip,
    flip_positions,
    signed_token_bytes,
)

from keyless.errors import VerificationError
from keyless.services.tsa import load_or_create_credentials
from keyless.services.tsa.certs import TsaCredentials
from keyless.verify.errors import (
    CertificateChainError,
    CertificateExpiredAtSigningError,
    DSSEError,
    LogEntryMismatchError,
    NotEnoughVerifiedTimesError,
    TimestampError,
)
from keyless.verify.verifier import Verifier


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> TsaCredentials:
    return load_or_create_credentials(tmp_path_factory.mktemp("hostile-tsa"))


@pytest.fixture(scope="module")
def log(tsa: TsaCredentials) -> Iterator[tuple[OwnRekorV2, Verifier]]:
    own = OwnRekorV2(tsa)
    yield own, own.verifier()


@pytest.fixture(scope="module")
def keyless(tsa: TsaCredentials) -> Iterator[tuple[OwnRekorV2, Verifier, int]]:
    """Keyless: a leaf of our own CA valid for 10 minutes from 2 minutes ago (the TSA's chain
    starts earlier), so tokens can fall before, inside and after the certificate's validity."""
    start = int(time.time()) - 120
    assert tsa.chain[0].not_valid_before_utc.timestamp() < start - 60
    ca = OwnCA(start=datetime.fromtimestamp(start, tz=UTC))
    own = OwnRekorV2(tsa, signer=ca.leaf_key, ca=ca, cert=ca.leaf())
    yield own, own.verifier(), start


def _expect(log: tuple[OwnRekorV2, Verifier], bundle: Json,
            error: type[VerificationError] | None, what: str) -> None:
    own, verifier = log
    outcome = own.run(bundle, verifier)
    if error is None:
        assert outcome.status == "ok", f"{what}: {outcome.describe()}"
        return
    check([(what, outcome, False)])
    assert isinstance(outcome.error, error), f"{what}: {outcome.describe()}"


def test_own_rekor_v2_bundle_verifies(log: tuple[OwnRekorV2, Verifier]) -> None:
    _expect(log, log[0].bundle(), None, "original")


def _gt(text: bytes) -> bytes:
    return b"\x18" + bytes([len(text)]) + text


def _now() -> bytes:
    """A minute ago as YYYYMMDDHHMMSS (inside the TSA chain, which starts 5 minutes before it
    is made): computed when a test runs, never at import (collection may be long before)."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() - 60)).encode()


GenTime = Callable[[bytes], bytes]  # from "a minute ago" as YYYYMMDDHHMMSS to a DER value
GEN_TIMES: dict[str, tuple[GenTime, type[VerificationError] | None]] = {
    "whole seconds": (lambda now: _gt(now + b"Z"), None),
    "fraction": (lambda now: _gt(now + b".5Z"), None),
    "nanoseconds": (lambda now: _gt(now + b".123456789Z"), None),
    "fraction with a trailing zero (not DER)": (lambda now: _gt(now + b".50Z"), TimestampError),
    "fraction without digits": (lambda now: _gt(now + b".Z"), TimestampError),
    "comma fraction": (lambda now: _gt(now + b",5Z"), TimestampError),
    "no Z": (_gt, TimestampError),
    "offset": (lambda now: _gt(now + b"+0100"), TimestampError),
    "lower-case z": (lambda now: _gt(now + b"z"), TimestampError),
    "year 9999 (after the TSA)": (lambda now: _gt(b"99991231235959Z"),
                                  NotEnoughVerifiedTimesError),
    "year 1950 (before the TSA)": (lambda now: _gt(b"19500101000000Z"),
                                   NotEnoughVerifiedTimesError),
    "year 0000": (lambda now: _gt(b"00000101000000Z"), TimestampError),
    "month 13": (lambda now: _gt(b"20251301000000Z"), TimestampError),
    "February 30": (lambda now: _gt(b"20250230000000Z"), TimestampError),
    "hour 24": (lambda now: _gt(b"20251010240000Z"), TimestampError),
    "leap second": (lambda now: _gt(b"20251231235960Z"), TimestampError),
    "year only": (lambda now: _gt(b"2025Z"), TimestampError),
    "empty": (lambda now: b"\x18\x00", TimestampError),
    "fullwidth digits": (lambda now: _gt("\uff12\uff10\uff12\uff151010101010Z".encode()),
                         TimestampError),
    "leading space": (lambda now: _gt(b" " + now[1:] + b"Z"), TimestampError),
    "1 kB": (lambda now: b"\x18\x82\x04\x00" + b"1" * 1024, TimestampError),
    "UTCTime": (lambda now: b"\x17\x0d" + now[2:] + b"Z", TimestampError),
    "INTEGER": (lambda now: b"\x02\x01\x05", TimestampError),
}


@pytest.mark.parametrize("name", list(GEN_TIMES))
def test_signed_token_gen_time(log: tuple[OwnRekorV2, Verifier], name: str) -> None:
    build, error = GEN_TIMES[name]
    _expect(log, log[0].bundle(tokens=[log[0].token(gen_time=build(_now()))]), error, name)


def test_signed_token_imprints_and_sets(log: tuple[OwnRekorV2, Verifier]) -> None:
    own = log[0]
    for algorithm in ("sha384", "sha512"):
        _expect(log, own.bundle(tokens=[own.token(algorithm=algorithm)]), None, algorithm)
    _expect(log, own.bundle(tokens=[own.token(message=b"another signature")]),
            NotEnoughVerifiedTimesError, "token over another signature")
    _expect(log, own.bundle(tokens=[]), NotEnoughVerifiedTimesError, "no token")
    now = _now()  # two distinct timestamps (their TSTInfo differs), not one in two wrappings
    two = [own.token(gen_time=_gt(now + b"Z")), own.token(gen_time=_gt(now + b".5Z"))]
    _expect(log, own.bundle(tokens=two), None, "two tokens")
    _expect(log, own.bundle(tokens=[two[0], two[0]]), TimestampError, "the same token twice")


def test_bit_flips_in_own_token(log: tuple[OwnRekorV2, Verifier]) -> None:
    """Every flip is rejected cleanly or harmless; flips in the signed TSTInfo never verify.
    (Keys and ECDSA signatures are random, so positions vary between runs.)"""
    own, verifier = log
    token = own.token()
    signed = signed_token_bytes(token)
    results = []
    for byte, bit in flip_positions(len(token), "own-token", 120):
        outcome = own.run(own.bundle(tokens=[flip(token, byte, bit)]), verifier)
        results.append((f"byte {byte} bit {bit}", outcome, byte not in signed))
    check(results)


def _body(change: Callable[[dict[str, Any]], None]) -> Callable[[OwnRekorV2], Json]:
    def build(own: OwnRekorV2) -> Json:
        body = copy.deepcopy(own.body())
        change(body)
        return body
    return build


def _spec(body: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = body["spec"]["hashedRekordV002"]
    return spec


BODIES: dict[str, Callable[[OwnRekorV2], Json | bytes]] = {
    "null": lambda own: b"null",
    "spec is a list": _body(lambda b: b.__setitem__("spec", [])),
    "kind dsse": _body(lambda b: b.__setitem__("kind", "dsse")),
    "algorithm SHA2_512": _body(lambda b: _spec(b)["data"].__setitem__("algorithm", "SHA2_512")),
    "keyDetails Ed25519": _body(lambda b: _spec(b)["signature"]["verifier"].__setitem__(
        "keyDetails", "PKIX_ED25519")),
    "x509Certificate verifier too": _body(lambda b: _spec(b)["signature"]["verifier"].__setitem__(
        "x509Certificate", {"rawBytes": "AAAA"})),
    "digest without padding": _body(lambda b: _spec(b)["data"].__setitem__(
        "digest", _spec(b)["data"]["digest"].rstrip("="))),
    "extra field": _body(lambda b: _spec(b).__setitem__("extra", {})),
}


@pytest.mark.parametrize("name", list(BODIES))
def test_hostile_logged_v2_body(log: tuple[OwnRekorV2, Verifier], name: str) -> None:
    _expect(log, log[0].bundle(body=BODIES[name](log[0])), LogEntryMismatchError, name)


def test_deeply_nested_logged_v2_body(log: tuple[OwnRekorV2, Verifier]) -> None:
    own, verifier = log
    outcome = own.run(own.bundle(body=b"[" * 100_000 + b"]" * 100_000), verifier)
    check([("deep body", outcome, False)])


def _at(seconds: int) -> bytes:
    return _gt(time.strftime("%Y%m%d%H%M%SZ", time.gmtime(seconds)).encode()[:-1] + b"Z")


@pytest.mark.parametrize(
    ("offsets", "error"),
    [
        ((0,), None),
        ((600,), None),  # notAfter itself: validity is inclusive
        ((10, 590), None),
        ((-60,), CertificateChainError),
        ((601,), CertificateChainError),
        ((10, 700), CertificateChainError),  # every verified time must be inside
        ((-60, 10), CertificateChainError),
    ],
    ids=lambda v: str(v) if not isinstance(v, type) and v is not None else "",
)
def test_token_times_against_certificate_validity(
    keyless: tuple[OwnRekorV2, Verifier, int], offsets: tuple[int, ...],
    error: type[VerificationError] | None,
) -> None:
    """protocols.md §9 steps 2 and 6: the chain is checked at every verified time."""
    own, verifier, start = keyless
    tokens = [own.token(gen_time=_at(start + offset)) for offset in offsets]
    outcome = own.run(own.bundle(tokens=tokens), verifier)
    if error is None:
        assert outcome.status == "ok", outcome.describe()
        return
    check([(str(offsets), outcome, False)])
    assert isinstance(outcome.error, (CertificateChainError, CertificateExpiredAtSigningError)), (
        outcome.describe()
    )


# --- DSSE on Rekor v2: hashedrekord 0.0.2 over PAE, and dsse 0.0.2 ----------------------------


@pytest.mark.parametrize("kind", ["hashedrekord", "dsse"])
def test_own_rekor_v2_dsse_bundle_verifies(log: tuple[OwnRekorV2, Verifier], kind: str) -> None:
    _expect(log, log[0].dsse_bundle(kind=kind), None, kind)


def _logged(bundle: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(base64.b64decode(
        bundle["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"]))
    return body


V2_DSSE_BODIES: dict[str, Callable[[dict[str, Any]], None]] = {
    "spec is a list": lambda b: b.__setitem__("spec", []),
    "apiVersion 0.0.1": lambda b: b.__setitem__("apiVersion", "0.0.1"),
    "spec emptied": lambda b: next(iter(b["spec"].values())).clear(),
    "verifier of another key": lambda b: b.__setitem__("spec", json.loads(
        json.dumps(b["spec"]).replace("PKIX_ECDSA_P256_SHA_256", "PKIX_ECDSA_P384_SHA_384"))),
}


@pytest.mark.parametrize("name", list(V2_DSSE_BODIES))
@pytest.mark.parametrize("kind", ["hashedrekord", "dsse"])
def test_hostile_logged_v2_dsse_body(log: tuple[OwnRekorV2, Verifier], kind: str,
                                     name: str) -> None:
    body = _logged(log[0].dsse_bundle(kind=kind))
    V2_DSSE_BODIES[name](body)
    _expect(log, log[0].dsse_bundle(kind=kind, body=body), LogEntryMismatchError, name)


@pytest.mark.parametrize("kind", ["hashedrekord", "dsse"])
def test_signed_v2_dsse_payload_not_a_statement(log: tuple[OwnRekorV2, Verifier],
                                                kind: str) -> None:
    _expect(log, log[0].dsse_bundle(kind=kind, payload=b"not json"), DSSEError, "not JSON")
    _expect(log, log[0].dsse_bundle(kind=kind, payload=b"[]"), DSSEError, "array")


@pytest.mark.parametrize("kind", [pytest.param("hashedrekord"),
                                  pytest.param("dsse")])
def test_deeply_nested_signed_v2_dsse_payload(log: tuple[OwnRekorV2, Verifier],
                                              kind: str) -> None:
    own, verifier = log
    outcome = own.run(own.dsse_bundle(kind=kind, payload=b"[" * 100_000 + b"]" * 100_000),
                      verifier)
    check([("deep payload", outcome, False)])
