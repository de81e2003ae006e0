"""``keyless monitor`` against real ``keyless serve`` stacks (issue #16 part 4).

Two identities sign through the embedded provider's password grant; the monitor must list every
Rekor v2, Rekor v1 and CT entry of the watched one and none of the other, pick up only new entries
on the next run, and answer a forked log (the data directory restored from a backup, then different
entries written) and a tampered state file with an ``inconsistency`` event, its evidence and
exit 3.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stack"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client"))
from stackutil import PASSWORD, USER, RunningStack, start_stack
from test_client_stack import keyless

from keyless.formats.bundle import Bundle

pytestmark = pytest.mark.integration
BOB = "bob@example.com"
USERS = (f"{USER}:{PASSWORD}", f"{BOB}:{PASSWORD}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("monitor-stack") / "data", users=USERS)
    try:
        yield running
    finally:
        running.stop()


def trust_config(stack: RunningStack, directory: Path) -> Path:
    path = directory / "tc.json"
    path.write_text(json.dumps(stack.client_trust_config()))
    return path


def sign(stack: RunningStack, tc: Path, directory: Path, user: str, name: str,
         rekor: str = "2") -> int:
    """Sign a fresh file as ``user`` on Rekor v2 (or v1); the entry's log index."""
    artifact = directory / name
    artifact.write_text(f"{name} signed by {user}\n")
    signed = keyless("sign", str(artifact), "--identity-token", stack.token(user, PASSWORD),
                     "--rekor-version", rekor, "--trust-config", str(tc))
    assert signed.returncode == 0, signed.stderr
    bundle = Bundle.from_json((directory / f"{name}.sigstore.json").read_bytes())
    (cert,) = bundle.verification_material.certificates[:1]
    spki = x509.load_der_x509_certificate(cert).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    FINGERPRINTS[user].add("sha256:" + hashlib.sha256(spki).hexdigest())
    return int(bundle.verification_material.tlog_entries[0].log_index)


#: the signing keys' fingerprints by identity (each signature gets its own certificate and key)
FINGERPRINTS: dict[str, set[str]] = {USER: set(), BOB: set()}


def monitor(tc: Path, state: Path, *args: str) -> tuple[int, list[dict[str, object]], str]:
    done = keyless("monitor", "--trust-config", str(tc), "--state", str(state), "--once", *args)
    events = [json.loads(line) for line in done.stdout.splitlines()]
    return done.returncode, events, done.stderr


def matches(events: list[dict[str, object]], log: str) -> list[object]:
    return [e["index"] for e in events if e["event"] == "match" and e["log"] == log]


def test_finds_every_entry_of_the_watched_identity_and_no_other(
    stack: RunningStack, tmp_path: Path
) -> None:
    tc = trust_config(stack, tmp_path)
    v2, v1 = f"{stack.url}/rekor", stack.url
    alice = [sign(stack, tc, tmp_path, USER, f"a{i}.txt") for i in range(3)]
    bob = [sign(stack, tc, tmp_path, BOB, f"b{i}.txt") for i in range(2)]
    alice_v1 = [sign(stack, tc, tmp_path, USER, f"a{i}-v1.txt", "1") for i in range(2)]
    bob_v1 = [sign(stack, tc, tmp_path, BOB, f"b{i}-v1.txt", "1") for i in range(2)]
    state = tmp_path / "monitor.db"
    code, events, err = monitor(tc, state, "--identity", USER, "--issuer", stack.issuer)
    assert code == 0, err
    found = matches(events, v2)
    assert set(alice) <= set(found) and not set(bob) & set(found)
    found_v1 = matches(events, v1)
    assert set(alice_v1) <= set(found_v1) and not set(bob_v1) & set(found_v1)
    # the CT log: every certificate of the watched identity (by its key), none of the other's
    ct = [e for e in events if e["event"] == "match" and e["log"] == f"{stack.url}/ctlog"]
    assert FINGERPRINTS[USER] <= {e["key_fingerprint"] for e in ct}
    assert not FINGERPRINTS[BOB] & {e["key_fingerprint"] for e in ct}
    assert all(e["identity"] == USER for e in ct)
    for event in events:
        if event["event"] == "match":
            assert event["identity"] == USER and event["issuer"] == stack.issuer
            assert str(event["digest"]).startswith("sha256:") or event["log"].endswith("/ctlog")
    (checkpoint,) = [e for e in events if e["event"] == "checkpoint" and e["log"] == v2]
    assert checkpoint["scanned_from"] == 0
    assert state.stat().st_mode & 0o777 == 0o600
    # the next run reads only what is new, and finds the new entry of the watched identity
    later = sign(stack, tc, tmp_path, USER, "a-later.txt")
    sign(stack, tc, tmp_path, BOB, "b-later.txt")
    later_v1 = sign(stack, tc, tmp_path, USER, "a-later-v1.txt", "1")
    code, events, err = monitor(tc, state, "--identity", USER)
    assert code == 0, err
    assert matches(events, v2) == [later] and matches(events, v1) == [later_v1]
    (again,) = [e for e in events if e["event"] == "checkpoint" and e["log"] == v2]
    assert again["previous_size"] == checkpoint["size"]
    # watching the other identity by pattern from now on finds nothing old
    code, events, err = monitor(tc, tmp_path / "fresh.db", "--identity-regexp", "bob@.*",
                                "--from-now")
    assert code == 0, err
    assert [e["event"] for e in events] == ["checkpoint"] * 3


def test_tampered_state_is_an_inconsistency(stack: RunningStack, tmp_path: Path) -> None:
    tc = trust_config(stack, tmp_path)
    sign(stack, tc, tmp_path, USER, "t.txt")
    state = tmp_path / "monitor.db"
    code, _events, err = monitor(tc, state, "--identity", USER)
    assert code == 0, err
    db = sqlite3.connect(state)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE checkpoints SET size = size + 1")
    db.execute("DROP TRIGGER checkpoints_no_update")  # what a real attacker would do first
    db.execute("UPDATE checkpoints SET size = size - 1, "
               "note = replace(note, char(10) || size || char(10), char(10) || (size - 1) "
               "|| char(10)) WHERE log = ?", (f"{stack.url}/rekor",))
    db.commit()
    db.close()
    code, events, err = monitor(tc, state, "--identity", USER)
    assert code == 3, err
    (event,) = events
    assert event["event"] == "inconsistency" and "does not verify" in str(event["reason"])
    assert Path(str(event["evidence"])).is_file()


def test_forked_log_exits_3_with_evidence(tmp_path: Path) -> None:
    data = tmp_path / "data"
    running = start_stack(data, users=USERS)
    port = running.port
    try:
        tc = trust_config(running, tmp_path)
        sign(running, tc, tmp_path, USER, "before.txt")
        running.stop()
        shutil.copytree(data, tmp_path / "backup", symlinks=True)
        running = start_stack(data, port=port, users=USERS)
        sign(running, tc, tmp_path, USER, "honest.txt")
        sign(running, tc, tmp_path, USER, "honest-v1.txt", "1")
        state = tmp_path / "monitor.db"
        code, events, err = monitor(tc, state, "--identity", USER)
        assert code == 0, err
        honest_size = next(e["size"] for e in events
                           if e["event"] == "checkpoint" and e["log"] == f"{running.url}/rekor")
        running.stop()
        shutil.rmtree(data)
        shutil.copytree(tmp_path / "backup", data, symlinks=True)
        running = start_stack(data, port=port, users=USERS)
        for i in range(3):  # different entries, and more of them: a longer, different tree
            sign(running, tc, tmp_path, BOB, f"fork{i}.txt")
            sign(running, tc, tmp_path, BOB, f"fork{i}-v1.txt", "1")
        code, events, err = monitor(tc, state, "--identity", USER)
        assert code == 3, err
        assert {e["log"] for e in events} == {running.url, f"{running.url}/rekor",
                                              f"{running.url}/ctlog"}
        assert all(e["event"] == "inconsistency" and "fork" in str(e["reason"]) for e in events)
        (event,) = [e for e in events if e["log"] == f"{running.url}/rekor"]
        evidence = json.loads(Path(str(event["evidence"])).read_text())
        assert evidence["previous"].split("\n")[1] == str(honest_size)
        assert Path(str(event["evidence"])).stat().st_mode & 0o777 == 0o600
        # the state still holds the honest checkpoint: the fork is reported again, not adopted
        code, events, err = monitor(tc, state, "--identity", USER)
        assert code == 3 and events[0]["event"] == "inconsistency"
    finally:
        running.stop()
