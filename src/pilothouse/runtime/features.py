"""Optional features that plug into a `Runtime` (telemetry, jobs, secrets rotation...).

Each entry names a module with `install(runtime: Runtime) -> None`; it reads its own config
section and registers hooks, routes and middleware. `serve` and `attach` call `install_all`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pilothouse.runtime.runtime import Runtime

PROCESS_FEATURES: tuple[str, ...] = (
    "pilothouse.secrets.feature",
    "pilothouse.telemetry.feature",
)
"""What every Pilothouse process gets, whatever runs in it: live secrets, logs, traces, metrics.
`pilothouse jobs run` installs these (it runs one job itself, without the jobs feature's worker),
so a job sees the same secrets and telemetry however it is started."""
FEATURES: tuple[str, ...] = (*PROCESS_FEATURES, "pilothouse.protection.feature", "pilothouse.jobs.feature")


def install_all(runtime: Runtime, features: tuple[str, ...] = FEATURES) -> None:
    for name in features:
        importlib.import_module(name).install(runtime)


def install_process_features(runtime: Runtime) -> None:
    install_all(runtime, PROCESS_FEATURES)
