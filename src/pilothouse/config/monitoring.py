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


class MonitoringConfig(Section):
    """Thresholds and routing for the generated monitoring bundle (`pilothouse generate monitoring`)."""

    job: str | None = Field(
        default=None,
        description="the Prometheus `job` label of the service's series (default: service.name); "
        "the ServiceMonitor and the compose Prometheus config set it, rules and panels select it",
    )
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
