"""Run a built image the way a target says (a `RunSpec`) and prove it works as deployed.

Startup answers 200, readiness answers 200 (its checks against real dependencies), an app route
answers, the metrics endpoint scrapes, and SIGTERM drains to exit 0 within the grace period. The
container runs on the host network so it reaches the same dependencies a test machine has
(PostgreSQL on 127.0.0.1); the only values the smoke adds are the runtime's own host/port
overrides (`PILOTHOUSE_SERVICE__PORT` ...) that move it to free loopback ports.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from pilothouse.image.runspec import RunSpec, SmokeError

Progress = Callable[[str], None]
ADDRESS_IN_USE = "address already in use"


@dataclass(slots=True)
class SmokeResult:
    startup_seconds: float = 0.0
    ready_seconds: float = 0.0
    stop_seconds: float = 0.0
    metric_families: int = 0
    steps: list[str] = field(default_factory=list)


def _quiet(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=cwd)


class Container:
    """One named container; `close()` removes it and its volumes, whatever happened."""

    def __init__(
        self,
        engine: str,
        spec: RunSpec,
        image: str,
        run_args: Sequence[str],
        ports: tuple[int, int],
        limits: bool = False,
    ):
        self.engine = engine
        self.limits = limits
        self.spec = spec
        self.image = image
        self.run_args = run_args
        self.name = f"pilothouse-smoke-{uuid.uuid4().hex[:10]}"
        self.volumes = [(f"{self.name}-{v}", path) for v, path in spec.volumes]
        self.claims = [(f"{self.name}-{c.claim}", c) for c in spec.claims]
        self._files = tempfile.TemporaryDirectory(prefix="pilothouse-smoke-")
        self.command = self._command(image, run_args, ports)

    def _command(self, image: str, run_args: Sequence[str], ports: tuple[int, int]) -> list[str]:
        spec = self.spec
        cmd = [self.engine, "run", "--detach", "--name", self.name, "--network", "host", *run_args]
        if spec.user:
            cmd += ["--user", spec.user]
        if spec.read_only:  # podman adds tmpfs on /tmp, /var/tmp and /run unless told not to
            cmd += ["--read-only"] + (["--read-only-tmpfs=false"] if self.engine == "podman" else [])
        cmd += [a for cap in spec.cap_drop for a in ("--cap-drop", cap)]
        cmd += [a for cap in spec.cap_add for a in ("--cap-add", cap)]
        if spec.no_new_privileges:
            cmd += ["--security-opt", "no-new-privileges"]
        if self.limits and spec.memory_bytes is not None:  # no swap: the kubelet runs without it
            cmd += ["--memory", str(spec.memory_bytes), "--memory-swap", str(spec.memory_bytes)]
        if self.limits and spec.cpus is not None:
            cmd += ["--cpus", f"{spec.cpus:g}"]
        for t in spec.tmpfs:
            options = [
                o for o in ("rw", f"size={_size(t.size)}" if t.size else "", "U" if t.owned else "") if o
            ]
            cmd += ["--tmpfs", f"{t.target}:{','.join(options)}"]
        for index, f in enumerate(spec.files):
            host = Path(self._files.name) / str(index)
            host.write_bytes(f.content)
            os.chown(host, f.uid, f.gid)
            host.chmod(f.mode)
            cmd += ["--volume", f"{host}:{f.target}:ro"]
        for volume, path in self.volumes:
            cmd += ["--volume", f"{volume}:{path}"]
        for volume, claim in self.claims:  # empty like a new claim; fsGroup's ownership as U gives it
            cmd += ["--volume", f"{volume}:{claim.target}:nocopy" + (",U" if claim.owned else "")]
        env = {
            **spec.env,
            "PILOTHOUSE_SERVICE__HOST": "127.0.0.1",
            "PILOTHOUSE_SERVICE__PORT": str(ports[0]),
            "PILOTHOUSE_OPS__HOST": "127.0.0.1",
            "PILOTHOUSE_OPS__PORT": str(ports[1]),
        }
        cmd += [a for k, v in sorted(env.items()) for a in ("--env", f"{k}={v}")]
        cmd.append(image)
        return cmd + (spec.command or [])

    def start(self) -> None:
        # In the container's own scratch directory: conmon (podman 4.3, cgroup v1) writes a file
        # named `oom` into its working directory when the container hits its memory limit.
        result = _quiet(*self.command, cwd=self._files.name)
        if result.returncode != 0:
            raise SmokeError(f"{self.engine} run failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")

    def state(self) -> tuple[bool, int]:
        out = _quiet(self.engine, "inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", self.name)
        running, _, code = out.stdout.strip().partition(" ")
        return running == "true", int(code or 0)

    def oom_killed(self) -> bool:
        out = _quiet(self.engine, "inspect", "--format", "{{.State.OOMKilled}}", self.name)
        return out.stdout.strip() == "true"

    def exit_cause(self, code: int) -> str:
        """`code N`, and the memory limit when the kernel killed the container for it. podman 4.3 on
        cgroup v1 does not report OOMKilled (seen here): a SIGKILL nobody sent names the limit too."""
        memory = self.spec.memory_bytes
        if self.oom_killed():
            return f"code {code}, killed at its memory limit (OOMKilled)"
        if code == 137 and self.limits and memory is not None:
            return f"code 137 (SIGKILL: the OOM killer at its {memory / 2**20:g}Mi memory limit?)"
        return f"code {code}"

    def logs(self, lines: int = 15, patience: float = 5.0) -> str:
        """The container's last log lines. Right after an exit the log can still be empty (the
        engine's monitor has not written it yet, seen under load), so an empty log is read again."""
        deadline = time.monotonic() + patience
        while True:
            out = _quiet(self.engine, "logs", self.name)  # all of it: podman 4.3's --tail lost short logs
            text = "\n".join((out.stdout + out.stderr).strip().splitlines()[-lines:])
            if text or time.monotonic() > deadline:
                if text:
                    return text
                state = _quiet(self.engine, "inspect", "--format", "{{.State.Error}}", self.name)
                error = state.stdout.strip()
                return f"(the container wrote no log; engine state error: {error or 'none'})"
            time.sleep(0.2)

    def close(self) -> None:
        _quiet(self.engine, "rm", "--force", "--time", "0", self.name)
        for volume, _ in [*self.volumes, *self.claims]:
            _quiet(self.engine, "volume", "rm", "--force", volume)
        self._files.cleanup()


def limits_unavailable(engine: str) -> str | None:
    """Why the engine cannot apply memory/CPU limits here (None: it can). podman and docker need
    the cgroup memory and cpu controllers (cgroup v1, or v2 delegated to the user running them)."""
    if engine == "podman":
        out = _quiet("podman", "info", "--format", "{{.Host.CgroupsVersion}} {{.Host.CgroupControllers}}")
        version, _, controllers = out.stdout.strip().partition(" ")
        missing = [c for c in ("memory", "cpu") if c not in controllers.strip("[]").split()]
        if out.returncode != 0 or missing:
            return f"cgroup {version or '?'} without the {', '.join(missing) or '?'} controller(s)"
        return None
    out = _quiet(engine, "info", "--format", "{{.MemoryLimit}} {{.CPUCfsQuota}}")
    if out.stdout.split() != ["true", "true"]:
        return f"{engine} info reports no memory/CPU limit support"
    return None


def _describe_limits(spec: RunSpec) -> str:
    parts = []
    if spec.memory_bytes is not None:
        parts.append(f"memory {spec.memory_bytes / 2**20:g}Mi (no swap)")
    if spec.cpus is not None:
        parts.append(f"cpu {spec.cpus:g}")
    return ", ".join(parts)


def _size(quantity: str) -> str:
    """A Kubernetes quantity (64Mi) as a tmpfs size (64m)."""
    units = {"Ki": "k", "Mi": "m", "Gi": "g"}
    for suffix, unit in units.items():
        if quantity.endswith(suffix):
            return quantity.removesuffix(suffix) + unit
    return quantity


def _await_status(container: Container, url: str, budget: float, what: str) -> float:
    """Seconds until `url` answers 200; fails when the container exits or the budget runs out."""
    start = time.monotonic()
    last = "no answer"
    while time.monotonic() - start < budget:
        running, code = container.state()
        if not running:
            raise SmokeError(
                f"{container.spec.source}: the container exited with {container.exit_cause(code)} "
                f"before {what} answered 200; last log lines:\n{container.logs()}"
            )
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return time.monotonic() - start
            last = f"{response.status_code} {response.text[:300]}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise SmokeError(
        f"{container.spec.source}: {what} did not answer 200 within {budget:.0f}s (last: {last})"
    )


def run_smoke(
    spec: RunSpec,
    image: str,
    ports: Callable[[], tuple[int, int]],
    route: str = "/",
    engine: str = "podman",
    run_args: Sequence[str] = (),
    startup_budget: float = 120.0,
    progress: Progress = lambda _line: None,
    headers: Mapping[str, str] | None = None,
    expect_status: int | None = None,
) -> SmokeResult:
    """Run `image` as `spec` says and walk it through start, ready, a request, a scrape and a stop.

    `ports` hands out (app, ops) loopback ports; a start that loses a port race is retried. The
    spec's memory and CPU limits are applied when the engine can (one line says which). `route`
    is requested with `headers` and must answer `expect_status` (default: any status below 400)."""
    limits = False
    if spec.memory_bytes is not None or spec.cpus is not None:
        reason = limits_unavailable(engine)
        limits = reason is None
        progress(
            f"limits: {_describe_limits(spec)}"
            if limits
            else f"limits NOT applied ({reason}): {_describe_limits(spec)}"
        )
    for attempt in range(3):
        chosen = ports()
        container = Container(engine, spec, image, run_args, chosen, limits)
        try:
            request = Request(route, dict(headers or {}), expect_status)
            return _walk(container, chosen, request, startup_budget, progress)
        except SmokeError as exc:
            if ADDRESS_IN_USE not in str(exc).lower() or attempt == 2:
                raise
            progress(f"port {chosen} taken meanwhile; retrying")
        finally:
            container.close()
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class Request:
    """The app request the smoke makes, and the status it must get."""

    route: str
    headers: dict[str, str]
    expect_status: int | None

    def check(self, source: str, status: int, body: str) -> None:
        wrong = status != self.expect_status if self.expect_status is not None else status >= 400
        if wrong:
            wanted = f"expected {self.expect_status}" if self.expect_status is not None else "expected < 400"
            raise SmokeError(f"{source}: GET {self.route} answered {status} ({wanted}): {body[:200]}")


def _walk(
    container: Container, ports: tuple[int, int], request: Request, budget: float, progress: Progress
) -> SmokeResult:
    spec = container.spec
    ops = f"http://127.0.0.1:{ports[1]}"
    result = SmokeResult()
    for init in spec.init:
        _to_completion(container, init, ports, f"{init.source} ({' '.join(init.command or ['CMD'])})")
        progress(f"{init.source}: exit 0")
    if spec.pre_stop:
        hook = replace(spec, command=spec.pre_stop, init=[], pre_stop=None)
        _to_completion(container, hook, ports, f"{spec.source} preStop hook {' '.join(spec.pre_stop)}")
        progress(f"preStop {' '.join(spec.pre_stop)}: exit 0 in the image")
    container.start()
    result.startup_seconds = _await_status(container, ops + spec.probes.startup, budget, spec.probes.startup)
    progress(f"{spec.probes.startup} 200 after {result.startup_seconds:.1f}s")
    result.ready_seconds = result.startup_seconds + _await_status(
        container, ops + spec.probes.readiness, 30.0, spec.probes.readiness
    )
    progress(f"{spec.probes.readiness} 200 after {result.ready_seconds:.1f}s")
    response = httpx.get(f"http://127.0.0.1:{ports[0]}{request.route}", headers=request.headers, timeout=5)
    request.check(spec.source, response.status_code, response.text)
    progress(f"GET {request.route} {response.status_code}")
    scrape = httpx.get(ops + spec.probes.metrics, timeout=5)
    families = list(text_string_to_metric_families(scrape.text)) if scrape.status_code == 200 else []
    if not families:
        raise SmokeError(
            f"{spec.source}: {spec.probes.metrics} answered {scrape.status_code} with no metrics"
        )
    result.metric_families = len(families)
    progress(f"{spec.probes.metrics}: {len(families)} metric families")
    result.stop_seconds = _stop(container, spec.grace_seconds)
    progress(f"SIGTERM: exit 0 after {result.stop_seconds:.1f}s (grace {spec.grace_seconds:.0f}s)")
    return result


def _to_completion(
    main: Container, spec: RunSpec, ports: tuple[int, int], what: str, budget: float = 120
) -> None:
    """Run `spec` (an init container, a hook) from the same image to exit 0."""
    step = Container(main.engine, spec, main.image, main.run_args, ports, main.limits)
    try:
        try:
            step.start()
        except SmokeError as exc:
            raise SmokeError(f"{what}: {str(exc).split(': ', 1)[-1]}") from None
        try:
            subprocess.run([step.engine, "wait", step.name], capture_output=True, timeout=budget, check=False)
        except subprocess.TimeoutExpired:
            raise SmokeError(f"{what}: still running after {budget:.0f}s") from None
        _, code = step.state()
        if code != 0:
            raise SmokeError(f"{what}: exit code {code}; last log lines:\n{step.logs()}")
    finally:
        step.close()


def _stop(container: Container, grace: float) -> float:
    start = time.monotonic()
    _quiet(container.engine, "kill", "--signal", "TERM", container.name)
    try:
        subprocess.run(
            [container.engine, "wait", container.name],
            capture_output=True,
            text=True,
            timeout=grace,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SmokeError(
            f"{container.spec.source}: still running {grace:.0f}s after SIGTERM (the grace period); "
            f"last log lines:\n{container.logs()}"
        ) from None
    elapsed = time.monotonic() - start
    _, code = container.state()
    if code != 0:
        raise SmokeError(
            f"{container.spec.source}: exit code {code} after SIGTERM; last log lines:\n{container.logs()}"
        )
    return elapsed
