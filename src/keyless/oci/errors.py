"""The errors of talking to an OCI registry; each message names registry, repository and what."""

from __future__ import annotations

from keyless.errors import Error, NotFound, Unauthenticated

__all__ = ["PreconditionFailed", "RegistryAuthError", "RegistryError", "RegistryNotFound"]


class RegistryError(Error):
    """The registry refused or failed a request; the message names registry, repository, what."""


class RegistryAuthError(RegistryError, Unauthenticated):
    """401/403: the credentials are missing, wrong, or lack the permission."""


class RegistryNotFound(RegistryError, NotFound):
    """404: the manifest, blob or repository does not exist."""


class PreconditionFailed(RegistryError):
    """412: a conditional write lost a race (``If-Match``)."""
