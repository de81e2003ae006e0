"""One flipped bit in every base64-decoded field of every real bundle, and in its checkpoint.

Every field of a bundle is bound by a signature (certificate → CA, signature → certificate,
SCT → CT log, body/proof/checkpoint → log, SET → log, token → TSA, DSSE → certificate) or is
compared with a bound one, so each flip must be rejected with a specific error. Exceptions
(``may_pass``): RFC 3161 tokens of bundles that also carry a SET (unverifiable tokens are skipped,
as sigstore-python does), flips outside a token's signed TSTInfo (unsigned CMS fields such as
versions and signatureAlgorithm are not checked, by design; the signature catches the rest) and
the checkpoint's signature lines (witness cosignatures are unbound).
Positions: both ends, the middle and seeded random ones (deterministic).
"""

from __future__ import annotations

from typing import Any

import pytest
from hostile_util import (
    CHECKPOINT,
    FIELD_SWEEP,
    SWEEP,
    Case,
    Path_,
    b64_paths,
    check,
    decode,
    encode,
    flip,
    flip_positions,
    get,
    label,
    put,
    run,
    signed_token_bytes,
    tlog,
)

FLIPS_PER_FIELD = 6


def _fields(case: Case) -> list[Path_]:
    if not case.bundle.exists():
        return [("?",)]  # the test then fails (CI) or skips through require()
    return b64_paths(case.load())


def _has_set(bundle: dict[str, Any]) -> bool:
    """A SET-backed integrated time is a second time source (Rekor v1 kinds only)."""
    entry = tlog(bundle)
    kv = (entry["kindVersion"]["kind"], entry["kindVersion"]["version"])
    return "inclusionPromise" in entry and kv not in (("hashedrekord", "0.0.2"), ("dsse", "0.0.2"))


#: (case, field) pairs whose flips crash today, with the bug.
def _params() -> list[Any]:
    return [
        pytest.param(case, path, id=f"{case.name}:{label(path)}")
        for case in FIELD_SWEEP
        for path in _fields(case)
    ]


@pytest.mark.parametrize(("case", "path"), _params())
def test_bit_flip_in_field_is_rejected(case: Case, path: Path_) -> None:
    bundle = case.load()
    raw = decode(get(bundle, path))
    token = path[-1] == "signedTimestamp"
    idle = token and (case.idle_timestamps or _has_set(bundle))
    signed = signed_token_bytes(raw) if token else range(0)
    results = []
    for byte, bit in flip_positions(len(raw), f"{case.name}:{label(path)}", FLIPS_PER_FIELD):
        outcome = run(case, put(bundle, path, encode(flip(raw, byte, bit))))
        unsigned_cms = token and byte not in signed
        results.append((f"byte {byte} bit {bit}", outcome, idle or unsigned_cms))
    check(results)


def _checkpoint_flips(case: Case, part: str) -> None:
    bundle = case.load()
    raw = get(bundle, CHECKPOINT).encode()
    split = raw.index(b"\n\n") + 1  # note text (origin, size, root, extensions) | signatures
    lo, hi = (0, split) if part == "text" else (split + 1, len(raw))
    results = []
    for byte, bit in flip_positions(hi - lo, f"{case.name}:cp:{part}", FLIPS_PER_FIELD):
        mutated = flip(raw, lo + byte, bit).decode("latin-1")  # bytes ≥ 0x80 become U+0080…
        outcome = run(case, put(bundle, CHECKPOINT, mutated))
        results.append((f"{part} byte {lo + byte} bit {bit}", outcome, part == "signatures"))
    check(results)


@pytest.mark.parametrize("case", SWEEP, ids=[c.name for c in SWEEP])
def test_bit_flip_in_checkpoint_note_text_is_rejected(case: Case) -> None:
    _checkpoint_flips(case, "text")


@pytest.mark.parametrize("case", SWEEP, ids=[c.name for c in SWEEP])
def test_bit_flip_in_checkpoint_signature_lines_never_crashes(case: Case) -> None:
    _checkpoint_flips(case, "signatures")
