"""`pilothouse validate` runs the real tools over both examples, and each catches a real defect."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from pilothouse.validation import deploy
from tests.helpers import run_cli

SHOP_TOOLS = {
    "kubectl kustomize",
    "kubernetes-validate",
    "checkov",
    "hadolint",
    "check-jsonschema",
    "systemd-analyze verify",
    "systemd-analyze security",
}


def _validate(bundle: Path) -> tuple[int, list[dict[str, str]]]:
    result = run_cli("validate", str(bundle), "--format", "json", "--strict", timeout=300)
    return result.returncode, json.loads(result.stdout)


def test_shop_bundle_passes_every_validator(shop_bundle: Path) -> None:
    code, verdicts = _validate(shop_bundle)
    assert {v["tool"] for v in verdicts} >= SHOP_TOOLS
    assert [v for v in verdicts if v["status"] != "pass"] == []
    assert code == 0
    targets = {v["target"] for v in verdicts if v["tool"] == "kubectl kustomize"}
    assert targets == {"k8s/base", "k8s/dev"}
    security = next(v for v in verdicts if v["tool"] == "systemd-analyze security")
    assert float(re.search(r"exposure (\d+\.\d+)", security["detail"]).group(1)) <= 2.0  # type: ignore[union-attr]


def test_market_stack_passes_every_validator(market_bundle: Path) -> None:
    code, verdicts = _validate(market_bundle)
    assert [v for v in verdicts if v["status"] != "pass"] == []
    assert code == 0
    assert {v["target"] for v in verdicts if v["tool"] == "kubectl kustomize"} == {
        "k8s/base",
        "k8s/dev",
        "k8s/prod",
    }
    assert len([v for v in verdicts if v["tool"] == "hadolint"]) == 4


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_each_tool_catches_a_defect(shop_bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "deploy"
    shutil.copytree(shop_bundle, bad)
    _replace(
        bad / "k8s/base/deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"
    )
    _replace(bad / "k8s/dev/kustomization.yaml", "resources:\n- ../base", "resources:\n- ../nowhere")
    _replace(bad / "k8s/base/service.yaml", "  type: ClusterIP", "  type: ClusterIP\n  colour: blue")
    _replace(bad / "Dockerfile", "USER ", "RUN apt-get update && apt-get install -y curl\nUSER ")
    _replace(bad / "compose.yaml", "  shop:\n", "  shop:\n    restart: 3\n")
    unit = bad / "systemd/shop.service"
    unit.write_text(unit.read_text().split("# Sandboxing")[0] + "[Install]\nWantedBy=multi-user.target\n")
    code, verdicts = _validate(bad)
    failed = {(v["tool"], v["target"]) for v in verdicts if v["status"] == "fail"}
    assert code == 1
    assert ("kubectl kustomize", "k8s/dev") in failed
    assert ("kubernetes-validate", "k8s/base") in failed
    assert ("checkov", "kubernetes") in failed
    assert ("hadolint", "Dockerfile") in failed
    assert ("check-jsonschema", "compose.yaml compose.prod.yaml") in failed
    assert ("systemd-analyze security", "systemd/shop.service") in failed


def test_a_missing_tool_is_reported_missing_never_passing(tmp_path: Path) -> None:
    verdict = deploy._simple("no-such-validator-xyz", [], "Dockerfile", tmp_path, "install it")
    assert (verdict.status, verdict.detail) == ("missing", "install it")
    assert deploy.find_tool("no-such-validator-xyz") is None


def test_nothing_to_validate_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("validate", str(tmp_path))
    assert result.returncode == 2
    assert "nothing to validate" in result.stderr
    missing = run_cli("validate", str(tmp_path / "missing"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"pilothouse: error: {tmp_path / 'missing'}: not a directory (run 'pilothouse generate' first)"
    )
