"""`pilothouse serve`: run the app under uvicorn with the ops server beside it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pilothouse.cli._common import add_config_option, command, load
from pilothouse.errors import ConfigError

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands
    from pilothouse.config.model import Config


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
    serve.add_argument("--host", help="address of the app port (default: [service].host)")
    serve.add_argument("--port", type=_port, help="app port (default: [service].port)")
    serve.add_argument(
        "--ops-port", type=_port, help="ops port: probes, metrics, admin (default: [ops].port)"
    )
    serve.add_argument(
        "--http",
        choices=("auto", "h11", "httptools"),
        help="HTTP parser (default: [service].http, 'auto': httptools when installed, else h11)",
    )
    serve.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        help="event loop (default: [service].loop, 'auto': uvloop when installed, else asyncio)",
    )
    serve.set_defaults(handler=run)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: expected a TCP port, 1-65535")
    return int(text)


def with_flags(config: Config, args: argparse.Namespace) -> Config:
    """`config` with the command line's --host/--port/--http/--loop/--ops-port over the file's
    values (the flags win; the workers and the ops port read the result)."""
    service = {k: getattr(args, k) for k in ("host", "port", "http", "loop") if getattr(args, k, None)}
    ops = {"port": args.ops_port} if getattr(args, "ops_port", None) else {}
    if not service and not ops:
        return config
    return config.model_copy(
        update={
            "service": config.service.model_copy(update=service),
            "ops": config.ops.model_copy(update=ops),
        }
    )


def run(args: argparse.Namespace) -> int:
    from pilothouse.features import install_all
    from pilothouse.runtime.admin_auth import admin_token
    from pilothouse.runtime.app_import import load_app
    from pilothouse.runtime.runtime import Runtime
    from pilothouse.runtime.server import run as serve
    from pilothouse.runtime.uvicorn_server import check_stack
    from pilothouse.telemetry.logs import configure_logging

    config = with_flags(load(args), args)
    ref = args.app or config.service.app
    if not ref:
        raise ConfigError(
            f"{config.source}: service.app: required key is missing "
            "(or pass the app as 'pilothouse serve module:app')"
        )
    if args.workers < 1:
        raise ConfigError(f"--workers: {args.workers} is invalid: expected 1 or more")
    check_stack(config)
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
