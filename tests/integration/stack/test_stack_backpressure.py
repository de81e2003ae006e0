"""Backpressure stays honest (issue #20 item 4), on a real ``keyless serve``.

A thousand Rekor v2 writers connect at once and each sends one valid, distinct, signed
hashedrekord request to a server configured to admit only ``BOUND`` requests at a time
(``[server] max_requests_in_flight``). Every answer must be an acknowledgement (201) or a refusal
that says when to retry (503/429 with ``Retry-After`` and a JSON ``{"code", "message"}``): no 500,
no reset, no hang (the whole volley has a deadline). Every acknowledged entry must really be in
the log (read back from the served tiles, checked against the signed checkpoint), the refusals
must be counted in ``/metrics``, and the server's peak resident memory (``VmHWM``) must stay
under :data:`MAX_PEAK_RSS`. Then 120 writers with 1 MiB bodies: the body-bytes bound
(``max_body_bytes_in_flight``) keeps memory bounded, and each refused one still gets its 503
(its body is drained first: a connection closed on unread bytes is reset, destroying the answer).
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from stackutil import RunningStack, start_stack

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "tlog"))
from tlog_support import CA, Signer, hashedrekord_v2, parse_note, verify_tiles

pytestmark = pytest.mark.integration

WRITERS = 1000
BOUND = 64
#: writers of 1 MiB bodies, and the bound of body bytes in flight
LARGE_WRITERS = 120
BODY_BOUND = 8 * 1024 * 1024
#: the whole volley (connect, send, every answer) must be over within this
DEADLINE = 60.0
#: peak resident memory of the server process (measured 2026-12-03, load average ~9, one
#: process: 78 MB started; 87 MB after the 1,000 small writers with the bound of 64 (105 MB
#: with no bound); ~160 MB after the 1 MiB writers with the body-bytes bound, 231 MB without it)
MAX_PEAK_RSS = 195 * 1024 * 1024
PATH = "/rekor/api/v2/log/entries"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    root = tmp_path_factory.mktemp("backpressure")
    config = root / "keyless.toml"
    # no per-client budget: every writer is 127.0.0.1, and this test is about the process bound;
    # one process, so that the memory measured is that of the one process taking the load
    config.write_text(f"[server]\nmax_requests_in_flight = {BOUND}\nclient_budget = 0\n"
                      f"max_body_bytes_in_flight = {BODY_BOUND}\nworkers = 1\n")
    running = start_stack(root / "data", "--config", str(config))
    try:
        yield running
    finally:
        running.stop()


def _bodies(count: int) -> list[bytes]:
    ca = CA.create()
    signers = [Signer.create(ca) for _ in range(16)]
    return [
        json.dumps(hashedrekord_v2(signers[i % len(signers)], b"backpressure %d" % i)).encode()
        for i in range(count)
    ]


async def _volley(port: int, bodies: list[bytes], path: str = PATH) -> list[Answer]:
    """Open one connection per body; once all are open, send every request; every answer."""
    go = asyncio.Event()
    connected = 0

    async def writer(body: bytes) -> Answer:
        nonlocal connected
        reader, stream = await asyncio.open_connection("127.0.0.1", port)
        try:
            connected += 1
            if connected == len(bodies):
                go.set()
            await go.wait()
            stream.write(b"POST %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (path.encode(), len(body), body))
            raw = await reader.read()  # the server closes after its answer
        finally:
            stream.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return Answer(int(status_line.split(" ")[1]), headers, payload)

    async with asyncio.timeout(DEADLINE), asyncio.TaskGroup() as group:
        tasks = [group.create_task(writer(body)) for body in bodies]
    return [task.result() for task in tasks]


def _peak_rss(pid: int) -> int:
    """The largest ``VmHWM`` of the server process and its descendants (the bounds are per
    process, should ``keyless serve`` run several)."""
    peak, todo = 0, [pid]
    while todo:
        proc = Path(f"/proc/{todo.pop()}")
        for line in (proc / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]) * 1024)
        for task in (proc / "task").iterdir():
            todo += [int(child) for child in (task / "children").read_text().split()]
    return peak


def test_a_thousand_writers_get_answers_or_honest_refusals(bounded: RunningStack) -> None:
    bodies = _bodies(WRITERS)
    before = _peak_rss(bounded.process.pid)
    answers = asyncio.run(_volley(bounded.port, bodies))
    peak = _peak_rss(bounded.process.pid)

    statuses = sorted({a.status for a in answers})
    assert set(statuses) <= {201, 429, 503}, [a.body[:200] for a in answers
                                              if a.status not in (201, 429, 503)]
    refused = [a for a in answers if a.status in (429, 503)]
    for answer in refused:
        _assert_refusal(answer)
    accepted = [(body, json.loads(a.body)) for body, a in zip(bodies, answers, strict=True)
                if a.status == 201]
    busy = sum(a.status == 503 for a in answers)
    assert accepted and busy, f"{len(accepted)} accepted, {busy} refused: no overload?"
    assert peak < MAX_PEAK_RSS, f"peak RSS {peak / 2**20:.0f} MB (before {before / 2**20:.0f})"

    metrics = httpx.get(f"{bounded.url}/metrics", timeout=10).text
    counted = f'keyless_http_busy_requests_total{{service="rekor_v2"}} {float(busy)}'
    assert counted in metrics, [line for line in metrics.splitlines() if "busy" in line]

    # every acknowledged entry is in the log, at its index, under the signed checkpoint
    with httpx.Client(base_url=f"{bounded.url}/rekor/", timeout=30) as http:
        note = parse_note(http.get("checkpoint").content)
        logged = verify_tiles(lambda path: http.get(path).content, note.size, note.root)
    for _body, entry in accepted:
        index = int(entry["logIndex"])
        assert logged[index] == base64.b64decode(entry["canonicalizedBody"])
    print(f"\n{len(accepted)} accepted, {busy} refused (503), "
          f"{len(refused) - busy} refused (429); peak RSS {peak / 2**20:.0f} MB "
          f"(before the volley {before / 2**20:.0f} MB)")


def _assert_refusal(answer: Answer) -> None:
    assert int(answer.headers["retry-after"]) >= 1
    message = json.loads(answer.body)
    assert message["code"] == answer.status and message["message"]


def test_large_bodies_are_bounded_in_bytes_and_refused_honestly(bounded: RunningStack) -> None:
    # a JSON object of 1 MiB that is no valid entry: read, parsed, then refused with 400
    body = json.dumps({"hashedRekordRequestV002": {"digest": "A" * (1 << 20)}}).encode()
    answers = asyncio.run(_volley(bounded.port, [body] * LARGE_WRITERS))
    peak = _peak_rss(bounded.process.pid)
    counts = {status: sum(a.status == status for a in answers) for status in (400, 503)}
    assert sum(counts.values()) == LARGE_WRITERS, sorted({a.status for a in answers})
    assert counts[400] and counts[503], counts
    for answer in answers:
        if answer.status == 503:
            _assert_refusal(answer)
    assert peak < MAX_PEAK_RSS, f"peak RSS {peak / 2**20:.0f} MB"
    print(f"\n1 MiB bodies: {counts}; peak RSS {peak / 2**20:.0f} MB")
