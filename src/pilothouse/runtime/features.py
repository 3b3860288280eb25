"""Optional features that plug into a `Runtime` (telemetry, jobs, secrets rotation...).

Each entry names a module with `install(runtime: Runtime) -> None`; it reads its own config
section and registers hooks, routes and middleware. `serve` and `attach` call `install_all`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pilothouse.runtime.runtime import Runtime

FEATURES: tuple[str, ...] = (
    "pilothouse.secrets.feature",
    "pilothouse.telemetry.feature",
    "pilothouse.protection.feature",
    "pilothouse.jobs.feature",
)


def install_all(runtime: Runtime) -> None:
    for name in FEATURES:
        importlib.import_module(name).install(runtime)
