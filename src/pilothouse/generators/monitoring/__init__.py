"""The monitoring bundle: rules and their tests, Alertmanager routing, dashboards, runbooks and
log shipping, all from one config and the metric catalog (`pilothouse generate monitoring`)."""

from __future__ import annotations

from pilothouse.config.model import Config
from pilothouse.generators.monitoring import (
    alertmanager,
    alerts,
    dashboards,
    logs,
    rule_tests,
    rules,
    runbooks,
)


def generate(config: Config) -> dict[str, str]:
    """{relative path: content} of the whole bundle; deterministic."""
    plan = alerts.plan(config)
    return {
        **rules.render(plan),
        **rule_tests.render(plan),
        **alertmanager.render(config),
        **dashboards.render(config, plan),
        **runbooks.render(config, plan, logs.log_alerts(config)),
        **logs.render(config, plan),
    }
