"""Import the ASGI app named 'package.module:attribute'.

Every process kind (`serve`, its `--workers`, `jobs worker`, `jobs run`) imports the app the
same way, so what the app module registers on import (`@pilothouse.check` functions, jobs,
secrets it declares) exists in each of them.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from pilothouse.config.model import Config
from pilothouse.errors import ConfigError


def import_app(ref: str, search_dir: Path | None = None) -> Any:
    """Import `ref`; the config file's directory and the working directory are on the path."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"app '{ref}': expected 'package.module:attribute'")
    for extra in (search_dir, Path.cwd()):
        if extra is not None and str(extra) not in sys.path:
            sys.path.insert(0, str(extra))
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(f"app '{ref}': module '{module_name}' not found") from None
        raise
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"app '{ref}': module '{module_name}' has no attribute '{attr}'") from None
    if not callable(obj):
        raise ConfigError(f"app '{ref}': '{attr}' is not an ASGI application")
    return obj


def load_app(config: Config, ref: str | None = None) -> Any:
    """The app `ref` (default `[service].app`), imported next to the config file; None if
    neither names one."""
    ref = ref or config.service.app
    if ref is None:
        return None
    return import_app(ref, config.source.parent if config.source else None)
