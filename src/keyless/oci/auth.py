"""Registry credentials from the Docker config, as ``docker login`` leaves them.

``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``):

* ``credHelpers[host]`` names a ``docker-credential-<name>`` program for one registry,
  ``credsStore`` one for all; the program gets the server on stdin for ``get`` and answers
  ``{"ServerURL", "Username", "Secret"}`` (username ``<token>`` means an identity token);
* ``auths[host].auth`` is base64 ``user:password``; ``identitytoken`` is an OAuth2 refresh token.

Docker Hub's entry is keyed ``https://index.docker.io/v1/``. Keys may carry a scheme or path;
they are matched by host[:port]. Nothing read here is ever logged or shown.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyless.errors import ConfigError, shown
from keyless.oci.reference import DOCKER_HUB, DOCKER_HUB_API

HELPER_TIMEOUT = 30.0
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = frozenset({DOCKER_HUB, DOCKER_HUB_API, "docker.io"})


@dataclass(frozen=True)
class Credentials:
    """Basic credentials, or an identity (refresh) token for the Bearer flow."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)


def _normalise(key: str) -> str:
    """``https://host:port/v1/`` → ``host:port``; Docker Hub aliases fold together."""
    host = key.split("://", 1)[-1].split("/", 1)[0].lower()
    return DOCKER_HUB if host in _HUB_ALIASES else host


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def load_config(path: Path) -> dict[str, Any]:
    """The Docker config, or ``{}`` when absent; malformed is an error naming the file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the Docker config {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"the Docker config {path} is not JSON") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"the Docker config {path} is not a JSON object")
    return data


def run_helper(name: str, server: str) -> Credentials | None:
    """``docker-credential-<name> get``; ``None`` when it knows no credentials for ``server``."""
    if not name or "/" in name or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"the Docker config names an invalid credential helper {shown(name)}")
    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        raise ConfigError(f"the credential helper docker-credential-{name} is not installed")
    try:
        done = subprocess.run(
            [program, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"the credential helper docker-credential-{name} failed: {exc}") from exc
    if done.returncode != 0:
        if b"credentials not found" in done.stdout.lower() + done.stderr.lower():
            return None
        # the helper's output may hold secrets: never shown
        raise ConfigError(
            f"the credential helper docker-credential-{name} failed (exit {done.returncode})"
        )
    try:
        answer = json.loads(done.stdout)
        username, secret = str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"the credential helper docker-credential-{name} answered unreadably"
        ) from exc
    if username == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username, secret)


def _from_auths(entry: Any, key: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Credentials(identity_token=token)
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, sep, password = base64.b64decode(auth, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"the Docker config's auth for {shown(key)} is not base64") from exc
        if not sep:
            raise ConfigError(f"the Docker config's auth for {shown(key)} is not user:password")
        return Credentials(user, password)
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(secret, str) and name:
        return Credentials(name, secret)
    return None


def find_credentials(registry: str, config: Mapping[str, Any]) -> Credentials | None:
    """Credentials for ``registry`` (``host[:port]``): helper first, as docker does."""
    wanted = _normalise(registry)
    server = DOCKER_HUB_KEY if wanted == DOCKER_HUB else registry
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if _normalise(str(key)) == wanted and isinstance(name, str):
                return run_helper(name, server)
    auths = config.get("auths")
    entry: Any = None
    entry_key = ""
    if isinstance(auths, dict):
        for key, value in auths.items():
            if _normalise(str(key)) == wanted:
                entry = value
                entry_key = str(key)
                break
    found = _from_auths(entry, entry_key) if entry is not None else None
    if found is not None:
        return found
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        return run_helper(store, server)
    return None


class DockerConfigCredentials:
    """Looks credentials up per registry, reading the config once."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_path()
        self._config: dict[str, Any] | None = None
        self._cache: dict[str, Credentials | None] = {}

    def __call__(self, registry: str) -> Credentials | None:
        if registry not in self._cache:
            if self._config is None:
                self._config = load_config(self.path)
            self._cache[registry] = find_credentials(registry, self._config)
        return self._cache[registry]
