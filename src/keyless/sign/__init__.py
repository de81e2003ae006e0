"""Sign with keyless from Python (protocols.md §9 "Signing flow"): the public signing API.

::

    from keyless.sign import Signer

    signer = Signer.from_trust_config("trust-config.json", identity_token=token)
    result = signer.sign_file("a.txt")          # or .sign_bytes(data), .attest(path, type, pred)
    result.write("a.txt.sigstore.json")

:class:`Signer` also comes from ``Signer.for_instance(URL, ...)`` (a keyless instance trusted
through its TUF repository) or ``Signer.production(...)`` (public-good Sigstore). Names are
imported on first use (PEP 562), so ``import keyless.sign`` costs nothing. The names in
``__all__`` are the supported API; the submodules are internal (docs/internal-apis.md), though
the older ``keyless.sign.<name>`` imports of the signer module keep working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keyless._lazy import lazy_exports

if TYPE_CHECKING:
    from keyless.sign.api import Signer, SigningResult
    from keyless.sign.signer import RENEW_MARGIN as RENEW_MARGIN
    from keyless.sign.signer import SigningError
    from keyless.sign.signer import SigningServices as SigningServices
    from keyless.sign.signer import entry_from_rekor_v1 as entry_from_rekor_v1
    from keyless.sign.signer import select_services as select_services
    from keyless.sign.signer import sign_files as sign_files
    from keyless.sign.statement import statement_for as statement_for

__all__ = ["Signer", "SigningError", "SigningResult"]

#: public name -> the module that defines it; any other name is looked up in the signer module
_HOME: dict[str, str] = {
    "Signer": "keyless.sign.api",
    "SigningResult": "keyless.sign.api",
    "statement_for": "keyless.sign.statement",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__, default="keyless.sign.signer")
