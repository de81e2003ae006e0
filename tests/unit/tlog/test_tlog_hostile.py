"""Structurally hostile Rekor entries and searches found by the hostile-input audit.

Each case used to escape as a TypeError/UnicodeEncodeError (HTTP 500) or reach storage with a
value it cannot hold; each must now be an :class:`InvalidInput` (HTTP 400) naming the field.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.requests import Request

from keyless.errors import InvalidInput, TooLarge
from keyless.http.requests import parse_json_object
from keyless.services.tlog.kinds import (
    propose_v1,
    propose_v2,
    single_check_v1,
    single_check_v2,
)
from keyless.services.tlog.kinds.dsse import MAX_SIGNATURES
from keyless.services.tlog.routes import SEARCH_PAGE, _search_params
from keyless.services.tlog.service import MAX_SEARCH_VALUE, propose, query_from_params

_PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
)
HASHEDREKORD: dict[str, Any] = {
    "apiVersion": "0.0.1",
    "kind": "hashedrekord",
    "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": "00" * 32}},
        "signature": {
            "content": "AAAA",
            "publicKey": {"content": base64.b64encode(_PEM).decode()},
        },
    },
}


@pytest.mark.parametrize("algorithm", [["sha256"], {"sha256": 1}, None, 256, "md5"])
def test_hashedrekord_algorithm_of_any_type_is_a_named_400(algorithm: object) -> None:
    entry = copy.deepcopy(HASHEDREKORD)
    entry["spec"]["data"]["hash"]["algorithm"] = algorithm
    with pytest.raises(InvalidInput, match=r"spec\.data\.hash\.algorithm must be one of"):
        propose_v1(entry)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"email": "a\x00b@example.com"}, "email must not contain control characters"),
        ({"uri": "https://x/\x7f"}, "uri must not contain control characters"),
        ({"identity": "x" * (MAX_SEARCH_VALUE + 1)}, f"the limit is {MAX_SEARCH_VALUE}"),
        ({"digest": "sha256:zz"}, "hex digits"),
        ({"email": "a@b.c", "operator": "xor"}, "operator must be 'and' or 'or'"),
        ({"issuer": "https://x"}, "issuer must be given together with identity"),
    ],
)
def test_search_values_storage_cannot_hold_are_refused(
    params: dict[str, str], fragment: str
) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        query_from_params(params)


def test_a_plain_search_still_builds_its_keys() -> None:
    query = query_from_params({"email": "Alice@Example.com", "operator": "or"})
    assert query.operator == "or" and len(query.keys) == 1


@pytest.mark.parametrize(
    "body",
    [
        rb'{"a": "\ud800"}',  # lone high surrogate escape
        rb'{"\udc00": 1}',  # lone low surrogate as a key
        rb'{"a": ["x", "\uDFFF"]}',  # upper-case escape inside a list
        b'{"a": "\xed\xa0\x80"}',  # surrogate bytes (json.loads decodes with surrogatepass)
    ],
)
def test_json_bodies_with_lone_surrogates_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidInput, match="lone UTF-16 surrogate"):
        parse_json_object(body)


def test_json_bodies_with_surrogate_pairs_and_escaped_backslashes_pass() -> None:
    assert parse_json_object(rb'{"a": "\ud83d\ude00"}') == {"a": "\U0001f600"}
    assert parse_json_object(rb'{"a": "\\ud800"}') == {"a": "\\ud800"}


@pytest.mark.parametrize("count", [17, 3000])
def test_dsse_signature_count_is_capped_before_any_verification(count: int) -> None:
    """3000 signatures x 16 verifiers used to block the event loop for seconds (~40 s at the
    4 MiB body limit); the cap refuses them with 413 before one signature is checked."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    envelope = {
        "payload": base64.b64encode(b"{}").decode(),
        "payloadType": "application/vnd.in-toto+json",
        "signatures": [{"sig": base64.b64encode(b"\x30" * 70).decode(), "keyid": ""}] * count,
    }
    verifier = {"publicKey": {"rawBytes": base64.b64encode(der).decode()},
                "keyDetails": "PKIX_ECDSA_P256_SHA_256"}  # fmt: skip
    request = {"dsseRequestV002": {"envelope": envelope, "verifiers": [verifier] * 16}}
    with pytest.raises(TooLarge, match=f"has {count} signatures; the limit is {MAX_SIGNATURES}"):
        propose_v2(request)
    v1 = {"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
        "envelope": json.dumps(envelope),
        "verifiers": [base64.b64encode(_PEM).decode()]}}}  # fmt: skip
    with pytest.raises(TooLarge, match=f"has {count} signatures"):
        propose_v1(v1)


def _request(query: bytes) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query,
                    "headers": []})  # fmt: skip


def test_search_pages_are_capped_because_each_result_carries_a_proof() -> None:
    params, after, limit = _search_params(_request(b"email=a%40b.c&limit=100000&after=5"))
    assert (params, after, limit) == ({"email": "a@b.c"}, 5, SEARCH_PAGE)
    assert _search_params(_request(b"email=a%40b.c"))[2] == SEARCH_PAGE
    assert _search_params(_request(b"email=a%40b.c&limit=7"))[2] == 7
    with pytest.raises(InvalidInput, match="'limit' must be an integer from 1"):
        _search_params(_request(b"email=a%40b.c&limit=0"))
    with pytest.raises(InvalidInput, match="email is repeated"):
        _search_params(_request(b"email=a%40b.c&email=x%40y.z"))


async def test_large_entries_are_verified_off_the_event_loop() -> None:
    """A 16 x 16 DSSE over megabytes costs over a second of CPU: big requests are verified in a
    worker thread so that the event loop keeps answering everyone else."""
    seen: list[int] = []

    def validator(request: dict[str, Any]) -> Any:
        seen.append(threading.get_ident())
        return request

    await propose(validator, {}, offload=True)
    await propose(validator, {}, offload=False)
    assert seen[0] != threading.get_ident() and seen[1] == threading.get_ident()


def test_only_single_signature_requests_may_be_verified_on_the_event_loop() -> None:
    """A hashedrekord is one signature check (a thread hop costs as much); anything that can
    hold many signatures or keys (DSSE, in-toto) or an unknown shape is verified off the loop."""
    assert single_check_v2({"hashedRekordRequestV002": {}})
    assert not single_check_v2({"dsseRequestV002": {}})
    assert not single_check_v2({"hashedRekordRequestV002": {}, "dsseRequestV002": {}})
    assert not single_check_v2({})
    assert single_check_v1({"kind": "hashedrekord", "apiVersion": "0.0.1", "spec": {}})
    assert not single_check_v1({"kind": "dsse", "apiVersion": "0.0.1", "spec": {}})
    assert not single_check_v1({"kind": "intoto", "apiVersion": "0.0.2", "spec": {}})
    assert not single_check_v1({"kind": {"a": None}, "apiVersion": "0.0.1"})  # unhashable
