"""The Alertmanager configuration: pages to the pager, tickets to chat, escalation of pages nobody
acknowledged, inhibition of warnings while a page is open, and muted warnings in maintenance.

Alertmanager has no "acknowledge": the acknowledgement is a silence. The escalation route waits
`escalate_after` (its group_wait) before its first notification, so a page silenced within that
time never reaches the second receiver. Keys are file references (`*_file`) only.
"""

from __future__ import annotations

from typing import Any

from pilothouse.config.model import Config
from pilothouse.config.monitoring import PagerDutyReceiver, ReceiverConfig, SlackReceiver
from pilothouse.durations import format_duration
from pilothouse.generators.yaml import dump

PATH = "alertmanager/alertmanager.yaml"
ROUTING_TESTS = "alertmanager/routing-tests.yaml"
"""Which receivers each severity must reach, from the config: `pilothouse validate` asks amtool."""
MAINTENANCE = "maintenance"


def _receiver(name: str, receiver: ReceiverConfig) -> dict[str, Any]:
    if isinstance(receiver, PagerDutyReceiver):
        return {
            "name": name,
            "pagerduty_configs": [{"routing_key_file": receiver.routing_key_file, "send_resolved": True}],
        }
    if isinstance(receiver, SlackReceiver):
        return {
            "name": name,
            "slack_configs": [
                {
                    "api_url_file": receiver.api_url_file,
                    "channel": receiver.channel,
                    "send_resolved": True,
                    "title": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} "
                    "({{ .CommonLabels.service }})",
                    "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n"
                    "Runbook: {{ .Annotations.runbook_url }}\n{{ end }}",
                }
            ],
        }
    return {"name": name, "webhook_configs": [{"url": receiver.url, "send_resolved": True}]}


def render(config: Config) -> dict[str, str]:
    mon = config.monitoring
    routing = mon.routing
    critical, warning = ['severity="critical"'], ['severity="warning"']
    routes: list[dict[str, Any]] = [
        {
            "receiver": routing.page,
            "matchers": critical,
            "repeat_interval": format_duration(routing.page_repeat_interval),
            "continue": routing.escalation is not None,
        }
    ]
    if routing.escalation is not None:
        routes.append(
            {
                "receiver": routing.escalation,
                "matchers": critical,
                "group_wait": format_duration(routing.escalate_after),
                "repeat_interval": format_duration(routing.page_repeat_interval),
            }
        )
    ticket: dict[str, Any] = {
        "receiver": routing.ticket,
        "matchers": warning,
        "repeat_interval": format_duration(routing.ticket_repeat_interval),
    }
    if mon.maintenance:
        ticket["mute_time_intervals"] = [MAINTENANCE]
    routes.append(ticket)
    document: dict[str, Any] = {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": routing.ticket,
            "group_by": ["service", "alertname"],
            "group_wait": format_duration(routing.group_wait),
            "group_interval": format_duration(routing.group_interval),
            "repeat_interval": format_duration(routing.ticket_repeat_interval),
            "routes": routes,
        },
        "inhibit_rules": [
            {
                "source_matchers": critical,
                "target_matchers": warning,
                "equal": ["service"],
            }
        ],
        "receivers": [_receiver(name, receiver) for name, receiver in sorted(mon.receivers.items())],
    }
    if mon.maintenance:
        document["time_intervals"] = [
            {
                "name": MAINTENANCE,
                "time_intervals": [
                    {"weekdays": list(w.weekdays), "times": [{"start_time": w.start, "end_time": w.end}]}
                    for w in mon.maintenance
                ],
            }
        ]
    expected = {
        "critical": [routing.page, *([routing.escalation] if routing.escalation else [])],
        "warning": [routing.ticket],
    }
    tests = [
        {
            "labels": {"severity": severity, "service": config.service.name, "alertname": "RoutingTest"},
            "receivers": receivers,
        }
        for severity, receivers in expected.items()
    ]
    return {PATH: dump(document), ROUTING_TESTS: dump({"tests": tests})}
