"""Two real witnesses, a stack with quorum 2, a fork and a crashed witness (issue 16 §1-3, §5).

``keyless witness serve`` runs twice on free loopback ports; a ``keyless serve`` stack is
configured with both (``[[witnesses]]``, ``[witnessing] quorum = 2``). Then, with real processes:

* sigstore-python signs on Rekor v2; the bundle's checkpoint carries both cosignatures, which an
  independent C2SP tlog-cosignature verifier written here from the spec checks; sigstore-python
  and sigstore-js still verify the bundle (they ignore the extra lines); ``keyless verify
  --witness-policy`` accepts it with the instance's published policy (``P/witness-policy``)
  and, through TUF (``witness_policy.txt``) with ``--server`` and no flag, reports both
  witnesses;
* a witness killed with SIGKILL and restarted still holds the size it cosigned: it answers 409
  with that size to an older checkpoint and never cosigns a smaller tree;
* the stack's data directory restored from a backup and given different entries (a fork) gets
  no cosignature: both witnesses refuse it (422, kept as evidence), the writes fail, the
  witnesses keep publishing the honest checkpoint and the stack keeps serving its last witnessed
  one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from stackutil import KEYLESS, USER, RunningStack, free_port, start_stack

from conftest import ROOT

pytestmark = pytest.mark.integration


# -- an independent C2SP cosignature verifier (tlog-cosignature, signed-note), from the spec --


def c2sp_verify_cosignature(envelope: str, vkey: str) -> int:
    """The timestamp of ``vkey``'s valid cosignature/v1 line on the note; AssertionError if none.

    signed-note: text up to the last blank line, then lines ``— <name> base64(keyID || sig)``;
    vkey ``<name>+<hex keyID>+base64(0x04 || key)``, keyID = SHA-256(name || 0x0A || 0x04 ||
    key)[:4]; tlog-cosignature: sig = u64 big-endian timestamp || Ed25519 over
    ``"cosignature/v1\\ntime <ts>\\n" || note text``.
    """
    name, key_id_hex, key_b64 = vkey.split("+", 2)
    raw = base64.b64decode(key_b64)
    assert raw[0] == 0x04 and len(raw) == 33
    key_id = hashlib.sha256(name.encode() + b"\n\x04" + raw[1:]).digest()[:4]
    assert key_id.hex() == key_id_hex
    text, block = envelope.rsplit("\n\n", 1)
    body = (text + "\n").encode()
    for line in block.rstrip("\n").split("\n"):
        dash, signer, b64 = line.split(" ")
        assert dash == "\u2014"
        blob = base64.b64decode(b64)
        if signer != name or blob[:4] != key_id:
            continue
        timestamp = int.from_bytes(blob[4:12], "big")
        message = b"cosignature/v1\ntime %d\n" % timestamp + body
        ed25519.Ed25519PublicKey.from_public_bytes(raw[1:]).verify(blob[12:], message)
        return timestamp
    raise AssertionError(f"no cosignature of {name} on the checkpoint")


# -- processes -----------------------------------------------------------------------------


@dataclass
class Witness:
    data_dir: Path
    port: int
    vkey: str
    log_vkeys: list[str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [str(KEYLESS), "witness", "serve", "--data-dir", str(self.data_dir),
                "--port", str(self.port)]
        for vkey in self.log_vkeys:
            args += ["--log", vkey]
        log = open(self.data_dir.parent / f"witness-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"witness not healthy:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(20)

    def output(self) -> str:
        return (self.data_dir.parent / f"witness-{self.port}.log").read_text(errors="replace")

    def add_checkpoint(self, old: int, note: str, proof: tuple[bytes, ...] = ()) -> httpx.Response:
        body = f"old {old}\n".encode() + b"".join(base64.b64encode(h) + b"\n" for h in proof)
        return httpx.post(f"{self.url}/add-checkpoint", content=body + b"\n" + note.encode(),
                          timeout=10)

    def published(self, origin: str) -> str:
        digest = hashlib.sha256(origin.encode()).hexdigest()
        response = httpx.get(f"{self.url}/{digest}/checkpoint", timeout=10)
        assert response.status_code == 200, response.text
        return response.text

    def answers(self, status: int) -> int:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return sum(int(n) for n in re.findall(
            rf'keyless_witness_answers_total{{[^}}]*status="{status}"}} (\d+)', text))


def keyless(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KEYLESS), *args], capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ, **(env or {})})


def witness_the_stack(data: Path, witnesses: list[Witness]) -> str:
    """Point ``witnesses`` at the (stopped) stack's Rekor v2 log, start them, and configure the
    stack to need both (``quorum = 2``); the log's vkey."""
    vkeys = keyless("admin", "vkeys", "--data-dir", str(data))
    assert vkeys.returncode == 0, vkeys.stderr
    (log_vkey,) = vkeys.stdout.split()
    for witness in witnesses:
        witness.log_vkeys = [log_vkey]
        witness.start()
    with open(data / "keyless.toml", "a", encoding="utf-8") as config:
        for witness in witnesses:
            config.write(f'\n[[witnesses]]\nurl = "{witness.url}"\nvkey = "{witness.vkey}"\n')
        config.write("\n[witnessing]\nquorum = 2\ntimeout = 10.0\n")
    return log_vkey


def sign_python(sigstore: Path, stack: RunningStack, tc: Path, artifact: Path,
                bundle: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(sigstore), "--trust-config", str(tc), "sign", "--rekor-version", "2",
         "--identity-token", stack.token(), "--bundle", str(bundle), str(artifact)],
        capture_output=True, text=True, timeout=120, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith(("SIGSTORE_", "GITHUB_"))},
    )


def checkpoint_of(bundle: Path) -> str:
    data = json.loads(bundle.read_text())
    entry = data["verificationMaterial"]["tlogEntries"][0]
    assert entry["kindVersion"]["version"] == "0.0.2"  # Rekor v2
    envelope: str = entry["inclusionProof"]["checkpoint"]["envelope"]
    return envelope


def size_of(note: str) -> int:
    return int(note.split("\n")[1])


@pytest.fixture
def witnesses(tmp_path: Path) -> Iterator[list[Witness]]:
    made = []
    for number in (1, 2):
        data = tmp_path / f"witness-{number}"
        init = keyless("witness", "init", "--data-dir", str(data), "--name",
                       f"w{number}.keyless.test")
        assert init.returncode == 0, init.stderr
        assert (data / "witness-key").stat().st_mode & 0o777 == 0o600
        made.append(Witness(data, free_port(), init.stdout.strip(), []))
    try:
        yield made
    finally:
        for witness in made:
            witness.stop(signal.SIGKILL)


def test_two_witnesses_cosign_refuse_a_fork_and_survive_kill9(
    tmp_path: Path, witnesses: list[Witness], sigstore_python: Path, node_path: Path
) -> None:
    # 1. a stack, once, to learn its Rekor v2 vkey; then the witnesses follow that log
    data = tmp_path / "stack" / "data"
    port = free_port()
    first = start_stack(data, port=port)
    first.stop()
    origin = witness_the_stack(data, witnesses).split("+", 1)[0]
    assert origin == f"localhost:{port}/rekor"

    # 2. quorum 2: sigstore-python's bundle carries both cosignatures
    stack = start_stack(data, port=port)
    work = tmp_path / "work"
    work.mkdir()
    tc = work / "tc.json"
    tc.write_text(json.dumps(stack.client_trust_config()))
    artifact_a = work / "a.txt"
    artifact_a.write_bytes(b"witnessed artifact a\n")
    signed = sign_python(sigstore_python, stack, tc, artifact_a, work / "a.sigstore.json")
    assert signed.returncode == 0, signed.stderr + stack.output()
    note_a = checkpoint_of(work / "a.sigstore.json")
    for witness in witnesses:
        assert c2sp_verify_cosignature(note_a, witness.vkey) > 1_700_000_000
    served = httpx.get(f"{stack.url}/rekor/checkpoint", timeout=10).text
    assert size_of(served) >= size_of(note_a)
    for witness in witnesses:
        c2sp_verify_cosignature(served, witness.vkey)
    policy = httpx.get(f"{stack.url}/witness-policy", timeout=10)
    assert policy.status_code == 200
    policy_file = work / "policy.txt"
    policy_file.write_text(policy.text)
    assert "quorum witnesses" in policy.text and "group witnesses 2 w1 w2" in policy.text
    verify = [str(artifact_a), "--bundle", str(work / "a.sigstore.json"), "--cert-identity",
              USER, "--cert-oidc-issuer", stack.issuer]
    ok = keyless("verify", *verify, "--trust-config", str(tc), "--witness-policy",
                 str(policy_file))
    assert ok.returncode == 0 and "witnessed by w1, w2" in ok.stderr, ok.stderr
    python_ok = subprocess.run(
        [str(sigstore_python), "--trust-config", str(tc), "verify", "identity", "--bundle",
         str(work / "a.sigstore.json"), "--cert-identity", USER, "--cert-oidc-issuer",
         stack.issuer, str(artifact_a)], capture_output=True, text=True, timeout=120, check=False)
    assert python_ok.returncode == 0, python_ok.stderr
    trusted_root = work / "trusted_root.json"
    trusted_root.write_text(json.dumps(json.loads(tc.read_text())["trustedRoot"]))
    js_ok = subprocess.run(
        ["node", str(ROOT / "tests" / "interop" / "verify.js"), str(trusted_root),
         str(work / "a.sigstore.json"), str(artifact_a), "--identity", USER,
         "--issuer", stack.issuer], capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "NODE_PATH": str(node_path)})
    assert js_ok.returncode == 0 and (js_ok.stdout + js_ok.stderr).startswith("OK "), js_ok.stderr
    # TUF users get the policy without a flag (pinned instance, witness_policy.txt target)
    home = {"XDG_DATA_HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    pinned = keyless("trust-instance", stack.url, str(data / "tuf-root.json"), env=home)
    assert pinned.returncode == 0, pinned.stderr
    via_tuf = keyless("verify", *verify, "--server", stack.url, env=home)
    assert via_tuf.returncode == 0 and "witnessed by w1, w2" in via_tuf.stderr, via_tuf.stderr
    # a policy the bundle does not meet fails the verification
    strict = work / "strict.txt"
    other = keyless("witness", "init", "--data-dir", str(tmp_path / "w3"), "--name", "w3.test")
    strict.write_text(policy.text.replace("group witnesses 2 w1 w2",
                                          f"witness w3 {other.stdout.strip()}\n"
                                          "group witnesses 3 w1 w2 w3"))
    refused = keyless("verify", *verify, "--trust-config", str(tc), "--witness-policy",
                      str(strict))
    assert refused.returncode == 1 and "quorum" in refused.stderr, refused.stderr
    metrics = httpx.get(f"{stack.url}/metrics", timeout=10).text
    assert re.search(r'keyless_witness_up\{name="w1.keyless.test"\} 1', metrics), metrics

    # 3. backup (stopped stack), then one more honest entry
    assert stack.stop() in (0, -signal.SIGTERM)
    backup = tmp_path / "backup"
    shutil.copytree(data, backup)
    stack = start_stack(data, port=port)
    artifact_b = work / "b.txt"
    artifact_b.write_bytes(b"witnessed artifact b\n")
    signed = sign_python(sigstore_python, stack, tc, artifact_b, work / "b.sigstore.json")
    assert signed.returncode == 0, signed.stderr + stack.output()
    note_b = checkpoint_of(work / "b.sigstore.json")
    honest_size = size_of(note_b)
    assert honest_size > size_of(note_a)
    assert stack.stop() in (0, -signal.SIGTERM)

    # 4. kill -9 a witness: after the restart it still has the honest size and refuses older
    victim = witnesses[0]
    victim.stop(signal.SIGKILL)
    victim.start()
    stale = victim.add_checkpoint(0, note_a)
    assert stale.status_code == 409, stale.text
    assert stale.headers["content-type"] == "text/x.tlog.size"
    assert stale.text == f"{honest_size}\n"
    assert victim.add_checkpoint(size_of(note_a), note_a).status_code == 409
    assert victim.add_checkpoint(honest_size + 5, note_a).status_code == 400
    assert size_of(victim.published(origin)) == honest_size
    c2sp_verify_cosignature(victim.published(origin), victim.vkey)

    # 5. the fork: the backup restored, different entries written; no witness cosigns them
    shutil.rmtree(data)
    shutil.copytree(backup, data)
    forked = start_stack(data, port=port)
    try:
        before = [w.answers(422) for w in witnesses]
        for name in ("c.txt", "d.txt"):
            artifact = work / name
            artifact.write_bytes(f"forked artifact {name}\n".encode())
            failed = sign_python(sigstore_python, forked, tc, artifact, work / f"{name}.json")
            assert failed.returncode != 0, "a forked entry was acknowledged"
            assert not (work / f"{name}.json").exists()
        assert all(after >= b + 1 for after, b in zip(
            [w.answers(422) for w in witnesses], before, strict=True))
        for witness in witnesses:  # still the honest tree
            assert witness.published(origin).split("\n")[:3] == note_b.split("\n")[:3]
        served = httpx.get(f"{forked.url}/rekor/checkpoint", timeout=10).text
        assert size_of(served) < honest_size  # the last witnessed checkpoint of the backup
        for witness in witnesses:
            c2sp_verify_cosignature(served, witness.vkey)
        metrics = httpx.get(f"{forked.url}/metrics", timeout=10).text
        refusals = re.findall(r'keyless_witness_refusals_total\{name="[^"]+"\} (\S+)', metrics)
        assert refusals and all(float(r) >= 1 for r in refusals), metrics
    finally:
        forked.stop()


def _v2_writer(stack: RunningStack) -> Callable[[int], httpx.Response]:
    """``write(n)``: a Rekor v2 hashedrekord entry for artifact ``n``, signed by a key the CA
    certified (one certificate for all: the write path is what is under test)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    proof = key.sign(USER.encode(), ec.ECDSA(hashes.SHA256()))
    issued = httpx.post(f"{stack.url}/api/v2/signingCert", timeout=30, json={
        "credentials": {"oidcIdentityToken": stack.token()},
        "publicKeyRequest": {"publicKey": {"algorithm": "ECDSA", "content": pem.decode()},
                             "proofOfPossession": base64.b64encode(proof).decode()}})
    assert issued.status_code == 200, issued.text
    leaf_pem = issued.json()["signedCertificateEmbeddedSct"]["chain"]["certificates"][0]
    leaf_der = x509.load_pem_x509_certificate(leaf_pem.encode()).public_bytes(
        serialization.Encoding.DER)

    def write(n: int) -> httpx.Response:
        digest = hashlib.sha256(b"witnessed by workers %d" % n).digest()
        signature = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        body = {"hashedRekordRequestV002": {
            "digest": base64.b64encode(digest).decode(),
            "signature": {"content": base64.b64encode(signature).decode(), "verifier": {
                "x509Certificate": {"rawBytes": base64.b64encode(leaf_der).decode()},
                "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}}}
        return httpx.post(f"{stack.url}/rekor/api/v2/log/entries", json=body, timeout=60)

    return write


def test_workers_publish_one_witnessed_checkpoint(
    tmp_path: Path, witnesses: list[Witness]
) -> None:
    """``--workers 2`` with a quorum of 2: concurrent writes land on both workers, each worker
    sequences and publishes its own batches, and still every write is acknowledged under a
    checkpoint both witnesses cosigned, no witness refuses, and whichever worker answers serves
    a checkpoint at least as new as every acknowledged one."""
    data = tmp_path / "stack" / "data"
    port = free_port()
    first = start_stack(data, "--workers", "2", port=port)
    first.stop()
    witness_the_stack(data, witnesses)
    stack = start_stack(data, "--workers", "2", port=port)
    try:
        write = _v2_writer(stack)
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(write, range(96)))
        assert [a.status_code for a in answers] == [201] * 96, [a.text for a in answers
                                                                if a.status_code != 201]
        acknowledged = 0
        for answer in answers:
            note = answer.json()["inclusionProof"]["checkpoint"]["envelope"]
            for witness in witnesses:
                c2sp_verify_cosignature(note, witness.vkey)
            acknowledged = max(acknowledged, size_of(note))
        assert acknowledged >= 97  # the seed entry and the 96
        for _ in range(20):  # answered by either worker
            served = httpx.get(f"{stack.url}/rekor/checkpoint", timeout=10).text
            assert size_of(served) >= acknowledged
            for witness in witnesses:
                c2sp_verify_cosignature(served, witness.vkey)
        metrics = httpx.get(f"{stack.url}/metrics", timeout=10).text
        refusals = re.findall(r'keyless_witness_refusals_total\{name="[^"]+"\} (\S+)', metrics)
        assert refusals and all(float(r) == 0 for r in refusals), metrics
        assert "rolled back or forked" not in stack.output()
        assert all(w.answers(422) == 0 for w in witnesses)
    finally:
        stack.stop()
