"""TUF refresh of the trusted root and signing config (protocols.md §10; python-tuf ngclient).

A client bootstraps from an embedded ``root.json`` (the public-good production root ships under
``keyless/_data``), refreshes ``trusted_root.json`` and ``signing_config.v0.2.json`` through TUF
at most once per ``refresh_window`` seconds, and otherwise uses the verified targets cached on
disk. The cache lives under the user cache dir, one folder per repository URL (as
sigstore-python keys its ``_store`` by the quoted URL).

Failure policy (issue #8, targets.md G7):

* ``offline=True`` never touches the network and never writes to the cache: it uses the cached
  targets, or for the production instance the packaged trusted root;
* a refresh uses short timeouts (``timeout`` per connect/read, ``deadline`` for the whole run), so
  a machine without internet falls back within seconds instead of hanging;
* every *attempt*, successful or not, starts a new window: a failing repository is retried at
  most once per window, not on every run;
* when a refresh fails, the last TUF-verified targets in the cache are used, else the packaged
  root (production), with one warning through ``on_warning``; only when neither exists is the
  failure an error.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from keyless.errors import ConfigError, InvalidInput
from keyless.formats.signingconfig import SigningConfig
from keyless.formats.trustroot import ClientTrustConfig, TrustedRoot

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WINDOW",
    "SIGNING_CONFIG",
    "TRUSTED_ROOT",
    "TufTrust",
    "default_cache_dir",
]

if TYPE_CHECKING:
    from tuf.ngclient.fetcher import FetcherInterface

TRUSTED_ROOT = "trusted_root.json"
SIGNING_CONFIG = "signing_config.v0.2.json"
#: an instance with witnesses publishes its C2SP tlog-policy (docs/witnessing.md); optional
WITNESS_POLICY = "witness_policy.txt"
DEFAULT_WINDOW = 24 * 3600.0
#: seconds to connect, and between two bytes read, per request
DEFAULT_TIMEOUT = 5.0
#: seconds for a whole refresh (all metadata and targets)
DEFAULT_DEADLINE = 30.0
_STAMP = "last-attempt"


def _log_warning(message: str) -> None:
    """The default ``on_warning`` for library use: the ``keyless.trust.tuf`` logger."""
    import logging

    logging.getLogger(__name__).warning("%s", message)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/keyless/tuf`` (platformdirs' user cache dir).

    On Linux the XDG rule is applied directly: importing platformdirs costs more of the
    ≤ 300 ms cold-start budget than the rule itself.
    """
    platform: str = sys.platform  # (a plain str: mypy would prune the other branch)
    if platform.startswith("linux"):
        base = os.environ.get("XDG_CACHE_HOME", "").strip()
        root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
        return root / "keyless" / "tuf"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("keyless")) / "tuf"


def _reason(exc: BaseException) -> str:
    """The outermost non-empty one-line message in an exception chain (some are empty)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = " ".join(str(current).split())
        if text:
            return text
        current = current.__cause__ or current.__context__
    return type(exc).__name__


def _fetcher(timeout: float, deadline: float) -> tuple[FetcherInterface, Callable[[], None]]:
    """A python-tuf fetcher on httpx with a per-request timeout and a total deadline (and the
    function that closes its connections).

    python-tuf's default fetcher waits 30 s per attempt and lets urllib3 retry, which on a
    machine without a route to the internet means minutes; this one gives up after ``timeout``
    seconds per request and ``deadline`` seconds in all. HTTP errors are reported as
    ``DownloadHTTPError`` because the updater relies on 403/404 to end the root walk (TUF spec
    §5.3.2).
    """
    import httpx
    from tuf.api.exceptions import DownloadError, DownloadHTTPError, SlowRetrievalError
    from tuf.ngclient.fetcher import FetcherInterface

    from keyless import __version__

    stop = time.monotonic() + deadline
    client = httpx.Client(
        follow_redirects=True, headers={"User-Agent": f"keyless/{__version__} (TUF)"}
    )

    class HttpxFetcher(FetcherInterface):
        def _fetch(self, url: str) -> Iterator[bytes]:
            remaining = stop - time.monotonic()
            if remaining <= 0:
                raise SlowRetrievalError(f"the refresh took longer than {deadline:g} s")
            limit = httpx.Timeout(min(timeout, remaining))
            try:
                response = client.send(client.build_request("GET", url, timeout=limit), stream=True)
            except httpx.TimeoutException as exc:
                raise SlowRetrievalError(f"no answer from {url} within {timeout:g} s") from exc
            except httpx.HTTPError as exc:
                raise DownloadError(f"cannot fetch {url}: {_reason(exc)}") from exc
            if response.status_code >= 400:
                response.close()
                raise DownloadHTTPError(
                    f"{url} answered HTTP {response.status_code}", response.status_code
                )
            return self._chunks(response, url)

        @staticmethod
        def _chunks(response: httpx.Response, url: str) -> Iterator[bytes]:
            try:
                for chunk in response.iter_bytes():
                    if time.monotonic() > stop:
                        raise SlowRetrievalError(f"the refresh took longer than {deadline:g} s")
                    yield chunk
            except httpx.TimeoutException as exc:
                raise SlowRetrievalError(f"{url} stalled for {timeout:g} s") from exc
            except httpx.HTTPError as exc:
                raise DownloadError(f"cannot fetch {url}: {_reason(exc)}") from exc
            finally:
                response.close()

    return HttpxFetcher(), client.close


class TufTrust:
    """Trust material of one TUF repository, refreshed at most once per window."""

    def __init__(
        self,
        url: str,
        root_json: bytes,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        directory: Path | None = None,
        refresh_window: float = DEFAULT_WINDOW,
        offline: bool = False,
        fallback_root: TrustedRoot | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._root_json = root_json
        if directory is None:
            base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
            directory = base / quote(self.url, safe="")
        #: this repository's folder (``directory``, else one per URL under ``cache_dir``)
        self.directory = directory
        self.refresh_window = refresh_window
        self.offline = offline
        self.timeout = timeout
        self.deadline = deadline
        self._fallback = fallback_root
        self._clock = clock
        self._warn = on_warning or _log_warning

    @classmethod
    def production(
        cls,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        offline: bool = False,
        refresh_window: float = DEFAULT_WINDOW,
        on_warning: Callable[[str], None] | None = None,
    ) -> TufTrust:
        """The public-good production repository with its packaged root and trusted root."""
        from keyless.trust.production import PRODUCTION_TUF_URL, packaged, production_trusted_root

        return cls(
            PRODUCTION_TUF_URL,
            packaged("root.json"),
            cache_dir=cache_dir,
            offline=offline,
            refresh_window=refresh_window,
            fallback_root=production_trusted_root(),
            on_warning=on_warning,
        )

    # --- cache ----------------------------------------------------------------------------------

    @property
    def _targets(self) -> Path:
        return self.directory / "targets"

    def _due(self) -> bool:
        """True when no refresh was attempted within the window (or the clock went back)."""
        try:
            stamp = float((self.directory / _STAMP).read_text())
        except (OSError, ValueError):
            return True
        return not 0 <= self._clock() - stamp < self.refresh_window

    def _mark_attempt(self) -> None:
        """Start a new window; a cache we cannot write only means refreshing more often."""
        with contextlib.suppress(OSError):
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self.directory / f".{_STAMP}.{os.getpid()}"
            tmp.write_text(repr(self._clock()))
            os.replace(tmp, self.directory / _STAMP)

    def _cached(self) -> ClientTrustConfig | None:
        root_path = self._targets / TRUSTED_ROOT
        try:
            root_bytes = root_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read the cached {root_path}: {exc.strerror}") from exc
        try:
            root = TrustedRoot.from_json(root_bytes)
            sc_path = self._targets / SIGNING_CONFIG
            signing = SigningConfig.from_json(sc_path.read_bytes()) if sc_path.exists() else None
        except (InvalidInput, OSError) as exc:
            raise ConfigError(
                f"the cached TUF targets in {self._targets} are unusable: {exc}"
            ) from exc
        return ClientTrustConfig(root, signing)

    # --- refresh --------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Run a TUF update now and cache the verified targets (raises ConfigError on failure).

        The attempt is recorded whether it succeeds or fails, so that the window applies to
        failures too (see the module docstring).
        """
        if self.offline:
            raise ConfigError("TUF refresh is disabled in offline mode")
        try:
            self._update()
        except ConfigError:
            self._mark_attempt()
            raise
        except Exception as exc:  # python-tuf raises many unrelated types; report any as one
            self._mark_attempt()
            raise ConfigError(
                f"cannot refresh the trusted root from {self.url}: {_reason(exc)}"
            ) from exc
        # (an interrupted attempt, Ctrl-C, is not recorded: the next run tries again)
        self._mark_attempt()

    def _update(self) -> None:
        # private to the user (the folder holds the trust anchor the next refresh starts from)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.directory / "metadata").mkdir(mode=0o700, exist_ok=True)
        self._targets.mkdir(mode=0o700, exist_ok=True)
        fetcher, close = _fetcher(self.timeout, self.deadline)
        try:
            self._run_updater(fetcher)
        finally:
            close()

    def _run_updater(self, fetcher: FetcherInterface) -> None:
        from tuf.ngclient.updater import Updater

        metadata = self.directory / "metadata"
        # Start from the newest root already verified when there is one (fewer root
        # versions to walk), else from the embedded one (TUF spec §5.2 trusted root).
        cached_root = metadata / "root.json"
        updater = Updater(
            metadata_dir=str(metadata),
            metadata_base_url=self.url,
            target_dir=str(self._targets),
            target_base_url=self.url + "/targets/",
            fetcher=fetcher,
            bootstrap=None if cached_root.exists() else self._root_json,
        )
        updater.refresh()
        for name in (TRUSTED_ROOT, SIGNING_CONFIG, WITNESS_POLICY):
            info = updater.get_targetinfo(name)
            if info is None:
                if name == TRUSTED_ROOT:
                    raise ConfigError(f"the TUF repository {self.url} has no {name}")
                if name == WITNESS_POLICY:  # withdrawn: stop enforcing the cached copy
                    (self._targets / name).unlink(missing_ok=True)
                continue
            final = self._targets / name
            if updater.find_cached_target(info, str(final)) is not None:
                continue
            # python-tuf writes in place; readers in other processes must never see half a file
            partial = self._targets / f".{name}.{os.getpid()}"
            try:
                updater.download_target(info, str(partial))
                os.replace(partial, final)
            finally:
                partial.unlink(missing_ok=True)

    # --- the answer -----------------------------------------------------------------------------

    def client_trust_config(self) -> ClientTrustConfig:
        """The trust material to use now (see the module docstring for the policy)."""
        if self.offline:
            cached = self._cached()
            if cached is not None:
                return cached
            if self._fallback is not None:
                return ClientTrustConfig(self._fallback)
            raise ConfigError(
                f"no cached trust material for {self.url}; run once without --offline"
            )
        if not self._due():
            try:
                cached = self._cached()
            except ConfigError:
                cached = None  # an unreadable cache is refreshed like a stale one
            if cached is not None:
                return cached
            if self._fallback is not None:
                # the last attempt inside this window failed (and said so): no retry yet
                return ClientTrustConfig(self._fallback)
        try:
            self.refresh()
            refreshed = self._cached()
            if refreshed is None:
                raise ConfigError(f"the TUF refresh from {self.url} left no {TRUSTED_ROOT}")
            return refreshed
        except ConfigError as exc:
            return self._fall_back(exc)

    def _fall_back(self, failure: ConfigError) -> ClientTrustConfig:
        try:
            cached = self._cached()
        except ConfigError:
            cached = None
        if cached is not None:
            self._warn(f"{failure}; using the trusted root cached from an earlier refresh")
            return cached
        if self._fallback is not None:
            self._warn(f"{failure}; using the trusted root shipped with keyless")
            return ClientTrustConfig(self._fallback)
        raise failure
