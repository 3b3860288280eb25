"""`pilothouse.updates` against real parts: the distributions really installed in this environment
checked against a local index speaking PyPI's JSON API (one newer with a fixed vulnerability, one
newer without), against real PyPI (an old urllib3 with published advisories), an index that
refuses or fails (RC 12 with the reason, no traceback), the host's real `apt-get -s upgrade
--with-new-pkgs` with private repositories offering a security and a plain upgrade and one that
needs a new package; `image_apply` killed with its step; what the engine and the token realm
answer when they fail; the metric every worker publishes
from the store, the promtool-tested SecurityUpdatesAvailable alert and its runbook, and the daily
report's updates section posted to its webhook."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pilothouse.config.loader import load_config
from pilothouse.config.maintenance import UpdatesConfig
from pilothouse.jobs.context import StepContext
from pilothouse.maintenance.certificates import run_hook
from pilothouse.maintenance.updates import (
    APPLY_TIMEOUT,
    CANNOT_CHECK,
    STEP_TIMEOUT,
    _Unreachable,
    check_apt,
    check_python,
    engine,
    installed_distributions,
    local_digests,
    newer,
    parse_apt_simulation,
    registry_digest,
    security_fixes,
    updates_job,
)
from tests.generators.monitoring.engines import Webhook
from tests.generators.monitoring.test_bundle import generated, rules_of
from tests.helpers import run_cli, write_config
from tests.jobs.conftest import pg_schema as pg_schema  # a fixture (of jobs_store)
from tests.maintenance.package_index import (
    PLAIN_PACKAGE,
    SECURITY_PACKAGE,
    LocalRegistry,
    PackageIndex,
    apt_config,
    installed_deb,
    podman,
    tiny_image,
)
from tests.maintenance.test_maintenance import base, jobs_run, published, reporting
from tests.maintenance.test_maintenance import jobs_store as jobs_store  # a fixture
from tests.maintenance.test_maintenance import refused_port as refused_port  # a fixture

INSTALLED, _ = installed_distributions()
ADVISORY = {"id": "GHSA-test-0001", "aliases": ["CVE-2099-0001"], "fixed_in": ["99.0.0"]}


@pytest.fixture
def index() -> Iterator[PackageIndex]:
    served = PackageIndex()
    yield served
    served.stop()


def pending(config: Path) -> dict[tuple[str, ...], float]:
    return published(config, "pilothouse_updates_pending")


def rcs(ran: subprocess.CompletedProcess[str]) -> dict[str, int]:
    return {s["name"]: s["rc"] for s in json.loads(ran.stdout)["steps"]}


def test_versions_and_advisories_are_compared_not_guessed() -> None:
    assert newer("2.31.0", "2.32.3") and not newer("2.32.3", "2.32.3") and not newer("1.0", "1.0rc1")
    assert newer("1.0rc1", "1.0") and not newer("1.0", "not-a-version")
    vulns = [
        {"id": "A", "fixed_in": ["1.2"]},  # fixed by the update
        {"id": "B", "fixed_in": ["2.0"]},  # fixed only beyond the newest release: no update fixes it
        {"id": "C", "fixed_in": ["0.9"]},  # fixed before the installed version
        {"id": "D", "fixed_in": ["garbage", "1.1.post1"]},
        {"aliases": ["CVE-1"], "fixed_in": ["1.3"]},
        {"id": "W", "fixed_in": ["1.2"], "withdrawn": "2024-01-01T00:00:00Z"},  # retracted: not one
    ]
    assert security_fixes("1.0", "1.5", vulns) == ["A", "CVE-1", "D"]
    assert security_fixes("1.0", "1.1.post1", vulns) == ["D"]


def test_python_updates_from_a_local_index(
    tmp_path: Path, index: PackageIndex, jobs_store: str, refused_port: int
) -> None:
    assert {"httpx", "pyyaml"} <= set(INSTALLED)
    index.releases["httpx"] = "99.0.0"
    index.vulnerabilities[("httpx", INSTALLED["httpx"])] = [ADVISORY]
    index.releases["pyyaml"] = "99.1"
    del index.releases["pytest"]  # a name the index does not know: skipped
    config = write_config(tmp_path, base(f'[maintenance.updates]\nindex_url = "{index.url}"', jobs_store))
    assert pending(config) == {("python", "all"): 0.0, ("python", "security"): 0.0}  # never checked

    ran = jobs_run(config, "pilothouse.updates")
    assert ran.returncode == 0, ran.stderr  # updates pending are a warning, not a failure
    assert rcs(ran) == {"python": 4, "python-security": 4}
    assert f"httpx {INSTALLED['httpx']} -> 99.0.0 (security: GHSA-test-0001)" in ran.stderr
    (plain,) = [line for line in ran.stderr.splitlines() if f"pyyaml {INSTALLED['pyyaml']} -> 99.1" in line]
    assert "security" not in plain
    assert (
        f"{len(INSTALLED) - 1} checked, " in ran.stderr
        and "2 update(s) pending, 1 of them security" in ran.stderr
    )
    assert "/pypi/pytest/json" in index.requests
    assert pending(config) == {("python", "all"): 1.0, ("python", "security"): 1.0}

    index.vulnerabilities.clear()  # a newer release, no advisory: pending, not security
    ran = jobs_run(config, "pilothouse.updates")
    assert rcs(ran) == {"python": 4, "python-security": 0}
    assert pending(config) == {("python", "all"): 1.0, ("python", "security"): 0.0}

    index.releases.update(INSTALLED)  # everything current
    ran = jobs_run(config, "pilothouse.updates")
    assert ran.returncode == 0 and rcs(ran) == {"python": 0, "python-security": 0}, ran.stderr
    assert pending(config) == {("python", "all"): 0.0, ("python", "security"): 0.0}

    index.status = 503  # the index fails: cannot check, a failed run (JobFailures), no traceback
    ran = jobs_run(config, "pilothouse.updates")
    assert ran.returncode == 1 and rcs(ran) == {"python": 12, "python-security": 12}
    assert f"cannot check: index http://127.0.0.1:{index.server.server_port}: " in ran.stderr
    assert "answered 503" in ran.stderr and "Traceback" not in ran.stderr
    assert pending(config) == {("python", "all"): 0.0, ("python", "security"): 0.0}

    config.write_text(
        base(f'[maintenance.updates]\nindex_url = "http://127.0.0.1:{refused_port}/pypi"', jobs_store)
    )
    ran = jobs_run(config, "pilothouse.updates")
    assert ran.returncode == 1 and rcs(ran) == {"python": 12, "python-security": 12}
    assert "ConnectError" in ran.stderr and "Traceback" not in ran.stderr


def test_only_the_named_packages_against_real_pypi() -> None:
    """PyPI's JSON API as it is reached from here: an old urllib3 has a newer release, the httpx
    installed here is compared with PyPI's newest as PyPI itself reports it. PyPI publishes
    advisories of urllib3 1.26.4 (CVE-2021-33503) on the version's page; where the index reached
    has no such page (a mirror), the advisories are unknown, never "none"."""
    section = UpdatesConfig(packages=["urllib3", "httpx", "no-such-dist"], timeout="20s")
    found = asyncio.run(check_python(section, {"urllib3": "1.26.4", "httpx": INSTALLED["httpx"]}))
    assert found.error is None, found.error
    by_name = {u.name: u for u in found.updates}
    urllib3 = by_name["urllib3"]
    newest = {
        name: httpx.get(f"https://pypi.org/pypi/{name}/json", timeout=20).json()["info"]["version"]
        for name in ("urllib3", "httpx")
    }
    urllib3 = by_name["urllib3"]
    assert (urllib3.installed, urllib3.available) == ("1.26.4", newest["urllib3"])
    assert (urllib3.security and urllib3.advisories) or not urllib3.advisories_known
    assert ("httpx" in by_name) == newer(INSTALLED["httpx"], newest["httpx"])
    assert found.skipped == ["no-such-dist"] and found.checked == 2


APT_SIMULATION = """\
NOTE: This is only a simulation!
Inst libgcrypt20 [1.10.1-3] (1.10.1-3+deb12u1 Debian:12.15/oldstable, \
Debian-Security:12/oldstable-security [amd64])
Inst liblzma-dev [5.4.1-1] (5.4.1-1+deb12u2 Debian-Security:12/oldstable-security [amd64]) []
Inst tzdata [2024a-0+deb12u1] (2025b-0+deb12u1 Debian:12.15/oldstable-updates [all])
Inst linux-image-6.1.0-99-amd64 (6.1.999-1 Debian-Security:12/oldstable-security [amd64])
Inst linux-image-amd64 [6.1.123-1] (6.1.999-1 Debian-Security:12/oldstable-security [amd64])
Conf libgcrypt20 (1.10.1-3+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64])
"""


def test_apt_simulation_output_is_parsed() -> None:
    found = {u.name: (u.installed, u.available, u.security) for u in parse_apt_simulation(APT_SIMULATION)}
    assert found == {
        "libgcrypt20": ("1.10.1-3", "1.10.1-3+deb12u1", True),
        "liblzma-dev": ("5.4.1-1", "5.4.1-1+deb12u2", True),
        "tzdata": ("2024a-0+deb12u1", "2025b-0+deb12u1", False),
        "linux-image-6.1.0-99-amd64": ("", "6.1.999-1", True),  # new: the upgrade below needs it
        "linux-image-amd64": ("6.1.123-1", "6.1.999-1", True),
    }
    (new,) = [u for u in parse_apt_simulation(APT_SIMULATION) if not u.installed]
    assert new.line() == "linux-image-6.1.0-99-amd64 (new) -> 6.1.999-1 (security)"


def test_apt_upgrades_of_this_host(tmp_path: Path) -> None:
    """The real apt-get simulates the upgrade from private repositories against this host's dpkg
    status; then, as the host's own lists say, every reported version is the one dpkg and apt-cache
    name."""
    conf = apt_config(tmp_path / "apt")
    found = check_apt(UpdatesConfig(apt=True), {**os.environ, "APT_CONFIG": str(conf)})
    assert found.error is None, found.error
    assert [(u.name, u.installed, u.available, u.security) for u in found.updates] == [
        (SECURITY_PACKAGE, installed_deb(SECURITY_PACKAGE), installed_deb(SECURITY_PACKAGE) + "+test1", True),
        (PLAIN_PACKAGE, installed_deb(PLAIN_PACKAGE), installed_deb(PLAIN_PACKAGE) + "+test1", False),
    ]  # sorted by name

    host = check_apt(UpdatesConfig(apt=True))  # the host's own lists, whatever they hold today
    assert host.error is None, host.error
    for update in [u for u in host.updates if u.installed][:5]:  # not the new packages upgrades need
        assert update.installed == installed_deb(update.name)
        policy = subprocess.run(
            ["apt-cache", "policy", update.name],
            capture_output=True,
            text=True,
            check=True,
            env={"LC_ALL": "C"},
        ).stdout
        assert f"Candidate: {update.available}\n" in policy

    bad = tmp_path / "bad.conf"
    bad.write_text('Dir::State::Lists "unterminated;\n')
    broken = check_apt(UpdatesConfig(apt=True), {**os.environ, "APT_CONFIG": str(bad)})
    assert broken.error is not None, broken
    assert broken.error.startswith("apt-get -s -q upgrade --with-new-pkgs exited 100: E: "), broken


NEEDS_NEW = "hostname"  # installed everywhere apt is, not one of package_index's two
NEW_DEPENDENCY = "phtest-new-abi-1"


def test_an_upgrade_that_needs_a_new_package_is_pending(tmp_path: Path) -> None:
    """As a kernel security fix comes: the new build of an installed package depends on a package
    not installed yet (a new ABI's image). Plain `apt-get upgrade` keeps such an upgrade back and
    would leave it out; here it is pending, with the new package, both from the security suite."""
    conf = apt_config(tmp_path / "apt")
    repo = tmp_path / "apt" / "new-abi"
    repo.mkdir()
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True)
    have = installed_deb(NEEDS_NEW)
    (repo / "Packages").write_text(
        "".join(
            f"Package: {name}\nVersion: {version}\nArchitecture: {arch.stdout.strip()}\n{depends}"
            f"Filename: ./{name}.deb\nSize: 1\nDescription: for the test\n\n"
            for name, version, depends in (
                (NEEDS_NEW, f"{have}+test1", f"Depends: {NEW_DEPENDENCY}\n"),
                (NEW_DEPENDENCY, "1.0", ""),
            )
        )
    )
    (repo / "Release").write_text("Origin: Test\nSuite: bookworm-security\nCodename: bookworm-security\n")
    with (tmp_path / "apt" / "sources.list").open("a") as sources:
        sources.write(f"deb [trusted=yes] file:{repo} ./\n")
    env = {**os.environ, "APT_CONFIG": str(conf)}
    subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)

    found = check_apt(UpdatesConfig(apt=True), env)
    assert found.error is None, found.error
    by_name = {u.name: (u.installed, u.available, u.security) for u in found.updates}
    assert by_name[NEEDS_NEW] == (have, f"{have}+test1", True), by_name
    assert by_name[NEW_DEPENDENCY] == ("", "1.0", True), by_name
    assert {SECURITY_PACKAGE, PLAIN_PACKAGE} <= set(by_name)


def test_apt_step_and_report_section_posted_to_the_webhook(tmp_path: Path, index: PackageIndex) -> None:
    conf = apt_config(tmp_path / "apt")
    index.releases["httpx"] = "99.0.0"
    index.vulnerabilities[("httpx", INSTALLED["httpx"])] = [ADVISORY]
    reports = tmp_path / "reports"
    updates = f'[maintenance.updates]\nindex_url = "{index.url}"\napt = true\n'
    config = write_config(tmp_path, base(reporting(reports) + updates))
    hook = Webhook()
    env = {"APT_CONFIG": str(conf), "MT_REPORT_URL": hook.url + "/report", "PILOTHOUSE_OPS__PORT": "1"}
    try:
        ran = jobs_run(config, "pilothouse.updates", env=env)
        assert ran.returncode == 0, ran.stderr
        assert rcs(ran) == {"python": 4, "python-security": 4, "apt": 4, "apt-security": 4}
        assert f"apt update: {SECURITY_PACKAGE} " in ran.stderr and "(security)" in ran.stderr
        assert pending(config) == {
            ("python", "all"): 1.0,
            ("python", "security"): 1.0,
            ("apt", "all"): 1.0,
            ("apt", "security"): 1.0,
        }
        report = jobs_run(config, "pilothouse.report", env=env)
        assert report.returncode == 0, report.stderr
        (posted,) = hook.payloads
    finally:
        hook.stop()
    assert posted["path"] == "/report"
    updates = posted["updates"]
    assert [u["name"] for u in updates["python"]["updates"]] == ["httpx"]
    assert updates["python"]["updates"][0]["advisories"] == ["GHSA-test-0001"]
    assert {u["name"]: u["security"] for u in updates["apt"]["updates"]} == {
        SECURITY_PACKAGE: True,
        PLAIN_PACKAGE: False,
    }
    assert "security updates pending (python): httpx" in posted["attention"]
    assert f"security updates pending (apt): {SECURITY_PACKAGE}" in posted["attention"]
    text = next(reports.glob("report-*.md")).read_text()
    assert "## Updates available" in text
    assert f"| python | httpx | {INSTALLED['httpx']} | 99.0.0 | yes: GHSA-test-0001 |" in text
    assert f"| apt | {PLAIN_PACKAGE} | {installed_deb(PLAIN_PACKAGE)} |" in text


def test_security_updates_alert_is_tested_and_its_runbook_is_the_patch_procedure(tmp_path: Path) -> None:
    config = write_config(tmp_path, base("[maintenance.updates]\napt = true"))
    out = generated(tmp_path, config)
    result = run_cli("validate", str(out), "--format", "json", "--strict")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SecurityUpdatesAvailable" in {r.get("alert") for r in rules_of(out)}
    runbook = (out / "runbooks/SecurityUpdatesAvailable.md").read_text()
    for command in (
        "pilothouse jobs run pilothouse.updates",
        "pilothouse build --no-cache --tag mt:0.0.0-1",
        "pilothouse smoke --image mt:0.0.0-1",
        "pilothouse install systemd --upgrade --version 0.0.0-1",
        "pilothouse install systemd --rollback",
        "apt-get update && apt-get upgrade --with-new-pkgs",
        "apt-get -s upgrade --with-new-pkgs | grep -i security",
    ):
        assert command in runbook, command


@pytest.mark.parametrize(
    ("updates", "fragment"),
    [
        ('index_url = "pypi.org/pypi"', "expected an http:// or https:// URL"),
        ("concurrency = 0", "concurrency"),
        ('timeout = "soon"', "timeout"),
        ("image = true", "[maintenance.updates].image needs [deploy].image"),
        ('registry_url = "https://user:pw@registry.example"', "password"),
    ],
)
def test_bad_updates_config_is_one_line(tmp_path: Path, updates: str, fragment: str) -> None:
    from tests.jobs.test_cli import one_error

    config = write_config(tmp_path, base(f"[maintenance.updates]\n{updates}"))
    one_error(run_cli("jobs", "run", "pilothouse.updates", "-c", str(config)), 2, str(config), fragment)


def test_container_image_updates_from_a_real_registry(tmp_path: Path, refused_port: int) -> None:
    """5.1d: the tag `[deploy].image` names is pushed to a real OCI registry; the check compares
    the registry's digest with podman's copy here, `image_apply` pulls the new one."""
    registry = LocalRegistry(tmp_path / "registry")
    name = f"phupd-{os.getpid()}"
    first, second = tiny_image(tmp_path, f"{name}-a", "one\n"), tiny_image(tmp_path, f"{name}-b", "two\n")
    reference = f"{registry.host}/{name}:1.0.0"
    insecure = "--tls-verify=false"

    def configure(apply: str = "", registry_url: str = registry.url) -> Path:
        return write_config(
            tmp_path,
            base(f"""
[maintenance.updates]
python = false
image = true
registry_url = "{registry_url}"
{apply}
""")
            + f'[deploy]\nimage = "{registry.host}/{name}"\ntag = "1.0.0"\n',
        )

    try:
        podman("push", "-q", insecure, first, reference)
        config = configure()
        ran = jobs_run(config, "pilothouse.updates")  # published, not on this host yet
        assert ran.returncode == 0 and rcs(ran) == {"image": 4}, ran.stderr
        assert f"image update: {reference} absent -> sha256:" in ran.stderr

        podman("pull", "-q", insecure, reference)
        ran = jobs_run(config, "pilothouse.updates")
        assert rcs(ran) == {"image": 0}, ran.stderr
        assert pending(config) == {("image", "all"): 0.0}

        podman("push", "-q", insecure, second, reference)  # a new image under the same tag
        published = httpx.head(
            f"{registry.url}/v2/{name}/manifests/1.0.0",
            headers={"accept": "application/vnd.oci.image.manifest.v1+json"},
        ).headers["docker-content-digest"]
        ran = jobs_run(config, "pilothouse.updates")
        assert rcs(ran) == {"image": 4}, ran.stderr
        assert f"-> {published}" in ran.stderr
        assert pending(config) == {("image", "all"): 1.0}

        config = configure(f'image_apply = ["podman", "pull", "-q", "{insecure}", "{reference}"]')
        ran = jobs_run(config, "pilothouse.updates")
        assert rcs(ran) == {"image": 0} and "image: image_apply ran" in ran.stderr, ran.stderr
        assert any(
            d.endswith(f"@{published}")
            for d in json.loads(podman("image", "inspect", "--format", "{{json .RepoDigests}}", reference))
        )

        config = configure(registry_url=f"http://127.0.0.1:{refused_port}")
        ran = jobs_run(config, "pilothouse.updates")
        assert ran.returncode == 1 and rcs(ran) == {"image": 12}
        assert f"registry http://127.0.0.1:{refused_port}: ConnectError" in ran.stderr
        assert "Traceback" not in ran.stderr
    finally:
        registry.stop()
        for image in (first, second, reference):
            subprocess.run(["podman", "rmi", "-f", image], capture_output=True, check=False)


def test_image_apply_is_killed_with_its_step(tmp_path: Path) -> None:
    """`image_apply` runs under a limit below its step's; when the step is cancelled (its timeout,
    a cancel) or the limit passes, the command's whole process group (a compose's children too) is
    killed and reaped while the worker's loop runs on, so no apply keeps running untracked beside
    the next run's."""
    assert APPLY_TIMEOUT < STEP_TIMEOUT
    pid_file = tmp_path / "pids"
    command = ["sh", "-c", f"sleep 300 & echo $$ $! > {pid_file}.new; mv {pid_file}.new {pid_file}; wait"]
    pids: list[int] = []

    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
        except FileNotFoundError:
            return False

    async def started(limit: float) -> asyncio.Task[str]:
        pid_file.unlink(missing_ok=True)
        task = asyncio.create_task(run_hook(command, "image_apply", limit=limit))
        async with asyncio.timeout(30):
            while not pid_file.exists():
                await asyncio.sleep(0.01)
        pids[:] = [int(p) for p in pid_file.read_text().split()]
        return task

    async def left() -> list[int]:  # asked while the loop runs on, as a worker's does
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                while any(alive(pid) for pid in pids):
                    await asyncio.sleep(0.01)
        return [pid for pid in pids if alive(pid)]

    async def cancelled() -> tuple[bool, list[int]]:
        task = await started(APPLY_TIMEOUT)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True, await left()
        return False, await left()

    async def past_its_limit() -> tuple[str, list[int]]:
        said = await (await started(0.5))
        return said, await left()

    try:
        assert asyncio.run(cancelled()) == (True, [])
        assert asyncio.run(past_its_limit()) == ("image_apply did not finish within 0.5s (killed)", [])
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    said = asyncio.run(run_hook([str(tmp_path / "no-such-command")], "image_apply"))
    assert said == f"image_apply could not start: {tmp_path / 'no-such-command'}: No such file or directory"
    failing = ["sh", "-c", "echo bad >&2; exit 3"]
    assert asyncio.run(run_hook(failing, "image_apply")) == "image_apply exited 3: bad"


def test_what_the_engine_answers_when_it_cannot_say(tmp_path: Path) -> None:
    """Only the engine's "no such image" is an absent image; an engine that cannot be reached,
    does not answer in time or answers something else is "cannot check" (one line), never
    "absent" (an update) and never a traceback. The engine is the deployment's."""
    podman = shutil.which("podman")
    assert podman, "podman is not installed"
    assert local_digests(f"localhost/phupd-absent-{os.getpid()}:1", podman) is None

    def scripted(name: str, body: str) -> str:
        script = tmp_path / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
        return str(script)

    absent = scripted("docker", "echo 'Error response from daemon: No such image: x:1' >&2; exit 1")
    assert local_digests("x:1", absent) is None
    for body, said in (
        (
            "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2; exit 1",
            "docker image inspect exited 1: Cannot connect to the Docker daemon at unix:///var/run/docker.sock.",
        ),
        ("echo 'not json'", "docker image inspect answered something that is not JSON"),
        ("echo '{\"a\": 1}'", "docker image inspect answered JSON that is not a list of digests"),
        ("exec sleep 300", "docker image inspect did not finish within 0.5s"),
    ):
        with pytest.raises(_Unreachable) as raised:
            local_digests("x:1", scripted("docker", body), timeout=0.5)
        assert str(raised.value) == said

    assert engine() == podman and engine(["podman-compose", "up", "-d"]) == podman
    docker = shutil.which("docker")
    assert engine(["docker", "compose", "up", "-d"]) == (docker or podman)
    assert engine(["/usr/bin/docker-compose", "up"]) == (docker or podman)


class _Registry(http.server.BaseHTTPRequestHandler):
    """A registry asking for a bearer token at /token, which answers as `token` says."""

    token: tuple[int, dict[str, str], bytes] = (200, {}, b"{}")

    def do_HEAD(self) -> None:
        if self.headers.get("authorization") == "Bearer good":
            self.send_response(200)
            self.send_header("docker-content-digest", "sha256:" + "0" * 64)
        else:
            self.send_response(401)
            realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
            self.send_header("www-authenticate", f'Bearer realm="{realm}",service="test"')
        self.end_headers()

    def do_GET(self) -> None:
        elsewhere = (200, {}, b'{"token": "good"}')  # where a redirect leads: not to be followed
        status, headers, body = self.token if self.path.startswith("/token?") else elsewhere
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_what_the_token_realm_answers_is_checked() -> None:
    """The realm's reply: a non-200 status, JSON that is not an object, an object without a token
    are "cannot check" (one line, no traceback); a redirect is not followed."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    where = f"registry {base}: the token realm answered"
    try:
        for token, said in (
            ((200, {}, b'{"token": "good"}'), None),
            ((200, {}, b'["good"]'), f"{where} no token"),
            ((200, {}, b'{"token": 1}'), f"{where} no token"),
            ((500, {}, b'{"token": "good"}'), f"{where} 500"),
            ((302, {"location": "/elsewhere"}, b""), f"{where} 302"),
        ):
            _Registry.token = token
            if said is None:
                assert asyncio.run(registry_digest(base, "app", "1", 10)) == "sha256:" + "0" * 64
                continue
            with pytest.raises(_Unreachable) as raised:
                asyncio.run(registry_digest(base, "app", "1", 10))
            assert str(raised.value) == said
    finally:
        server.shutdown()
        server.server_close()


def test_security_step_without_findings_cannot_check(tmp_path: Path) -> None:
    """A `-security` step whose `found` step left no findings ends RC 12, not a KeyError."""
    config = load_config(write_config(tmp_path, base("[maintenance.updates]\napt = true")))
    steps = {s.name: s for s in updates_job(config).steps}
    assert steps["apt"].timeout == STEP_TIMEOUT
    ctx = StepContext(1, "pilothouse.updates", "apt-security", 1, {}, {}, 0)
    assert steps["apt-security"].func(ctx) == CANNOT_CHECK
