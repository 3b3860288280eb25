"""`pilothouse validate`: each tool's verdict shows as soon as the tool finished, a summary line
ends it, and a tool's colour never reaches the output.

The real promtool judges the rules; `amtool` is a stand-in script on PATH (the only one): it
waits until the test has seen promtool's verdicts (so they can only have arrived while a later
tool still ran), and answers in colour, as a tool does that ignores NO_COLOR.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pilothouse.validation import deploy, plain, run_tool
from tests.helpers import PILOTHOUSE, SHOP_DIR, run_cli

AMTOOL = """#!/bin/sh
while [ ! -e "{release}" ]; do sleep 0.05; done
printf '\\033[31mbad config\\033[0m NO_COLOR=%s TERM=%s FORCE_COLOR=%s\\n' \\
  "$NO_COLOR" "$TERM" "$FORCE_COLOR" >&2
exit 1
"""


def bundle(tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    out = tmp_path / "monitoring"
    assert (
        run_cli(
            "generate", "monitoring", "-c", str(SHOP_DIR / "pilothouse.toml"), "--out", str(out)
        ).returncode
        == 0
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by scripts/ensure-tools.sh"
    (bin_dir / "promtool").symlink_to(promtool)
    release = tmp_path / "release"
    amtool = bin_dir / "amtool"
    amtool.write_text(AMTOOL.format(release=release))
    amtool.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "FORCE_COLOR": "1"}
    return out, env, release


def test_verdicts_stream_and_a_summary_ends_the_output(tmp_path: Path) -> None:
    out, env, release = bundle(tmp_path)
    proc = subprocess.Popen(
        [*PILOTHOUSE, "validate", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    try:
        seen = []
        while not any("promtool test rules" in line for line in seen):
            line = proc.stdout.readline()
            assert line, "validate ended before promtool's verdicts showed"
            seen.append(line)
        assert proc.poll() is None  # amtool still waits: these lines were streamed
        assert all(line.startswith("PASS     promtool") for line in seen)
        release.touch()
        rest, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    lines = [*seen, *rest.splitlines(keepends=True)]
    assert proc.returncode == 1
    assert lines[-2].startswith("FAIL     amtool check-config")
    passed = [line for line in lines if line.startswith("PASS     promtool")]
    assert len(passed) > len(seen) - 1 >= 1
    assert lines[-1] == f"{len(passed)} passed, 1 failed, 0 skipped, 0 missing\n"


def test_no_colour_reaches_text_or_json(tmp_path: Path) -> None:
    out, env, release = bundle(tmp_path)
    release.touch()
    for fmt in ("text", "json"):
        result = subprocess.run(
            [*PILOTHOUSE, "validate", str(out), "--format", fmt],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert result.returncode == 1
        assert "\x1b" not in result.stdout + result.stderr
        if fmt == "json":
            failed = [v for v in json.loads(result.stdout) if v["status"] == "fail"]
            assert [v["detail"] for v in failed] == ["bad config NO_COLOR=1 TERM=dumb FORCE_COLOR="]
            assert result.stderr.endswith(" passed, 1 failed, 0 skipped, 0 missing\n")


def test_plain_removes_escape_sequences() -> None:
    coloured = "\x1b[1;31mred\x1b[0m \x1b]8;;https://example.org\x1b\\link\x1b]8;;\x1b\\ \x1b(Bdone"
    assert plain(coloured) == "red link done"
    proc = run_tool(["sh", "-c", "printf '\\033[32mok\\033[0m %s' \"$NO_COLOR\""], 10)
    assert proc.stdout == "ok 1"


def test_the_missing_checkov_hint_is_for_the_users_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's project has no Makefile of ours: the hint says what to run there. (find_tool is
    replaced so the test does not depend on whether this machine has checkov.)"""
    monkeypatch.setattr(deploy, "find_tool", lambda name: None)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    [verdict] = deploy._checkov(tmp_path, [], tmp_path)
    assert (verdict.tool, verdict.status) == ("checkov", "missing")
    assert "pipx install checkov" in verdict.detail
    assert "pip install checkov" in verdict.detail
    assert "make" not in verdict.detail
