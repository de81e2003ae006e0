"""Hostile content that a log (or a signer) signs validly: every earlier check passes, so the
deeper ones must cope (hostile_log.py). The original of each kind verifies first."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hostile_log import ARTIFACT, HOST, OwnLog, b64, statement
from hostile_util import (
    Json,
    Outcome,
    check,
    dumps,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyless.errors import VerificationError
from keyless.formats.note import CheckpointError
from keyless.verify.errors import (
    ArtifactMismatchError,
    DSSEError,
    LogEntryMismatchError,
    NotEnoughVerifiedTimesError,
    UntrustedLogError,
)
from keyless.verify.verifier import Verifier

LOG = OwnLog()
_verifier: list[Verifier] = []
DIGEST = hashlib.sha256(ARTIFACT).digest()
IN_TOTO = "https://in-toto.io/Statement/v1"
DEEP = b"[" * 100_000 + b"]" * 100_000


def verify(bundle: Json | bytes) -> Outcome:
    if not _verifier:
        _verifier.append(LOG.verifier())
    return LOG.run(bundle, _verifier[0])


def expect(bundle: Json | bytes, error: type[VerificationError] | tuple[type, ...],
           what: str = "variant") -> None:
    outcome = verify(bundle)
    check([(what, outcome, False)])
    assert isinstance(outcome.error, error), f"{what}: {outcome.describe()}"


def accept(bundle: Json | bytes) -> None:
    outcome = verify(bundle)
    assert outcome.status == "ok", outcome.describe()


def test_own_log_bundles_verify() -> None:
    accept(LOG.message_bundle())
    accept(LOG.dsse_bundle())


# --- the logged body (hashedrekord 0.0.1) ------------------------------------------------------


def _good_body() -> dict[str, Any]:
    return LOG.message_body(LOG.message_signature(), DIGEST)


def _set(path: tuple[str, ...], value: Json) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        body = _good_body()
        node: Any = body
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return body
    return build


PK = ("spec", "signature", "publicKey", "content")
OTHER_KEY = b64(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

BODIES: dict[str, Callable[[], Json | bytes]] = {
    "empty": lambda: b"",
    "null": lambda: b"null",
    "array": lambda: b"[]",
    "string": lambda: b'"hashedrekord"',
    "empty object": lambda: b"{}",
    "not UTF-8": lambda: b"\xff\xfe",
    "NaN": lambda: b'{"apiVersion": NaN}',
    "5000-digit number": lambda: b'{"apiVersion": ' + b"9" * 5000 + b"}",
    "lone surrogate": lambda: b'{"apiVersion": "\\ud800"}',
    "spec is a list": _set(("spec",), []),
    "signature is a string": _set(("spec", "signature"), "x"),
    "publicKey.content is a number": _set(PK, 1),
    "publicKey.content is a list": _set(PK, []),
    "publicKey.content is an object": _set(PK, {}),
    "publicKey.content is not base64": _set(PK, "!!"),
    "publicKey.content is not PEM": _set(PK, "AAAA"),
    "publicKey.content is a broken CERTIFICATE": _set(PK, b64(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")),
    "publicKey.content is a broken PUBLIC KEY": _set(PK, b64(
        b"-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n")),
    "publicKey.content is 1 MB": _set(PK, "A" * (1 << 20)),
    "publicKey.content has a lone surrogate": _set(PK, "\ud800"),
    "another key": _set(PK, OTHER_KEY),
    "hash in upper case": _set(("spec", "data", "hash", "value"), DIGEST.hex().upper()),
    "hash algorithm sha512": _set(("spec", "data", "hash", "algorithm"), "sha512"),
    "extra spec field": _set(("spec", "extra"), 1),
    "apiVersion 0.0.2": _set(("apiVersion",), "0.0.2"),
    "kind rekord": _set(("kind",), "rekord"),
    "signature of another artifact": _set(("spec", "signature", "content"),
                                          b64(LOG.signer.sign(b"x", ec.ECDSA(hashes.SHA256())))),
}


@pytest.mark.parametrize("name", list(BODIES))
def test_hostile_logged_body(name: str) -> None:
    expect(LOG.message_bundle(body=BODIES[name]()), LogEntryMismatchError, name)


@pytest.mark.parametrize(
    "where", [pytest.param("top"),
              pytest.param("field")]
)
def test_deeply_nested_logged_body(where: str) -> None:
    body = DEEP if where == "top" else b'{"apiVersion": ' + DEEP + b"}"
    expect(LOG.message_bundle(body=body), LogEntryMismatchError, f"deep body ({where})")


def test_logged_body_spellings_that_are_the_same_entry() -> None:
    """Same JSON value (key order, duplicate keys last-wins, PEM wrapping): accepted."""
    good = _good_body()
    accept(LOG.message_bundle(body=dumps(good)[:-1] + b', "apiVersion": "0.0.1"}'))
    pem = base64.b64decode(good["spec"]["signature"]["publicKey"]["content"]).split(b"\n")
    unwrapped = pem[0] + b"\n" + b"".join(pem[1:-2]) + b"\n" + pem[-2] + b"\n"
    accept(LOG.message_bundle(body=_set(PK, b64(unwrapped))()))
    accept(LOG.message_bundle(body=dict(reversed(list(good.items())))))


# --- the signed integrated time and log index --------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(253402300800, VerificationError, id="year-10000"),
        pytest.param(2**62, VerificationError, id="2^62"),
        pytest.param(2**63 - 1, VerificationError, id="int64-max"),
        pytest.param(0, NotEnoughVerifiedTimesError, id="zero"),
        pytest.param(1, UntrustedLogError, id="1970"),
        pytest.param(1_577_836_799, UntrustedLogError, id="before-the-log"),
    ],
)
def test_signed_integrated_time(value: int, error: type[VerificationError]) -> None:
    expect(LOG.message_bundle(integrated_time=value), error, f"integratedTime {value}")


@pytest.mark.parametrize("value", [0, 2**63 - 1])
def test_signed_log_index_extremes(value: int) -> None:
    accept(LOG.message_bundle(log_index=value))


# --- the signed checkpoint ---------------------------------------------------------------------


def _root() -> bytes:
    return hashlib.sha256(b"\x00" + dumps(_good_body())).digest()


def test_signed_checkpoint_content() -> None:
    root = _root()
    witnesses = "".join(f"\u2014 w{i} {b64(bytes(68))}\n" for i in range(99))
    for what, envelope in [
        ("unicode extension", LOG.checkpoint(1, root, extensions=("ünïcødé \u2014",))),
        ("10000 extensions", LOG.checkpoint(1, root, extensions=tuple(f"e{i}" for i in
                                                                       range(10_000)))),
        ("origin without a tree ID", LOG.checkpoint(1, root, origin=HOST)),
        ("99 unknown signers", LOG.checkpoint(1, root, extra_lines=witnesses)),
    ]:
        outcome = verify(LOG.message_bundle(body=_good_body(), checkpoint=envelope))
        check([(what, outcome, True)])
    for what, envelope in [
        ("another origin", LOG.checkpoint(1, root, origin="evil.test - 1")),
        ("size 2", LOG.checkpoint(2, root)),
        ("size 2^64-1", LOG.checkpoint(2**64 - 1, root)),
        ("another root", LOG.checkpoint(1, bytes(32))),
        ("100 unknown signers", LOG.checkpoint(1, root, extra_lines=witnesses + witnesses[:74])),
    ]:
        expect(LOG.message_bundle(body=_good_body(), checkpoint=envelope), CheckpointError, what)


# --- the signed DSSE payload -------------------------------------------------------------------


def _payload(value: Json) -> bytes:
    return dumps(value)


PAYLOADS: dict[str, tuple[bytes, type[VerificationError]]] = {
    "not JSON": (b"not json", DSSEError),
    "not UTF-8": (b"\xff\xfe\xfd", DSSEError),
    "array": (b"[]", DSSEError),
    "NaN type": (b'{"_type": NaN}', DSSEError),
    "5000-digit number": (b'{"_type": ' + b"9" * 5000 + b"}", DSSEError),
    "lone surrogate type": (b'{"_type": "\\ud800", "subject": []}', DSSEError),
    "statement v2 type": (_payload({**statement(DIGEST), "_type": IN_TOTO + "x"}), DSSEError),
    "subject is a string": (_payload({"_type": IN_TOTO, "subject": "x"}), DSSEError),
    "subject missing": (_payload({"_type": IN_TOTO}), DSSEError),
    "subjects of wrong types": (_payload({"_type": IN_TOTO, "subject": [1, None, [], "x"]}),
                                ArtifactMismatchError),
    "digest is a list": (_payload({"_type": IN_TOTO, "subject": [{"digest": []}]}),
                         ArtifactMismatchError),
    "sha256 is a number": (_payload({"_type": IN_TOTO, "subject": [{"digest": {"sha256": 1}}]}),
                           ArtifactMismatchError),
    "sha256 is null": (_payload({"_type": IN_TOTO, "subject": [{"digest": {"sha256": None}}]}),
                       ArtifactMismatchError),
    "another artifact": (_payload(statement(bytes(32))), ArtifactMismatchError),
    "10000 other subjects": (_payload({**statement(bytes(32)),
                                       "subject": [{"digest": {"sha256": "0" * 64}}] * 10_000}),
                             ArtifactMismatchError),
}


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_hostile_signed_dsse_payload(name: str) -> None:
    payload, error = PAYLOADS[name]
    expect(LOG.dsse_bundle(payload=payload), error, name)


@pytest.mark.parametrize(
    "where", [pytest.param("top"),
              pytest.param("subject")]
)
def test_deeply_nested_signed_dsse_payload(where: str) -> None:
    prefix = b'{"_type": "%s", "subject": ' % IN_TOTO.encode()
    payload = DEEP if where == "top" else prefix + DEEP + b"}"
    expect(LOG.dsse_bundle(payload=payload), DSSEError, f"deep payload ({where})")


@pytest.mark.parametrize(
    "payload_type", ["application/json", "x",
                     pytest.param("A" * (1 << 20), id="1MB")]
)
def test_signed_dsse_payload_type_other_than_in_toto(payload_type: str) -> None:
    expect(LOG.dsse_bundle(payload_type=payload_type), DSSEError, payload_type[:20])


def test_signed_dsse_payload_spellings_that_are_accepted() -> None:
    """Upper-case hex, Statement v0.1, UTF-16 JSON, a large predicate: still the subject."""
    accept(LOG.dsse_bundle(payload=_payload(
        {"_type": IN_TOTO, "subject": [{"digest": {"sha256": DIGEST.hex().upper()}}]})))
    accept(LOG.dsse_bundle(payload=_payload({**statement(DIGEST),
                                             "_type": "https://in-toto.io/Statement/v0.1"})))
    accept(LOG.dsse_bundle(payload=dumps(statement(DIGEST)).decode().encode("utf-16")))
    accept(LOG.dsse_bundle(payload=_payload({**statement(DIGEST), "predicate": "A" * (4 << 20)})))


# --- the logged DSSE body (dsse 0.0.1) ---------------------------------------------------------


def _dsse_body(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    bundle = LOG.dsse_bundle()
    body: dict[str, Any] = json.loads(base64.b64decode(
        bundle["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"]))
    change(body)
    return body


DSSE_BODIES: dict[str, Callable[[dict[str, Any]], None]] = {
    "signatures missing": lambda b: b["spec"].pop("signatures"),
    "signatures is a dict": lambda b: b["spec"].__setitem__("signatures", {"a": 1}),
    "signatures is a string": lambda b: b["spec"].__setitem__("signatures", "ab"),
    "two signatures": lambda b: b["spec"]["signatures"].append(b["spec"]["signatures"][0]),
    "signature entry is a string": lambda b: b["spec"].__setitem__("signatures", ["x"]),
    "signature is null": lambda b: b["spec"]["signatures"][0].__setitem__("signature", None),
    "signature is an object": lambda b: b["spec"]["signatures"][0].__setitem__("signature", {}),
    "verifier is a number": lambda b: b["spec"]["signatures"][0].__setitem__("verifier", 1),
    "verifier is an object": lambda b: b["spec"]["signatures"][0].__setitem__("verifier", {}),
    "verifier is another key": lambda b: b["spec"]["signatures"][0].__setitem__("verifier",
                                                                                OTHER_KEY),
    "payloadHash is a list": lambda b: b["spec"].__setitem__("payloadHash", []),
    "payloadHash of another payload": lambda b: b["spec"]["payloadHash"].__setitem__("value",
                                                                                     "0" * 64),
    "spec is a list": lambda b: b.__setitem__("spec", []),
    "kind hashedrekord": lambda b: b.__setitem__("kind", "hashedrekord"),
}


@pytest.mark.parametrize("name", list(DSSE_BODIES))
def test_hostile_logged_dsse_body(name: str) -> None:
    expect(LOG.dsse_bundle(body=_dsse_body(DSSE_BODIES[name])), LogEntryMismatchError, name)


# --- the logged intoto 0.0.2 body --------------------------------------------------------------


def _intoto_body(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    payload = dumps(statement(DIGEST))
    body = LOG.intoto_body(payload, LOG.dsse_signature(payload))
    change(body)
    return body


def _env(body: dict[str, Any]) -> dict[str, Any]:
    env: dict[str, Any] = body["spec"]["content"]["envelope"]
    return env


INTOTO_BODIES: dict[str, Callable[[dict[str, Any]], None]] = {
    "content is a list": lambda b: b["spec"].__setitem__("content", []),
    "envelope is a list": lambda b: b["spec"]["content"].__setitem__("envelope", []),
    "envelope is a string": lambda b: b["spec"]["content"].__setitem__("envelope", "x"),
    "payload base64-encoded once": lambda b: _env(b).__setitem__(
        "payload", b64(dumps(statement(DIGEST)))),
    "payload is a number": lambda b: _env(b).__setitem__("payload", 5),
    "payload is not ASCII": lambda b: _env(b).__setitem__("payload", "\u00e9"),
    "payload has a lone surrogate": lambda b: _env(b).__setitem__("payload", "\ud800"),
    "signatures is an object": lambda b: _env(b).__setitem__("signatures", {"sig": "x"}),
    "signatures is a string": lambda b: _env(b).__setitem__("signatures", "abc"),
    "signature entry is a string": lambda b: _env(b).__setitem__("signatures", ["x"]),
    "signature entry is a list": lambda b: _env(b).__setitem__("signatures", [[]]),
    "sig is a number": lambda b: _env(b)["signatures"][0].__setitem__("sig", 1),
    "publicKey missing": lambda b: _env(b)["signatures"][0].pop("publicKey"),
    "publicKey is a number": lambda b: _env(b)["signatures"][0].__setitem__("publicKey", 1),
    "publicKey is another key": lambda b: _env(b)["signatures"][0].__setitem__("publicKey",
                                                                              OTHER_KEY),
    "signature twice": lambda b: _env(b)["signatures"].append(_env(b)["signatures"][0]),
    "no signature": lambda b: _env(b).__setitem__("signatures", []),
    "payloadType is a list": lambda b: _env(b).__setitem__("payloadType", []),
    "payloadHash is a list": lambda b: b["spec"]["content"].__setitem__("payloadHash", []),
    "apiVersion 0.0.1": lambda b: b.__setitem__("apiVersion", "0.0.1"),
}


def test_own_log_intoto_bundle_verifies() -> None:
    accept(LOG.dsse_bundle(intoto=True))


@pytest.mark.parametrize("name", list(INTOTO_BODIES))
def test_hostile_logged_intoto_body(name: str) -> None:
    bundle = LOG.dsse_bundle(intoto=True, body=_intoto_body(INTOTO_BODIES[name]))
    expect(bundle, LogEntryMismatchError, name)


# --- properties: any validly logged body / signed payload --------------------------------------

_TEXT = st.one_of(st.text(max_size=20), st.sampled_from(["\ud800", "0.0.1", "hashedrekord"]))
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner,
                                                                         max_size=3)),
    max_leaves=10,
)
_SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(kind=st.sampled_from(["hashedrekord", "dsse", "intoto"]), body=_JSON,
       graft=st.booleans())
def test_any_logged_body_is_rejected_cleanly(kind: str, body: Json, graft: bool) -> None:
    """Any JSON value as the logged body (or grafted into the genuine one at ``spec``)."""
    if graft:
        genuine = (_good_body() if kind == "hashedrekord" else
                   _dsse_body(lambda b: None) if kind == "dsse" else _intoto_body(lambda b: None))
        body = {**genuine, "spec": body}
    raw = dumps(body)  # bytes: None must not select the genuine body
    bundle = (LOG.message_bundle(body=raw) if kind == "hashedrekord"
              else LOG.dsse_bundle(body=raw, intoto=kind == "intoto"))
    check([(f"{kind} body {body!a:.100}", verify(bundle), False)])


@_SETTINGS
@given(payload=st.one_of(st.binary(max_size=200), _JSON.map(dumps)))
def test_any_signed_dsse_payload_is_rejected_cleanly(payload: bytes) -> None:
    check([(f"payload {payload!a:.100}", verify(LOG.dsse_bundle(payload=payload)), False)])


_LINE = st.text(st.characters(exclude_characters="\n"), max_size=30)


@_SETTINGS
@given(origin=st.one_of(_LINE, _LINE.map(lambda s: f"{HOST} - {s}"), _LINE.map(lambda s: HOST + s)),
       extensions=st.lists(_LINE, max_size=4), size=st.sampled_from([1, 1, 0, 2, 2**64 - 1]))
def test_any_validly_signed_checkpoint_text(origin: str, extensions: list[str], size: int) -> None:
    """The log signs whatever note text it likes: accepted only when it names this log's origin
    and the proof's tree; otherwise a clean rejection."""
    root = _root()
    try:
        envelope = LOG.checkpoint(size, root, origin=origin, extensions=tuple(extensions))
    except UnicodeEncodeError:
        return  # a lone surrogate cannot even be signed as UTF-8
    outcome = verify(LOG.message_bundle(body=_good_body(), checkpoint=envelope))
    host_matches = origin.split(" - ", 1)[0] == HOST
    may_pass = host_matches and size == 1 and all(extensions)
    check([(f"checkpoint {envelope!a:.120}", outcome, may_pass)])
