"""The timestamp authority's server logic: one query in, one DER ``TimeStampResp`` out.

Serial numbers (RFC 3161 §2.4.2: unique per TSA, up to 160 bits) are 20 random octets with the
top two bits fixed to ``01`` (positive, minimal DER), i.e. 158 random bits drawn from the OS CSPRNG.
That keeps them unique across restarts and across any number of worker processes without a
shared counter on the hot path; the chance of any repeat after 2^64 tokens is below 2^-29.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from keyless.errors import ConfigError, Unavailable
from keyless.formats.tsp import (
    DEFAULT_POLICY_OID,
    TimestampQuery,
    TokenBuilder,
    generalized_time,
)
from keyless.keys import InMemorySigner
from keyless.services.tsa.certs import TsaCredentials
from keyless.services.tsa.clock import ClockGuard, ClockPolicy

#: Path of the timestamp endpoint relative to the port root; the signing config's TSA URL is
#: ``P + TIMESTAMP_PATH`` (internal-apis.md URL layout; sigstore-python posts to it verbatim).
TIMESTAMP_PATH = "/api/v1/timestamp"
CERTCHAIN_PATH = "/api/v1/timestamp/certchain"

SERIAL_OCTETS = 20


#: genTime is rounded to the nearest whole second (see :func:`generalized_time` for why whole).
ROUNDING_ERROR = 0.5


@dataclass(frozen=True)
class TsaSettings:
    """Configuration of the TSA (limits in bytes, durations in seconds).

    ``accuracy_seconds`` is the ± bound the token claims (RFC 3161 §2.4.2 accuracy; 0 omits
    it). To be true it must cover the rounding of genTime (0.5 s) plus the clock drift the guard
    tolerates, which is checked here; the defaults (1 s = 0.5 s + 0.5 s) match the Go TSA's 1 s.
    """

    policies: tuple[str, ...] = (DEFAULT_POLICY_OID,)  # the first is the default policy
    accuracy_seconds: int = 1
    include_tsa_name: bool = True
    max_der_request: int = 4096  # a SHA-512 query with nonce and policy is < 200 bytes
    max_json_request: int = 1024  # as the Go TSA (openapi.yaml JsonRequest)
    clock: ClockPolicy = field(default_factory=ClockPolicy)

    def __post_init__(self) -> None:
        if self.accuracy_seconds < 0:
            raise ConfigError("TSA accuracy must not be negative")
        if self.accuracy_seconds and self.accuracy_seconds < ROUNDING_ERROR + self.clock.max_drift:
            raise ConfigError(
                f"TSA accuracy of {self.accuracy_seconds} s cannot cover the genTime rounding "
                f"({ROUNDING_ERROR} s) plus the allowed clock drift ({self.clock.max_drift} s)"
            )


def random_serial(random: Callable[[int], bytes] = os.urandom) -> bytes:
    """A DER INTEGER serialNumber: 20 octets, 158 random bits (see module docstring)."""
    raw = bytearray(random(SERIAL_OCTETS))
    raw[0] = 0x40 | (raw[0] & 0x3F)
    return b"\x02\x14" + bytes(raw)


class TimestampService:
    """Issues timestamps with a :class:`TokenBuilder`, guarded by a :class:`ClockGuard`."""

    def __init__(
        self,
        credentials: TsaCredentials,
        settings: TsaSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        random: Callable[[int], bytes] = os.urandom,
        guard: ClockGuard | None = None,
    ) -> None:
        self.settings = settings or TsaSettings()
        self.credentials = credentials
        self.builder = TokenBuilder(
            credentials.signer,
            credentials.chain,
            policies=self.settings.policies,
            accuracy_seconds=self.settings.accuracy_seconds,
            include_tsa_name=self.settings.include_tsa_name,
        )
        self.guard = guard or ClockGuard(self.settings.clock, clock=clock, monotonic=monotonic)
        self._random = random
        self._not_before = credentials.not_before.timestamp()
        self._not_after = credentials.not_after.timestamp()
        self._second = -1
        self._gen_time = b""
        self.chain_pem: bytes = credentials.chain_pem
        self._inline_signer = isinstance(credentials.signer, InMemorySigner)

    @property
    def chain_der(self) -> list[bytes]:
        """DER certificates ``[leaf, …, root]`` for the trusted root's timestampAuthorities."""
        return list(self.builder.chain_der)

    @property
    def url_path(self) -> str:
        """The endpoint path to append to the public URL in the signing config."""
        return TIMESTAMP_PATH

    def _gen_time_now(self) -> bytes:
        """genTime for now, or :class:`Unavailable` if the clock or the chain cannot vouch."""
        now = self.guard.now()
        if not self._not_before <= now < self._not_after:
            raise Unavailable(
                "the TSA certificate chain is not valid at the current time", retry_after=60
            )
        second = int(now + ROUNDING_ERROR)  # nearest second: |genTime - now| <= 0.5 s
        if second != self._second:  # genTime only changes once a second
            self._gen_time = generalized_time(second)
            self._second = second
        return self._gen_time

    def timestamp(self, query: TimestampQuery) -> bytes:
        """A granted ``TimeStampResp`` for ``query``.

        Raises :class:`~keyless.errors.Unavailable` when the clock is untrusted or outside the
        chain's validity (a token signed then would not verify), and
        :class:`~keyless.formats.tsp.TimestampRejected` for an unaccepted policy.
        """
        gen_time = self._gen_time_now()
        return self.builder.issue(query, serial=random_serial(self._random), gen_time=gen_time)

    async def timestamp_async(self, query: TimestampQuery) -> bytes:
        """:meth:`timestamp` for the event loop.

        An in-process key signs in ~30 µs, cheaper than a thread hop, so it signs inline; any other
        :class:`~keyless.keys.KeySigner` (PKCS#11, remote KMS) may block for milliseconds and
        signs in a worker thread. The clock is always read here, on the loop, before signing.
        """
        gen_time = self._gen_time_now()
        serial = random_serial(self._random)
        if self._inline_signer:
            return self.builder.issue(query, serial=serial, gen_time=gen_time)
        return await asyncio.to_thread(self.builder.issue, query, serial=serial, gen_time=gen_time)

    async def start(self) -> None:
        """Start the clock guard (first NTP round before the first token)."""
        await self.guard.start()

    async def close(self) -> None:
        """Stop background work."""
        await self.guard.close()
