"""Fill `[deploy.container] wheelhouse` on the host so the image build needs no index.

The build then installs with `pip install --no-index --find-links`: hermetic (no network, no host
pip settings inside the build) and repeatable. The wheels must match the image's Python, so the
host interpreter filling it must be the same minor version.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

from pilothouse.config import Config
from pilothouse.config.extras import pilothouse_requirement_name
from pilothouse.errors import ConfigError


def _pilothouse_target(config: Config, context: Path) -> str:
    source = config.deploy.container.pilothouse
    name = pilothouse_requirement_name(config)
    if source.startswith("=="):
        return f"{name}{source}"
    if source.endswith(".whl"):
        wheel = context / source
        if not wheel.is_file():
            raise ConfigError(
                f"deploy.container.pilothouse: {source} is not in the build context {context} "
                "(build it there: pip wheel --no-deps -w DIR <pilothouse checkout>)"
            )
        return f"{name} @ {wheel.resolve().as_uri()}"
    return f"{name} @ {source}"


def _build_requires(project: Path) -> list[str]:
    """The project's build backend: pip builds the project inside the image from the wheelhouse."""
    pyproject = project / "pyproject.toml"
    if not pyproject.is_file():
        raise ConfigError(f"deploy.container.project: {pyproject} not found")
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    requires: list[str] = data.get("build-system", {}).get("requires", ["setuptools>=40.8.0"])
    return requires


LOCK_EXPORT = ".uv-locked.txt"
"""In the wheelhouse: the host's `uv export` of the lock, which `pip wheel` fills from (hash-checked)."""


def fill_commands(config: Config, context: Path, python: str = sys.executable) -> list[list[str]]:
    """The commands that put every wheel the Dockerfile installs into the wheelhouse: with a uv.lock,
    `uv export` of it and a hash-checked `pip wheel` of exactly the locked files first."""
    from pilothouse.generators.deploy.container import UV_EXPORT, uv_lock

    c = config.deploy.container
    if not c.wheelhouse:
        raise ConfigError("--fill-wheelhouse: set [deploy.container] wheelhouse (a directory in the context)")
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if here != c.python:
        raise ConfigError(
            f"deploy.container.python is {c.python!r} but this interpreter is {here}: "
            "fill the wheelhouse with the image's Python version"
        )
    wheels = context / c.wheelhouse
    pip_wheel = [python, "-m", "pip", "wheel", "--wheel-dir", str(wheels), "--find-links", str(wheels)]
    commands: list[list[str]] = []
    targets = [a for r in c.requirements for a in ("-r", str(context / r))]
    lock = uv_lock(config)
    if lock:
        beside = Path(sys.executable).parent / "uv"  # installed in Pilothouse's own venv
        uv = shutil.which("uv") or (str(beside) if beside.is_file() else None)
        if uv is None:
            raise ConfigError(
                f"--fill-wheelhouse: {context / lock} is installed from its lock, and exporting it needs "
                "uv on PATH (pip install uv)"
            )
        exported = wheels / LOCK_EXPORT
        export = [uv, "export", *UV_EXPORT]
        project = str(context / (c.project or "."))
        commands.append([*export, "--project", project, "--output-file", str(exported)])
        commands.append([*pip_wheel, "-r", str(exported)])
        targets.append(f"uv{c.uv}")
    targets.append(_pilothouse_target(config, context))
    if c.project:
        targets += [str(context / c.project), *_build_requires(context / c.project)]
    commands.append([*pip_wheel, *targets])
    return commands
