"""Trust material for the client: where trusted roots and signing configs come from.

* :mod:`keyless.trust.material` - decoded, indexed keys and certificates of a trusted root;
* :mod:`keyless.trust.production` - the public-good production root shipped as package data;
* :mod:`keyless.trust.sources` - files, ``--server URL`` and TUF refresh (protocols.md §10);
* :mod:`keyless.trust.instances` - a keyless instance's TUF root, pinned or trusted on first use.

The names in ``__all__`` are the supported API (most callers need only
``keyless.verify.Verifier.from_trust_config`` and friends). They are imported on first use
(PEP 562): importing this package imports nothing heavy, so the offline verify path stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keyless._lazy import lazy_exports

if TYPE_CHECKING:
    from keyless.formats.signingconfig import SigningConfig
    from keyless.formats.trustroot import ClientTrustConfig, TrustedRoot
    from keyless.trust.instances import instance_trust, pin
    from keyless.trust.production import production_trusted_root
    from keyless.trust.sources import (
        load_client_trust_config,
        load_signing_config,
        load_trusted_root,
        resolve_trust,
    )

#: public name -> the module that defines it
_HOME: dict[str, str] = {
    "ClientTrustConfig": "keyless.formats.trustroot",
    "SigningConfig": "keyless.formats.signingconfig",
    "TrustedRoot": "keyless.formats.trustroot",
    "instance_trust": "keyless.trust.instances",
    "pin": "keyless.trust.instances",
    "load_client_trust_config": "keyless.trust.sources",
    "load_signing_config": "keyless.trust.sources",
    "load_trusted_root": "keyless.trust.sources",
    "production_trusted_root": "keyless.trust.production",
    "resolve_trust": "keyless.trust.sources",
}

__all__ = [
    "ClientTrustConfig",
    "SigningConfig",
    "TrustedRoot",
    "instance_trust",
    "load_client_trust_config",
    "load_signing_config",
    "load_trusted_root",
    "pin",
    "production_trusted_root",
    "resolve_trust",
]


__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__)
