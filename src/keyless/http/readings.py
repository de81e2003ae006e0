"""What the app's own ``/metrics`` readers return (:attr:`keyless.http.metrics.Metrics.gauges`),
in a module of their own that does not import ``prometheus_client``: the composition root builds
readers before a ``--workers`` supervisor has chosen where counters live."""

from __future__ import annotations


class Counted(dict[str, float]):
    """What a reader of :attr:`Metrics.gauges` returns for a *counter* (a value that only grows,
    e.g. certificates issued): the values by one label, named ``label``."""

    def __init__(self, label: str, values: dict[str, float]) -> None:
        super().__init__(values)
        self.label = label


class Latest(dict[str, float]):
    """What a reader of :attr:`Metrics.gauges` returns for a *state* observed as it happens (e.g.
    whether a witness cosigned the last checkpoint asked): the values by one label, named
    ``label``, holding only what this process has observed. With several workers a scrape shows,
    per label, the value observed last by any of them."""

    def __init__(self, label: str, values: dict[str, float]) -> None:
        super().__init__(values)
        self.label = label


Mirrored = Counted | Latest


__all__ = ["Counted", "Latest", "Mirrored"]
