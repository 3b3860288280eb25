"""The features every Pilothouse process installs, by explicit import.

`serve`, `attach`, the `--workers` children and `pilothouse jobs worker` call `install_all`;
`pilothouse jobs run` installs `PROCESS_FEATURES` only. Each entry is a module implementing
`pilothouse.runtime.features.Feature` (checked by mypy). A new feature is imported and listed here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilothouse.jobs import feature as jobs
from pilothouse.protection import feature as protection
from pilothouse.runtime.runtime import Runtime
from pilothouse.secrets import feature as secrets
from pilothouse.telemetry import feature as telemetry

if TYPE_CHECKING:
    from pilothouse.config.model import Config
    from pilothouse.runtime.features import Feature

PROCESS_FEATURES: tuple[Feature, ...] = (secrets, telemetry)
"""What every Pilothouse process gets, whatever runs in it: live secrets, logs, traces, metrics.
`pilothouse jobs run` installs these (it runs one job itself, without the jobs feature's worker),
so a job sees the same secrets and telemetry however it is started."""
FEATURES: tuple[Feature, ...] = (*PROCESS_FEATURES, protection, jobs)


def install_all(runtime: Runtime, features: tuple[Feature, ...] = FEATURES) -> None:
    for feature in features:
        feature.install(runtime)


def install_process_features(runtime: Runtime) -> None:
    install_all(runtime, PROCESS_FEATURES)


def one_job_runtime(config: Config) -> Runtime:
    """The runtime of `pilothouse jobs run`: the features every process gets (live secrets,
    logs, traces) as in `jobs worker` and `serve`, so `live("db.url")` and the job's spans work
    the same however the job is started; no ops port and no worker of the jobs feature."""
    runtime = Runtime(config)
    install_process_features(runtime)
    return runtime
