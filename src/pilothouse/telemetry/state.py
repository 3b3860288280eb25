"""The process-wide telemetry state the helpers use: one registry and one correlation name.

`install(runtime)` binds the runtime's registry; before that (scripts, unit tests) helpers
record into a private registry of their own, so calling them is never an error.
"""

from __future__ import annotations

from pilothouse.runtime.metrics import Metrics


class _State:
    __slots__ = ("_metrics", "correlation_attribute")

    def __init__(self) -> None:
        self._metrics: Metrics | None = None
        self.correlation_attribute = "correlation_id"

    @property
    def metrics(self) -> Metrics:
        if self._metrics is None:
            self._metrics = Metrics()
        return self._metrics

    def bind(self, metrics: Metrics, correlation_attribute: str) -> None:
        self._metrics = metrics
        self.correlation_attribute = correlation_attribute


state = _State()
