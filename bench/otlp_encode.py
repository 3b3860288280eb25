"""Cost per span of encoding OTLP protobuf: Pilothouse's encoder against the SDK's.

A batch of spans as `pilothouse serve` exports them (a `ServerSpan` per request with its HTTP
attributes, and one helper span under it, as `unit_of_work` makes) is encoded to the bytes of an
`ExportTraceServiceRequest`: by `pilothouse.telemetry.otlp_encode.encode_request`, and by the
OpenTelemetry exporter's `encode_spans(...).SerializeToString()` (what its OTLP exporters post).
Reported per span: CPU microseconds (median of repeats, `time.process_time`) and, with
`--instructions`, instructions under callgrind (a run with K batches minus a run with none,
divided by the spans: the setup cancels out). With `--export`, also the whole export of a batch
(encode and POST) to a local OTLP/HTTP receiver in another process answering 200: Pilothouse's
`OtlpExporter` against the SDK's `OTLPSpanExporter` (opentelemetry-exporter-otlp-proto-http),
CPU of this process only. Package versions are printed with the result.

    .venv/bin/python bench/otlp_encode.py [--instructions] [--export] [--server-spans]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

BATCH = 512
PACKAGES = (
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-common",
    "opentelemetry-exporter-otlp-proto-http",
    "protobuf",
    "httpx",
    "requests",
)
RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_port, flush=True)
server.serve_forever()
"""


def batch(size: int = BATCH, helpers: bool = True) -> list[Any]:
    """`size` finished spans: half server spans, half helper spans under them (`helpers=False`:
    server spans only, what `pilothouse serve` exports for a route that makes no spans)."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pilothouse.telemetry.server_span import ServerSpanStarter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop", "service.version": "1.4.2"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("pilothouse")
    starter = ServerSpanStarter(tracer, 1.0)  # type: ignore[arg-type]
    for i in range(size // 2 if helpers else size):
        attributes = {"http.request.method": "GET", "url.path": f"/items/{i}", "url.scheme": "http"}
        span: Any = starter.start("GET", attributes, None, None, None)
        token = trace.context_api.attach(trace.set_span_in_context(span))
        if helpers:
            with tracer.start_as_current_span("load item", attributes={"code.function": "load", "items": 3}):
                pass
        trace.context_api.detach(token)
        span.values["http.response.status_code"] = 200
        span.values["http.route"] = "/items/{id}"
        span._name = "GET /items/{id}"
        span.end()
    return list(memory.get_finished_spans())


def encoders() -> dict[str, Callable[[list[Any]], bytes]]:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from pilothouse.telemetry.otlp_encode import encode_request

    return {
        "pilothouse": encode_request,
        "sdk": lambda spans: encode_spans(spans).SerializeToString(),
    }


def cpu_per_span(encode: Callable[[list[Any]], Any], spans: list[Any], repeats: int = 30) -> float:
    """Median CPU µs per span over `repeats` encodes of the batch."""
    encode(spans)  # warm caches (attribute keys, resource)
    samples = []
    for _ in range(repeats):
        start = time.process_time()
        encode(spans)
        samples.append((time.process_time() - start) / len(spans) * 1e6)
    return statistics.median(samples)


def export_per_span(spans: list[Any], repeats: int = 20) -> dict[str, float]:
    """CPU µs per span of a whole export (encode + POST) to a receiver in another process."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    from pilothouse.telemetry.otlp_export import OtlpExporter, OtlpSettings

    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        url = f"http://127.0.0.1:{receiver.stdout.readline().strip()}"
        exporters = {
            "pilothouse": OtlpExporter(OtlpSettings.from_env("http", {"OTEL_EXPORTER_OTLP_ENDPOINT": url})),
            "sdk": OTLPSpanExporter(endpoint=f"{url}/v1/traces"),
        }
        for name, exporter in exporters.items():
            if exporter.export(spans) is not SpanExportResult.SUCCESS:
                raise SystemExit(f"{name}: the export to {url} failed")

        def export(exporter: Any) -> Callable[[list[Any]], None]:
            def run(batch: list[Any]) -> None:
                if exporter.export(batch) is not SpanExportResult.SUCCESS:
                    raise SystemExit("an export failed")

            return run

        return {name: cpu_per_span(export(exporter), spans, repeats) for name, exporter in exporters.items()}
    finally:
        receiver.kill()
        receiver.wait()


_COLLECTED = re.compile(r"Collected : (\d+)")


def _callgrind(encoder: str, batches: int, helpers: bool = True) -> int:
    with tempfile.TemporaryDirectory(prefix="pilothouse-callgrind-") as tmp:
        log = Path(tmp) / "valgrind.log"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/out",
                f"--log-file={log}",
                sys.executable,
                __file__,
                "--run",
                encoder,
                str(batches),
                *([] if helpers else ["--server-spans"]),
            ],
            check=True,
            cwd=ROOT,
        )
        match = _COLLECTED.search(log.read_text())
        if match is None:
            raise SystemExit("no instruction count in the valgrind log")
        return int(match.group(1))


def instructions_per_span(encoder: str, batches: int = 4, helpers: bool = True) -> float:
    return (_callgrind(encoder, batches, helpers) - _callgrind(encoder, 0, helpers)) / (batches * BATCH)


def _run(encoder: str, batches: int, helpers: bool = True) -> None:
    """The callgrind child: build the batch, encode it `batches` times (0: setup only)."""
    spans = batch(helpers=helpers)
    encode = encoders()[encoder]
    encode(spans[:2])  # both runs import and warm the same code
    for _ in range(batches):
        encode(spans)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instructions", action="store_true", help="also count instructions (callgrind)")
    parser.add_argument("--export", action="store_true", help="also time whole exports to a local receiver")
    parser.add_argument(
        "--server-spans", action="store_true", help="a batch of server spans only (no helper spans)"
    )
    parser.add_argument("--run", nargs=2, metavar=("ENCODER", "BATCHES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        _run(args.run[0], int(args.run[1]), not args.server_spans)
        return 0
    helpers = not args.server_spans
    spans = batch(helpers=helpers)
    sizes = {name: len(encode(spans)) for name, encode in encoders().items()}
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in PACKAGES)
    kind = "spans" if helpers else "server spans"
    print(f"Python {platform.python_version()}, {versions}; batch of {BATCH} {kind}")
    print("| encoder | CPU µs/span | bytes/span |" + (" instructions/span |" if args.instructions else ""))
    print("|---|---:|---:|" + ("---:|" if args.instructions else ""))
    for name, encode in encoders().items():
        row = f"| {name} | {cpu_per_span(encode, spans):.2f} | {sizes[name] / len(spans):.0f} |"
        if args.instructions:
            row += f" {instructions_per_span(name, helpers=helpers):,.0f} |"
        print(row)
    if args.export:
        print()
        print("| exporter (OTLP/HTTP, encode + POST) | CPU µs/span |")
        print("|---|---:|")
        for name, micros in export_per_span(spans).items():
            print(f"| {name} | {micros:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
