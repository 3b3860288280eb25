"""The alert definitions: one record per alert feeds the rules, their promtool tests and the runbooks.

Because the runbook, the unit test and the rule are rendered from the same `Alert`, they cannot
drift apart. Every expression is built from catalog specs (see `promql`), and every alert carries
a firing and a quiet scenario of synthetic series that `rule_tests` turns into `promtool test
rules` cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pilothouse.catalog import MetricSpec
from pilothouse.catalog import app as app_metrics
from pilothouse.catalog import backup as backup_metrics
from pilothouse.catalog import http_server as http_metrics
from pilothouse.catalog import jobs as job_metrics
from pilothouse.catalog import lifecycle as lifecycle_metrics
from pilothouse.catalog import maintenance as maintenance_metrics
from pilothouse.catalog import process as process_metrics
from pilothouse.catalog.slo import SERVER_ERRORS, bad_ratio, budget, latency_le
from pilothouse.config.model import Config
from pilothouse.config.monitoring import AppMetric
from pilothouse.durations import format_duration
from pilothouse.errors import ConfigError
from pilothouse.generators.monitoring.app_metrics import panel_query, spec_of, uses
from pilothouse.generators.monitoring.promql import (
    SCRAPE_UP,
    Matcher,
    quantile,
    rate_sum,
    scraped_label,
    selector,
    window,
)

Severity = Literal["critical", "warning"]
HTTP = http_metrics.HTTP_SERVER_REQUEST_DURATION
SLO_WINDOWS = (300.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0, 259200.0)
"""The SLI windows the burn-rate alerts need (5m 30m 1h 2h 6h 1d 3d)."""


@dataclass(frozen=True, slots=True)
class Series:
    """A synthetic input series for promtool; `values` may use `{n}` for the sample count."""

    selector: str
    values: str


@dataclass(frozen=True, slots=True)
class Scenario:
    series: tuple[Series, ...]
    labels: dict[str, str] | None
    """Labels of the firing alert (without alertname and rule labels); None: must stay quiet."""


@dataclass(frozen=True, slots=True)
class Step:
    """One of the first checks of a runbook: what to look at and the exact query or command."""

    title: str
    promql: str = ""
    command: str = ""


@dataclass(frozen=True, slots=True)
class Alert:
    name: str
    severity: Severity
    expr: str
    pending: float
    summary: str
    description: str
    meaning: str
    impact: str
    steps: tuple[Step, ...]
    mitigation: tuple[str, ...]
    firing: Scenario
    quiet: Scenario
    lead: float = 600.0
    """Seconds of data the scenario needs beyond `pending` before the alert must fire."""


@dataclass(frozen=True, slots=True)
class Recording:
    record: str
    expr: str


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything alerting needs for one service: recording rules, then alerts."""

    service: str
    job: str
    recordings: tuple[Recording, ...]
    alerts: tuple[Alert, ...]
    runbook_base: str | None = None

    def runbook_url(self, alert: Alert) -> str:
        page = f"{alert.name}.md"
        return f"{self.runbook_base}/{page}" if self.runbook_base else f"runbooks/{page}"


def recorded_ratio(kind: str, seconds: float) -> str:
    """Name of a recorded SLI ratio (`job:pilothouse_slo_errors:ratio_rate5m`)."""
    return f"job:pilothouse_slo_{kind}:ratio_rate{format_duration(seconds)}"


P99_RECORD = "job:http_server_request_duration_seconds:p99_rate5m"
REQUESTS_RECORD = "job:http_server_requests:rate5m"


class _Builder:
    """Builds the plan for one config; one method per alert keeps each definition readable."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.mon = config.monitoring
        self.service = config.service.name
        self.job = config.prometheus_job
        self.m = (Matcher("job", self.job),)
        self.instance = "app-0:9090"
        self.ops = f"http://<instance>{config.probes.readiness_path}"

    def pending(self, name: str, default: float) -> float:
        return self.mon.pending.get(name, default)

    def labels(self, **extra: str) -> dict[str, str]:
        return {"job": self.job, "instance": self.instance, **extra}

    def sel(self, spec: MetricSpec, **labels: str) -> str:
        """A concrete test series of `spec` on the test instance (`_part` picks a histogram series)."""
        part = labels.pop("_part", None)
        base = {"job": self.job, "instance": self.instance}
        matchers = [Matcher(k, v) for k, v in {**base, **labels}.items()]
        return selector(spec, *matchers, part=part)

    # -- recording rules ----------------------------------------------------------------------

    def recordings(self) -> tuple[Recording, ...]:
        rules = [
            Recording(REQUESTS_RECORD, rate_sum(HTTP, self.m, 300, ("job",), part="count")),
            Recording(P99_RECORD, quantile(0.99, HTTP, self.m, 300, ("job",))),
        ]
        slo = self.config.slo
        windows = SLO_WINDOWS if slo.availability else (300.0,)
        for seconds in windows:
            ratio = bad_ratio(self.config, "errors", self.m, seconds, ("job",))
            rules.append(Recording(recorded_ratio("errors", seconds), ratio))
        if slo.latency is not None:
            for seconds in SLO_WINDOWS:
                ratio = bad_ratio(self.config, "slow", self.m, seconds, ("job",))
                rules.append(Recording(recorded_ratio("slow", seconds), ratio))
        return tuple(rules)

    def latency_le(self) -> str:
        return latency_le(self.config)

    # -- alerts -------------------------------------------------------------------------------

    def target_down(self) -> Alert:
        up = selector(SCRAPE_UP, *self.m)
        return Alert(
            name="TargetDown",
            severity="critical",
            expr=f"{up} == 0",
            pending=self.pending("TargetDown", 120),
            summary="Prometheus cannot scrape {{ $labels.instance }} of " + self.service,
            description="The metrics endpoint of {{ $labels.instance }} (job {{ $labels.job }}) "
            "has not answered a scrape: the process is down, hung or unreachable.",
            meaning="Prometheus could not scrape the ops port of one instance.",
            impact="That instance is probably not serving; the others carry its traffic.",
            steps=(
                Step("Which targets are down", promql=up),
                Step(
                    "Is the process alive (liveness)",
                    command=f"curl -s http://<instance>{self.config.probes.liveness_path}",
                ),
                Step(
                    "Recent lifecycle of the process",
                    command=f"curl -s http://<instance>{self.config.probes.status_path}",
                ),
            ),
            mitigation=(
                "Restart the instance if liveness fails.",
                "Check network policies between Prometheus and the ops port.",
            ),
            firing=Scenario((Series(self.sel(SCRAPE_UP), "0x{n}"),), self.labels()),
            quiet=Scenario((Series(self.sel(SCRAPE_UP), "1x{n}"),), None),
        )

    def target_missing(self) -> Alert:
        """TargetDown needs an `up` series to compare; when discovery finds no target of the job
        (a wrong job label, a ServiceMonitor that selects nothing) only `absent` notices."""
        up = selector(SCRAPE_UP, *self.m)
        other = selector(SCRAPE_UP, Matcher("job", f"not-{self.job}"), Matcher("instance", self.instance))
        return Alert(
            name="TargetMissing",
            severity="critical",
            expr=f"absent({up})",
            pending=self.pending("TargetMissing", 300),
            summary=f"Prometheus has no target of job {self.job} ({self.service})",
            description=f'No target with job="{self.job}" exists: service discovery finds no '
            "instance, or they are scraped under another job label, so no other alert of "
            f"{self.service} can fire.",
            meaning="Prometheus does not scrape the service at all.",
            impact="The service is unmonitored: outages, errors and slowness go unnoticed.",
            steps=(
                Step(
                    "Which jobs Prometheus has (is the service there under another name)",
                    promql="count by (job) (up)",
                ),
                Step(
                    "Is the ServiceMonitor selecting the metrics Service",
                    command="kubectl get servicemonitor,service -l app.kubernetes.io/component=metrics -A",
                ),
                Step(
                    "Are pods running and ready",
                    command=f"kubectl get pods -l app.kubernetes.io/name={self.service} -A",
                ),
            ),
            mitigation=(
                "Fix the scrape configuration so the target appears with job "
                f'"{self.job}" ([monitoring].job).',
                "If the service is gone on purpose, remove its rules.",
            ),
            firing=Scenario((Series(other, "1x{n}"),), {"job": self.job}),
            quiet=Scenario((Series(self.sel(SCRAPE_UP), "1x{n}"),), None),
        )

    def readiness_failing(self, critical: bool) -> Alert:
        spec = lifecycle_metrics.READINESS_CHECK_STATUS
        flag = "true" if critical else "false"
        group = ("job", "instance") if critical else ("job", "instance", "check")
        expr = f"min by ({', '.join(group)}) ({selector(spec, *self.m, Matcher('critical', flag))}) == 0"
        name = "ReadinessFailing" if critical else "ReadinessDegraded"
        sample = self.sel(spec, check="dependency", critical=flag)
        fired = self.labels() if critical else self.labels(check="dependency")
        what = "a critical readiness check" if critical else "non-critical check {{ $labels.check }}"
        return Alert(
            name=name,
            severity="critical" if critical else "warning",
            expr=expr,
            pending=self.pending(name, 60 if critical else 600),
            summary=f"{{{{ $labels.instance }}}} of {self.service} fails {what}",
            description=f"{what.capitalize()} fails on {{{{ $labels.instance }}}}: "
            + ("the instance is out of the load balancer." if critical else "it keeps serving, degraded."),
            meaning="A dependency check behind readiness fails."
            if critical
            else "A non-critical dependency check fails; readiness still passes.",
            impact="Instances failing readiness receive no traffic; if all fail, the service is down."
            if critical
            else "Features depending on that dependency may be degraded.",
            steps=(
                Step("Which checks fail, where", promql=f"{selector(spec, *self.m)} == 0"),
                Step(
                    "The readiness body names the failing check and its error", command=f"curl -s {self.ops}"
                ),
                Step(
                    "Check latency (a slow dependency times out)",
                    promql=quantile(
                        0.99, lifecycle_metrics.READINESS_CHECK_DURATION, self.m, 300, ("instance", "check")
                    ),
                ),
            ),
            mitigation=(
                "Fix or fail over the dependency named in the readiness body.",
                "If the check itself is wrong, correct [[checks]] in pilothouse.toml.",
            ),
            firing=Scenario((Series(sample, "0x{n}"),), fired),
            quiet=Scenario((Series(sample, "1x{n}"),), None),
        )

    def high_latency(self) -> Alert:
        threshold = self.mon.latency_p99
        limit = format_duration(threshold)
        lo_le, hi_le = repr(threshold / 2), repr(threshold * 4)

        def buckets(below: str) -> tuple[Series, ...]:
            """Observations between threshold/2 and 4x threshold; `below` of them under threshold/2."""
            labels = {
                "http_request_method": "GET",
                "http_route": "/items",
                "http_response_status_code": "200",
            }
            return (
                Series(self.sel(HTTP, _part="bucket", le=lo_le, **labels), below),
                Series(self.sel(HTTP, _part="bucket", le=hi_le, **labels), "0+10x{n}"),
                Series(self.sel(HTTP, _part="bucket", le="+Inf", **labels), "0+10x{n}"),
            )

        return Alert(
            name="HighLatencyP99",
            severity="warning",
            expr=f"{P99_RECORD} > {threshold}",
            pending=self.pending("HighLatencyP99", 300),
            summary=f"{self.service} p99 latency above {limit}",
            description=f"The 99th percentile of request duration of {self.service} has been above "
            f"{limit} (monitoring.latency_p99) for a while.",
            meaning=f"One request in a hundred takes longer than {limit}.",
            impact="Slow pages or timeouts for users; callers may retry and add load.",
            steps=(
                Step(
                    "p99 by route: is it one route or all",
                    promql=quantile(0.99, HTTP, self.m, 300, ("http_route",)),
                ),
                Step(
                    "Traffic: did load change",
                    promql=rate_sum(HTTP, self.m, 300, ("http_route",), part="count"),
                ),
                Step(
                    "Saturation: pool utilization",
                    promql=f"max by (instance, pool) ({selector(app_metrics.POOL_UTILIZATION, *self.m)})",
                )
                if uses(self.config, "watch_pool")
                else Step(
                    "Saturation: CPU per instance",
                    promql=f"rate({selector(process_metrics.PROCESS_CPU_SECONDS, *self.m)}[5m])",
                ),
            ),
            mitigation=(
                "Scale out if CPU or pools are saturated.",
                "Roll back the last deploy if latency rose with it.",
            ),
            firing=Scenario(buckets("0x{n}"), {"job": self.job}),
            quiet=Scenario(buckets("0+10x{n}"), None),
        )

    def high_error_ratio(self) -> Alert:
        limit = self.mon.error_ratio
        errors = recorded_ratio("errors", 300)
        labels = {"http_request_method": "GET", "http_route": "/items"}
        ok = self.sel(HTTP, _part="count", http_response_status_code="200", **labels)
        bad = self.sel(HTTP, _part="count", http_response_status_code="500", **labels)
        return Alert(
            name="HighErrorRatio",
            severity="critical",
            expr=f"{errors} > {limit}",
            pending=self.pending("HighErrorRatio", 300),
            summary=f"{self.service} answers more than {limit:.0%} of requests with 5xx",
            description=f"More than {limit:.1%} (monitoring.error_ratio) of the requests to "
            f"{self.service} failed with a server error over the last 5 minutes.",
            meaning="The service itself fails requests (status 5xx).",
            impact="Users see errors.",
            steps=(
                Step(
                    "Errors by route and status",
                    promql=rate_sum(
                        HTTP,
                        (*self.m, SERVER_ERRORS),
                        300,
                        ("http_route", "http_response_status_code"),
                        part="count",
                    ),
                ),
                Step("Readiness of dependencies", command=f"curl -s {self.ops}"),
                Step(
                    "Error log lines of the last minutes (Loki)",
                    command=f'logcli query \'{{service="{self.service}", level="error"}}\' --since=15m',
                ),
            ),
            mitigation=(
                "Roll back the last deploy if errors started with it.",
                "Fail over or restore the dependency named in the logs.",
            ),
            firing=Scenario((Series(ok, "0+10x{n}"), Series(bad, "0+10x{n}")), {"job": self.job}),
            quiet=Scenario((Series(ok, "0+10x{n}"), Series(bad, "0x{n}")), None),
        )

    def pool_saturated(self) -> Alert:
        spec = app_metrics.POOL_UTILIZATION
        limit = self.mon.pool_utilization
        sample = self.sel(spec, pool="db")
        return Alert(
            name="PoolSaturated",
            severity="warning",
            expr=f"max by (job, instance, pool) ({selector(spec, *self.m)}) > {limit}",
            pending=self.pending("PoolSaturated", 300),
            summary="Pool {{ $labels.pool }} of {{ $labels.instance }} is "
            f"more than {limit:.0%} in use",
            description="Connection pool {{ $labels.pool }} on {{ $labels.instance }} has been above "
            f"{limit:.0%} utilization (monitoring.pool_utilization): callers soon wait for connections.",
            meaning="Nearly every connection of the pool is lent out.",
            impact="Requests queue for a connection: latency rises, then timeouts.",
            steps=(
                Step("Utilization per pool", promql=f"max by (instance, pool) ({selector(spec, *self.m)})"),
                Step(
                    "Connections in use vs maximum",
                    promql=f"sum by (pool) ({selector(app_metrics.POOL_CONNECTIONS_IN_USE, *self.m)})",
                ),
                Step("Latency impact", promql=P99_RECORD),
            ),
            mitigation=(
                "Look for slow queries holding connections.",
                "Raise the pool maximum if the database has headroom, or scale out.",
            ),
            firing=Scenario((Series(sample, "0.95x{n}"),), self.labels(pool="db")),
            quiet=Scenario((Series(sample, "0.5x{n}"),), None),
        )

    def queue_growing(self, spec_name: str) -> Alert:
        is_jobs = spec_name == "jobs"
        spec = job_metrics.JOB_QUEUE_DEPTH if is_jobs else app_metrics.QUEUE_DEPTH
        name = "JobQueueGrowing" if is_jobs else "QueueGrowing"
        span = self.mon.queue_growth_window
        depth = selector(spec, *self.m)
        sample = self.sel(spec) if is_jobs else self.sel(spec, queue="orders")
        what = "the job queue" if is_jobs else "queue {{ $labels.queue }}"
        return Alert(
            name=name,
            severity="warning",
            expr=f"deriv({depth}{window(span)}) > 0 and {depth} > 0",
            pending=self.pending(name, span),
            summary=f"{what.capitalize()} of {self.service} keeps growing",
            description=f"The depth of {what} on {{{{ $labels.instance }}}} has grown for "
            f"{format_duration(span)} (monitoring.queue_growth_window): consumers do not keep up.",
            meaning="Work arrives faster than it is processed.",
            impact="Work is delayed; eventually memory or storage runs out.",
            steps=(
                Step("Depth over time", promql=depth),
                *(
                    (
                        Step(
                            "Processing rate (jobs finished)",
                            promql=rate_sum(job_metrics.JOB_RUNS, self.m, 300, ("outcome",)),
                        ),
                    )
                    if is_jobs
                    else (
                        Step(
                            "Processing rate (units of work)",
                            promql=rate_sum(
                                app_metrics.UNIT_OF_WORK_EXECUTIONS, self.m, 300, ("unit", "outcome")
                            ),
                        ),
                    )
                    if uses(self.config, "unit_of_work")
                    else ()
                ),
                Step("Are workers draining, how many jobs run and wait", command="pilothouse jobs status")
                if is_jobs
                else Step("Are consumers draining or not ready", command=f"curl -s {self.ops}"),
            ),
            mitigation=("Scale out consumers.", "Find the slow or failing consumer step and fix it."),
            firing=Scenario(
                (Series(sample, "0+5x{n}"),), self.labels() if is_jobs else self.labels(queue="orders")
            ),
            quiet=Scenario((Series(sample, "10x{n}"),), None),
            lead=span + 300,
        )

    def job_failures(self) -> Alert:
        spec = job_metrics.JOB_RUNS
        job_label = scraped_label(spec, "job")
        failed = Matcher("outcome", "failed|lost", "=~")
        sample = self.sel(spec, outcome="failed", **{job_label: "nightly"})
        return Alert(
            name="JobFailures",
            severity="warning",
            expr=f"{rate_sum(spec, (*self.m, failed), 900, ('job', job_label), func='increase')} > 0",
            pending=self.pending("JobFailures", 0),
            summary=f"Job {{{{ $labels.{job_label} }}}} of {self.service} failed",
            description=f"Job {{{{ $labels.{job_label} }}}} had failed or lost runs in the last 15 minutes.",
            meaning="A job run ended failed (a step abended or timed out) or was lost with its worker.",
            impact="Whatever the job produces (reports, syncs, cleanups) is missing or late.",
            steps=(
                Step(
                    "Runs by outcome, and the failed runs themselves",
                    promql=rate_sum(spec, self.m, 3600, (job_label, "outcome"), func="increase"),
                    command="pilothouse jobs list --state finished --limit 20",
                ),
                Step(
                    "Step errors",
                    promql=rate_sum(job_metrics.JOB_ERRORS, self.m, 3600, (job_label,), func="increase"),
                ),
                Step(
                    "Last return code per job, then the steps of a failed run",
                    promql=selector(job_metrics.JOB_RETURN_CODE, *self.m),
                    command="pilothouse jobs show <id>",
                ),
            ),
            mitigation=("Read the failed run's step log and rerun the job once the cause is fixed.",),
            firing=Scenario((Series(sample, "0+1x{n}"),), {"job": self.job, job_label: "nightly"}),
            quiet=Scenario((Series(sample, "0x{n}"),), None),
        )

    def schedule_not_succeeding(self) -> Alert:
        last = job_metrics.SCHEDULE_LAST_SUCCESS
        window = job_metrics.SCHEDULE_SUCCESS_WINDOW
        by = "max by (job, schedule)"
        age = f"(time() - {by} ({selector(last, *self.m)}))"
        expr = f"{age} > {by} ({selector(window, *self.m)})"
        return Alert(
            name="ScheduleNotSucceeding",
            severity="warning",
            expr=expr,
            pending=self.pending("ScheduleNotSucceeding", 0),
            summary=f"Schedule {{{{ $labels.schedule }}}} of {self.service} has not succeeded in its period",
            description="No run of schedule {{ $labels.schedule }} finished ok within its longest period "
            "plus misfire_grace.",
            meaning="A scheduled job did not run (no worker, lease not taken, runs forbidden by a hung "
            "previous run, missed) or it ran and failed.",
            impact="Whatever the schedule maintains (backups, reports, cleanups) is getting stale.",
            steps=(
                Step("Age of the last success against the allowed window", promql=expr.replace(" > ", " / ")),
                Step("Next and last fire, last success, missed runs", command="pilothouse jobs schedules"),
                Step("Missed runs per schedule", promql=selector(job_metrics.SCHEDULE_MISSED, *self.m)),
                Step("The failed runs", command="pilothouse jobs list --state finished --limit 20"),
            ),
            mitigation=(
                "If runs fail, read the failed run's steps (`pilothouse jobs show <id>`), fix the cause, "
                "then run it once by hand: `pilothouse jobs run <job>`.",
                "If nothing fires, check that a worker runs (`pilothouse jobs status`) and [jobs].scheduler.",
            ),
            firing=Scenario(
                (
                    Series(self.sel(last, schedule="nightly"), "0x{n}"),
                    Series(self.sel(window, schedule="nightly"), "600x{n}"),
                ),
                {"job": self.job, "schedule": "nightly"},
            ),
            quiet=Scenario(
                (
                    Series(self.sel(last, schedule="nightly"), "0+60x{n}"),
                    Series(self.sel(window, schedule="nightly"), "600x{n}"),
                ),
                None,
            ),
            lead=900,
        )

    def backup_too_old(self) -> Alert:
        assert self.config.backup is not None
        limit = self.config.backup.alert_after
        spec = backup_metrics.BACKUP_LAST_SUCCESS
        age = f"time() - max by (job, target) ({selector(spec, *self.m)})"
        return Alert(
            name="BackupTooOld",
            severity="critical",
            expr=f"{age} > {limit:g}",
            pending=self.pending("BackupTooOld", 0),
            summary=f"No good backup of {{{{ $labels.target }}}} ({self.service}) in "
            f"{format_duration(limit)}",
            description="The newest complete backup run (manifest written) that saved target "
            f"{{{{ $labels.target }}}} is older than {format_duration(limit)} ([backup].alert_after).",
            meaning="Backups are failing or not running: the recovery point keeps moving back.",
            impact="A disaster now would lose everything written since the last good backup.",
            steps=(
                Step("Age of the last good backup per target", promql=age),
                Step(
                    "The backup runs and their failed steps", command="pilothouse jobs list --state finished"
                ),
                Step("Is the backup scheduled and firing", command="pilothouse jobs schedules"),
                Step("Run one now and read its steps", command="pilothouse backup run"),
            ),
            mitigation=(
                "Fix the failing step (repository reachable, password, disk, database) and run "
                "`pilothouse backup run`; then `pilothouse backup verify`.",
            ),
            firing=Scenario(
                (Series(self.sel(spec, target="db"), "0x{n}"),), {"job": self.job, "target": "db"}
            ),
            quiet=Scenario((Series(self.sel(spec, target="db"), "0+60x{n}"),), None),
            lead=limit + 600,
        )

    def restore_test_failing(self) -> Alert:
        spec = backup_metrics.RESTORE_TEST_FAILING
        expr = f"max by (job) ({selector(spec, *self.m)}) == 1"
        return Alert(
            name="RestoreTestFailing",
            severity="warning",
            expr=expr,
            pending=self.pending("RestoreTestFailing", 0),
            summary=f"The restore test of {self.service} is failing",
            description="The newest pilothouse.backup-restore-test run did not end ok: the latest "
            "backup could not be restored into scratch or did not match its manifest.",
            meaning="The backups may not be restorable.",
            impact="Until fixed, a restore in a disaster may fail or restore wrong data.",
            steps=(
                Step("The failed drill and its error", command="pilothouse jobs list --state finished"),
                Step("Run the drill by hand", command="pilothouse backup restore-test"),
                Step("Check the repository", command="pilothouse backup verify"),
            ),
            mitigation=(
                "Fix the cause (a damaged repository: restore it from the offsite copy; a "
                "checksum mismatch: take a new backup now), then rerun the drill.",
            ),
            firing=Scenario((Series(self.sel(spec), "1x{n}"),), {"job": self.job}),
            quiet=Scenario((Series(self.sel(spec), "0x{n}"),), None),
        )

    def certificate_expiring(self) -> Alert:
        spec = maintenance_metrics.CERTIFICATE_EXPIRING
        warning = format_duration(self.config.maintenance.certificate_warning)
        expr = f"max by (job, certificate) ({selector(spec, *self.m)}) == 1"
        return Alert(
            name="CertificateExpiring",
            severity="warning",
            expr=expr,
            pending=self.pending("CertificateExpiring", 0),
            summary=f"Certificate {{{{ $labels.certificate }}}} of {self.service} needs renewal",
            description="The newest pilothouse.certificates check of {{ $labels.certificate }} did not "
            f"end ok: it expires within {warning} ([maintenance].certificate_warning), has expired, "
            "or could not be read.",
            meaning="A certificate the service relies on is about to expire (or already has).",
            impact="When it expires, clients refuse the TLS connection: the service is down for them.",
            steps=(
                Step(
                    "Which certificates, and what the check said",
                    command="pilothouse jobs list --state finished",
                ),
                Step("Check again now", command="pilothouse jobs run pilothouse.certificates"),
            ),
            mitigation=(
                "Renew the certificate (the [maintenance].renew_command, e.g. `certbot renew`), "
                "reload what serves it, then run the check again: the alert clears when it "
                "ends ok.",
            ),
            firing=Scenario(
                (Series(self.sel(spec, certificate="web"), "1x{n}"),), {"job": self.job, "certificate": "web"}
            ),
            quiet=Scenario((Series(self.sel(spec, certificate="web"), "0x{n}"),), None),
        )

    def security_updates(self) -> Alert:
        """The security-patch runbook: SecurityUpdatesAvailable, from `pilothouse.updates`."""
        spec = maintenance_metrics.UPDATES_PENDING
        expr = f"max by (job, kind) ({selector(spec, *self.m, Matcher('scope', 'security'))}) == 1"
        service, version = self.service, self.config.service.version or "<version>"
        image = self.config.deploy.image or self.service
        return Alert(
            name="SecurityUpdatesAvailable",
            severity="warning",
            expr=expr,
            pending=self.pending("SecurityUpdatesAvailable", 0),
            summary=f"Security updates of {{{{ $labels.kind }}}} packages are pending for {service}",
            description="The newest pilothouse.updates check found {{ $labels.kind }} packages with a "
            "newer release that fixes a known vulnerability of the installed version (Python: the "
            "index's `vulnerabilities`; apt: an upgrade from a *-security suite).",
            meaning="The service runs a package with a known, already fixed vulnerability.",
            impact="Until patched, the vulnerability can be exploited; the fix is already published.",
            steps=(
                Step(
                    "Which packages, the versions and the advisories (the step log)",
                    command="pilothouse jobs run pilothouse.updates",
                ),
                Step("Which kinds have security updates pending", promql=expr.removesuffix(" == 1")),
                Step(
                    "Debian upgrades from security suites",
                    command="apt-get -s upgrade --with-new-pkgs | grep -i security",
                ),
                Step("What the daily report listed", command="pilothouse jobs run pilothouse.report"),
            ),
            mitigation=(
                "Python, in the image: raise the pin (requirements, constraints or uv.lock) to the fixed "
                f"release, then rebuild without cache so the base image's patches come too: `pilothouse "
                f"build --no-cache --tag {image}:{version}-1`; check it with `pilothouse smoke --image "
                f"{image}:{version}-1`, push it and roll it out (Kubernetes: set the image, "
                f"`kubectl rollout status deployment/{service}`; compose: `docker compose -f "
                "compose.prod.yaml up -d`). Roll back by deploying the previous tag.",
                "Python, on a systemd host: `pilothouse install systemd --upgrade --version "
                f"{version}-1 --package '{service}=={version}' --package '<distribution>>=<fixed>'` "
                "builds a new virtualenv beside the current one and switches to it; "
                "`pilothouse install systemd --rollback` switches back if it misbehaves.",
                "Debian packages on the host: `apt-get update && apt-get upgrade --with-new-pkgs` (new "
                "packages an upgrade needs, as a kernel's new ABI, come too; or let "
                f"unattended-upgrades do it), then `systemctl restart {service}.service` so the "
                "service loads the patched libraries; in an image they come with the rebuild above.",
                "Verify: `pilothouse status` (ready), then `pilothouse jobs run pilothouse.updates`: "
                "the alert clears when its *-security steps end ok.",
            ),
            firing=Scenario(
                (
                    Series(self.sel(spec, kind="python", scope="security"), "1x{n}"),
                    Series(self.sel(spec, kind="python", scope="all"), "1x{n}"),
                ),
                {"job": self.job, "kind": "python"},
            ),
            quiet=Scenario(
                (
                    Series(self.sel(spec, kind="python", scope="security"), "0x{n}"),
                    Series(self.sel(spec, kind="python", scope="all"), "1x{n}"),
                ),
                None,
            ),
        )

    def app_metric_alert(self, metric: AppMetric) -> Alert:
        """`[[monitoring.metrics]]` with `alert_above`: the panel's query over 5m, above the limit."""
        assert metric.alert_above is not None
        spec, limit = spec_of(metric), metric.alert_above
        expr, _, _ = panel_query(spec, self.m, "5m")
        name = "".join(part.capitalize() for part in spec.name.split("_")) + "High"
        sample = self.sel(spec, **{label: "x" for label in spec.labels})
        fired = {scraped_label(spec, label): "x" for label in spec.labels}
        # promtool samples once a minute: a counter growing by `step` a minute has rate step/60.
        high, low = (
            (f"0+{limit * 120 + 1}x{{n}}", "0x{n}")
            if spec.type == "counter"
            else (f"{limit * 2 + 1}x{{n}}", f"{limit - 1}x{{n}}")
        )
        what = "per second " if spec.type == "counter" else ""
        return Alert(
            name=name,
            severity=metric.severity,
            expr=f"{expr} > {limit}",
            pending=self.pending(name, metric.pending),
            summary=f"{spec.name} of {self.service} {what}above {limit}",
            description=f"{spec.name} has been above {limit} {what}(monitoring.metrics alert_above): "
            f"{spec.help}",
            meaning=f"The application metric {spec.name} crossed the limit the service declared.",
            impact="Whatever the service counts with this metric is outside its expected range.",
            steps=(
                Step(f"{spec.name} over time", promql=expr),
                Step("Readiness of dependencies", command=f"curl -s {self.ops}"),
            ),
            mitigation=(
                "Read the service's logs around the time the metric rose.",
                "If the limit is wrong, change alert_above in [[monitoring.metrics]].",
            ),
            firing=Scenario((Series(sample, high),), fired),
            quiet=Scenario((Series(sample, low),), None),
        )

    def requests_dropped(self) -> Alert:
        spec = http_metrics.HTTP_SERVER_REQUESTS_DROPPED
        expr = f"increase({selector(spec, *self.m)}[1h]) > 0"
        return Alert(
            name="RequestsDroppedAtShutdown",
            severity="warning",
            expr=expr,
            pending=self.pending("RequestsDroppedAtShutdown", 0),
            summary=f"{self.service} cut in-flight requests at shutdown",
            description="{{ $labels.instance }} still had requests in flight when "
            "lifecycle.drain_timeout ran out; they were cancelled.",
            meaning="Graceful shutdown did not finish in time.",
            impact="Some users got errors during a deploy or scale-down.",
            steps=(
                Step("Dropped requests per instance", promql=expr.removesuffix(" > 0")),
                Step(
                    "Slowest routes (candidates for the cut)",
                    promql=quantile(0.99, HTTP, self.m, 3600, ("http_route",)),
                ),
                Step("The configured budget", command="pilothouse config show"),
            ),
            mitigation=("Raise lifecycle.drain_timeout above the slowest route's p99.",),
            firing=Scenario((Series(self.sel(spec), "0+1x{n}"),), self.labels()),
            quiet=Scenario((Series(self.sel(spec), "0x{n}"),), None),
        )

    def burn(self, kind: str, fast: bool) -> Alert:
        slo = self.config.slo
        if kind == "errors":
            assert slo.availability is not None
            target, title = slo.availability, "availability"
        else:
            assert slo.latency is not None
            target, title = slo.latency.target, "latency"
        allowed = budget(target)
        pairs = (
            ((3600, 300, 14.4), (21600, 1800, 6.0)) if fast else ((86400, 7200, 3.0), (259200, 21600, 1.0))
        )
        expr = " or ".join(
            f"({recorded_ratio(kind, long)} > ({factor} * {allowed}) and "
            f"{recorded_ratio(kind, short)} > ({factor} * {allowed}))"
            for long, short, factor in pairs
        )
        name = f"SLO{title.capitalize()}BudgetBurn{'Fast' if fast else 'Slow'}"
        labels = {"http_request_method": "GET", "http_route": "/items"}
        if kind == "errors":
            ok = self.sel(HTTP, _part="count", http_response_status_code="200", **labels)
            bad = self.sel(HTTP, _part="count", http_response_status_code="500", **labels)
            fire = (Series(ok, "0+10x{n}"), Series(bad, "0+10x{n}"))
            calm = (Series(ok, "0+10x{n}"), Series(bad, "0x{n}"))
        else:
            count = self.sel(HTTP, _part="count", http_response_status_code="200", **labels)
            le = self.sel(
                HTTP, _part="bucket", le=self.latency_le(), http_response_status_code="200", **labels
            )
            fire = (Series(count, "0+10x{n}"), Series(le, "0x{n}"))
            calm = (Series(count, "0+10x{n}"), Series(le, "0+10x{n}"))
        windows = " and ".join(f"{format_duration(a)}/{format_duration(b)} at {f}x" for a, b, f in pairs)
        return Alert(
            name=name,
            severity="critical" if fast else "warning",
            expr=expr,
            pending=self.pending(name, 120 if fast else 900),
            summary=f"{self.service} burns its {title} error budget "
            + ("fast: page" if fast else "steadily: ticket"),
            description=f"The {title} SLO ({target:.3%}) error budget is being spent at "
            f"{windows} the sustainable rate (multi-window, multi-burn-rate).",
            meaning=f"At this rate the {title} budget of the SLO window runs out "
            + ("within days." if fast else "before the window ends."),
            impact="Users already see errors or slow responses; more will if nothing changes.",
            steps=(
                Step("Burn over the short windows", promql=f"{recorded_ratio(kind, 300)} / {allowed}"),
                Step(
                    "Which routes contribute",
                    promql=rate_sum(HTTP, (*self.m, SERVER_ERRORS), 3600, ("http_route",), part="count")
                    if kind == "errors"
                    else quantile(0.99, HTTP, self.m, 3600, ("http_route",)),
                ),
                Step("Readiness of dependencies", command=f"curl -s {self.ops}"),
            ),
            mitigation=(
                "Roll back or fail over first, investigate after.",
                "If the SLO itself is wrong, change [slo] in pilothouse.toml.",
            ),
            firing=Scenario(fire, {"job": self.job}),
            quiet=Scenario(calm, None),
            lead=3900 if fast else 7500,
        )

    def alerts(self) -> tuple[Alert, ...]:
        alerts = [
            self.target_down(),
            self.target_missing(),
            self.readiness_failing(critical=True),
            self.readiness_failing(critical=False),
            self.high_latency(),
            self.high_error_ratio(),
            *([self.pool_saturated()] if uses(self.config, "watch_pool") else []),
            *([self.queue_growing("app")] if uses(self.config, "queue_depth") else []),
            self.requests_dropped(),
            *(self.app_metric_alert(m) for m in self.mon.metrics if m.alert_above is not None),
        ]
        if self.config.jobs is not None:
            alerts += [self.job_failures(), self.queue_growing("jobs")]
            if self.config.jobs.schedules:
                alerts.append(self.schedule_not_succeeding())
            if self.config.backup is not None:
                alerts += [self.backup_too_old(), self.restore_test_failing()]
            if self.config.maintenance.certificates:
                alerts.append(self.certificate_expiring())
            if self.config.maintenance.updates is not None:
                alerts.append(self.security_updates())
        if self.config.slo.availability is not None:
            alerts += [self.burn("errors", fast=True), self.burn("errors", fast=False)]
        if self.config.slo.latency is not None:
            alerts += [self.burn("slow", fast=True), self.burn("slow", fast=False)]
        return tuple(alerts)


def plan(config: Config) -> Plan:
    """The recording rules and alerts for `config`; raises ConfigError on impossible settings."""
    builder = _Builder(config)
    alerts = builder.alerts()
    unknown = sorted(set(config.monitoring.pending) - {a.name for a in alerts})
    if unknown:
        known = ", ".join(a.name for a in alerts)
        raise ConfigError(f"monitoring.pending: unknown alert '{unknown[0]}' (known: {known})")
    return Plan(
        builder.service, builder.job, builder.recordings(), alerts, config.monitoring.runbook_base_url
    )
