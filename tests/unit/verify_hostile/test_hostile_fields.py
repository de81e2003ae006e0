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
    Case,
    Json,
    Path_,
    check,
    drop,
    get,
    harmless,
    label,
    put,
    run,
    walk,
)

HOSTILE_VALUES: list[Json] = [
    None,
    0,
    -1,
    2**63,
    10**400,
    1.5,
    float("nan"),
    float("inf"),
    True,
    "",
    "x",
    "-1",
    "\u0661\u0662",  # Arabic-Indic digits: str.isdigit() is true
    [],
    {},
]

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
