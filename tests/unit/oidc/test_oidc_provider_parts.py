"""Unit tests of the embedded provider's parts: keys, codes, accounts, requests, throttling."""

from __future__ import annotations

import jwt
import pytest

from keyless.errors import ConfigError
from keyless.identity import IdentityVerifier, IssuerConfig
from keyless.services.oidc import MemoryKV, OidcClient, OidcKeyRing, OidcUser
from keyless.services.oidc.accounts import hash_secret, verify_secret
from keyless.services.oidc.codes import AuthorizationGrant, CodeStore, normalize_user_code
from keyless.services.oidc.requests import (
    AuthorizationRequest,
    RedirectableError,
    UnsafeRequest,
    redirect_allowed,
)
from keyless.services.oidc.tokens import TokenMinter

DAY = 86400.0


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_key_rotation_publishes_old_and_next_keys() -> None:
    clock = Clock(20834 * DAY)  # the start of an epoch
    kv = MemoryKV(clock)
    ring = OidcKeyRing(kv, clock, rotation_period=DAY, token_lifetime=600)
    minter = TokenMinter(ring, clock, 600)
    issuer = "https://idp.test/oidc"
    verifier = IdentityVerifier(
        [IssuerConfig(issuer)],
        None,
        clock,
        local_jwks={issuer: ring.jwks},  # type: ignore[arg-type]
    )
    first = await minter.mint(issuer, "sigstore", "a@x.test", email="a@x.test", email_verified=True)
    jwks_before = {k["kid"] for k in (await ring.jwks())["keys"]}
    clock.now += DAY - 1  # token signed at the very end of an epoch ...
    late = await minter.mint(issuer, "sigstore", "a@x.test", email="a@x.test", email_verified=True)
    clock.now += 2  # ... is still valid after the rotation
    rotated = await minter.mint(
        issuer, "sigstore", "a@x.test", email="a@x.test", email_verified=True
    )
    kid = lambda t: jwt.get_unverified_header(t)["kid"]  # noqa: E731
    assert kid(first) == kid(late) != kid(rotated)
    assert kid(rotated) in jwks_before  # the next key was published a whole epoch ahead
    assert (await verifier.verify(late)).pop_subject == "a@x.test"
    assert (await verifier.verify(rotated)).pop_subject == "a@x.test"
    clock.now += 2 * DAY  # two rotations later the first key is gone
    assert kid(first) not in {k["kid"] for k in (await ring.jwks())["keys"]}


async def test_two_processes_share_keys_through_kv() -> None:
    clock = Clock()
    kv = MemoryKV(clock)
    a = OidcKeyRing(kv, clock)
    b = OidcKeyRing(kv, clock)
    assert (await a.signing_key()).kid == (await b.signing_key()).kid
    assert await a.jwks() == await b.jwks()


def test_rotation_period_must_cover_token_lifetime() -> None:
    with pytest.raises(ConfigError):
        OidcKeyRing(MemoryKV(), rotation_period=60, token_lifetime=600)


async def test_authorization_code_single_use_and_expiry() -> None:
    clock = Clock()
    store = CodeStore(MemoryKV(clock))
    grant = AuthorizationGrant(
        "sigstore", "http://127.0.0.1:1/cb", None, "openid", None, "a@x.test", 0, clock.now + 60
    )
    code = await store.issue_authorization_code(grant)
    assert await store.redeem_authorization_code(code, clock.now) == grant
    assert await store.redeem_authorization_code(code, clock.now) is None
    late = await store.issue_authorization_code(grant)
    assert await store.redeem_authorization_code(late, clock.now + 61) is None
    assert await store.redeem_authorization_code("guess", clock.now) is None


async def test_device_code_lifecycle() -> None:
    clock = Clock()
    store = CodeStore(MemoryKV(clock))
    device_code, grant = await store.issue_device_code("sigstore", "openid", clock.now + 600, 5)
    assert (await store.poll_device(device_code, clock.now))[0] == "authorization_pending"
    clock.now += 1
    assert (await store.poll_device(device_code, clock.now))[0] == "slow_down"
    found = await store.device_by_user_code(grant.user_code[:4].lower() + "-" + grant.user_code[4:])
    assert found is not None
    assert await store.approve_device(found[0], "a@x.test", grant)
    assert not await store.approve_device(found[0], "mallory@x.test", grant)  # first one wins
    clock.now += 4
    outcome, value = await store.poll_device(device_code, clock.now)
    assert outcome == "ok" and value[1] == "a@x.test"
    clock.now += 5
    assert (await store.poll_device(device_code, clock.now))[0] == "invalid_grant"
    other, _ = await store.issue_device_code("sigstore", "openid", clock.now + 600, 5)
    clock.now += 601
    assert (await store.poll_device(other, clock.now))[0] == "expired_token"


async def test_device_poll_interval_is_measured_from_the_previous_poll() -> None:
    """Issue #17: two polls 0.2 s apart either side of a multiple of the interval both passed
    (one slot per interval on a fixed grid), so the slow_down test flaked."""
    clock = Clock(1_800_000_004.9)  # 0.1 s before a multiple of 5
    store = CodeStore(MemoryKV(clock))
    device_code, _ = await store.issue_device_code("sigstore", "openid", clock.now + 600, 5)
    assert (await store.poll_device(device_code, clock.now))[0] == "authorization_pending"
    clock.now += 0.2
    assert (await store.poll_device(device_code, clock.now))[0] == "slow_down"
    clock.now += 4.7  # 4.9 s after the first poll
    assert (await store.poll_device(device_code, clock.now))[0] == "slow_down"
    clock.now += 0.2  # 5.1 s after the first poll answered normally
    assert (await store.poll_device(device_code, clock.now))[0] == "authorization_pending"


def test_user_code_normalization() -> None:
    assert normalize_user_code(" bcdf-ghjk ") == "BCDFGHJK"


def test_password_hashing() -> None:
    hashed = hash_secret("s3cret")
    assert hashed.startswith("scrypt$16384$8$1$") and "s3cret" not in hashed
    assert verify_secret("s3cret", hashed)
    assert not verify_secret("s3cret ", hashed)
    assert hash_secret("s3cret") != hashed  # salted


def test_user_parsing() -> None:
    user = OidcUser.parse("alice@example.com:pa:ss")
    assert user.email == "alice@example.com" and verify_secret("pa:ss", user.password_hash)
    for bad in ("alice@example.com", "alice@example.com:", "not-an-email:pw", ":pw"):
        with pytest.raises(ConfigError):
            OidcUser.parse(bad)
    from_hash = OidcUser.from_mapping(
        {"email": "b@example.com", "password_hash": user.password_hash}
    )
    assert from_hash.password_hash == user.password_hash
    with pytest.raises(ConfigError):
        OidcUser.from_mapping({"email": "b@example.com", "password_hash": "md5$abc"})
    with pytest.raises(ConfigError):
        OidcUser.from_mapping({"email": "b@example.com", "password": "x", "role": "admin"})


def test_client_config() -> None:
    machine = OidcClient.from_mapping(
        {"client_id": "ci", "secret": "s", "subject": "https://ci.example.com/jobs/release"}
    )
    assert not machine.public and machine.audience == "sigstore"
    with pytest.raises(ConfigError):
        OidcClient("ci", subject="https://ci.example.com/x")  # a machine needs a secret
    with pytest.raises(ConfigError):
        OidcClient("bad id!")


@pytest.mark.parametrize(
    ("uri", "allowed"),
    [
        ("http://localhost:8080/auth/callback", True),
        ("http://127.0.0.1:51234/auth/callback", True),
        ("http://[::1]:51234/cb", True),
        ("urn:ietf:wg:oauth:2.0:oob", True),
        ("https://localhost/cb", False),
        ("http://localhost.evil.test/cb", False),
        ("http://user@localhost:80/cb", False),
        ("http://127.0.0.1:1/cb#frag", False),
        ("http://127.0.0.1:99999/cb", False),
        ("https://evil.test/cb", False),
        ("javascript:alert(1)", False),
        # urlsplit drops CR/LF/TAB silently: such URIs must not pass as loopback ones
        ("http://localhost:9999/cb\r\nX-Injected: y", False),
        ("http://localhost:9999/c\tb", False),
        ("http://localhost:9999/c b", False),
        ("http://localhost:9999/cb\x00", False),
    ],
)
def test_redirect_uri_rules(uri: str, allowed: bool) -> None:
    assert redirect_allowed(OidcClient("sigstore"), uri) is allowed


def test_registered_redirect_only_when_loopback_disabled() -> None:
    client = OidcClient("web", redirect_uris=("https://app.test/cb",), allow_loopback=False)
    assert redirect_allowed(client, "https://app.test/cb")
    assert not redirect_allowed(client, "http://127.0.0.1:1/cb")


def test_authorization_request_validation() -> None:
    clients = {"sigstore": OidcClient("sigstore")}
    good = {
        "client_id": "sigstore",
        "redirect_uri": "http://127.0.0.1:5/cb",
        "response_type": "code",
        "scope": "openid email custom",
        "code_challenge": "a" * 43,
        "code_challenge_method": "S256",
    }
    parsed = AuthorizationRequest.parse(good, clients)
    assert parsed.scope == "openid email"
    with pytest.raises(UnsafeRequest):
        AuthorizationRequest.parse({**good, "client_id": "x"}, clients)
    with pytest.raises(UnsafeRequest):
        AuthorizationRequest.parse({**good, "redirect_uri": "https://x.test/"}, clients)
    for change, error in [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "email"}, "invalid_scope"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"prompt": "none"}, "login_required"),
    ]:
        with pytest.raises(RedirectableError) as info:
            AuthorizationRequest.parse({**good, **change}, clients)
        assert info.value.error == error
    without = {k: v for k, v in good.items() if k != "code_challenge"}
    with pytest.raises(RedirectableError, match="PKCE"):
        AuthorizationRequest.parse(without, clients)
