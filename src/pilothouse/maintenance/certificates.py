"""`pilothouse.certificates`: the expiry of each `[[maintenance.certificates]]` (a PEM file, or what
an https endpoint presents), one step per certificate: RC 0 when it is valid beyond
`certificate_warning`, 4 when it expires within it, 8 when it has expired or cannot be read.
When one needs renewal and `renew_command` is set, the command runs and the certificate is read
again (a renewed one ends ok). Every worker publishes `pilothouse_certificate_expiring` from the
store and the CertificateExpiring alert fires on it.

Reading a certificate needs `cryptography` (the `certificates` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import signal
import ssl
import subprocess
import tempfile
from typing import Any
from urllib.parse import urlsplit

from pilothouse.config.maintenance import CertificateConfig
from pilothouse.config.model import Config
from pilothouse.errors import ConfigError, OperationError
from pilothouse.jobs.context import StepContext
from pilothouse.jobs.definition import ERROR, OK, WARNING, Job

CERTIFICATES = "pilothouse.certificates"


def _load(pem: bytes) -> Any:
    try:
        from cryptography import x509
    except ImportError:
        raise ConfigError(
            "certificate checks need `cryptography`: pip install 'pilothouse[certificates]'"
        ) from None
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise OperationError(f"not a PEM certificate: {exc}") from None


def not_after(cert: CertificateConfig) -> datetime.datetime:
    """When the certificate stops being valid (UTC)."""
    if cert.file is not None:
        try:
            pem = open(cert.file, "rb").read()  # noqa: SIM115 - read whole
        except OSError as exc:
            raise OperationError(f"{cert.file}: {exc.strerror}") from None
    else:
        assert cert.url is not None
        parts = urlsplit(cert.url)
        try:
            pem = ssl.get_server_certificate((parts.hostname or "", parts.port or 443), timeout=15).encode()
        except OSError as exc:
            raise OperationError(f"{cert.url}: {exc}") from None
    found: datetime.datetime = _load(pem).not_valid_after_utc
    return found


def verdict(until: datetime.datetime, warning: float) -> tuple[int, str]:
    left = (until - datetime.datetime.now(datetime.UTC)).total_seconds()
    when = until.strftime("%Y-%m-%dT%H:%M:%SZ")
    if left <= 0:
        return ERROR, f"expired at {when}"
    days = left / 86400
    return (WARNING if left < warning else OK), f"valid until {when} ({days:.1f} days left)"


async def run_hook(command: list[str], what: str, limit: float = 900) -> str:
    """Run a configured maintenance command (argv, no shell, its own process group); what
    happened, in one line for the log. Past `limit` seconds, or when the step running it is
    cancelled (the step's own timeout, a cancel), the whole group is killed and reaped: nothing
    keeps running untracked for the next run to race. Its output goes to files, not pipes: a
    process it leaves behind (a daemon) holding them cannot keep the wait from ending."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = await asyncio.create_subprocess_exec(
                *command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
            )
        except OSError as exc:
            return f"{what} could not start: {command[0]}: {exc.strerror}"
        try:
            async with asyncio.timeout(limit):
                await proc.wait()
        except TimeoutError:
            await _kill(proc)
            return f"{what} did not finish within {limit:g}s (killed)"
        except BaseException:  # cancelled: the step's timeout or a cancel
            await _kill(proc)
            raise
        if proc.returncode == 0:
            return f"{what} ran"
        said = []
        for file in (err, out):
            file.seek(0)
            said.append(file.read().decode(errors="replace").strip())
        tail = (said[0] or said[1]).splitlines()[-1:]
        return f"{what} exited {proc.returncode}: {tail[0] if tail else ''}"


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    await asyncio.shield(proc.wait())


async def _renew(command: list[str]) -> str:
    return await run_hook(command, "renew command")


def certificates_job(config: Config) -> Job:
    job = Job(CERTIFICATES, {}, description="check certificate expiry; run the renew command when due")
    section = config.maintenance

    for cert in section.certificates:

        async def step(ctx: StepContext, cert: CertificateConfig = cert) -> int:
            where = cert.file or cert.url
            try:
                rc, said = verdict(await asyncio.to_thread(not_after, cert), section.certificate_warning)
            except OperationError as exc:
                rc, said = ERROR, f"unreadable: {exc}"
            if rc != OK and section.renew_command:
                ran = await _renew(section.renew_command)
                try:
                    rc, said = verdict(await asyncio.to_thread(not_after, cert), section.certificate_warning)
                except OperationError as exc:
                    rc, said = ERROR, f"unreadable: {exc}"
                said = f"{said} after the {ran}"
            log = ctx.log.info if rc == OK else ctx.log.warning
            log("certificate %s (%s): %s", cert.name, where, said)
            return rc

        job.step(f"cert-{cert.name}")(step)
    return job
