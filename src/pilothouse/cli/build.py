"""`pilothouse build`: build the service's image from the generated Dockerfile and measure it.

The Dockerfile is generated from the config for this build (it cannot drift from the config), the
build context is the config file's directory, and the engine is whichever of docker, podman and
buildah is installed (or `--engine`). Engine output streams to stderr; stdout gets the image
reference, its digest and its sizes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pilothouse.cli._common import add_config_option, command, emit, load
from pilothouse.errors import ConfigError, OperationError
from pilothouse.image import ENGINES

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands


def register(sub: Subcommands) -> None:
    parser = command(
        sub,
        "build",
        "build the service's container image (docker, podman or buildah) and print its digest and size",
        "pilothouse build --engine podman --tag registry.example.com/shop:1.0.0",
    )
    add_config_option(parser)
    parser.add_argument("--engine", choices=ENGINES, default=None, help="default: the first installed")
    parser.add_argument("--tag", default=None, help="image reference (default: [deploy] image and tag)")
    parser.add_argument(
        "--build-arg", action="append", default=[], metavar="NAME=VALUE", help="e.g. BASE_IMAGE=..."
    )
    parser.add_argument(
        "--isolation",
        default="chroot",
        help="podman/buildah RUN isolation (default chroot: works where OCI isolation cannot set rlimits)",
    )
    parser.add_argument(
        "--fill-wheelhouse",
        action="store_true",
        help="first `pip wheel` everything the image installs into [deploy.container] wheelhouse",
    )
    parser.add_argument("--no-cache", action="store_true", help="rebuild every layer (a cold build)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: every command module is imported to build the parser, also inside an image
    # that has no deploy extra (PyYAML), where `pilothouse serve` must still start.
    import subprocess
    import tempfile

    from pilothouse.generators.deploy import container, facts
    from pilothouse.image import engine as engines
    from pilothouse.image.wheelhouse import fill_commands

    config = load(args)
    if config.source is None:
        raise ConfigError("build needs a config file (its directory is the build context)")
    engines.check_build_args(args.build_arg)
    name = engines.find_engine(args.engine)
    context = config.source.resolve().parent
    tag = args.tag or facts.image_ref(config)
    if args.fill_wheelhouse:
        for step in fill_commands(config, context):
            engines.run_streaming(step, engines.stderr_progress)
    with tempfile.TemporaryDirectory(prefix="pilothouse-build-") as tmp:
        files = container.files(config, location=tmp)
        for file_name, text in files.items():
            (Path(tmp) / file_name).write_text(text, encoding="utf-8")
        build = engines.build_command(
            name,
            Path(tmp) / container.DOCKERFILE,
            Path(tmp) / container.DOCKERIGNORE,
            context,
            tag,
            args.build_arg,
            args.isolation if name != "docker" else None,
            args.no_cache,
        )
        print(f"building {tag} with {name} (context {context})", file=sys.stderr, flush=True)
        try:
            engines.run_streaming(build, engines.stderr_progress)
        except FileNotFoundError:
            raise OperationError(f"{name}: not runnable") from None
        except subprocess.SubprocessError as exc:
            raise OperationError(f"{name}: {exc}") from None
    report = engines.measure(name, tag)
    data = {
        "image": report.reference,
        "digest": report.digest,
        "size": report.size,
        "compressed": report.compressed,
        "layers": [
            {"created_by": x.created_by, "size": x.size, "compressed": x.compressed} for x in report.layers
        ],
    }
    text = (
        f"image: {report.reference}\n"
        f"digest: {report.digest}\n"
        f"size: {engines.human(report.size)} uncompressed, "
        f"{engines.human(report.compressed)} compressed (gzip)"
    )
    emit(args, data, text)
    return 0
