"""The SLIs of `[slo]` as PromQL, built once: the recording rules, the overview dashboard's budget
panel and the operations report (`pilothouse.report`) all take their expressions from here, so the
alerts, the dashboard and the report cannot disagree on what a bad request is.

An availability SLI counts a request as bad when its status is 5xx; a latency SLI when it took
longer than the threshold, counted exactly in the histogram bucket `le=<threshold>` (which must be
a bucket bound). The error budget left over the SLO window is `1 - bad_ratio / (1 - objective)`:
1 is an untouched budget, 0 is spent, below 0 is overspent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pilothouse.catalog.http_server import HTTP_SERVER_REQUEST_DURATION as HTTP
from pilothouse.catalog.promql import Matcher, bucket_le, rate_sum
from pilothouse.config.model import Config
from pilothouse.errors import ConfigError

Kind = Literal["errors", "slow"]
SERVER_ERRORS = Matcher("http_response_status_code", "5..", "=~")
NOT_SERVER_ERRORS = Matcher("http_response_status_code", "5..", "!~")
SLO_WINDOW = 2592000.0
"""The window an SLO's error budget is spent over (30 days): the dashboard's budget panel and the
report's budget left; the burn-rate factors of the alerts (14.4 over 1h...) assume it too."""
TITLES: dict[Kind, str] = {"errors": "availability", "slow": "latency"}


def objectives(config: Config) -> dict[Kind, float]:
    """The objective of each SLO `[slo]` sets, by SLI kind (`errors`: availability)."""
    found: dict[Kind, float] = {}
    if config.slo.availability is not None:
        found["errors"] = config.slo.availability
    if config.slo.latency is not None:
        found["slow"] = config.slo.latency.target
    return found


def budget(objective: float) -> float:
    """The error budget of an objective: the share of requests allowed to be bad."""
    return round(1 - objective, 10)


def latency_le(config: Config) -> str:
    """The `le` bucket of the latency SLO threshold; ConfigError when it is not a bucket bound."""
    assert config.slo.latency is not None
    try:
        return bucket_le(HTTP, config.slo.latency.threshold)
    except ValueError as exc:
        raise ConfigError(f"slo.latency.threshold: {exc}") from None


def bad_ratio(
    config: Config, kind: Kind, matchers: tuple[Matcher, ...], seconds: float, group: Iterable[str] = ()
) -> str:
    """The share of bad requests over `seconds`: `1 - (good / total)`, grouped by `group`."""
    group = tuple(group)
    total = rate_sum(HTTP, matchers, seconds, group, part="count")
    if kind == "errors":
        good = rate_sum(HTTP, (*matchers, NOT_SERVER_ERRORS), seconds, group, part="count")
    else:
        le = Matcher("le", latency_le(config))
        good = rate_sum(HTTP, (*matchers, le), seconds, group, part="bucket")
    return f"1 - ({good} / {total})"


def budget_left(
    config: Config, kind: Kind, matchers: tuple[Matcher, ...], seconds: float = SLO_WINDOW
) -> str:
    """The error budget left over the window: `1 - bad_ratio / (1 - objective)`."""
    return f"1 - ({bad_ratio(config, kind, matchers, seconds)}) / {budget(objectives(config)[kind])}"
