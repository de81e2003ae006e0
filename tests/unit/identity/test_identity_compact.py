"""Compact JWS grammar, the one normalisation point, and the token's replay identity."""

from __future__ import annotations

import base64

import pytest
from test_identity_verifier import ISSUER, FakeIssuer, make_verifier

from keyless.errors import Unauthenticated
from keyless.identity import IssuerConfig, normalize_token, parse_compact_jws, token_id
from keyless.identity.compact import decode_compact_jws


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer()


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _high_s(token: str) -> str:
    head, payload, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    s = int.from_bytes(raw[32:], "big")
    flipped = raw[:32] + (P256_ORDER - s).to_bytes(32, "big")
    return f"{head}.{payload}.{base64.urlsafe_b64encode(flipped).rstrip(b'=').decode()}"


@pytest.mark.parametrize(
    "token",
    [
        "a.b", "a.b.c.d", ".b.c", "a..c", "a.b.c\n", " a.b.c", "a .b.c", "YQ==.YQ.YQ",
        "a+b.YQ.YQ", "YR.YQ.YQ",  # 'YR' decodes like 'YQ' (unused bits set): not canonical
        "Y.YQ.YQ",  # a base64url length of 1 mod 4 is no encoding at all
    ],
)  # fmt: skip
def test_strict_grammar_refuses(token: str) -> None:
    with pytest.raises(Unauthenticated, match="compact JWS"):
        parse_compact_jws(token)


def test_signing_input_and_normalisation() -> None:
    assert parse_compact_jws("YQ.YWI.YWJj") == "YQ.YWI"
    assert parse_compact_jws("YQ.YWI.") == "YQ.YWI"  # unsecured: refused later by its alg
    assert normalize_token(" \tYQ.YWI.YWJj\r\n") == "YQ.YWI.YWJj"
    with pytest.raises(Unauthenticated):
        normalize_token("YQ.YWI.YWJj\x0b")  # only HTTP/JSON whitespace is stripped


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_decode_gives_header_claims_and_signing_input_once() -> None:
    head, body = _b64(b'{"alg":"ES256","kid":"k"}'), _b64(b'{"iss":"https://i","n":1}')
    jws = decode_compact_jws(f"{head}.{body}.YWJj")
    assert jws.header == {"alg": "ES256", "kid": "k"}
    assert jws.claims == {"iss": "https://i", "n": 1}
    assert jws.signing_input == f"{head}.{body}" == parse_compact_jws(f"{head}.{body}.YWJj")
    with pytest.raises(Unauthenticated, match="compact JWS"):
        decode_compact_jws(f"{head}.{body}.YWJj ")


@pytest.mark.parametrize(
    ("header", "payload", "what"),
    [
        (b"[]", b"{}", "header is not a JSON object"),
        (b"{}", b'"claims"', "payload is not a JSON object"),
        (b"{", b"{}", "invalid header"),
        (b"{}", b"\xff{}", "invalid payload"),
        (b"{}", b"[" * 100_000, "invalid payload"),  # nesting too deep: refused, not a crash
    ],
)
def test_decode_refuses_what_is_not_a_json_object(header: bytes, payload: bytes, what: str) -> None:
    with pytest.raises(Unauthenticated, match=f"cannot be parsed: .*{what}"):
        decode_compact_jws(f"{_b64(header)}.{_b64(payload)}.YWJj")


def test_token_id_is_unambiguous() -> None:
    with_jti = {"iss": ISSUER, "sub": "s", "iat": 1, "jti": "j"}
    assert token_id(with_jti, "h.p") == token_id(with_jti, "other.input")
    assert token_id({**with_jti, "iss": ISSUER + "/x"}, "h.p") != token_id(with_jti, "h.p")
    without = {"iss": ISSUER, "sub": "s", "iat": 1}
    assert token_id(without, "h.p") != token_id(without, "h.q")
    assert token_id(without, "h.p") != token_id({**without, "jti": ""}, "h.q")


async def test_verifier_gives_equivalent_tokens_one_id(issuer: FakeIssuer) -> None:
    verifier = make_verifier([IssuerConfig(ISSUER)], issuer)
    token = issuer.token()
    first = await verifier.verify(token)
    assert (await verifier.verify(_high_s(token))).token_id == first.token_id
    assert (await verifier.verify(issuer.token(iat=first.claims["iat"] - 1))).token_id != (
        first.token_id
    )
    with_jti = await verifier.verify(issuer.token(jti="abc"))
    assert with_jti.token_id == (await verifier.verify(issuer.token(jti="abc", sub="x"))).token_id


async def test_verifier_does_not_strip(issuer: FakeIssuer) -> None:
    """Whitespace is removed in one place (normalize_token at the edge), not here too."""
    verifier = make_verifier([IssuerConfig(ISSUER)], issuer)
    with pytest.raises(Unauthenticated, match="compact JWS"):
        await verifier.verify(issuer.token() + "\n")
