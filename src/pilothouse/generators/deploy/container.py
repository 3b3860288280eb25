"""The container image: a multi-stage Dockerfile and its ignore file.

Wheels are built in a builder stage; the runtime stage has no compiler, no source tree and no
package cache, runs as a fixed non-root UID, and checks its own liveness path on the ops port
with Python (the slim image has no curl).
"""

from __future__ import annotations

from pilothouse.config import Config
from pilothouse.generators.deploy import facts

DOCKERFILE = "Dockerfile"
DOCKERIGNORE = "Dockerfile.dockerignore"
"""BuildKit reads `<Dockerfile>.dockerignore` beside a Dockerfile that is outside the context root."""


def healthcheck_url(config: Config) -> str:
    return f"http://127.0.0.1:{config.ops.port}{config.probes.liveness_path}"


def healthcheck_command(config: Config) -> list[str]:
    """Exit 0 when liveness answers 2xx; urlopen raises (exit 1) on errors and non-2xx."""
    timeout = max(1, round(config.probes.check_timeout + 1))
    code = f"import urllib.request; urllib.request.urlopen('{healthcheck_url(config)}', timeout={timeout})"
    return ["python", "-c", code]


def _json_list(items: list[str]) -> str:
    return "[" + ", ".join('"' + i.replace("\\", "\\\\").replace('"', '\\"') + '"' for i in items) + "]"


def dockerfile(config: Config, location: str = "deploy") -> str:
    c = config.deploy.container
    base = f"python:{c.python}-slim-bookworm"
    uid = c.uid
    name = config.service.name
    requirements = (
        f"COPY {c.requirements} /src/requirements.txt\n"
        "RUN pip wheel --no-cache-dir --wheel-dir /wheels -r /src/requirements.txt\n"
        if c.requirements
        else ""
    )
    packages = " ".join(f'"{p}"' for p in c.packages)
    copies = "".join(f"COPY --chown=root:root {p} {facts.APP_DIR}/{p}\n" for p in facts.app_paths(config))
    interval = 10
    start = facts.startup_window_seconds(config)
    env_lines = "".join(
        f"ENV {k}={v}\n"
        for k, v in facts.plain_env(config).items()
        if k in {"PILOTHOUSE_CONFIG", "PYTHONPATH"}
    )
    return f"""# Build in the directory of pilothouse.toml:
#   docker build -f {location}/Dockerfile -t {facts.image_ref(config)} .

FROM {base} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
{requirements}RUN pip wheel --no-cache-dir --wheel-dir /wheels {packages}

FROM {base}
LABEL org.opencontainers.image.title="{name}" \\
      org.opencontainers.image.version="{config.service.version}" \\
      org.opencontainers.image.source="{c.source_url}"
ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \\
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl \\
    && groupadd --system --gid {uid} {name} \\
    && useradd --system --uid {uid} --gid {uid} --no-create-home --shell /usr/sbin/nologin {name}
{copies}COPY --chown=root:root {facts.CONFIG_FILE} {facts.config_path()}
{env_lines}WORKDIR {facts.APP_DIR}
USER {uid}:{uid}
EXPOSE {config.service.port} {config.ops.port}
STOPSIGNAL SIGTERM
HEALTHCHECK --interval={interval}s --timeout={max(2, round(config.probes.check_timeout + 2))}s \\
    --start-period={start}s --retries=3 \\
    CMD {_json_list(healthcheck_command(config))}
CMD ["pilothouse", "serve", "--config", "{facts.config_path()}"]
"""


def dockerignore(config: Config) -> str:
    """Only the app package, the config and the requirements may enter the build context."""
    keep = [*facts.app_paths(config), facts.CONFIG_FILE]
    if config.deploy.container.requirements:
        keep.append(config.deploy.container.requirements)
    lines = ["# Everything is excluded, then what the Dockerfile copies is let back in.", "*"]
    lines += [f"!{p}" for p in keep]
    lines += ["**/__pycache__", "**/*.pyc", "**/*.sqlite3", "**/.env", "**/secrets"]
    return "\n".join(lines) + "\n"


def files(config: Config, location: str = "deploy") -> dict[str, str]:
    """`location`: where the bundle sits relative to the build context (for the build hint)."""
    return {DOCKERFILE: dockerfile(config, location), DOCKERIGNORE: dockerignore(config)}
