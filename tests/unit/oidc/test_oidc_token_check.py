"""keyless.oidc.check_token: the client's local sanity check with one clear sentence."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from keyless.errors import Unauthenticated
from keyless.oidc import IdentityToken, check_token

NOW = 1_800_000_000


def token(**overrides: Any) -> str:
    claims = {
        "iss": "http://localhost:3000/oidc",
        "sub": "a@x.test",
        "email": "a@x.test",
        "aud": "sigstore",
        "iat": NOW,
        "exp": NOW + 600,
    }
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, "k" * 32)


def test_accepts_matching_token() -> None:
    checked = check_token(token(), issuers=["http://localhost:3000/oidc/"], clock=lambda: NOW)
    assert checked.identity == "a@x.test" and checked.expires_at == NOW + 600
    assert check_token(
        token(iss="https://oidc.eks.x.amazonaws.com/id/1"),
        issuers=["https://oidc.eks.*.amazonaws.com/id/*"],
        clock=lambda: NOW,
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (token(exp=NOW - 100), "expired at 2027-01-15 07:58:20 UTC"),
        (token(aud="other"), "audience"),
        (token(iss="https://evil.test"), "issued by 'https://evil.test'"),
        (token(iat=NOW + 600), "future"),
        (token(sub=None), "'sub'"),
        ("not-a-jwt", "not a JWT"),
        ("a.!!!.c", "base64url"),
    ],
)
def test_refusals_say_why(raw: str, message: str) -> None:
    with pytest.raises(Unauthenticated, match=message):
        check_token(raw, issuers=["http://localhost:3000/oidc"], clock=lambda: NOW)


def test_identity_falls_back_to_sub() -> None:
    assert IdentityToken.parse(token(email=None, sub="repo:o/r")).identity == "repo:o/r"
