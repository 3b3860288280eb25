"""`pilothouse smoke --image REF`: run a built image as the deploy bundle says and prove it works.

The pod's settings are read from `kubectl kustomize <bundle>/k8s/<overlay>` (env, config mounted
read-only, Secrets as files, uid/gid, read-only root with only emptyDirs writable, capabilities,
no-new-privileges, grace period); with `--compose`, from `compose.prod.yaml` with its secret files
and `${VAR}` values from the environment, as compose reads them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilothouse.cli._common import add_config_option, command, load
from pilothouse.errors import ConfigError, OperationError

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands
    from pilothouse.config import Config
    from pilothouse.image.runspec import RunSpec


def register(sub: Subcommands) -> None:
    parser = command(
        sub,
        "smoke",
        "run a built image with the settings of the rendered Deployment (or compose.prod.yaml) and check it",
        "pilothouse smoke --image localhost/shop:1.0.0 --bundle deploy --secrets secrets.yaml --route /items",
    )
    add_config_option(parser)
    parser.add_argument("--image", required=True, help="the image to run (replaces the manifest's image)")
    parser.add_argument("--bundle", default="deploy", help="the generated deploy bundle (default: deploy/)")
    parser.add_argument("--overlay", default="base", help="k8s/<overlay> to render (default: base)")
    parser.add_argument("--workload", default=None, help="the Deployment/Rollout name (a stack has several)")
    parser.add_argument(
        "--secrets",
        default=None,
        metavar="FILE",
        help="Secret objects, e.g. a filled-in k8s/secrets.example.yaml",
    )
    parser.add_argument("--compose", action="store_true", help="run as compose.prod.yaml says instead")
    parser.add_argument("--route", default="/", help="an app route that must answer below 400 (default: /)")
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a header for the route's request, e.g. an API key (repeatable)",
    )
    parser.add_argument(
        "--expect-status", type=int, default=None, help="the route's status instead of any below 400"
    )
    parser.add_argument(
        "--engine", choices=("podman", "docker"), default=None, help="default: the first installed"
    )
    parser.add_argument(
        "--run-arg", action="append", default=[], help="extra engine run argument (repeatable)"
    )
    parser.set_defaults(handler=run)


def free_ports() -> tuple[int, int]:
    """Two loopback ports free right now; a start that loses the race is retried by the smoke."""
    import socket

    found = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            found.append(int(sock.getsockname()[1]))
    return found[0], found[1]


def _yaml_docs(text: str) -> list[dict[str, Any]]:
    try:
        import yaml
    except ModuleNotFoundError:
        raise OperationError("smoke needs PyYAML: pip install 'pilothouse[deploy]'") from None
    return [d for d in yaml.safe_load_all(text) if d]


def rendered(bundle: Path, overlay: str) -> list[dict[str, Any]]:
    """What `kubectl apply -k` would send for this overlay."""
    import subprocess

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise OperationError("smoke needs kubectl (for `kubectl kustomize`) to read the rendered Deployment")
    target = bundle / "k8s" / overlay
    proc = subprocess.run([kubectl, "kustomize", str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise OperationError(f"kubectl kustomize {target}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return _yaml_docs(proc.stdout)


def compose_for(config: Config, bundle: Path, variables: Mapping[str, str]) -> RunSpec:
    """The service of `compose.prod.yaml`; compose names neither the ops port nor the probe paths,
    so those come from the config the image carries."""
    from pilothouse.image.runspec import Probes, from_compose

    path = bundle / "compose.prod.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: not found (generate the bundle first)")
    p = config.probes
    probes = Probes(p.startup_path, p.readiness_path, p.liveness_path, p.metrics_path)
    document = _yaml_docs(path.read_text(encoding="utf-8"))[0]
    ports = (config.service.port, config.ops.port)
    return from_compose(document, config.service.name, bundle, variables, ports, probes)


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    from pilothouse.image.runspec import from_workload, secrets_by_name

    bundle = Path(args.bundle)
    if args.compose:
        return compose_for(load(args), bundle, dict(os.environ))
    secrets: dict[str, dict[str, bytes]] = {}
    if args.secrets:
        secrets = secrets_by_name(_yaml_docs(Path(args.secrets).read_text(encoding="utf-8")))
    return from_workload(rendered(bundle, args.overlay), secrets, args.workload)


def run(args: argparse.Namespace) -> int:
    engine = args.engine or next((e for e in ("podman", "docker") if shutil.which(e)), None)
    if engine is None or not shutil.which(engine):
        raise OperationError("smoke needs podman or docker to run the image")
    from pilothouse.image.smoke import run_smoke

    headers = {}
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"--header {item!r}: expected NAME:VALUE")
        headers[name.strip()] = value.strip()
    spec = spec_from_args(args)
    print(f"smoke: {args.image} as {spec.source}", flush=True)
    result = run_smoke(
        spec,
        args.image,
        free_ports,
        route=args.route,
        engine=engine,
        run_args=args.run_arg,
        progress=lambda line: print(f"  {line}", flush=True),
        headers=headers,
        expect_status=args.expect_status,
    )
    print(f"smoke: passed (ready {result.ready_seconds:.1f}s after start)", file=sys.stdout)
    return 0
