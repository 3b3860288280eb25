"""AGENTS.md (and a CLAUDE.md that imports it): the service explained to people and coding
assistants, from the same config, metric catalog and alert plan as the runtime and the other
generators, so it cannot describe a port, metric, alert or runbook that is not there.

Pure: the CLI gathers what needs importing or the parser (job definitions, the command list, the
artifact paths) and passes it in as `Facts`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from pilothouse.catalog import MetricSpec, all_specs
from pilothouse.config.flatten import flatten
from pilothouse.config.model import Config
from pilothouse.config.secret_ref import env_name, mount_path
from pilothouse.durations import format_duration
from pilothouse.generators.monitoring import alerts as alert_plan
from pilothouse.generators.monitoring.logs import log_alerts
from pilothouse.generators.monitoring.promql import SCRAPE_UP, Matcher, quantile, rate_sum, selector
from pilothouse.redaction import redact

CLAUDE = "Claude Code reads CLAUDE.md; this service's context is AGENTS.md, imported here.\n\n@AGENTS.md\n"


@dataclass(frozen=True, slots=True)
class JobFacts:
    name: str
    description: str
    steps: tuple[str, ...]
    params: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Facts:
    """What the CLI found outside the config: jobs, its own commands, the artifact files."""

    jobs: tuple[JobFacts, ...] = ()
    commands: tuple[tuple[str, str], ...] = ()
    artifacts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # directory -> files
    monitoring_dir: str = "monitoring"


def example_query(spec: MetricSpec, job: str) -> str:
    """One useful PromQL per metric, built like the dashboards build theirs."""
    matchers = (Matcher("job", job),)
    if spec.type == "histogram":
        return quantile(0.99, spec, matchers, 300.0, ())
    if spec.type == "counter":
        return rate_sum(spec, matchers, 300.0, ())
    return selector(spec, *matchers)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _runbook(link: str, monitoring_dir: str) -> str:
    return link if "://" in link else f"{monitoring_dir}/{link}"


def _what(config: Config) -> list[str]:
    service = config.service
    lines = [
        f"# {service.name}",
        "",
        f"`{service.name}` {service.version} is an ASGI service run by Pilothouse "
        f"(`pilothouse serve`): app `{service.app or 'not set'}`, with probes, metrics, JSON logs, "
        "graceful drain and secrets handled by Pilothouse from `pilothouse.toml`. Change behaviour "
        "there (or with `PILOTHOUSE_<SECTION>__<FIELD>` variables), not in generated files.",
        "",
    ]
    return lines


def _endpoints(config: Config) -> list[str]:
    s, o, p = config.service, config.ops, config.probes
    return [
        "## Ports and endpoints",
        "",
        "| port | path | what |",
        "|---|---|---|",
        f"| app {s.host}:{s.port} | (the app's routes) | the service itself |",
        f"| ops {o.host}:{o.port} | `GET {p.liveness_path}` | liveness: the process, never a dependency |",
        f"| ops {o.port} | `GET {p.readiness_path}` | readiness: lifecycle state and the checks below |",
        f"| ops {o.port} | `GET {p.startup_path}` | 200 once startup completed |",
        f"| ops {o.port} | `GET {p.status_path}` | lifecycle state, in-flight requests, uptime |",
        f"| ops {o.port} | `GET {p.metrics_path}` | Prometheus metrics (below) |",
        f"| ops {o.port} | `POST /admin/drain`, `POST /admin/undrain` | "
        f"bearer token from `${o.admin_token_env}` |",
        "",
    ]


def _checks(config: Config) -> list[str]:
    if not config.checks:
        return ["## Readiness checks", "", "None: readiness follows the lifecycle state only.", ""]
    lines = ["## Readiness checks", "", "| check | kind | critical |", "|---|---|---|"]
    lines += [f"| {c.name} | {c.kind} | {'yes' if c.critical else 'no (warns)'} |" for c in config.checks]
    return [*lines, ""]


def _settings(config: Config) -> list[str]:
    data = json.loads(redact(config.model_dump_json()))
    lines = [
        "## Configuration (effective values)",
        "",
        "Every key with the value the service runs with (`pilothouse config show`); secrets by name.",
        "",
        "| key | value |",
        "|---|---|",
    ]
    for key, value in flatten(data):
        shown = (
            f"secret:{value['secret']}"
            if isinstance(value, dict) and "secret" in value
            else json.dumps(value)
        )
        lines.append(f"| `{key}` | `{_cell(shown)}` |")
    refs = config.secret_refs()
    if refs:
        lines += [
            "",
            f"Secrets (never in the file; looked up in this order: {', '.join(config.secrets.sources)}):",
            "",
        ]
        lines += [
            f"- `{ref.secret}`: `${env_name(config.service.name, ref)}` or "
            f"`{mount_path(config.secrets.mount_dir, ref)}`{'' if ref.required else ' (optional)'}"
            for ref in dict.fromkeys(refs)
        ]
    return [*lines, ""]


def _metrics(config: Config, job: str) -> list[str]:
    lines = [
        "## Metrics",
        "",
        f"Scraped from `:{config.ops.port}{config.probes.metrics_path}`, job `{job}`.",
        "",
        "| metric | type | series | labels | example PromQL |",
        "|---|---|---|---|---|",
    ]
    for spec in (*all_specs(), SCRAPE_UP):
        lines.append(
            f"| `{spec.name}` | {spec.type} | {', '.join(f'`{s}`' for s in spec.series())} | "
            f"{', '.join(spec.labels) or '—'} | `{_cell(example_query(spec, job))}` |"
        )
    return [*lines, ""]


def _alerts(config: Config, facts: Facts) -> list[str]:
    plan = alert_plan.plan(config)
    lines = [
        "## Alerts and runbooks",
        "",
        "| alert | severity | fires after | runbook | summary |",
        "|---|---|---|---|---|",
    ]
    for alert in (*plan.alerts, *log_alerts(config)):
        link = _runbook(plan.runbook_url(alert), facts.monitoring_dir)
        lines.append(
            f"| {alert.name} | {alert.severity} | {format_duration(alert.pending)} | "
            f"[{alert.name}.md]({link}) | {_cell(alert.summary)} |"
        )
    lines += ["", "Recorded series the alerts use:", "", "| recorded series | expression |", "|---|---|"]
    lines += [f"| `{r.record}` | `{_cell(r.expr)}` |" for r in plan.recordings]
    lines += ["", "Alert expressions:", ""]
    lines += [f"- {a.name}: `{_cell(a.expr)}`" for a in plan.alerts]
    return [*lines, ""]


def _jobs(facts: Facts) -> list[str]:
    if not facts.jobs:
        return []
    lines = ["## Jobs", "", "| job | steps | parameters | what |", "|---|---|---|---|"]
    lines += [
        f"| {j.name} | {', '.join(j.steps)} | {', '.join(j.params) or '—'} | {_cell(j.description) or '—'} |"
        for j in facts.jobs
    ]
    lines += [
        "",
        "Run one with `pilothouse jobs submit NAME` (workers) or `pilothouse jobs run NAME` (here).",
        "",
    ]
    return lines


def _commands(facts: Facts) -> list[str]:
    lines = ["## Commands", "", "Each takes `--config pilothouse.toml` and `--help` shows an example.", ""]
    lines += [f"- `pilothouse {name}`: {_cell(text)}" for name, text in facts.commands]
    return [*lines, ""]


def _artifacts(facts: Facts) -> list[str]:
    lines = ["## Generated artifacts", "", "Regenerate, never edit: each file carries a checksum.", ""]
    for directory, files in sorted(facts.artifacts.items()):
        lines.append(f"- `{directory}/`: {', '.join(f'`{f}`' for f in files)}")
    return [*lines, ""]


def render(config: Config, facts: Facts) -> dict[str, str]:
    """{"AGENTS.md": context, "CLAUDE.md": import of it}; deterministic."""
    job = config.monitoring.job or config.service.name
    sections: Sequence[list[str]] = (
        _what(config),
        _endpoints(config),
        _checks(config),
        _metrics(config, job),
        _alerts(config, facts),
        _jobs(facts),
        _commands(facts),
        _artifacts(facts),
        _settings(config),
    )
    text = "\n".join(line for section in sections for line in section).rstrip("\n") + "\n"
    return {"AGENTS.md": text, "CLAUDE.md": CLAUDE}
