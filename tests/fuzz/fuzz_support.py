"""Shared parts of the fuzz tests: the hypothesis profiles, mutation strategies that start from
real valid inputs, and the oracle ``only`` (a parser either succeeds or raises one of its
documented error types, quickly).

Not a conftest.py: a second ``conftest`` module would shadow tests/conftest.py (prepend import
mode), so every fuzz module imports this one instead.

Profiles (docs/fuzzing.md):

* ``fuzz`` (default, part of ``make test``): few examples per property, no example database, so
  the whole folder stays within about a minute on a loaded two-core machine and a run never
  depends on what an earlier run found.
* ``long`` (``make fuzz``, ``HYPOTHESIS_PROFILE=long``): many examples, failures saved to
  ``.hypothesis/`` so they are replayed first next time.

``KEYLESS_FUZZ_EXAMPLES=N`` overrides the number of examples of either profile.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

TESTS = Path(__file__).resolve().parents[1]
# helpers that build valid inputs live beside the unit tests that own them
for _helpers in ("unit/tlog", "unit/ca", "unit/verify_hostile"):
    if str(TESTS / _helpers) not in sys.path:
        sys.path.append(str(TESTS / _helpers))

_HEALTH = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.large_base_example,
    HealthCheck.function_scoped_fixture,
]
_EXAMPLES = os.environ.get("KEYLESS_FUZZ_EXAMPLES")

settings.register_profile(
    "fuzz",
    max_examples=int(_EXAMPLES or 30),
    deadline=timedelta(seconds=5),  # no hang: a slow example fails (loaded CI machines: generous)
    database=None,  # a run never replays another run's finds: no flakiness from local state
    suppress_health_check=_HEALTH,
    print_blob=True,
)
settings.register_profile(
    "long",
    max_examples=int(_EXAMPLES or 5000),
    deadline=timedelta(seconds=5),
    database=DirectoryBasedExampleDatabase(str(TESTS.parent / ".hypothesis" / "fuzz")),
    suppress_health_check=_HEALTH,
    print_blob=True,
)
PROFILE = "long" if os.environ.get("HYPOTHESIS_PROFILE") == "long" else "fuzz"
#: the settings of every fuzz property (``@FUZZ`` above ``@given``)
FUZZ = settings(settings.get_profile(PROFILE))
#: for properties whose examples are expensive (HTTP round trips, whole-bundle verification)
FUZZ_SLOW = settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 2))


def root_conftest() -> Any:
    """tests/conftest.py loaded by path (``import conftest`` may find another folder's)."""
    name = "keyless_tests_root_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TESTS / "conftest.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


#: one parse of hostile input must finish well within this (seconds); hypothesis' deadline
#: reports slowness, this is the hard oracle inside a single example.
MAX_SECONDS = 5.0


@contextlib.contextmanager
def only(*allowed: type[BaseException]) -> Iterator[None]:
    """The block either completes or raises one of ``allowed``, with a short message, in time."""
    start = time.monotonic()
    try:
        yield
    except allowed as exc:
        assert len(str(exc)) < 2000, f"error message echoes the input: {str(exc)[:200]}…"
    finally:
        assert time.monotonic() - start < MAX_SECONDS, "parser took too long on one input"


# --------------------------------------------------------------------------------------------
# Byte mutations (bit flips, truncation, splices, insertions, interesting values).

_INTERESTING = [b"\x00", b"\xff", b"\x80", b"\x7f", b"\x81", b"\x82\xff\xff",
                b"\x84\xff\xff\xff\xff", b"\x30\x80", b"\xa0\x00", b"\x02\x00", b"\x05\x00",
                b"\n", b"\r\n", b" "]


@st.composite
def mutated_bytes(draw: st.DrawFn, seeds: list[bytes], max_ops: int = 4) -> bytes:
    """One of ``seeds`` after 1..max_ops random edits; sometimes spliced with another seed."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, max_ops))):
        n = len(data)
        op = draw(st.sampled_from(["flip", "truncate", "delete", "insert", "dup", "splice",
                                   "set", "interesting"]))
        pos = draw(st.integers(0, n)) if n else 0
        if op == "flip" and n:
            i = min(pos, n - 1)
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[pos:]
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "dup" and n:
            end = draw(st.integers(pos, n))
            data[pos:pos] = data[pos:end]
        elif op == "splice":
            other = draw(st.sampled_from(seeds))
            cut = draw(st.integers(0, len(other)))
            data[pos:] = other[cut:]
        elif op == "set" and n:
            data[min(pos, n - 1)] = draw(st.integers(0, 255))
        elif op == "interesting":
            data[pos:pos + draw(st.integers(0, 4))] = draw(st.sampled_from(_INTERESTING))
    return bytes(data)


# --------------------------------------------------------------------------------------------
# JSON mutations (type swaps, deletions, unknown keys, huge and deeply nested values).

SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc80b"])
TEXT = st.one_of(st.text(max_size=30), SURROGATES,
                 st.sampled_from(["", "0", "-1", "1e999", "AA==", "====", "sha256", "\x00",
                                  "A" * 5000, "0" * 64]))
SCALARS = st.one_of(st.none(), st.booleans(),
                    st.integers(min_value=-(2**70), max_value=2**70),
                    st.sampled_from([0, -1, 2**63, 2**64, 1.5, float("nan"), float("inf")]),
                    TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=10,
)
#: stands for a value nested too deeply for a recursive walk (RecursionError must not escape):
#: :func:`dumps` writes it as 5000 nested arrays, :func:`value_of` as 300 nested lists.
DEEP = "\u2063deep\u2063"


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indices) into a JSON value, the root included."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += paths(item, (*prefix, i))
    return out


def _swap_type(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return int(value) if value.isdigit() else [value]
    if isinstance(value, list):
        return {str(i): item for i, item in enumerate(value)}  # JSON keys are strings
    if isinstance(value, dict):
        return list(value.values())
    return {}


@st.composite
def mutated_json(draw: st.DrawFn, seeds: list[Any], max_ops: int = 3) -> Any:
    """One of ``seeds`` (JSON values) after 1..max_ops edits at random paths."""
    doc = json.loads(json.dumps(draw(st.sampled_from(seeds))))
    for _ in range(draw(st.integers(1, max_ops))):
        path = draw(st.sampled_from(paths(doc)))
        op = draw(st.sampled_from(["replace", "swap", "delete", "extra", "deep", "huge",
                                   "duplicate"]))
        if not path:
            if op in ("replace", "swap"):
                doc = draw(JSON_VALUES) if op == "replace" else _swap_type(doc)
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        last = path[-1]
        if op == "replace":
            parent[last] = draw(JSON_VALUES)
        elif op == "swap":
            parent[last] = _swap_type(parent[last])
        elif op == "delete":
            del parent[last]
        elif op == "extra" and isinstance(parent, dict):
            parent[draw(TEXT)] = draw(JSON_VALUES)
        elif op == "deep":
            parent[last] = DEEP
        elif op == "huge":
            parent[last] = [0] * 10_000 if draw(st.booleans()) else "A" * 100_000
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(parent[last])
    return doc


def dumps(value: Any) -> bytes:
    """JSON text of ``value`` (non-finite floats as Python writes them, lone surrogates as
    ``\\ud800`` escapes, DEEP expanded)."""
    text = json.dumps(value, allow_nan=True)
    return text.replace(json.dumps(DEEP), "[" * 5000 + "]" * 5000).encode()


def value_of(value: Any) -> Any:
    """``value`` with every DEEP replaced by 300 nested lists (for parsers taking objects)."""
    if value == DEEP:
        deep: list[Any] = []
        for _ in range(300):
            deep = [deep]
        return deep
    if isinstance(value, dict):
        return {k: value_of(v) for k, v in value.items()}
    if isinstance(value, list):
        return [value_of(v) for v in value]
    return value


@st.composite
def mutated_json_text(draw: st.DrawFn, seeds: list[Any]) -> bytes:
    """A JSON document after structural edits, or its text after byte edits."""
    if draw(st.booleans()):
        return dumps(draw(mutated_json(seeds)))
    return draw(mutated_bytes([dumps(s) for s in seeds]))


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args)``: a convenience for lambdas in ``only`` blocks."""
    return fn(*args, **kwargs)


def b64_paths(value: Any) -> list[tuple[Any, ...]]:
    """Paths to strings that are standard base64 of at least 16 bytes (keys, signatures, PEMs)."""
    import base64
    import binascii

    out = []
    for path in paths(value):
        node = value
        for key in path:
            node = node[key]
        if isinstance(node, str) and len(node) >= 24:
            try:
                base64.b64decode(node, validate=True)
            except (binascii.Error, ValueError):
                continue
            out.append(path)
    return out


@st.composite
def mutated_b64_field(draw: st.DrawFn, seeds: list[Any]) -> Any:
    """One of ``seeds`` with the bytes inside one base64 field mutated (goes past the base64
    layer into the PEM / DER / signature parsers)."""
    import base64

    doc = json.loads(json.dumps(draw(st.sampled_from(seeds))))
    found = b64_paths(doc)
    if not found:
        return doc
    path = draw(st.sampled_from(found))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    inner = base64.b64decode(parent[path[-1]])
    parent[path[-1]] = base64.b64encode(draw(mutated_bytes([inner]))).decode()
    return doc


def mutated_request(seeds: list[Any]) -> st.SearchStrategy[Any]:
    """Structural JSON edits or edits of the bytes inside a base64 field, half and half."""
    return st.one_of(mutated_json(seeds), mutated_b64_field(seeds))
