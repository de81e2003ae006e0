"""TUF refresh of the trusted root and signing config (protocols.md §10; python-tuf ngclient).

A client bootstraps from an embedded ``root.json`` (the public-good production root ships under
``keyless/_data``), refreshes ``trusted_root.json`` and ``signing_config.v0.2.json`` through TUF
at most once per ``refresh_window`` seconds, and otherwise uses the verified targets cached on
disk. ``offline=True`` never touches the network: it uses the cache, or for the production
instance the packaged trusted root. The cache lives under the user cache dir, one folder per
repository URL (as sigstore-python keys its ``_store`` by the quoted URL).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from keyless.errors import ConfigError, InvalidInput
from keyless.formats.bundle import ClientTrustConfig, SigningConfig, TrustedRoot

TRUSTED_ROOT = "trusted_root.json"
SIGNING_CONFIG = "signing_config.v0.2.json"
DEFAULT_WINDOW = 24 * 3600.0
_STAMP = "last-refresh"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/keyless/tuf`` (platformdirs' user cache dir)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("keyless")) / "tuf"


class TufTrust:
    """Trust material of one TUF repository, refreshed at most once per window."""

    def __init__(
        self,
        url: str,
        root_json: bytes,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        refresh_window: float = DEFAULT_WINDOW,
        offline: bool = False,
        fallback_root: TrustedRoot | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self._root_json = root_json
        base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.directory = base / quote(self.url, safe="")
        self.refresh_window = refresh_window
        self.offline = offline
        self._fallback = fallback_root
        self._clock = clock

    @classmethod
    def production(
        cls,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        offline: bool = False,
        refresh_window: float = DEFAULT_WINDOW,
    ) -> TufTrust:
        """The public-good production repository with its packaged root and trusted root."""
        from keyless.trust.sources import PRODUCTION_TUF_URL, packaged, production_trusted_root

        return cls(
            PRODUCTION_TUF_URL,
            packaged("root.json"),
            cache_dir=cache_dir,
            offline=offline,
            refresh_window=refresh_window,
            fallback_root=production_trusted_root(),
        )

    # --- cache ----------------------------------------------------------------------------------

    @property
    def _targets(self) -> Path:
        return self.directory / "targets"

    def _fresh(self) -> bool:
        try:
            stamp = float((self.directory / _STAMP).read_text())
        except (OSError, ValueError):
            return False
        return 0 <= self._clock() - stamp < self.refresh_window

    def _cached(self) -> ClientTrustConfig | None:
        root_path = self._targets / TRUSTED_ROOT
        if not root_path.exists():
            return None
        try:
            root = TrustedRoot.from_json(root_path.read_bytes())
            sc_path = self._targets / SIGNING_CONFIG
            signing = SigningConfig.from_json(sc_path.read_bytes()) if sc_path.exists() else None
        except InvalidInput as exc:
            raise ConfigError(f"cached TUF target in {self._targets} is invalid: {exc}") from exc
        return ClientTrustConfig(root, signing)

    # --- refresh --------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Run a TUF update now and cache the verified targets (raises ConfigError on failure)."""
        if self.offline:
            raise ConfigError("TUF refresh is disabled in offline mode")
        from tuf.api.exceptions import DownloadError, RepositoryError
        from tuf.ngclient.updater import Updater

        metadata = self.directory / "metadata"
        metadata.mkdir(parents=True, exist_ok=True)
        self._targets.mkdir(parents=True, exist_ok=True)
        try:
            updater = Updater(
                metadata_dir=str(metadata),
                metadata_base_url=self.url,
                target_dir=str(self._targets),
                target_base_url=self.url + "/targets/",
                bootstrap=self._root_json,
            )
            updater.refresh()
            for name in (TRUSTED_ROOT, SIGNING_CONFIG):
                info = updater.get_targetinfo(name)
                if info is None:
                    if name == TRUSTED_ROOT:
                        raise ConfigError(f"TUF repository {self.url} has no {name}")
                    continue
                path = str(self._targets / name)
                if updater.find_cached_target(info, path) is None:
                    updater.download_target(info, path)
        except (RepositoryError, DownloadError, OSError, ValueError) as exc:
            raise ConfigError(
                f"TUF refresh from {self.url} failed: {exc} (use --offline to skip it)"
            ) from exc
        (self.directory / _STAMP).write_text(str(self._clock()))

    def client_trust_config(self) -> ClientTrustConfig:
        """Cached targets when fresh (or offline); otherwise refresh first."""
        if not self.offline and not self._fresh():
            self.refresh()
        cached = self._cached()
        if cached is not None:
            return cached
        if self._fallback is not None:
            return ClientTrustConfig(self._fallback)
        raise ConfigError(f"no cached trust material for {self.url}; run once without --offline")
