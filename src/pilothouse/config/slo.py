"""`[slo]`: the service level objectives alerts and dashboards are built from."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pilothouse.config.base import Section
from pilothouse.durations import Duration

Ratio = Annotated[float, Field(gt=0.0, lt=1.0)]


class LatencySlo(Section):
    threshold: Duration
    target: Ratio


class SloConfig(Section):
    availability: Ratio | None = None
    latency: LatencySlo | None = None
