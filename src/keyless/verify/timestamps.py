"""RFC 3161 timestamps as a source of verified time (protocols.md §8, §9 step 1).

A token counts when it is a trusted TSA's timestamp over the bundle's signature bytes
(:mod:`keyless.verify.rfc3161`: signer, CMS signature, critical timeStamping EKU, chain valid at
genTime, message imprint) and its genTime lies inside the TSA's trusted-root ``validFor`` (closed
interval, as the conformance suite expects; sigstore-python 4.5.1 wrongly treats the end as
exclusive).

Tokens that do not verify against any trusted TSA are skipped, as sigstore-python does (the
public ``tsa/bundle.txt.sigstore`` vector relies on it); the caller then requires enough verified
times. Malformed, duplicated or too many tokens make the bundle invalid.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from keyless.formats.tstoken import MalformedTimestamp, parse_signed_timestamp
from keyless.trust.material import TrustMaterial
from keyless.verify.errors import TimestampError
from keyless.verify.rfc3161 import TimestampMismatch, TrustedTimestampAuthority

__all__ = [
    "MAX_TIMESTAMPS",
    "TimestampVerifier",
]

#: sigstore-go / sigstore-python bound against denial of service.
MAX_TIMESTAMPS = 32


class TimestampVerifier:
    """Verifies RFC 3161 tokens against one trust material; builds rfc3161 verifiers once."""

    def __init__(self, trust: TrustMaterial) -> None:
        self._trust = trust
        self._authorities: list[TrustedTimestampAuthority] | None = None

    def verified_times(self, tokens: Sequence[bytes], signature: bytes) -> list[datetime]:
        """The genTimes of the tokens that verify over ``signature`` (protocols.md §8)."""
        if not tokens:
            return []
        if len(tokens) > MAX_TIMESTAMPS:
            raise TimestampError(f"too many RFC 3161 timestamps: {len(tokens)} > {MAX_TIMESTAMPS}")
        if len(set(tokens)) != len(tokens):
            raise TimestampError("the bundle contains a duplicate RFC 3161 timestamp")
        if not self._trust.root.timestamp_authorities:
            raise TimestampError(
                "the bundle carries RFC 3161 timestamps but the trusted root has no TSA"
            )
        if self._authorities is None:
            self._authorities = [
                TrustedTimestampAuthority(a) for a in self._trust.timestamp_authorities
            ]
        times: list[datetime] = []
        signed_contents: set[bytes] = set()
        for i, token in enumerate(tokens):
            try:
                parsed = parse_signed_timestamp(token)
            except MalformedTimestamp as exc:
                raise TimestampError(f"RFC 3161 timestamp {i} is malformed: {exc}") from exc
            # Unsigned parts (embedded certificates, status text) can vary while the signed
            # TSTInfo stays the same: such copies are one timestamp, not several verified times.
            if parsed.tst_info in signed_contents:
                raise TimestampError("the bundle contains the same RFC 3161 timestamp twice")
            signed_contents.add(parsed.tst_info)
            for tsa in self._authorities:
                try:
                    gen_time = tsa.verify(parsed, signature)
                except TimestampMismatch:
                    continue
                if tsa.authority.valid_for.contains(gen_time):
                    times.append(gen_time)
                    break
        return times
