"""The conventions of the ecosystem (issue #17 part 4): ``python -m keyless``, shell completion
generated from the parser, cosign's spellings and whole-value regexps, ``-`` for stdin,
``--output json``, and trust options from ``KEYLESS_*`` variables (flags win)."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _client_vectors import BEACON, CASES, GHA, root, vectors_present

from conftest import ROOT
from keyless._cli.completion import command_tree, render
from keyless._cli.environment import DEFAULT_REFRESH_WINDOW, apply_trust_environment
from keyless._cli.main import build_parser, main
from keyless.verify import Artifact, IdentityMismatchError
from keyless.verify.policy import Identity
from keyless.verify.verifier import Verifier

PYTHON = ROOT / ".venv" / "bin" / "python"
HAPPY = CASES / "happy-path-v0.3" / "bundle.sigstore.json"
DSSE = CASES / "happy-path-intoto-in-dsse-v3" / "bundle.sigstore.json"
ARTIFACT = CASES / "a.txt"
COSIGN = ["--certificate-identity", BEACON, "--certificate-oidc-issuer", GHA]
TRUST_ENVIRONMENT = ("KEYLESS_SERVER", "KEYLESS_TRUST_CONFIG", "KEYLESS_ALLOW_INSECURE_HTTP",
                     "KEYLESS_TUF_CACHE", "KEYLESS_TUF_REFRESH_WINDOW", "KEYLESS_OFFLINE")


@pytest.fixture(autouse=True)
def no_trust_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TRUST_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


def test_python_dash_m_keyless_is_the_command() -> None:
    from keyless import __version__

    done = subprocess.run([str(PYTHON), "-m", "keyless", "--version"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, f"keyless {__version__}\n"), done.stderr
    usage = subprocess.run([str(PYTHON), "-m", "keyless", "verify"], capture_output=True,
                           text=True, timeout=60, check=False)
    assert usage.returncode == 2 and "required: FILE" in usage.stderr


# --- completion ------------------------------------------------------------------------------


def bash_complete(words: list[str]) -> list[str]:
    """What ``keyless completion bash`` offers after ``words`` (the last one being typed), with
    the script loaded into a real bash and COMP_WORDS/COMP_CWORD set as readline sets them."""
    script = render("bash", build_parser())
    driver = (
        f"{script}\n"
        'COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _keyless_complete\n'
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(["bash", "-c", driver, "bash", *words], capture_output=True,
                          text=True, timeout=60, check=True)
    return [line for line in done.stdout.splitlines() if line]


def test_bash_accepts_the_script() -> None:
    script = render("bash", build_parser())
    done = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "complete -o default -F _keyless_complete keyless" in script


@pytest.mark.parametrize(("words", "offered"), [
    (["keyless", "ver"], ["verify", "verify-attestation", "verify-commit", "verify-tag"]),
    (["keyless", "get-"], ["get-identity-token"]),
    (["keyless", "verify", "--certificate-oidc"],
     ["--certificate-oidc-issuer", "--certificate-oidc-issuer-regexp"]),
    (["keyless", "verify", "a.txt", "--output", ""], ["text", "json"]),
    (["keyless", "sign", "--rekor-version", ""], ["1", "2"]),
    (["keyless", "completion", ""], ["bash", "zsh", "fish"]),
    (["keyless", "admin", "rotate", "--ov"], ["--overlap-hours"]),
    # a FILE or an option's value without choices: bash completes file names (-o default)
    (["keyless", "verify", ""], []),
    (["keyless", "verify", "--bundle", ""], []),
])
def test_bash_completes_commands_options_and_choices(words: list[str],
                                                     offered: list[str]) -> None:
    assert bash_complete(words) == offered


def test_every_command_and_option_is_in_every_script() -> None:
    """Generated from the parser: nothing to keep in step by hand."""
    parser = build_parser()
    tree = command_tree(parser)
    scripts = {shell: render(shell, parser) for shell in ("bash", "zsh", "fish")}
    assert scripts["zsh"].endswith(scripts["bash"]) and "bashcompinit" in scripts["zsh"]
    nodes = tree.walk()
    assert {n.path for n in nodes} >= {"keyless/verify", "keyless/admin/rotate",
                                       "keyless/get-identity-token", "keyless/completion"}
    for node in nodes:
        for option in node.options:
            assert re.search(rf'[\s"]{re.escape(option)}[\s"]', scripts["bash"]), option
            if option in node.value_options:  # its value is completed (choices or file names)
                assert f'"{node.path} {option}"' in scripts["bash"], (node.path, option)
            fish = f"-l {option[2:]}" if option.startswith("--") else f"-s {option[1:]}"
            assert f"__keyless_at {node.path}' {fish}" in scripts["fish"], (node.path, option)
        for name in node.children:
            assert f"__keyless_at {node.path}' -f -a {name} " in scripts["fish"]


def test_completion_command_prints_the_script(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "fish"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out == render("fish", build_parser())


# --- identity policy: cosign's spellings, whole-value regexps ----------------------------------


def verify_happy(policy: Identity) -> None:
    vectors_present()
    Verifier(root("production")).verify(HAPPY.read_bytes(), Artifact.from_path(ARTIFACT),
                                        policy=policy)


def test_issuer_regexp_must_match_the_whole_issuer() -> None:
    verify_happy(Identity(identity=BEACON, issuer_regex=r"https://token\.actions\..*"))
    with pytest.raises(IdentityMismatchError, match="regexps must match the whole issuer"):
        verify_happy(Identity(identity=BEACON, issuer_regex=r"token\.actions"))
    with pytest.raises(IdentityMismatchError, match=f"OIDC issuer '{GHA}' does not match"):
        verify_happy(Identity(identity=BEACON, issuer_regex=r"https://gitlab\.com"))


def test_identity_regexp_partial_match_is_explained() -> None:
    verify_happy(Identity(issuer=GHA, identity_regex=r"https://github\.com/sigstore-conformance/.*"))
    with pytest.raises(IdentityMismatchError) as partial:
        verify_happy(Identity(issuer=GHA, identity_regex=r"sigstore-conformance"))
    assert "matches only part of 'https://github.com/sigstore-conformance/" in str(partial.value)
    assert "regexps must match the whole identity" in str(partial.value)
    with pytest.raises(IdentityMismatchError, match="no certificate SAN in"):
        verify_happy(Identity(issuer=GHA, identity_regex=r"gitlab"))


def test_identity_needs_one_of_each() -> None:
    with pytest.raises(ValueError, match="one of issuer or issuer_regex"):
        Identity(identity=BEACON)
    with pytest.raises(ValueError, match="one of issuer or issuer_regex"):
        Identity(identity=BEACON, issuer=GHA, issuer_regex=".*")
    with pytest.raises(re.error):
        Identity(identity=BEACON, issuer_regex="(")


def test_cosign_spellings_are_aliases(capsys: pytest.CaptureFixture[str]) -> None:
    vectors_present()
    assert main(["verify", str(ARTIFACT), "--bundle", str(HAPPY), *COSIGN, "--offline"]) == 0
    assert capsys.readouterr().err == f"OK: {ARTIFACT}\n"
    assert main(["verify", str(ARTIFACT), "--bundle", str(HAPPY), "--offline",
                 "--certificate-identity-regexp", "https://github\\.com/.*",
                 "--certificate-oidc-issuer-regexp", "https://token\\.actions\\..*"]) == 0


# --- standard input and --output json --------------------------------------------------------


def stdin_of(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_verify_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    vectors_present()
    assert main(["verify", str(ARTIFACT), "--bundle", str(HAPPY), *COSIGN, "--offline",
                 "--output", "json"]) == 0
    out, err = capsys.readouterr()
    assert err == f"OK: {ARTIFACT}\n"
    report = json.loads(out)
    assert out.count("\n") == 1
    assert report["sha256"] == hashlib.sha256(ARTIFACT.read_bytes()).hexdigest()
    assert (report["identity"], report["issuer"]) == (BEACON, GHA)
    assert report["identities"] == [BEACON]
    assert report["signed_at"] == min(report["verified_times"])
    bundle = json.loads(HAPPY.read_text())
    [entry] = bundle["verificationMaterial"]["tlogEntries"]
    [reported] = report["log_entries"]
    assert reported["log_index"] == int(entry["logIndex"])
    assert reported["kind"] == entry["kindVersion"]["kind"]
    assert report["statement"] is None


def test_verify_attestation_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    vectors_present()
    assert main(["verify-attestation", str(ARTIFACT), "--bundle", str(DSSE), *COSIGN,
                 "--offline", "--output", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["statement"]["_type"] == "https://in-toto.io/Statement/v1"
    assert report["predicate_type"] == report["statement"]["predicateType"]


def test_verify_reads_standard_input(capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    vectors_present()
    stdin_of(monkeypatch, ARTIFACT.read_bytes())
    assert main(["verify", "-", "--bundle", str(HAPPY), *COSIGN, "--offline"]) == 0
    assert capsys.readouterr() == ("", "OK: -\n")
    stdin_of(monkeypatch, ARTIFACT.read_bytes() + b"tampered")
    assert main(["verify", "-", "--bundle", str(HAPPY), *COSIGN, "--offline",
                 "--output", "json"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("verification failed: ")


# --- trust options from the environment -------------------------------------------------------


def namespace(**given: object) -> argparse.Namespace:
    values: dict[str, object] = {"trust_config": None, "server": None,
                                 "allow_insecure_http": False, "tuf_cache": None,
                                 "tuf_refresh_window": None, "offline": False}
    values.update(given)
    return argparse.Namespace(**values)


def test_environment_fills_what_the_command_line_leaves_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = namespace()
    apply_trust_environment(args)
    assert (args.trust_config, args.server, args.trust_source) == (None, None, None)
    assert args.tuf_refresh_window == DEFAULT_REFRESH_WINDOW and args.offline is False
    monkeypatch.setenv("KEYLESS_SERVER", "https://keyless.example.com")
    monkeypatch.setenv("KEYLESS_ALLOW_INSECURE_HTTP", "yes")
    monkeypatch.setenv("KEYLESS_TUF_CACHE", "/tmp/tuf")
    monkeypatch.setenv("KEYLESS_TUF_REFRESH_WINDOW", "60")
    monkeypatch.setenv("KEYLESS_OFFLINE", "0")
    args = namespace()
    apply_trust_environment(args)
    assert (args.server, args.trust_source) == ("https://keyless.example.com", "KEYLESS_SERVER")
    assert args.allow_insecure_http is True and args.tuf_cache == "/tmp/tuf"
    assert args.tuf_refresh_window == 60.0 and args.offline is False


def test_a_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYLESS_SERVER", "https://env.example.com")
    monkeypatch.setenv("KEYLESS_TRUST_CONFIG", "/env/tc.json")
    monkeypatch.setenv("KEYLESS_TUF_REFRESH_WINDOW", "60")
    args = namespace(trust_config="flag.json", tuf_refresh_window=5.0)
    apply_trust_environment(args)
    assert (args.trust_config, args.server, args.trust_source) == (
        "flag.json", None, "--trust-config")
    assert args.tuf_refresh_window == 5.0
    args = namespace(server="https://flag.example.com")
    apply_trust_environment(args)
    assert (args.trust_config, args.server) == (None, "https://flag.example.com")


def test_environment_mistakes_are_usage_errors(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    verify = ["verify", str(ARTIFACT), "--bundle", str(HAPPY), *COSIGN]
    monkeypatch.setenv("KEYLESS_SERVER", "https://env.example.com")
    monkeypatch.setenv("KEYLESS_TRUST_CONFIG", "/env/tc.json")
    assert main(verify) == 2
    assert "KEYLESS_TRUST_CONFIG and KEYLESS_SERVER are both set" in capsys.readouterr().err
    monkeypatch.delenv("KEYLESS_TRUST_CONFIG")
    assert main([*verify, "--offline"]) == 2
    assert "KEYLESS_SERVER is set but --offline" in capsys.readouterr().err
    monkeypatch.delenv("KEYLESS_SERVER")
    monkeypatch.setenv("KEYLESS_TUF_REFRESH_WINDOW", "soon")
    assert main([*verify, "--offline"]) == 2
    assert "KEYLESS_TUF_REFRESH_WINDOW='soon' is not seconds >= 0" in capsys.readouterr().err
    monkeypatch.delenv("KEYLESS_TUF_REFRESH_WINDOW")
    monkeypatch.setenv("KEYLESS_OFFLINE", "1")
    vectors_present()
    assert main(verify) == 0, "KEYLESS_OFFLINE=1 is --offline (the shipped root, no network)"


def test_readme_documents_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in TRUST_ENVIRONMENT:
        assert name in readme, name
    assert "keyless completion" in readme and "get-identity-token" in readme
    assert Path(ROOT / "src" / "keyless" / "__main__.py").is_file()


# --- a bundle of another instance --------------------------------------------------------------


@pytest.mark.parametrize("other", ["intoto-with-custom-trust-root", "rekor2-dsse-happy-path"])
def test_bundle_of_another_instance_says_so(other: str) -> None:
    """A public-good bundle against another instance's trusted root: the reason (no trusted CA
    issued its certificate), not "0 verified time(s)"."""
    from keyless.verify import CertificateChainError

    vectors_present()
    with pytest.raises(CertificateChainError) as failed:
        Verifier(root(other)).verify(HAPPY.read_bytes(), Artifact.from_path(ARTIFACT),
                                     policy=Identity(issuer=GHA, identity=BEACON))
    assert str(failed.value).startswith(
        "this bundle's certificate chains to no CA in the trusted root in use: it was issued by "
        "'CN=sigstore-intermediate,O=sigstore.dev'"
    )


def test_a_command_without_the_issuer_regexp_still_builds_its_policy() -> None:
    """Commands with their own identity options (e.g. a group added later) keep working with
    the shared policy builder: the issuer regexp is optional there."""
    from keyless._cli.verify import policy_for

    args = argparse.Namespace(cert_identity=BEACON, cert_identity_regexp=None,
                              cert_oidc_issuer=GHA, repository=None, ref=None, sha=None,
                              trigger=None)
    vectors_present()
    Verifier(root("production")).verify(HAPPY.read_bytes(), Artifact.from_path(ARTIFACT),
                                        policy=policy_for(args))
