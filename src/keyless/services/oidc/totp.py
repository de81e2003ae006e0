"""Time-based one-time passwords (RFC 6238) as the provider's second factor.

Codes are computed by ``pyotp`` (HMAC-SHA1, 6 digits, 30-second steps: what every
authenticator app speaks). A code is accepted for the current step and one step either side
(RFC 6238 §5.2 resynchronisation window for clock drift and typing time), and **once**: the
accepted (account, step) is recorded in the shared key-value store with ``put_if_absent``, so a
code seen by an observer cannot be replayed, on this process or another one sharing the
database. Guessing is throttled by the caller with the same
:class:`~keyless.services.oidc.ratelimit.LoginLimiter` as passwords.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import time
from collections.abc import Callable

import pyotp

from keyless.errors import ConfigError
from keyless.storage.seam import KeyValue

STEP = 30
DIGITS = 6
#: steps either side of now whose codes are accepted (RFC 6238 §5.2)
WINDOW = 1
#: shortest accepted secret: RFC 4226 §4 R6 requires at least 128 bits
MIN_SECRET_BYTES = 16
_CODE = re.compile(r"[0-9]{6}")
_USED_NS = "oidc-totp-used"


def check_secret(secret: str, where: str) -> str:
    """The normalised (upper-case, unpadded) base32 ``secret``, or :class:`ConfigError`."""
    normalised = secret.replace(" ", "").upper().rstrip("=")
    try:
        raw = base64.b32decode(normalised + "=" * (-len(normalised) % 8))
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{where}: totp_secret is not base32") from exc
    if len(raw) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"{where}: totp_secret has {len(raw) * 8} bits; at least {MIN_SECRET_BYTES * 8} "
            "are required (RFC 4226 §4)"
        )
    return normalised


def new_secret() -> str:
    """A fresh 160-bit base32 secret (RFC 4226 §4 recommends 160 bits)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://`` URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


class TotpChecker:
    """Checks codes against accounts' secrets, each code once."""

    def __init__(self, kv: KeyValue, clock: Callable[[], float] = time.time) -> None:
        self._kv = kv
        self._clock = clock

    def _matching_step(self, secret: str, code: str, now: float) -> int | None:
        totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP)
        found = None
        for offset in range(-WINDOW, WINDOW + 1):
            moment = now + offset * STEP
            if hmac.compare_digest(totp.at(moment), code):  # every step is compared: no early exit
                found = int(moment // STEP)
        return found

    async def check(self, account: str, secret: str, code: str) -> bool:
        """Whether ``code`` is a current code of ``secret`` not used before for ``account``."""
        code = code.strip().replace(" ", "")
        if not _CODE.fullmatch(code):
            return False
        now = self._clock()
        step = self._matching_step(secret, code, now)
        if step is None:
            return False
        expires = (step + WINDOW + 2) * STEP  # after that the step is outside every window
        previous = await self._kv.put_if_absent(_USED_NS, f"{account}|{step}", b"1", expires)
        return previous is None
