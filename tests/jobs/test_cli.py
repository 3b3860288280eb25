"""The CLI as a user meets it: `jobs run` output and exit codes, `list/show/cancel`, and every
bad input as one clear error line with a non-zero exit."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import run_cli, write_config
from tests.jobs.conftest import jobs_config


def one_error(result: object, code: int, *fragments: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("pilothouse: error: "), lines
    for fragment in fragments:
        assert fragment in lines[0]


def test_run_prints_steps_and_exits_by_outcome(tmp_path: Path) -> None:
    path = jobs_config(tmp_path)
    result = run_cli("jobs", "run", "slow", "--param", "seconds=0.1", "-c", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown["outcome"], shown["max_rc"], [s["outcome"] for s in shown["steps"]]) == ("ok", 0, ["ok"])
    assert "step wait started" in result.stderr  # logs go to stderr, stdout stays JSON
    listed = run_cli("jobs", "list", "-c", str(path))
    assert listed.returncode == 0 and "slow" in listed.stdout and "finished" in listed.stdout
    shown_text = run_cli("jobs", "show", str(shown["id"]), "-c", str(path))
    assert f"job #{shown['id']} slow: finished, ok, RC 0" in shown_text.stdout
    one_error(run_cli("jobs", "cancel", str(shown["id"]), "-c", str(path)), 1, "already finished")


def test_submit_then_cancel_a_queued_job(tmp_path: Path) -> None:
    path = jobs_config(tmp_path)
    submitted = json.loads(run_cli("jobs", "submit", "tick", "-c", str(path), "--format", "json").stdout)
    cancelled = run_cli("jobs", "cancel", str(submitted["id"]), "-c", str(path))
    assert cancelled.returncode == 0 and "cancelled before it started" in cancelled.stdout
    listed = json.loads(run_cli("jobs", "list", "-c", str(path), "--format", "json").stdout)
    assert [(j["id"], j["outcome"]) for j in listed] == [(submitted["id"], "cancelled")]


@pytest.mark.parametrize(
    ("args", "code", "fragments"),
    [
        (
            ("jobs", "run", "nope"),
            2,
            (
                "unknown job 'nope' (known: fragile, gated, pilothouse.prune-jobs, pilothouse.report, "
                "secretive, slow, stubborn, tick)",
            ),
        ),
        (
            ("jobs", "submit", "slow", "--param", "seconds=soon"),
            2,
            ("parameter 'seconds': 'soon' is not a valid float",),
        ),
        (("jobs", "run", "slow", "--param", "seconds"), 2, ("--param 'seconds': expected KEY=VALUE",)),
        (("jobs", "submit", "tick", "--param", "x=1"), 2, ("unknown parameter 'x'",)),
        (("jobs", "run", "stubborn"), 2, ("parameter 'pidfile' is required",)),
        (("jobs", "show", "999"), 2, ("no job #999",)),
        (("jobs", "cancel", "999"), 2, ("no job #999",)),
        (("jobs", "drain", "--timeout", "soon"), 2, ("--timeout", "expected a duration")),
    ],
)
def test_bad_input(tmp_path: Path, args: tuple[str, ...], code: int, fragments: tuple[str, ...]) -> None:
    one_error(run_cli(*args, "-c", str(jobs_config(tmp_path))), code, *fragments)


@pytest.mark.parametrize(
    ("store", "code", "fragments"),
    [
        ('path = "missing-dir/jobs.sqlite3"', 1, ("missing-dir", "does not exist")),
        ('path = "."', 1, ("cannot open",)),
        (
            "url = 'postgresql://postgres@127.0.0.1:{port}/test'",
            1,
            ("cannot connect", "127.0.0.1:{port}/test"),
        ),
        ("url = 'postgresql://postgres:pw@127.0.0.1/test'", 2, ("jobs.url", "must not contain a password")),
        ("url = 'mysql://db/test'", 2, ("jobs.url", "expected a postgresql:// URL")),
        ("concurrency = 0", 2, ("jobs.concurrency", "greater than or equal to 1")),
        ('heartbeat_timeout = "300ms"', 2, ("heartbeat_timeout", "at least twice")),
        ("module = 'no_such_module'", 2, ("jobs.module: module 'no_such_module' not found",)),
        ("modul = 'x'", 2, ("jobs.modul: unknown key; did you mean 'module'?",)),
    ],
)
def test_bad_store_and_config(
    tmp_path: Path, store: str, code: int, fragments: tuple[str, ...], refused_port: Callable[[], int]
) -> None:
    port = str(refused_port())
    path = jobs_config(tmp_path)
    key = store.split(" ")[0]  # replace the key's default from the template rather than repeat it
    kept = [line for line in path.read_text().splitlines() if not line.startswith(f"{key} = ")]
    path.write_text("\n".join(kept) + "\n" + store.replace("{port}", port) + "\n")
    one_error(
        run_cli("jobs", "run", "tick", "-c", str(path)), code, *(f.replace("{port}", port) for f in fragments)
    )


def test_jobs_commands_need_a_jobs_section(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[service]\nname = "x"\n')
    for args in (("jobs", "list"), ("jobs", "status"), ("jobs", "drain")):
        one_error(run_cli(*args, "-c", str(path)), 2, "[jobs] section is missing")


def test_jobs_run_loads_what_the_app_registers(tmp_path: Path) -> None:
    """`jobs run` imports `[service].app` like serve and the worker do: a step sees the check the
    app module registers (before, only `[jobs].module` was imported and this step failed)."""
    (tmp_path / "regapp.py").write_text(
        "import pilothouse\n\n\n@pilothouse.check('database')\ndef database() -> None:\n    pass\n\n\n"
        "async def app(scope, receive, send):\n    pass\n"
    )
    (tmp_path / "regjobs.py").write_text(
        "from pilothouse.jobs import StepContext, job\nfrom pilothouse.runtime.checks import python\n\n"
        "probe = job('probe')\n\n\n@probe.step()\ndef registered(ctx: StepContext) -> None:\n"
        "    assert 'database' in python._registry, 'the app module was not imported'\n"
    )
    path = write_config(
        tmp_path,
        '[service]\nname = "reg"\napp = "regapp:app"\n[jobs]\nmodule = "regjobs"\npath = "jobs.sqlite3"\n',
    )
    result = run_cli("jobs", "run", "probe", "-c", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_old_top_level_names_still_work_for_one_release(tmp_path: Path) -> None:
    """`pilothouse drain|undrain|status` are `pilothouse jobs drain|undrain|status`, with one
    deprecation line on stderr."""
    path = str(jobs_config(tmp_path))
    for name in ("status", "undrain"):
        new = run_cli("jobs", name, "-c", path, "--format", "json")
        old = run_cli(name, "-c", path, "--format", "json")
        assert (new.returncode, old.returncode) == (0, 0), old.stderr
        assert new.stderr == ""
        assert json.loads(old.stdout) == json.loads(new.stdout)
        assert old.stderr == (
            f"pilothouse: warning: `pilothouse {name}` is deprecated and goes in the next release; "
            f"use `pilothouse jobs {name}`\n"
        )
    drained = run_cli("drain", "--timeout", "5s", "-c", path, "--format", "json")
    assert drained.returncode == 0, drained.stderr
    assert drained.stderr.startswith("pilothouse: warning: `pilothouse drain` is deprecated")
    assert json.loads(drained.stdout)["state"] == "drained"
