"""What a job is: a named sequence of steps, each ending with a return code, like a JCL job.

Return codes follow batch custom: 0 ok, 4 warning, 8 and up error. A step that raises ends
abnormally (an *abend*) with code 16, or the code of the `Abend` it raised; an abend or a
timeout stops the job (later steps are skipped) unless the step is retried. The job's return
code is the highest of its steps'. A step with `when_below=N` runs only while the highest return
code so far is below N (JCL's COND, the right way round).
"""

from __future__ import annotations

import re
import string
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pilothouse.durations import parse_duration
from pilothouse.errors import PilothouseError

if TYPE_CHECKING:
    from pilothouse.jobs.context import StepContext

OK = 0
WARNING = 4
ERROR = 8
ABEND_RC = 16

LostPolicy = Literal["requeue", "fail"]
StepFunc = Callable[["StepContext"], "int | Awaitable[int | None] | None"]

_NAME = re.compile(r"^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$")
_MISSING: Any = object()


class Abend(Exception):
    """Raised by a step to end the job abnormally with a chosen code (a user abend)."""

    def __init__(self, code: int = ABEND_RC, reason: str = "") -> None:
        super().__init__(reason or f"abend {code}")
        self.code = code


class JobDefinitionError(PilothouseError, ValueError):
    """A job or step was declared wrongly (a programming error, found at import). Still a
    ValueError, as it was before it joined the `PilothouseError` family."""

    exit_code = 2


class ParamError(PilothouseError, ValueError):
    """Parameters given to a job do not match what it declares (a usage error; still a
    ValueError, as it was before it joined the `PilothouseError` family)."""

    exit_code = 2


def rc_outcome(rc: int) -> str:
    """The step outcome a return code stands for."""
    if rc == OK:
        return "ok"
    return "warning" if rc < ERROR else "error"


@dataclass(frozen=True, slots=True)
class Param:
    """A declared job parameter: its type and default (no default means required)."""

    type: type[str] | type[int] | type[float] | type[bool] = str
    default: Any = _MISSING
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def convert(self, name: str, value: object) -> object:
        if isinstance(value, self.type) and not (self.type is int and isinstance(value, bool)):
            return value
        text = str(value).strip()
        if self.type is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
        else:
            try:
                return self.type(text)
            except ValueError:
                pass
        raise ParamError(f"parameter '{name}': {value!r} is not a valid {self.type.__name__}")


@dataclass(frozen=True, slots=True)
class Step:
    """One step: a plain function or coroutine taking a `StepContext`, returning an RC or None."""

    name: str
    func: StepFunc
    timeout: float | None = None
    when_below: int | None = None
    idempotent: bool = False
    retries: int = 0
    backoff: float = 1.0
    outputs: tuple[str, ...] = ()  # files (or directories) the step writes, attested after the job

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise JobDefinitionError(f"step name {self.name!r}: expected lowercase letters, digits, '-_.'")
        if self.retries < 0 or (self.retries and not self.idempotent):
            raise JobDefinitionError(
                f"step '{self.name}': retries need idempotent=True (a step that is not idempotent "
                "must not run twice)"
            )
        if self.timeout is not None and self.timeout <= 0:
            raise JobDefinitionError(f"step '{self.name}': timeout must be greater than 0s")


def _seconds(value: float | str | None) -> float | None:
    return parse_duration(value) if isinstance(value, str) else value


@dataclass(slots=True)
class Job:
    """A named job. Steps are added in order with the `@job.step(...)` decorator."""

    name: str
    params: Mapping[str, Param] = field(default_factory=dict)
    on_lost: LostPolicy = "requeue"
    max_attempts: int = 3
    description: str = ""
    steps: list[Step] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise JobDefinitionError(
                f"job name {self.name!r}: expected lowercase letters, digits, '-', '_' or '.'"
            )
        if self.on_lost not in ("requeue", "fail"):
            raise JobDefinitionError(f"job '{self.name}': on_lost must be 'requeue' or 'fail'")
        if self.max_attempts < 1:
            raise JobDefinitionError(f"job '{self.name}': max_attempts must be at least 1")

    def step(
        self,
        name: str | None = None,
        *,
        timeout: float | str | None = None,
        when_below: int | None = None,
        idempotent: bool = False,
        retries: int = 0,
        backoff: float | str = 1.0,
        outputs: Sequence[str] = (),
    ) -> Callable[[StepFunc], StepFunc]:
        """Append the decorated function as the next step; durations may be "5s" strings.

        `outputs`: paths the step writes (relative ones under `service.state_dir`), `{param}`
        filled in from the job's parameters; the run signs SLSA provenance for them (`ctx.outputs`
        holds them resolved)."""

        def add(func: StepFunc) -> StepFunc:
            step_name = name or func.__name__.replace("_", "-")
            if any(s.name == step_name for s in self.steps):
                raise JobDefinitionError(f"job '{self.name}': step '{step_name}' is declared twice")
            for template in outputs:
                self._check_output(step_name, template)
            self.steps.append(
                Step(
                    step_name,
                    func,
                    timeout=_seconds(timeout),
                    when_below=when_below,
                    idempotent=idempotent,
                    retries=retries,
                    backoff=_seconds(backoff) or 0.0,
                    outputs=tuple(outputs),
                )
            )
            return func

        return add

    @property
    def outputs(self) -> bool:
        """Whether any step declares outputs (the run then ends with a `provenance` step)."""
        return any(s.outputs for s in self.steps)

    def _check_output(self, step: str, template: str) -> None:
        where = f"job '{self.name}', step '{step}': output {template!r}"
        if not isinstance(template, str) or not template.strip():
            raise JobDefinitionError(f"{where}: expected a path")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        except ValueError as exc:
            raise JobDefinitionError(f"{where}: {exc}") from None
        for name in fields:
            if name not in self.params:
                known = ", ".join(sorted(self.params)) or "none"
                raise JobDefinitionError(f"{where}: {{{name}}} is not a parameter (declared: {known})")

    def bind(self, raw: Mapping[str, object]) -> dict[str, Any]:
        """Validated, typed parameters with defaults filled in; ParamError says what is wrong."""
        unknown = sorted(set(raw) - set(self.params))
        if unknown:
            allowed = ", ".join(sorted(self.params)) or "none"
            raise ParamError(f"job '{self.name}': unknown parameter '{unknown[0]}' (accepted: {allowed})")
        bound: dict[str, Any] = {}
        for key, param in self.params.items():
            if key in raw:
                bound[key] = param.convert(key, raw[key])
            elif param.required:
                raise ParamError(f"job '{self.name}': parameter '{key}' is required")
            else:
                bound[key] = param.default
        return bound
