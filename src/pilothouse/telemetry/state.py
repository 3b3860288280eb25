"""The process-wide telemetry state the helpers use: one registry and one correlation name.

`install(runtime)` binds the runtime's registry; before that (scripts, unit tests) helpers
record into a private registry of their own, so calling them is never an error.
"""

from __future__ import annotations

import logging

from pilothouse.metrics import Metrics

log = logging.getLogger("pilothouse.telemetry")


class _State:
    __slots__ = ("_metrics", "_warned", "correlation_attribute", "declared")

    def __init__(self) -> None:
        self._metrics: Metrics | None = None
        self.correlation_attribute = "correlation_id"
        self.declared: frozenset[str] | None = None  # [monitoring].helpers once bound
        self._warned: set[str] = set()

    def used(self, helper: str) -> None:
        """Warn once when the app calls a helper `[monitoring].helpers` does not list: its
        metrics are served, but no generated panel or alert watches them."""
        if self.declared is None or helper in self.declared or helper in self._warned:
            return
        self._warned.add(helper)
        log.warning(
            "the app calls pilothouse.telemetry.%s but [monitoring].helpers does not list %r: "
            "no generated panel or alert watches its metrics",
            helper,
            helper,
        )

    @property
    def metrics(self) -> Metrics:
        if self._metrics is None:
            self._metrics = Metrics()
        return self._metrics

    def bind(
        self, metrics: Metrics, correlation_attribute: str, helpers: frozenset[str] | None = None
    ) -> None:
        self._metrics = metrics
        self.correlation_attribute = correlation_attribute
        self.declared = helpers
        self._warned = set()


state = _State()
