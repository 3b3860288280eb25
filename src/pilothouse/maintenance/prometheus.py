"""`pilothouse.prometheus-cleanup`: series older than N days deleted through Prometheus's admin API
(`delete_series` with an end time, then `clean_tombstones` so the disk space comes back), for data
a retention time would keep too long, or only some series (`match`)."""

from __future__ import annotations

import asyncio
import time

import httpx

from pilothouse.config.model import Config
from pilothouse.durations import parse_duration
from pilothouse.errors import ConfigError, OperationError
from pilothouse.jobs.context import StepContext
from pilothouse.jobs.definition import Job, Param, ParamError

PROMETHEUS_CLEANUP = "pilothouse.prometheus-cleanup"
EVERYTHING = '{__name__=~".+"}'


def url_of(config: Config) -> str:
    if config.maintenance.prometheus is None:
        raise ConfigError(f"{config.source}: [maintenance].prometheus is not set (Prometheus's URL)")
    return config.maintenance.prometheus.rstrip("/")


def _admin(url: str, path: str, params: dict[str, str | float] | None = None) -> None:
    try:
        reply = httpx.post(f"{url}/api/v1/admin/tsdb/{path}", params=params, timeout=600)
    except httpx.HTTPError as exc:
        raise OperationError(f"Prometheus at {url}: {path} failed: {exc}") from None
    if reply.status_code != 204:
        try:
            reason = reply.json().get("error", reply.status_code)
        except ValueError:
            reason = reply.status_code
        hint = " (start Prometheus with --web.enable-admin-api)" if "disabled" in str(reason) else ""
        raise OperationError(f"Prometheus at {url}: {path} refused: {reason}{hint}")


def cleanup(url: str, older_than: float, match: str) -> float:
    """Delete the samples of `match` older than `older_than` seconds, then the tombstones; the cut."""
    end = time.time() - older_than
    _admin(url, "delete_series", {"match[]": match, "end": end})
    _admin(url, "clean_tombstones")
    return end


def prometheus_cleanup(config: Config) -> Job:
    job = Job(
        PROMETHEUS_CLEANUP,
        {
            "older_than": Param(str, default="90d", help="delete samples older than this"),
            "match": Param(str, default=EVERYTHING, help="a series selector (default every series)"),
        },
        description="delete Prometheus samples older than older_than (admin API), then clean tombstones",
    )

    @job.step("cleanup", idempotent=True, retries=1)
    async def run(ctx: StepContext) -> int:
        try:
            older_than = parse_duration(ctx.params["older_than"])
        except ValueError as exc:
            raise ParamError(f"parameter 'older_than': {exc}") from None
        url = url_of(config)
        end = await asyncio.to_thread(cleanup, url, older_than, ctx.params["match"])
        ctx.log.info(
            "deleted %s samples before %s", ctx.params["match"], time.strftime("%FT%TZ", time.gmtime(end))
        )
        return 0

    return job
