"""Grafana dashboards built with grafana-foundation-sdk, every query from catalog specs.

Three dashboards: the service overview (traffic, errors, latency, saturation, health, SLO), jobs
(only when `[jobs]` is configured) and application metrics (one panel per metric of the app
catalog, with a default per metric type). Beside the JSON: a file-provisioning YAML and a
ConfigMap labelled `grafana_dashboard` for the Grafana sidecar.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import LegendDisplayMode, LegendPlacement
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

from pilothouse.catalog import app as app_catalog
from pilothouse.catalog import http_server as http_metrics
from pilothouse.catalog import jobs as job_metrics
from pilothouse.catalog import lifecycle as lifecycle_metrics
from pilothouse.catalog import process as process_metrics
from pilothouse.catalog import protection as protection_metrics
from pilothouse.catalog.slo import NOT_SERVER_ERRORS, SLO_WINDOW, TITLES, budget, budget_left, objectives
from pilothouse.config.model import Config
from pilothouse.generators.monitoring import app_metrics
from pilothouse.generators.monitoring.alerts import HTTP, Plan, recorded_ratio
from pilothouse.generators.monitoring.promql import (
    Matcher,
    quantile,
    rate_sum,
    scraped_label,
    selector,
)
from pilothouse.generators.yaml import dump

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RANGE = "$__rate_interval"


class _Board:
    """One dashboard under construction: scope matchers, variables and panel helpers."""

    def __init__(self, plan: Plan, title: str, uid: str) -> None:
        self.ids = 0
        self.m = (
            Matcher("job", plan.job),
            Matcher("namespace", "$namespace", "=~"),
            Matcher("instance", "$instance", "=~"),
        )
        info = selector(lifecycle_metrics.BUILD_INFO, Matcher("job", plan.job))
        self.board = (
            dash.Dashboard(title)
            .uid(uid)
            .tags(["pilothouse", plan.service])
            .refresh("30s")
            .time("now-3h", "now")
            .timezone("browser")
            .editable()
            .with_variable(dash.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        )
        for name, scoped in (
            ("namespace", info),
            (
                "instance",
                selector(
                    lifecycle_metrics.BUILD_INFO,
                    Matcher("job", plan.job),
                    Matcher("namespace", "$namespace", "=~"),
                ),
            ),
        ):
            self.board.with_variable(
                dash.QueryVariable(name)
                .label(name.capitalize())
                .datasource(DATASOURCE)
                .query(f"label_values({scoped}, {name})")
                .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
                .include_all(True)
                .all_value(".*")
                .multi(True)
            )

    def next_id(self) -> int:
        self.ids += 1
        return self.ids

    def row(self, title: str) -> None:
        self.board.with_row(dash.Row(title).id(self.next_id()))

    @staticmethod
    def legend() -> common_builders.VizLegendOptions:
        return (
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(LegendDisplayMode.LIST)
            .placement(LegendPlacement.BOTTOM)
        )

    @staticmethod
    def query(expr: str, legend: str, ref: int) -> prometheus.Dataquery:
        return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + ref))

    def series(
        self,
        title: str,
        queries: list[tuple[str, str]],
        unit: str = "short",
        description: str = "",
        width: int = 12,
    ) -> None:
        panel = timeseries.Panel().id(self.next_id()).title(title).description(description).unit(unit)
        panel.datasource(DATASOURCE).height(8).span(width).legend(self.legend())
        for ref, (expr, legend) in enumerate(queries):
            panel.with_target(self.query(expr, legend, ref))
        self.board.with_panel(panel)

    def stat(
        self,
        title: str,
        expr: str,
        unit: str = "short",
        legend: str = "",
        width: int = 6,
        description: str = "",
    ) -> None:
        self.board.with_panel(
            stat.Panel()
            .id(self.next_id())
            .title(title)
            .description(description)
            .unit(unit)
            .datasource(DATASOURCE)
            .height(5)
            .span(width)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
            .with_target(self.query(expr, legend, 0).instant())
        )

    def states(self, title: str, expr: str, legend: str, width: int = 12) -> None:
        self.board.with_panel(
            statetimeline.Panel()
            .id(self.next_id())
            .title(title)
            .datasource(DATASOURCE)
            .height(6)
            .span(width)
            .legend(self.legend())
            .with_target(self.query(expr, legend, 0))
        )

    def json(self) -> str:
        return json.dumps(self.board.build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def _overview(config: Config, plan: Plan) -> _Board:
    b = _Board(plan, f"{plan.service} / service overview", f"{plan.service}-overview")
    m, rate_w = b.m, 300.0
    b.row("Traffic and errors")
    b.series(
        "Request rate by route",
        [(f"sum by (http_route) (rate({selector(HTTP, *m, part='count')}[{RANGE}]))", "{{http_route}}")],
        "reqps",
        "Requests per second, from the request duration histogram's count.",
    )
    good = rate_sum(HTTP, (*m, NOT_SERVER_ERRORS), rate_w, (), part="count")
    total = rate_sum(HTTP, m, rate_w, (), part="count")
    b.series(
        "Error ratio (5xx)",
        [(f"1 - ({good} / {total})", "5xx ratio")],
        "percentunit",
        "Share of requests answered with a server error.",
    )
    b.series(
        "Latency p50 / p90 / p99",
        [(quantile(q, HTTP, m, rate_w, ()), f"p{round(q * 100)}") for q in (0.5, 0.9, 0.99)],
        "s",
    )
    b.series(
        "Active requests",
        [(f"sum by (instance) ({selector(http_metrics.HTTP_SERVER_ACTIVE_REQUESTS, *m)})", "{{instance}}")],
    )
    b.series(
        "Refused by protection, by reason",
        [
            (
                f"sum by (reason) (rate({selector(protection_metrics.HTTP_REQUESTS_REFUSED, *m)}[{RANGE}]))",
                "{{reason}}",
            )
        ],
        "reqps",
        "Requests [protection] answered itself: oversized bodies or headers, time limits.",
    )
    b.series(
        "Unhandled exceptions",
        [
            (
                "sum by (response) "
                f"(rate({selector(protection_metrics.HTTP_UNHANDLED_ERRORS, *m)}[{RANGE}]))",
                "{{response}}",
            )
        ],
        "short",
        "problem: answered with a problem+json 500; started: the response had already begun.",
    )
    b.row("Saturation")
    cpu = selector(process_metrics.PROCESS_CPU_SECONDS, *m)
    b.series("CPU (cores)", [(f"rate({cpu}[{RANGE}])", "{{instance}}")], "short", width=6)
    b.series(
        "Resident memory",
        [(selector(process_metrics.PROCESS_RESIDENT_MEMORY, *m), "{{instance}}")],
        "bytes",
        width=6,
    )
    if app_metrics.uses(config, "watch_pool"):
        b.series(
            "Connection pool utilization",
            [
                (
                    f"max by (instance, pool) ({selector(app_catalog.POOL_UTILIZATION, *m)})",
                    "{{instance}} {{pool}}",
                )
            ],
            "percentunit",
            width=6,
        )
    if app_metrics.uses(config, "queue_depth"):
        b.series(
            "Queue depth",
            [(f"sum by (queue) ({selector(app_catalog.QUEUE_DEPTH, *m)})", "{{queue}}")],
            width=6,
        )
    b.row("Health")
    b.states(
        "Readiness checks (1 pass, 0 fail)",
        selector(lifecycle_metrics.READINESS_CHECK_STATUS, *m),
        "{{instance}} {{check}}",
    )
    b.states(
        "Lifecycle state", f"{selector(lifecycle_metrics.LIFECYCLE_STATE, *m)} == 1", "{{instance}} {{state}}"
    )
    b.stat(
        "Build",
        f"count by (version, python_version) ({selector(lifecycle_metrics.BUILD_INFO, *m)})",
        legend="{{version}} (Python {{python_version}})",
        width=12,
        description="Instances per version: two versions mean a rollout is in progress.",
    )
    b.stat("Instances up", f"count({selector(lifecycle_metrics.BUILD_INFO, *m)})", width=12)
    if objectives(config):
        b.row("Service level objectives")
        for kind, target in objectives(config).items():
            allowed = budget(target)
            label = TITLES[kind]
            scope = (Matcher("job", plan.job),)
            b.stat(
                f"Error budget remaining, {label} ({SLO_WINDOW / 86400:g}d)",
                budget_left(config, kind, scope),
                "percentunit",
                width=8,
                description=f"Target {target:.3%}: 100% is an untouched budget, 0% is spent.",
            )
            b.series(
                f"Burn rate, {label}",
                [
                    (f'{recorded_ratio(kind, w)}{{job="{plan.job}"}} / {allowed}', name)
                    for w, name in ((3600.0, "1h"), (21600.0, "6h"), (86400.0, "1d"))
                ],
                "short",
                "1 spends the budget exactly over the SLO window; 14.4 over 1h pages.",
                width=16,
            )
    return b


def _jobs(plan: Plan) -> _Board:
    b = _Board(plan, f"{plan.service} / jobs", f"{plan.service}-jobs")
    m = b.m
    name = scraped_label(job_metrics.JOB_RUNS, "job")
    b.series(
        "Runs by outcome",
        [
            (
                f"sum by ({name}, outcome) (increase({selector(job_metrics.JOB_RUNS, *m)}[{RANGE}]))",
                f"{{{{{name}}}}} {{{{outcome}}}}",
            )
        ],
    )
    b.series(
        "Step duration p95",
        [
            (
                quantile(0.95, job_metrics.JOB_STEP_DURATION, m, 3600, (name, "step")),
                f"{{{{{name}}}}} {{{{step}}}}",
            )
        ],
        "s",
    )
    b.series("Last return code", [(selector(job_metrics.JOB_RETURN_CODE, *m), f"{{{{{name}}}}}")])
    b.series(
        "Step errors",
        [(f"sum by ({name}) (increase({selector(job_metrics.JOB_ERRORS, *m)}[{RANGE}]))", f"{{{{{name}}}}}")],
    )
    b.series(
        "Queue depth and running",
        [
            (f"max({selector(job_metrics.JOB_QUEUE_DEPTH, *m)})", "queued"),
            (f"sum({selector(job_metrics.JOB_RUNNING, *m)})", "running"),
        ],
    )
    b.states("Draining workers", selector(job_metrics.JOB_DRAINING, *m), "{{instance}}")
    return b


def _app(config: Config, plan: Plan) -> _Board | None:
    """One panel per declared application metric; no dashboard when the service declares none."""
    specs = app_metrics.declared_specs(config)
    if not specs:
        return None
    b = _Board(plan, f"{plan.service} / application", f"{plan.service}-app")
    for spec in specs:
        expr, legend, unit = app_metrics.panel_query(spec, b.m, RANGE)
        shown = {"counter": "per second", "histogram": "p99"}.get(spec.type, "max")
        b.series(f"{spec.name} ({shown})", [(expr, legend)], unit, spec.help)
    return b


def boards(config: Config, plan: Plan) -> dict[str, _Board]:
    found = {"overview": _overview(config, plan)}
    app = _app(config, plan)
    if app is not None:
        found["application"] = app
    if config.jobs is not None:
        found["jobs"] = _jobs(plan)
    return found


def render(config: Config, plan: Plan) -> dict[str, str]:
    """Dashboard JSON, the provisioning file, and the sidecar ConfigMap."""
    files: dict[str, Any] = {
        f"grafana/dashboards/{plan.service}-{name}.json": board.json()
        for name, board in boards(config, plan).items()
    }
    provisioning = {
        "apiVersion": 1,
        "providers": [
            {
                "name": plan.service,
                "folder": plan.service,
                "type": "file",
                "disableDeletion": False,
                "updateIntervalSeconds": 30,
                "allowUiUpdates": False,
                "options": {
                    "path": f"/var/lib/grafana/dashboards/{plan.service}",
                    "foldersFromFilesStructure": False,
                },
            }
        ],
    }
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{plan.service}-dashboards",
            "labels": {
                "grafana_dashboard": "1",
                "app.kubernetes.io/name": plan.service,
                "app.kubernetes.io/managed-by": "pilothouse",
            },
            "annotations": {"grafana_folder": plan.service},
        },
        "data": {path.rsplit("/", 1)[1]: text for path, text in sorted(files.items())},
    }
    files["grafana/provisioning/dashboards/pilothouse.yaml"] = dump(provisioning)
    files["kubernetes/grafana-dashboards-configmap.yaml"] = dump(configmap)
    return files
