"""The OTLP/HTTP transport (`otlp_export.HttpTransport`, the standard library's `http.client`)
against real servers: an http:// proxy asked for the whole URL, a CONNECT tunnel to an https
receiver, `no_proxy`, the trust roots from `SSL_CERT_FILE`, mutual TLS, a keep-alive connection
the receiver closed while idle (plain and TLS), and headers, endpoints and files that could not
work refused when the settings are read."""

from __future__ import annotations

import base64
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

from pilothouse.errors import ConfigError
from pilothouse.telemetry.otlp_export import SENT, HttpTransport, OtlpExporter, OtlpSettings
from tests.helpers import self_signed_certificate
from tests.runtime.tcp_gate import pipe
from tests.telemetry.conftest import HttpReceiver
from tests.telemetry.test_otlp_export import every_kind_of_span


def test_an_http_endpoint_is_reached_through_the_http_proxy(http_receiver: HttpReceiver) -> None:
    """`http_proxy`: the proxy (the receiver plays it) is asked for the whole URL, with the
    proxy's credentials from its URL; the endpoint's host is never resolved here."""
    proxy = f"http://otel:p%40ss@127.0.0.1:{http_receiver.port}"
    # credentials in the endpoint go as Basic auth (as httpx sent them), never in the target
    endpoint = "http://user:s3cret@collector.invalid:4318"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "http_proxy": proxy}
    exporter = OtlpExporter(OtlpSettings.from_env("http", env))
    assert exporter.export(every_kind_of_span()) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert http_receiver.targets == ["http://collector.invalid:4318/v1/traces"]
    headers, request = http_receiver.requests[0]
    assert headers["proxy-authorization"] == "Basic " + base64.b64encode(b"otel:p@ss").decode()
    assert headers["authorization"] == "Basic " + base64.b64encode(b"user:s3cret").decode()
    assert headers["host"] == "collector.invalid:4318"
    assert request.resource_spans[0].scope_spans[0].spans


def test_proxy_variables_as_urllib_reads_them() -> None:
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example:4318"}
    assert OtlpSettings.from_env("http", endpoint).proxy is None
    assert (
        OtlpSettings.from_env("http", {**endpoint, "HTTPS_PROXY": "proxy:3128"}).proxy == "http://proxy:3128"
    )
    # lowercase first; all_proxy when the scheme has none; http_proxy is not for https
    both = {**endpoint, "https_proxy": "http://a:1", "HTTPS_PROXY": "http://b:2"}
    assert OtlpSettings.from_env("http", both).proxy == "http://a:1"
    assert OtlpSettings.from_env("http", {**endpoint, "all_proxy": "http://c:3"}).proxy == "http://c:3"
    assert OtlpSettings.from_env("http", {**endpoint, "http_proxy": "http://d:4"}).proxy is None
    for no_proxy in ("collector.example", ".example", "example", "*", "other, collector.example:4318"):
        env = {**endpoint, "https_proxy": "http://a:1", "no_proxy": no_proxy}
        assert OtlpSettings.from_env("http", env).proxy is None, no_proxy
    env = {**endpoint, "https_proxy": "http://a:1", "NO_PROXY": "other.example"}
    assert OtlpSettings.from_env("http", env).proxy == "http://a:1"
    # by host, whatever the endpoint's credentials or brackets
    for url in ("http://[::1]:4318", "http://user:pw@collector:4318"):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "http_proxy": "http://a:1", "no_proxy": "::1,collector"}
        assert OtlpSettings.from_env("http", env).proxy is None, url
    # gRPC takes grpc's own proxy settings: none here
    assert OtlpSettings.from_env("grpc", {"https_proxy": "http://a:1"}).proxy is None
    with pytest.raises(ConfigError, match=r"^https_proxy: https://proxy\.\.\. is not supported .*http://"):
        OtlpSettings.from_env("http", {**endpoint, "https_proxy": "https://user:secret@proxy:3128"})


@pytest.fixture
def connect_proxy() -> Iterator[tuple[int, list[bytes]]]:
    """A CONNECT proxy: each tunnel's request head is recorded, then bytes are relayed both ways."""
    listener = socket.create_server(("127.0.0.1", 0))
    heads: list[bytes] = []

    def tunnel(client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        heads.append(head)
        host, _, port = head.split(b" ")[1].decode().rpartition(":")
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=tunnel, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1], heads
    listener.close()


def test_an_https_endpoint_is_reached_through_a_connect_tunnel(
    http_receiver: HttpReceiver, connect_proxy: tuple[int, list[bytes]], tmp_path: Path
) -> None:
    """`https_proxy`: a CONNECT tunnel (the proxy's credentials on the CONNECT, not on the
    request inside), TLS with the receiver inside it, verified against `SSL_CERT_FILE`."""
    import ssl

    cert, key = self_signed_certificate(tmp_path, "otlp", days=1, common_name="otlp-test", ip="127.0.0.1")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    http_receiver.server.socket = tls.wrap_socket(http_receiver.server.socket, server_side=True)
    port, heads = connect_proxy
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://127.0.0.1:{http_receiver.port}",
        "HTTPS_PROXY": f"http://otel:secret@127.0.0.1:{port}",
        "SSL_CERT_FILE": str(cert),
    }
    exporter = OtlpExporter(OtlpSettings.from_env("http", env))
    assert exporter.export(every_kind_of_span()) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert len(heads) == 1
    assert heads[0].startswith(f"CONNECT 127.0.0.1:{http_receiver.port} HTTP/1.".encode())
    credentials = base64.b64encode(b"otel:secret")
    assert b"\r\nproxy-authorization: Basic " + credentials + b"\r\n" in heads[0]
    headers, _ = http_receiver.requests[0]
    assert "proxy-authorization" not in headers
    assert http_receiver.targets == ["/v1/traces"]


class _KeepAliveOnce(BaseHTTPRequestHandler):
    """Answers 200 as HTTP/1.1 without `Connection: close`, then closes the connection anyway
    (as a receiver closing an idle keep-alive connection); counts the connections handled."""

    protocol_version = "HTTP/1.1"
    closed: threading.Semaphore

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.close_connection = True

    def finish(self) -> None:
        super().finish()
        self.connection.close()
        self.closed.release()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_keep_alive_connection_the_receiver_closed_is_opened_again_at_once(
    scheme: str, tmp_path: Path
) -> None:
    """The second POST finds its connection closed by the receiver: it is sent again on a new
    connection in the same attempt, not failed into the exporter's retry and its backoff (over
    TLS the receiver closes without close_notify: an `SSLEOFError`)."""
    import ssl

    handler = type("Handler", (_KeepAliveOnce,), {"closed": threading.Semaphore(0)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"{scheme}://127.0.0.1:{server.server_port}"}
    if scheme == "https":
        cert, key = self_signed_certificate(tmp_path, "otlp", days=1, common_name="otlp-test", ip="127.0.0.1")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        env["OTEL_EXPORTER_OTLP_CERTIFICATE"] = str(cert)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        transport = HttpTransport(OtlpSettings.from_env("http", env))
        assert transport.send(b"first", 10) is SENT
        assert handler.closed.acquire(timeout=30)  # the receiver has closed the connection
        assert transport.send(b"second", 10) is SENT
        assert handler.closed.acquire(timeout=30)
        transport.close()
    finally:
        server.shutdown()
        server.server_close()


def test_headers_that_cannot_be_sent_are_refused_without_their_value() -> None:
    for raw in ("api key=abc", "x-token=abc%0D%0Ainjected: 1", "x-team=%E2%9C%93abc"):
        with pytest.raises(ConfigError) as caught:
            OtlpSettings.from_env("http", {"OTEL_EXPORTER_OTLP_HEADERS": raw})
        assert re.match(r"OTEL_EXPORTER_OTLP_HEADERS: '[^']+' is not a valid header", str(caught.value))
        assert "abc" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"^OTEL_EXPORTER_OTLP_HEADERS: item 2 is not key=value$"):
        OtlpSettings.from_env("http", {"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer abc,def123secret"})


def test_endpoints_and_files_that_cannot_work_stop_startup_with_one_line(tmp_path: Path) -> None:
    """Each with the variable's name, never the endpoint's credentials or query."""
    for url, says in [
        ("http://user:s3cret@collector:43l8?token=abc", "has no valid port"),
        ("http://collector:99999", "has no valid port"),
        ("http://collector:4318/v1/trac\u00e9s", "is not a URL HTTP can send"),
        ("http://collector:4318/v1 traces", "is not a URL HTTP can send"),
    ]:
        with pytest.raises(ConfigError, match=f"^OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: .*{says}") as caught:
            OtlpSettings.from_env("http", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": url})
        assert "s3cret" not in str(caught.value) and "token" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"has no valid port, e\.g\. http://localhost:4317$"):
        OtlpSettings.from_env("grpc", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:99999"})
    with pytest.raises(ConfigError, match=r"^http_proxy: 'http://proxy:x' has no valid port"):
        OtlpSettings.from_env("http", {"http_proxy": "http://user:pw@proxy:x"})
    missing = str(tmp_path / "none.pem")
    with pytest.raises(ConfigError, match=r"^SSL_CERT_FILE: .*: no such file$"):
        OtlpSettings.from_env("http", {"SSL_CERT_FILE": missing})
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": str(bad),
    }
    with pytest.raises(ConfigError, match=r"^OTLP/HTTP TLS files"):
        HttpTransport(OtlpSettings.from_env("http", env))


def test_mutual_tls_presents_the_configured_client_certificate(
    http_receiver: HttpReceiver, tmp_path: Path
) -> None:
    """OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE/_CLIENT_KEY: a receiver that requires a client
    certificate takes the export that presents it and refuses the one without."""
    import ssl

    cert, key = self_signed_certificate(tmp_path, "otlp", days=1, common_name="otlp-test", ip="127.0.0.1")
    client_cert, client_key = self_signed_certificate(
        tmp_path, "client", days=1, common_name="otel-client", ip="127.0.0.1"
    )
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    tls.verify_mode = ssl.CERT_REQUIRED
    tls.load_verify_locations(client_cert)
    http_receiver.server.socket = tls.wrap_socket(http_receiver.server.socket, server_side=True)
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://127.0.0.1:{http_receiver.port}",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": str(cert),
    }
    anonymous = OtlpExporter(OtlpSettings.from_env("http", {**env, "OTEL_EXPORTER_OTLP_TIMEOUT": "0.5"}))
    assert anonymous.export(every_kind_of_span()) is SpanExportResult.FAILURE
    anonymous.shutdown()
    assert not http_receiver.requests
    mutual = OtlpExporter(
        OtlpSettings.from_env(
            "http",
            {
                **env,
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(client_cert),
                "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(client_key),
            },
        )
    )
    assert mutual.export(every_kind_of_span()) is SpanExportResult.SUCCESS
    mutual.shutdown()
    assert len(http_receiver.requests) == 1


def test_an_endpoint_http_client_cannot_write_fails_the_batch_at_once(
    connect_proxy: tuple[int, list[bytes]],
) -> None:
    """A host name the CONNECT line cannot carry (not ASCII) is a failed batch, logged and
    counted like any other, not an exception out of the exporter or a retry until the timeout."""
    port, heads = connect_proxy
    # (settings made directly: `from_env` refuses such an endpoint; this is the transport's guard)
    settings = OtlpSettings("http", "https://bücher.example:4318/v1/traces", proxy=f"http://127.0.0.1:{port}")
    transport = HttpTransport(settings)
    outcome = transport.send(b"batch", 10)
    transport.close()
    assert not outcome.sent and not outcome.retry and "UnicodeEncodeError" in outcome.reason
    assert not heads
