"""`[monitoring]`: alert thresholds, where alerts go, runbook links and log retention.

Receivers hold secret *file paths* (Alertmanager reads the key at send time), never the keys:
the generated Alertmanager config is safe to commit and to put in a ConfigMap.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pilothouse.config.base import Section
from pilothouse.config.secret_ref import http_url, refuse_embedded_password
from pilothouse.durations import Duration

Ratio = Annotated[float, Field(gt=0.0, lt=1.0)]
_RECEIVER = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
HelperName = Literal["unit_of_work", "command", "queue_depth", "watch_pool"]
"""The `pilothouse.telemetry` helpers whose metrics the catalog declares (`catalog.app.HELPERS`)."""
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _absolute_file(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("expected an absolute path to a file holding the secret (mounted from a Secret)")
    return value


class PagerDutyReceiver(Section):
    """Pages through PagerDuty Events v2; the routing key is read from a mounted file."""

    kind: Literal["pagerduty"]
    routing_key_file: str

    _file = field_validator("routing_key_file")(_absolute_file)


class SlackReceiver(Section):
    """Posts to a Slack channel; the incoming-webhook URL (a secret) is read from a mounted file."""

    kind: Literal["slack"]
    api_url_file: str
    channel: str = "#alerts"

    _file = field_validator("api_url_file")(_absolute_file)


class WebhookReceiver(Section):
    """Any HTTP endpoint speaking Alertmanager's webhook format (chat bridges, tests)."""

    kind: Literal["webhook"]
    url: str

    _http_url = field_validator("url")(http_url)


ReceiverConfig = Annotated[PagerDutyReceiver | SlackReceiver | WebhookReceiver, Field(discriminator="kind")]


def _default_receivers() -> dict[str, ReceiverConfig]:
    return {
        "pager": PagerDutyReceiver(
            kind="pagerduty", routing_key_file="/etc/alertmanager/secrets/pagerduty-routing-key"
        ),
        "pager-secondary": PagerDutyReceiver(
            kind="pagerduty", routing_key_file="/etc/alertmanager/secrets/pagerduty-secondary-routing-key"
        ),
        "chat": SlackReceiver(kind="slack", api_url_file="/etc/alertmanager/secrets/slack-webhook-url"),
    }


class MaintenanceWindow(Section):
    """A recurring window (UTC) during which warnings are muted; pages still go out."""

    weekdays: list[Weekday] = Field(min_length=1)
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError("expected a time of day such as '02:00'")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindow:
        if self.start >= self.end:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self


class RoutingConfig(Section):
    """Which receiver gets pages (severity critical), tickets (warning) and unacknowledged pages."""

    page: str = "pager"
    ticket: str = "chat"
    escalation: str | None = "pager-secondary"
    escalate_after: Duration = 1800.0
    group_wait: Duration = 30.0
    group_interval: Duration = 300.0
    page_repeat_interval: Duration = 3600.0
    ticket_repeat_interval: Duration = 43200.0


class AppMetric(Section):
    """`[[monitoring.metrics]]`: a metric the app registers itself with prometheus_client (served
    on the ops `/metrics` with the default registry); it gets a panel, and an alert if asked."""

    name: str = Field(description="as registered; a counter's `_total` suffix is optional")
    type: Literal["counter", "gauge", "histogram"]
    help: str = ""
    labels: list[str] = Field(default_factory=list)
    unit: Literal["", "seconds", "bytes", "ratio"] = ""
    alert_above: float | None = Field(
        default=None, description="alert when the panel's value (per second for a counter) exceeds this"
    )
    severity: Literal["critical", "warning"] = "warning"
    pending: Duration = 300.0

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _METRIC_NAME.match(value) or value.startswith("pilothouse_"):
            raise ValueError("expected a Prometheus metric name outside the pilothouse_ namespace")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _LABEL_NAME.match(v) or v.startswith("__") or v == "le"]
        if bad:
            raise ValueError(f"not usable as label names: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _alertable(self) -> AppMetric:
        if self.alert_above is not None and self.type == "histogram":
            raise ValueError(
                "alert_above works on counters and gauges; alert on a histogram with a rule of your own"
            )
        return self

    @property
    def family(self) -> str:
        """The family name prometheus_client registers (a counter's without `_total`)."""
        return self.name.removesuffix("_total") if self.type == "counter" else self.name


class MonitoringConfig(Section):
    """Thresholds and routing for the generated monitoring bundle (`pilothouse generate monitoring`)."""

    job: str | None = Field(
        default=None,
        description="the Prometheus `job` label of the service's series (default: service.name); "
        "the ServiceMonitor and the compose Prometheus config set it, rules and panels select it",
    )
    helpers: list[HelperName] = Field(
        default_factory=list,
        description="the pilothouse.telemetry helpers the app calls; only their panels and alerts "
        "(PoolSaturated for watch_pool, QueueGrowing for queue_depth) are generated",
    )
    metrics: list[AppMetric] = Field(default_factory=list, description="the app's own metrics")
    runbook_base_url: str | None = Field(
        default=None, description="where the generated runbooks are published; alerts link there"
    )
    latency_p99: Duration = 1.0
    error_ratio: Ratio = 0.05
    pool_utilization: Ratio = 0.9
    queue_growth_window: Duration = 900.0
    log_retention: Duration = 31 * 86400.0
    log_error_rate: float = Field(default=0.1, gt=0, description="error log lines per second that alert")
    loki_url: str = "http://loki.monitoring.svc:3100"
    elasticsearch_url: str = "http://elasticsearch.logging.svc:9200"
    pending: dict[str, Duration] = Field(
        default_factory=dict, description="override an alert's `for:` duration, by alert name"
    )
    receivers: dict[str, ReceiverConfig] = Field(default_factory=_default_receivers)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)

    @field_validator("loki_url", "elasticsearch_url")
    @classmethod
    def _service_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return refuse_embedded_password(value).rstrip("/")  # type: ignore[union-attr]

    @field_validator("runbook_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _known_receivers(self) -> MonitoringConfig:
        for name in self.receivers:
            if not _RECEIVER.match(name):
                raise ValueError(f"receiver name '{name}': expected lowercase letters, digits, '-' or '_'")
        wanted = {"routing.page": self.routing.page, "routing.ticket": self.routing.ticket}
        if self.routing.escalation is not None:
            wanted["routing.escalation"] = self.routing.escalation
        for key, name in wanted.items():
            if name not in self.receivers:
                known = ", ".join(sorted(self.receivers)) or "none"
                raise ValueError(f"{key} = '{name}' is not a receiver (known: {known})")
        return self
