"""Users and OAuth clients of the embedded provider, with scrypt-hashed secrets.

Users come from ``--oidc-user EMAIL:PASSWORD`` (contracts.md §3) or the config file; passwords
are kept only as scrypt hashes (RFC 7914) in the ``scrypt$N$r$p$salt$hash`` form, and a config
file may hold that hash instead of the password. Clients (RFC 6749 §2) are public (no secret,
like Sigstore's ``sigstore`` client) or confidential; a confidential client with a ``subject``
URI is a CI machine that may use the client credentials grant (RFC 6749 §4.4).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from keyless.errors import ConfigError

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_EMAIL = re.compile(r"[^@\s:]+@[^@\s:]+\.[^@\s:]+|[^@\s:]+@localhost")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    """An scrypt hash of ``secret`` (RFC 7914) in ``scrypt$N$r$p$salt$hash`` form."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_hash_format(hashed: str) -> None:
    """Refuse anything that is not a well-formed, reasonably strong scrypt hash."""
    parts = hashed.split("$")
    try:
        ok = (
            len(parts) == 6
            and parts[0] == "scrypt"
            and int(parts[1]) >= 2**14
            and int(parts[2]) >= 8
            and int(parts[3]) >= 1
            and len(_unb64(parts[4])) >= 16
            and len(_unb64(parts[5])) == 32
        )
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError("password hash must be 'scrypt$N$r$p$salt$hash' (N >= 16384, r >= 8)")


def verify_secret(secret: str, hashed: str) -> bool:
    """Whether ``secret`` matches the scrypt hash ``hashed`` (constant-time comparison)."""
    _, n, r, p, salt, digest = hashed.split("$")
    candidate = hashlib.scrypt(
        secret.encode(),
        salt=_unb64(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=32,
        maxmem=256 * 1024 * 1024,
    )
    return hmac.compare_digest(candidate, _unb64(digest))


@functools.cache
def dummy_hash() -> str:
    """Compared against when the user does not exist, so that timing does not reveal which do."""
    return hash_secret("keyless-dummy-password", salt=b"keyless-dummy-salt")


@dataclass(frozen=True)
class OidcUser:
    """A person who can log in to the embedded provider; tokens name them by ``email``.

    ``totp_secret`` (base32, :mod:`~keyless.services.oidc.totp`) makes a one-time code a
    second factor of every sign-in of this user.
    """

    email: str
    password_hash: str
    totp_secret: str | None = None

    def __post_init__(self) -> None:
        if not _EMAIL.fullmatch(self.email):
            raise ConfigError(f"OIDC user {self.email!r} is not an email address")
        check_hash_format(self.password_hash)
        if self.totp_secret is not None:
            from keyless.services.oidc.totp import check_secret

            normalised = check_secret(self.totp_secret, f"OIDC user {self.email}")
            object.__setattr__(self, "totp_secret", normalised)

    def __repr__(self) -> str:  # never print the TOTP secret
        second = ", totp" if self.totp_secret else ""
        return f"OidcUser({self.email!r}{second})"

    @classmethod
    def parse(cls, spec: str) -> OidcUser:
        """Parse ``EMAIL:PASSWORD`` (``--oidc-user``); the password may itself contain ``:``."""
        email, sep, password = spec.partition(":")
        if not sep or not password:
            raise ConfigError("--oidc-user must be EMAIL:PASSWORD with a non-empty password")
        if not _EMAIL.fullmatch(email):
            raise ConfigError(f"--oidc-user: {email!r} is not an email address")
        return cls(email, hash_secret(password))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> OidcUser:
        """From a config-file entry ``{email, password}`` or ``{email, password_hash}``, each
        with an optional ``totp_secret``."""
        unknown = set(data) - {"email", "password", "password_hash", "totp_secret"}
        if unknown:
            raise ConfigError(f"OIDC user: unknown keys {sorted(unknown)}")
        email = data.get("email")
        if not isinstance(email, str):
            raise ConfigError("OIDC user: 'email' is required")
        totp = data.get("totp_secret")
        if totp is not None and not isinstance(totp, str):
            raise ConfigError(f"OIDC user {email}: totp_secret must be a base32 string")
        if isinstance(data.get("password_hash"), str):
            return cls(email, data["password_hash"], totp)
        password = data.get("password")
        if not isinstance(password, str) or not password:
            raise ConfigError(f"OIDC user {email}: 'password' or 'password_hash' is required")
        return cls(email, hash_secret(password), totp)


@dataclass(frozen=True)
class OidcClient:
    """An OAuth 2.0 client (RFC 6749 §2).

    ``secret_hash`` None makes it public (PKCE required, HTTP Basic with an empty secret
    accepted, as sigstore-python sends). ``redirect_uris`` are exact redirect URIs in addition
    to the loopback (RFC 8252 §7.3, any port) and out-of-band URIs public clients may use.
    ``subject`` enables the client credentials grant: the machine's token has ``sub`` =
    ``subject`` (a URI identity) and ``aud`` = ``audience``.
    """

    client_id: str
    secret_hash: str | None = None
    redirect_uris: tuple[str, ...] = ()
    subject: str | None = None
    audience: str = "sigstore"
    allow_loopback: bool = True

    def __post_init__(self) -> None:
        if not _CLIENT_ID.fullmatch(self.client_id):
            raise ConfigError(f"OIDC client id {self.client_id!r} is not valid")
        if self.secret_hash is not None:
            check_hash_format(self.secret_hash)
        if self.subject is not None:
            if self.secret_hash is None:
                raise ConfigError(
                    f"OIDC client {self.client_id}: a machine client (subject) needs a secret"
                )
            parts = urlsplit(self.subject)
            if not parts.scheme or not parts.hostname:
                raise ConfigError(
                    f"OIDC client {self.client_id}: subject {self.subject!r} must be a URI"
                )
        for uri in self.redirect_uris:
            if "#" in uri or not urlsplit(uri).scheme:
                raise ConfigError(f"OIDC client {self.client_id}: bad redirect URI {uri!r}")

    @property
    def public(self) -> bool:
        """Whether the client has no secret (RFC 6749 §2.1 public client)."""
        return self.secret_hash is None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> OidcClient:
        """From a config-file entry: client_id, secret|secret_hash, redirect_uris, subject…"""
        known = {"client_id", "secret", "secret_hash", "redirect_uris", "subject", "audience"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"OIDC client: unknown keys {sorted(unknown)}")
        client_id = data.get("client_id")
        if not isinstance(client_id, str):
            raise ConfigError("OIDC client: 'client_id' is required")
        secret_hash = data.get("secret_hash")
        if secret_hash is None and data.get("secret"):
            secret_hash = hash_secret(str(data["secret"]))
        uris = data.get("redirect_uris", [])
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            raise ConfigError(f"OIDC client {client_id}: redirect_uris must be a list of strings")
        subject = data.get("subject")
        audience = data.get("audience", "sigstore")
        if subject is not None and not isinstance(subject, str):
            raise ConfigError(f"OIDC client {client_id}: subject must be a string")
        if not isinstance(audience, str):
            raise ConfigError(f"OIDC client {client_id}: audience must be a string")
        return cls(client_id, secret_hash, tuple(uris), subject, audience)


def machine_client(client_id: str, secret: str, subject: str) -> OidcClient:
    """A confidential CI client for the client credentials grant."""
    return OidcClient(client_id, hash_secret(secret), subject=subject)
