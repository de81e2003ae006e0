"""TOTP second factor of the embedded provider (issue #18): the password grant, amr, codes used
once, throttling, ``password_grant = false``, and the config file's ``totp_secret``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pyotp
import pytest

from keyless.errors import ConfigError, Pushback
from keyless.server.config import read_config_file
from keyless.services.oidc import OidcClient, OidcUser
from keyless.services.oidc.accounts import hash_secret
from keyless.services.oidc.grants import (
    EnrolmentRefused,
    OAuthError,
    begin_enrolment,
    confirm_enrolment,
    issue_token,
)
from keyless.services.oidc.service import OidcProvider
from keyless.services.oidc.totp import new_secret

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
PASSWORD = "correct horse"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def provider(clock: Clock, **options: Any) -> OidcProvider:
    users = [OidcUser("carol@example.com", hash_secret(PASSWORD), SECRET),
             OidcUser("dave@example.com", hash_secret(PASSWORD))]
    return OidcProvider("https://idp.test/oidc", users=users, clock=clock, **options)


async def password_grant(idp: OidcProvider, user: str, otp: str | None = None,
                         remote: str = "192.0.2.1") -> dict[str, Any]:
    form = {"grant_type": "password", "username": user, "password": PASSWORD}
    if otp is not None:
        form["otp"] = otp
    body = await issue_token(idp, OidcClient("sigstore"), form, remote)
    return jwt.decode(str(body["id_token"]), options={"verify_signature": False})


def code(clock: Clock, offset: int = 0) -> str:
    return pyotp.TOTP(SECRET).at(clock.now + offset)


async def test_a_totp_user_gets_no_token_without_the_code_and_one_with_it() -> None:
    clock = Clock()
    idp = provider(clock)
    with pytest.raises(OAuthError) as missing:
        await password_grant(idp, "carol@example.com")
    assert missing.value.error == "invalid_grant"
    assert "one-time code" in missing.value.description and "otp" in missing.value.description
    with pytest.raises(OAuthError) as wrong:
        await password_grant(idp, "carol@example.com", "000000" if code(clock) != "000000"
                             else "111111")
    assert wrong.value.error == "invalid_grant" and "one-time code" in wrong.value.description
    claims = await password_grant(idp, "carol@example.com", code(clock))
    assert claims["email"] == "carol@example.com" and claims["amr"] == ["pwd", "otp"]


async def test_a_user_without_a_second_factor_has_amr_pwd() -> None:
    claims = await password_grant(provider(Clock()), "dave@example.com")
    assert claims["amr"] == ["pwd"]
    assert "amr" in provider(Clock()).discovery_document()["claims_supported"]


async def test_a_code_is_usable_once_and_the_neighbouring_steps_are_accepted() -> None:
    clock = Clock()
    idp = provider(clock)
    first = code(clock)
    await password_grant(idp, "carol@example.com", first)
    with pytest.raises(OAuthError, match="already used"):
        await password_grant(idp, "carol@example.com", first, remote="198.51.100.7")
    await password_grant(idp, "carol@example.com", code(clock, -30))  # previous step, unused
    clock.now += 30
    with pytest.raises(OAuthError):  # the accepted step of `first`, seen again one step later
        await password_grant(idp, "carol@example.com", first, remote="198.51.100.8")
    clock.now += 60  # two steps after: outside the window
    with pytest.raises(OAuthError):
        await password_grant(idp, "carol@example.com", code(clock, -90))


async def test_code_guesses_are_throttled_like_passwords() -> None:
    clock = Clock()
    idp = provider(clock)
    good = code(clock)
    wrong = "123456" if good != "123456" else "654321"
    for _ in range(idp.limiter.max_failures):
        with pytest.raises(OAuthError):
            await password_grant(idp, "carol@example.com", wrong)
    with pytest.raises(Pushback):
        await password_grant(idp, "carol@example.com", good)
    # another address is not locked out by these failures
    claims = await password_grant(idp, "carol@example.com", good, remote="203.0.113.9")
    assert claims["amr"] == ["pwd", "otp"]


FULLWIDTH_DIGITS = "".join(chr(0xFF11 + i) for i in range(6))


@pytest.mark.parametrize("otp", ["12345", "1234567", "abcdef", FULLWIDTH_DIGITS, "1" * 100, ""])
async def test_malformed_codes_are_refused(otp: str) -> None:
    clock = Clock()
    with pytest.raises(OAuthError) as refused:
        await password_grant(provider(clock), "carol@example.com", otp)
    assert refused.value.error == "invalid_grant"


async def test_the_password_grant_can_be_turned_off() -> None:
    idp = provider(Clock(), password_grant=False)
    with pytest.raises(OAuthError) as refused:
        await password_grant(idp, "dave@example.com")
    assert refused.value.error == "unsupported_grant_type"
    assert "password_grant = false" in refused.value.description
    assert "password" not in idp.discovery_document()["grant_types_supported"]


def test_the_secret_is_never_in_a_users_repr() -> None:
    user = OidcUser("carol@example.com", hash_secret(PASSWORD), SECRET.lower())
    assert user.totp_secret == SECRET
    assert SECRET not in repr(user) and SECRET.lower() not in repr(user)
    assert len(new_secret()) == 32


@pytest.mark.parametrize(("secret", "problem"), [
    ("JBSWY3DPEHPK3PXP", "bits"),  # 80 bits: below RFC 4226's 128
    ("not base32 at all!", "base32"),
    ("", "bits"),
])
def test_weak_or_malformed_secrets_are_config_errors(secret: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        OidcUser("carol@example.com", hash_secret(PASSWORD), secret)


def test_the_config_file_takes_totp_secret_and_password_grant(tmp_path: Path) -> None:
    path = tmp_path / "keyless.toml"
    path.write_text(
        '[oidc]\npassword_grant = false\n'
        f'[[oidc_users]]\nemail = "carol@example.com"\npassword = "pw"\ntotp_secret = "{SECRET}"\n'
        '[[oidc_users]]\nemail = "dave@example.com"\npassword = "pw"\n'
    )
    values = read_config_file(path)
    assert values["oidc_totp_secrets"] == {"carol@example.com": SECRET}
    assert values["oidc_password_grant"] is False
    assert set(values["oidc_users"]) == {"carol@example.com", "dave@example.com"}


@pytest.mark.parametrize("text", [
    '[oidc]\npassword_grant = "no"\n',
    '[oidc]\nwebauthn = true\n',
    '[[oidc_users]]\nemail = "c@example.com"\npassword = "pw"\ntotp_secret = "JBSWY3DP"\n',
    '[[oidc_users]]\nemail = "c@example.com"\npassword = "pw"\ntotp_secret = 12\n',
    '[[oidc_users]]\nemail = "c@example.com"\ntotp_secret = "' + SECRET + '"\n',
])
def test_bad_second_factor_config_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "keyless.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        read_config_file(path)


async def test_enrolment_turns_a_second_factor_on_with_recovery_codes_once() -> None:
    clock = Clock()
    idp = provider(clock)
    email, pending, secret = await begin_enrolment(idp, "dave@example.com", PASSWORD, "192.0.2.1")
    assert pending and secret and email == "dave@example.com"
    assert (await password_grant(idp, "dave@example.com"))["amr"] == ["pwd"]  # not yet on
    with pytest.raises(EnrolmentRefused, match="wrong one-time code"):
        await confirm_enrolment(idp, pending, "000000" if pyotp.TOTP(secret).at(clock.now)
                                != "000000" else "111111", "192.0.2.1")
    email, codes = await confirm_enrolment(idp, pending, pyotp.TOTP(secret).at(clock.now),
                                           "192.0.2.1")
    assert len(codes) == 10 and len(set(codes)) == 10
    with pytest.raises(EnrolmentRefused, match="expired or was completed"):
        await confirm_enrolment(idp, pending, pyotp.TOTP(secret).at(clock.now + 30), "192.0.2.1")
    with pytest.raises(OAuthError, match="'otp'"):
        await password_grant(idp, "dave@example.com")
    claims = await password_grant(idp, "dave@example.com", pyotp.TOTP(secret).at(clock.now + 30))
    assert claims["amr"] == ["pwd", "otp"]
    assert (await password_grant(idp, "dave@example.com", codes[0].upper()))["amr"] == [
        "pwd", "otp"]
    with pytest.raises(OAuthError, match="already used"):
        await password_grant(idp, "dave@example.com", codes[0])
    assert await idp.factors.recovery_codes_left("dave@example.com") == 9
    stored = await idp.factors.get("dave@example.com")
    assert stored is not None and not any(c in stored.recovery_hashes for c in codes)
    # a second enrolment is not offered: the user has a factor
    assert (await begin_enrolment(idp, "dave@example.com", PASSWORD, "192.0.2.1",
                                  otp=codes[1]))[1] is None


async def test_require_second_factor_sends_users_without_one_to_the_account_page() -> None:
    clock = Clock()
    idp = provider(clock, require_second_factor=True)
    with pytest.raises(OAuthError, match="/oidc/account"):
        await password_grant(idp, "dave@example.com")
    _email, pending, secret = await begin_enrolment(idp, "dave@example.com", PASSWORD, "x")
    assert pending is not None and secret is not None
    await confirm_enrolment(idp, pending, pyotp.TOTP(secret).at(clock.now), "x")
    claims = await password_grant(idp, "dave@example.com", pyotp.TOTP(secret).at(clock.now + 30))
    assert claims["amr"] == ["pwd", "otp"]
    assert (await password_grant(idp, "carol@example.com", code(clock)))["amr"] == ["pwd", "otp"]


async def test_enrolled_secrets_are_stored_wrapped_under_the_kek() -> None:
    from keyless.sealing import Sealer
    from keyless.services.oidc.kv import MemoryKV

    clock = Clock()
    kv = MemoryKV(clock)
    idp = provider(clock, kv=kv, sealer=Sealer.generate())
    _email, pending, secret = await begin_enrolment(idp, "dave@example.com", PASSWORD, "x")
    assert pending is not None and secret is not None
    await confirm_enrolment(idp, pending, pyotp.TOTP(secret).at(clock.now), "x")
    stored = b"".join(value for value, _ in kv._data.values())
    assert secret.encode() not in stored
