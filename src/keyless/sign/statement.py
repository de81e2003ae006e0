"""The in-toto Statement v1 that ``keyless attest`` signs (in-toto attestation spec, Statement
layer): one subject, the file (name = its base name, digest sha256), and the given predicate."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

__all__ = ["STATEMENT_V1", "statement_for"]

STATEMENT_V1 = "https://in-toto.io/Statement/v1"


def statement_for(path: str | os.PathLike[str], predicate_type: str, predicate: Any) -> bytes:
    """An in-toto Statement v1 about one file, as compact JSON (the DSSE payload)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    statement = {
        "_type": STATEMENT_V1,
        "subject": [{"name": os.path.basename(path), "digest": {"sha256": h.hexdigest()}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return json.dumps(statement, separators=(",", ":")).encode()
