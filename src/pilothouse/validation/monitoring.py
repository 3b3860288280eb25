"""Proving a monitoring bundle with Prometheus' and Alertmanager's own tools: `promtool check
rules` (plain file and the PrometheusRule's groups), `promtool test rules` (every alert fires and
stays quiet as its generated cases say), `amtool check-config`, and `amtool config routes test`
for each case of `routing-tests.yaml` (the receivers the config asked for per severity). Missing
tools are `missing`."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from pilothouse.validation import Verdict, run_tool

_TIMEOUT = 120


def _run(cmd: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_tool(cmd, _TIMEOUT, cwd)


def _detail(proc: subprocess.CompletedProcess[str]) -> str:
    text = (proc.stdout + proc.stderr).strip()
    failing = [
        line.strip()
        for line in text.splitlines()
        if "FAIL" in line or "error" in line.lower() or line.strip().startswith("name:")
    ]
    return " | ".join(failing or text.splitlines()[-1:])[:400]


def _verdict(tool: str, target: str, proc: subprocess.CompletedProcess[str]) -> Verdict:
    return Verdict(
        tool,
        target,
        "pass" if proc.returncode == 0 else "fail",
        "" if proc.returncode == 0 else _detail(proc),
    )


def _rules(root: Path, promtool: str) -> Iterator[Verdict]:
    for rules in sorted((root / "prometheus" / "rules").glob("*.yaml")):
        yield _verdict(
            "promtool check rules",
            str(rules.relative_to(root)),
            _run([promtool, "check", "rules", str(rules)]),
        )
    for tests in sorted((root / "prometheus" / "tests").glob("*.yaml")):
        yield _verdict(
            "promtool test rules",
            str(tests.relative_to(root)),
            _run([promtool, "test", "rules", tests.name], cwd=tests.parent),
        )
    crd = root / "kubernetes" / "prometheusrule.yaml"
    if crd.is_file():
        spec = yaml.safe_load(crd.read_text())["spec"]
        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / "prometheusrule-groups.yaml"
            plain.write_text(yaml.safe_dump(spec))
            yield _verdict(
                "promtool check rules",
                "kubernetes/prometheusrule.yaml (spec)",
                _run([promtool, "check", "rules", str(plain)]),
            )


def _alertmanager(root: Path, amtool: str) -> Iterator[Verdict]:
    path = root / "alertmanager" / "alertmanager.yaml"
    target = str(path.relative_to(root))
    checked = _run([amtool, "check-config", str(path)])
    yield _verdict("amtool check-config", target, checked)
    if checked.returncode != 0:
        return
    cases = path.parent / "routing-tests.yaml"
    if not cases.is_file():
        yield Verdict("amtool config routes test", target, "skipped", "no routing-tests.yaml")
        return
    for case in yaml.safe_load(cases.read_text())["tests"]:
        labels: dict[str, Any] = case["labels"]
        receivers = ",".join(case["receivers"])
        proc = _run(
            [
                amtool,
                "config",
                "routes",
                "test",
                f"--config.file={path}",
                f"--verify.receivers={receivers}",
                *(f"{k}={v}" for k, v in sorted(labels.items())),
            ]
        )
        verdict = _verdict("amtool config routes test", f"{target} severity={labels.get('severity')}", proc)
        if verdict.status == "pass":
            verdict = Verdict(verdict.tool, verdict.target, "pass", f"-> {receivers}")
        yield verdict


def validate(root: Path) -> list[Verdict]:
    return list(verdicts(root))


def verdicts(root: Path) -> Iterator[Verdict]:
    """The verdicts of `validate`, each as soon as its tool finished."""
    if (root / "prometheus" / "rules").is_dir():
        promtool = shutil.which("promtool")
        if promtool:
            yield from _rules(root, promtool)
        else:
            yield Verdict("promtool", "prometheus/", "missing", "install the Debian package 'prometheus'")
    if (root / "alertmanager" / "alertmanager.yaml").is_file():
        amtool = shutil.which("amtool")
        if amtool:
            yield from _alertmanager(root, amtool)
        else:
            yield Verdict("amtool", "alertmanager/", "missing", "install 'prometheus-alertmanager'")
