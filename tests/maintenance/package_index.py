"""Real parts the update check runs against in tests: a local HTTP server speaking PyPI's JSON API
(built from the distributions really installed, with chosen ones newer), and a private apt
configuration (its own sources, lists and cache; the host's dpkg status) whose repositories offer
newer versions of installed Debian packages, one from a `*-security` suite."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pilothouse.maintenance.updates import installed_distributions


class PackageIndex:
    """`/pypi/<name>/json` and `/pypi/<name>/<version>/json` as PyPI answers them. `releases`
    maps a canonical name to its newest version; `vulnerabilities[(name, version)]` is that
    version's list. Unknown names answer 404; `status` (when set) answers every request."""

    def __init__(self) -> None:
        installed, _ = installed_distributions()
        self.releases: dict[str, str] = dict(installed)
        self.vulnerabilities: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.status: int | None = None
        self.requests: list[str] = []
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                index.requests.append(self.path)
                parts = self.path.strip("/").split("/")
                body: dict[str, Any] | None = None
                if (
                    index.status is None
                    and len(parts) in (3, 4)
                    and parts[0] == "pypi"
                    and parts[-1] == "json"
                ):
                    name = parts[1]
                    newest = index.releases.get(name)
                    version = parts[2] if len(parts) == 4 else newest
                    if newest is not None and version is not None:
                        body = {
                            "info": {"name": name, "version": version},
                            "vulnerabilities": index.vulnerabilities.get((name, version), []),
                        }
                code = index.status or (200 if body is not None else 404)
                data = json.dumps(body if body is not None else {"message": "Not Found"}).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # the kernel picks; no race
        self.url = f"http://127.0.0.1:{self.server.server_port}/pypi"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


SECURITY_PACKAGE, PLAIN_PACKAGE = "ncurses-base", "netbase"
"""Installed on every Debian system, with no dependencies to break when a newer one is offered."""


def installed_deb(package: str) -> str:
    return subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True, check=True
    ).stdout


def apt_config(root: Path) -> Path:
    """An APT_CONFIG whose only repositories offer `<installed>+test1` of SECURITY_PACKAGE (suite
    bookworm-security) and PLAIN_PACKAGE (bookworm-updates); its lists are fetched into `root`
    (`apt-get update` of this private configuration: the host's lists are not touched)."""
    sources = []
    for package, suite in ((SECURITY_PACKAGE, "bookworm-security"), (PLAIN_PACKAGE, "bookworm-updates")):
        repo = root / suite
        repo.mkdir(parents=True)
        stanza = subprocess.run(
            [
                "dpkg-query",
                "-W",
                "-f",
                "Package: ${Package}\\nVersion: ${Version}+test1\\nArchitecture: ${Architecture}\\n"
                "Depends: ${Depends}\\nPre-Depends: ${Pre-Depends}\\n",
                package,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        lines = [ln for ln in stanza.splitlines() if not ln.endswith(": ")]
        lines += [f"Filename: ./{package}.deb", "Size: 1", "Description: a newer build for the test", ""]
        (repo / "Packages").write_text("\n".join(lines) + "\n")
        (repo / "Release").write_text(f"Origin: Test\nLabel: Test\nSuite: {suite}\nCodename: {suite}\n")
        sources.append(f"deb [trusted=yes] file:{repo} ./")
    for sub in ("lists/partial", "parts", "cache/archives/partial"):
        (root / sub).mkdir(parents=True)
    (root / "sources.list").write_text("\n".join(sources) + "\n")
    conf = root / "apt.conf"
    conf.write_text(
        f'Dir::State::Lists "{root}/lists";\n'
        f'Dir::Etc::SourceList "{root}/sources.list";\n'
        f'Dir::Etc::SourceParts "{root}/parts";\n'
        f'Dir::Cache "{root}/cache";\n'
        'Debug::NoLocking "true";\n'
    )
    binary = shutil.which("apt-get")
    assert binary, "apt-get is not installed"
    subprocess.run(
        [binary, "update", "-q"],
        env={"APT_CONFIG": str(conf), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )
    return conf


class LocalRegistry:
    """A real OCI registry (Debian's `docker-registry`, the distribution project's) on a loopback
    port the kernel picks, storing under `root`; images are pushed to it with podman."""

    def __init__(self, root: Path) -> None:
        from tests.jobs.conftest import wait_until

        binary = shutil.which("docker-registry")
        assert binary, "docker-registry is not installed (make tools)"
        (root / "data").mkdir(parents=True)
        config = root / "registry.yml"
        config.write_text(
            "version: 0.1\nlog: {level: error}\n"
            f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}\n"
            "http: {addr: '127.0.0.1:0'}\n"
        )
        self.log = (root / "registry.log").open("w")
        self.proc = subprocess.Popen([binary, "serve", str(config)], stdout=self.log, stderr=self.log)
        self.port = 0

        def listening() -> bool:
            assert self.proc.poll() is None, (root / "registry.log").read_text()
            out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                if f"pid={self.proc.pid}," in line:
                    self.port = int(line.split()[3].rsplit(":", 1)[1])
                    return True
            return False

        wait_until(listening, 30, "the registry listening")
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def podman(*args: str) -> str:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=True).stdout.strip()


def tiny_image(root: Path, name: str, content: str) -> str:
    """A one-file image imported into podman's store (no base image, no network)."""
    tree = root / name
    tree.mkdir(parents=True)
    (tree / "version").write_text(content)
    subprocess.run(["tar", "-C", str(tree), "-cf", f"{tree}.tar", "."], check=True)
    reference = f"localhost/{name}:latest"
    podman("import", "-q", f"{tree}.tar", reference)
    return reference
