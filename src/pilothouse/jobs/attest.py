"""Signed SLSA provenance for what a job run wrote.

A step declares its outputs (`@job.step(outputs=["reports/{day}.csv"])`); relative paths live
under `service.state_dir`, `{param}` comes from the job's parameters. When a job with outputs
ends ok or with a warning, one more step, `provenance`, hashes every output of the steps that
ran, signs an in-toto Statement v1 with an SLSA Provenance v1 predicate (build type
`#job-run-v1`) with the key of `[jobs.provenance]` — a 0600 file or a secret, as `pilothouse
provenance attest` takes it — and writes the envelope beside each output as
`<output>.intoto.jsonl`, so `pilothouse provenance verify OUTPUT --key PUB` checks it. A declared
output the step did not write fails that step (RC 16): the run is `failed`, nothing is signed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilothouse.config.model import Config
from pilothouse.config.secret_ref import SecretRef
from pilothouse.errors import ConfigError
from pilothouse.files import replace
from pilothouse.jobs.definition import Abend, Job, Step
from pilothouse.jobs.registry import Registry
from pilothouse.jobs.runner import ATTEST_STEP

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from pilothouse.provenance.statement import Source


def attester_for(config: Config, registry: Registry) -> OutputAttester | None:
    """The attester of this config, None when no job declares outputs; ConfigError (one line,
    before anything runs) when outputs are declared without `[jobs.provenance]`, or its key does
    not load."""
    declaring = [j for j in registry if j.outputs]
    settings = config.jobs.provenance if config.jobs else None
    for job in declaring:
        if any(s.name == ATTEST_STEP for s in job.steps):
            raise ConfigError(
                f"{config.source}: job '{job.name}': a step named '{ATTEST_STEP}' clashes with the "
                "step that signs its outputs; rename it"
            )
    if settings is None:
        if declaring:
            raise ConfigError(
                f"{config.source}: job '{declaring[0].name}' declares outputs but [jobs.provenance] "
                "is missing (add it with key = a 0600 key file or a secret reference)"
            )
        return None
    attester = OutputAttester(config)
    attester.private_key()  # a missing or unreadable key stops the process before it runs jobs
    return attester


class OutputAttester:
    """Resolves declared outputs and signs them after a run (`[jobs.provenance]`)."""

    def __init__(self, config: Config) -> None:
        assert config.jobs is not None and config.jobs.provenance is not None
        self.config = config
        self.settings = config.jobs.provenance
        self.base = config.state_path(".")
        self.here = config.source.parent if config.source is not None else Path(".")
        self.checkout = _checkout(self.here)

    def private_key(self) -> Ed25519PrivateKey:
        from pilothouse.provenance import keys

        key = self.settings.key
        if isinstance(key, SecretRef):
            from pilothouse.secrets.resolver import SecretResolver

            pem = SecretResolver(self.config).get(key)
            return keys.load_private(pem, f"{self.config.source}: jobs.provenance.key ({key})")
        path = Path(key)
        return keys.read_private(path if path.is_absolute() else self.here / path)

    def resolve(self, step: Step, params: Mapping[str, Any]) -> list[Path]:
        """The step's outputs as paths: `{param}` filled in, relative ones under the state dir;
        Abend when a parameter's value takes a relative one out of it (`..`, or absolute)."""
        found = []
        for template in step.outputs:
            path = Path(template.format_map(dict(params)))
            if not Path(template).is_absolute():
                path = self.base / path
                if not path.resolve().is_relative_to(self.base.resolve()):
                    raise Abend(
                        reason=f"step '{step.name}': output {template!r} resolves to {path}, outside "
                        f"{self.base} (check the parameters)"
                    )
            found.append(path)
        return found

    def attest(
        self,
        job: Job,
        job_id: int,
        attempt: int,
        params: Mapping[str, Any],
        outputs: Sequence[tuple[str, Path]],
        started: datetime,
        steps: Sequence[Mapping[str, Any]] = (),
    ) -> list[Path]:
        """Sign one statement naming every output and write it beside each; the envelope paths.

        `outputs`: (step, path) of the steps that ran; `steps`: how each step before this one
        ended (name, outcome, rc, tries). Blocking (hashing, key, files)."""
        from pilothouse.provenance import dsse
        from pilothouse.provenance.statement import JOB_RUN_TYPE, Build
        from pilothouse.provenance.subjects import envelope_path, file_subjects

        subjects: list[dict[str, Any]] = []
        for step, path in outputs:
            if not path.exists():
                raise Abend(reason=f"step '{step}' declared output {path}, which it did not write")
            subjects += file_subjects(path)
        names = [s["name"] for s in subjects]
        if len(set(names)) != len(names):
            repeated = sorted({n for n in names if names.count(n) > 1})
            raise Abend(reason=f"two outputs are named '{repeated[0]}'; verify could not tell them apart")
        service = self.config.service
        parameters: dict[str, Any] = {"job": job.name, "parameters": dict(params)}
        if self.settings.source is not None:
            parameters["source"] = self.settings.source
        dependencies = []
        if self.config.source is not None:
            from pilothouse.provenance.statement import file_dependency

            dependencies.append(file_dependency(self.config.source, f"file:{self.config.source.name}"))
        build = Build(
            subjects=subjects,
            source=self.checkout,
            builder_id=self.settings.builder_id,
            invocation_id=f"pilothouse-job:{service.name}/{job_id}/{attempt}",
            started_on=started,
            finished_on=datetime.now(UTC),
            dependencies=dependencies,
            parameters=parameters,
            build_type=JOB_RUN_TYPE,
            internal={
                "service": service.name,
                "serviceVersion": service.version,
                "attempt": attempt,
                "steps": [dict(step) for step in steps],
            },
        )
        line = json.dumps(dsse.sign(build.payload(), self.private_key()), sort_keys=True) + "\n"
        written = []
        for _, path in outputs:
            target = envelope_path(path)
            replace(target, line)
            written.append(target)
        return written


def _checkout(directory: Path) -> Source | None:
    from pilothouse.provenance.statement import git_source

    try:
        return git_source(directory)
    except ConfigError:
        return None
