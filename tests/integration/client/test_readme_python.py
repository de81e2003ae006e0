"""The README's "Using keyless from Python" code blocks run as written.

Each block starts with its settings (``NAME = value`` lines in capitals); the test replaces only
those values - paths to a real public-good bundle and its trusted root, or to a throwaway
``keyless serve`` stack's trust config and a token - and executes the rest of the block
unchanged, so the README cannot drift from the library API.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stack"))
from stackutil import ROOT, USER, RunningStack, start_stack

pytestmark = pytest.mark.integration

SECTION = "## Using keyless from Python"
BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
GHA = "https://token.actions.githubusercontent.com"


def readme_blocks() -> list[str]:
    """The ```python blocks of the README section."""
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return re.findall(r"```python\n(.*?)```", text[start:end], re.S)


def with_settings(block: str, settings: dict[str, str]) -> str:
    """The block with each ``NAME = ...`` settings line replaced; every NAME must be there."""
    for name, value in settings.items():
        line = f"{name} = {value!r}"
        block, count = re.subn(rf"^{name} = .*$", lambda _, s=line: s, block, count=1, flags=re.M)
        assert count == 1, f"the README block has no {name} = ... line"
    return block


def run_block(block: str) -> None:
    exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})


def test_readme_has_the_two_blocks() -> None:
    blocks = readme_blocks()
    assert len(blocks) == 2
    assert "Verifier.from_trust_config(TRUST_CONFIG)" in blocks[0]
    assert "Signer.from_trust_config(TRUST_CONFIG" in blocks[1]


def _public_good_trust_config(vectors: Path, tmp_path: Path) -> Path:
    production = vectors / "public-good" / "production"
    config = tmp_path / "trust-config.json"
    config.write_text(
        json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
                "trustedRoot": json.loads((production / "trusted_root.json").read_text()),
                "signingConfig": json.loads(
                    (production / "signing_config.v0.2.json").read_text()
                ),
            }
        )
    )
    return config


def test_readme_verify_block_on_a_public_good_bundle(
    vectors: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = vectors / "conformance" / "bundle-verify"
    settings = {
        "TRUST_CONFIG": str(_public_good_trust_config(vectors, tmp_path)),
        "ARTIFACT": str(cases / "a.txt"),
        "BUNDLE": str(cases / "happy-path-v0.3" / "bundle.sigstore.json"),
        "IDENTITY": BEACON,
        "ISSUER": GHA,
    }
    run_block(with_settings(readme_blocks()[0], settings))
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"signed by {BEACON} ({GHA}) on ")
    assert re.fullmatch(r"logged at index \d+", out[1])


def test_readme_verify_block_refuses_another_identity(vectors: Path, tmp_path: Path) -> None:
    """The block's ``except VerificationError`` path: a wrong identity exits with a sentence."""
    cases = vectors / "conformance" / "bundle-verify"
    settings = {
        "TRUST_CONFIG": str(_public_good_trust_config(vectors, tmp_path)),
        "ARTIFACT": str(cases / "a.txt"),
        "BUNDLE": str(cases / "happy-path-v0.3" / "bundle.sigstore.json"),
        "IDENTITY": "mallory@example.com",
        "ISSUER": GHA,
    }
    with pytest.raises(SystemExit, match="is not verified: certificate's SANs"):
        run_block(with_settings(readme_blocks()[0], settings))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("readme-stack") / "data")
    try:
        yield running
    finally:
        running.stop()


def test_readme_sign_block_on_a_throwaway_stack(
    stack: RunningStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trust_config = tmp_path / "client-trust-config.json"
    trust_config.write_text(json.dumps(stack.client_trust_config()))
    artifact = tmp_path / "a.txt"
    artifact.write_bytes(b"hello from the README\n")
    settings = {
        "TRUST_CONFIG": str(trust_config),
        "IDENTITY_TOKEN": stack.token(),
        "ARTIFACT": str(artifact),
        "IDENTITY": USER,
        "ISSUER": stack.issuer,
    }
    run_block(with_settings(readme_blocks()[1], settings))
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(rf"signed as {re.escape(USER)} at log index \d+", out[0])
    assert out[1] == f"attestation verified: {{'reviewer': '{USER}'}}"
    assert (tmp_path / "a.txt.sigstore.json").is_file()
    assert (tmp_path / "a.txt.intoto.sigstore.json").is_file()
