"""Where the client's trust material comes from (contracts.md §4; protocols.md §7, §10).

In order of precedence: ``--trust-config FILE`` (a ClientTrustConfig), ``--server URL`` (a keyless
instance's TUF repository, from the root pinned with ``keyless trust-instance`` or else trusted on
first use: :mod:`keyless.trust.instances`), or the public-good production trusted root shipped
as package data (:mod:`keyless.trust.production`), refreshed through TUF (:mod:`keyless.trust.tuf`)
at most once per window and never with ``offline=True``; a refresh that fails (no network) falls
back to the last verified cache or the shipped root with one warning. Only the paths that need the
network import ``httpx`` or ``tuf``; the offline path reads one packaged file.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from keyless.errors import ConfigError, InvalidInput
from keyless.formats.signingconfig import SigningConfig
from keyless.formats.trustroot import ClientTrustConfig, TrustedRoot

__all__ = [
    "MAX_TRUST_FILE",
    "load_client_trust_config",
    "load_signing_config",
    "load_trusted_root",
    "resolve_trust",
]

#: trust material is kilobytes; a limit keeps ``--trust-config /dev/zero`` from eating memory
MAX_TRUST_FILE = 16 << 20


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TRUST_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {os.fspath(path)!r}: {exc.strerror}") from exc
    if len(data) > MAX_TRUST_FILE:
        raise ConfigError(f"{what} {os.fspath(path)!r} is larger than {MAX_TRUST_FILE >> 20} MiB")
    return data


def load_trusted_root(path: str | os.PathLike[str]) -> TrustedRoot:
    """A ``trusted_root.json`` file; malformed roots are a ConfigError naming the field."""
    try:
        return TrustedRoot.from_json(_read(path, "trusted root"))
    except InvalidInput as exc:
        raise ConfigError(f"invalid trusted root {os.fspath(path)!r}: {exc}") from exc


def load_signing_config(path: str | os.PathLike[str]) -> SigningConfig:
    """A ``signing_config.v0.2.json`` file."""
    try:
        return SigningConfig.from_json(_read(path, "signing config"))
    except InvalidInput as exc:
        raise ConfigError(f"invalid signing config {os.fspath(path)!r}: {exc}") from exc


def load_client_trust_config(path: str | os.PathLike[str]) -> ClientTrustConfig:
    """A ClientTrustConfig file (``--trust-config``)."""
    try:
        return ClientTrustConfig.from_json(_read(path, "trust config"))
    except InvalidInput as exc:
        raise ConfigError(f"invalid trust config {os.fspath(path)!r}: {exc}") from exc


def resolve_trust(
    *,
    trust_config: str | None = None,
    server: str | None = None,
    offline: bool = False,
    allow_insecure_http: bool = False,
    tuf_cache: str | None = None,
    refresh_window: float = 24 * 3600.0,
    on_warning: Callable[[str], None] | None = None,
) -> ClientTrustConfig:
    """The trust material chosen by the CLI options (see the module docstring).

    ``on_warning`` receives one line when the TUF refresh failed and an older root is used, and
    the fingerprint of a ``server`` root trusted on first use.
    """
    if trust_config is not None and server is not None:
        raise ConfigError("give at most one of --trust-config and --server")
    if trust_config is not None:
        return load_client_trust_config(trust_config)
    if server is not None:
        if offline:
            raise ConfigError("--server needs the network; drop --offline or use --trust-config")
        from keyless.trust.instances import instance_trust

        return instance_trust(
            server,
            allow_insecure_http=allow_insecure_http,
            refresh_window=refresh_window,
            on_warning=on_warning,
        )
    from keyless.trust.tuf import TufTrust

    # offline: the last TUF-verified root in the cache, else the packaged one (no network)
    return TufTrust.production(
        cache_dir=tuf_cache, refresh_window=refresh_window, offline=offline, on_warning=on_warning
    ).client_trust_config()
