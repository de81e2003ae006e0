"""keyless as git's signing program, with Debian's git and a real ``keyless serve`` stack.

Every test works in its own temporary repository configured by ``keyless git setup``; tokens
come from the stack's password grant (SIGSTORE_ID_TOKEN), git runs ``keyless-git`` for
``git commit -S`` / ``git tag -s`` / ``git verify-commit`` / ``git log --show-signature``, and the
programs run without a controlling terminal (no interactive sign-in can start).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import cms as asn1cms

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stack"))
from stackutil import ROOT, USER, RunningStack, start_stack

from keyless.git import cms
from keyless.git.objects import split_commit

pytestmark = pytest.mark.integration
BIN = ROOT / ".venv" / "bin"
KEYLESS = BIN / "keyless"
BOB = "bob@example.com"
PASSWORD = "s3cret-password"
AMBIENT = ("SIGSTORE_", "GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_", "GITLAB_CI", "BUILDKITE",
           "CIRCLECI", "GOOGLE_SERVICE_ACCOUNT_NAME", "KEYLESS_", "GIT_")
#: shifts the clock of a Python process (time and datetime) by KEYLESS_TEST_CLOCK_SHIFT seconds
CLOCK_SHIFT = '''
import datetime as _dt, os as _os, time as _time
_shift = float(_os.environ["KEYLESS_TEST_CLOCK_SHIFT"])
_real_time, _real_ns = _time.time, _time.time_ns
_time.time = lambda: _real_time() + _shift
_time.time_ns = lambda: _real_ns() + int(_shift * 1e9)
class _Shifted(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return _dt.datetime.fromtimestamp(_time.time(), tz)
    @classmethod
    def utcnow(cls):
        return _dt.datetime.fromtimestamp(_time.time(), _dt.timezone.utc).replace(tzinfo=None)
_dt.datetime = _Shifted
'''


def _users() -> tuple[str, ...]:
    return (f"{USER}:{PASSWORD}", f"{BOB}:{PASSWORD}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("git-stack") / "data",
                          users=_users())
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def trust_config(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("git-trust") / "tc.json"
    path.write_text(json.dumps(stack.client_trust_config()))
    return path


class Repo:
    """A temporary repository with its own HOME and user cache dir (the certificate cache)."""

    def __init__(self, path: Path, home: Path) -> None:
        self.path = path
        self.home = home
        self.cache = home / "cache"

    def env(self, token: str | None = None, **extra: str) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(AMBIENT)}
        env = {**clean, "HOME": str(self.home), "XDG_CACHE_HOME": str(self.cache),
               "XDG_DATA_HOME": str(self.home / "data"), "GIT_CONFIG_NOSYSTEM": "1", **extra}
        if token:
            env["SIGSTORE_ID_TOKEN"] = token
        return env

    def run(self, *argv: str | Path, token: str | None = None, stdin: bytes | None = None,
            **extra: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(a) for a in argv], cwd=self.path, env=self.env(token, **extra),
            input=stdin.decode() if stdin is not None else None, capture_output=True,
            text=True, timeout=120, check=False, start_new_session=True,  # no /dev/tty
        )
        return done

    def git(self, *argv: str, token: str | None = None, **extra: str
            ) -> subprocess.CompletedProcess[str]:
        return self.run("git", *argv, token=token, **extra)

    def ok(self, *argv: str, token: str | None = None, **extra: str) -> str:
        done = self.git(*argv, token=token, **extra)
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
        return done.stdout

    def keyless(self, *argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return self.run(KEYLESS, *argv, **extra)

    def raw(self, kind: str, rev: str) -> bytes:
        return subprocess.run(["git", "cat-file", kind, rev], cwd=self.path, capture_output=True,
                              check=True, env=self.env()).stdout

    def write_object(self, kind: str, data: bytes) -> str:
        return subprocess.run(["git", "hash-object", "-t", kind, "-w", "--stdin"], input=data,
                              cwd=self.path, capture_output=True, check=True,
                              env=self.env()).stdout.decode().strip()

    def status(self, rev: str) -> str:
        """``%G? %GT %GS`` of a commit as git reports it."""
        return self.ok("log", "-1", "--format=%G? %GT %GS", rev).strip()


def make_repo(tmp_path: Path, *setup: str) -> Repo:
    path, home = tmp_path / "repo", tmp_path / "home"
    path.mkdir()
    home.mkdir()
    repo = Repo(path, home)
    repo.ok("init", "-q", "-b", "main")
    repo.ok("config", "user.name", "Alice")
    repo.ok("config", "user.email", USER)
    done = repo.keyless("git", "setup", *setup)
    assert done.returncode == 0, done.stderr
    return repo


@pytest.fixture
def repo(tmp_path: Path, stack: RunningStack, trust_config: Path) -> Repo:
    return make_repo(tmp_path, "--trust-config", str(trust_config), "--identity", USER,
                     "--issuer", stack.issuer)


def commit(repo: Repo, message: str, token: str | None, name: str = "f.txt") -> str:
    (repo.path / name).write_text(f"{message}\n")
    repo.ok("add", name)
    repo.ok("commit", "-q", "-m", message, token=token)
    return repo.ok("rev-parse", "HEAD").strip()


def with_signature(raw_commit: bytes, armored: bytes) -> bytes:
    """The commit with its gpgsig header replaced by ``armored``."""
    payload, _ = split_commit(raw_commit)
    head, _, body = payload.partition(b"\n\n")
    lines = armored.rstrip(b"\n").split(b"\n")
    header = b"gpgsig " + b"\n ".join(lines)
    return head + b"\n" + header + b"\n\n" + body


def signer_info(armored: bytes) -> tuple[asn1cms.ContentInfo, asn1cms.SignerInfo]:
    info = asn1cms.ContentInfo.load(cms.dearmor(armored))
    return info, info["content"]["signer_infos"][0]


# --- the happy path ---------------------------------------------------------------------------


def test_setup_writes_the_git_config(repo: Repo, trust_config: Path, stack: RunningStack) -> None:
    config = repo.ok("config", "--local", "--list")
    for line in ("gpg.format=x509", f"gpg.x509.program={BIN / 'keyless-git'}",
                 "commit.gpgsign=true", "tag.gpgsign=true", f"keyless.trustconfig={trust_config}",
                 f"keyless.identity={USER}", f"keyless.issuer={stack.issuer}"):
        assert line in config.splitlines(), config


def test_signed_commit_and_tag_verify(repo: Repo, stack: RunningStack, tmp_path: Path) -> None:
    oid = commit(repo, "first", stack.token())
    verified = repo.git("verify-commit", oid)
    assert verified.returncode == 0, verified.stderr
    assert f"Good signature by {USER} ({stack.issuer})" in verified.stderr
    assert repo.status(oid) == f"G fully {USER}"
    shown = repo.ok("log", "-1", "--show-signature")
    assert f"Good signature by {USER}" in shown and "transparency log index" in shown
    # gpg.minTrustLevel: the signer is trusted "fully", not "ultimately"
    assert repo.git("-c", "gpg.minTrustLevel=fully", "verify-commit", oid).returncode == 0
    assert repo.git("-c", "gpg.minTrustLevel=ultimate", "verify-commit", oid).returncode == 1

    repo.ok("tag", "-s", "-m", "release 1", "v1", token=stack.token())
    tagged = repo.git("verify-tag", "v1")
    assert tagged.returncode == 0, tagged.stderr
    assert f"Good signature by {USER}" in tagged.stderr
    for argv in (("verify-commit", oid), ("verify-tag", "v1")):
        explicit = repo.keyless(*argv, "--cert-identity", USER, "--cert-oidc-issuer",
                                stack.issuer, "--offline")  # trust from git config
        assert explicit.returncode == 0, explicit.stderr
        assert explicit.stderr.startswith(f"OK: {argv[0][7:]} ")
        other = repo.keyless(*argv, "--cert-identity", BOB, "--cert-oidc-issuer", stack.issuer)
        assert other.returncode == 1 and "verification failed" in other.stderr


def test_signature_layout(repo: Repo, stack: RunningStack, tmp_path: Path) -> None:
    """gitsign's CMS layout, the embedded log entry and timestamp, and an independent check of
    the CMS signature over the commit payload by openssl."""
    from keyless.git.tlogpb import decode_entry

    oid = commit(repo, "layout", stack.token())
    payload, armored = split_commit(repo.raw("commit", oid))
    assert armored.startswith(b"-----BEGIN SIGNED MESSAGE-----\n")
    assert all(len(line) <= 64 for line in armored.split(b"\n"))
    info, si = signer_info(armored)
    sd = info["content"]
    assert info["content_type"].native == "signed_data"
    assert sd["version"].native == "v1" and si["version"].native == "v1"
    assert sd["encap_content_info"]["content"].native is None  # detached
    assert len(sd["certificates"]) == 1 and len(sd["signer_infos"]) == 1
    assert si["sid"].name == "issuer_and_serial_number"
    assert si["digest_algorithm"]["algorithm"].native == "sha256"
    assert si["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"
    assert [a["type"].native for a in si["signed_attrs"]] == [
        "content_type", "signing_time", "message_digest"]
    unsigned = {a["type"].dotted: a for a in si["unsigned_attrs"]}
    assert set(unsigned) == {"1.2.840.113549.1.9.16.2.14", cms.REKOR_ENTRY_OID}
    embedded = cms.parse(cms.dearmor(armored)).log_entry
    assert embedded is not None
    entry = decode_entry(embedded)
    assert entry.inclusion_proof is not None and entry.inclusion_proof.checkpoint
    (tmp_path / "sig.der").write_bytes(cms.dearmor(armored))
    (tmp_path / "payload").write_bytes(payload)
    checked = subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "sig.der",
         "-content", tmp_path / "payload", "-noverify", "-out", os.devnull],
        capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    (tmp_path / "payload").write_bytes(payload + b"x")
    tampered = subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "sig.der",
         "-content", tmp_path / "payload", "-noverify", "-out", os.devnull],
        capture_output=True, text=True, check=False)
    assert tampered.returncode != 0


# --- what must not verify ---------------------------------------------------------------------


def test_changed_message_or_content_after_signing(repo: Repo, stack: RunningStack) -> None:
    first = commit(repo, "base", stack.token())
    oid = commit(repo, "signed message", None)  # the cached certificate signs
    raw = repo.raw("commit", oid)
    reworded = repo.write_object("commit", raw.replace(b"signed message", b"evil message"))
    assert repo.status(reworded).startswith("B ")
    failed = repo.git("verify-commit", reworded)
    assert failed.returncode == 1 and "changed after signing" in failed.stderr
    # a rebase or amend that keeps the old signature: same message, another tree or parent
    tree = repo.ok("rev-parse", f"{first}^{{tree}}").strip()
    moved = re.sub(rb"^tree [0-9a-f]+", b"tree " + tree.encode(), raw, count=1)
    assert moved != raw
    assert repo.status(repo.write_object("commit", moved)).startswith("B ")
    # git commit --amend re-signs (commit.gpgsign) or, with --no-gpg-sign, drops the signature
    repo.ok("commit", "--amend", "-q", "--no-gpg-sign", "-m", "amended")
    assert repo.status("HEAD") == "N undefined"  # git's letters: no signature
    repo.ok("commit", "--amend", "-q", "-m", "amended and signed")
    assert repo.status("HEAD") == f"G fully {USER}"
    # a tag whose message was changed
    repo.ok("tag", "-s", "-m", "release", "v2")
    tag = repo.raw("tag", "v2")
    forged = repo.write_object("tag", tag.replace(b"\nrelease\n", b"\nforged!\n"))
    repo.ok("update-ref", "refs/tags/v2-forged", forged)
    failed = repo.git("verify-tag", "v2-forged")
    assert failed.returncode == 1 and "changed after signing" in failed.stderr
    explicit = repo.keyless("verify-tag", "v2-forged")
    assert explicit.returncode == 1 and "changed after signing" in explicit.stderr


def test_another_identity_is_not_a_good_signature(repo: Repo, stack: RunningStack) -> None:
    oid = commit(repo, "by bob", stack.token(BOB, PASSWORD))
    assert repo.status(oid) == f"B never {BOB}"
    failed = repo.git("verify-commit", oid)
    assert failed.returncode == 1
    assert "not from the expected signer" in failed.stderr and BOB in failed.stderr
    as_bob = repo.keyless("verify-commit", oid, "--cert-identity", BOB, "--cert-oidc-issuer",
                          stack.issuer)
    assert as_bob.returncode == 0, as_bob.stderr
    regexp = repo.keyless("verify-commit", oid, "--cert-identity-regexp", r"bob@.*",
                          "--cert-oidc-issuer", stack.issuer)
    assert regexp.returncode == 0, regexp.stderr
    assert repo.keyless("verify-commit", oid).returncode == 1  # git config expects alice
    # the token's signer decides: a cached certificate of somebody else is not reused
    alice = commit(repo, "by alice", stack.token())
    assert repo.status(alice) == f"G fully {USER}"
    # nobody expected: a valid signature, but git verify-commit fails (fail closed)
    repo.ok("config", "--unset", "keyless.identity")
    repo.ok("config", "--unset", "keyless.issuer")
    assert repo.status(alice) == f"U undefined {USER}"
    unset = repo.git("verify-commit", alice)
    assert unset.returncode == 1 and "no expected signer is configured" in unset.stderr


def test_no_token_fails_cleanly(tmp_path: Path, trust_config: Path) -> None:
    repo = make_repo(tmp_path, "--trust-config", str(trust_config))
    (repo.path / "f").write_text("x")
    repo.ok("add", "f")
    done = repo.git("commit", "-q", "-m", "unsigned")
    assert done.returncode != 0 and "failed to sign" in done.stderr
    # git keeps the program's stderr (its status channel) to itself: run it as git does
    direct = repo.run(BIN / "keyless-git", "--status-fd=2", "-bsau", f"Alice <{USER}>",
                      stdin=b"tree 0\n")
    assert direct.returncode == 1 and direct.stdout == ""
    assert direct.stderr.splitlines()[0] == "[GNUPG:] BEGIN_SIGNING"
    assert "signing failed: no identity token" in direct.stderr
    assert "SIG_CREATED" not in direct.stderr and "Traceback" not in direct.stderr
    assert repo.git("rev-parse", "--verify", "-q", "HEAD").returncode != 0  # nothing committed


@pytest.mark.parametrize("rekor", ["2", "1"])
def test_expired_certificate_with_a_valid_log_time(repo: Repo, stack: RunningStack,
                                                   tmp_path: Path, rekor: str) -> None:
    """A day later the 10-minute certificate has long expired; the signature stays valid
    because the TSA (Rekor v2) or the log's signed integrated time (v1) attests that it was
    made while the certificate was valid."""
    from cryptography import x509

    from keyless.git.tlogpb import decode_entry

    repo.ok("config", "keyless.rekorVersion", rekor)
    oid = commit(repo, "old news", stack.token())
    _, armored = split_commit(repo.raw("commit", oid))
    info, _ = signer_info(armored)
    leaf = x509.load_der_x509_certificate(info["content"]["certificates"][0].dump())
    embedded = cms.parse(cms.dearmor(armored)).log_entry
    assert embedded is not None
    assert decode_entry(embedded).version == ("0.0.2" if rekor == "2" else "0.0.1")
    day = 24 * 3600
    assert leaf.not_valid_after_utc.timestamp() < time.time() + day
    shim = tmp_path / "clock"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(CLOCK_SHIFT)
    later = {"PYTHONPATH": str(shim), "KEYLESS_TEST_CLOCK_SHIFT": str(day)}
    probe = repo.run(BIN / "python", "-c", "import time; print(time.time())", **later)
    assert float(probe.stdout) > leaf.not_valid_after_utc.timestamp()  # the shim works
    verified = repo.git("verify-commit", oid, **later)
    assert verified.returncode == 0, verified.stderr
    explicit = repo.keyless("verify-commit", oid, "--offline", **later)
    assert explicit.returncode == 0, explicit.stderr
    if rekor == "1":  # the log's time alone suffices: drop the TSA's timestamps
        mine = cms.parse(cms.dearmor(armored))
        der = cms.assemble(mine.signed_attrs, mine.signature, mine.certificate_der,
                           log_entry=mine.log_entry)
        raw = repo.raw("commit", oid)
        log_time_only = repo.write_object("commit", with_signature(raw, cms.armor(der)))
        assert repo.status(log_time_only) == f"G fully {USER}"
        assert repo.git("verify-commit", log_time_only, **later).returncode == 0


def test_expired_certificate_without_a_valid_log_time(repo: Repo, stack: RunningStack) -> None:
    """Without the log entry (or with another signature's entry) nothing says when the
    signature was made: it never verifies, and there is no fallback to "now"."""
    other = commit(repo, "another", stack.token())
    oid = commit(repo, "victim", None)
    raw = repo.raw("commit", oid)
    _, armored = split_commit(raw)
    mine = cms.parse(cms.dearmor(armored))

    def rebuilt(timestamps: tuple[bytes, ...], entry: bytes | None) -> str:
        der = cms.assemble(mine.signed_attrs, mine.signature, mine.certificate_der,
                           timestamps=timestamps, log_entry=entry)
        return repo.write_object("commit", with_signature(raw, cms.armor(der)))

    stripped = rebuilt((), None)
    assert repo.status(stripped) == "E undefined"
    failed = repo.git("verify-commit", stripped)
    assert failed.returncode == 1 and "no transparency log entry" in failed.stderr
    # another commit's entry and timestamp: a log time, but for another signature
    theirs = cms.parse(cms.dearmor(split_commit(repo.raw("commit", other))[1]))
    swapped = rebuilt(theirs.timestamps, theirs.log_entry)
    assert repo.status(swapped).startswith("B ")
    explicit = repo.keyless("verify-commit", swapped)
    assert explicit.returncode == 1 and "verification failed" in explicit.stderr


# --- offline, and a burst -------------------------------------------------------------------------


def test_offline_verify_with_the_server_stopped(tmp_path: Path) -> None:
    own = start_stack(tmp_path / "own-stack" / "data", users=_users())
    try:
        repo = make_repo(tmp_path, "--server", own.url, "--identity", USER,
                         "--issuer", own.issuer)
        pinned = repo.keyless("trust-instance", own.url, str(own.data_dir / "tuf-root.json"))
        assert pinned.returncode == 0, pinned.stderr
        oid = commit(repo, "signed online", own.token())
        repo.ok("tag", "-s", "-m", "offline tag", "t1")
        (tmp_path / "tc.json").write_text(json.dumps(own.client_trust_config()))
    finally:
        own.stop()
    verified = repo.git("verify-commit", oid)  # trust from the TUF cache; no network
    assert verified.returncode == 0, verified.stderr
    assert repo.git("verify-tag", "t1").returncode == 0
    explicit = repo.keyless("verify-commit", oid, "--trust-config", str(tmp_path / "tc.json"),
                            "--offline")
    assert explicit.returncode == 0, explicit.stderr
    assert repo.status(oid) == f"G fully {USER}"


def test_a_burst_of_50_commits_with_one_login(repo: Repo, stack: RunningStack) -> None:
    started = time.monotonic()
    commit(repo, "commit 0", stack.token())  # the one login
    for i in range(1, 50):
        commit(repo, f"commit {i}", None)  # no token: the cached certificate signs
    signing = time.monotonic() - started
    started = time.monotonic()
    letters = repo.ok("log", "--format=%G?").split()
    checking = time.monotonic() - started
    assert letters == ["G"] * 50
    files = list((repo.cache / "keyless" / "git").iterdir())
    assert len(files) == 1
    assert files[0].stat().st_mode & 0o777 == 0o600
    assert files[0].parent.stat().st_mode & 0o777 == 0o700
    signatures = {split_commit(repo.raw("commit", f"HEAD~{i}"))[1] for i in range(50)}
    certs = {signer_info(s)[0]["content"]["certificates"][0].dump() for s in signatures}
    assert len(certs) == 1  # one certificate for the whole burst
    print(f"\nburst: 50 signed commits in {signing:.1f} s ({signing / 50 * 1000:.0f} ms each), "
          f"verified by git log %G? in {checking:.1f} s")


def test_an_unusable_cache_does_not_stop_signing(repo: Repo, stack: RunningStack) -> None:
    """The cache is a convenience: when it cannot be written the commit is still signed, and
    the next one simply needs a token again."""
    repo.cache.parent.mkdir(parents=True, exist_ok=True)
    repo.cache.write_text("not a directory")
    oid = commit(repo, "uncached", stack.token())
    assert repo.status(oid) == f"G fully {USER}"
    (repo.path / "g.txt").write_text("again\n")
    repo.ok("add", "g.txt")
    assert repo.git("commit", "-q", "-m", "no token").returncode != 0
