"""Signing configs v0.2: where a client signs (protobuf-JSON, protocols.md §7). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keyless.errors import InvalidInput
from keyless.formats.jsonreader import StrictObject, ValidityPeriod, load_json

SIGNING_CONFIG_V02 = "application/vnd.dev.sigstore.signingconfig.v0.2+json"


@dataclass(frozen=True)
class Service:
    """A service endpoint: base URL (full endpoint for TSAs), API version, validity, operator."""

    url: str
    major_api_version: int
    valid_for: ValidityPeriod
    operator: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "url": self.url,
            "majorApiVersion": self.major_api_version,
            "validFor": self.valid_for.to_json(),
        }
        if self.operator:
            out["operator"] = self.operator
        return out

    @classmethod
    def from_json(cls, value: Any, path: str) -> Service:
        o = StrictObject(value, path)
        url = o.text("url")
        version = o.get("majorApiVersion")
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise InvalidInput(f"{o.path('majorApiVersion')} must be a non-negative integer")
        valid_for = ValidityPeriod.parse(o.obj("validFor"), o.path("validFor"))
        operator = o.text("operator", required=False)
        o.done()
        return cls(url, version, valid_for, operator)


@dataclass(frozen=True)
class ServiceSelector:
    """``ServiceConfiguration``: ``ALL`` (default), ``ANY`` (first one) or ``EXACT`` ``count``."""

    selector: str = "ALL"
    count: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"selector": self.selector}
        if self.count:
            out["count"] = self.count
        return out

    @classmethod
    def from_json(cls, value: Any, path: str) -> ServiceSelector:
        o = StrictObject(value, path)
        selector = o.text("selector", required=False, default="ALL")
        if selector not in ("ALL", "ANY", "EXACT"):
            raise InvalidInput(f"{o.path('selector')} must be ALL, ANY or EXACT")
        count = o.get("count") or 0
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise InvalidInput(f"{o.path('count')} must be a non-negative integer")
        o.done()
        if selector == "EXACT" and count < 1:
            raise InvalidInput(f"{o.path('count')} is required with selector EXACT")
        return cls(selector, count)


@dataclass(frozen=True)
class SigningConfig:
    """``SigningConfig`` v0.2: where to sign (protocols.md §7)."""

    ca_urls: tuple[Service, ...]
    oidc_urls: tuple[Service, ...]
    rekor_tlog_urls: tuple[Service, ...]
    tsa_urls: tuple[Service, ...]
    rekor_tlog_config: ServiceSelector = ServiceSelector()
    tsa_config: ServiceSelector = ServiceSelector()
    media_type: str = SIGNING_CONFIG_V02

    def to_json(self) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "caUrls": [s.to_json() for s in self.ca_urls],
            "oidcUrls": [s.to_json() for s in self.oidc_urls],
            "rekorTlogUrls": [s.to_json() for s in self.rekor_tlog_urls],
            "tsaUrls": [s.to_json() for s in self.tsa_urls],
            "rekorTlogConfig": self.rekor_tlog_config.to_json(),
            "tsaConfig": self.tsa_config.to_json(),
        }

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any], path: str = "") -> SigningConfig:
        o = StrictObject(load_json(data, "signing config"), path)
        media_type = o.text("mediaType")
        if media_type != SIGNING_CONFIG_V02:
            raise InvalidInput(f"{o.path('mediaType')} {media_type!r} is not signing config v0.2")

        def services(key: str) -> tuple[Service, ...]:
            return tuple(
                Service.from_json(v, f"{o.path(key)}[{i}]") for i, v in enumerate(o.items(key))
            )

        ca, oidc, rekor, tsa = (
            services("caUrls"),
            services("oidcUrls"),
            services("rekorTlogUrls"),
            services("tsaUrls"),
        )
        rc = o.get("rekorTlogConfig")
        tc = o.get("tsaConfig")
        rekor_cfg = ServiceSelector.from_json(rc, o.path("rekorTlogConfig")) if rc else None
        tsa_cfg = ServiceSelector.from_json(tc, o.path("tsaConfig")) if tc else None
        o.done()
        return cls(
            ca, oidc, rekor, tsa, rekor_cfg or ServiceSelector(), tsa_cfg or ServiceSelector()
        )
