"""The alerts fire under the Prometheus Operator: the shop's prod overlay, rendered by kustomize,
is scraped by a real Prometheus with the relabeling the operator generates for its ServiceMonitor
(tests/generators/monitoring/operator.py cites the source), and every rule finds its series.

Before `[monitoring].job` was written into the ServiceMonitor, the operator named the job after
the Service (`prod-shop-metrics`): every rule selected `job="shop"` and none could ever fire,
not even TargetDown. TargetMissing (`absent(up{job=...})`) is what notices such a mismatch, and
it must fire once the target is gone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from pilothouse.config import load_config
from pilothouse.generators.monitoring import alerts, generate
from tests.generators.monitoring import engines, operator
from tests.generators.monitoring.promql_refs import bundle_expressions
from tests.generators.monitoring.shop_scrape import SHOP, exercise, unscraped, wait_for_samples, write
from tests.helpers import SHOP_DIR, ServeProcess, one, rendered, run_cli
from tests.jobs.conftest import wait_until

OVERRIDES = {
    "PILOTHOUSE_DEPLOY__SERVICE_MONITOR": "true",
    "PILOTHOUSE_DEPLOY__ENVIRONMENTS__PROD__REPLICAS": "2",
    "PILOTHOUSE_MONITORING__PENDING": '{"TargetMissing": "1s"}',
}


def _api(prom: engines.Engine, path: str, **params: str) -> Any:
    answer = httpx.get(f"{prom.url}/api/v1/{path}", params=params, timeout=10).json()
    assert answer["status"] == "success", answer
    return answer["data"]


def _firing(prom: engines.Engine, name: str) -> bool:
    return any(
        a["labels"]["alertname"] == name and a["state"] == "firing" for a in _api(prom, "alerts")["alerts"]
    )


@pytest.mark.slow
def test_rules_find_their_series_under_operator_labels(tmp_path: Path) -> None:
    config = load_config(SHOP, environ=OVERRIDES)
    plan = alerts.plan(config)
    deploy = tmp_path / "deploy"
    out = run_cli("generate", "deploy", "--config", str(SHOP), "--out", str(deploy), env=OVERRIDES)
    assert out.returncode == 0, out.stderr
    docs = rendered(tmp_path / "deploy", "prod")
    monitor = one(docs, "ServiceMonitor")
    root = write(tmp_path / "bundle", generate(config))
    rules = root / "prometheus" / "rules" / f"{plan.service}.rules.yaml"
    env = {"PILOTHOUSE_JOBS__PATH": str(tmp_path / "jobs.sqlite3")}
    with ServeProcess(SHOP, cwd=SHOP_DIR, env=env) as shop:
        addresses = {"ops": f"127.0.0.1:{shop.ops_port}", "http": f"127.0.0.1:{shop.app_port}"}
        scrape = operator.scrape_config(monitor, docs, addresses)
        assert len(scrape["static_configs"]) == 2, "both Services of the pod are discovered"
        prom = engines.prometheus_with(tmp_path, [scrape], [rules])
        try:
            wait_until(lambda: _api(prom, "targets")["activeTargets"], 30, "a target")
            targets = _api(prom, "targets")["activeTargets"]
            assert len(targets) == 1, "the ServiceMonitor keeps the metrics Service only"
            labels = targets[0]["labels"]
            assert labels["job"] == plan.job == config.prometheus_job == "shop"
            assert (labels["namespace"], labels["service"], labels["endpoint"]) == (
                "shop-prod",
                "prod-shop-metrics",
                "ops",
            )

            exercise(shop, env)
            wait_for_samples(prom.url, plan)
            expressions = {
                where: expr
                for where, expr in bundle_expressions(root).items()
                if where.startswith(rules.name)
            }
            assert {f"{rules.name}:{a.name}" for a in plan.alerts} <= set(expressions)
            missing = [
                problem
                for where, expr in expressions.items()
                for problem in unscraped(f"{prom.url}/api/v1", plan, where, expr)
            ]
            assert not missing, "\n".join(missing)

            def recorded() -> list[str]:
                return [
                    r.record
                    for r in plan.recordings
                    if not _api(prom, "query", query=f'{r.record}{{job="{plan.job}"}}')["result"]
                ]

            wait_until(lambda: not recorded(), 30, "every recording rule to have a series")
            assert not _firing(prom, "TargetMissing") and not _firing(prom, "TargetDown")

            # The target disappears from discovery (a Service renamed, a selector that no longer
            # matches): `up` goes stale, only TargetMissing can tell.
            scrape["static_configs"] = []
            prom.reload(engines.prometheus_config([scrape], [rules]), tmp_path / "prometheus.yml")
            wait_until(lambda: _firing(prom, "TargetMissing"), 30, "TargetMissing to fire")
        finally:
            prom.stop()
