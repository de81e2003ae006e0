"""Access lines: written directly in the JSON format, exactly as the JSON formatter would write
the equivalent log record; through ``logging`` in the text format."""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Iterator

import pytest

from keyless.http import logs


@pytest.fixture
def stderr() -> Iterator[io.StringIO]:
    """What :func:`logs.configure_logging` would write to stderr (pytest swaps sys.stderr per
    test phase, so the configured streams are pointed here after configuring)."""
    captured = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        yield captured
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        logs._JsonAccess.stream = None


def _configure(level: str, fmt: str, into: io.StringIO) -> None:
    logs.configure_logging(level, fmt)
    assert logs._JsonAccess.stream is (sys.stderr if fmt == "json" else None)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(into)
    if fmt == "json":
        logs._JsonAccess.stream = into


SCOPE = {
    "type": "http", "method": "POST",
    "path": '/rekor/api/v2/log/entries/\u00e9"\\\n', "client": ("203.0.113.9", 4242),
}


def test_a_json_access_line_is_what_the_formatter_writes(stderr: io.StringIO) -> None:
    _configure("info", "json", stderr)
    before = time.time()
    logs.log_access(SCOPE, 201, time.perf_counter() - 0.0123)
    line = stderr.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    fast = json.loads(line)
    record = logging.LogRecord("keyless.access", logging.INFO, __file__, 0, "%s %s %d",
                               ("POST", SCOPE["path"], 201), None)
    extra = {"method": "POST", "path": SCOPE["path"], "status": 201,
             "duration_ms": fast["duration_ms"], "client": "203.0.113.9:4242"}
    record.__dict__.update(extra)
    record.created, record.msecs = before, (before - int(before)) * 1000
    reference = json.loads(logs.JsonFormatter().format(record))
    assert list(fast) == list(reference)  # same keys in the same order
    assert {k: v for k, v in fast.items() if k != "ts"} == {
        k: v for k, v in reference.items() if k != "ts"}
    assert fast["ts"][:19] <= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time()))
    assert fast["ts"][:19] >= reference["ts"][:19] and fast["ts"].endswith("Z")
    assert line.isascii()  # escaped as json.dumps escapes (ensure_ascii)
    assert 12.0 <= fast["duration_ms"] < 60_000


def test_no_client_and_the_text_format(stderr: io.StringIO) -> None:
    _configure("info", "json", stderr)
    logs.log_access({**SCOPE, "client": None}, 404, time.perf_counter())
    assert json.loads(stderr.getvalue())["client"] is None
    stderr.truncate(0)
    stderr.seek(0)
    _configure("info", "text", stderr)
    logs.log_access(SCOPE, 404, time.perf_counter())
    assert "INFO keyless.access: POST /rekor/api/v2/log/entries" in stderr.getvalue()


def test_below_info_nothing_is_written(stderr: io.StringIO) -> None:
    _configure("warning", "json", stderr)
    assert not logs.access_logger.isEnabledFor(logging.INFO)
