"""Key generations of the CA, the TSA and the Rekor log shards (issue 9, targets.md G14).

A rotation never deletes anything: it closes the current generation's validity window and opens a
new one. The trusted root lists every generation with its ``validFor`` (protocols.md §7: windows
are inclusive, verifiers pick the key valid at the signing time), so bundles signed before the
rotation keep verifying while new certificates and timestamps come from the new keys.

The list of generations is one JSON blob in the stack's secrets (files or the shared database):
``[{"id": "ca", "created": "…Z", "end": "…Z"}, {"id": "ca.2", "created": "…Z", "end": null}]``.
The last generation is the active one; its key material is created by the service's own helper
the first time a server starts with it. The old window ends ``overlap`` after the rotation, so
that during a rolling restart of several processes (PostgreSQL) whatever the not-yet-restarted
ones still issue remains valid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from keyless.errors import ConfigError
from keyless.server.secrets import Secrets

ROTATABLE = ("ca", "tsa", "rekor-v1", "rekor-v2")
DEFAULT_OVERLAP = timedelta(hours=1)


@dataclass(frozen=True)
class Generation:
    """One key generation of a service."""

    id: str
    created: datetime | None
    end: datetime | None

    def to_json(self) -> dict[str, str | None]:
        return {
            "id": self.id,
            "created": self.created.isoformat() if self.created else None,
            "end": self.end.isoformat() if self.end else None,
        }

    @classmethod
    def from_json(cls, value: dict[str, str | None]) -> Generation:
        created, end = value.get("created"), value.get("end")
        return cls(
            str(value["id"]),
            datetime.fromisoformat(created) if created else None,
            datetime.fromisoformat(end) if end else None,
        )


def _name(service: str) -> str:
    if service not in ROTATABLE:
        raise ConfigError(f"cannot rotate {service!r}: one of {', '.join(ROTATABLE)}")
    return f"generations/{service}.json"


async def generations(secrets: Secrets, service: str) -> list[Generation]:
    """The generations of ``service``, oldest first; a never-rotated service has one."""
    raw = await secrets.get(_name(service))
    if raw is None:
        return [Generation(service, None, None)]
    return [Generation.from_json(item) for item in json.loads(raw)]


async def rotate(
    secrets: Secrets,
    service: str,
    *,
    now: datetime | None = None,
    overlap: timedelta = DEFAULT_OVERLAP,
) -> Generation:
    """Start a new generation of ``service``; returns it. Takes effect at the next start."""
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    current = await generations(secrets, service)
    last = current[-1]
    if last.created is not None and last.created > moment:
        raise ConfigError(f"{service}: the newest generation was created in the future")
    closed = Generation(last.id, last.created, moment + overlap)
    new = Generation(f"{service}.{len(current) + 1}", moment, None)
    data = json.dumps([g.to_json() for g in [*current[:-1], closed, new]], indent=1).encode()
    await secrets.replace(_name(service), data)
    return new
