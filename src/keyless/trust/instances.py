"""Trust in a self-hosted keyless instance (``--server URL``, ``keyless trust-instance``).

An instance publishes its trusted root and signing config as targets of its own TUF repository
at ``URL/tuf`` (protocols.md §10). The client trusts them only through that repository:

* **pinned** — ``keyless trust-instance URL ROOT.json`` stores the instance's TUF root (the
  operator's ``DIR/tuf-root.json``, handed over out of band) under the user data dir, once. From
  then on ``--server URL`` refreshes the targets through TUF from that root (python-tuf
  ngclient, at most once per refresh window, like the public-good path) and a server that
  answers with other keys is refused. Plain HTTP is acceptable here: every byte is checked
  against the pinned keys, which is what TUF is designed for.
* **trust on first use** — without a pin, ``--server URL`` fetches ``URL/tuf/1.root.json``,
  says on stderr which root it used (its SHA-256 fingerprint) and how to pin it, and refreshes
  from it into a throw-away directory, so nothing learnt this way is remembered or can ever
  stand in for a pin. Over plain HTTP this would trust whoever sits on the path, so it is
  refused for a host that is not the loopback unless ``--allow-insecure-http`` is given — and
  refused before any connection is made.

The instance's ``/client-trust-config.json`` is never read: it is unsigned.

The pin store is ``$XDG_DATA_HOME/keyless/instances`` (platformdirs' user data dir elsewhere),
mode 0700, one folder per instance URL (quoted) holding ``pinned-root.json`` (0600) and the TUF
metadata and targets verified from it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlsplit

from keyless.errors import ConfigError
from keyless.formats.trustroot import ClientTrustConfig
from keyless.trust.tuf import DEFAULT_TIMEOUT, DEFAULT_WINDOW, TufTrust

__all__ = [
    "INSECURE_FLAG",
    "MAX_ROOT",
    "PINNED_ROOT",
    "TUF_PATH",
    "check_root",
    "default_store",
    "fetch_first_root",
    "fingerprint",
    "instance_trust",
    "is_loopback",
    "normalize_url",
    "pin",
    "pinned_root",
]

PINNED_ROOT = "pinned-root.json"
#: the instance's TUF repository, relative to its URL (contracts.md §2)
TUF_PATH = "/tuf"
INSECURE_FLAG = "--allow-insecure-http"
#: a TUF root is a few kB
MAX_ROOT = 1 << 20


def default_store() -> Path:
    """``$XDG_DATA_HOME/keyless/instances`` (platformdirs' user data dir off Linux)."""
    platform: str = sys.platform  # (a plain str: mypy would prune the other branch)
    if platform.startswith("linux"):
        base = os.environ.get("XDG_DATA_HOME", "").strip()
        root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "share"
        return root / "keyless" / "instances"
    from platformdirs import user_data_dir

    return Path(user_data_dir("keyless")) / "instances"


def normalize_url(url: str) -> str:
    """The instance URL as the pin is keyed: http(s), a host, no query, no trailing slash."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--server {url!r} is not an http:// or https:// URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"--server {url!r} must not carry credentials, a query or a fragment")
    return url.rstrip("/")


def is_loopback(url: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1): no one on the path."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fingerprint(root_json: bytes) -> str:
    """``sha256:<hex>`` of a root.json as served (= ``sha256sum DIR/tuf-root.json``)."""
    return "sha256:" + hashlib.sha256(root_json).hexdigest()


def check_root(root_json: bytes, where: str) -> int:
    """A TUF root signed by its own threshold of root keys; returns its version."""
    from tuf.api.exceptions import RepositoryError
    from tuf.api.metadata import Metadata, Root  # type: ignore[attr-defined]

    try:
        metadata = Metadata[Root].from_bytes(root_json)
    except Exception as exc:  # python-tuf raises several unrelated types for bad input
        raise ConfigError(f"{where} is not TUF root metadata") from exc
    if not isinstance(metadata.signed, Root):
        raise ConfigError(f"{where} is TUF {metadata.signed.type} metadata, not a root")
    try:
        metadata.verify_delegate(Root.type, metadata)
    except RepositoryError as exc:
        raise ConfigError(f"{where} is not signed by its own root keys: {exc}") from exc
    return int(metadata.signed.version)


def _instance_dir(store: Path, url: str) -> Path:
    return store / quote(url, safe="")


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def pinned_root(url: str, store: Path | None = None) -> bytes | None:
    """The TUF root pinned for this instance URL, if any."""
    path = _instance_dir(store or default_store(), normalize_url(url)) / PINNED_ROOT
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the pinned root {path}: {exc.strerror}") from exc


def pin(
    url: str,
    root_json: bytes,
    *,
    store: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    where: str = "ROOT.json",
) -> ClientTrustConfig:
    """Pin ``root_json`` for the instance at ``url`` after a first TUF refresh succeeded.

    The refresh runs in a fresh folder beside the final one, which replaces any earlier pin only
    once the instance has proved it holds the pinned keys; a failure leaves nothing behind.
    """
    url = normalize_url(url)
    check_root(root_json, where)
    store = store or default_store()
    _private_dir(store)
    final = _instance_dir(store, url)
    staging = Path(tempfile.mkdtemp(prefix=".pin-", dir=store))  # mode 0700
    try:
        fd = os.open(staging / PINNED_ROOT, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(root_json)
        tuf = _pinned_trust(url, root_json, staging, timeout=timeout, refresh_window=0)
        try:
            config = tuf.client_trust_config()  # a fresh folder: one refresh, no fallback
        except ConfigError as exc:
            raise ConfigError(
                f"{exc}; {url} did not prove that it holds the keys of the root given"
            ) from exc
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return config


def _pinned_trust(
    url: str,
    root_json: bytes,
    directory: Path,
    *,
    refresh_window: float = DEFAULT_WINDOW,
    timeout: float = DEFAULT_TIMEOUT,
    on_warning: Callable[[str], None] | None = None,
) -> TufTrust:
    return TufTrust(
        url + TUF_PATH,
        root_json,
        directory=directory,
        refresh_window=refresh_window,
        timeout=timeout,
        on_warning=on_warning,
    )


def fetch_first_root(url: str, *, timeout: float = 10.0) -> bytes:
    """``GET URL/tuf/1.root.json`` (the root that trust on first use starts from)."""
    import httpx

    where = url + TUF_PATH + "/1.root.json"
    try:
        with httpx.stream("GET", where, timeout=timeout, follow_redirects=False) as response:
            if response.status_code != 200:
                raise ConfigError(
                    f"cannot fetch {where}: HTTP {response.status_code}"
                    " (is this a keyless instance?)"
                )
            data = b""
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > MAX_ROOT:
                    raise ConfigError(f"{where} is larger than {MAX_ROOT >> 10} KiB")
    except httpx.TimeoutException as exc:
        raise ConfigError(f"{where} did not answer within {timeout:g} s") from exc
    except httpx.HTTPError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"cannot fetch {where}: {reason}") from exc
    return data


def cached_instance_target(
    url: str, name: str, *, store: Path | None = None
) -> bytes | None:
    """A TUF target of a pinned instance as its last refresh verified and cached it (None if
    the instance is not pinned or does not publish ``name``)."""
    url = normalize_url(url)
    store = store or default_store()
    if pinned_root(url, store) is None:
        return None
    try:
        return (_instance_dir(store, url) / "targets" / name).read_bytes()
    except OSError:
        return None


def instance_trust(
    url: str,
    *,
    allow_insecure_http: bool = False,
    store: Path | None = None,
    refresh_window: float = DEFAULT_WINDOW,
    on_warning: Callable[[str], None] | None = None,
) -> ClientTrustConfig:
    """The trust material of the keyless instance at ``url`` (see the module docstring)."""
    url = normalize_url(url)
    store = store or default_store()
    root_json = pinned_root(url, store)
    if root_json is not None:
        tuf = _pinned_trust(
            url,
            root_json,
            _instance_dir(store, url),
            refresh_window=refresh_window,
            on_warning=on_warning,
        )
        return tuf.client_trust_config()
    if url.startswith("http://") and not is_loopback(url) and not allow_insecure_http:
        raise ConfigError(
            f"refusing to trust {url} on first use over plain HTTP (anyone on the path could "
            f"answer); pin its TUF root with `keyless trust-instance {url} ROOT.json`, use "
            f"https, or pass {INSECURE_FLAG}"
        )
    first = fetch_first_root(url)
    check_root(first, f"{url}{TUF_PATH}/1.root.json")
    warn = on_warning or (lambda message: print(f"warning: {message}", file=sys.stderr))
    warn(
        f"{url} is not pinned: trusting its TUF root {fingerprint(first)} on first use; "
        f"check this fingerprint with the instance's operator (sha256sum DIR/tuf-root.json) "
        f"and pin it once with `keyless trust-instance {url} tuf-root.json`"
    )
    with tempfile.TemporaryDirectory(prefix="keyless-tofu-") as scratch:
        # a fresh folder: exactly one refresh, and a failure is an error (nothing to fall
        # back on); the folder goes away, so trust learnt on first use is never remembered
        tuf = TufTrust(url + TUF_PATH, first, directory=Path(scratch), refresh_window=0)
        return tuf.client_trust_config()
