"""Authorization codes (RFC 6749 §4.1) and device codes (RFC 8628 §3) in the shared store.

Codes are stored under their SHA-256, so the store never holds a redeemable value. Single use is
enforced with the store's one atomic primitive: redeeming first inserts a "used" marker with
``put_if_absent``, and only the request that inserted it gets a token (RFC 6749 §4.1.2: a code
MUST NOT be used more than once). Device approval is a marker of the same kind, and polling
faster than the announced interval is detected with a marker that lives for one interval after
the last poll answered normally (RFC 8628 §3.5 ``slow_down``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from keyless.storage.seam import KeyValue

#: RFC 8628 §6.1: consonants only (no vowels, so no words), case-insensitive, 8 characters.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


def _h(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


@dataclass(frozen=True)
class AuthorizationGrant:
    """What an authorization code stands for."""

    client_id: str
    redirect_uri: str
    code_challenge: str | None
    scope: str
    nonce: str | None
    email: str
    auth_time: int
    expires_at: float
    #: the upstream provider the user signed in with (``[[oidc_upstreams]]``), and its ``amr``
    idp: str | None = None
    amr: list[str] | None = None


@dataclass(frozen=True)
class DeviceGrant:
    """A pending device authorization request."""

    client_id: str
    scope: str
    user_code: str
    expires_at: float
    interval: int


def normalize_user_code(text: str) -> str:
    """Upper-case and drop separators, as users type codes (RFC 8628 §6.1)."""
    return "".join(ch for ch in text.upper() if ch.isalnum())


def format_user_code(code: str) -> str:
    """``BCDFGHJK`` → ``BCDF-GHJK`` for display."""
    return f"{code[:4]}-{code[4:]}"


class CodeStore:
    """Issue and redeem authorization and device codes through a :class:`KeyValue`."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def issue_authorization_code(self, grant: AuthorizationGrant) -> str:
        code = secrets.token_urlsafe(32)
        value = json.dumps(asdict(grant)).encode()
        await self._kv.put_if_absent("oidc-code", _h(code), value, grant.expires_at)
        return code

    async def redeem_authorization_code(self, code: str, now: float) -> AuthorizationGrant | None:
        """The grant, exactly once; ``None`` if unknown, expired or already redeemed."""
        key = _h(code)
        raw = await self._kv.get("oidc-code", key)
        if raw is None:
            return None
        grant = AuthorizationGrant(**json.loads(raw))
        if grant.expires_at <= now:
            return None
        if await self._kv.put_if_absent("oidc-code-used", key, b"1", grant.expires_at) is not None:
            return None
        await self._kv.delete("oidc-code", key)
        return grant

    async def issue_device_code(
        self, client_id: str, scope: str, expires_at: float, interval: int
    ) -> tuple[str, DeviceGrant]:
        device_code = secrets.token_urlsafe(32)
        # Records outlive the grant by 10 minutes so late polls get expired_token, not invalid.
        keep = expires_at + 600
        while True:
            user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
            taken = await self._kv.put_if_absent(
                "oidc-user-code", user_code, _h(device_code).encode(), keep
            )
            if taken is None:
                break
        grant = DeviceGrant(client_id, scope, user_code, expires_at, interval)
        await self._kv.put_if_absent(
            "oidc-device", _h(device_code), json.dumps(asdict(grant)).encode(), keep
        )
        return device_code, grant

    async def device_by_user_code(self, user_code: str) -> tuple[str, DeviceGrant] | None:
        """(device-code hash, grant) for a user code, or ``None``."""
        device_hash = await self._kv.get("oidc-user-code", normalize_user_code(user_code))
        if device_hash is None:
            return None
        raw = await self._kv.get("oidc-device", device_hash.decode())
        if raw is None:
            return None
        return device_hash.decode(), DeviceGrant(**json.loads(raw))

    async def approve_device(self, device_hash: str, email: str, grant: DeviceGrant) -> bool:
        """Record the user's approval; ``False`` if the request was already decided."""
        value = json.dumps({"email": email}).encode()
        return (
            await self._kv.put_if_absent(
                "oidc-device-approved", device_hash, value, grant.expires_at + 600
            )
            is None
        )

    async def poll_device(self, device_code: str, now: float) -> tuple[str, Any]:
        """Decide a token-endpoint poll: one of the RFC 8628 §3.5 outcomes.

        Returns ``("ok", (grant, email))`` once, or ``(error_code, grant_or_None)``.
        """
        device_hash = _h(device_code)
        raw = await self._kv.get("oidc-device", device_hash)
        if raw is None:
            return "invalid_grant", None
        grant = DeviceGrant(**json.loads(raw))
        if now >= grant.expires_at:
            return "expired_token", grant
        # the interval is measured from the previous poll answered normally (not from a fixed
        # grid of slots, where two quick polls either side of a boundary both passed)
        earlier = await self._kv.put_if_absent(
            "oidc-device-poll", device_hash, b"1", now + grant.interval
        )
        approved = await self._kv.get("oidc-device-approved", device_hash)
        if approved is None:
            return ("authorization_pending" if earlier is None else "slow_down"), grant
        used = await self._kv.put_if_absent(
            "oidc-device-used", device_hash, b"1", grant.expires_at + 600
        )
        if used is not None:
            return "invalid_grant", grant
        return "ok", (grant, json.loads(approved)["email"])
