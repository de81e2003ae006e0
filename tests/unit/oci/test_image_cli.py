"""``keyless image`` command line: usage errors are one line with exit status 2, before any
network access."""

from __future__ import annotations

import pytest

from keyless._cli.main import main


@pytest.mark.parametrize(("argv", "message"), [
    (["image", "sign", "UPPER/case:v1"], "'UPPER/case' is not a repository name"),
    (["image", "sign", "reg.example/app@sha256:12"], "the digest must be sha256:<64"),
    (["image", "verify", "reg.example/app", "--cert-identity", "a"],
     "give --cert-identity (or --cert-identity-regexp) and --cert-oidc-issuer"),
    (["image", "verify", "reg.example/app", "--cert-identity-regexp", "(",
      "--cert-oidc-issuer", "https://i"], "--cert-identity-regexp is not a valid regular"),
    (["image", "sign", "reg.example/app", "-a", "novalue"], "'novalue' is not KEY=VALUE"),
    (["image", "attest", "reg.example/app", "--predicate-type", "x"],
     "the following arguments are required: --predicate"),
    (["image", "sign", "reg.example/app", "--format", "zip"], "invalid choice: 'zip'"),
    (["image", "sign", "reg.example/app", "--format", "legacy", "--rekor-version", "2"],
     "--format legacy needs a Rekor v1 log"),
])
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_image_without_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image"]) == 2
    assert "SUBCOMMAND" in capsys.readouterr().err
