"""Every metric and label the monitoring bundle queries is declared in the catalog, and a real
scrape of the running demo shop (through a real Prometheus) has each of them."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml

from pilothouse.catalog import app as app_metrics
from pilothouse.config import load_config
from pilothouse.generators.deploy.compose import PROMETHEUS_CONFIG
from pilothouse.generators.deploy.compose import files as compose_files
from pilothouse.generators.monitoring import alerts, generate
from tests.generators.monitoring import engines
from tests.generators.monitoring.promql_refs import bundle_expressions, prometheus_query, references
from tests.generators.monitoring.shop_scrape import (
    SHOP,
    exercise,
    known_series,
    unscraped,
    wait_for_samples,
    write,
)
from tests.helpers import ROOT, SHOP_DIR, ServeProcess, write_config


def test_every_reference_is_declared(tmp_path: Path) -> None:
    config = load_config(SHOP)
    assert config.jobs and config.slo.availability and config.slo.latency, "the shop exercises every option"
    plan = alerts.plan(config)
    root = write(tmp_path, generate(config))
    expressions = bundle_expressions(root)
    for alert in plan.alerts:
        for number, step in enumerate(alert.steps):
            if step.promql:
                expressions[f"runbook {alert.name}#{number}"] = step.promql
    assert any("overview" in where for where in expressions) and any("jobs" in w for w in expressions)
    known = known_series(plan, config)
    for where, expr in expressions.items():
        refs = references(expr)
        assert refs.selectors, f"{where}: selects nothing"
        allowed: set[str] = set()
        for name, matchers in refs.selectors:
            assert name in known, f"{where}: {name} is not in the catalog"
            assert set(matchers) <= {*known[name], "__name__"}, f"{where}: {name}{matchers}"
            allowed.update(known[name])
        assert refs.labels <= allowed, f"{where}: labels {refs.labels - allowed} not declared"


def test_an_undeclared_metric_is_caught() -> None:
    """The checker itself can fail: a made-up metric and a made-up label are both reported."""
    refs = references('sum by (tenant) (rate(shop_orders_total{job="shop"}[5m]))')
    assert refs.selectors == [("shop_orders_total", {"job": "shop"})]
    assert refs.labels == {"tenant"}


@pytest.mark.slow
def test_real_scrape_has_every_queried_series(tmp_path: Path) -> None:
    """Scraped with the generated compose Prometheus config (its job name), only the target
    address swapped for the locally running shop."""
    config = load_config(SHOP)
    plan = alerts.plan(config)
    root = write(tmp_path / "bundle", generate(config))
    expressions = bundle_expressions(root)
    env = {"PILOTHOUSE_JOBS__PATH": str(tmp_path / "jobs.sqlite3")}
    compose = yaml.safe_load(compose_files(config)[PROMETHEUS_CONFIG])["scrape_configs"]
    assert [job["job_name"] for job in compose] == [plan.job]
    with ServeProcess(SHOP, cwd=SHOP_DIR, env=env) as shop:
        compose[0]["static_configs"] = [{"targets": [f"127.0.0.1:{shop.ops_port}"]}]
        prom = engines.prometheus_with(
            tmp_path, compose, [root / "prometheus" / "rules" / f"{plan.service}.rules.yaml"]
        )
        try:
            exercise(shop, env)
            wait_for_samples(prom.url, plan)
            api = f"{prom.url}/api/v1"
            for where, expr in expressions.items():
                answer = httpx.get(f"{api}/query", params={"query": prometheus_query(expr)}, timeout=10)
                assert answer.json()["status"] == "success", f"{where}: Prometheus refused {expr}"
            missing = [
                problem
                for where, expr in expressions.items()
                for problem in unscraped(api, plan, where, expr)
            ]
            assert not missing, "\n".join(missing)
        finally:
            prom.stop()


@pytest.mark.slow
def test_application_helpers_are_scraped(tmp_path: Path, postgres_url: str) -> None:
    """What the shop does not exercise: the application dashboard and the pool and queue alerts,
    against a service calling every helper with a real psycopg pool."""
    config_path = write_config(
        tmp_path,
        """
        [service]
        name = "helpers"
        app = "tests.generators.monitoring.helper_app:app"
        [telemetry]
        access_log = false
        [monitoring]
        helpers = ["unit_of_work", "command", "queue_depth", "watch_pool"]
    """,
    )
    config = load_config(config_path)
    plan = alerts.plan(config)
    root = write(tmp_path / "bundle", generate(config))
    app_series = {name for spec in app_metrics.SPECS for name in spec.series()}
    expressions = {
        where: expr
        for where, expr in bundle_expressions(root).items()
        if any(name in app_series for name, _ in references(expr).selectors)
    }
    assert len(expressions) >= len(app_metrics.SPECS) + 2  # every panel, PoolSaturated, QueueGrowing
    with ServeProcess(config_path, cwd=ROOT, env={"DATABASE_URL": postgres_url}) as service:
        prom = engines.prometheus(tmp_path, plan.job, f"127.0.0.1:{service.ops_port}", [])
        try:
            for _ in range(3):
                assert httpx.get(f"{service.app_url}/work", timeout=10).status_code == 200
            api = f"{prom.url}/api/v1"
            deadline = time.monotonic() + 30
            missing = ["not scraped yet"]
            while missing and time.monotonic() < deadline:
                time.sleep(0.5)
                missing = [
                    problem
                    for where, expr in expressions.items()
                    for problem in unscraped(api, plan, where, expr, exempt={})
                ]
            assert not missing, "\n".join(missing)
        finally:
            prom.stop()
