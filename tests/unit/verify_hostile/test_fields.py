"""Drop every field, and give every field every wrong JSON type, in every real bundle.

Each variant must be rejected with a specific error, except where the change is harmless by the
bundle format's own rules (:func:`harmless`): optional fields (``messageDigest``, DSSE ``keyid``,
``publicKey.hint``), a second time source when the bundle has two (a SET and RFC 3161 tokens), the
unbound Rekor v2 ``integratedTime``, and values equal to the original (``0`` for ``"0"``).
"""

from __future__ import annotations

from typing import Any

import pytest
from hostile_util import (
    FIELD_SWEEP,
    TLOG,
    Case,
    Json,
    Path_,
    check,
    drop,
    get,
    label,
    put,
    run,
    tlog,
    walk,
)

HOSTILE_VALUES: list[Json] = [
    None,
    0,
    -1,
    2**63,
    2**64 + 1,
    10**400,
    -(10**30),
    1.5,
    1e308,
    float("nan"),
    float("inf"),
    True,
    False,
    "",
    "x",
    "-1",
    " 7",
    "1e3",
    "\u0661\u0662",  # Arabic-Indic digits: str.isdigit() is true
    [],
    {},
]

OPTIONAL = {
    "messageSignature.messageDigest",
    "dsseEnvelope.signatures[0].keyid",
    "verificationMaterial.publicKey.hint",
}
TIMESTAMPS = "verificationMaterial.timestampVerificationData"


def _rekor_v2(bundle: Json) -> bool:
    kv = tlog(bundle)["kindVersion"]
    return bool(kv["kind"] in ("hashedrekord", "dsse") and kv["version"] == "0.0.2")


def harmless(case: Case, bundle: Json, path: Path_, new: Json, *, dropped: bool) -> bool:
    """Whether replacing (or dropping) ``path`` may leave a bundle that still verifies."""
    lab = label(path)
    old = get(bundle, path)
    absent = dropped or new is None or new == {} or new == []
    if not dropped and (new == old or (type(new) is int and str(new) == old)):
        return True
    if lab in OPTIONAL or lab.startswith("verificationMaterial.publicKey"):
        return absent or isinstance(new, str) or (lab.endswith("publicKey") and new == {})
    entry = tlog(bundle)
    has_set = "inclusionPromise" in entry and not _rekor_v2(bundle)
    has_tokens = bool(bundle["verificationMaterial"].get(TIMESTAMPS.split(".")[1]))
    if lab.startswith(TIMESTAMPS) and (has_set or case.idle_timestamps):
        return absent or lab.endswith("]") or lab.endswith("rfc3161Timestamps")
    if lab == label((*TLOG, "inclusionPromise")) and has_tokens and not case.idle_timestamps:
        return absent
    if lab == label((*TLOG, "inclusionProof", "hashes")) and old == []:
        return absent
    if lab == label((*TLOG, "integratedTime")) and _rekor_v2(bundle):
        return dropped or new is None or (type(new) is int and 0 <= new < 2**63)
    return False


def _paths(case: Case) -> list[Path_]:
    return list(walk(case.load()))


@pytest.mark.parametrize("case", FIELD_SWEEP, ids=[c.name for c in FIELD_SWEEP])
def test_dropping_any_field_is_rejected(case: Case) -> None:
    bundle = case.load()
    results = []
    for path in _paths(case):
        outcome = run(case, drop(bundle, path))
        results.append((f"drop {label(path)}", outcome,
                        harmless(case, bundle, path, None, dropped=True)))
    check(results)


def _retype(case: Case, values: list[Json]) -> list[tuple[str, Any, bool]]:
    bundle = case.load()
    results = []
    for path in _paths(case):
        for value in values:
            outcome = run(case, put(bundle, path, value))
            results.append((f"{label(path)} = {value!r:.40}", outcome,
                            harmless(case, bundle, path, value, dropped=False)))
    return results


@pytest.mark.parametrize("case", FIELD_SWEEP, ids=[c.name for c in FIELD_SWEEP])
def test_any_field_of_the_wrong_type_is_rejected(case: Case) -> None:
    check(_retype(case, HOSTILE_VALUES))


@pytest.mark.parametrize("case", FIELD_SWEEP, ids=[c.name for c in FIELD_SWEEP])
def test_any_field_wrapped_in_a_container_is_rejected(case: Case) -> None:
    bundle = case.load()
    results = []
    for path in _paths(case):
        old = get(bundle, path)
        for value in ([old], {"value": old}, [old, old]):
            outcome = run(case, put(bundle, path, value))
            results.append((f"{label(path)} = {str(value)[:40]}", outcome, False))
    check(results)
