"""Rekor entry kinds (hashedrekord, dsse, intoto; v1 ProposedEntry and v2 CreateEntryRequest)
fed mutations of the exact requests real clients send (tests/unit/tlog/tlog_support.py): JSON
edits and edits of the bytes inside base64 fields (PEM certificates, keys, signatures, DSSE).

Invariant: a request is either accepted (a canonical JSON leaf) or refused with InvalidInput,
TooLarge or EntrySignatureError — never another exception — quickly.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from fuzz_support import FUZZ, mutated_request, only, value_of
from hypothesis import given
from hypothesis import strategies as st
from tlog_support import (
    CA,
    Signer,
    dsse_over_hashedrekord_v2,
    dsse_v1,
    dsse_v2,
    hashedrekord_v1,
    hashedrekord_v2,
    intoto_v1,
    statement,
)

from keyless.errors import InvalidInput, TooLarge
from keyless.services.tlog.kinds import propose_v1, propose_v2
from keyless.services.tlog.kinds.common import EntrySignatureError

REFUSALS = (InvalidInput, TooLarge, EntrySignatureError)


@functools.cache
def _seeds() -> tuple[list[Any], list[Any]]:
    ca = CA.create()
    signers = [Signer.create(ca), Signer.create(ca, "p384"), Signer.create(ca, "rsa2048")]
    v1: list[Any] = []
    v2: list[Any] = []
    for signer in signers:
        v1 += [hashedrekord_v1(signer, b"artifact"), dsse_v1(signer, statement()),
               intoto_v1(signer, statement())]
        v2 += [hashedrekord_v2(signer, b"artifact"), dsse_v2(signer, statement())]
    ed = Signer.create(ca, "ed25519")
    v1 += [dsse_v1(ed, statement()), intoto_v1(ed, statement())]
    v2.append(dsse_v2(ed, statement()))
    v2.append(dsse_over_hashedrekord_v2(signers[0], statement()))
    return v1, v2


def _accepted(proposed: Any) -> None:
    assert isinstance(json.loads(proposed.body), dict)


def test_seeds_are_accepted() -> None:
    v1, v2 = _seeds()
    for entry in v1:
        _accepted(propose_v1(entry))
    for request in v2:
        _accepted(propose_v2(request))


@FUZZ
@given(entry=st.deferred(lambda: mutated_request(_seeds()[0])))
def test_v1_entries_raise_only_refusals(entry: Any) -> None:
    entry = value_of(entry)
    if not isinstance(entry, dict):
        entry = {"kind": "hashedrekord", "apiVersion": "0.0.1", "spec": entry}
    with only(*REFUSALS):
        _accepted(propose_v1(entry))


@FUZZ
@given(request=st.deferred(lambda: mutated_request(_seeds()[1])))
def test_v2_requests_raise_only_refusals(request: Any) -> None:
    request = value_of(request)
    if not isinstance(request, dict):
        request = {"hashedRekordRequestV002": request}
    with only(*REFUSALS):
        _accepted(propose_v2(request))


# --------------------------------------------------------------------------------------------
# Regressions found by the properties above: hostile names were copied whole into the 400.

HUGE = "A" * 70_000


def _message(call: Any) -> str:
    try:
        call()
    except InvalidInput as exc:
        return str(exc)
    raise AssertionError("accepted")


def test_unsupported_kind_and_version_are_quoted_shortened() -> None:
    for kind, version in ((HUGE, "0.0.1"), ("hashedrekord", HUGE)):
        message = _message(lambda k=kind, v=version: propose_v1(
            {"kind": k, "apiVersion": v, "spec": {}}))
        assert len(message) < 500, message[:100]


def test_unknown_key_details_are_quoted_shortened() -> None:
    request = json.loads(json.dumps(_seeds()[1][0]))
    request["hashedRekordRequestV002"]["signature"]["verifier"]["keyDetails"] = HUGE
    assert len(_message(lambda: propose_v2(request))) < 500


def test_duplicate_field_names_are_quoted_shortened() -> None:
    name = "a_" + "b" * 70_000
    message = _message(lambda: propose_v2({name: 1, "a" + "B" + "b" * 69_999: 2}))
    assert len(message) < 500, message[:100]


def test_unknown_field_names_are_quoted_shortened() -> None:
    entry = json.loads(json.dumps(_seeds()[0][0]))
    for extra in ({HUGE: 1}, {f"k{i}": 1 for i in range(5000)}):
        spec = {**entry["spec"], **extra}
        message = _message(lambda s=spec: propose_v1({**entry, "spec": s}))
        assert len(message) < 500, message[:100]


def test_unknown_v2_request_fields_are_quoted_shortened() -> None:
    request = json.loads(json.dumps(_seeds()[1][0]))
    for extra in ({HUGE: 1}, {f"k{i}": 1 for i in range(5000)}):
        message = _message(lambda e=extra: propose_v2({**request, **e}))
        assert len(message) < 500, message[:100]


def test_certificate_with_an_invalid_public_key_is_invalid_input() -> None:
    """cryptography reads a certificate's key lazily: a point off the curve raised ValueError
    from cert.public_key() after the PEM had loaded (a 500 over HTTP)."""
    import base64

    from cryptography.hazmat.primitives.serialization import Encoding
    from tlog_support import pem

    entry = json.loads(json.dumps(_seeds()[0][0]))  # hashedrekord v1, P-256 certificate
    signer_pem = base64.b64decode(entry["spec"]["signature"]["publicKey"]["content"])
    from cryptography import x509

    der = x509.load_pem_x509_certificate(signer_pem).public_bytes(Encoding.DER)
    point = der.index(b"\x03\x42\x00\x04") + 4
    broken = der[:point] + bytes([der[point] ^ 1]) + der[point + 1:]
    text = pem(x509.load_der_x509_certificate(broken))
    entry["spec"]["signature"]["publicKey"]["content"] = base64.b64encode(text).decode()
    _message(lambda: propose_v1(entry))
