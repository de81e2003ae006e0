"""Every error path of the client CLI (issue #8): one sentence on stderr, no traceback, exit 2 for
a wrong command line and 1 for a failed operation; sign/attest never clobber an existing bundle.

The table runs ``keyless.main`` in-process (no trust option needs the network: ``--offline``,
``--trust-config`` or an unreachable ``--server``); a few cases run the installed ``keyless``
entry point as a real process (Ctrl-C, output modes).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _client_vectors import BEACON, CASES, GHA, VECTORS, vectors_present
from _netfakes import SilentServer

from conftest import ROOT
from keyless._cli.main import main
from keyless._cli.sign import write_output
from keyless.errors import ConfigError

KEYLESS = ROOT / ".venv" / "bin" / "keyless"
HAPPY = CASES / "happy-path-v0.3" / "bundle.sigstore.json"
DSSE = CASES / "happy-path-intoto-in-dsse-v3" / "bundle.sigstore.json"
ARTIFACT = CASES / "a.txt"
IDENTITY = ["--cert-identity", BEACON, "--cert-oidc-issuer", GHA]
TRUST_ENVIRONMENT = ("KEYLESS_SERVER", "KEYLESS_TRUST_CONFIG", "KEYLESS_ALLOW_INSECURE_HTTP",
                     "KEYLESS_TUF_CACHE", "KEYLESS_TUF_REFRESH_WINDOW", "KEYLESS_OFFLINE")


def closed_port() -> int:
    """A local port nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Inputs for the table: good and bad files of every kind."""
    vectors_present()
    production = VECTORS / "public-good" / "production"
    root = json.loads((production / "trusted_root.json").read_text())
    signing = json.loads((production / "signing_config.v0.2.json").read_text())
    media = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
    refused = f"http://127.0.0.1:{closed_port()}"
    dead = json.loads(json.dumps(signing).replace("https://", refused + "/"))
    paths = {
        "tc": {"mediaType": media, "trustedRoot": root, "signingConfig": signing},
        "tc-dead": {"mediaType": media, "trustedRoot": root, "signingConfig": dead},
        "tc-nosign": {"mediaType": media, "trustedRoot": root},
        "array": [],
        "predicate": {"buildType": "x"},
    }
    out = {}
    for name, doc in paths.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
        out[name] = str(tmp_path / f"{name}.json")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "a.txt").write_text("a\n")
    (tmp_path / "b.txt").write_text("b\n")
    (tmp_path / "taken.txt").write_text("taken\n")
    (tmp_path / "taken.txt.sigstore.json").write_text("precious")
    out.update({n: str(tmp_path / n) for n in (
        "bad.json", "binary.json", "dir", "dangling", "a.txt", "b.txt", "taken.txt",
        "taken.txt.sigstore.json")})
    out["missing"] = str(tmp_path / "missing.json")
    out["refused"] = refused
    out["jwt"] = fake_jwt()
    return out


def fake_jwt() -> str:
    """A well-formed, unsigned identity token: passes the client's local checks only."""
    import base64

    def part(doc: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iss": "https://issuer.test", "sub": "alice", "aud": "sigstore", "iat": now,
              "exp": now + 600, "email": "alice@example.com"}
    return f"{part({'alg': 'ES256'})}.{part(claims)}.c2ln"


def V(*extra: str) -> list[str]:
    return ["verify", str(ARTIFACT), "--bundle", str(HAPPY), *IDENTITY, *extra]


# (id, argv builder, exit status, a phrase of the one-line message)
TABLE: list[tuple[str, Callable[[dict[str, str]], list[str]], int, str]] = [
    ("no-command-arg", lambda f: ["bogus"], 2, "invalid choice"),
    ("verify-no-file", lambda f: ["verify"], 2, "required: FILE"),
    ("verify-unknown-option", lambda f: [*V("--offline"), "--frobnicate"], 2, "unrecognized"),
    ("verify-no-identity", lambda f: ["verify", str(ARTIFACT), "--bundle", str(HAPPY),
                                      "--offline"], 2, "--cert-identity"),
    ("verify-no-issuer", lambda f: ["verify", str(ARTIFACT), "--bundle", str(HAPPY),
                                    "--cert-identity", BEACON, "--offline"], 2,
     "--cert-oidc-issuer"),
    ("verify-both-identities", lambda f: [*V("--offline"), "--cert-identity-regexp", "x"], 2,
     "not allowed with"),
    ("verify-bad-regexp", lambda f: ["verify", str(ARTIFACT), "--bundle", str(HAPPY),
                                     "--cert-identity-regexp", "(", "--cert-oidc-issuer", GHA,
                                     "--offline"], 2, "not a valid regular expression"),
    ("verify-digest-no-bundle", lambda f: ["verify", "sha256:" + "0" * 64, *IDENTITY,
                                           "--offline"], 2, "--bundle is required"),
    ("verify-key-and-identity", lambda f: [*V("--offline"), "--key", f["a.txt"]], 2,
     "cannot be combined"),
    ("verify-server-offline", lambda f: V("--server", f["refused"], "--offline"), 2,
     "needs the network"),
    ("verify-both-trust", lambda f: V("--server", f["refused"], "--trust-config", f["tc"]), 2,
     "not allowed with"),
    ("verify-bad-window", lambda f: V("--offline", "--tuf-refresh-window", "-1"), 2,
     "seconds >= 0"),
    ("verify-nan-window", lambda f: V("--offline", "--tuf-refresh-window", "nan"), 2,
     "seconds >= 0"),
    ("verify-default-bundle-missing", lambda f: ["verify", f["a.txt"], *IDENTITY, "--offline"],
     1, "a.txt.sigstore.json"),
    ("verify-bundle-missing", lambda f: ["verify", f["a.txt"], "--bundle", f["missing"],
                                         *IDENTITY, "--offline"], 1, "No such file"),
    ("verify-bundle-dir", lambda f: ["verify", f["a.txt"], "--bundle", f["dir"], *IDENTITY,
                                     "--offline"], 1, "Is a directory"),
    ("verify-bundle-dangling", lambda f: ["verify", f["a.txt"], "--bundle", f["dangling"],
                                          *IDENTITY, "--offline"], 1, "cannot read bundle"),
    ("verify-bundle-bad-json", lambda f: ["verify", f["a.txt"], "--bundle", f["bad.json"],
                                          *IDENTITY, "--offline"], 1, "not valid JSON"),
    ("verify-bundle-binary", lambda f: ["verify", f["a.txt"], "--bundle", f["binary.json"],
                                        *IDENTITY, "--offline"], 1, "malformed bundle"),
    ("verify-bundle-array", lambda f: ["verify", f["a.txt"], "--bundle", f["array"],
                                       *IDENTITY, "--offline"], 1, "JSON object"),
    ("verify-bundle-endless", lambda f: ["verify", f["a.txt"], "--bundle", "/dev/zero",
                                         *IDENTITY, "--offline"], 1, "larger than 64 MiB"),
    ("verify-trust-config-endless", lambda f: V("--trust-config", "/dev/zero"), 1,
     "larger than 16 MiB"),
    ("verify-artifact-dir", lambda f: ["verify", f["dir"], "--bundle", str(HAPPY), *IDENTITY,
                                       "--offline"], 1, "Is a directory"),
    ("verify-artifact-missing", lambda f: ["verify", f["missing"], "--bundle", str(HAPPY),
                                           *IDENTITY, "--offline"], 1, "cannot read artifact"),
    ("verify-wrong-artifact", lambda f: ["verify", f["a.txt"], "--bundle", str(HAPPY),
                                         *IDENTITY, "--offline"], 1, "verification failed"),
    ("verify-wrong-identity", lambda f: ["verify", str(ARTIFACT), "--bundle", str(HAPPY),
                                         "--cert-identity", "eve@example.com",
                                         "--cert-oidc-issuer", GHA, "--offline"], 1,
     "eve@example.com"),
    ("verify-trust-config-missing", lambda f: V("--trust-config", f["missing"]), 1,
     "cannot read trust config"),
    ("verify-trust-config-dir", lambda f: V("--trust-config", f["dir"]), 1,
     "cannot read trust config"),
    ("verify-trust-config-bad-json", lambda f: V("--trust-config", f["bad.json"]), 1,
     "invalid trust config"),
    ("verify-trust-config-wrong-type", lambda f: V("--trust-config", f["array"]), 1,
     "invalid trust config"),
    ("verify-server-refused", lambda f: V("--server", f["refused"]), 1, "Connection refused"),
    ("verify-server-not-url", lambda f: V("--server", "example.com"), 1, "not an http"),
    ("verify-key-missing", lambda f: ["verify", str(ARTIFACT), "--bundle", str(HAPPY),
                                      "--key", f["missing"], "--offline"], 1,
     "not a readable PEM public key"),
    ("verify-key-not-pem", lambda f: ["verify", str(ARTIFACT), "--bundle", str(HAPPY),
                                      "--key", f["bad.json"], "--offline"], 1,
     "not a readable PEM public key"),
    ("attestation-not-dsse", lambda f: ["verify-attestation", *V("--offline")[1:]], 1,
     "not an attestation"),
    ("attestation-wrong-predicate", lambda f: ["verify-attestation", str(ARTIFACT), "--bundle",
                                               str(DSSE), *IDENTITY, "--offline",
                                               "--predicate-type", "https://example.com/other"],
     1, "predicateType"),
    ("sign-no-file", lambda f: ["sign"], 2, "required: FILE"),
    ("sign-missing-file", lambda f: ["sign", f["missing"]], 2, "is not a file"),
    ("sign-dir", lambda f: ["sign", f["dir"]], 2, "is not a file"),
    ("sign-twice", lambda f: ["sign", f["a.txt"], f["a.txt"]], 2, "given twice"),
    ("sign-bundle-many", lambda f: ["sign", f["a.txt"], f["b.txt"], "--bundle", f["missing"]],
     2, "single FILE"),
    ("sign-bundle-is-dir", lambda f: ["sign", f["a.txt"], "--bundle", f["dir"]], 2,
     "is a directory"),
    ("sign-bundle-is-input", lambda f: ["sign", f["a.txt"], "--bundle", f["a.txt"]], 2,
     "replace an input"),
    ("sign-bundle-no-dir", lambda f: ["sign", f["a.txt"], "--bundle", f["dir"] + "/x/y.json"],
     2, "does not exist"),
    ("sign-existing-output", lambda f: ["sign", f["a.txt"], f["taken.txt"]], 2,
     "without --overwrite"),
    ("sign-bad-rekor", lambda f: ["sign", f["a.txt"], "--rekor-version", "3"], 2,
     "invalid choice"),
    ("sign-not-jwt", lambda f: ["sign", f["a.txt"], "--identity-token", "x", "--trust-config",
                                f["tc"]], 1, "not a JWT"),
    ("sign-no-signing-config", lambda f: ["sign", f["a.txt"], "--identity-token", "x",
                                          "--trust-config", f["tc-nosign"]], 1,
     "no signing config"),
    ("sign-ca-unreachable", lambda f: ["sign", f["a.txt"], "--identity-token", f["jwt"],
                                       "--trust-config", f["tc-dead"]], 1,
     "is unreachable"),
    ("sign-server-refused", lambda f: ["sign", f["a.txt"], "--server", f["refused"]], 1,
     "Connection refused"),
    ("attest-no-predicate", lambda f: ["attest", f["a.txt"], "--predicate-type", "x"], 2,
     "--predicate"),
    ("attest-predicate-missing", lambda f: ["attest", f["a.txt"], "--predicate-type", "x",
                                            "--predicate", f["missing"]], 2,
     "cannot read the predicate"),
    ("attest-predicate-bad-json", lambda f: ["attest", f["a.txt"], "--predicate-type", "x",
                                             "--predicate", f["bad.json"]], 2, "is not JSON"),
    ("attest-predicate-array", lambda f: ["attest", f["a.txt"], "--predicate-type", "x",
                                          "--predicate", f["array"]], 2, "JSON object"),
    ("attest-existing-output", lambda f: ["attest", f["taken.txt"], "--predicate-type", "x",
                                          "--predicate", f["predicate"]], 2,
     "without --overwrite"),
    ("attest-dir", lambda f: ["attest", f["dir"], "--predicate-type", "x", "--predicate",
                              f["predicate"]], 2, "is not a file"),
    # issue #17 part 4: standard input, cosign's spellings, the issuer regexp, --output
    ("verify-stdin-no-bundle", lambda f: ["verify", "-", *IDENTITY, "--offline"], 2,
     "--bundle is required when FILE is - (standard input)"),
    ("verify-bundle-stdin", lambda f: ["verify", "-", "--bundle", "-", *IDENTITY, "--offline"],
     2, "only FILE can be -"),
    ("verify-both-issuers", lambda f: [*V("--offline"), "--certificate-oidc-issuer-regexp",
                                       "x"], 2, "not allowed with"),
    ("verify-bad-issuer-regexp", lambda f: ["verify", str(ARTIFACT), "--bundle", str(HAPPY),
                                            "--certificate-identity", BEACON,
                                            "--certificate-oidc-issuer-regexp", "(",
                                            "--offline"], 2,
     "--cert-oidc-issuer-regexp is not a valid regular expression"),
    ("verify-key-and-issuer-regexp", lambda f: ["verify", str(ARTIFACT), "--bundle", str(HAPPY),
                                                "--key", f["a.txt"], "--offline",
                                                "--cert-oidc-issuer-regexp", ".*"], 2,
     "cannot be combined"),
    ("verify-partial-identity-regexp", lambda f: [
        "verify", str(ARTIFACT), "--bundle", str(HAPPY), "--certificate-identity-regexp",
        r"https://github\.com/sigstore-conformance", "--certificate-oidc-issuer", GHA,
        "--offline"], 1, "matches only part of 'https://github.com/sigstore-conformance/"),
    ("verify-partial-issuer-regexp", lambda f: [
        "verify", str(ARTIFACT), "--bundle", str(HAPPY), "--cert-identity", BEACON,
        "--certificate-oidc-issuer-regexp", r"token\.actions", "--offline"], 1,
     "regexps must match the whole issuer"),
    ("verify-issuer-regexp-mismatch", lambda f: [
        "verify", str(ARTIFACT), "--bundle", str(HAPPY), "--cert-identity", BEACON,
        "--certificate-oidc-issuer-regexp", r"https://gitlab\.com", "--offline"], 1,
     f"OIDC issuer '{GHA}' does not match"),
    ("verify-bad-output", lambda f: [*V("--offline"), "--output", "yaml"], 2, "invalid choice"),
    ("sign-stdin-no-bundle", lambda f: ["sign", "-"], 2,
     "--bundle OUT is required when signing standard input"),
    ("sign-stdin-and-file", lambda f: ["sign", "-", f["a.txt"]], 2, "can only be signed alone"),
    ("sign-bundle-stdout", lambda f: ["sign", f["a.txt"], "--bundle", "-"], 2,
     "not - (standard output)"),
    ("attest-stdin", lambda f: ["attest", "-", "--predicate-type", "x", "--predicate",
                                f["predicate"]], 2, "its name is the statement's subject"),
    ("completion-bad-shell", lambda f: ["completion", "tcsh"], 2, "invalid choice"),
]


@pytest.mark.parametrize(("argv", "status", "phrase"), [t[1:] for t in TABLE],
                         ids=[t[0] for t in TABLE])
def test_bad_invocation_says_one_sentence(
    argv: Callable[[dict[str, str]], list[str]], status: int, phrase: str,
    files: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("SIGSTORE_IDENTITY_TOKEN", "SIGSTORE_ID_TOKEN", *TRUST_ENVIRONMENT):
        monkeypatch.delenv(name, raising=False)
    rc = main(argv(files))
    out, err = capsys.readouterr()
    assert rc == status, err
    assert out == ""
    line = err.strip()
    assert "\n" not in line, f"more than one line: {err!r}"
    assert "Traceback" not in err
    assert phrase in line, line
    assert Path(files["taken.txt.sigstore.json"]).read_text() == "precious"


def test_verify_attestation_with_the_right_predicate_type(
    capsys: pytest.CaptureFixture[str],
) -> None:
    vectors_present()
    statement = json.loads(_payload(DSSE))
    rc = main(["verify-attestation", str(ARTIFACT), "--bundle", str(DSSE), *IDENTITY,
               "--offline", "--predicate-type", statement["predicateType"]])
    assert rc == 0, capsys.readouterr().err


def _payload(bundle: Path) -> str:
    import base64

    return base64.b64decode(json.loads(bundle.read_text())["dsseEnvelope"]["payload"]).decode()


def test_help_of_every_command_is_complete(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    for command in ("serve", "sign", "verify", "attest", "verify-attestation",
                    "get-identity-token", "completion"):
        assert command in top
    assert "public-good" in top and "exit status" in top
    expected = {
        "sign": ["--bundle", "--identity-token", "--overwrite", "--trust-config", "--server",
                 "--rekor-version", "SIGSTORE_IDENTITY_TOKEN", "device flow",
                 "standard input", "KEYLESS_SERVER", "KEYLESS_TRUST_CONFIG"],
        "verify": ["--bundle", "--cert-identity", "--cert-oidc-issuer", "--offline", "--key",
                   "--trust-config", "--server", "--tuf-refresh-window", "sha256:",
                   "--certificate-identity", "--certificate-identity-regexp",
                   "--certificate-oidc-issuer", "--certificate-oidc-issuer-regexp",
                   "must match the WHOLE value", "re.fullmatch", "--output",
                   "KEYLESS_SERVER", "KEYLESS_TRUST_CONFIG", "wins over", "- for standard input"],
        "get-identity-token": ["--oidc-issuer", "--flow", "--oidc-disable-ambient-providers",
                               "stdout", "--server"],
        "completion": ["bash", "zsh", "fish"],
        "attest": ["--predicate-type", "--predicate", "--bundle", "--overwrite"],
        "verify-attestation": ["--predicate-type", "--cert-identity", "--offline"],
    }
    for command, words in expected.items():
        assert main([command, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        for word in words:
            assert word in text, f"{command} --help does not mention {word}"


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


# --- outputs ---------------------------------------------------------------------------------


def test_write_output_is_atomic_no_clobber_and_umask_mode(tmp_path: Path) -> None:
    target = tmp_path / "x.sigstore.json"
    old = os.umask(0o027)
    try:
        write_output(str(target), b"first", overwrite=False)
    finally:
        os.umask(old)
    assert target.read_bytes() == b"first"
    assert target.stat().st_mode & 0o777 == 0o640
    with pytest.raises(ConfigError, match="not overwritten"):
        write_output(str(target), b"second", overwrite=False)
    assert target.read_bytes() == b"first"
    write_output(str(target), b"third", overwrite=True)
    assert target.read_bytes() == b"third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.sigstore.json"], "temp files left"


# --- real processes --------------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """A TCP server that accepts connections and never answers (a hung service)."""
    with SilentServer() as server:
        yield server


def test_ctrl_c_is_one_line_and_exit_130(silent_server: SilentServer, tmp_path: Path) -> None:
    artifact = tmp_path / "a.txt"
    artifact.write_text("a\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGSTORE_")}
    proc = subprocess.Popen([str(KEYLESS), "sign", str(artifact), "--identity-token", "x",
                             "--server", silent_server.url], stderr=subprocess.PIPE, text=True,
                            env=env)
    # started, and now blocked on the silent server
    assert silent_server.connected.wait(120), proc.communicate(timeout=5)[1]
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip() == "keyless: interrupted"
    assert not (tmp_path / "a.txt.sigstore.json").exists()


#: Runs the installed console script as the shell would, with one change: a Ctrl-C arrives while
#: the command line's first module imports (argparse) — before ``main`` handles anything.
INTERRUPTED_WHILE_IMPORTING = """\
import builtins, os, runpy, signal, sys

real_import = builtins.__import__

def interrupting(name, *args, **kwargs):
    if name == "argparse" and "argparse" not in sys.modules:
        os.kill(os.getpid(), signal.SIGINT)
    return real_import(name, *args, **kwargs)

builtins.__import__ = interrupting
sys.argv = [sys.argv[1], "--version"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_ctrl_c_while_the_command_line_imports_is_one_line_and_exit_130() -> None:
    """Issue #17: a Ctrl-C during start-up was a traceback and no exit 130."""
    proc = subprocess.run([str(KEYLESS.parent / "python"), "-c", INTERRUPTED_WHILE_IMPORTING,
                           str(KEYLESS)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert (proc.returncode, proc.stderr) == (130, "keyless: interrupted\n"), proc.stderr
    assert proc.stdout == ""


def test_ctrl_c_wrapped_by_python_is_still_an_interruption(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Python 3.11 turns a KeyboardInterrupt in ``__set_name__`` (a class body being imported)
    into a RuntimeError: it was reported as an unexpected error, exit 1."""
    import keyless._cli.verify as verify_cli

    def imports_a_class_when_ctrl_c_arrives(args: object) -> str:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance") from exc

    monkeypatch.setattr(verify_cli, "verify", imports_a_class_when_ctrl_c_arrives)
    monkeypatch.delenv("KEYLESS_DEBUG", raising=False)
    assert main(V("--offline")) == 130
    assert capsys.readouterr().err == "keyless: interrupted\n"


def test_entry_point_has_no_traceback_for_a_bad_bundle(tmp_path: Path) -> None:
    vectors_present()
    bad = tmp_path / "b.json"
    bad.write_bytes(b"\x00" * 10)
    proc = subprocess.run([str(KEYLESS), *V("--offline")[:3], str(bad), *IDENTITY, "--offline"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr


def test_an_unexpected_error_is_one_line_unless_debugging(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug must not dump a traceback on users (a fault injected: none is known to exist)."""
    import keyless._cli.verify as verify_cli

    def broken(args: object) -> str:
        raise RuntimeError("boom\non two lines")

    monkeypatch.setattr(verify_cli, "verify", broken)
    monkeypatch.delenv("KEYLESS_DEBUG", raising=False)
    assert main(V("--offline")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "unexpected error (RuntimeError: boom on two lines)" in err
    assert "KEYLESS_DEBUG=1" in err
    monkeypatch.setenv("KEYLESS_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(V("--offline"))
