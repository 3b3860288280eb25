"""`pilothouse generate TARGET --dry-run | --diff`: what would change, nothing written; `--diff`
exits 1 when something would change (as `git diff --exit-code`), 0 when the bundle is current."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import SHOP_DIR, run_cli, write_config

SHOP = SHOP_DIR / "pilothouse.toml"


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("target", ["monitoring", "deploy"])
def test_dry_run_and_diff_write_nothing(tmp_path: Path, target: str) -> None:
    out = tmp_path / "out"
    dry = run_cli("generate", target, "-c", str(SHOP), "--out", str(out), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert not out.exists()
    lines = dry.stdout.splitlines()
    assert lines[-1].endswith(f"would change in {out} (dry run: nothing written)")
    assert all(line.startswith("create  ") for line in lines[:-1])

    diff = run_cli("generate", target, "-c", str(SHOP), "--out", str(out), "--diff")
    assert diff.returncode == 1, diff.stderr
    assert not out.exists()
    created = [line.split()[1] for line in lines[:-1]]
    assert [line[len("+++ b/") :] for line in diff.stdout.splitlines() if line.startswith("+++ ")] == created

    written = run_cli("generate", target, "-c", str(SHOP), "--out", str(out))
    assert written.returncode == 0, written.stderr
    before = snapshot(out)
    assert len(created) == len(before) - 1  # and the manifest
    again = run_cli("generate", target, "-c", str(SHOP), "--out", str(out), "--diff")
    assert (again.returncode, again.stdout) == (0, "")
    current = run_cli("generate", target, "-c", str(SHOP), "--out", str(out), "--dry-run")
    assert current.stdout == f"{out}: up to date (dry run: nothing written)\n"


def test_diff_shows_a_change_as_git_apply_reads_it(tmp_path: Path) -> None:
    """The diff of a config change, applied with `git apply` to the old bundle, gives exactly
    the bundle `generate` writes from the new config (deleted files included)."""
    config = write_config(tmp_path, '[service]\nname = "tiny"\n')
    out = tmp_path / "out"
    assert run_cli("generate", "monitoring", "-c", str(config), "--out", str(out)).returncode == 0
    old = snapshot(out)
    config.write_text(config.read_text().replace('name = "tiny"', 'name = "small"'))
    diff = run_cli("generate", "monitoring", "-c", str(config), "--out", str(out), "--diff")
    assert diff.returncode == 1, diff.stderr
    assert snapshot(out) == old
    assert "--- a/prometheus/rules/tiny.rules.yaml\n+++ /dev/null\n" in diff.stdout
    applied = subprocess.run(
        ["git", "apply", "--unsafe-paths", f"--directory={out.relative_to(tmp_path)}", "-"],
        input=diff.stdout,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert applied.returncode == 0, applied.stderr
    patched = snapshot(out)
    fresh = tmp_path / "fresh"
    assert run_cli("generate", "monitoring", "-c", str(config), "--out", str(fresh)).returncode == 0
    regenerated = snapshot(fresh)
    manifest = ".pilothouse-manifest.json"
    assert {k: v for k, v in patched.items() if k != manifest} == {
        k: v for k, v in regenerated.items() if k != manifest
    }


def test_context_diff(tmp_path: Path) -> None:
    current = run_cli("generate", "context", "-c", str(SHOP), "--diff")
    assert (current.returncode, current.stdout) == (0, ""), current.stderr
    stale = run_cli("generate", "context", "-c", str(SHOP), "--out", str(tmp_path), "--dry-run")
    assert stale.returncode == 0
    assert stale.stdout.splitlines()[:2] == ["create  AGENTS.md", "create  CLAUDE.md"]
    assert list(tmp_path.iterdir()) == []


def test_dry_run_and_diff_exclude_each_other(tmp_path: Path) -> None:
    result = run_cli("generate", "monitoring", "-c", str(SHOP), "--out", str(tmp_path), "--diff", "--dry-run")
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr
