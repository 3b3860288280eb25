"""`pilothouse serve`: run the app under uvicorn with the ops server beside it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pilothouse.cli._common import add_config_option, command, load
from pilothouse.errors import ConfigError

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands


def register(sub: Subcommands) -> None:
    serve = command(
        sub,
        "serve",
        "run the ASGI app with probes, metrics and graceful shutdown",
        "pilothouse serve shop.app:app --config pilothouse.toml",
    )
    serve.add_argument("app", nargs="?", help="ASGI app 'module:attribute' (default: [service].app)")
    add_config_option(serve)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pilothouse.features import install_all
    from pilothouse.runtime.admin_auth import admin_token
    from pilothouse.runtime.app_import import load_app
    from pilothouse.runtime.runtime import Runtime
    from pilothouse.runtime.server import run as serve
    from pilothouse.telemetry.logs import configure_logging

    config = load(args)
    ref = args.app or config.service.app
    if not ref:
        raise ConfigError(
            f"{config.source}: service.app: required key is missing "
            "(or pass the app as 'pilothouse serve module:app')"
        )
    if args.workers < 1:
        raise ConfigError(f"--workers: {args.workers} is invalid: expected 1 or more")
    admin_token(config.ops.admin_token_env)  # a weak token: one line before anything starts
    configure_logging(config)
    if args.workers > 1:
        from pilothouse.runtime.supervisor import run as supervise

        # Import once here: a wrong app reference is one line and exit 2, not N worker tracebacks.
        load_app(config, ref)
        runtime = Runtime(config, role="supervisor")
        install_all(runtime)
        return supervise(runtime, ref, args.workers)
    app = load_app(config, ref)
    runtime = Runtime(config)
    install_all(runtime)
    return serve(runtime, app)
