"""Log shipping: Fluent Bit to Loki (with Loki retention and two LogQL alert rules), and a
Filebeat variant for teams on Elasticsearch.

Only low-cardinality fields become Loki labels (`service`, `level`); request, trace and span ids
stay in the JSON line, where LogQL's `| json` reads them without creating a stream per request.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pilothouse.config.model import Config
from pilothouse.durations import format_duration
from pilothouse.generators.monitoring.alerts import Alert, Plan, Scenario, Step
from pilothouse.generators.monitoring.rules import rule_annotations, rule_labels
from pilothouse.generators.yaml import dump

FATAL_MESSAGES = ("Exception in ASGI application", "Application startup failed")
"""What uvicorn logs for an unhandled exception in the app and for a failed startup."""


def _container_logs(service: str) -> str:
    # Kubernetes names container log files <pod>_<namespace>_<container>-<id>.log.
    return f"/var/log/containers/{service}-*_*_{service}-*.log"


def log_alerts(config: Config) -> tuple[Alert, ...]:
    """The LogQL alerts; they share `Alert` with the metric alerts so runbooks cover both."""
    service = config.service.name
    stream = f'{{service="{service}"}}'
    rate = config.monitoring.log_error_rate
    errors = f'sum by (service) (rate({{service="{service}", level=~"error|critical"}}[5m]))'
    fatal_filter = "|".join(FATAL_MESSAGES)
    fatal = f'sum by (service) (count_over_time({stream} |~ "{fatal_filter}" [5m]))'
    quiet = Scenario((), None)
    return (
        Alert(
            name="LogErrorRate",
            severity="warning",
            expr=f"{errors} > {rate}",
            pending=config.monitoring.pending.get("LogErrorRate", 600),
            summary=f"{service} logs more than {rate} errors per second",
            description=f"Lines at level error or critical from {service} exceed {rate}/s "
            "(monitoring.log_error_rate).",
            meaning="The service reports failures in its logs faster than usual.",
            impact="Depends on the failing operation; often failed requests or jobs.",
            steps=(
                Step(
                    "Which loggers log errors",
                    promql=f'sum by (logger) (rate({{service="{service}", '
                    f'level=~"error|critical"}} | json [5m]))',
                ),
                Step(
                    "Recent error lines with their request ids",
                    promql=f'{{service="{service}", level=~"error|critical"}} | json | line_format '
                    '"{{.request_id}} {{.logger}} {{.message}}"',
                ),
                Step("Are requests failing too (Prometheus)", command="see runbook HighErrorRatio"),
            ),
            mitigation=("Follow the request_id of an error line through the logs and traces.",),
            firing=quiet,
            quiet=quiet,
        ),
        Alert(
            name="FatalLogMessage",
            severity="critical",
            expr=f"{fatal} > 0",
            pending=config.monitoring.pending.get("FatalLogMessage", 0),
            summary=f"{service} logged an unhandled exception or a failed startup",
            description=f"A line matching '{fatal_filter}' was logged by {service}.",
            meaning="Code raised an exception nothing handled, or the app could not start.",
            impact="The request failed with a 500, or the instance is not serving at all.",
            steps=(
                Step(
                    "The lines and their exceptions",
                    promql=f'{stream} |~ "{fatal_filter}" | json | line_format "{{{{.exception}}}}"',
                ),
                Step("Is the instance up", command=f"curl -s http://<instance>{config.probes.startup_path}"),
                Step("Did it start with a deploy", command="kubectl rollout history deployment/" + service),
            ),
            mitigation=("Roll back if it started with a deploy; otherwise fix the exception.",),
            firing=quiet,
            quiet=quiet,
        ),
    )


def _loki_rules(plan: Plan, alerts: tuple[Alert, ...]) -> str:
    rules = []
    for alert in alerts:
        rule: dict[str, object] = {"alert": alert.name, "expr": alert.expr}
        if alert.pending:
            rule["for"] = format_duration(alert.pending)
        rule["labels"] = rule_labels(plan, alert)
        rule["annotations"] = rule_annotations(plan, alert)
        rules.append(rule)
    return dump({"groups": [{"name": f"{plan.service}.logs", "rules": rules}]})


def render(config: Config, plan: Plan) -> dict[str, str]:
    service = config.service.name
    mon = config.monitoring
    loki = urlsplit(mon.loki_url)
    fluent_bit = {
        # The `json` parser comes from the parsers file of the official image.
        "service": {
            "flush": 1,
            "log_level": "info",
            "http_server": "on",
            "http_port": 2020,
            "parsers_file": "/fluent-bit/etc/parsers.conf",
        },
        "pipeline": {
            "inputs": [
                {
                    "name": "tail",
                    "tag": f"app.{service}",
                    "path": _container_logs(service),
                    "multiline.parser": "cri",
                    "db": f"/var/fluent-bit/state/{service}.db",
                    "mem_buf_limit": "16MB",
                    "skip_long_lines": "on",
                    "refresh_interval": 5,
                }
            ],
            "filters": [
                {
                    "name": "parser",
                    "match": f"app.{service}",
                    "key_name": "log",
                    "parser": "json",
                    "reserve_data": "on",
                }
            ],
            "outputs": [
                {
                    "name": "loki",
                    "match": f"app.{service}",
                    "host": loki.hostname,
                    "port": loki.port or (443 if loki.scheme == "https" else 80),
                    "tls": "on" if loki.scheme == "https" else "off",
                    "labels": f"service={service}",
                    "label_keys": "$level",
                    "line_format": "json",
                    "remove_keys": "service,level",
                }
            ],
        },
    }
    retention = format_duration(mon.log_retention)
    loki_limits = {
        "limits_config": {"retention_period": retention},
        "compactor": {
            "retention_enabled": True,
            "delete_request_store": "filesystem",
            "working_directory": "/loki/compactor",
        },
    }
    es = urlsplit(mon.elasticsearch_url)
    filebeat = {
        "filebeat.inputs": [
            {
                "type": "filestream",
                "id": f"{service}-containers",
                "paths": [_container_logs(service)],
                "parsers": [
                    {"container": {"format": "cri"}},
                    {"ndjson": {"target": "", "add_error_key": True, "overwrite_keys": True}},
                ],
            }
        ],
        "processors": [{"drop_fields": {"fields": ["agent.ephemeral_id"], "ignore_missing": True}}],
        "output.elasticsearch": {
            "hosts": [f"{es.scheme}://{es.netloc}"],
            "index": f"{service}-logs-%{{+yyyy.MM.dd}}",
        },
        "setup.template.name": f"{service}-logs",
        "setup.template.pattern": f"{service}-logs-*",
        "setup.ilm.enabled": False,
    }
    alerts = log_alerts(config)
    return {
        "logs/fluent-bit.yaml": dump(fluent_bit),
        "logs/loki-retention.yaml": dump(loki_limits),
        f"logs/loki-rules/{service}.logs.rules.yaml": _loki_rules(plan, alerts),
        "logs/filebeat.yml": dump(filebeat),
    }
