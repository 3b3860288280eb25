"""Every metric and label the monitoring bundle queries is declared in the catalog, and a real
scrape of the running demo shop (through a real Prometheus) has each of them."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from pilothouse.catalog import all_specs
from pilothouse.catalog import app as app_metrics
from pilothouse.catalog import jobs as job_metrics
from pilothouse.config import load_config
from pilothouse.generators.monitoring import alerts, generate
from pilothouse.generators.monitoring.promql import SCRAPE_UP, TARGET_LABELS, series_labels
from tests.generators.monitoring import engines
from tests.generators.monitoring.promql_refs import bundle_expressions, prometheus_query, references
from tests.helpers import ROOT, SHOP_DIR, ServeProcess, run_cli, write_config

SHOP = SHOP_DIR / "pilothouse.toml"

NOT_IN_SHOP_SCRAPE = {
    # The shop uses none of the application helpers (units of work, protocol commands, queues,
    # pool gauges): test_application_helpers_are_scraped checks them with a service that does.
    **{name: "application helper the shop does not call" for spec in app_metrics.SPECS
       for name in spec.series()},
    # Step errors count abended or timed-out attempts; the shop's jobs succeed.
    **{name: "no job step of the shop fails" for name in job_metrics.JOB_ERRORS.series()},
}
ABSENT_LABELS = {
    # Attached by Kubernetes service discovery; a local static target has none (the dashboards
    # match it with =~".*", which also matches a missing label).
    "namespace",
}


def write(tmp: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text(text)
    return tmp


def known_series(plan: alerts.Plan) -> dict[str, tuple[str, ...]]:
    """Every queryable series name and the labels it may carry."""
    known = {name: series_labels(spec) for spec in (*all_specs(), SCRAPE_UP) for name in spec.series()}
    known.update({r.record: TARGET_LABELS for r in plan.recordings})
    return known


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
    known = known_series(plan)
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
    config = load_config(SHOP)
    plan = alerts.plan(config)
    root = write(tmp_path / "bundle", generate(config))
    expressions = bundle_expressions(root)
    env = {"PILOTHOUSE_JOBS__PATH": str(tmp_path / "jobs.sqlite3")}
    with ServeProcess(SHOP, cwd=SHOP_DIR, env=env) as shop:
        prom = engines.prometheus(tmp_path, plan.job, f"127.0.0.1:{shop.ops_port}",
                                  [root / "prometheus" / "rules" / f"{plan.service}.rules.yaml"])
        try:
            with httpx.Client(base_url=shop.app_url, timeout=5) as client:
                for _ in range(5):
                    client.get("/items")
                    client.get("/items/mug")
                    client.get("/items/no-such-sku")
                    client.post("/orders", json={"sku": "mug"})
                    httpx.get(f"{shop.ops_url}/ready", timeout=5)
            ran = run_cli("jobs", "submit", "reindex", "--param", "seconds=0.1", "--wait", "-c", str(SHOP),
                          env=env, cwd=SHOP_DIR)
            assert ran.returncode == 0, ran.stdout + ran.stderr
            _wait_for_samples(prom.url, plan)
            api = f"{prom.url}/api/v1"
            for where, expr in expressions.items():
                answer = httpx.get(f"{api}/query", params={"query": prometheus_query(expr)}, timeout=10)
                assert answer.json()["status"] == "success", f"{where}: Prometheus refused {expr}"
            missing = [problem for where, expr in expressions.items()
                       for problem in _unscraped(api, plan, where, expr)]
            assert not missing, "\n".join(missing)
        finally:
            prom.stop()


def _unscraped(api: str, plan: alerts.Plan, where: str, expr: str,
               exempt: dict[str, str] = NOT_IN_SHOP_SCRAPE) -> list[str]:
    """What `expr` selects or groups by that the real scrape does not have."""
    refs, seen, problems = references(expr), set[str](), []
    for name, matchers in refs.selectors:
        if name in exempt:
            seen.update(known_series(plan)[name])
            continue
        match = f'{name}{{job="{plan.job}"}}'
        series = httpx.get(f"{api}/series", params={"match[]": match}, timeout=10).json()["data"]
        present = {label for s in series for label in s}
        seen |= present
        if not series or not set(matchers) - ABSENT_LABELS <= present:
            problems.append(f"{where}: {name} with labels {sorted(matchers)} (seen {sorted(present)})")
    if not refs.labels - ABSENT_LABELS <= seen:
        problems.append(f"{where}: grouping labels {sorted(refs.labels - seen)} never scraped")
    return problems


def _wait_for_samples(url: str, plan: alerts.Plan, timeout: float = 30) -> None:
    """Until the rules recorded the request rate and a scrape after the job run has its counter."""
    wanted = (alerts.REQUESTS_RECORD, job_metrics.JOB_RUNS.sample_name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answers = [httpx.get(f"{url}/api/v1/query", params={"query": f'{name}{{job="{plan.job}"}}'},
                             timeout=5).json()["data"]["result"] for name in wanted]
        if all(answers):
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus has not got {wanted} yet")


@pytest.mark.slow
def test_application_helpers_are_scraped(tmp_path: Path, postgres_url: str) -> None:
    """What the shop does not exercise: the application dashboard and the pool and queue alerts,
    against a service calling every helper with a real psycopg pool."""
    config_path = write_config(tmp_path, """
        [service]
        name = "helpers"
        app = "tests.generators.monitoring.helper_app:app"
        [telemetry]
        access_log = false
    """)
    config = load_config(config_path)
    plan = alerts.plan(config)
    root = write(tmp_path / "bundle", generate(config))
    app_series = {name for spec in app_metrics.SPECS for name in spec.series()}
    expressions = {where: expr for where, expr in bundle_expressions(root).items()
                   if any(name in app_series for name, _ in references(expr).selectors)}
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
                missing = [problem for where, expr in expressions.items()
                           for problem in _unscraped(api, plan, where, expr, exempt={})]
            assert not missing, "\n".join(missing)
        finally:
            prom.stop()
