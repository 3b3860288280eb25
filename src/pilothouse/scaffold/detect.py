"""What a project is, read from its files without importing or running any of them.

The dependencies come from pyproject.toml (`[project]` dependencies and optional dependencies)
and requirements*.txt; the ASGI app from the source's syntax tree: a module-level
`app = FastAPI(...)` / `Starlette(...)`, or an `async def app(scope, receive, send)`.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pilothouse.errors import ConfigError

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_SKIP_DIRS = {".git", ".venv", "venv", "env", "node_modules", "build", "dist", "tests", "test", "__pycache__"}
# distribution name -> (driver, what Pilothouse checks with it)
DRIVERS = {
    "asyncpg": "postgres",
    "psycopg": "postgres",
    "psycopg2": "postgres",
    "psycopg2-binary": "postgres",
    "psycopg-binary": "postgres",
    "redis": "redis",
    "httpx": "http",
}
FRAMEWORKS = ("fastapi", "starlette")  # FastAPI is built on Starlette: the first found wins
_CONSTRUCTORS = {"FastAPI": "fastapi", "Starlette": "starlette"}


@dataclass
class Detection:
    """What `init` found; `--format json` prints it as is."""

    name: str
    app: str | None
    framework: str
    drivers: dict[str, list[str]] = field(default_factory=dict)  # check kind -> distributions
    dependencies: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # the files the dependencies were read from

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(lines: list[str]) -> list[str]:
    names = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = _NAME.match(line)
        if match:
            names.append(_normalize(match.group(1)))
    return names


def _read_pyproject(root: Path) -> tuple[str | None, list[str]]:
    path = root / "pyproject.toml"
    if not path.is_file():
        return None, []
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    project = data.get("project") or {}
    lines = list(project.get("dependencies") or [])
    for extra in (project.get("optional-dependencies") or {}).values():
        lines.extend(extra)
    return project.get("name"), _requirement_names([str(line) for line in lines])


def service_name(raw: str) -> str:
    """A DNS-1123 label from a project or directory name ("My_Shop" -> "my-shop")."""
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")[:63].strip("-")
    return name or "service"


def _module_of(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _python_files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).parts
        if any(part in _SKIP_DIRS or part.startswith(".") for part in relative[:-1]):
            continue
        if path.name.startswith("test_") or path.name == "conftest.py" or path.name == "setup.py":
            continue
        found.append(path)
    return found


def _apps_in(tree: ast.Module) -> list[tuple[str, str]]:
    """(attribute, framework) for each module-level ASGI app in a file."""
    apps: list[tuple[str, str]] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            called = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if called in _CONSTRUCTORS:
                apps.extend((t.id, _CONSTRUCTORS[called]) for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AsyncFunctionDef) and len(node.args.args) == 3:
            apps.append((node.name, "asgi"))
    return apps


def _find_app(root: Path) -> tuple[str | None, str | None]:
    """The best ASGI app candidate: an attribute named `app` first, then the shortest module."""
    candidates: list[tuple[bool, int, str, str, str]] = []
    for path in _python_files(root):
        try:
            tree = ast.parse(path.read_text(), filename=str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        module = _module_of(root, path)
        if not module or not all(part.isidentifier() for part in module.split(".")):
            continue
        for attribute, framework in _apps_in(tree):
            candidates.append((attribute != "app", module.count("."), module, attribute, framework))
    if not candidates:
        return None, None
    _, _, module, attribute, framework = min(candidates)
    return f"{module}:{attribute}", framework


def detect(root: Path) -> Detection:
    if not root.is_dir():
        raise ConfigError(f"{root}: not a directory")
    project_name, deps = _read_pyproject(root)
    sources = ["pyproject.toml"] if (root / "pyproject.toml").is_file() else []
    for req in sorted(root.glob("requirements*.txt")):
        deps.extend(_requirement_names(req.read_text().splitlines()))
        sources.append(req.name)
    deps = sorted(set(deps))
    app, app_framework = _find_app(root)
    framework = next((f for f in FRAMEWORKS if f in deps), app_framework or "asgi")
    drivers: dict[str, list[str]] = {}
    for dep in deps:
        if dep in DRIVERS:
            drivers.setdefault(DRIVERS[dep], []).append(dep)
    return Detection(
        name=service_name(project_name or root.resolve().name),
        app=app,
        framework=framework,
        drivers=drivers,
        dependencies=deps,
        sources=sources,
    )
