"""The RFC 3161 timestamp authority (protocols.md §8): keys, clock guard, service, routes.

Use :func:`load_or_create_credentials` (or, for an operator-supplied chain,
:func:`load_file_credentials` with a PEM key or :func:`load_credentials` with any
:class:`keyless.keys.KeySigner`), wrap it in a :class:`TimestampService`, and mount
``keyless.services.tsa.routes.routes(service)`` at the port root. ``service.chain_der`` (leaf,
root) and ``TIMESTAMP_PATH`` feed the trusted root and the signing config.
"""

from keyless.services.tsa.certs import (
    TsaCredentials,
    load_credentials,
    load_file_credentials,
    load_or_create_credentials,
)
from keyless.services.tsa.clock import ClockGuard, ClockPolicy
from keyless.services.tsa.service import (
    CERTCHAIN_PATH,
    TIMESTAMP_PATH,
    TimestampService,
    TsaSettings,
)

__all__ = [
    "CERTCHAIN_PATH",
    "TIMESTAMP_PATH",
    "ClockGuard",
    "ClockPolicy",
    "TimestampService",
    "TsaCredentials",
    "TsaSettings",
    "load_credentials",
    "load_file_credentials",
    "load_or_create_credentials",
]
