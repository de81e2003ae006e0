"""Properties over generated hostile bundles (hypothesis, derandomized so CI is reproducible).

* Any JSON value at any path of any real bundle: rejected cleanly unless harmless.
* Any base64 bytes in any base64 field: rejected cleanly (unless harmless: tokens beside a SET).
* Any text as the checkpoint: rejected cleanly.
* Any byte-level edit of the JSON text: never an unclean outcome (some edits are harmless, e.g.
  whitespace, so acceptance is not judged).
"""

from __future__ import annotations

from typing import Any

from hostile_util import (
    CHECKPOINT,
    FIELD_SWEEP,
    Json,
    b64_paths,
    check,
    dumps,
    encode,
    get,
    harmless,
    label,
    put,
    run,
    walk,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc80b"])
TEXT = st.one_of(st.text(max_size=40), SURROGATES, st.sampled_from(["0", "-0", "1e2", "0x10"]))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)
CASES = st.sampled_from(FIELD_SWEEP)


@SETTINGS
@given(case=CASES, pick=st.integers(min_value=0), value=JSON_VALUES)
def test_any_value_anywhere(case: Any, pick: int, value: Json) -> None:
    bundle = case.load()
    paths = list(walk(bundle))
    path = paths[pick % len(paths)]
    outcome = run(case, put(bundle, path, value))
    may_pass = harmless(case, bundle, path, value, dropped=False)
    check([(f"{label(path)} = {value!a:.80}", outcome, may_pass)])


@SETTINGS
@given(case=CASES, pick=st.integers(min_value=0), data=st.binary(max_size=600))
def test_any_bytes_in_a_base64_field(case: Any, pick: int, data: bytes) -> None:
    bundle = case.load()
    paths = b64_paths(bundle)
    path = paths[pick % len(paths)]
    outcome = run(case, put(bundle, path, encode(data)))
    may_pass = harmless(case, bundle, path, encode(data), dropped=False) or (
        path[-1] == "signedTimestamp"  # a token beside a SET / another token may be skipped
    )
    check([(f"{label(path)} = {len(data)} bytes", outcome, may_pass)])


@SETTINGS
@given(case=CASES, text=st.one_of(st.text(max_size=400), SURROGATES))
def test_any_text_as_the_checkpoint(case: Any, text: str) -> None:
    bundle = case.load()
    outcome = run(case, put(bundle, CHECKPOINT, text))
    check([(f"checkpoint {text!a:.80}", outcome, False)])


@SETTINGS
@given(case=CASES, edits=st.lists(
    st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255),
              st.sampled_from(["replace", "insert", "delete"])),
    min_size=1, max_size=4,
))
def test_any_byte_edit_of_the_json_text(case: Any, edits: list[tuple[int, int, str]]) -> None:
    data = bytearray(dumps(case.load()))
    for position, byte, op in edits:
        at = position % len(data)
        if op == "replace":
            data[at] = byte
        elif op == "insert":
            data.insert(at, byte)
        else:
            del data[at]
    outcome = run(case, bytes(data))
    check([(f"edits {edits}", outcome, True)])


def test_properties_cover_every_case() -> None:
    """The sampled cases are real bundles that verify (so the properties can fail)."""
    for case in FIELD_SWEEP:
        assert run(case, case.load()).status == "ok", case.name
        assert get(case.load(), CHECKPOINT)
