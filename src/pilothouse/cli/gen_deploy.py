"""`pilothouse generate deploy`: write the deploy bundle (k8s/Kustomize, container, compose, systemd).

With a `[stack]` file (`--stack stack.toml`) it writes one kustomization for several services.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pilothouse.cli._common import add_config_option, add_preview_options, command, load, preview
from pilothouse.errors import ConfigError, OperationError

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands


def add_target(actions: Subcommands) -> None:
    parser = command(
        actions,
        "deploy",
        "write Kubernetes/Kustomize, Dockerfile, compose and systemd files from the config",
        "pilothouse generate deploy --out deploy/ --env dev",
    )
    add_config_option(parser)
    parser.add_argument("--out", default="deploy", help="output directory (default: deploy/)")
    parser.add_argument("--env", default=None, help="only this [deploy.environments.*] overlay")
    parser.add_argument(
        "--stack",
        default=None,
        metavar="FILE",
        help="a stack file listing several services (writes one kustomization)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite files edited by hand")
    add_preview_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pilothouse.generators.bundle import bundle_changes, write_bundle

    try:
        from pilothouse.generators.deploy import generate
        from pilothouse.generators.deploy.stack import generate_stack, load_stack
    except ModuleNotFoundError as exc:
        raise OperationError(f"generate deploy needs {exc.name}: pip install 'pilothouse[deploy]'") from None

    if args.stack:
        stack_dir = Path(args.stack).resolve().parent
        bundle_dir = Path(os.path.relpath(Path(args.out).resolve(), stack_dir)).as_posix()
        files = generate_stack(load_stack(Path(args.stack)), args.env, bundle_dir)
    else:
        config = load(args)
        if config.source is None:
            raise ConfigError("the deploy bundle needs a config file")
        bundle_dir = Path(
            os.path.relpath(Path(args.out).resolve(), config.source.resolve().parent)
        ).as_posix()
        files = generate(config, config.source.read_text(encoding="utf-8"), args.env, bundle_dir)
    if args.dry_run or args.diff:
        return preview(args, bundle_changes(files, Path(args.out)), args.out)
    written = write_bundle(files, Path(args.out), force=args.force)
    print(f"wrote {len(written)} files to {args.out} (check them with: pilothouse validate {args.out})")
    return 0
