"""What ``keyless-git`` reads from git's configuration and the environment (docs/git.md).

=======================  ===========================  =============================================
git config               environment (wins)           meaning
=======================  ===========================  =============================================
``keyless.server``       ``KEYLESS_SERVER``           a keyless instance, trusted through its TUF
                                                      repository (as ``keyless sign --server``)
``keyless.trustConfig``  ``KEYLESS_TRUST_CONFIG``     a ClientTrustConfig file (``--trust-config``)
``keyless.identity``     ``KEYLESS_GIT_IDENTITY``     the expected signer (certificate SAN)
``keyless.issuer``       ``KEYLESS_GIT_ISSUER``       the expected OIDC issuer
``keyless.rekorVersion`` —                            1 or 2: the log version to sign with
=======================  ===========================  =============================================

With neither server nor trust config, the public-good Sigstore instance is used (as ``keyless
sign``). git runs the program in the repository, so ``git config`` sees its local settings.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from keyless.errors import ConfigError

__all__ = ["GitSettings", "read_git_config", "settings"]

_KEYS = ("server", "trustconfig", "identity", "issuer", "rekorversion")
_ENV = {
    "server": "KEYLESS_SERVER",
    "trustconfig": "KEYLESS_TRUST_CONFIG",
    "identity": "KEYLESS_GIT_IDENTITY",
    "issuer": "KEYLESS_GIT_ISSUER",
}


@dataclass(frozen=True)
class GitSettings:
    server: str | None = None
    trust_config: str | None = None
    identity: str | None = None
    issuer: str | None = None
    rekor_version: int | None = None


def read_git_config() -> dict[str, str]:
    """The ``keyless.*`` settings git sees here (names lower-cased, as git reports them)."""
    try:
        done = subprocess.run(
            ["git", "config", "--null", "--get-regexp", r"^keyless\."],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    values: dict[str, str] = {}
    for item in done.stdout.split(b"\0"):
        key, _, value = item.partition(b"\n")
        name = key.decode(errors="replace").lower().removeprefix("keyless.")
        if name in _KEYS:
            values[name] = value.decode(errors="replace")
    return values


def settings(git: dict[str, str] | None = None) -> GitSettings:
    """Git config overlaid with the environment; contradictions are a ConfigError."""
    values = dict(read_git_config() if git is None else git)
    for name, env in _ENV.items():
        if os.environ.get(env):
            values[name] = os.environ[env]
    server = values.get("server") or None
    trust_config = values.get("trustconfig") or None
    if server and trust_config:
        raise ConfigError(
            "both keyless.server and keyless.trustConfig are set (git config or "
            "KEYLESS_SERVER / KEYLESS_TRUST_CONFIG); keep one"
        )
    version: int | None = None
    if raw := values.get("rekorversion"):
        if raw not in ("1", "2"):
            raise ConfigError(f"keyless.rekorVersion is {raw!r}; use 1 or 2")
        version = int(raw)
    return GitSettings(
        server=server,
        trust_config=trust_config,
        identity=values.get("identity") or None,
        issuer=values.get("issuer") or None,
        rekor_version=version,
    )
