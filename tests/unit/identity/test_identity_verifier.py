"""IdentityVerifier against a fake issuer served through httpx.MockTransport (no network)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from keyless.errors import Unauthenticated, Unavailable
from keyless.identity import IdentityVerifier, IssuerConfig
from keyless.identity.jwks import JwksCache

ISSUER = "https://issuer.test"
NOW = 1_800_000_000.0


class FakeIssuer:
    """A discovery document + JWKS whose keys can be rotated, counting fetches."""

    def __init__(self, issuer: str = ISSUER) -> None:
        self.issuer = issuer
        self.keys: dict[str, Any] = {}
        self.jwks_fetches = 0
        self.fail = False
        self.add_key("k1")

    def add_key(self, kid: str, key: Any = None) -> Any:
        key = key or ec.generate_private_key(ec.SECP256R1())
        self.keys[kid] = key
        return key

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid, key in self.keys.items():
            if isinstance(key, rsa.RSAPrivateKey):
                jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            else:
                jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
            jwk["kid"] = kid
            out.append(jwk)
        return {"keys": out}

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.fail:
            return httpx.Response(503)
        url = str(request.url)
        if url == self.issuer + "/.well-known/openid-configuration":
            return httpx.Response(
                200, json={"issuer": self.issuer, "jwks_uri": self.issuer + "/keys"}
            )
        if url == self.issuer + "/keys":
            self.jwks_fetches += 1
            return httpx.Response(200, json=self.jwks())
        return httpx.Response(404)

    def token(self, kid: str = "k1", alg: str | None = None, **overrides: Any) -> str:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": "sigstore",
            "sub": "user-1",
            "email": "alice@example.com",
            "email_verified": True,
            "iat": int(NOW) - 10,
            "exp": int(NOW) + 300,
        }
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        key = self.keys[kid]
        alg = alg or ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer()


def make_verifier(
    issuers: list[IssuerConfig], *fakes: FakeIssuer, clock: Callable[[], float] = lambda: NOW
) -> IdentityVerifier:
    def route(request: httpx.Request) -> httpx.Response:
        for fake in fakes:
            if str(request.url).startswith(fake.issuer + "/"):
                return fake.handler(request)
        return httpx.Response(404)

    http = httpx.AsyncClient(transport=httpx.MockTransport(route))
    return IdentityVerifier(issuers, http, clock)


async def test_accepts_valid_email_token(issuer: FakeIssuer) -> None:
    verifier = make_verifier([IssuerConfig(ISSUER)], issuer)
    identity = await verifier.verify(issuer.token())
    assert identity.subject_alternative_name == "alice@example.com"
    assert identity.san_type == "email"
    assert identity.pop_subject == "alice@example.com"
    assert identity.issuer == ISSUER
    assert identity.issuer_type == "email"
    assert identity.expires_at == int(NOW) + 300
    assert identity.claims["sub"] == "user-1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _tamper_payload(token: str, **changes: Any) -> str:
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims.update(changes)
    return f"{head}.{_b64(json.dumps(claims).encode())}.{sig}"


def _alg_none(token: str) -> str:
    _, payload, _ = token.split(".")
    return f"{_b64(json.dumps({'alg': 'none', 'kid': 'k1'}).encode())}.{payload}."


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda f: f.token(exp=int(NOW) - 3600), "expired"),
        (lambda f: f.token(aud="other"), "audience"),
        (lambda f: f.token(aud=None), "'aud'"),
        (lambda f: f.token(iss="https://evil.test"), "not trusted"),
        (lambda f: f.token(iat=int(NOW) + 3600), "future"),
        (lambda f: f.token(nbf=int(NOW) + 3600), "not yet valid"),
        (lambda f: f.token(sub=None), "'sub'"),
        (lambda f: f.token(iat=None), "'iat'"),
        (lambda f: f.token(email_verified=None), "not verified"),
        (lambda f: f.token(email_verified=False), "not verified"),
        (lambda f: f.token(email=None), "'email'"),
        (lambda f: _tamper_payload(f.token(), email="mallory@example.com"), "signature"),
        (lambda f: _alg_none(f.token()), "not allowed"),
        (lambda f: jwt.encode({"iss": ISSUER}, "s" * 32, algorithm="HS256"), "not allowed"),
        (lambda f: f.token().replace(".", "", 1), "JWT"),
        (lambda f: "", "no identity token"),
    ],
)
async def test_refuses_altered_tokens(
    issuer: FakeIssuer, make: Callable[[FakeIssuer], str], message: str
) -> None:
    verifier = make_verifier([IssuerConfig(ISSUER)], issuer)
    with pytest.raises(Unauthenticated, match=message):
        await verifier.verify(make(issuer))


async def test_string_email_verified_accepted(issuer: FakeIssuer) -> None:
    verifier = make_verifier([IssuerConfig(ISSUER)], issuer)
    assert (await verifier.verify(issuer.token(email_verified="true"))).pop_subject


async def test_unknown_kid_refetches_once_then_rate_limits(issuer: FakeIssuer) -> None:
    now = [NOW]
    verifier = make_verifier([IssuerConfig(ISSUER)], issuer, clock=lambda: now[0])
    await verifier.verify(issuer.token())
    assert issuer.jwks_fetches == 1
    issuer.add_key("k2")  # rotation: a new key appears after the cache was filled
    with pytest.raises(Unauthenticated, match="unknown"):
        await verifier.verify(issuer.token(kid="k2"))  # within the refresh interval
    assert issuer.jwks_fetches == 1
    now[0] += 11
    await verifier.verify(issuer.token(kid="k2"))
    assert issuer.jwks_fetches == 2
    forged = FakeIssuer()
    forged.keys = {"k9": ec.generate_private_key(ec.SECP256R1())}
    for _ in range(5):
        with pytest.raises(Unauthenticated, match="unknown"):
            await verifier.verify(forged.token(kid="k9"))
    assert issuer.jwks_fetches == 2  # rate limited: no refetch within the interval


async def test_stale_keys_survive_issuer_outage(issuer: FakeIssuer) -> None:
    now = [NOW]
    verifier = make_verifier([IssuerConfig(ISSUER)], issuer, clock=lambda: now[0])
    await verifier.verify(issuer.token())
    issuer.fail = True
    now[0] += 400  # past the JWKS ttl; token still valid within leeway
    token = issuer.token(iat=int(now[0]), exp=int(now[0]) + 60)
    assert (await verifier.verify(token)).subject_alternative_name == "alice@example.com"
    fresh = make_verifier([IssuerConfig(ISSUER)], issuer)
    with pytest.raises(Unavailable):
        await fresh.verify(issuer.token())


async def test_rsa_and_alg_key_mismatch(issuer: FakeIssuer) -> None:
    issuer.add_key("r1", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    verifier = make_verifier([IssuerConfig(ISSUER)], issuer)
    assert (await verifier.verify(issuer.token(kid="r1", alg="PS256"))).pop_subject
    with pytest.raises(Unauthenticated, match="no key for algorithm ES384"):
        await verifier.verify(
            jwt.encode(
                {"iss": ISSUER},
                ec.generate_private_key(ec.SECP384R1()),
                algorithm="ES384",
                headers={"kid": "k1"},
            )
        )


async def test_discovery_issuer_must_match() -> None:
    fake = FakeIssuer()
    original = fake.handler

    def lying(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("openid-configuration"):
            return httpx.Response(200, json={"issuer": "https://x.test", "jwks_uri": ISSUER})
        return original(request)

    fake.handler = lying  # type: ignore[method-assign]
    verifier = make_verifier([IssuerConfig(ISSUER)], fake)
    with pytest.raises(Unauthenticated, match="Discovery"):
        await verifier.verify(fake.token())


async def test_meta_issuer_and_type_rules() -> None:
    eks = FakeIssuer("https://oidc.eks.eu-west-1.amazonaws.com/id/ABC123")
    cfg = IssuerConfig("https://oidc.eks.*.amazonaws.com/id/*", type="kubernetes")
    verifier = make_verifier([cfg], eks)
    k8s = {"namespace": "prod", "serviceaccount": {"name": "builder"}}
    identity = await verifier.verify(
        eks.token(sub="system:serviceaccount:prod:builder", **{"kubernetes.io": k8s})
    )
    assert identity.san_type == "uri"
    assert identity.subject_alternative_name == (
        "https://kubernetes.io/namespaces/prod/serviceaccounts/builder"
    )
    assert identity.pop_subject == "system:serviceaccount:prod:builder"
    evil = FakeIssuer("https://oidc.eks.x.amazonaws.com.evil.test/id/a")
    with pytest.raises(Unauthenticated, match="not trusted"):
        await make_verifier([cfg], evil).verify(evil.token())
    with pytest.raises(Unauthenticated, match="kubernetes"):
        await verifier.verify(eks.token())


async def test_client_id_is_per_issuer(issuer: FakeIssuer) -> None:
    verifier = make_verifier([IssuerConfig(ISSUER, client_id="keyless")], issuer)
    with pytest.raises(Unauthenticated, match="'keyless'"):
        await verifier.verify(issuer.token())
    assert (await verifier.verify(issuer.token(aud=["x", "keyless"]))).pop_subject


async def test_local_jwks_skips_http(issuer: FakeIssuer) -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    verifier = IdentityVerifier(
        [IssuerConfig(ISSUER)], http, lambda: NOW, local_jwks={ISSUER: issuer.jwks}
    )
    assert (await verifier.verify(issuer.token())).subject_alternative_name


async def test_failing_issuer_is_not_hammered(issuer: FakeIssuer) -> None:
    now = [NOW]
    requests: list[str] = []

    def route(request: httpx.Request) -> httpx.Response:
        requests.append(str(request.url))
        return httpx.Response(503)

    http = httpx.AsyncClient(transport=httpx.MockTransport(route))
    verifier = IdentityVerifier([IssuerConfig(ISSUER)], http, lambda: now[0])
    for _ in range(5):
        with pytest.raises(Unavailable):
            await verifier.verify(issuer.token())
    assert len(requests) == 1  # one attempt per refresh interval, not one per token
    now[0] += 11
    with pytest.raises(Unavailable):
        await verifier.verify(issuer.token())
    assert len(requests) == 2


async def test_key_objects_are_made_once_per_published_key() -> None:
    """Parsed JWKs are reused across tokens; a key replaced under the same kid is a new key."""
    first = ec.generate_private_key(ec.SECP256R1())
    jwks = {"keys": [dict(json.loads(jwt.algorithms.ECAlgorithm.to_jwk(first.public_key())),
                          kid="k")]}  # fmt: skip
    cache = JwksCache(httpx.AsyncClient(), local={ISSUER: lambda: jwks})
    [a] = await cache.key(ISSUER, "k", "ES256")
    [b] = await cache.key(ISSUER, "k", "ES256")
    assert a is b
    second = ec.generate_private_key(ec.SECP256R1())
    jwks["keys"] = [dict(json.loads(jwt.algorithms.ECAlgorithm.to_jwk(second.public_key())),
                         kid="k")]  # fmt: skip
    [c] = await cache.key(ISSUER, "k", "ES256")
    assert c is not a
    assert isinstance(c.key, ec.EllipticCurvePublicKey)
    assert c.key.public_numbers() == second.public_key().public_numbers()


async def test_a_key_cached_for_one_issuer_still_verifies_only_its_tokens() -> None:
    """The key cache holds key objects, not verdicts: every token's signature is checked."""
    issuer = FakeIssuer()
    verifier = make_verifier([IssuerConfig(ISSUER)], issuer)
    await verifier.verify(issuer.token())
    forged = issuer.token()
    head, payload, _ = forged.split(".")
    other = jwt.encode({"x": 1}, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    with pytest.raises(Unauthenticated, match="signature"):
        await verifier.verify(f"{head}.{payload}.{other.split('.')[2]}")


async def test_a_fetched_key_is_looked_up_without_canonicalising_it_per_token(
    issuer: FakeIssuer,
) -> None:
    """Keys of a fetched JWKS are parsed once per fetch; a rotation fetches and parses anew."""
    now = [NOW]
    cache = JwksCache(httpx.AsyncClient(transport=httpx.MockTransport(issuer.handler)),
                      clock=lambda: now[0])  # fmt: skip
    parse = cache._parse
    parsed: list[str] = []

    def counted(jwk: Any, alg: str) -> Any:
        parsed.append(jwk["kid"])
        return parse(jwk, alg)

    cache._parse = counted  # type: ignore[method-assign]
    [a] = await cache.key(ISSUER, "k1", "ES256")
    [b] = await cache.key(ISSUER, "k1", "ES256")
    assert a is b and parsed == ["k1"]
    issuer.add_key("k2")
    now[0] += 60  # past the refresh interval
    [c] = await cache.key(ISSUER, "k2", "ES256")  # unknown kid: refetched
    [d] = await cache.key(ISSUER, "k1", "ES256")
    assert parsed == ["k1", "k2", "k1"]  # the new fetch's dicts (k1 from the content cache)
    assert d is a and c is not a
    assert issuer.jwks_fetches == 2
