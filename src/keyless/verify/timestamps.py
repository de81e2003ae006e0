"""RFC 3161 timestamps as a source of verified time (protocols.md §8, §9 step 1).

A token counts when its CMS signature chains (at its own genTime) to one trusted TSA's chain
``[leaf, intermediates…, root]``, its signer is that TSA leaf with the critical timeStamping EKU,
its message imprint is the hash of the bundle's signature bytes, and its genTime lies inside the
TSA's trusted-root ``validFor`` (closed interval, as the conformance suite expects; sigstore-python
4.5.1 wrongly treats the end as exclusive). The heavy lifting is rfc3161-client, used exactly as
sigstore-python 4.5.1 uses it (``sigstore/verify/verifier.py _verify_signed_timestamp``).

Tokens that do not verify against any trusted TSA are skipped, as sigstore-python does (the
public ``tsa/bundle.txt.sigstore`` vector relies on it); the caller then requires enough verified
times. Malformed, duplicated or too many tokens make the bundle invalid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keyless.trust.material import Authority, TrustMaterial
from keyless.verify.errors import TimestampError

#: sigstore-go / sigstore-python bound against denial of service.
MAX_TIMESTAMPS = 32


@dataclass(frozen=True)
class _TSAVerifier:
    authority: Authority
    verifier: Any  # rfc3161_client.verify.Verifier


class TimestampVerifier:
    """Verifies RFC 3161 tokens against one trust material; builds rfc3161 verifiers once."""

    def __init__(self, trust: TrustMaterial) -> None:
        self._trust = trust
        self._verifiers: list[_TSAVerifier] | None = None

    def _build(self) -> list[_TSAVerifier]:
        from rfc3161_client import VerifierBuilder

        built: list[_TSAVerifier] = []
        for authority in self._trust.timestamp_authorities:
            certs = authority.certificates
            if len(certs) < 2:
                continue  # a TSA chain needs at least its leaf and a root (sigstore-python)
            builder = VerifierBuilder().tsa_certificate(certs[0]).add_root_certificate(certs[-1])
            for intermediate in certs[1:-1]:
                builder = builder.add_intermediate_certificate(intermediate)
            built.append(_TSAVerifier(authority, builder.build()))
        return built

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
        from rfc3161_client import VerificationError, decode_timestamp_response

        if self._verifiers is None:
            self._verifiers = self._build()
        times: list[datetime] = []
        for i, token in enumerate(tokens):
            try:
                response = decode_timestamp_response(token)
            except ValueError as exc:
                raise TimestampError(f"RFC 3161 timestamp {i} is malformed") from exc
            for tsa in self._verifiers:
                try:
                    tsa.verifier.verify_message(response, signature)
                except (VerificationError, ValueError):
                    continue
                gen_time: datetime = response.tst_info.gen_time
                if tsa.authority.valid_for.contains(gen_time):
                    times.append(gen_time)
                    break
        return times
