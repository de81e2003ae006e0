"""Image references: ``host[:port]/repo[:tag|@sha256:HEX]`` (the Docker / OCI grammar).

A name without a registry host (``alpine``, ``org/app``) is on Docker Hub, as in every other
tool: its API lives at ``registry-1.docker.io`` and single names are under ``library/``; the
*display* registry is ``index.docker.io``, which is what cosign writes as ``docker-reference``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keyless.errors import InvalidInput, shown

DOCKER_HUB = "index.docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"

# distribution/reference grammar (reference/regexp.go), condensed
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


def is_tag(text: str) -> bool:
    """A valid tag (``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``)."""
    return _TAG.fullmatch(text) is not None


def is_digest(text: str) -> bool:
    """``sha256:<64 lowercase hex>``."""
    return _DIGEST.fullmatch(text) is not None


def hostname(registry: str) -> str:
    """The host of ``host[:port]`` (brackets kept for IPv6)."""
    if registry.startswith("["):
        return registry[: registry.index("]") + 1]
    return registry.rsplit(":", 1)[0]


def is_loopback(registry: str) -> bool:
    """Whether ``host[:port]`` is on the loopback (plain HTTP is allowed there)."""
    host = hostname(registry)
    return host in LOOPBACK_HOSTS or host.startswith("127.")


@dataclass(frozen=True)
class Reference:
    """A parsed reference; exactly one of ``tag`` and ``digest`` is set."""

    registry: str  #: ``host[:port]`` as written (``index.docker.io`` for Docker Hub)
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """Where the registry API is served (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest (cosign's ``docker-reference``)."""
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, None, digest)

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, tag, None)

    @property
    def identifier(self) -> str:
        """The tag or digest, as used in ``/manifests/<identifier>``."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        return f"{self.name}@{self.digest}" if self.digest else f"{self.name}:{self.tag}"


def parse_reference(text: str) -> Reference:
    """Parse ``[host[:port]/]repo[:tag][@sha256:HEX]``; a digest wins over a tag."""
    if not text or len(text) > 1024 or not text.isprintable() or text != text.strip():
        raise InvalidInput(f"{shown(text)} is not an image reference")
    rest, _, digest = text.partition("@")
    if digest and not is_digest(digest):
        raise InvalidInput(f"{shown(text)}: the digest must be sha256:<64 lowercase hex digits>")
    tag: str | None = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidInput(f"{shown(text)}: {shown(tag)} is not a valid tag")
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, repository = first, remainder
        if not _HOST.fullmatch(registry):
            raise InvalidInput(f"{shown(text)}: {shown(registry)} is not a registry host")
    else:
        registry, repository = DOCKER_HUB, rest
    if registry in ("docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if not _REPOSITORY.fullmatch(repository) or len(repository) > 255:
        raise InvalidInput(f"{shown(text)}: {shown(repository)} is not a repository name")
    if digest:
        return Reference(registry, repository, None, digest)
    return Reference(registry, repository, tag or DEFAULT_TAG, None)
