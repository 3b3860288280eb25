"""`pilothouse.report`: the daily operations report, Markdown and JSON, from the job store (runs and
failures in the window, backup age per target, the last restore test, schedules, certificates),
the service's readiness, the error budget left of each `[slo]` objective, the updates available
(when `[maintenance.updates]` is set: checked when the report is made, the same check as
`pilothouse.updates`, so the webhook is the update notification) and, when
`[maintenance].prometheus` is set, the alerts firing now; disk use of the places the service
keeps state. Written to `[maintenance].report_dir` and/or POSTed (JSON) to `report_webhook`.

Readiness comes from Prometheus when `[maintenance].prometheus` is set and scrapes the service
(`up` and `pilothouse_readiness_check_status` of its job, `[monitoring].job`: every instance,
every check), else from the service's own ops port (`GET <[ops].host:port><readiness_path>`, a
5 s timeout; a wildcard host is asked on loopback); when neither answers it is "unknown" with the
reasons, never an error. The SLO budget left is `1 - bad_ratio / (1 - objective)` over the SLO
window (30 days), queried from Prometheus with the expressions the recording rules and the
dashboard use (`pilothouse.catalog.slo`); without Prometheus, or without traffic, it is unknown.

RC 4 when something needs attention (a failed run, a backup older than `[backup].alert_after`, a
failing restore test or certificate, an alert firing, a service not ready, a spent error budget,
a security update pending, an update check that could not check).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import httpx

from pilothouse.catalog import lifecycle as lifecycle_metrics
from pilothouse.catalog.promql import SCRAPE_UP, Matcher, selector
from pilothouse.catalog.slo import SLO_WINDOW, TITLES, budget_left, objectives
from pilothouse.config.model import Config
from pilothouse.errors import ConfigError, OperationError
from pilothouse.jobs.context import StepContext
from pilothouse.jobs.definition import OK, WARNING, Job, Param

REPORT = "pilothouse.report"
GOOD = ("ok", "warning")


def _places(config: Config) -> dict[str, str]:
    """Where the service keeps state, by what it is (for disk use)."""
    places: dict[str, str] = {}
    if config.jobs is not None and config.jobs.url is None and config.source is not None:
        store = Path(config.jobs.path)
        places["job store"] = str((store if store.is_absolute() else config.source.parent / store).parent)
    if config.backup is not None:
        if not config.backup.remote:
            places["backup repository"] = config.backup.repository
        for target in config.backup.targets:
            if target.path:
                places[f"backup target {target.name}"] = target.path
    if config.maintenance.report_dir:
        places["reports"] = config.maintenance.report_dir
    return places


def _disk(places: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for what, path in sorted(places.items()):
        probe = Path(path)
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        usage = shutil.disk_usage(probe)
        out.append(
            {
                "what": what,
                "path": path,
                "used_ratio": round(usage.used / usage.total, 4),
                "free_bytes": usage.free,
            }
        )
    return out


PROMETHEUS_TIMEOUT = 30.0
OPS_TIMEOUT = 5.0
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    """An instant query's result vector; OperationError with the reason when it fails."""
    try:
        reply = httpx.get(
            f"{url.rstrip('/')}/api/v1/query", params={"query": expr}, timeout=PROMETHEUS_TIMEOUT
        )
        body = reply.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise OperationError(f"Prometheus at {url}: {type(exc).__name__}: {exc}") from None
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        raise OperationError(f"Prometheus at {url}: {error or f'answered {reply.status_code}'}")
    return list(body["data"]["result"])


def _readiness_from_prometheus(config: Config, url: str) -> dict[str, Any] | str:
    """Readiness of every scraped instance of the service's job; a reason string when unknown."""
    job = Matcher("job", config.prometheus_job)
    try:
        targets = _query(url, selector(SCRAPE_UP, job))
        checks = _query(url, selector(lifecycle_metrics.READINESS_CHECK_STATUS, job))
    except OperationError as exc:
        return str(exc)
    if not targets:
        return f"Prometheus at {url} scrapes no target with job {config.prometheus_job!r}"
    down = sorted(t["metric"].get("instance", "") for t in targets if float(t["value"][1]) != 1)
    failing = sorted(
        (
            {
                "check": c["metric"].get("check", ""),
                "critical": c["metric"].get("critical") == "true",
                "instance": c["metric"].get("instance", ""),
            }
            for c in checks
            if float(c["value"][1]) != 1
        ),
        key=lambda f: (f["check"], f["instance"]),
    )
    ready = not down and not any(f["critical"] for f in failing)
    return {
        "status": "ready" if ready else "not ready",
        "source": "prometheus",
        "instances": len(targets),
        "down": down,
        "failing": failing,
    }


def _ops_url(config: Config) -> str:
    host = WILDCARD_HOSTS.get(config.ops.host, config.ops.host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.ops.port}{config.probes.readiness_path}"


def _readiness_from_ops(config: Config) -> dict[str, Any] | str:
    """Readiness as the service's own ops port answers it; a reason string when unknown."""
    url = _ops_url(config)
    try:
        reply = httpx.get(url, timeout=OPS_TIMEOUT)
        body = reply.json()
    except (httpx.HTTPError, ValueError) as exc:
        return f"ops endpoint {url}: {type(exc).__name__}: {exc}"
    if reply.status_code not in (200, 503) or not isinstance(body, dict):
        return f"ops endpoint {url}: answered {reply.status_code}"
    checks = body.get("checks") or {}
    return {
        "status": "ready" if reply.status_code == 200 else "not ready",
        "source": "ops",
        "url": url,
        "state": body.get("state", ""),
        "reason": body.get("reason", ""),
        "failing": sorted(
            (
                {"check": name, "critical": bool(c.get("critical")), "error": c.get("error", "")}
                for name, c in checks.items()
                if c.get("status") != "pass"
            ),
            key=lambda f: f["check"],
        ),
    }


def readiness(config: Config) -> dict[str, Any]:
    """The service's readiness from the first source that knows it (Prometheus, then the ops port);
    "unknown" with every source's reason when none does."""
    reasons = []
    if config.maintenance.prometheus:
        found = _readiness_from_prometheus(config, config.maintenance.prometheus)
        if isinstance(found, dict):
            return found
        reasons.append(found)
    found = _readiness_from_ops(config)
    if isinstance(found, dict):
        return found
    return {"status": "unknown", "source": None, "reasons": [*reasons, found]}


def slo_budgets(config: Config) -> dict[str, dict[str, Any]]:
    """The error budget left of each `[slo]` objective over the SLO window (None when unknown)."""
    found: dict[str, dict[str, Any]] = {}
    url = config.maintenance.prometheus
    for kind, objective in objectives(config).items():
        entry: dict[str, Any] = {
            "objective": objective,
            "window_days": SLO_WINDOW / 86400,
            "budget_left": None,
        }
        if not url:
            entry["reason"] = "no [maintenance].prometheus to query"
        else:
            try:
                result = _query(url, budget_left(config, kind, (Matcher("job", config.prometheus_job),)))
            except OperationError as exc:
                entry["reason"] = str(exc)
            else:
                number = float(result[0]["value"][1]) if result else float("nan")
                if number == number:  # not NaN: there were requests in the window
                    entry["budget_left"] = round(number, 6)
                else:
                    entry["reason"] = f"no requests of job {config.prometheus_job!r} in the window"
        found[TITLES[kind]] = entry
    return found


def _firing(url: str) -> list[dict[str, str]]:
    try:
        body = httpx.get(f"{url.rstrip('/')}/api/v1/alerts", timeout=30).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise OperationError(f"Prometheus at {url}: reading alerts failed: {exc}") from None
    return [
        {
            "alert": a["labels"].get("alertname", ""),
            "severity": a["labels"].get("severity", ""),
            "since": a.get("activeAt", ""),
        }
        for a in body.get("data", {}).get("alerts", [])
        if a.get("state") == "firing"
    ]


def collect(config: Config, hours: float, now: float | None = None) -> dict[str, Any]:
    """The report's facts."""
    from pilothouse.backup.job import BACKUP, RESTORE_TEST
    from pilothouse.jobs.store import open_store
    from pilothouse.maintenance.certificates import CERTIFICATES

    now = now or time.time()
    since = now - hours * 3600
    store = open_store(config)
    try:
        finished = [j for j in store.list_jobs("finished", limit=10_000) if (j.finished_at or 0) >= since]
        runs: dict[str, dict[str, Any]] = {}
        for j in finished:
            entry = runs.setdefault(j.name, {"runs": 0, "failed": 0, "seconds": 0.0})
            entry["runs"] += 1
            entry["failed"] += j.outcome not in GOOD
            entry["seconds"] += (j.finished_at or 0) - (j.started_at or j.finished_at or 0)
        for entry in runs.values():
            entry["mean_seconds"] = round(entry.pop("seconds") / entry["runs"], 3)
        failures = [
            {"id": j.id, "job": j.name, "outcome": j.outcome, "rc": j.max_rc, "error": j.error}
            for j in finished
            if j.outcome not in GOOD
        ]
        backups = {
            name.removeprefix("target-"): round(now - at, 1)
            for name, at in store.step_successes(BACKUP, "manifest").items()
            if name.startswith("target-")
        }
        drill = store.last_finished(RESTORE_TEST)
        certs = {
            name.removeprefix("cert-"): outcome
            for name, outcome in store.latest_step_outcomes(CERTIFICATES).items()
        }
        schedules = [
            {"name": s.name, "last_success": s.last_success, "missed": s.missed}
            for s in store.schedule_states()
        ]
    finally:
        store.close()
    report: dict[str, Any] = {
        "service": config.service.name,
        "host": socket.gethostname(),
        "generated_at": now,
        "window_hours": hours,
        "jobs": runs,
        "failures": failures,
        "backup_age_seconds": backups,
        "restore_test": None if drill is None else {"outcome": drill[0], "finished_at": drill[1]},
        "certificates": certs,
        "schedules": schedules,
        "disk": _disk(_places(config)),
        "readiness": readiness(config),
        "slo": slo_budgets(config),
    }
    if config.maintenance.updates is not None:
        from pilothouse.maintenance.updates import check_all

        report["updates"] = check_all(config)
    if config.maintenance.prometheus:
        report["alerts_firing"] = _firing(config.maintenance.prometheus)
    report["attention"] = attention(config, report)
    return report


def attention(config: Config, report: dict[str, Any]) -> list[str]:
    """What needs a person, one line each."""
    found = [f"job {f['job']} #{f['id']} ended {f['outcome']}" for f in report["failures"]]
    if config.backup is not None:
        limit = config.backup.alert_after
        for target in config.backup.targets:
            age = report["backup_age_seconds"].get(target.name)
            if age is None or age > limit:
                found.append(
                    f"backup of {target.name}: " + ("never" if age is None else f"{age / 3600:.1f} h old")
                )
    ready = report["readiness"]
    if ready["status"] == "not ready":
        why = [f"instance {i} down" for i in ready.get("down", [])]
        why += [f"check {f['check']} failing" for f in ready["failing"] if f["critical"]]
        why += [ready["reason"]] if ready.get("reason") else []
        found.append(f"service not ready ({ready['source']}): {', '.join(why) or ready.get('state', '')}")
    found += [
        f"SLO {name}: error budget overspent ({entry['budget_left']:.1%} left)"
        for name, entry in report["slo"].items()
        if entry["budget_left"] is not None and entry["budget_left"] < 0
    ]
    drill = report["restore_test"]
    if drill is not None and drill["outcome"] not in GOOD:
        found.append(f"restore test ended {drill['outcome']}")
    found += [
        f"certificate {name}: {outcome}"
        for name, outcome in report["certificates"].items()
        if outcome != "ok"
    ]
    for kind, found_updates in sorted(report.get("updates", {}).items()):
        if found_updates["error"]:
            found.append(f"updates ({kind}): cannot check: {found_updates['error']}")
        security = [u["name"] for u in found_updates["updates"] if u["security"]]
        if security:
            found.append(f"security updates pending ({kind}): {', '.join(security)}")
        if kind == "image" and found_updates["updates"]:
            found.append(f"newer image published: {found_updates['updates'][0]['name']}")
    found += [f"alert {a['alert']} ({a['severity']}) firing" for a in report.get("alerts_firing", [])]
    return found


def markdown(report: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(report["generated_at"]))
    lines = [f"# Operations report: {report['service']}, {when}", ""]
    lines += ["## Needs attention", ""]
    lines += [f"- {item}" for item in report["attention"]] or ["- nothing"]
    lines += ["", "## Readiness", "", _readiness_line(report["readiness"])]
    lines += [
        f"- {f['check']}{' (critical)' if f['critical'] else ''} failing"
        + (f" on {f['instance']}" if f.get("instance") else "")
        + (f": {f['error']}" if f.get("error") else "")
        for f in report["readiness"].get("failing", [])
    ]
    if report["slo"]:
        lines += ["", "## SLO error budget left", "", "| SLO | objective | window | budget left |"]
        lines += ["|---|---|---|---|"]
        lines += [
            f"| {name} | {e['objective']:.3%} | {e['window_days']:g} d | "
            + ("unknown: " + e["reason"] if e["budget_left"] is None else f"{e['budget_left']:.1%}")
            + " |"
            for name, e in report["slo"].items()
        ]
    lines += [
        "",
        f"## Jobs in the last {report['window_hours']:g} h",
        "",
        "| job | runs | failed | mean s |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {r['runs']} | {r['failed']} | {r['mean_seconds']} |"
        for name, r in sorted(report["jobs"].items())
    ]
    lines += ["", "## Backups", "", "| target | age (h) |", "|---|---|"]
    lines += [f"| {t} | {age / 3600:.1f} |" for t, age in sorted(report["backup_age_seconds"].items())]
    drill = report["restore_test"]
    lines += ["", f"Restore test: {'never run' if drill is None else drill['outcome']}", ""]
    if report["certificates"]:
        lines += (
            ["## Certificates", ""]
            + [f"- {n}: {o}" for n, o in sorted(report["certificates"].items())]
            + [""]
        )
    if "updates" in report:
        lines += _updates_lines(report["updates"])
    lines += ["## Disk", "", "| what | path | used | free GiB |", "|---|---|---|---|"]
    lines += [
        f"| {d['what']} | {d['path']} | {d['used_ratio']:.0%} | {d['free_bytes'] / 2**30:.1f} |"
        for d in report["disk"]
    ]
    if "alerts_firing" in report:
        lines += ["", "## Alerts firing", ""]
        lines += [
            f"- {a['alert']} ({a['severity']}) since {a['since']}" for a in report["alerts_firing"]
        ] or ["- none"]
    return "\n".join(lines) + "\n"


def _updates_lines(updates: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["## Updates available", ""]
    for kind, found in sorted(updates.items()):
        said = f"cannot check: {found['error']}" if found["error"] else f"{len(found['updates'])} pending"
        lines.append(f"- {kind}: {found['checked']} checked, {said}")
    rows = [u for found in updates.values() for u in found["updates"]]
    if rows:
        lines += ["", "| kind | package | installed | available | security |", "|---|---|---|---|---|"]
        lines += [
            f"| {u['kind']} | {u['name']} | {u['installed']} | {u['available']} | "
            + (
                ("yes: " + ", ".join(u["advisories"]))
                if u["advisories"]
                else "yes"
                if u["security"]
                else ""
                if u["advisories_known"]
                else "unknown"
            )
            + " |"
            for u in sorted(rows, key=lambda u: (not u["security"], u["kind"], u["name"]))
        ]
    return [*lines, ""]


def _readiness_line(ready: dict[str, Any]) -> str:
    if ready["status"] == "unknown":
        return "Status: unknown (" + "; ".join(ready["reasons"]) + ")"
    where = (
        f"{ready['instances']} instance(s) scraped by Prometheus"
        if ready["source"] == "prometheus"
        else f"its ops endpoint {ready['url']}"
    )
    return f"Status: {ready['status']}, from {where}"


def deliver(config: Config, report: dict[str, Any]) -> list[str]:
    """Write and/or post the report; where it went."""
    section = config.maintenance
    where = []
    if section.report_dir:
        out = Path(section.report_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = "report-" + time.strftime("%Y-%m-%d", time.gmtime(report["generated_at"]))
        for suffix, text in (
            (".json", json.dumps(report, indent=2, sort_keys=True)),
            (".md", markdown(report)),
        ):
            part = out / f".{stem}{suffix}.part"
            part.write_text(text)
            part.replace(out / f"{stem}{suffix}")
            where.append(str(out / f"{stem}{suffix}"))
    if section.report_webhook is not None:
        from pilothouse.secrets import SecretResolver

        url = SecretResolver(config).get(section.report_webhook)
        try:
            reply = httpx.post(url, json=report, timeout=30)
            reply.raise_for_status()
        except httpx.HTTPError as exc:
            raise OperationError(f"report: posting to the webhook failed: {type(exc).__name__}") from None
        where.append("the webhook")
    return where


def report_job(config: Config) -> Job:
    job = Job(
        REPORT,
        {"hours": Param(float, default=24.0, help="the window the report covers")},
        description="the operations report (Markdown and JSON) to [maintenance].report_dir or its webhook",
    )

    @job.step("report", idempotent=True, retries=1)
    async def run(ctx: StepContext) -> int:
        if not config.maintenance.report_dir and config.maintenance.report_webhook is None:
            raise ConfigError(f"{config.source}: set [maintenance].report_dir or report_webhook")
        report = await asyncio.to_thread(collect, config, ctx.params["hours"])
        where = await asyncio.to_thread(deliver, config, report)
        for item in report["attention"]:
            ctx.log.warning("needs attention: %s", item)
        ctx.log.info("report written to %s", ", ".join(where))
        return WARNING if report["attention"] else OK

    return job
