"""Every grant of the embedded provider end to end over HTTP, checked by the CA's verifier."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from oidc_flows import auth_url, form_action, hidden_fields, pkce, submit_login, verifier_for
from oidc_server import RunningProvider, provider_factory_fixture  # noqa: F401

from keyless.errors import Unauthenticated
from keyless.identity import IssuerConfig
from keyless.services.oidc import OidcUser, machine_client

pytestmark = pytest.mark.integration

ALICE = OidcUser.parse("alice@example.com:s3cret:with:colons")
BOB = OidcUser.parse("bob@example.org:hunter22")
ALICE_PW = "s3cret:with:colons"
MACHINE = machine_client("release-bot", "bot-secret", "https://ci.example.com/pipelines/release")
REDIRECT = "http://localhost:53682/auth/callback"

Factory = Callable[..., RunningProvider]


@pytest.fixture
def idp(provider_factory: Factory) -> RunningProvider:
    return provider_factory(
        users=[ALICE, BOB],
        clients=[MACHINE],
        machine_subject_domain="https://ci.example.com",
        device_interval=1,
    )


def claims_of(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})


async def password_token(idp: RunningProvider, user: str, password: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            idp.issuer + "/token",
            data={
                "grant_type": "password",
                "client_id": "sigstore",
                "scope": "openid email",
                "username": user,
                "password": password,
            },
        )


async def test_discovery_and_jwks(idp: RunningProvider) -> None:
    async with httpx.AsyncClient() as client:
        doc = (await client.get(idp.issuer + "/.well-known/openid-configuration")).json()
        assert doc["issuer"] == idp.issuer
        for name in (
            "authorization_endpoint",
            "token_endpoint",
            "jwks_uri",
            "device_authorization_endpoint",
        ):
            assert doc[name].startswith(idp.issuer + "/")
        assert doc["code_challenge_methods_supported"] == ["S256"]
        assert "password" in doc["grant_types_supported"]
        jwks = (await client.get(doc["jwks_uri"])).json()
    assert len(jwks["keys"]) == 3  # previous, current, next epoch
    assert {k["alg"] for k in jwks["keys"]} == {"ES256"}
    assert all("d" not in k for k in jwks["keys"])  # never private material


async def test_password_grant_contract(idp: RunningProvider) -> None:
    """contracts.md §3: curl -d grant_type=password ... → {"id_token": ...} the CA accepts."""
    response = await password_token(idp, "alice@example.com", ALICE_PW)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["access_token"] == body["id_token"]
    claims = claims_of(body["id_token"])
    assert claims["iss"] == idp.issuer
    assert claims["aud"] == "sigstore"
    assert claims["email"] == claims["sub"] == "alice@example.com"
    assert claims["email_verified"] is True
    assert isinstance(claims["iat"], int) and claims["exp"] == claims["iat"] + 600
    identity = await verifier_for(*idp.provider.issuer_configs()).verify(body["id_token"])
    assert identity.subject_alternative_name == "alice@example.com"
    assert identity.san_type == "email"
    assert identity.pop_subject == "alice@example.com"


async def test_password_grant_refusals(idp: RunningProvider) -> None:
    wrong = await password_token(idp, "alice@example.com", "nope")
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    unknown = await password_token(idp, "nobody@example.com", "nope")
    assert unknown.json()["error_description"] == wrong.json()["error_description"]
    async with httpx.AsyncClient() as client:
        bad_client = await client.post(
            idp.issuer + "/token",
            data={"grant_type": "password", "client_id": "nope", "username": "a", "password": "b"},
        )
        assert bad_client.status_code == 401
        assert bad_client.json()["error"] == "invalid_client"
        unsupported = await client.post(
            idp.issuer + "/token", data={"grant_type": "implicit", "client_id": "sigstore"}
        )
        assert unsupported.json()["error"] == "unsupported_grant_type"
        not_form = await client.post(idp.issuer + "/token", json={"grant_type": "password"})
        assert not_form.status_code == 400 and not_form.json()["error"] == "invalid_request"
        repeated = await client.post(
            idp.issuer + "/token",
            content=b"grant_type=password&grant_type=password&client_id=sigstore",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert repeated.json()["error"] == "invalid_request"
        garbage = await client.post(
            idp.issuer + "/token",
            content=b"\xff\xfe=\x00",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert garbage.status_code == 400


async def test_login_rate_limited(idp: RunningProvider) -> None:
    statuses = [
        (await password_token(idp, "bob@example.org", "wrong")).status_code for _ in range(5)
    ]
    assert statuses == [400] * 5
    throttled = await password_token(idp, "bob@example.org", "hunter22")  # even the right one
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0
    assert throttled.json()["error"] == "temporarily_unavailable"


async def test_authorization_code_with_pkce(idp: RunningProvider) -> None:
    verifier, challenge = pkce()
    url = auth_url(idp.issuer, REDIRECT, challenge, state="xyz", nonce="n-123")
    async with httpx.AsyncClient() as browser:
        redirect = await submit_login(browser, idp.base, url, "alice@example.com", ALICE_PW)
    assert redirect.status_code == 303
    location = urlsplit(redirect.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]
    code = query["code"][0]

    async with httpx.AsyncClient() as client:
        exchange = {"grant_type": "authorization_code", "redirect_uri": REDIRECT, "code": code}
        wrong = await client.post(
            idp.issuer + "/token",
            data={**exchange, "code_verifier": pkce()[0]},
            auth=("sigstore", ""),
        )
        assert wrong.json()["error"] == "invalid_grant"  # and the code is now burnt
        verifier2, challenge2 = pkce()
        async with httpx.AsyncClient() as browser:
            redirect = await submit_login(
                browser,
                idp.base,
                auth_url(idp.issuer, REDIRECT, challenge2, nonce="n-123"),
                "alice@example.com",
                ALICE_PW,
            )
        code2 = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
        ok = await client.post(
            idp.issuer + "/token",
            data={**exchange, "code": code2, "code_verifier": verifier2},
            auth=("sigstore", ""),  # sigstore-python: HTTP Basic with an empty secret
        )
        assert ok.status_code == 200, ok.text
        replay = await client.post(
            idp.issuer + "/token",
            data={**exchange, "code": code2, "code_verifier": verifier2},
            auth=("sigstore", ""),
        )
        assert replay.json()["error"] == "invalid_grant"
    token = ok.json()["access_token"]
    claims = claims_of(token)
    assert claims["nonce"] == "n-123"
    assert claims["aud"] == "sigstore"
    assert (await verifier_for(*idp.provider.issuer_configs()).verify(token)).pop_subject == (
        "alice@example.com"
    )
    del verifier


async def test_authorization_request_validation(idp: RunningProvider) -> None:
    _, challenge = pkce()
    async with httpx.AsyncClient() as browser:
        evil = await browser.get(auth_url(idp.issuer, "https://evil.example/cb", challenge))
        assert evil.status_code == 400 and "redirect_uri" in evil.text  # shown, never redirected
        no_pkce = await browser.get(
            auth_url(idp.issuer, REDIRECT, challenge).replace("code_challenge=", "x=")
        )
        assert no_pkce.status_code == 303
        assert "error=invalid_request" in no_pkce.headers["location"]
        plain = await browser.get(
            auth_url(idp.issuer, REDIRECT, challenge, code_challenge_method="plain")
        )
        assert (
            "code_challenge_method"
            in parse_qs(urlsplit(plain.headers["location"]).query)["error_description"][0]
        )
        no_openid = await browser.get(auth_url(idp.issuer, REDIRECT, challenge, scope="email"))
        assert "error=invalid_scope" in no_openid.headers["location"]
        page = await browser.get(auth_url(idp.issuer, REDIRECT, challenge))
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/oidc" in cookie


async def test_login_form_csrf(idp: RunningProvider) -> None:
    _, challenge = pkce()
    url = auth_url(idp.issuer, REDIRECT, challenge)
    async with httpx.AsyncClient() as browser:
        page = await browser.get(url)
        fields = {**hidden_fields(page.text), "username": "alice@example.com", "password": ALICE_PW}
        action = form_action(idp.base, page.text)
        cross_site = await browser.post(
            action, data=fields, headers={"Origin": "https://evil.example"}
        )
        assert cross_site.status_code == 400
        forged = await browser.post(action, data={**fields, "csrf_token": "x" * 43})
        assert forged.status_code == 400
    async with httpx.AsyncClient() as attacker:  # no cookie at all: a cross-site form post
        blind = await attacker.post(action, data=fields)
        assert blind.status_code == 400
        assert "location" not in blind.headers
    async with httpx.AsyncClient() as browser:
        wrong = await submit_login(browser, idp.base, url, "alice@example.com", "wrong")
        assert wrong.status_code == 401 and "wrong email or password" in wrong.text


async def test_out_of_band_code_page(idp: RunningProvider) -> None:
    verifier, challenge = pkce()
    oob = "urn:ietf:wg:oauth:2.0:oob"
    async with httpx.AsyncClient() as browser:
        page = await submit_login(
            browser, idp.base, auth_url(idp.issuer, oob, challenge), "alice@example.com", ALICE_PW
        )
    assert page.status_code == 200
    code = re.search(r"<p class=code id=code>([^<]+)</p>", page.text)
    assert code
    async with httpx.AsyncClient() as client:
        ok = await client.post(
            idp.issuer + "/token",
            data={
                "grant_type": "authorization_code",
                "redirect_uri": oob,
                "code": code.group(1),
                "code_verifier": verifier,
            },
            auth=("sigstore", ""),
        )
    assert ok.status_code == 200, ok.text


async def test_device_flow(provider_factory: Factory) -> None:
    # an interval no loaded machine takes between two requests: the second poll is too fast
    idp = provider_factory(users=[ALICE, BOB], device_interval=3600)
    async with httpx.AsyncClient() as client:
        start = await client.post(
            idp.issuer + "/device/code", data={"client_id": "sigstore", "scope": "openid email"}
        )
        assert start.status_code == 200, start.text
        grant = start.json()
        assert re.fullmatch(
            r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", grant["user_code"]
        )
        assert grant["verification_uri"] == idp.issuer + "/device"
        poll = {
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": grant["device_code"],
            "client_id": "sigstore",
        }
        pending = await client.post(idp.issuer + "/token", data=poll)
        assert pending.json()["error"] == "authorization_pending"
        too_fast = await client.post(idp.issuer + "/token", data=poll)
        assert too_fast.json()["error"] == "slow_down"

        async with httpx.AsyncClient() as browser:
            page = await browser.get(grant["verification_uri_complete"])
            assert grant["user_code"] in page.text
            fields = {
                **hidden_fields(page.text),
                "user_code": grant["user_code"].lower(),
                "username": "bob@example.org",
                "password": "hunter22",
            }
            approved = await browser.post(
                form_action(idp.base, page.text), data=fields, headers={"Origin": idp.base}
            )
            assert approved.status_code == 200 and "Device approved" in approved.text
            again = await browser.post(
                form_action(idp.base, page.text), data=fields, headers={"Origin": idp.base}
            )
            assert again.status_code == 400

        # once approved, the token is handed out however soon the client polls
        done = await client.post(idp.issuer + "/token", data=poll)
        assert done.status_code == 200, done.text
        used = await client.post(idp.issuer + "/token", data=poll)
        assert used.json()["error"] == "invalid_grant"
        unknown = await client.post(idp.issuer + "/token", data={**poll, "device_code": "zzz"})
        assert unknown.json()["error"] == "invalid_grant"
    identity = await verifier_for(*idp.provider.issuer_configs()).verify(done.json()["id_token"])
    assert identity.subject_alternative_name == "bob@example.org"


async def test_client_credentials_machine_identity(idp: RunningProvider) -> None:
    async with httpx.AsyncClient() as client:
        ok = await client.post(
            idp.issuer + "/token",
            data={"grant_type": "client_credentials"},
            auth=("release-bot", "bot-secret"),
        )
        assert ok.status_code == 200, ok.text
        bad = await client.post(
            idp.issuer + "/token",
            data={"grant_type": "client_credentials"},
            auth=("release-bot", "wrong"),
        )
        assert bad.status_code == 401 and bad.headers["www-authenticate"].startswith("Basic")
        public = await client.post(
            idp.issuer + "/token",
            data={"grant_type": "client_credentials", "client_id": "sigstore"},
        )
        assert public.json()["error"] == "unauthorized_client"
        discovery = await client.get(idp.issuer + "/ci/.well-known/openid-configuration")
        assert discovery.json()["issuer"] == idp.issuer + "/ci"
    token = ok.json()["access_token"]
    claims = claims_of(token)
    assert claims["iss"] == idp.issuer + "/ci"
    assert claims["sub"] == "https://ci.example.com/pipelines/release"
    assert "email" not in claims
    # Through HTTP discovery of the machine issuer, not the local shortcut.
    identity = await verifier_for(*idp.provider.issuer_configs()).verify(token)
    assert identity.san_type == "uri"
    assert identity.subject_alternative_name == "https://ci.example.com/pipelines/release"
    assert identity.pop_subject == identity.subject_alternative_name
    # Issuer and identity type are bound: the people issuer does not cover machines, and
    # typing the machine issuer as an email issuer refuses tokens without a verified email.
    with pytest.raises(Unauthenticated, match="not trusted"):
        await verifier_for(IssuerConfig(idp.issuer)).verify(token)
    with pytest.raises(Unauthenticated, match="'email'"):
        await verifier_for(IssuerConfig(idp.issuer + "/ci")).verify(token)


async def test_second_provider_only_when_configured(provider_factory: Factory) -> None:
    first = provider_factory(users=[ALICE])
    second = provider_factory(users=[ALICE])
    token_b = (await password_token(second, "alice@example.com", ALICE_PW)).json()["id_token"]
    only_first = verifier_for(IssuerConfig(first.issuer))
    with pytest.raises(Unauthenticated, match="not trusted"):
        await only_first.verify(token_b)
    both = verifier_for(IssuerConfig(first.issuer), IssuerConfig(second.issuer))
    assert (await both.verify(token_b)).issuer == second.issuer
    # A token of the second provider relabelled as the first one's: keys do not match.
    head, payload, sig = token_b.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["iss"] = first.issuer
    forged = ".".join(
        [head, base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode(), sig]
    )
    with pytest.raises(Unauthenticated, match=r"unknown|signature"):
        await both.verify(forged)


async def test_userinfo(idp: RunningProvider) -> None:
    token = (await password_token(idp, "alice@example.com", ALICE_PW)).json()["access_token"]
    async with httpx.AsyncClient() as client:
        info = await client.get(
            idp.issuer + "/userinfo", headers={"Authorization": f"Bearer {token}"}
        )
        assert info.json() == {
            "sub": "alice@example.com",
            "email": "alice@example.com",
            "email_verified": True,
        }
        bad = await client.get(idp.issuer + "/userinfo", headers={"Authorization": "Bearer x.y.z"})
        assert bad.status_code == 401


BAD_REQUESTS = [
    ("GET", "/auth?%zz=1&client_id=sigstore", None, {}),
    ("GET", "/auth?client_id=sigstore&client_id=x", None, {}),
    ("GET", "/auth", None, {}),
    ("POST", "/auth", b"\xff\xfe", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("POST", "/auth", b"{}", {"Content-Type": "application/json"}),
    ("POST", "/token", b"a" * 70_000, {"Content-Type": "application/x-www-form-urlencoded"}),
    (
        "POST",
        "/token",
        b"grant_type=password",
        {"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Basic !!!"},
    ),
    (
        "POST",
        "/token",
        b"grant_type=password",
        {"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Bearer x"},
    ),
    (
        "POST",
        "/token",
        b"grant_type=authorization_code&client_id=sigstore&code=x",
        {"Content-Type": "application/x-www-form-urlencoded"},
    ),
    (
        "POST",
        "/token",
        b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=sigstore",
        {"Content-Type": "application/x-www-form-urlencoded"},
    ),
    ("POST", "/device/code", b"", {"Content-Type": "text/plain"}),
    ("POST", "/device", b"user_code=\x00", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("GET", "/userinfo", None, {"Authorization": "Bearer " + "x" * 3000}),
    ("GET", "/token", None, {}),
]


@pytest.mark.parametrize(("method", "path", "body", "headers"), BAD_REQUESTS)
async def test_bad_input_is_never_a_server_error(
    idp: RunningProvider, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.request(method, idp.issuer + path, content=body, headers=headers)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if path == "/token" and method == "POST":
        assert response.json()["error"] in ("invalid_request", "invalid_client", "invalid_grant")


def _b64json(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _with_header(token: str, **header: object) -> str:
    _, payload, sig = token.split(".")
    return f"{_b64json(header)}.{payload}.{sig}"


ALTERED: list[tuple[str, dict[str, object], Callable[[str], str] | None, str]] = [
    ("expired", {"iat": 1_000_000_000, "exp": 1_000_000_600}, None, "expired"),
    ("wrong audience", {"aud": "not-sigstore"}, None, "audience"),
    ("wrong issuer", {"iss": "http://127.0.0.1:1/oidc"}, None, "not trusted"),
    ("no email_verified", {"email_verified": False}, None, "not verified"),
    ("alg none", {}, lambda t: _with_header(t, alg="none").rsplit(".", 1)[0] + ".", "allowed"),
    ("HS256 with the JWK", {}, lambda t: _with_header(t, alg="HS256", kid="x"), "allowed"),
    ("unknown kid", {}, lambda t: _with_header(t, alg="ES256", kid="nope"), "unknown"),
    (
        "bad signature",
        {},
        lambda t: t[:-6] + ("AAAAAA" if t[-6:] != "AAAAAA" else "BBBBBB"),
        "signature",
    ),
    (
        "changed email",
        {},
        lambda t: ".".join(
            [
                t.split(".")[0],
                _b64json({**claims_of(t), "email": "mallory@example.com"}),
                t.split(".")[2],
            ]
        ),
        "signature",
    ),
]


@pytest.mark.parametrize(
    ("name", "claims", "alter", "message"), ALTERED, ids=[a[0] for a in ALTERED]
)
async def test_verifier_refuses_altered_provider_tokens(
    idp: RunningProvider,
    name: str,
    claims: dict[str, object],
    alter: Callable[[str], str] | None,
    message: str,
) -> None:
    """Tokens signed by the running provider's real keys, then altered, fetched via discovery."""
    from keyless.services.oidc.tokens import TokenMinter

    minter = TokenMinter(idp.provider.keys)
    base_claims = {"email": "alice@example.com", "email_verified": True}
    token = await minter.mint(idp.issuer, "sigstore", "alice@example.com", **base_claims)
    verifier = verifier_for(*idp.provider.issuer_configs())
    assert (await verifier.verify(token)).pop_subject == "alice@example.com"  # the control
    if claims:
        payload = {**claims_of(token), **claims}
        key = await idp.provider.keys.signing_key()
        token = jwt.encode(payload, key.private_key, algorithm="ES256", headers={"kid": key.kid})
    if alter is not None:
        token = alter(token)
    with pytest.raises(Unauthenticated, match=message):
        await verifier.verify(token)


async def test_audit_log_without_secrets(
    idp: RunningProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="keyless.oidc.audit")
    await password_token(idp, "alice@example.com", "not-the-password")
    ok = (await password_token(idp, "alice@example.com", ALICE_PW)).json()
    records = [r for r in caplog.records if r.name == "keyless.oidc.audit"]
    assert [r.getMessage() for r in records] == ["sign-in failed", "sign-in", "token issued"]
    assert records[0].__dict__["user"] == "alice@example.com"
    assert records[2].__dict__["jti"] == claims_of(ok["id_token"])["jti"]
    text = " ".join(str(r.__dict__) for r in records)
    assert "not-the-password" not in text and ALICE_PW not in text
    assert ok["id_token"] not in text
