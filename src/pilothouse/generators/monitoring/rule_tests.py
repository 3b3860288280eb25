"""`promtool test rules` unit tests: every alert driven to firing by one scenario and kept quiet by
another, from the synthetic series its definition carries.

An alert whose firing scenario does not fire (a wrong label, a metric renamed, a threshold that
can never be crossed) fails `promtool test rules` in CI.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pilothouse.durations import format_duration
from pilothouse.generators.monitoring.alerts import Alert, Plan, Scenario
from pilothouse.generators.monitoring.rules import RULES_PATH, rule_annotations, rule_labels
from pilothouse.generators.yaml import dump

TESTS_PATH = "prometheus/tests/{service}.rules.test.yaml"
_LABEL_REF = re.compile(r"\{\{\s*\$labels\.(\w+)\s*\}\}")


def _expand(template: str, labels: dict[str, str]) -> str:
    """What Prometheus renders for `{{ $labels.x }}` (the only template the alerts use)."""
    return _LABEL_REF.sub(lambda m: labels.get(m.group(1), ""), template)


def _case(plan: Plan, alert: Alert, scenario: Scenario, fires: bool) -> dict[str, Any]:
    minutes = math.ceil((alert.pending + alert.lead) / 60)
    expected: list[dict[str, Any]] = []
    if scenario.labels is not None:
        notes = rule_annotations(plan, alert)
        expected.append(
            {
                "exp_labels": {**scenario.labels, **rule_labels(plan, alert)},
                "exp_annotations": {k: _expand(v, scenario.labels) for k, v in notes.items()},
            }
        )
    return {
        "name": f"{alert.name} {'fires' if fires else 'stays quiet'}",
        "interval": "1m",
        "input_series": [
            {"series": s.selector, "values": s.values.format(n=minutes + 5)} for s in scenario.series
        ],
        "alert_rule_test": [
            {"eval_time": format_duration(minutes * 60), "alertname": alert.name, "exp_alerts": expected}
        ],
    }


def render(plan: Plan) -> dict[str, str]:
    """The test file, beside the rules file it loads (`../rules/...`)."""
    rules = RULES_PATH.format(service=plan.service).removeprefix("prometheus/")
    tests = []
    for alert in plan.alerts:
        tests.append(_case(plan, alert, alert.firing, fires=True))
        tests.append(_case(plan, alert, alert.quiet, fires=False))
    document = {"rule_files": [f"../{rules}"], "evaluation_interval": "1m", "tests": tests}
    return {TESTS_PATH.format(service=plan.service): dump(document)}
