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
- `apt` (`apt = true`): the upgrades `apt-get -s upgrade` would make on this host (a simulation:
  no root, no lock, nothing changed; it reads the package lists as the host's last `apt-get
  update` left them), an upgrade from a `*-security` suite being a security update.

Each `<kind>` step ends RC 0 when nothing is pending, 4 when updates are pending (named in the
log), 12 when it cannot check (index unreachable or answering errors, apt-get failing: the reason
in the log, never a traceback); its `<kind>-security` step ends 4 when security updates are
among them. Every job worker publishes `pilothouse_updates_pending{kind, scope}` from the
store; SecurityUpdatesAvailable fires on scope "security"; the daily report lists the updates.

Comparing versions needs `packaging` (the `updates` extra).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from pilothouse.config.maintenance import UpdatesConfig
from pilothouse.config.model import Config
from pilothouse.errors import ConfigError
from pilothouse.jobs.context import StepContext
from pilothouse.jobs.definition import OK, WARNING, Job

UPDATES = "pilothouse.updates"
CANNOT_CHECK = 12
KINDS = ("python", "apt")
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
        said = f"{self.name} {self.installed} -> {self.available}"
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
    """The upgrades in `apt-get -s upgrade` output (`Inst name [installed] (new origins [arch])`);
    one coming from a `*-security` suite is a security update."""
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
    try:
        proc = subprocess.run(
            [binary, "-s", "-q", "upgrade"],
            capture_output=True,
            text=True,
            check=False,
            timeout=max(section.timeout, 60.0),
            env=environment,
        )
    except subprocess.TimeoutExpired:
        findings.error = "apt-get -s upgrade did not finish in time"
        return findings
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        findings.error = f"apt-get -s upgrade exited {proc.returncode}: {tail[0] if tail else ''}"
        return findings
    findings.updates = parse_apt_simulation(proc.stdout)
    findings.checked = len(findings.updates)
    return findings


# -- the job and the report ---------------------------------------------------------------------


def kinds(section: UpdatesConfig) -> tuple[str, ...]:
    return tuple(k for k in KINDS if getattr(section, k))


async def check(section: UpdatesConfig, kind: str) -> Findings:
    if kind == "python":
        return await check_python(section)
    return await asyncio.to_thread(check_apt, section)


def check_all(section: UpdatesConfig) -> dict[str, dict[str, Any]]:
    """Every configured kind's findings (for the report; blocking)."""

    async def run() -> list[Findings]:
        return list(await asyncio.gather(*(check(section, k) for k in kinds(section))))

    return {f.kind: f.as_dict() for f in asyncio.run(run())}


def updates_job(config: Config) -> Job:
    section = config.maintenance.updates
    assert section is not None
    job = Job(UPDATES, {}, description="check for (security) updates of Python distributions and apt")

    for kind in kinds(section):

        async def found(ctx: StepContext, kind: str = kind) -> int:
            findings = await check(section, kind)
            ctx.shared[kind] = findings
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
            findings: Findings = ctx.shared[kind]
            if findings.error is not None:
                return CANNOT_CHECK
            return WARNING if findings.security else OK

        job.step(kind, timeout=600)(found)
        job.step(f"{kind}-security")(security)
    return job
