"""The Fulcio-compatible certificate authority (protocols.md §1).

Mount ``keyless.services.ca.routes.routes(CAService(...))`` at the port root.
"""

from __future__ import annotations

from keyless.services.ca.authority import (
    CAMaterial,
    create_with_signer,
    load_from_files,
    load_material,
    load_or_create,
)
from keyless.services.ca.replay import TokenReplayGuard, TokenReusedError
from keyless.services.ca.service import CAService, IssuedCertificate

__all__ = [
    "CAMaterial",
    "CAService",
    "IssuedCertificate",
    "TokenReplayGuard",
    "TokenReusedError",
    "create_with_signer",
    "load_from_files",
    "load_material",
    "load_or_create",
]
