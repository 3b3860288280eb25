"""`pilothouse generate monitoring` and `pilothouse validate` as a user runs them, with the real
promtool and amtool; and the properties of the bundle: complete runbooks, file-only secrets,
dashboards in the SDK's schema, config mistakes as one clear line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from pilothouse.validation.monitoring import validate
from tests.helpers import SHOP_DIR, generate_with_hash_seeds, run_cli, write_config

SHOP = SHOP_DIR / "pilothouse.toml"
MINIMAL = """
[service]
name = "tiny"
{extra}
"""


def generated(tmp_path: Path, config: Path = SHOP) -> Path:
    out = tmp_path / "monitoring"
    result = run_cli("generate", "monitoring", "-c", str(config), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def rules_of(root: Path, pattern: str = "prometheus/rules/*.yaml") -> list[dict[str, object]]:
    return [
        rule
        for path in sorted(root.glob(pattern))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def test_generate_then_validate_passes_with_real_tools(tmp_path: Path) -> None:
    out = generated(tmp_path)
    result = run_cli("validate", str(out), "--format", "json", "--strict")
    assert result.returncode == 0, result.stdout + result.stderr
    verdicts = json.loads(result.stdout)
    tools = {v["tool"] for v in verdicts}
    assert tools == {
        "promtool check rules",
        "promtool test rules",
        "amtool check-config",
        "amtool config routes test",
    }
    assert all(v["status"] == "pass" for v in verdicts)
    routes = {v["target"].rsplit("=", 1)[1]: v["detail"] for v in verdicts if "routes" in v["tool"]}
    assert routes == {"critical": "-> pager,pager-secondary", "warning": "-> chat"}


def test_every_alert_has_a_firing_and_a_quiet_case(tmp_path: Path) -> None:
    out = generated(tmp_path)
    alerts = {r["alert"] for r in rules_of(out) if "alert" in r}
    tests = yaml.safe_load((out / "prometheus/tests/shop.rules.test.yaml").read_text())["tests"]
    for alert in alerts:
        cases = [t["alert_rule_test"][0] for t in tests if t["alert_rule_test"][0]["alertname"] == alert]
        assert sorted(bool(c["exp_alerts"]) for c in cases) == [False, True], alert


def test_an_alert_that_cannot_fire_fails_promtool(tmp_path: Path) -> None:
    """Raise HighErrorRatio's threshold out of reach in the rules: its firing case must fail."""
    out = generated(tmp_path)
    rules = out / "prometheus/rules/shop.rules.yaml"
    text = rules.read_text()
    assert "job:pilothouse_slo_errors:ratio_rate5m > 0.05\n" in text
    rules.write_text(
        text.replace(
            "job:pilothouse_slo_errors:ratio_rate5m > 0.05\n", "job:pilothouse_slo_errors:ratio_rate5m > 2\n"
        )
    )
    verdicts = {v.tool: v for v in validate(out)}
    assert verdicts["promtool test rules"].status == "fail"
    assert "HighErrorRatio" in verdicts["promtool test rules"].detail


def test_a_misrouted_severity_fails_amtool(tmp_path: Path) -> None:
    out = generated(tmp_path)
    path = out / "alertmanager/alertmanager.yaml"
    config = yaml.safe_load(path.read_text())
    config["route"]["routes"][-1]["receiver"] = "pager"  # warnings would page
    path.write_text(yaml.safe_dump(config))
    failed = [v for v in validate(out) if v.status == "fail"]
    assert [v.target for v in failed] == ["alertmanager/alertmanager.yaml severity=warning"]


def test_missing_tools_are_reported_not_passed(tmp_path: Path) -> None:
    out = generated(tmp_path)
    env = {"PATH": str(tmp_path / "empty")}
    result = run_cli("validate", str(out), "--format", "json", env=env)
    assert result.returncode == 0
    assert {v["status"] for v in json.loads(result.stdout)} == {"missing"}
    assert run_cli("validate", str(out), "--strict", env=env).returncode == 1


def test_runbooks_cover_every_alert_and_name_real_commands(tmp_path: Path) -> None:
    out = generated(tmp_path)
    rules = rules_of(out) + rules_of(out, "logs/loki-rules/*.yaml")
    alerts = {r["alert"]: r for r in rules if "alert" in r}
    pages = {p.stem for p in (out / "runbooks").glob("*.md")} - {"index"}
    assert pages == set(alerts)
    index = (out / "runbooks/index.md").read_text()
    for name, rule in alerts.items():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert annotations["runbook_url"] == f"runbooks/{name}.md"
        assert f"[{name}]({name}.md)" in index
        page = (out / "runbooks" / f"{name}.md").read_text()
        for section in ("## What it means", "## Impact", "## First checks", "## Mitigation", "## Escalation"):
            assert section in page, (name, section)
        assert str(rule["expr"]) in page
    commands = {
        m.group(1)
        for p in (out / "runbooks").glob("*.md")
        for m in re.finditer(r"pilothouse ([a-z-]+(?: [a-z-]+)?)", p.read_text())
    }
    assert commands
    for command in commands:
        assert run_cli(*command.split(), "--help").returncode == 0, command


def test_runbook_url_pending_and_maintenance_come_from_config(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        MINIMAL.format(
            extra="""
[monitoring]
runbook_base_url = "https://ops.example.test/tiny/"
pending = { ReadinessFailing = "5s" }
maintenance = [{ weekdays = ["saturday", "sunday"], start = "02:00", end = "04:00" }]
"""
        ),
    )
    out = generated(tmp_path, config)
    assert all(v.status == "pass" for v in validate(out)), validate(out)
    alertmanager = yaml.safe_load((out / "alertmanager/alertmanager.yaml").read_text())
    assert alertmanager["route"]["routes"][-1]["mute_time_intervals"] == ["maintenance"]
    assert "saturday, sunday 02:00-04:00 UTC" in (out / "runbooks/index.md").read_text()
    rules = {r["alert"]: r for r in rules_of(out) if "alert" in r}
    assert rules["ReadinessFailing"]["for"] == "5s"
    assert rules["TargetDown"]["for"] == "2m"
    annotations = rules["ReadinessFailing"]["annotations"]
    assert isinstance(annotations, dict)
    assert annotations["runbook_url"] == "https://ops.example.test/tiny/ReadinessFailing.md"
    assert "JobFailures" not in rules and not any(a.startswith("SLO") for a in rules)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[monitoring]\npending = { NoSuchAlert = "1m" }', "monitoring.pending: unknown alert 'NoSuchAlert'"),
        (
            '[slo]\nlatency = { threshold = "300ms", target = 0.99 }',
            "slo.latency.threshold: 300ms is not a bucket",
        ),
        ('[monitoring.receivers.pager]\nkind = "pagerduty"\nrouting_key_file = "key.txt"', "absolute path"),
        ('[monitoring.routing]\npage = "nobody"', "routing.page = 'nobody' is not a receiver"),
    ],
)
def test_config_mistakes_are_one_line_and_exit_2(tmp_path: Path, extra: str, message: str) -> None:
    config = write_config(tmp_path, MINIMAL.format(extra=extra))
    result = run_cli("generate", "monitoring", "-c", str(config), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_alertmanager_holds_file_references_never_keys(tmp_path: Path) -> None:
    out = generated(tmp_path)
    config = yaml.safe_load((out / "alertmanager/alertmanager.yaml").read_text())
    keys = {
        key
        for receiver in config["receivers"]
        for kind, entries in receiver.items()
        if kind != "name"
        for entry in entries
        for key in entry
    }
    assert {"routing_key_file", "api_url_file"} <= keys
    assert not keys & {"routing_key", "service_key", "api_url"}
    assert config["inhibit_rules"] == [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["service"],
        }
    ]
    assert config["route"]["group_by"] == ["service", "alertname"]


def test_dashboards_round_trip_through_the_sdk_schema(tmp_path: Path) -> None:
    out = generated(tmp_path)
    boards = sorted((out / "grafana/dashboards").glob("*.json"))
    assert [b.name for b in boards] == ["shop-application.json", "shop-jobs.json", "shop-overview.json"]
    for board in boards:
        data = json.loads(board.read_text())
        assert json.loads(json.dumps(Dashboard.from_json(data), cls=JSONEncoder)) == data, board.name
        assert all(t["refId"] for p in data["panels"] for t in p.get("targets") or [])
    tampered = {**json.loads(boards[0].read_text()), "panelz": []}
    assert json.loads(json.dumps(Dashboard.from_json(tampered), cls=JSONEncoder)) != tampered
    configmap = yaml.safe_load((out / "kubernetes/grafana-dashboards-configmap.yaml").read_text())
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert sorted(configmap["data"]) == [b.name for b in boards]


def test_overview_has_the_promised_panels(tmp_path: Path) -> None:
    data = json.loads((generated(tmp_path) / "grafana/dashboards/shop-overview.json").read_text())
    titles = {p["title"] for p in data["panels"]}
    assert {
        "Request rate by route",
        "Error ratio (5xx)",
        "Latency p50 / p90 / p99",
        "Active requests",
        "CPU (cores)",
        "Resident memory",
        "Readiness checks (1 pass, 0 fail)",
        "Lifecycle state",
        "Build",
        "Error budget remaining, availability (30d)",
        "Burn rate, availability",
    } <= titles
    assert [v["name"] for v in data["templating"]["list"]] == ["datasource", "namespace", "instance"]
    # The shop calls no pool or queue helper: no panel would ever show data.
    assert not titles & {"Connection pool utilization", "Queue depth"}


HELPERS = """
[monitoring]
helpers = ["queue_depth", "watch_pool"]
[[monitoring.metrics]]
name = "broker_orders_total"
type = "counter"
labels = ["outcome"]
alert_above = 5
[[monitoring.metrics]]
name = "broker_backlog"
type = "gauge"
alert_above = 100
severity = "critical"
"""


def test_panels_and_alerts_follow_what_the_service_declares(tmp_path: Path) -> None:
    """Undeclared: no PoolSaturated, QueueGrowing, pool/queue panels or application dashboard.
    Declared helpers and app metrics get them, and their alerts pass promtool's firing and quiet
    cases (`validate --strict`)."""
    bare = generated(tmp_path / "bare", write_config(tmp_path, MINIMAL.format(extra=""), "bare.toml"))
    assert not {"PoolSaturated", "QueueGrowing"} & {r.get("alert") for r in rules_of(bare)}
    assert not (bare / "grafana/dashboards/tiny-application.json").exists()
    out = generated(tmp_path / "declared", write_config(tmp_path, MINIMAL.format(extra=HELPERS), "x.toml"))
    alerts = {r.get("alert"): r for r in rules_of(out)}
    assert {"PoolSaturated", "QueueGrowing", "BrokerOrdersHigh", "BrokerBacklogHigh"} <= set(alerts)
    assert (
        alerts["BrokerOrdersHigh"]["expr"]
        == 'sum by (outcome) (rate(broker_orders_total{job="tiny"}[5m])) > 5.0'
    )
    assert alerts["BrokerBacklogHigh"]["labels"]["severity"] == "critical"
    app = json.loads((out / "grafana/dashboards/tiny-application.json").read_text())
    exprs = [t["expr"] for p in app["panels"] for t in p.get("targets") or []]
    assert any("broker_orders_total" in e for e in exprs) and any("broker_backlog" in e for e in exprs)
    assert any("pilothouse_queue_depth" in e for e in exprs)
    assert not any("pilothouse_unit_of_work" in e for e in exprs)
    result = run_cli("validate", str(out), "--format", "json", "--strict")
    assert result.returncode == 0, result.stdout + result.stderr


def test_generation_is_deterministic(tmp_path: Path) -> None:
    first, second = generate_with_hash_seeds(tmp_path, "monitoring", "-c", str(SHOP))
    assert first and first == second


def test_log_shipping_bundle(tmp_path: Path) -> None:
    out = generated(tmp_path)
    fluent = yaml.safe_load((out / "logs/fluent-bit.yaml").read_text())
    loki = fluent["pipeline"]["outputs"][0]
    assert loki["name"] == "loki" and loki["labels"] == "service=shop" and loki["label_keys"] == "$level"
    assert "request_id" not in json.dumps(fluent)  # high-cardinality ids stay in the line
    retention = yaml.safe_load((out / "logs/loki-retention.yaml").read_text())
    assert retention["limits_config"]["retention_period"] == "744h"
    log_rules = {r["alert"] for r in rules_of(out, "logs/loki-rules/*.yaml")}
    assert log_rules == {"LogErrorRate", "FatalLogMessage"}
    filebeat = yaml.safe_load((out / "logs/filebeat.yml").read_text())
    assert filebeat["filebeat.inputs"][0]["parsers"][1]["ndjson"]["target"] == ""


def test_regenerating_keeps_hand_edits_unless_forced(tmp_path: Path) -> None:
    out = generated(tmp_path)
    runbook = out / "runbooks/TargetDown.md"
    runbook.write_text(runbook.read_text() + "\nLocal note.\n")
    again = run_cli("generate", "monitoring", "-c", str(SHOP), "--out", str(out))
    assert again.returncode == 1 and "runbooks/TargetDown.md" in again.stderr
    assert "Local note." in runbook.read_text()
    forced = run_cli("generate", "monitoring", "-c", str(SHOP), "--out", str(out), "--force")
    assert forced.returncode == 0 and "Local note." not in runbook.read_text()
