"""The keyless client against a real ``keyless serve`` stack (contracts.md §2, §4).

Signs with ``keyless sign`` / ``keyless attest`` (one certificate for several files, Rekor v2 and
v1, ``--trust-config`` and ``--server``), verifies with ``keyless verify`` and with unmodified
sigstore-python 4.5.1, and refreshes trust through the stack's TUF repository with python-tuf.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stack"))
from stackutil import PASSWORD, ROOT, USER, RunningStack, start_stack

from keyless.formats.bundle import Bundle
from keyless.trust.tuf import TufTrust

pytestmark = pytest.mark.integration
KEYLESS = ROOT / ".venv" / "bin" / "keyless"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A running stack whose TUF root is pinned (``keyless trust-instance``) in a user data
    dir of this module's own, so ``--server`` trusts it through TUF without a warning."""
    running = start_stack(tmp_path_factory.mktemp("client-stack") / "data")
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("client-home")))
            pinned = keyless("trust-instance", running.url, str(running.data_dir / "tuf-root.json"))
            assert pinned.returncode == 0, pinned.stderr
            yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def work(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("client")
    (d / "tc.json").write_text(json.dumps(stack.client_trust_config()))
    for name in ("a.txt", "b.txt", "c.txt"):
        (d / name).write_bytes(f"artifact {name}\n".encode())
    (d / "predicate.json").write_text(json.dumps({
        "buildDefinition": {"buildType": "https://example.com/t", "externalParameters": {}},
        "runDetails": {"builder": {"id": "https://example.com/builder"}},
    }))
    return d


#: where ``id`` finds ambient CI credentials: never inherited from the machine running the tests
AMBIENT = ("SIGSTORE_", "GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_", "GITLAB_CI", "BUILDKITE",
           "CIRCLECI", "GOOGLE_SERVICE_ACCOUNT_NAME")


def keyless(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(AMBIENT)}
    return subprocess.run([str(KEYLESS), *args], capture_output=True, text=True, timeout=120,
                          check=False, env={**clean, **(env or {})})


def verify_args(stack: RunningStack, work: Path, artifact: str, bundle: str) -> list[str]:
    return [artifact, "--bundle", bundle, "--cert-identity", USER,
            "--cert-oidc-issuer", stack.issuer, "--trust-config", str(work / "tc.json")]


@pytest.mark.parametrize("rekor", ["2", "1"])
def test_sign_many_files_with_one_certificate(stack: RunningStack, work: Path, rekor: str,
                                              tmp_path: Path) -> None:
    files = [str(tmp_path / n) for n in ("a.txt", "b.txt", "c.txt")]
    for f in files:
        Path(f).write_bytes((work / Path(f).name).read_bytes())
    signed = keyless("sign", *files, "--identity-token", stack.token(), "--rekor-version", rekor,
                     "--trust-config", str(work / "tc.json"))
    assert signed.returncode == 0, signed.stderr
    assert signed.stderr.splitlines() == [f"signed {f} -> {f}.sigstore.json" for f in files]
    bundles = [Bundle.from_json(Path(f + ".sigstore.json").read_bytes()) for f in files]
    assert len({b.verification_material.certificates for b in bundles}) == 1
    umask = os.umask(0)
    os.umask(umask)
    for f, b in zip(files, bundles, strict=True):
        entry = b.verification_material.tlog_entries[0]
        assert b.media_type == "application/vnd.dev.sigstore.bundle.v0.3+json"
        assert entry.version == ("0.0.2" if rekor == "2" else "0.0.1")
        assert Path(f + ".sigstore.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [Path(f).name for f in files] + [Path(f).name + ".sigstore.json" for f in files]
    ), "temporary files left behind"
    for f in files:
        ok = keyless("verify", *verify_args(stack, work, f, f + ".sigstore.json"))
        assert ok.returncode == 0, ok.stderr
    wrong = keyless("verify", *verify_args(stack, work, files[0], files[1] + ".sigstore.json"))
    assert wrong.returncode == 1
    assert "verification failed" in wrong.stderr and "Traceback" not in wrong.stderr


def test_server_trust_pinned_or_on_first_use(stack: RunningStack, work: Path,
                                             tmp_path: Path) -> None:
    """Pinned: ``--server`` verifies without a word; not pinned: the warning shows the SHA-256
    of the operator's ``DIR/tuf-root.json``, the file the README tells users to pin."""
    import hashlib

    artifact = str(work / "a.txt")
    bundle = str(tmp_path / "a.sigstore.json")
    signed = keyless("sign", artifact, "--bundle", bundle, "--identity-token", stack.token(),
                     "--server", stack.url)
    assert signed.returncode == 0, signed.stderr
    assert signed.stderr.splitlines() == [f"signed {artifact} -> {bundle}"]
    args = ["verify", artifact, "--bundle", bundle, "--cert-identity", USER,
            "--cert-oidc-issuer", stack.issuer, "--server", stack.url]
    ok = keyless(*args)
    assert (ok.returncode, ok.stderr) == (0, f"OK: {artifact}\n")
    first_use = keyless(*args, env={"XDG_DATA_HOME": str(tmp_path / "elsewhere")})
    assert first_use.returncode == 0, first_use.stderr
    digest = hashlib.sha256((stack.data_dir / "tuf-root.json").read_bytes()).hexdigest()
    warning, result = first_use.stderr.splitlines()
    assert warning.startswith(f"warning: {stack.url} is not pinned: trusting its TUF root "
                              f"sha256:{digest} on first use")
    assert result == f"OK: {artifact}"


def test_existing_bundle_needs_overwrite(stack: RunningStack, work: Path, tmp_path: Path) -> None:
    artifact = tmp_path / "o.txt"
    artifact.write_text("overwrite me\n")
    out = tmp_path / "o.txt.sigstore.json"
    out.write_text("precious")
    args = ["sign", str(artifact), "--identity-token", stack.token(), "--server", stack.url]
    refused = keyless(*args)
    assert refused.returncode == 2
    assert "refusing to overwrite" in refused.stderr and refused.stderr.count("\n") == 1
    assert out.read_text() == "precious"
    replaced = keyless(*args, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    ok = keyless("verify", str(artifact), "--cert-identity", USER, "--cert-oidc-issuer",
                 stack.issuer, "--server", stack.url)  # default --bundle: FILE.sigstore.json
    assert ok.returncode == 0, ok.stderr


def test_progress_on_a_terminal(stack: RunningStack, work: Path, tmp_path: Path) -> None:
    """Several files on a terminal: rich draws progress on stderr, stdout stays clean."""
    import pty

    files = []
    for i in range(4):
        (tmp_path / f"p{i}.txt").write_text(f"progress {i}\n")
        files.append(str(tmp_path / f"p{i}.txt"))
    leader, follower = pty.openpty()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(AMBIENT)}
    proc = subprocess.Popen(
        [str(KEYLESS), "sign", *files, "--identity-token", stack.token(), "--server", stack.url],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower,
        env={**clean, "TERM": "xterm", "COLUMNS": "100"},
    )
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's last writer exited
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, screen.decode(errors="replace")
    assert stdout == b""
    text = screen.decode(errors="replace")
    assert "signing" in text and "\x1b[" in text, text  # drawn by rich
    assert all(f"signed {f} -> {f}.sigstore.json" in text for f in files)
    assert all(Path(f + ".sigstore.json").exists() for f in files)


def test_sigstore_python_verifies_keyless_bundle(stack: RunningStack, work: Path,
                                                 sigstore_python: Path) -> None:
    artifact = work / "a.txt"
    out = work / "py-check.sigstore.json"
    signed = keyless("sign", str(artifact), "--bundle", str(out), "--identity-token",
                     stack.token(), "--trust-config", str(work / "tc.json"))
    assert signed.returncode == 0, signed.stderr
    result = subprocess.run(
        [str(sigstore_python), "--trust-config", str(work / "tc.json"), "verify", "identity",
         "--bundle", str(out), "--cert-identity", USER, "--cert-oidc-issuer", stack.issuer,
         str(artifact)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


def test_attest_and_verify_attestation_via_server(stack: RunningStack, work: Path) -> None:
    artifact = str(work / "b.txt")
    out = str(work / "b.att.sigstore.json")
    made = keyless("attest", artifact, "--predicate-type", "https://slsa.dev/provenance/v1",
                   "--predicate", str(work / "predicate.json"), "--bundle", out,
                   "--server", stack.url, env={"SIGSTORE_ID_TOKEN": stack.token()})
    assert made.returncode == 0, made.stderr
    ok = keyless("verify-attestation", *verify_args(stack, work, artifact, out))
    assert ok.returncode == 0, ok.stderr
    digest = "sha256:" + __import__("hashlib").sha256(Path(artifact).read_bytes()).hexdigest()
    ok = keyless("verify-attestation", *verify_args(stack, work, digest, out))
    assert ok.returncode == 0, ok.stderr
    other = keyless("verify-attestation", *verify_args(stack, work, str(work / "c.txt"), out))
    assert other.returncode == 1 and "subject" in other.stderr
    blob_bundle = str(work / "blob-not-attestation.sigstore.json")
    signed = keyless("sign", artifact, "--bundle", blob_bundle, "--identity-token",
                     stack.token(), "--trust-config", str(work / "tc.json"))
    assert signed.returncode == 0, signed.stderr
    assert keyless("verify", *verify_args(stack, work, artifact, blob_bundle)).returncode == 0
    blob = keyless("verify-attestation", *verify_args(stack, work, artifact, blob_bundle))
    assert blob.returncode == 1 and "not an attestation" in blob.stderr


def test_tuf_refresh_once_per_window_and_offline(stack: RunningStack, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from tuf.ngclient.updater import Updater

    root_json = (stack.data_dir / "tuf-root.json").read_bytes()
    calls: list[int] = []
    real_refresh = Updater.refresh

    def counting(self: Updater) -> None:
        calls.append(1)
        real_refresh(self)

    monkeypatch.setattr(Updater, "refresh", counting)
    now = [1_000_000.0]
    tuf = TufTrust(f"{stack.url}/tuf", root_json, cache_dir=tmp_path, refresh_window=60,
                   clock=lambda: now[0])
    expected = stack.client_trust_config()["trustedRoot"]
    first = tuf.client_trust_config()
    assert first.trusted_root.to_json()["tlogs"] == expected["tlogs"]  # type: ignore[index]
    assert first.signing_config is not None
    tuf.client_trust_config()
    assert len(calls) == 1, "a second call inside the window must not refresh"
    now[0] += 61
    tuf.client_trust_config()
    assert len(calls) == 2
    offline = TufTrust(f"{stack.url}/tuf", root_json, cache_dir=tmp_path, offline=True,
                       clock=lambda: now[0] + 10_000)
    assert offline.client_trust_config().trusted_root == first.trusted_root
    assert len(calls) == 2, "offline mode never refreshes"


def test_ambient_github_actions_credentials(stack: RunningStack, work: Path,
                                            tmp_path: Path) -> None:
    """Without --identity-token, sign asks the CI for a token (``id``), as sigstore-python does:
    here a stand-in for the GitHub Actions token service hands out a token of the stack."""
    artifact = tmp_path / "ci.txt"
    artifact.write_text("built in CI\n")
    with github_token_service(stack.token()) as (env, asked):
        signed = keyless("sign", str(artifact), "--server", stack.url, env=env)
    assert signed.returncode == 0, signed.stderr
    assert asked == [("sigstore", "bearer runner-secret")]
    ok = keyless("verify", *verify_args(stack, work, str(artifact), f"{artifact}.sigstore.json"))
    assert ok.returncode == 0, ok.stderr
    # outside CI and off a terminal there is no way to get a token: one sentence says so
    again = keyless("sign", str(artifact), "--server", stack.url, "--overwrite")
    assert again.returncode == 1
    assert again.stderr.strip().startswith("signing failed: no identity token")


def test_rekor_version_follows_the_signing_config(stack: RunningStack, work: Path,
                                                  tmp_path: Path) -> None:
    """Newest log by default (v2); v1 when the signing config offers only v1 (protocols.md §7)."""
    config = json.loads((work / "tc.json").read_text())
    rekors = config["signingConfig"]["rekorTlogUrls"]
    assert {r["majorApiVersion"] for r in rekors} == {1, 2}
    v1_only = tmp_path / "tc-v1.json"
    config["signingConfig"]["rekorTlogUrls"] = [r for r in rekors if r["majorApiVersion"] == 1]
    v1_only.write_text(json.dumps(config))
    for trust, version in ((work / "tc.json", "0.0.2"), (v1_only, "0.0.1")):
        artifact = tmp_path / f"{version}.txt"
        artifact.write_text(version)
        signed = keyless("sign", str(artifact), "--identity-token", stack.token(),
                         "--trust-config", str(trust))
        assert signed.returncode == 0, signed.stderr
        bundle = Bundle.from_json(Path(f"{artifact}.sigstore.json").read_bytes())
        assert bundle.verification_material.tlog_entries[0].version == version
        out = f"{artifact}.sigstore.json"
        ok = keyless("verify", *verify_args(stack, work, str(artifact), out))
        assert ok.returncode == 0, ok.stderr


# --- interactive sign-in from the CLI (contracts.md §4: browser, else device flow) -----------

OIDC_TESTS = Path(__file__).resolve().parents[1] / "oidc"

FAKE_BROWSER = """#!{python}
# Stands in for the user's browser (webbrowser runs $BROWSER URL): signs in on the page of the
# embedded provider and follows the redirect to the CLI's loopback listener.
import sys
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, {oidc_tests!r})
from oidc_flows import form_action, hidden_fields

url = sys.argv[1]
parts = urlsplit(url)
base = f"{{parts.scheme}}://{{parts.netloc}}"
with httpx.Client(follow_redirects=True, timeout=30) as browser:
    page = browser.get(url)
    data = {{**hidden_fields(page.text), "username": {user!r}, "password": {password!r}}}
    done = browser.post(form_action(base, page.text), data=data, headers={{"Origin": base}})
sys.exit(0 if done.status_code == 200 and "signed in" in done.text else 1)
"""


def sign_on_terminal(args: list[str], env: dict[str, str],
                     on_screen: Callable[[str], None] | None = None) -> tuple[int, str]:
    """Run keyless with stdin and stderr on a pseudo-terminal (an interactive user)."""
    import pty
    import select

    leader, follower = pty.openpty()
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(AMBIENT) and k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    proc = subprocess.Popen([str(KEYLESS), *args], stdin=follower, stdout=subprocess.PIPE,
                            stderr=follower, env={**clean, **env})
    os.close(follower)
    screen = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk.decode(errors="replace")
            if on_screen is not None:
                on_screen(screen)
        elif proc.poll() is not None:
            break
    os.close(leader)
    proc.communicate(timeout=30)
    return proc.returncode, screen


def test_sign_in_with_the_browser_flow(stack: RunningStack, work: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    browser = bin_dir / "fake-browser"
    browser.write_text(FAKE_BROWSER.format(python=sys.executable, oidc_tests=str(OIDC_TESTS),
                                           user=USER, password=PASSWORD))
    browser.chmod(0o755)
    artifact = tmp_path / "browser.txt"
    artifact.write_text("signed after a browser sign-in\n")
    rc, screen = sign_on_terminal(["sign", str(artifact), "--server", stack.url],
                                  {"BROWSER": str(browser), "PATH": str(bin_dir)})
    assert rc == 0, screen
    assert "Waiting for you to sign in in the browser" in screen
    ok = keyless("verify", *verify_args(stack, work, str(artifact), f"{artifact}.sigstore.json"))
    assert ok.returncode == 0, ok.stderr


def test_without_a_browser_the_device_flow(stack: RunningStack, work: Path,
                                           tmp_path: Path) -> None:
    import re

    sys.path.insert(0, str(OIDC_TESTS))
    from oidc_flows import form_action, hidden_fields

    approved: list[str] = []

    def approve(screen: str) -> None:
        match = re.search(r"open (\S+)\s+and check that it shows the code (\S+)\.", screen)
        if not match or approved:
            return
        url, user_code = match.groups()
        approved.append(user_code)
        with httpx.Client(timeout=30) as browser:
            page = browser.get(url)
            data = {**hidden_fields(page.text), "user_code": user_code, "username": USER,
                    "password": PASSWORD}
            browser.post(form_action(stack.url, page.text), data=data)

    empty = tmp_path / "no-browsers"
    empty.mkdir()
    artifact = tmp_path / "device.txt"
    artifact.write_text("signed after a device sign-in\n")
    rc, screen = sign_on_terminal(["sign", str(artifact), "--server", stack.url],
                                  {"PATH": str(empty)}, on_screen=approve)
    assert approved, screen
    assert rc == 0, screen
    ok = keyless("verify", *verify_args(stack, work, str(artifact), f"{artifact}.sigstore.json"))
    assert ok.returncode == 0, ok.stderr


# --- conventions of the ecosystem (issue #17 part 4) -----------------------------------------


def keyless_stdin(data: bytes, *args: str,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """``keyless`` with ``data`` on standard input (stdout and stderr kept apart, as bytes)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(AMBIENT)}
    return subprocess.run([str(KEYLESS), *args], input=data, capture_output=True, timeout=120,
                          check=False, env={**clean, **(env or {})})


def cosign_identity(stack: RunningStack) -> list[str]:
    return ["--certificate-identity", USER, "--certificate-oidc-issuer", stack.issuer]


def test_stdin_sign_and_verify_with_json_output(stack: RunningStack, work: Path,
                                                tmp_path: Path) -> None:
    """``-`` signs and verifies standard input; ``--output json`` puts what was verified on
    stdout (and only there), the human line stays on stderr."""
    import hashlib

    data = b"piped artifact\n" * 1000
    bundle = tmp_path / "piped.sigstore.json"
    trust = ["--trust-config", str(work / "tc.json")]
    signed = keyless_stdin(data, "sign", "-", "--bundle", str(bundle), *trust,
                           "--identity-token", stack.token())
    assert signed.returncode == 0, signed.stderr
    assert (signed.stdout, signed.stderr) == (b"", f"signed - -> {bundle}\n".encode())
    ok = keyless_stdin(data, "verify", "-", "--bundle", str(bundle), *cosign_identity(stack),
                       *trust, "--output", "json")
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr == b"OK: -\n"
    report = json.loads(ok.stdout)
    assert report["artifact"] == "-"
    assert report["sha256"] == hashlib.sha256(data).hexdigest()
    assert (report["identity"], report["issuer"]) == (USER, stack.issuer)
    assert report["signed_at"] == report["verified_times"][0]
    [entry] = report["log_entries"]
    on_disk = Bundle.from_json(bundle.read_bytes()).verification_material.tlog_entries[0]
    assert (entry["log_index"], entry["log_id"]) == (on_disk.log_index, on_disk.log_id.hex())
    assert entry["inclusion_proof"] is True
    assert report["statement"] is None and report["predicate_type"] is None
    # the same bundle over other bytes: exit 1, one sentence, nothing on stdout
    bad = keyless_stdin(data + b"!", "verify", "-", "--bundle", str(bundle),
                        *cosign_identity(stack), *trust, "--output", "json")
    assert bad.returncode == 1 and bad.stdout == b""
    assert bad.stderr.startswith(b"verification failed: ")
    # the file on disk gives the same report
    (tmp_path / "piped.txt").write_bytes(data)
    same = keyless("verify", str(tmp_path / "piped.txt"), "--bundle", str(bundle),
                   *cosign_identity(stack), *trust, "--output", "json")
    assert same.returncode == 0, same.stderr
    assert {**json.loads(same.stdout), "artifact": "-"} == report


def test_stdin_needs_a_bundle_path(stack: RunningStack, work: Path, tmp_path: Path) -> None:
    """There is no FILE to name the bundle after: ``--bundle`` is required (exit 2)."""
    signed = keyless_stdin(b"x", "sign", "-", "--identity-token", stack.token(),
                           "--trust-config", str(work / "tc.json"))
    assert signed.returncode == 2
    assert b"--bundle OUT is required when signing standard input" in signed.stderr
    verified = keyless_stdin(b"x", "verify", "-", *cosign_identity(stack), "--offline")
    assert verified.returncode == 2
    assert b"--bundle is required when FILE is - (standard input)" in verified.stderr
    assert list(tmp_path.iterdir()) == []


def test_verify_attestation_json_has_the_statement(stack: RunningStack, work: Path,
                                                   tmp_path: Path) -> None:
    artifact = tmp_path / "built.txt"
    artifact.write_text("built\n")
    out = tmp_path / "built.att.json"
    made = keyless("attest", str(artifact), "--predicate-type", "https://slsa.dev/provenance/v1",
                   "--predicate", str(work / "predicate.json"), "--bundle", str(out),
                   "--identity-token", stack.token(), "--trust-config", str(work / "tc.json"))
    assert made.returncode == 0, made.stderr
    ok = keyless_stdin(artifact.read_bytes(), "verify-attestation", "-", "--bundle", str(out),
                       *cosign_identity(stack), "--trust-config", str(work / "tc.json"),
                       "--output", "json")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["predicate_type"] == "https://slsa.dev/provenance/v1"
    statement = report["statement"]
    assert statement["predicate"] == json.loads((work / "predicate.json").read_text())
    assert statement["subject"][0]["name"] == "built.txt"
    assert statement["subject"][0]["digest"]["sha256"] == report["sha256"]
    assert (report["identity"], report["issuer"]) == (USER, stack.issuer)


def test_cosign_spellings_and_issuer_regexp(stack: RunningStack, work: Path) -> None:
    """``--certificate-*`` as cosign; regexps must match the whole value, and a pattern that
    matches only part of it is refused with a sentence that says so."""
    import re

    artifact = str(work / "a.txt")
    bundle = str(work / "cosign.sigstore.json")
    signed = keyless("sign", artifact, "--bundle", bundle, "--identity-token", stack.token(),
                     "--trust-config", str(work / "tc.json"))
    assert signed.returncode == 0, signed.stderr
    base = ["verify", artifact, "--bundle", bundle, "--trust-config", str(work / "tc.json")]
    issuer_re = re.escape(stack.issuer.rsplit("/", 1)[0]) + "/.*"
    for who in (
        cosign_identity(stack),
        ["--certificate-identity-regexp", ".*@example\\.com",
         "--certificate-oidc-issuer-regexp", issuer_re],
        ["--cert-identity", USER, "--cert-oidc-issuer-regexp", issuer_re],
    ):
        ok = keyless(*base, *who)
        assert (ok.returncode, ok.stderr) == (0, f"OK: {artifact}\n"), who
    partial = keyless(*base, "--certificate-identity-regexp", "example\\.com",
                      "--certificate-oidc-issuer", stack.issuer)
    assert partial.returncode == 1
    assert f"matches only part of '{USER}'" in partial.stderr
    assert "regexps must match the whole identity" in partial.stderr
    partial_issuer = keyless(*base, "--certificate-identity", USER,
                             "--certificate-oidc-issuer-regexp",
                             re.escape(stack.issuer.split("//", 1)[1]))
    assert partial_issuer.returncode == 1
    assert "regexps must match the whole issuer" in partial_issuer.stderr
    other = keyless(*base, "--certificate-identity", USER,
                    "--certificate-oidc-issuer-regexp", "https://accounts\\.example\\.com")
    assert other.returncode == 1
    assert f"OIDC issuer '{stack.issuer}' does not match" in other.stderr
    both = keyless(*base, "--certificate-identity", USER, "--certificate-oidc-issuer",
                   stack.issuer, "--certificate-oidc-issuer-regexp", ".*")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_environment_configures_trust_and_flags_win(stack: RunningStack, work: Path,
                                                    tmp_path: Path) -> None:
    """KEYLESS_SERVER / KEYLESS_TRUST_CONFIG set once (a CI job); a flag on the command line
    overrides both; both variables at once is a usage error, not a silent pick."""
    artifact = str(work / "c.txt")
    bundle = str(tmp_path / "env.sigstore.json")
    signed = keyless("sign", artifact, "--bundle", bundle,
                     env={"KEYLESS_SERVER": stack.url, "SIGSTORE_ID_TOKEN": stack.token()})
    assert signed.returncode == 0, signed.stderr
    verify = ["verify", artifact, "--bundle", bundle, *cosign_identity(stack)]
    for env in ({"KEYLESS_SERVER": stack.url},
                {"KEYLESS_TRUST_CONFIG": str(work / "tc.json")}):
        ok = keyless(*verify, env=env)
        assert (ok.returncode, ok.stderr) == (0, f"OK: {artifact}\n"), env
    dead = {"KEYLESS_SERVER": "http://127.0.0.1:9/nowhere"}
    flag = keyless(*verify, "--trust-config", str(work / "tc.json"), env=dead)
    assert (flag.returncode, flag.stderr) == (0, f"OK: {artifact}\n")
    both = keyless(*verify, env={**dead, "KEYLESS_TRUST_CONFIG": str(work / "tc.json")})
    assert both.returncode == 2
    assert "KEYLESS_TRUST_CONFIG and KEYLESS_SERVER are both set" in both.stderr
    offline = keyless(*verify, env={"KEYLESS_SERVER": stack.url, "KEYLESS_OFFLINE": "1"})
    assert offline.returncode == 2 and "KEYLESS_SERVER is set but --offline" in offline.stderr
    typo = keyless(*verify, "--trust-config", str(work / "tc.json"),
                   env={"KEYLESS_OFFLINE": "maybe"})
    assert typo.returncode == 2 and "KEYLESS_OFFLINE='maybe'" in typo.stderr


def test_bundle_of_another_instance_says_so(stack: RunningStack, work: Path,
                                            tmp_path: Path) -> None:
    """Verified against the public-good root, a bundle of this stack fails with the reason
    (its certificate chains to no trusted CA), not with a count of verified times."""
    artifact = str(work / "a.txt")
    bundle = str(tmp_path / "ours.sigstore.json")
    signed = keyless("sign", artifact, "--bundle", bundle, "--identity-token", stack.token(),
                     "--trust-config", str(work / "tc.json"))
    assert signed.returncode == 0, signed.stderr
    failed = keyless("verify", artifact, "--bundle", bundle, *cosign_identity(stack), "--offline")
    assert failed.returncode == 1
    assert failed.stderr.startswith(
        "verification failed: this bundle's certificate chains to no CA in the trusted root in "
        "use: it was issued by "
    ), failed.stderr
    assert "verified time" not in failed.stderr


def test_get_identity_token_from_ci_and_browser(stack: RunningStack, work: Path,
                                                tmp_path: Path) -> None:
    """``keyless get-identity-token`` prints a token on stdout (CI credentials, else a browser
    sign-in with the signing config's issuer), and ``keyless sign`` accepts it."""
    from keyless.oidc import IdentityToken

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    browser = bin_dir / "fake-browser"
    browser.write_text(FAKE_BROWSER.format(python=sys.executable, oidc_tests=str(OIDC_TESTS),
                                           user=USER, password=PASSWORD))
    browser.chmod(0o755)
    got = keyless("get-identity-token", "--flow", "browser", "--server", stack.url,
                  env={"BROWSER": str(browser), "PATH": str(bin_dir)})
    assert got.returncode == 0, got.stderr
    assert got.stdout.count("\n") == 1
    token = IdentityToken.parse(got.stdout)
    assert (token.issuer, token.identity) == (stack.issuer, USER)
    assert f"identity token for '{USER}' from '{stack.issuer}'" in got.stderr
    artifact = tmp_path / "t.txt"
    artifact.write_text("signed with a printed token\n")
    signed = keyless("sign", str(artifact), "--identity-token", got.stdout.strip(),
                     "--server", stack.url)
    assert signed.returncode == 0, signed.stderr
    with github_token_service(stack.token()) as (env, asked):
        ambient = keyless("get-identity-token", env=env)
    assert ambient.returncode == 0, ambient.stderr
    assert asked == [("sigstore", "bearer runner-secret")]
    assert IdentityToken.parse(ambient.stdout).identity == USER
    with github_token_service("not used") as (env, asked):
        signed_in = keyless("get-identity-token", "--oidc-disable-ambient-providers",
                            "--oidc-issuer", stack.issuer, "--flow", "browser",
                            env={**env, "BROWSER": str(browser), "PATH": str(bin_dir)})
    assert signed_in.returncode == 0, signed_in.stderr
    assert asked == [], "--oidc-disable-ambient-providers must not ask the CI"
    assert IdentityToken.parse(signed_in.stdout).issuer == stack.issuer


@contextlib.contextmanager
def github_token_service(token: str) -> Iterator[tuple[dict[str, str], list[tuple[str, str]]]]:
    """A stand-in for the GitHub Actions token service handing out ``token``; yields the
    environment a runner sets and the list of (audience, authorization) requests."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from urllib.parse import parse_qs, urlsplit

    asked: list[tuple[str, str]] = []

    class TokenService(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            asked.append((query.get("audience", [""])[0], self.headers["Authorization"]))
            body = json.dumps({"value": token}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), TokenService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"http://127.0.0.1:{server.server_port}/token",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runner-secret",
        }, asked
    finally:
        server.shutdown()
        server.server_close()
