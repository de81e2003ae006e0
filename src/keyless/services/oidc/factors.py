"""Second factors users enrol themselves on the account page: a TOTP secret and recovery codes.

Kept per user in the shared key-value store (so every frontend sees them), the TOTP secret
wrapped under the key-encryption key when the provider has a sealer (``keyless serve`` always
passes one). Recovery codes are shown once at enrolment and stored only as SHA-256 hashes: each
is 80 random bits, so a fast hash does not make them guessable, and each works once
(``put_if_absent`` on the used hash, so two frontends cannot both accept it).

Enrolment is two steps: after signing in with the password, :meth:`FactorStore.begin` makes a
secret and keeps it *pending* (ten minutes, under an unguessable id); the user scans it and sends
a code, and :meth:`FactorStore.complete` makes it the user's factor and returns the recovery codes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from keyless.services.oidc.totp import new_secret
from keyless.storage.seam import KeyValue

_NS = "oidc-second-factor"
_USED_NS = "oidc-recovery-used"
_PENDING_NS = "oidc-totp-pending"
_FOREVER = 2.0**62
#: how long a scanned-but-unconfirmed secret waits for its first code
PENDING_SECONDS = 600
RECOVERY_CODES = 10


def _recovery_hash(code: str) -> str:
    normalised = code.strip().lower().replace("-", "").replace(" ", "")
    return hashlib.sha256(b"keyless-recovery\0" + normalised.encode()).hexdigest()


def new_recovery_code() -> str:
    """80 random bits as four groups of four base32 characters (``abcd-efgh-ijkl-mnop``)."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


@dataclass(frozen=True)
class Enrolment:
    """A user's enrolled second factor."""

    totp_secret: str
    recovery_hashes: tuple[str, ...]


class FactorStore:
    """Enrolled factors by user email; ``kv`` should be sealed (it holds TOTP secrets)."""

    def __init__(self, kv: KeyValue, clock: Callable[[], float] = time.time) -> None:
        self._kv = kv
        self._clock = clock

    async def get(self, email: str) -> Enrolment | None:
        raw = await self._kv.get(_NS, email.lower())
        if raw is None:
            return None
        value = json.loads(raw)
        return Enrolment(str(value["totp"]), tuple(value["recovery"]))

    async def begin(self, email: str) -> tuple[str, str]:
        """A pending enrolment of ``email``: ``(pending id, new TOTP secret)``."""
        pending, secret = secrets.token_urlsafe(24), new_secret()
        value = json.dumps({"email": email.lower(), "totp": secret}).encode()
        await self._kv.put_if_absent(_PENDING_NS, pending, value,
                                     self._clock() + PENDING_SECONDS)
        return pending, secret

    async def pending(self, pending: str) -> tuple[str, str] | None:
        """``(email, secret)`` of a live pending enrolment."""
        if not 16 <= len(pending) <= 64:
            return None
        raw = await self._kv.get(_PENDING_NS, pending)
        if raw is None:
            return None
        value = json.loads(raw)
        return str(value["email"]), str(value["totp"])

    async def complete(self, pending: str) -> list[str] | None:
        """Make the pending secret the user's factor; the recovery codes to show once, or
        ``None`` when the enrolment is gone or the user enrolled meanwhile."""
        found = await self.pending(pending)
        if found is None:
            return None
        await self._kv.delete(_PENDING_NS, pending)
        email, secret = found
        codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
        value = json.dumps({"totp": secret,
                            "recovery": [_recovery_hash(c) for c in codes]}).encode()
        if await self._kv.put_if_absent(_NS, email, value, _FOREVER) is not None:
            return None
        return codes

    async def use_recovery_code(self, email: str, code: str) -> bool:
        """Whether ``code`` is an unused recovery code of ``email`` (it is used up if so)."""
        enrolment = await self.get(email)
        digest = _recovery_hash(code)
        if enrolment is None or digest not in enrolment.recovery_hashes:
            return False
        used = await self._kv.put_if_absent(_USED_NS, f"{email.lower()}|{digest}", b"1", _FOREVER)
        return used is None

    async def recovery_codes_left(self, email: str) -> int:
        enrolment = await self.get(email)
        if enrolment is None:
            return 0
        left = 0
        for digest in enrolment.recovery_hashes:
            if await self._kv.get(_USED_NS, f"{email.lower()}|{digest}") is None:
                left += 1
        return left
