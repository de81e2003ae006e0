"""``keyless image`` end to end: a real registry (Debian's docker-registry 2.8.2, no referrers
API), images built from scratch and pushed with skopeo, a throwaway keyless stack for signing.

What is checked from outside keyless (plain HTTP to the registry): the referrers index holds a
v0.3 bundle whose DSSE subject is the image digest, and sigstore-python verifies that bundle as
a plain DSSE bundle over the manifest bytes; the legacy ``.sig`` layout and annotations.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from registryutil import (  # noqa: F401  (fixtures)
    OCI_INDEX,
    OCI_MANIFEST,
    Layout,
    Registry,
    docker_config_fixture,
    layout_fixture,
    push,
    registry_fixture,
    tls_registry_fixture,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stack"))
from stackutil import ROOT, USER, RunningStack, start_stack

pytestmark = pytest.mark.integration
KEYLESS = ROOT / ".venv" / "bin" / "keyless"
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SIGN_TYPE = "https://sigstore.dev/cosign/sign/v1"
SLSA = "https://slsa.dev/provenance/v1"
AMBIENT = ("SIGSTORE_", "GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_", "GITLAB_CI", "BUILDKITE",
           "CIRCLECI", "GOOGLE_SERVICE_ACCOUNT_NAME")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("image-stack") / "data")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def work(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("image-work")
    (d / "tc.json").write_text(json.dumps(stack.client_trust_config()))
    (d / "predicate.json").write_text(json.dumps({
        "buildDefinition": {"buildType": "https://example.com/t", "externalParameters": {}},
        "runDetails": {"builder": {"id": "https://example.com/builder"}},
    }))
    (d / "docker").mkdir()
    return d


def keyless(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(AMBIENT)}
    return subprocess.run([str(KEYLESS), *args], capture_output=True, text=True, timeout=180,
                          check=False, env={**clean, **(env or {})})


def sign(stack: RunningStack, work: Path, *args: str,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return keyless("image", "sign", *args, "--identity-token", stack.token(),
                   "--trust-config", str(work / "tc.json"),
                   env={"DOCKER_CONFIG": str(work / "docker"), **(env or {})})


def verify(stack: RunningStack, work: Path, ref: str, *args: str, command: str = "verify",
           identity: str = USER, env: dict[str, str] | None = None,
           ) -> subprocess.CompletedProcess[str]:
    return keyless("image", command, ref, "--cert-identity", identity, "--cert-oidc-issuer",
                   stack.issuer, "--trust-config", str(work / "tc.json"), *args,
                   env={"DOCKER_CONFIG": str(work / "docker"), **(env or {})})


def image(layout: Layout, registry: Registry, repo: str, tag: str, content: str) -> str:
    d = layout.image(content)
    layout.tag(d, tag)
    return push(layout, tag, registry, repo)


def referrer_bundles(registry: Registry, repo: str, digest: str) -> list[tuple[dict, bytes]]:
    """From outside keyless: (referrer manifest, bundle bytes) via the referrers tag schema."""
    found = []
    with registry.client() as http:
        index = http.get(f"/v2/{repo}/manifests/{digest.replace(':', '-')}",
                         headers={"Accept": OCI_INDEX})
        assert index.status_code == 200, index.text
        for entry in index.json()["manifests"]:
            got = http.get(f"/v2/{repo}/manifests/{entry['digest']}",
                           headers={"Accept": OCI_MANIFEST})
            assert "sha256:" + hashlib.sha256(got.content).hexdigest() == entry["digest"]
            manifest = got.json()
            blob = http.get(f"/v2/{repo}/blobs/{manifest['layers'][0]['digest']}")
            found.append((manifest, blob.content))
    return found


def test_sign_and_verify_bundle_format(stack: RunningStack, work: Path, registry: Registry,
                                       layout: Layout, tmp_path: Path,
                                       sigstore_python: Path) -> None:
    digest = image(layout, registry, "team/app", "v1", "signed")
    ref = f"{registry.host}/team/app"
    signed = sign(stack, work, f"{ref}:v1")
    assert signed.returncode == 0, signed.stderr
    assert signed.stdout == f"{ref}@{digest}\n"  # the digest that was signed
    assert f"{ref}:v1 is a tag: it was resolved to {digest}" in signed.stderr

    (manifest, bundle_bytes), = referrer_bundles(registry, "team/app", digest)
    assert manifest["artifactType"] == BUNDLE_TYPE
    assert manifest["subject"]["digest"] == digest
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == [BUNDLE_TYPE]
    assert manifest["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope"
    assert manifest["annotations"]["dev.sigstore.bundle.predicateType"] == SIGN_TYPE
    bundle = json.loads(bundle_bytes)
    assert bundle["mediaType"] == BUNDLE_TYPE
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert statement["predicateType"] == SIGN_TYPE
    assert statement["subject"] == [{"name": ref, "digest": {"sha256": digest[7:]}}]

    # sigstore-python: a plain DSSE bundle over the manifest bytes
    with registry.client() as http:
        manifest_bytes = http.get(f"/v2/team/app/manifests/{digest}",
                                  headers={"Accept": OCI_MANIFEST}).content
    (tmp_path / "manifest.json").write_bytes(manifest_bytes)
    (tmp_path / "bundle.json").write_bytes(bundle_bytes)
    python_check = subprocess.run(
        [str(sigstore_python), "--trust-config", str(work / "tc.json"), "verify", "identity",
         "--bundle", str(tmp_path / "bundle.json"), "--cert-identity", USER,
         "--cert-oidc-issuer", stack.issuer, str(tmp_path / "manifest.json")],
        capture_output=True, text=True, timeout=120, check=False)
    assert python_check.returncode == 0, python_check.stderr

    ok = verify(stack, work, f"{ref}:v1", "--output", "json")
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr == f"OK: {ref}@{digest} (1 valid signature, bundle format)\n"
    (result,) = json.loads(ok.stdout)
    assert result["identity"] == [USER] and result["issuer"] == stack.issuer
    assert result["predicateType"] == SIGN_TYPE
    wrong = verify(stack, work, f"{ref}@{digest}", identity="mallory@example.com")
    assert wrong.returncode == 1
    assert "verification failed: no valid signature" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_a_moved_tag_fails_verification(stack: RunningStack, work: Path, registry: Registry,
                                        layout: Layout) -> None:
    ref = f"{registry.host}/team/moving"
    first = image(layout, registry, "team/moving", "prod", "first")
    assert sign(stack, work, f"{ref}:prod").returncode == 0
    assert verify(stack, work, f"{ref}:prod").returncode == 0
    second = image(layout, registry, "team/moving", "prod", "second")  # the tag moves
    assert second != first
    moved = verify(stack, work, f"{ref}:prod")
    assert moved.returncode == 1
    assert f"no signature found for {ref}@{second}" in moved.stderr
    assert verify(stack, work, f"{ref}@{first}").returncode == 0


def test_an_attestation_never_passes_as_a_signature(stack: RunningStack, work: Path,
                                                    registry: Registry, layout: Layout) -> None:
    digest = image(layout, registry, "team/attested", "v1", "attested")
    ref = f"{registry.host}/team/attested@{digest}"
    made = keyless("image", "attest", ref, "--predicate-type", SLSA, "--predicate",
                   str(work / "predicate.json"), "--identity-token", stack.token(),
                   "--trust-config", str(work / "tc.json"),
                   env={"DOCKER_CONFIG": str(work / "docker")})
    assert made.returncode == 0, made.stderr
    assert "is a tag" not in made.stderr  # by digest: no warning
    posing = verify(stack, work, ref)
    assert posing.returncode == 1
    assert "is an attestation ('https://slsa.dev/provenance/v1'), not a signature" in (
        posing.stderr)
    ok = verify(stack, work, ref, "--predicate-type", SLSA, "--output", "json",
                command="verify-attestation")
    assert ok.returncode == 0, ok.stderr
    (result,) = json.loads(ok.stdout)
    assert result["statement"]["predicate"]["runDetails"]["builder"]["id"] == (
        "https://example.com/builder")
    other = verify(stack, work, ref, "--predicate-type", "https://spdx.dev/Document",
                   command="verify-attestation")
    assert other.returncode == 1 and "not https://spdx.dev/Document" in other.stderr
    assert sign(stack, work, ref).returncode == 0
    assert verify(stack, work, ref).returncode == 0
    tree = keyless("image", "tree", ref, env={"DOCKER_CONFIG": str(work / "docker")})
    assert tree.returncode == 0, tree.stderr
    lines = tree.stdout.splitlines()
    assert lines[0] == f"{ref} ({OCI_MANIFEST})"
    assert sorted(line.split(":")[0][4:] for line in lines[1:]) == ["attestation", "signature"]
    assert any(line.endswith(f"[{SLSA}]") for line in lines)


def test_recursive_signing_of_an_index(stack: RunningStack, work: Path, registry: Registry,
                                       layout: Layout) -> None:
    amd = layout.image("amd")
    arm = layout.image("arm", arch="arm64")
    index = layout.index([amd, arm])
    layout.tag(index, "multi")
    digest = push(layout, "multi", registry, "team/multi", all_images=True)
    ref = f"{registry.host}/team/multi"
    signed = sign(stack, work, f"{ref}@{digest}", "--recursive")
    assert signed.returncode == 0, signed.stderr
    assert signed.stdout.splitlines() == [f"{ref}@{d}" for d in (digest, amd["digest"],
                                                                  arm["digest"])]
    for d in (digest, amd["digest"], arm["digest"]):
        assert verify(stack, work, f"{ref}@{d}").returncode == 0


def test_docker_media_types_and_annotations(stack: RunningStack, work: Path, registry: Registry,
                                            layout: Layout) -> None:
    """A Docker schema 2 image, signed on the Rekor v1 log (dsse entry), with annotations."""
    d = layout.image("docker-typed")
    layout.tag(d, "v1")
    digest = push(layout, "v1", registry, "team/docker", docker=True)
    ref = f"{registry.host}/team/docker@{digest}"
    assert sign(stack, work, ref, "-a", "env=prod", "--rekor-version", "1").returncode == 0
    assert verify(stack, work, ref, "-a", "env=prod").returncode == 0
    wrong = verify(stack, work, ref, "-a", "env=dev")
    assert wrong.returncode == 1 and "annotations do not match" in wrong.stderr
    (manifest, _), = referrer_bundles(registry, "team/docker", digest)
    docker_type = "application/vnd.docker.distribution.manifest.v2+json"
    assert manifest["subject"]["mediaType"] == docker_type


def test_concurrent_signers_all_end_up_in_the_referrers(stack: RunningStack, work: Path,
                                                        registry: Registry,
                                                        layout: Layout) -> None:
    digest = image(layout, registry, "team/busy", "v1", "busy")
    ref = f"{registry.host}/team/busy@{digest}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(AMBIENT)}
    env["DOCKER_CONFIG"] = str(work / "docker")
    procs = [subprocess.Popen([str(KEYLESS), "image", "sign", ref, "--identity-token",
                               stack.token(), "--trust-config", str(work / "tc.json")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    assert len(referrer_bundles(registry, "team/busy", digest)) == 4
    ok = verify(stack, work, ref, "--output", "json")
    assert ok.returncode == 0, ok.stderr
    assert len(json.loads(ok.stdout)) == 4


def test_tls_registry_with_basic_auth(stack: RunningStack, work: Path, tls_registry: Registry,
                                      layout: Layout, docker_config: Path) -> None:
    digest = image(layout, tls_registry, "private/app", "v1", "private")
    ref = f"{tls_registry.host}/private/app:v1"
    env = {"DOCKER_CONFIG": str(docker_config)}
    ca = ["--registry-cacert", str(tls_registry.ca)]
    signed = sign(stack, work, ref, *ca, env=env)
    assert signed.returncode == 0, signed.stderr
    assert signed.stdout == f"{tls_registry.host}/private/app@{digest}\n"
    assert verify(stack, work, ref, *ca, env=env).returncode == 0
    anonymous = verify(stack, work, ref, *ca, env={"DOCKER_CONFIG": str(work / "docker")})
    assert anonymous.returncode == 1
    assert ("repository private/app on " + tls_registry.host) in anonymous.stderr
    assert "needs authentication for manifest v1" in anonymous.stderr


def test_legacy_format_both_directions(stack: RunningStack, work: Path, registry: Registry,
                                       layout: Layout) -> None:
    digest = image(layout, registry, "team/legacy", "v1", "legacy")
    ref = f"{registry.host}/team/legacy"
    signed = sign(stack, work, f"{ref}@{digest}", "--format", "legacy", "-a", "team=web")
    assert signed.returncode == 0, signed.stderr
    tag = digest.replace(":", "-") + ".sig"
    with registry.client() as http:
        got = http.get(f"/v2/team/legacy/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        assert got.status_code == 200 and got.headers["Content-Type"] == OCI_MANIFEST
        (layer,) = got.json()["layers"]
        payload = http.get(f"/v2/team/legacy/blobs/{layer['digest']}").content
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert payload == (
        b'{"critical":{"identity":{"docker-reference":"' + f"{ref}".encode()
        + b'"},"image":{"docker-manifest-digest":"' + digest.encode()
        + b'"},"type":"cosign container image signature"},"optional":{"team":"web"}}')
    notes = layer["annotations"]
    assert set(notes) >= {"dev.cosignproject.cosign/signature", "dev.sigstore.cosign/certificate",
                          "dev.sigstore.cosign/chain", "dev.sigstore.cosign/bundle"}
    assert notes["dev.sigstore.cosign/certificate"].startswith("-----BEGIN CERTIFICATE-----")
    rekor = json.loads(notes["dev.sigstore.cosign/bundle"])
    assert list(rekor) == ["SignedEntryTimestamp", "Payload"]
    assert list(rekor["Payload"]) == ["body", "integratedTime", "logIndex", "logID"]
    body = json.loads(base64.b64decode(rekor["Payload"]["body"]))
    assert body["kind"] == "hashedrekord"
    assert body["spec"]["data"]["hash"]["value"] == hashlib.sha256(payload).hexdigest()
    assert body["spec"]["signature"]["content"] == notes["dev.cosignproject.cosign/signature"]
    if "dev.sigstore.cosign/rfc3161timestamp" in notes:
        assert list(json.loads(notes["dev.sigstore.cosign/rfc3161timestamp"])) == [
            "SignedRFC3161Timestamp"]

    ok = verify(stack, work, f"{ref}:v1", "-a", "team=web")
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr == f"OK: {ref}@{digest} (1 valid signature, legacy format)\n"
    assert verify(stack, work, f"{ref}:v1", identity="mallory@example.com").returncode == 1

    made = keyless("image", "attest", f"{ref}@{digest}", "--format", "legacy",
                   "--predicate-type", SLSA, "--predicate", str(work / "predicate.json"),
                   "--identity-token", stack.token(), "--trust-config", str(work / "tc.json"),
                   env={"DOCKER_CONFIG": str(work / "docker")})
    assert made.returncode == 0, made.stderr
    with registry.client() as http:
        att = http.get(f"/v2/team/legacy/manifests/{digest.replace(':', '-')}.att",
                       headers={"Accept": OCI_MANIFEST}).json()
    (att_layer,) = att["layers"]
    assert att_layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    assert att_layer["annotations"]["predicateType"] == SLSA
    assert att_layer["annotations"]["dev.cosignproject.cosign/signature"] == ""
    ok_att = verify(stack, work, f"{ref}@{digest}", "--predicate-type", SLSA,
                    command="verify-attestation")
    assert ok_att.returncode == 0, ok_att.stderr
    assert "legacy format" in ok_att.stderr


# --- the other tools -----------------------------------------------------------------------------


def test_interop_sigstore_oci_attestation_is_accepted(stack: RunningStack, work: Path,
                                                      registry: Registry, layout: Layout,
                                                      tmp_path: Path, node_path: Path) -> None:
    """An attestation signed by sigstore-js on the keyless stack and attached by @sigstore/oci
    (what actions/attest does) passes ``keyless image verify-attestation``, not ``verify``."""
    digest = image(layout, registry, "team/gha", "v1", "from-actions")
    name = f"{registry.host}/team/gha"
    statement = {"_type": "https://in-toto.io/Statement/v1",
                 "subject": [{"name": name, "digest": {"sha256": digest[7:]}}],
                 "predicateType": SLSA,
                 "predicate": json.loads((work / "predicate.json").read_text())}
    (tmp_path / "statement.json").write_text(json.dumps(statement))
    scripts = ROOT / "tests" / "interop"
    env = {**os.environ, "NODE_PATH": str(node_path), "SIGSTORE_ID_TOKEN": stack.token(),
           "FULCIO_URL": stack.url, "REKOR_URL": stack.url}
    signed = subprocess.run(["node", str(scripts / "sign.js"), str(tmp_path / "statement.json"),
                             str(tmp_path / "bundle.json"), "--dsse"],
                            capture_output=True, text=True, timeout=120, env=env, check=False)
    assert signed.returncode == 0, signed.stderr
    attached = subprocess.run(["node", str(scripts / "attach-oci.js"), name, digest,
                               str(tmp_path / "bundle.json")],
                              capture_output=True, text=True, timeout=120, env=env, check=False)
    assert attached.returncode == 0, attached.stderr
    descriptor = json.loads(attached.stdout)
    (manifest, _), = referrer_bundles(registry, "team/gha", digest)
    assert manifest["annotations"]["dev.sigstore.bundle.predicateType"] == SLSA
    with registry.client() as http:
        index = http.get(f"/v2/team/gha/manifests/{digest.replace(':', '-')}",
                         headers={"Accept": OCI_INDEX}).json()
    assert [m["digest"] for m in index["manifests"]] == [descriptor["digest"]]

    ok = verify(stack, work, f"{name}:v1", "--predicate-type", SLSA, "--output", "json",
                command="verify-attestation")
    assert ok.returncode == 0, ok.stderr
    (result,) = json.loads(ok.stdout)
    assert result["location"] == descriptor["digest"] and result["format"] == "bundle"
    posing = verify(stack, work, f"{name}:v1")
    assert posing.returncode == 1 and "not a signature" in posing.stderr

    # keyless writes into the same fallback index @sigstore/oci started (annotated entries)
    assert sign(stack, work, f"{name}@{digest}").returncode == 0
    assert len(referrer_bundles(registry, "team/gha", digest)) == 2
    assert verify(stack, work, f"{name}:v1").returncode == 0


def test_interop_skopeo_carries_legacy_signatures(stack: RunningStack, work: Path,
                                                  registry: Registry, layout: Layout,
                                                  tmp_path: Path) -> None:
    """``skopeo copy`` with ``use-sigstore-attachments`` copies the ``.sig`` tag along; the
    signature still verifies in the other repository (the digest is preserved)."""
    digest = image(layout, registry, "team/origin", "v1", "travelling")
    assert sign(stack, work, f"{registry.host}/team/origin@{digest}", "--format",
                "legacy").returncode == 0
    (tmp_path / "registries.d").mkdir()
    (tmp_path / "registries.d" / "local.yaml").write_text(
        f"docker:\n  {registry.host}:\n    use-sigstore-attachments: true\n")
    (tmp_path / "policy.json").write_text(json.dumps(
        {"default": [{"type": "insecureAcceptAnything"}]}))
    copied = subprocess.run(
        ["skopeo", "--registries.d", str(tmp_path / "registries.d"), "--policy",
         str(tmp_path / "policy.json"), "copy", "--quiet", "--preserve-digests",
         "--src-tls-verify=false", "--dest-tls-verify=false",
         f"docker://{registry.host}/team/origin@{digest}",
         f"docker://{registry.host}/team/copy:v1"],
        capture_output=True, text=True, timeout=120, check=False)
    assert copied.returncode == 0, copied.stderr
    with registry.client() as http:
        sig = http.get(f"/v2/team/copy/manifests/{digest.replace(':', '-')}.sig",
                       headers={"Accept": OCI_MANIFEST})
    assert sig.status_code == 200
    ok = verify(stack, work, f"{registry.host}/team/copy:v1")
    assert ok.returncode == 0, ok.stderr
    assert "legacy format" in ok.stderr


def test_signatures_replayed_onto_another_image_are_refused(stack: RunningStack, work: Path,
                                                           registry: Registry,
                                                           layout: Layout) -> None:
    """A's bundle attached as a referrer of B, and A's ``.sig`` manifest copied to B's tag:
    neither makes B verify (the statement's subject and the payload's digest name A)."""
    from keyless.oci.content import Descriptor
    from keyless.oci.registry import RegistryClient
    from keyless.oci.sigstore import (
        BUNDLE_MEDIA_TYPE,
        EMPTY_BLOB,
        EMPTY_MEDIA_TYPE,
        SIGN_PREDICATE_TYPE,
        bundle_referrer,
    )

    a = image(layout, registry, "team/replay", "a", "image a")
    b = image(layout, registry, "team/replay", "b", "image b")
    ref = f"{registry.host}/team/replay"
    assert sign(stack, work, f"{ref}@{a}").returncode == 0
    assert sign(stack, work, f"{ref}@{a}", "--format", "legacy").returncode == 0
    (_, bundle_bytes), = referrer_bundles(registry, "team/replay", a)
    with RegistryClient(registry.host, credentials=lambda _: None) as client:
        b_manifest = client.get_manifest("team/replay", b)
        config = client.upload_blob("team/replay", EMPTY_BLOB, EMPTY_MEDIA_TYPE)
        layer = client.upload_blob("team/replay", bundle_bytes, BUNDLE_MEDIA_TYPE)
        forged = bundle_referrer(Descriptor(b_manifest.media_type, b, len(b_manifest.data)),
                                 config, layer, SIGN_PREDICATE_TYPE)
        client.push_referrer("team/replay", forged, b, BUNDLE_MEDIA_TYPE)
        sig = client.get_manifest("team/replay", a.replace(":", "-") + ".sig")
        client.put_manifest("team/replay", b.replace(":", "-") + ".sig", sig.data,
                            sig.media_type)
    refused = verify(stack, work, f"{ref}@{b}")
    assert refused.returncode == 1
    assert f"bundle {forged.digest}: the artifact is not a subject" in refused.stderr
    assert f"the payload signs '{a}', not {b}" in refused.stderr
    assert verify(stack, work, f"{ref}@{a}").returncode == 0
