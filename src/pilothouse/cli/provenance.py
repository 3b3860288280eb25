"""`pilothouse provenance keygen|attest|verify`: signed SLSA provenance for built artifacts.

Artifacts are files (wheels, an image archive), a generated bundle directory, or an image named
by digest; the envelope is written beside the artifact as `<name>.intoto.jsonl` (or --output).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilothouse.cli._common import add_config_option, add_format_option, command, emit, load
from pilothouse.errors import ConfigError
from pilothouse.files import replace

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from pilothouse.cli._common import Subcommands


def register(sub: Subcommands) -> None:
    provenance = command(
        sub,
        "provenance",
        "make a signing key, attest built artifacts (SLSA v1 in DSSE), verify them",
        "pilothouse provenance verify dist/shop-1.0-py3-none-any.whl --key signing.key.pub",
    )
    actions = provenance.add_subparsers(title="actions", metavar="ACTION", required=True)

    keygen = command(
        actions,
        "keygen",
        "write a new Ed25519 key (0600) and KEY.pub, or print the public half of a key kept in a secret",
        "pilothouse provenance keygen --key /etc/shop/provenance.key",
    )
    _key_options(keygen, required=False)
    keygen.set_defaults(handler=run_keygen)

    attest = command(
        actions,
        "attest",
        "sign an SLSA Provenance v1 statement for each artifact and store it beside the artifact",
        "pilothouse provenance attest dist/*.whl --key provenance.key --lock requirements.lock",
    )
    attest.add_argument("artifacts", nargs="*", metavar="ARTIFACT", help="file or directory built")
    _image_options(attest)
    _key_options(attest, required=True)
    attest.add_argument("--output", type=Path, help="envelope file (required with --image-digest)")
    attest.add_argument(
        "--lock",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="lock file the build resolved from",
    )
    attest.add_argument("--base-image", metavar="NAME@sha256:…", help="base image, pinned by digest")
    attest.add_argument("--source-dir", type=Path, default=Path("."), help="git checkout built (default .)")
    attest.add_argument(
        "--builder-id", default=os.environ.get("PILOTHOUSE_BUILDER_ID"), help="who built it (a URI)"
    )
    attest.add_argument("--invocation-id", help="the build run (e.g. the CI job URL; default a new UUID)")
    attest.add_argument("--build-command", help="the command that built the artifacts (recorded as given)")
    attest.add_argument(
        "--started-on", type=_moment, help="RFC 3339 build start (default: oldest artifact mtime)"
    )
    attest.add_argument(
        "--finished-on", type=_moment, help="RFC 3339 build end (default: newest artifact mtime)"
    )
    add_format_option(attest)
    attest.set_defaults(handler=run_attest)

    verify = command(
        actions,
        "verify",
        "check an artifact's provenance: signature, subject digests, builder id, source (exit 1 with "
        "the reason)",
        "pilothouse provenance verify dist/shop.whl --key provenance.key.pub --source git+https://git.example/shop",
    )
    verify.add_argument(
        "artifact", nargs="?", type=Path, metavar="ARTIFACT", help="the file or directory verified"
    )
    _image_options(verify)
    verify.add_argument("--key", type=Path, required=True, metavar="PUB", help="public key (PEM)")
    verify.add_argument("--provenance", type=Path, help="envelope file (default ARTIFACT.intoto.jsonl)")
    verify.add_argument("--builder-id", help="required builder id")
    verify.add_argument("--source", help="required source repository, e.g. git+https://git.example/shop")
    add_format_option(verify)
    verify.set_defaults(handler=run_verify)


def _key_options(parser: argparse.ArgumentParser, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--key", type=Path, metavar="FILE", help="private key file (PEM, mode 0600)")
    group.add_argument(
        "--key-secret", metavar="NAME", help="secret holding the private key (PEM), e.g. provenance.key"
    )
    add_config_option(parser)


def _image_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image-digest", metavar="sha256:…", help="an image by digest instead of a file")
    parser.add_argument("--image-name", default="image", help="the image's name (with --image-digest)")


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not an RFC 3339 time such as 2026-01-02T03:04:05Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _private_key(args: argparse.Namespace) -> Ed25519PrivateKey:
    from pilothouse.provenance import keys

    if args.key is not None:
        return keys.read_private(args.key)
    from pilothouse.config.secret_ref import SecretRef
    from pilothouse.secrets.resolver import SecretResolver

    resolver = SecretResolver(load(args))
    try:
        pem = resolver.get(SecretRef(secret=args.key_secret))
    finally:
        resolver.close()
    return keys.load_private(pem, f"secret '{args.key_secret}'")


def run_keygen(args: argparse.Namespace) -> int:
    from pilothouse.provenance import keys

    if args.key is None and args.key_secret is None:
        raise ConfigError(
            "keygen: give --key FILE (write a new key) or --key-secret NAME (print its public key)"
        )
    key = keys.generate(args.key) if args.key_secret is None else _private_key(args)
    if args.key is not None:
        print(
            f"wrote {args.key} (0600) and {args.key}.pub, key id {keys.keyid(key.public_key())}",
            file=sys.stderr,
        )
    sys.stdout.write(keys.public_pem(key.public_key()))
    return 0


def _targets(args: argparse.Namespace) -> list[tuple[str, list[dict[str, Any]], Path, list[Path]]]:
    """(name, subjects, envelope path, files whose times bound the build) per artifact."""
    from pilothouse.provenance.subjects import envelope_path, file_subjects, image_subject

    if args.image_digest is not None:
        if args.artifacts or args.output is None:
            raise ConfigError("--image-digest: give --output FILE and no ARTIFACT")
        return [(args.image_name, [image_subject(args.image_name, args.image_digest)], args.output, [])]
    if not args.artifacts:
        raise ConfigError("attest: give at least one ARTIFACT or --image-digest")
    if args.output is not None and len(args.artifacts) > 1:
        raise ConfigError("--output: only with one ARTIFACT (each artifact gets its own envelope)")
    targets = []
    for name in args.artifacts:
        artifact = Path(name)
        files = sorted(p for p in artifact.rglob("*") if p.is_file()) if artifact.is_dir() else [artifact]
        targets.append(
            (artifact.name, file_subjects(artifact), args.output or envelope_path(artifact), files)
        )
    return targets


def run_attest(args: argparse.Namespace) -> int:
    import uuid

    from pilothouse.provenance import dsse
    from pilothouse.provenance.statement import (
        DEFAULT_BUILDER_ID,
        Build,
        file_dependency,
        git_source,
        image_dependency,
    )

    targets = _targets(args)  # every input is checked before anything is written
    key = _private_key(args)
    source = git_source(args.source_dir)
    dependencies = [file_dependency(lock) for lock in args.lock]
    if args.base_image:
        dependencies.append(image_dependency(args.base_image))
    parameters: dict[str, Any] = {}
    if args.build_command:
        parameters["buildCommand"] = args.build_command
    invocation = args.invocation_id or uuid.uuid4().urn
    envelopes = []
    for name, subjects, path, files in targets:
        times = [datetime.fromtimestamp(f.stat().st_mtime, UTC) for f in files]
        build = Build(
            subjects=subjects,
            source=source,
            builder_id=args.builder_id or DEFAULT_BUILDER_ID,
            invocation_id=invocation,
            started_on=args.started_on or (min(times) if times else None),
            finished_on=args.finished_on or (max(times) if times else None),
            dependencies=dependencies,
            parameters={"artifact": name, **parameters},
        )
        envelopes.append((path, dsse.sign(build.payload(), key)))
    for path, envelope in envelopes:
        replace(path, json.dumps(envelope, sort_keys=True) + "\n")
    emit(
        args,
        {"written": [str(p) for p, _ in envelopes], "source": source.dependency()},
        "\n".join(f"wrote {p}" for p, _ in envelopes),
    )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from pilothouse.provenance import keys
    from pilothouse.provenance.subjects import envelope_path, file_subjects, image_subject
    from pilothouse.provenance.verify import Policy, VerificationFailed, check, read

    if (args.artifact is None) == (args.image_digest is None):
        raise ConfigError("verify: give either ARTIFACT or --image-digest (with --provenance)")
    if args.artifact is not None:
        expected, what = file_subjects(args.artifact), str(args.artifact)
        provenance = args.provenance or envelope_path(args.artifact)
    else:
        if args.provenance is None:
            raise ConfigError("--image-digest: give --provenance FILE")
        expected, what, provenance = (
            [image_subject(args.image_name, args.image_digest)],
            args.image_name,
            args.provenance,
        )
    key = keys.read_public(args.key)
    directory = args.artifact is not None and args.artifact.is_dir()
    try:
        statement = check(read(provenance), key, expected, Policy(args.builder_id, args.source), directory)
    except VerificationFailed as exc:
        raise VerificationFailed(f"{what}: provenance does not verify: {exc}") from None
    predicate = statement["predicate"]
    builder = predicate["runDetails"]["builder"]["id"]
    source = predicate["buildDefinition"]["externalParameters"].get("source")
    emit(args, statement, f"verified: {what} built by {builder} from {source}")
    return 0
