"""Fulcio's per-type identity rules (protocols.md §1.2-§1.4) and issuer configuration."""

from __future__ import annotations

from typing import Any

import pytest

from keyless.errors import ConfigError, Unauthenticated
from keyless.identity import IssuerConfig, find_issuer
from keyless.identity.principals import certificate_issuer, principal_for

GITHUB = {
    "iss": "https://token.actions.githubusercontent.com",
    "sub": "repo:octo/app:ref:refs/heads/main",
    "job_workflow_ref": "octo/app/.github/workflows/release.yml@refs/heads/main",
    "sha": "a" * 40,
    "event_name": "push",
    "repository": "octo/app",
    "workflow": "release",
    "ref": "refs/heads/main",
    "job_workflow_sha": "b" * 40,
    "runner_environment": "github-hosted",
    "repository_id": "1",
    "repository_owner": "octo",
    "repository_owner_id": "2",
    "workflow_ref": "octo/app/.github/workflows/release.yml@refs/heads/main",
    "workflow_sha": "b" * 40,
    "run_id": "3",
    "run_attempt": "1",
}
GITLAB = {
    "iss": "https://gitlab.com",
    "sub": "project_path:g/p:ref_type:branch:ref:main",
    "project_path": "g/p",
    "pipeline_source": "push",
    "pipeline_id": "9",
    "ci_config_ref_uri": "gitlab.com/g/p//.gitlab-ci.yml@refs/heads/main",
    "job_id": "7",
    "ref": "main",
    "ref_type": "branch",
    "namespace_path": "g",
    "namespace_id": "5",
    "project_id": "6",
    "sha": "c" * 40,
    "runner_environment": "gitlab-hosted",
    "runner_id": 12,
}


def rule(cfg: IssuerConfig, claims: dict[str, Any]) -> tuple[str, str, str]:
    p = principal_for(claims, cfg)
    return p.subject_alternative_name, p.san_type, p.pop_subject


def test_github_workflow() -> None:
    cfg = IssuerConfig(GITHUB["iss"], type="github-workflow")
    assert rule(cfg, GITHUB) == (
        "https://github.com/octo/app/.github/workflows/release.yml@refs/heads/main",
        "uri",
        GITHUB["sub"],
    )
    with pytest.raises(Unauthenticated, match="run_attempt"):
        rule(cfg, {k: v for k, v in GITHUB.items() if k != "run_attempt"})


def test_gitlab_pipeline() -> None:
    cfg = IssuerConfig("https://gitlab.com", type="gitlab-pipeline")
    san, kind, pop = rule(cfg, GITLAB)
    assert san == "https://gitlab.com/g/p//.gitlab-ci.yml@refs/heads/main"
    assert (kind, pop) == ("uri", GITLAB["sub"])
    with pytest.raises(Unauthenticated, match="ref_type"):
        rule(cfg, {**GITLAB, "ref_type": "weird"})


def test_buildkite_kubernetes_spiffe() -> None:
    bk = IssuerConfig("https://agent.buildkite.com", type="buildkite-job")
    claims = {
        "sub": "organization:acme:pipeline:web",
        "organization_slug": "acme",
        "pipeline_slug": "web",
    }
    assert rule(bk, claims)[0] == "https://buildkite.com/acme/web"
    spiffe = IssuerConfig("https://spire.test", type="spiffe", spiffe_trust_domain="acme.test")
    assert rule(spiffe, {"sub": "spiffe://acme.test/ns/ci/sa/builder"})[0] == (
        "spiffe://acme.test/ns/ci/sa/builder"
    )
    for bad in (
        "spiffe://other.test/x",
        "https://acme.test/x",
        "spiffe://acme.test/a//b",
        "spiffe://ACME.test/x",
    ):
        with pytest.raises(Unauthenticated):
            rule(spiffe, {"sub": bad})


def test_uri_and_username() -> None:
    uri = IssuerConfig(
        "https://ci.example.com/oidc", type="uri", subject_domain="https://ci.example.com"
    )
    assert rule(uri, {"sub": "https://ci.example.com/jobs/1"})[0] == "https://ci.example.com/jobs/1"
    for bad in ("https://evil.test/jobs/1", "http://ci.example.com/jobs/1", "me@ci.example.com"):
        with pytest.raises(Unauthenticated):
            rule(uri, {"sub": bad})
    user = IssuerConfig("https://idp.test", type="username", subject_domain="idp.test")
    assert rule(user, {"sub": "alice"}) == ("alice!idp.test", "username", "alice")
    with pytest.raises(Unauthenticated, match="'!'"):
        rule(user, {"sub": "a!b"})


def test_issuer_claim() -> None:
    cfg = IssuerConfig(
        "https://oauth2.sigstore.dev/auth", issuer_claim="$.federated_claims.connector_id"
    )
    claims = {
        "iss": cfg.url,
        "federated_claims": {"connector_id": "https://github.com/login/oauth"},
    }
    assert certificate_issuer(claims, cfg) == "https://github.com/login/oauth"
    with pytest.raises(Unauthenticated):
        certificate_issuer({"iss": cfg.url}, cfg)
    assert certificate_issuer({"iss": "x"}, IssuerConfig("https://x.test")) == "x"


def test_meta_issuer_matching() -> None:
    meta = IssuerConfig("https://oidc.eks.*.amazonaws.com/id/*", type="kubernetes")
    assert meta.matches("https://oidc.eks.us-east-1.amazonaws.com/id/ABCDEF")
    assert not meta.matches("https://oidc.eks.us-east-1.amazonaws.com/id/AB/CD")
    assert not meta.matches("https://oidc.eks.a.b.amazonaws.com/id/x")
    assert not meta.matches("https://oidc.eksXus.amazonaws.com/id/x")
    exact = IssuerConfig("https://oidc.eks.us-east-1.amazonaws.com/id/ABCDEF", type="kubernetes")
    assert find_issuer((meta, exact), exact.url) is exact  # exact entries win
    assert meta.to_api()["wildcardIssuerUrl"] == meta.url
    assert exact.to_api() == {
        "issuerUrl": exact.url,
        "audience": "sigstore",
        "challengeClaim": "sub",
        "issuerType": "kubernetes",
    }


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        IssuerConfig("https://x.test", type="uri")  # needs subject_domain
    with pytest.raises(ConfigError):
        IssuerConfig("https://x.test", type="spiffe")
    with pytest.raises(ConfigError):
        IssuerConfig("ftp://x.test")
    with pytest.raises(ConfigError):
        IssuerConfig("https://x.test", type="nope")  # type: ignore[arg-type]
    cfg = IssuerConfig.from_mapping(
        {"IssuerURL": "https://x.test", "ClientID": "keyless", "Type": "email"}
    )
    assert cfg.client_id == "keyless"
    with pytest.raises(ConfigError, match="unknown key"):
        IssuerConfig.from_mapping({"url": "https://x.test", "colour": "red"})
