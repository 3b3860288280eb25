"""Prometheus rule files from the alert plan: a plain rules file and the same groups as a
`PrometheusRule` for the Prometheus Operator."""

from __future__ import annotations

from typing import Any

from pilothouse.durations import format_duration
from pilothouse.generators.monitoring.alerts import Alert, Plan
from pilothouse.generators.yaml import dump


def rule_labels(plan: Plan, alert: Alert) -> dict[str, str]:
    """Static labels every alert carries: routing (severity) and grouping (service)."""
    return {"service": plan.service, "severity": alert.severity}


def rule_annotations(plan: Plan, alert: Alert) -> dict[str, str]:
    return {
        "description": alert.description,
        "runbook_url": plan.runbook_url(alert),
        "summary": alert.summary,
    }


def _alert_rule(plan: Plan, alert: Alert) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": alert.name, "expr": alert.expr}
    if alert.pending > 0:
        rule["for"] = format_duration(alert.pending)
    rule["labels"] = rule_labels(plan, alert)
    rule["annotations"] = rule_annotations(plan, alert)
    return rule


def groups(plan: Plan) -> list[dict[str, Any]]:
    """Recording rules first (alerts read them), then alerts."""
    return [
        {
            "name": f"{plan.service}.recording",
            "rules": [{"record": r.record, "expr": r.expr} for r in plan.recordings],
        },
        {"name": f"{plan.service}.alerts", "rules": [_alert_rule(plan, a) for a in plan.alerts]},
    ]


RULES_PATH = "prometheus/rules/{service}.rules.yaml"


def render(plan: Plan) -> dict[str, str]:
    """`prometheus/rules/<service>.rules.yaml` and `kubernetes/prometheusrule.yaml`."""
    rule_groups = groups(plan)
    crd = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": f"{plan.service}-rules",
            "labels": {
                "app.kubernetes.io/name": plan.service,
                "app.kubernetes.io/managed-by": "pilothouse",
                "prometheus": "k8s",
                "role": "alert-rules",
            },
        },
        "spec": {"groups": rule_groups},
    }
    return {
        RULES_PATH.format(service=plan.service): dump({"groups": rule_groups}),
        "kubernetes/prometheusrule.yaml": dump(crd),
    }
