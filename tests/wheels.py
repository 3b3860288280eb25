"""Small real Python projects and their wheels, built offline with hatchling (the dev extra)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def hatch_project(root: Path, name: str, version: str, init: str) -> Path:
    """A project `name` at `root` with one package whose `__init__.py` is `init`."""
    (root / name).mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "{name}"
            version = "{version}"
            """
        )
    )
    (root / name / "__init__.py").write_text(init)
    return root


def build_wheel(project: Path, out: Path) -> Path:
    """`python -m build --wheel` without isolation (no index needed); the wheel's path."""
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(project)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    built = done.stdout.strip().splitlines()[-1].removeprefix("Successfully built ").strip()
    return out / built
