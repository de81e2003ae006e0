"""``keyless monitor --witness-policy`` against a stack witnessed by two real witnesses (quorum 2).

The monitor requires the policy's cosignatures on every Rekor v2 checkpoint and compares the log's
checkpoint with each witness's published one (split view): on the honest, witnessed stack it
exits 0 and lists the watched identity's entries; with a policy the checkpoints cannot meet it
reports an inconsistency and exits 3.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stack"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_stack_witnessing as witnessing
from stackutil import USER, free_port, start_stack
from test_monitor_stack import BOB, USERS, matches, monitor, sign

pytestmark = pytest.mark.integration


@pytest.fixture
def witnesses(tmp_path: Path) -> Iterator[list[witnessing.Witness]]:
    made = []
    for number in (1, 2):
        data = tmp_path / f"witness-{number}"
        init = witnessing.keyless("witness", "init", "--data-dir", str(data), "--name",
                                  f"w{number}.monitor.test")
        assert init.returncode == 0, init.stderr
        made.append(witnessing.Witness(data, free_port(), init.stdout.strip(), []))
    try:
        yield made
    finally:
        for witness in made:
            witness.stop(signal.SIGKILL)


def test_monitor_checks_the_witness_policy_and_the_witnesses(
    tmp_path: Path, witnesses: list[witnessing.Witness]
) -> None:
    data = tmp_path / "stack" / "data"
    port = free_port()
    start_stack(data, port=port, users=USERS).stop()
    witnessing.witness_the_stack(data, witnesses)
    stack = start_stack(data, port=port, users=USERS)
    try:
        work = tmp_path / "work"
        work.mkdir()
        tc = work / "tc.json"
        tc.write_text(json.dumps(stack.client_trust_config()))
        alice = [sign(stack, tc, work, USER, f"a{i}.txt") for i in range(2)]
        bob = sign(stack, tc, work, BOB, "b.txt")
        policy = work / "policy.txt"
        policy.write_text(httpx.get(f"{stack.url}/witness-policy", timeout=10).text)
        assert witnesses[0].url in policy.read_text()  # witness URLs: the split-view check runs
        code, events, err = monitor(tc, work / "m.db", "--identity", USER,
                                    "--witness-policy", str(policy))
        assert code == 0, err
        found = matches(events, f"{stack.url}/rekor")
        assert set(alice) <= set(found) and bob not in found
        assert "warning: witness" not in err  # both witnesses' checkpoints were read and agree
        strict = work / "strict.txt"
        other = witnessing.keyless("witness", "init", "--data-dir", str(tmp_path / "w3"),
                                   "--name", "w3.monitor.test")
        strict.write_text(policy.read_text().replace(
            "group witnesses 2 w1 w2",
            f"witness w3 {other.stdout.strip()}\ngroup witnesses 3 w1 w2 w3"))
        sign(stack, tc, work, USER, "a-more.txt")
        code, events, err = monitor(tc, work / "m.db", "--identity", USER,
                                    "--witness-policy", str(strict))
        assert code == 3, err
        (event,) = [e for e in events if e["event"] == "inconsistency"]
        assert str(event["reason"]).startswith("witness policy") and "quorum" in str(
            event["reason"])
    finally:
        stack.stop()
