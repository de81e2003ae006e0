"""Run under sigstore-python's own venv: timestamp through its TSA client, verify as it verifies.

Usage: python sigstore_python_tsa.py TSA_URL TRUSTED_ROOT_JSON
Prints one JSON object: {"verified": bool, "tampered_verified": bool, "gen_time": str,
"certificates": int}. Uses sigstore 4.5.1 internals on purpose: ``TimestampAuthorityClient``
(what ``sigstore sign`` calls) and ``Verifier._verify_signed_timestamp`` (what ``verify`` calls).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from sigstore._internal.timestamp import TimestampAuthorityClient
from sigstore.models import TrustedRoot
from sigstore.verify.verifier import Verifier


def main() -> None:
    url, root_path = sys.argv[1], Path(sys.argv[2])
    verifier = Verifier(trusted_root=TrustedRoot.from_file(str(root_path)))
    signature = os.urandom(71)
    response = TimestampAuthorityClient(url).request_timestamp(signature)
    good = verifier._verify_signed_timestamp(response, signature)
    bad = verifier._verify_signed_timestamp(response, signature + b"x")
    print(
        json.dumps(
            {
                "verified": good is not None,
                "tampered_verified": bad is not None,
                "gen_time": response.tst_info.gen_time.isoformat(),
                "certificates": len(response.signed_data.certificates),
            }
        )
    )


if __name__ == "__main__":
    main()
