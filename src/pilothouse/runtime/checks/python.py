"""User checks: any callable, sync or async, registered by decorator or named 'module:function'.

A callable passes by returning (any value but False) and fails by raising or returning False.
Sync callables run in the check thread pool so they cannot block the event loop.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from pilothouse.config.checks import PythonCheck
from pilothouse.errors import ConfigError
from pilothouse.runtime.checks.blocking import in_thread
from pilothouse.runtime.checks.result import CheckFailed, Probe

F = TypeVar("F", bound=Callable[..., Any])

_registry: dict[str, Callable[[], Any]] = {}


def check(name: str) -> Callable[[F], F]:
    """Register a function as the probe of the `[[checks]]` entry `name` with kind "python"."""

    def register(func: F) -> F:
        _registry[name] = func
        return func

    return register


def import_target(target: str) -> Callable[[], Any]:
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import check target '{target}': {exc}") from None
    if not callable(obj):
        raise ConfigError(f"check target '{target}' is not callable")
    return obj  # type: ignore[no-any-return]


def python_probe(cfg: PythonCheck) -> Probe:
    if cfg.target is not None:
        func = import_target(cfg.target)
    elif cfg.name in _registry:
        func = _registry[cfg.name]
    else:
        raise ConfigError(
            f"checks '{cfg.name}': no target set and no function registered with "
            f"@pilothouse.check({cfg.name!r})"
        )

    def verdict(value: object) -> None:
        if value is False:
            raise CheckFailed("check returned False")

    if inspect.iscoroutinefunction(func):

        async def probe() -> None:
            try:
                verdict(await func())
            except CheckFailed:
                raise
            except Exception as exc:
                raise CheckFailed(f"{type(exc).__name__}: {exc}") from None

        return probe

    def call() -> None:
        try:
            verdict(func())
        except CheckFailed:
            raise
        except Exception as exc:
            raise CheckFailed(f"{type(exc).__name__}: {exc}") from None

    return in_thread(call)
