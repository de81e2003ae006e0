"""WebAuthn security keys and passkeys (W3C Web Authentication, via the ``webauthn`` package).

A signed-in user registers an authenticator on the account page; afterwards the login page's
"Sign in with a security key" signs them in with it alone (tokens carry ``amr`` ``["hwk"]``;
with user verification, ``["hwk","user"]``). Registration and sign-in challenges live in the
shared key-value store for five minutes and are used once; credentials (id, COSE public key,
signature counter) are kept per user, wrapped under the key-encryption key when the provider has
a sealer. A signature counter that does not grow is refused (a cloned authenticator), as the
``webauthn`` package checks. ``user_verification`` (``[oidc] webauthn_user_verification``) is
``preferred`` by default, or ``required``/``discouraged``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from keyless.errors import ConfigError, InvalidInput, Unauthenticated
from keyless.storage.seam import KeyValue

_KEYS_NS = "oidc-passkeys"
_CHALLENGE_NS = "oidc-webauthn-challenge"
_FOREVER = 2.0**62
CHALLENGE_SECONDS = 300
#: most authenticators one user may register
MAX_KEYS = 10
#: largest credential JSON read from a browser
MAX_CREDENTIAL = 16 * 1024
USER_VERIFICATION = ("preferred", "required", "discouraged")


@dataclass(frozen=True)
class StoredKey:
    credential_id: bytes
    public_key: bytes
    sign_count: int


class PasskeyStore:
    """Registration and sign-in ceremonies for one relying party (the issuer's host)."""

    def __init__(
        self, kv: KeyValue, *, rp_id: str, origin: str, user_verification: str = "preferred",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if user_verification not in USER_VERIFICATION:
            raise ConfigError(f"webauthn user verification must be one of {USER_VERIFICATION}")
        self._kv = kv
        self.rp_id = rp_id
        self.origin = origin
        self.user_verification = UserVerificationRequirement(user_verification)
        self._clock = clock

    async def keys(self, email: str) -> list[StoredKey]:
        raw = await self._kv.get(_KEYS_NS, email.lower())
        return [StoredKey(base64url_to_bytes(k["id"]), base64url_to_bytes(k["key"]), int(k["n"]))
                for k in json.loads(raw)] if raw else []

    async def _save(self, email: str, keys: list[StoredKey]) -> None:
        value = json.dumps([{"id": bytes_to_base64url(k.credential_id),
                             "key": bytes_to_base64url(k.public_key), "n": k.sign_count}
                            for k in keys]).encode()
        await self._kv.delete(_KEYS_NS, email.lower())
        await self._kv.put_if_absent(_KEYS_NS, email.lower(), value, _FOREVER)

    async def _challenge(self, purpose: str, email: str, challenge: bytes) -> str:
        handle = secrets.token_urlsafe(24)
        value = json.dumps({"purpose": purpose, "email": email.lower(),
                            "challenge": bytes_to_base64url(challenge)}).encode()
        await self._kv.put_if_absent(_CHALLENGE_NS, handle, value,
                                     self._clock() + CHALLENGE_SECONDS)
        return handle

    async def _take(self, purpose: str, handle: str) -> tuple[str, bytes]:
        raw = await self._kv.get(_CHALLENGE_NS, handle) if 16 <= len(handle) <= 64 else None
        if raw is None:
            raise InvalidInput("this security key request expired or was used; start again")
        await self._kv.delete(_CHALLENGE_NS, handle)
        value = json.loads(raw)
        if value["purpose"] != purpose:
            raise InvalidInput("this security key request is for something else")
        return str(value["email"]), base64url_to_bytes(value["challenge"])

    async def registration_options(self, email: str) -> tuple[str, str]:
        """``(options JSON for navigator.credentials.create, handle)`` for a signed-in user."""
        existing = await self.keys(email)
        if len(existing) >= MAX_KEYS:
            raise InvalidInput(f"{email} already has {MAX_KEYS} security keys")
        options = generate_registration_options(
            rp_id=self.rp_id, rp_name="keyless", user_name=email,
            user_id=hashlib.sha256(b"keyless-user\0" + email.lower().encode()).digest()[:16],
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.DISCOURAGED,
                user_verification=self.user_verification),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=k.credential_id)
                                 for k in existing],
        )
        return options_to_json(options), await self._challenge("register", email,
                                                               options.challenge)

    async def register(self, handle: str, credential: str) -> str:
        """Verify a new credential (``navigator.credentials.create`` JSON); the user's email."""
        email, challenge = await self._take("register", handle)
        if len(credential) > MAX_CREDENTIAL:
            raise InvalidInput("the credential is too large")
        try:
            verified = verify_registration_response(
                credential=credential, expected_challenge=challenge, expected_rp_id=self.rp_id,
                expected_origin=self.origin, require_user_verification=self._required())
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:  # any malformed part
            raise InvalidInput(f"the security key's registration is invalid: {exc}") from exc
        keys = await self.keys(email)
        keys.append(StoredKey(verified.credential_id, verified.credential_public_key,
                              verified.sign_count))
        await self._save(email, keys)
        return email

    def _required(self) -> bool:
        return self.user_verification == UserVerificationRequirement.REQUIRED

    async def authentication_options(self, email: str) -> tuple[str, str]:
        """Options for ``navigator.credentials.get`` for ``email`` (a user without keys gets
        options too, so the answer does not tell who has keys), and the handle."""
        keys = await self.keys(email)
        allow = [PublicKeyCredentialDescriptor(id=k.credential_id) for k in keys] or [
            PublicKeyCredentialDescriptor(id=hashlib.sha256(email.lower().encode()).digest())]
        options = generate_authentication_options(
            rp_id=self.rp_id, allow_credentials=allow, user_verification=self.user_verification)
        return options_to_json(options), await self._challenge("login", email, options.challenge)

    async def authenticate(self, handle: str, credential: str) -> tuple[str, list[str]]:
        """Verify an assertion (``navigator.credentials.get`` JSON): ``(email, amr)``."""
        email, challenge = await self._take("login", handle)
        if len(credential) > MAX_CREDENTIAL:
            raise InvalidInput("the credential is too large")
        try:
            raw_id = base64url_to_bytes(str(json.loads(credential)["rawId"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput("the credential is not WebAuthn JSON") from exc
        keys = await self.keys(email)
        key = next((k for k in keys if k.credential_id == raw_id), None)
        if key is None:
            raise Unauthenticated("this security key is not registered for this account")
        try:
            verified = verify_authentication_response(
                credential=credential, expected_challenge=challenge, expected_rp_id=self.rp_id,
                expected_origin=self.origin, credential_public_key=key.public_key,
                credential_current_sign_count=key.sign_count,
                require_user_verification=self._required())
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:  # any malformed part
            raise Unauthenticated(f"the security key's signature is invalid: {exc}") from exc
        await self._save(email, [StoredKey(k.credential_id, k.public_key, verified.new_sign_count)
                                 if k is key else k for k in keys])
        amr = ["hwk", "user"] if verified.user_verified else ["hwk"]
        return email, amr
