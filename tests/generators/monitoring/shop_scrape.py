"""Scraping the running demo shop: exercise its features (requests, readiness, one job), then ask
a real Prometheus whether every series a bundle expression selects was scraped."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from pilothouse.catalog import all_specs
from pilothouse.catalog import jobs as job_metrics
from pilothouse.config import Config
from pilothouse.generators.monitoring import alerts
from pilothouse.generators.monitoring.app_metrics import declared_specs
from pilothouse.generators.monitoring.promql import SCRAPE_UP, TARGET_LABELS, series_labels
from tests.generators.monitoring.promql_refs import references
from tests.helpers import SHOP_DIR, ServeProcess, run_cli

SHOP = SHOP_DIR / "pilothouse.toml"
NOT_IN_SHOP_SCRAPE: dict[str, str] = {
    # series name -> why the running shop cannot show it. Empty: every panel and rule of the shop
    # finds its series once requests, readiness and one job have run.
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


def known_series(plan: alerts.Plan, config: Config | None = None) -> dict[str, tuple[str, ...]]:
    """Every queryable series name and the labels it may carry (the app's declared ones too)."""
    own = declared_specs(config) if config is not None else ()
    known = {name: series_labels(spec) for spec in (*all_specs(), SCRAPE_UP, *own) for name in spec.series()}
    known.update({r.record: TARGET_LABELS for r in plan.recordings})
    return known


def exercise(shop: ServeProcess, env: dict[str, str]) -> None:
    """The shop's features once each: requests (found, not found, an order), readiness, one job."""
    with httpx.Client(base_url=shop.app_url, timeout=5) as client:
        for _ in range(5):
            client.get("/items")
            client.get("/items/mug")
            client.get("/items/no-such-sku")
            client.post("/orders", json={"sku": "mug"})
            httpx.get(f"{shop.ops_url}/ready", timeout=5)
    ran = run_cli(
        "jobs",
        "submit",
        "reindex",
        "--param",
        "seconds=0.1",
        "--wait",
        "-c",
        str(SHOP),
        env=env,
        cwd=SHOP_DIR,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr


def unscraped(
    api: str, plan: alerts.Plan, where: str, expr: str, exempt: dict[str, str] = NOT_IN_SHOP_SCRAPE
) -> list[str]:
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


def wait_for_samples(url: str, plan: alerts.Plan, timeout: float = 30) -> None:
    """Until the rules recorded the request rate and a scrape after the job run has its counter."""
    wanted = (alerts.REQUESTS_RECORD, job_metrics.JOB_RUNS.sample_name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answers = [
            httpx.get(
                f"{url}/api/v1/query", params={"query": f'{name}{{job="{plan.job}"}}'}, timeout=5
            ).json()["data"]["result"]
            for name in wanted
        ]
        if all(answers):
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus has not got {wanted} yet")
