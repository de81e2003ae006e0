"""Whole-bundle verification (keyless.verify) on real bundles whose base64 fields had the bytes
*inside* them mutated (certificates, signatures, RFC 3161 tokens, DSSE payloads, checkpoints'
neighbours), and on structural JSON edits — the deep complement of tests/unit/verify_hostile,
which replaces fields with random values.

Oracle (hostile_util.problem): ok, or a specific VerificationError subclass with one short
line, within the time limit; never another exception. Acceptance is not judged here (some
edits are harmless, e.g. of an unused embedded certificate); verify_hostile judges it.
"""

from __future__ import annotations

from typing import Any

from fuzz_support import FUZZ_SLOW, dumps, mutated_request
from hostile_util import FIELD_SWEEP, problem, run
from hypothesis import given
from hypothesis import strategies as st


@FUZZ_SLOW
@given(case=st.sampled_from(FIELD_SWEEP), data=st.data())
def test_mutated_bundles_verify_or_fail_cleanly(case: Any, data: Any) -> None:
    bundle = data.draw(mutated_request([case.load()]))
    outcome = run(case, dumps(bundle))
    why = problem(outcome, may_pass=True)
    assert why is None, f"{case.name}: {why}"
