"""The registry client against Debian's docker-registry 2.8.2 (no referrers API): manifests as
exact bytes, blob uploads, the referrers tag-schema fallback under concurrent writers, Basic
auth over TLS with a test CA and credentials from the Docker config or a credential helper, and
errors that name the repository and what was asked."""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path

import pytest
from registryutil import (  # noqa: F401  (fixtures)
    PASSWORD,
    USER,
    Layout,
    Registry,
    TokenServer,
    docker_config_fixture,
    layout_fixture,
    push,
    registry_fixture,
    tls_registry_fixture,
    token_registry_fixture,
)

from keyless.oci.auth import DockerConfigCredentials
from keyless.oci.content import OCI_INDEX, OCI_MANIFEST, referrers_tag, sha256_digest
from keyless.oci.errors import RegistryAuthError, RegistryError, RegistryNotFound
from keyless.oci.registry import RegistryClient

pytestmark = pytest.mark.integration
EMPTY = b"{}"
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def no_credentials(_: str) -> None:
    return None


def artifact_manifest(client: RegistryClient, repo: str, subject: dict[str, object],
                      payload: bytes) -> tuple[bytes, str]:
    config = client.upload_blob(repo, EMPTY, "application/vnd.oci.empty.v1+json")
    layer = client.upload_blob(repo, payload, BUNDLE_TYPE)
    data = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_TYPE,
        "config": config.to_json(), "layers": [layer.to_json()], "subject": subject,
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope"},
    }).encode()
    return data, sha256_digest(data)


def test_manifests_are_bytes_as_pushed(registry: Registry, layout: Layout) -> None:
    one = layout.image("one")
    layout.tag(one, "v1")
    arm = layout.image("arm", arch="arm64")
    index = layout.index([one, arm])
    layout.tag(index, "multi")
    assert push(layout, "v1", registry, "bytes/app") == one["digest"]
    docker_digest = push(layout, "v1", registry, "bytes/app", docker=True, dest_tag="docker")
    assert push(layout, "multi", registry, "bytes/app", all_images=True) == index["digest"]
    with RegistryClient(registry.host, credentials=no_credentials) as client:
        assert client.base == registry.url  # loopback without TLS: plain HTTP
        by_tag = client.get_manifest("bytes/app", "v1")
        assert by_tag.digest == one["digest"] and by_tag.media_type == OCI_MANIFEST
        digest = str(one["digest"])
        blob = (layout.path / "blobs" / "sha256" / digest[7:]).read_bytes()
        assert client.get_manifest("bytes/app", digest).data == blob
        docker = client.get_manifest("bytes/app", "docker")
        assert docker.digest == docker_digest
        assert docker.media_type == "application/vnd.docker.distribution.manifest.v2+json"
        multi = client.get_manifest("bytes/app", "multi")
        assert multi.is_index
        assert [d.digest for d in client.iter_index_children(multi)] == [one["digest"],
                                                                         arm["digest"]]


def test_not_found_names_repository_and_request(registry: Registry) -> None:
    with RegistryClient(registry.host, credentials=no_credentials) as client:
        with pytest.raises(RegistryNotFound) as caught:
            client.get_manifest("nothing/here", "v9")
        message = str(caught.value)
        assert "nothing/here" in message and "manifest v9" in message
        assert registry.host in message
        assert client.find_manifest("nothing/here", "v9") is None


def test_referrers_fallback_index(registry: Registry, layout: Layout) -> None:
    image = layout.image("refd")
    layout.tag(image, "v1")
    digest = push(layout, "v1", registry, "refs/app")
    with RegistryClient(registry.host, credentials=no_credentials) as client:
        assert client.referrers_api("refs/app", digest) is None  # 2.8.2: no referrers API
        assert client.referrers("refs/app", digest) == []
        subject = {"mediaType": OCI_MANIFEST, "digest": digest, "size": image["size"]}
        data, ref_digest = artifact_manifest(client, "refs/app", subject, b"bundle-1")
        from keyless.oci.content import Manifest

        client.push_referrer("refs/app", Manifest(data, OCI_MANIFEST, ref_digest), digest,
                             BUNDLE_TYPE)
        found = client.referrers("refs/app", digest)
        assert [(d.digest, d.artifact_type) for d in found] == [(ref_digest, BUNDLE_TYPE)]
        assert found[0].annotations == {"dev.sigstore.bundle.content": "dsse-envelope"}
        assert client.referrers("refs/app", digest, artifact_type="other/type") == []
    with registry.client() as http:  # from outside: the tag schema index, OCI index type
        got = http.get(f"/v2/refs/app/manifests/{referrers_tag(digest)}",
                       headers={"Accept": OCI_INDEX})
        assert got.status_code == 200 and got.headers["Content-Type"] == OCI_INDEX
        assert [m["digest"] for m in got.json()["manifests"]] == [ref_digest]


def test_concurrent_writers_all_end_up_in_the_fallback_index(registry: Registry,
                                                             layout: Layout) -> None:
    """2.8.2 ignores If-Match: each writer re-reads after writing and merges again."""
    image = layout.image("crowd")
    layout.tag(image, "v1")
    digest = push(layout, "v1", registry, "crowd/app")
    subject = {"mediaType": OCI_MANIFEST, "digest": digest, "size": image["size"]}
    from keyless.oci.content import Manifest

    errors: list[BaseException] = []
    digests: list[str] = []
    barrier = threading.Barrier(6)

    def writer(n: int) -> None:
        try:
            with RegistryClient(registry.host, credentials=no_credentials) as client:
                data, ref = artifact_manifest(client, "crowd/app", subject, f"b{n}".encode())
                digests.append(ref)
                barrier.wait(timeout=30)
                client.push_referrer("crowd/app", Manifest(data, OCI_MANIFEST, ref), digest,
                                     BUNDLE_TYPE)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with RegistryClient(registry.host, credentials=no_credentials) as client:
        found = {d.digest for d in client.referrers("crowd/app", digest)}
    assert found == set(digests)


def test_tls_basic_auth_from_docker_config(tls_registry: Registry, layout: Layout,
                                           docker_config: Path) -> None:
    image = layout.image("private")
    layout.tag(image, "v1")
    digest = push(layout, "v1", tls_registry, "private/app")
    with RegistryClient(tls_registry.host, cacert=str(tls_registry.ca)) as client:
        assert client.base == tls_registry.url  # loopback, but TLS answered: https
        assert client.get_manifest("private/app", "v1").digest == digest
        config = client.upload_blob("private/app", b"{}", "application/vnd.oci.empty.v1+json")
        assert client.blob_exists("private/app", config.digest)
        assert client.get_blob("private/app", config.digest) == b"{}"


def test_tls_registry_without_credentials_or_ca(tls_registry: Registry, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # no config.json at all
    ca = str(tls_registry.ca)
    with RegistryClient(tls_registry.host, cacert=ca) as client, pytest.raises(
        RegistryAuthError
    ) as caught:
        client.get_manifest("private/app", "v1")
    message = str(caught.value)
    assert "private/app" in message and "manifest v1" in message
    assert "no credentials in the Docker config" in message
    with RegistryClient(tls_registry.host) as client, pytest.raises(RegistryError) as bad_ca:
        client.get_manifest("private/app", "v1")
    assert "--registry-cacert" in str(bad_ca.value)


def test_wrong_password_is_refused(tls_registry: Registry, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    auth = base64.b64encode(b"ci:wrong").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {
        f"https://{tls_registry.host}": {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    ca = str(tls_registry.ca)
    with RegistryClient(tls_registry.host, cacert=ca) as client, pytest.raises(
        RegistryAuthError, match="the credentials were refused"
    ):
        client.get_manifest("private/app", "v1")


def test_credential_helper(tls_registry: Registry, layout: Layout, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    """``credHelpers`` → ``docker-credential-<name> get`` with the server on stdin."""
    assert tls_registry.auth is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "asked"
    helper = bin_dir / "docker-credential-keylesstest"
    user, password = tls_registry.auth
    helper.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = get ] || exit 3\ncat > {seen}\n'
        f'printf \'{{"ServerURL":"x","Username":"{user}","Secret":"{password}"}}\'\n'
    )
    helper.chmod(0o700)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {
        tls_registry.host: "keylesstest"}}))
    image = layout.image("helped")
    layout.tag(image, "v1")
    digest = push(layout, "v1", tls_registry, "helped/app")
    creds = DockerConfigCredentials(tmp_path / "config.json")
    with RegistryClient(tls_registry.host, cacert=str(tls_registry.ca),
                        credentials=creds) as client:
        assert client.get_manifest("helped/app", "v1").digest == digest
    assert seen.read_text() == tls_registry.host


def test_bearer_token_auth(token_registry: tuple[Registry, TokenServer], layout: Layout,
                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """distribution's token auth: 401 challenge → token from the realm with the Docker config's
    Basic credentials (or its identity token) → Bearer; scopes follow what is asked."""
    registry, token = token_registry
    image = layout.image("bearer")
    layout.tag(image, "v1")
    digest = push(layout, "v1", registry, "bearer/app")
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    token.scopes.clear()
    with RegistryClient(registry.host) as client:
        assert client.get_manifest("bearer/app", "v1").digest == digest
        client.upload_blob("bearer/app", b"{}", "application/vnd.oci.empty.v1+json")
        assert client.get_manifest("bearer/app", digest).digest == digest
    assert token.scopes == ["repository:bearer/app:pull", "repository:bearer/app:pull,push"]

    (tmp_path / "config.json").write_text(json.dumps({"auths": {registry.host: {
        "identitytoken": TokenServer.REFRESH}}}))
    with RegistryClient(registry.host) as client:
        assert client.get_manifest("bearer/app", "v1").digest == digest

    (tmp_path / "config.json").write_text(json.dumps({"auths": {registry.host: {
        "auth": base64.b64encode(b"ci:wrong").decode()}}}))
    with RegistryClient(registry.host) as client, pytest.raises(RegistryAuthError) as caught:
        client.get_manifest("bearer/app", "v1")
    assert str(caught.value) == (
        f"the registry {registry.host} refused a token for repository:bearer/app:pull "
        "(manifest v1): HTTP 401")
