"""What a verified image signature or attestation is, and which statements count as which.

Shared by the two storage formats: :mod:`keyless.image` (bundles as OCI referrers) and
:mod:`keyless.image_legacy` (cosign 2 tags), so neither imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keyless.errors import VerificationError, shown
from keyless.oci.reference import Reference
from keyless.oci.sigstore import SIGN_PREDICATE_TYPE

__all__ = ["NoValidSignature", "VerifiedStatement", "check_statement_kind"]


class NoValidSignature(VerificationError):
    """No signature (or attestation) of the image verified; the message lists why."""


@dataclass(frozen=True)
class VerifiedStatement:
    """A verified signature or attestation of the image."""

    reference: Reference  #: image@digest
    format: str
    location: str  #: referrer digest, or ``tag#layer-digest``
    result: Any = field(repr=False)  #: the verifier's result (certificate, times)
    statement: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def predicate_type(self) -> str | None:
        value = (self.statement or {}).get("predicateType")
        return value if isinstance(value, str) else None


def check_statement_kind(
    statement_: dict[str, Any] | None,
    *,
    predicate_type: str | None,
    attestation: bool,
) -> None:
    """A signature must carry the signing predicate type; an attestation must not; and a
    requested predicate type must match."""
    if statement_ is None:
        raise NoValidSignature("the bundle holds a message signature, not an in-toto statement")
    got = statement_.get("predicateType")
    if attestation and got == SIGN_PREDICATE_TYPE:
        raise NoValidSignature("it is a signature, not an attestation")
    if not attestation and got != SIGN_PREDICATE_TYPE:
        raise NoValidSignature(
            f"it is an attestation ({shown(got)}), not a signature: only the predicate type "
            f"{SIGN_PREDICATE_TYPE} signs an image"
        )
    if predicate_type is not None and got != predicate_type:
        raise NoValidSignature(f"its predicate type is {shown(got)}, not {predicate_type}")
