"""`pilothouse.updates`: are there updates of what the service runs? Two kinds, one pair of steps
each (`[maintenance.updates]`):

- `python`: every distribution installed in the environment the job runs in (the service's own,
  `importlib.metadata`), or only `packages`, against a package index's JSON API
  (`<index_url>/<name>/json`, PyPI's form: `info.version` is the newest release). For a
  distribution that has a newer release, the installed version's page
  (`<index_url>/<name>/<version>/json`) lists its known `vulnerabilities`; one fixed in a version
  up to the newest makes the update a security update (an index without that page, as some
  mirrors, leaves the update's advisories unknown: said so, never taken as "none").
  Distributions installed from a directory or URL (`direct_url.json`: editable or local builds,
  the service itself) and names the index does not know are skipped, never guessed.
- `apt` (`apt = true`): the upgrades `apt-get -s upgrade --with-new-pkgs` would make on this host
  (a simulation: no root, no lock, nothing changed; it reads the package lists as the host's last
  `apt-get update` left them), an upgrade from a `*-security` suite being a security update.
  `--with-new-pkgs`: an upgrade that needs a new package (a kernel security fix's new ABI package)
  is pending too, not "kept back" out of sight; the new packages are listed with it.
- `image` (`image = true`, container updates on a compose or podman host): the digest the
  registry serves for `[deploy].image` at its tag (OCI distribution API, anonymous bearer token
  when asked) against the repository digests of this host's copy (`<engine> image inspect`; the
  engine is the one `image_apply` runs when it names podman or docker, else podman, else docker);
  a different or missing one is an update. `image_apply` (e.g. a pull and `compose up -d`) runs
  then (no shell, its own process group, killed past APPLY_TIMEOUT or when the step is cancelled
  or times out), and the image is checked again. No `-security` step: a digest says nothing of
  why it changed.

Each `<kind>` step ends RC 0 when nothing is pending, 4 when updates are pending (named in the
log), 12 when it cannot check (index unreachable or answering errors, apt-get failing: the reason
in the log, never a traceback); its `<kind>-security` step (python, apt) ends 4 when security updates are
among them. Every job worker publishes `pilothouse_updates_pending{kind, scope}` from the
store; SecurityUpdatesAvailable fires on scope "security"; the daily report lists the updates.

Comparing versions needs `packaging` (the `updates` extra).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from pilothouse.config.maintenance import UpdatesConfig
from pilothouse.config.model import Config
from pilothouse.errors import ConfigError
from pilothouse.jobs.context import StepContext
from pilothouse.jobs.definition import OK, WARNING, Job
from pilothouse.maintenance.certificates import run_hook

UPDATES = "pilothouse.updates"
CANNOT_CHECK = 12
KINDS = ("python", "apt", "image")
SECURITY_KINDS = ("python", "apt")
STEP_TIMEOUT = 600.0
APPLY_TIMEOUT = 420.0
"""`image_apply`'s limit: below the step's, leaving the checks before and after it their time."""
APT_SIMULATE = ("-s", "-q", "upgrade", "--with-new-pkgs")
_SEPARATORS = re.compile(r"[-_.]+")


@dataclass(frozen=True, slots=True)
class Update:
    kind: str
    name: str
    installed: str
    available: str
    security: bool = False
    advisories: tuple[str, ...] = ()
    advisories_known: bool = True
    """False when the index has no page of the installed version (no `vulnerabilities` to read)."""

    def line(self) -> str:
        said = f"{self.name} {self.installed or '(new)'} -> {self.available}"
        if self.security:
            said += " (security" + (f": {', '.join(self.advisories)}" if self.advisories else "") + ")"
        elif not self.advisories_known:
            said += " (advisories unknown: the index has no page of the installed version)"
        return said


@dataclass(slots=True)
class Findings:
    """What one kind's check found; `error` set when it could not check (then `updates` may be
    what it found before it failed)."""

    kind: str
    updates: list[Update] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    checked: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def security(self) -> list[Update]:
        return [u for u in self.updates if u.security]

    def rc(self) -> int:
        if self.error is not None:
            return CANNOT_CHECK
        return WARNING if self.updates else OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "checked": self.checked,
            "skipped": len(self.skipped),
            "error": self.error,
            "updates": [asdict(u) for u in self.updates],
        }


def normalize(name: str) -> str:
    """A distribution's canonical name (PEP 503)."""
    return _SEPARATORS.sub("-", name).lower()


def _version_type() -> Any:
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        raise ConfigError("the update check needs `packaging`: pip install 'pilothouse[updates]'") from None
    return Version, InvalidVersion


# -- Python: pure parts -----------------------------------------------------------------------


def installed_distributions(
    dists: Iterable[importlib.metadata.Distribution] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Installed distributions from an index, by canonical name, and those skipped (installed from
    a directory or URL: editable installs, local builds)."""
    found: dict[str, str] = {}
    skipped: list[str] = []
    for dist in importlib.metadata.distributions() if dists is None else dists:
        name = dist.metadata["Name"]
        if not name:
            continue
        key = normalize(name)
        if dist.read_text("direct_url.json") is not None:
            skipped.append(key)
        else:
            found.setdefault(key, dist.version)
    return found, sorted(set(skipped))


def security_fixes(installed: str, newest: str, vulnerabilities: Iterable[Mapping[str, Any]]) -> list[str]:
    """The ids of the known vulnerabilities of `installed` that a version up to `newest` fixes."""
    version, invalid = _version_type()
    low, high = version(installed), version(newest)
    ids = []
    for vuln in vulnerabilities:
        if vuln.get("withdrawn"):  # retracted by its publisher: no longer an advisory
            continue
        for fixed in vuln.get("fixed_in") or ():
            try:
                if low < version(str(fixed)) <= high:
                    ids.append(str(vuln.get("id") or ", ".join(vuln.get("aliases") or ()) or "unnamed"))
                    break
            except invalid:
                continue
    return sorted(set(ids))


def newer(installed: str, newest: str) -> bool:
    """True when the index's newest release is above the installed version (False when either is
    not a PEP 440 version: such a release is not compared, never guessed)."""
    version, invalid = _version_type()
    try:
        return bool(version(newest) > version(installed))
    except invalid:
        return False


# -- Python: asking the index -----------------------------------------------------------------


class _Unreachable(Exception):
    pass


def _where(url: str) -> str:
    """The index as logs may name it (scheme and host: a path or query may carry a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


async def _page(client: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
    """A JSON page of the index; None when the index does not know it (404)."""
    try:
        reply = await client.get(url)
    except httpx.HTTPError as exc:
        raise _Unreachable(f"{type(exc).__name__}") from None
    if reply.status_code == 404:
        return None
    if reply.status_code != 200:
        raise _Unreachable(f"answered {reply.status_code}")
    try:
        body = reply.json()
    except ValueError:
        raise _Unreachable("answered something that is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("info"), dict):
        raise _Unreachable("answered JSON without an 'info' object")
    return body


async def check_python(section: UpdatesConfig, installed: Mapping[str, str] | None = None) -> Findings:
    """Compare installed distributions with the index; never raises for the index's faults."""
    findings = Findings("python")
    if installed is None:
        installed, findings.skipped = installed_distributions()
    wanted = {normalize(p) for p in section.packages}
    ignored = {normalize(p) for p in section.ignore}
    names = sorted(n for n in installed if (not wanted or n in wanted) and n not in ignored)
    findings.skipped += sorted(wanted - set(installed))  # asked for, not installed
    gate = asyncio.Semaphore(section.concurrency)
    failures: list[str] = []

    async def one(client: httpx.AsyncClient, name: str) -> None:
        async with gate:
            try:
                latest = await _page(client, f"{section.index_url}/{quote(name)}/json")
                if latest is None:
                    findings.skipped.append(name)
                    return
                findings.checked += 1
                newest, have = str(latest["info"].get("version", "")), installed[name]
                if not newer(have, newest):
                    return
                page = await _page(client, f"{section.index_url}/{quote(name)}/{quote(have)}/json")
            except _Unreachable as exc:
                failures.append(f"{name}: {exc}")
                return
            advisories = security_fixes(have, newest, (page or {}).get("vulnerabilities") or ())
            findings.updates.append(
                Update("python", name, have, newest, bool(advisories), tuple(advisories), page is not None)
            )

    async with httpx.AsyncClient(timeout=section.timeout, follow_redirects=True) as client:
        await asyncio.gather(*(one(client, n) for n in names))
    findings.updates.sort(key=lambda u: u.name)
    if failures:
        failures.sort()
        findings.error = (
            f"index {_where(section.index_url)}: {len(failures)} of {len(names)} distribution(s) "
            f"could not be checked ({'; '.join(failures[:3])}{'...' if len(failures) > 3 else ''})"
        )
    return findings


# -- Debian packages ----------------------------------------------------------------------------

_INST = re.compile(r"^Inst (\S+) (?:\[([^\]]*)\] )?\((\S+) (.*) \[[^\]]*\]\)")
_SECURITY = re.compile(r"-security\b", re.IGNORECASE)  # bookworm-security, Debian-Security:12/...


def parse_apt_simulation(text: str) -> list[Update]:
    """The upgrades in `apt-get -s upgrade --with-new-pkgs` output (`Inst name [installed] (new
    origins [arch])`, no `[installed]` for a new package an upgrade needs); one coming from a
    `*-security` suite is a security update."""
    found = []
    for line in text.splitlines():
        match = _INST.match(line)
        if match:
            name, have, new, origins = match.groups()
            found.append(Update("apt", name, have or "", new, bool(_SECURITY.search(origins))))
    return sorted(found, key=lambda u: u.name)


def check_apt(section: UpdatesConfig, env: Mapping[str, str] | None = None) -> Findings:
    """The host's pending Debian upgrades, from a simulation (no root, no lock, no change)."""
    findings = Findings("apt")
    binary = shutil.which("apt-get")
    if binary is None:
        findings.error = "apt-get is not installed here (set [maintenance.updates].apt = false)"
        return findings
    environment = {**(os.environ if env is None else env), "LC_ALL": "C"}
    said = "apt-get " + " ".join(APT_SIMULATE)
    try:
        proc = subprocess.run(
            [binary, *APT_SIMULATE],
            capture_output=True,
            text=True,
            check=False,
            timeout=max(section.timeout, 60.0),
            env=environment,
        )
    except subprocess.TimeoutExpired:
        findings.error = f"{said} did not finish in time"
        return findings
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        findings.error = f"{said} exited {proc.returncode}: {tail[0] if tail else ''}"
        return findings
    findings.updates = parse_apt_simulation(proc.stdout)
    findings.checked = len(findings.updates)
    return findings


# -- the container image ------------------------------------------------------------------------

MANIFESTS = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


def image_reference(config: Config) -> tuple[str, str, str, str]:
    """(reference as the engine names it, registry host, repository, tag) of `[deploy].image`."""
    image = config.deploy.image
    if not image:
        raise ConfigError(f"{config.source}: [maintenance.updates].image needs [deploy].image")
    tag = config.deploy.tag or config.service.version
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, repository = first, rest
    else:
        host, repository = "docker.io", image if rest else f"library/{image}"
    return f"{image}:{tag}", host, repository, tag


async def registry_digest(base: str, repository: str, tag: str, limit: float) -> str:
    """The digest the registry serves for `repository:tag` (OCI distribution API; an anonymous
    bearer token when the registry asks for one)."""
    url = f"{base}/v2/{repository}/manifests/{tag}"
    headers = {"accept": MANIFESTS}
    async with httpx.AsyncClient(timeout=limit, follow_redirects=True) as client:
        try:
            reply = await client.head(url, headers=headers)
            challenge = reply.headers.get("www-authenticate", "")
            if reply.status_code == 401 and challenge.lower().startswith("bearer "):
                fields = dict(_CHALLENGE.findall(challenge))
                realm = fields.pop("realm", "")
                answer = await client.get(realm, params=fields, follow_redirects=False)
                token = answer.json() if answer.status_code == 200 else None
                if isinstance(token, dict):
                    token = token.get("token") or token.get("access_token")
                if not isinstance(token, str):
                    said = "no token" if answer.status_code == 200 else answer.status_code
                    raise _Unreachable(f"registry {_where(base)}: the token realm answered {said}")
                bearer = token
                reply = await client.head(url, headers={**headers, "authorization": f"Bearer {bearer}"})
        except (httpx.HTTPError, ValueError) as exc:
            raise _Unreachable(f"registry {_where(base)}: {type(exc).__name__}") from None
    digest = reply.headers.get("docker-content-digest")
    if reply.status_code != 200 or not digest:
        raise _Unreachable(f"registry {_where(base)}: {repository}:{tag} answered {reply.status_code}")
    return str(digest)


ENGINES = ("podman", "docker")
_ABSENT = re.compile(r"no such (image|object)|image not known", re.IGNORECASE)


def engine(apply: Sequence[str] = ()) -> str:
    """The container engine to ask: the one `image_apply` runs (`podman`, `docker`,
    `podman-compose`, `docker-compose`: the deployment's engine), else podman, else docker."""
    named = os.path.basename(apply[0]) if apply else ""
    for name in [e for e in ENGINES if named.startswith(e)] + list(ENGINES):
        found = shutil.which(name)
        if found is not None:
            return found
    raise _Unreachable("neither podman nor docker is installed here")


def local_digests(
    reference: str, binary: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> list[str] | None:
    """The repository digests of this host's copy of `reference`; None when the engine answers
    that it has no such image. Any other failure (a timeout, an engine that cannot be reached,
    an answer that is not JSON) is `_Unreachable`: cannot check, never "absent"."""
    what = f"{os.path.basename(binary)} image inspect"
    try:
        proc = subprocess.run(
            [binary, "image", "inspect", "--format", "{{json .RepoDigests}}", reference],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            env=None if env is None else dict(env),
        )
    except subprocess.TimeoutExpired:
        raise _Unreachable(f"{what} did not finish within {timeout:g}s") from None
    except OSError as exc:
        raise _Unreachable(f"{what}: {exc.strerror}") from None
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip()
        if _ABSENT.search(said):
            return None
        tail = said.splitlines()[-1:]
        raise _Unreachable(f"{what} exited {proc.returncode}: {tail[0] if tail else ''}")
    try:
        found = json.loads(proc.stdout.strip() or "[]")
    except ValueError:
        raise _Unreachable(f"{what} answered something that is not JSON") from None
    if found is not None and not isinstance(found, list):
        raise _Unreachable(f"{what} answered JSON that is not a list of digests")
    return [str(d) for d in found or ()]


async def _image_once(config: Config, section: UpdatesConfig) -> Findings:
    findings = Findings("image")
    reference, host, repository, tag = image_reference(config)
    base = section.registry_url or f"https://{'registry-1.docker.io' if host == 'docker.io' else host}"
    try:
        published = await registry_digest(base, repository, tag, section.timeout)
        here = await asyncio.to_thread(local_digests, reference, engine(section.image_apply))
    except _Unreachable as exc:
        findings.error = str(exc)
        return findings
    findings.checked = 1
    if here is None or not any(d.endswith(f"@{published}") for d in here):
        own = [d for d in here or () if d.partition("@")[0] == reference.rpartition(":")[0]]
        have = "absent" if here is None else (own or here or ["@unpublished"])[0].rpartition("@")[2]
        findings.updates.append(Update("image", reference, have, published))
    return findings


async def check_image(config: Config, section: UpdatesConfig) -> Findings:
    """Is the registry's image of `[deploy].image:tag` the one this host has? When not and
    `image_apply` is set, run it (pull, recreate the containers) and check again."""
    findings = await _image_once(config, section)
    if findings.updates and section.image_apply:
        found = [f"found {u.line()}" for u in findings.updates]
        ran = await run_hook(section.image_apply, "image_apply", limit=APPLY_TIMEOUT)
        findings = await _image_once(config, section)
        findings.notes += [*found, ran]
    return findings


# -- the job and the report ---------------------------------------------------------------------


def kinds(section: UpdatesConfig) -> tuple[str, ...]:
    return tuple(k for k in KINDS if getattr(section, k))


async def check(config: Config, section: UpdatesConfig, kind: str, apply: bool = True) -> Findings:
    if kind == "python":
        return await check_python(section)
    if kind == "image":
        return await (check_image if apply else _image_once)(config, section)
    return await asyncio.to_thread(check_apt, section)


def check_all(config: Config) -> dict[str, dict[str, Any]]:
    """Every configured kind's findings (for the report: nothing applied; blocking)."""
    section = config.maintenance.updates
    assert section is not None

    async def run() -> list[Findings]:
        return list(await asyncio.gather(*(check(config, section, k, apply=False) for k in kinds(section))))

    return {f.kind: f.as_dict() for f in asyncio.run(run())}


def updates_job(config: Config) -> Job:
    section = config.maintenance.updates
    assert section is not None
    if section.image:
        image_reference(config)  # a config error when loading, not when the job runs
    job = Job(UPDATES, {}, description="check for (security) updates of Python distributions and apt")

    for kind in kinds(section):

        async def found(ctx: StepContext, kind: str = kind) -> int:
            findings = await check(config, section, kind)
            ctx.shared[kind] = findings
            for note in findings.notes:
                ctx.log.info("%s: %s", kind, note)
            if findings.error is not None:
                ctx.log.error("%s: cannot check: %s", kind, findings.error)
            for update in findings.updates:
                ctx.log.warning("%s update: %s", kind, update.line())
            ctx.log.info(
                "%s: %d checked, %d skipped, %d update(s) pending, %d of them security",
                kind,
                findings.checked,
                len(findings.skipped),
                len(findings.updates),
                len(findings.security),
            )
            return findings.rc()

        def security(ctx: StepContext, kind: str = kind) -> int:
            findings: Findings | None = ctx.shared.get(kind)
            if findings is None:  # the `found` step did not get as far as its findings
                ctx.log.error("%s: cannot check: the %s step left no findings", kind, kind)
                return CANNOT_CHECK
            if findings.error is not None:
                return CANNOT_CHECK
            return WARNING if findings.security else OK

        job.step(kind, timeout=STEP_TIMEOUT)(found)
        if kind in SECURITY_KINDS:
            job.step(f"{kind}-security")(security)
    return job
