"""The OTLP span exporter `[telemetry] traces = "otlp"` installs: HTTP (protobuf) or gRPC.

Spans are encoded by `otlp_encode` (no protobuf runtime) and sent by a transport: the standard
library's `http.client` for OTLP/HTTP, grpcio for gRPC (the `otlp-grpc` extra) calling the
TraceService `Export` method with the already encoded bytes. It runs on the batch exporter's
thread (`telemetry/batch.py`), never on the request path, but in the same process: at 100 %
sampling every traced request pays its share of each POST. Why `http.client` and not httpx:
one POST of a batch cost 1.7M instructions through `httpx.Client` and 0.33M through
`http.client` (callgrind, a 1 kB or 90 kB body alike; docs/performance.md, "Sixth pass"): 2.7k
a request at 512 spans a batch. What httpx gave besides is kept here: one keep-alive
connection (a connection the receiver closed while idle is opened again at once, once), TLS
verified against certifi's roots (or `SSL_CERT_FILE`/`SSL_CERT_DIR`, or the configured
certificate), and the `http_proxy`/`https_proxy`/`all_proxy`/`no_proxy` variables (an http://
proxy: requests to it for http endpoints, a CONNECT tunnel for https ones).

Settings are the OpenTelemetry SDK's environment variables, the signal-specific one
(`OTEL_EXPORTER_OTLP_TRACES_*`) first: `ENDPOINT`, `HEADERS`, `TIMEOUT`, `COMPRESSION`
(`gzip`/`none`), `CERTIFICATE`, `CLIENT_CERTIFICATE`, `CLIENT_KEY`, for gRPC `INSECURE`, and
`PROTOCOL` (`grpc`/`http/protobuf`) unless the config file sets `otlp_protocol`.
As in the Python SDK, `TIMEOUT` is in seconds (default 10). A bad value is a `ConfigError`
naming the variable.

A batch is tried until its deadline (the timeout, or the shutdown flush's, whichever is first):
a 429, 502, 503 or 504 answer, a connection error or a timeout (gRPC: UNAVAILABLE,
RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ABORTED...) is retried after `Retry-After` when the
receiver sent one, else after an exponential backoff with jitter (1 s, 2 s, 4 s... capped at
32 s); anything else fails the batch at once. A failed batch is reported to the caller, which
counts its spans as dropped.
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import http.client
import logging
import os
import random
import re
import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from time import monotonic, time
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]  # (not in typeshed)

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pilothouse.errors import ConfigError
from pilothouse.telemetry.otlp_encode import encode_request

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

log = logging.getLogger("pilothouse.telemetry")

_DEFAULT_ENDPOINT = {"http": "http://localhost:4318", "grpc": "http://localhost:4317"}
_HTTP_PATH = "/v1/traces"
_GRPC_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_PROTOCOLS: dict[str, Literal["http", "grpc"]] = {"grpc": "grpc", "http/protobuf": "http"}
"""`OTEL_EXPORTER_OTLP_PROTOCOL` values (the SDK's); `http/json` is not sent."""
_RETRY_STATUS = frozenset((429, 502, 503, 504))
_MAX_BACKOFF = 32.0


@dataclass(frozen=True)
class OtlpSettings:
    """Where and how to send, from the environment (`from_env`)."""

    protocol: Literal["http", "grpc"]
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    gzip: bool = False
    certificate: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None
    insecure: bool | None = None
    proxy: str | None = None  # OTLP/HTTP: the http:// proxy to reach the endpoint through
    ca_file: str | None = None  # OTLP/HTTP without `certificate`: SSL_CERT_FILE
    ca_dir: str | None = None  # and SSL_CERT_DIR, else certifi's roots

    @classmethod
    def from_env(
        cls, protocol: Literal["http", "grpc"] | None, environ: Mapping[str, str] | None = None
    ) -> OtlpSettings:
        """`protocol`: the config file's `otlp_protocol` when it sets one; None takes `PROTOCOL`
        from the environment (`grpc`, `http/protobuf`), else OTLP/HTTP."""
        env = os.environ if environ is None else environ

        def get(name: str) -> tuple[str, str] | None:
            for variable in (f"OTEL_EXPORTER_OTLP_TRACES_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
                value = env.get(variable, "").strip()
                if value:
                    return variable, value
            return None

        if protocol is None:
            protocol = "http"
            if found := get("PROTOCOL"):
                variable, raw = found
                if raw not in _PROTOCOLS:
                    raise ConfigError(
                        f"{variable}: {raw!r} is not supported: expected 'grpc' or 'http/protobuf'"
                    )
                protocol = _PROTOCOLS[raw]
        endpoint = _endpoint(protocol, env)
        headers: dict[str, str] = {}
        if found := get("HEADERS"):
            headers = _headers(*found)
        timeout = 10.0
        if found := get("TIMEOUT"):
            variable, raw = found
            try:
                timeout = float(raw)
            except ValueError:
                timeout = -1.0
            if not timeout > 0:
                raise ConfigError(f"{variable}: {raw!r} is not a timeout: expected seconds > 0, e.g. 10")
        compress = False
        if found := get("COMPRESSION"):
            variable, raw = found
            if raw.lower() not in ("gzip", "none"):
                raise ConfigError(f"{variable}: {raw!r} is not supported: expected 'gzip' or 'none'")
            compress = raw.lower() == "gzip"
        insecure = None
        if found := get("INSECURE"):
            insecure = found[1].lower() == "true"
        files = {}
        for name in ("CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY"):
            if found := get(name):
                variable, path = found
                if not os.path.isfile(path):
                    raise ConfigError(f"{variable}: {path!r}: no such file")
                files[name.lower()] = path
        if protocol != "http":
            return cls(protocol, endpoint, headers, timeout, compress, insecure=insecure, **files)
        ca_file = env.get("SSL_CERT_FILE") or None
        ca_dir = env.get("SSL_CERT_DIR") or None
        if ca_file is not None and not os.path.isfile(ca_file):
            raise ConfigError(f"SSL_CERT_FILE: {ca_file!r}: no such file")
        if ca_dir is not None and not os.path.isdir(ca_dir):
            raise ConfigError(f"SSL_CERT_DIR: {ca_dir!r}: no such directory")
        return cls(
            protocol,
            endpoint,
            headers,
            timeout,
            compress,
            insecure=insecure,
            proxy=_proxy(endpoint, env),
            ca_file=ca_file,
            ca_dir=ca_dir,
            **files,
        )


def _endpoint(protocol: str, env: Mapping[str, str]) -> str:
    """The URL to post to (HTTP: a signal endpoint is used as it is, the generic one gets
    `/v1/traces` appended) or the gRPC target URL."""
    specific = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    generic = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    variable = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" if specific else "OTEL_EXPORTER_OTLP_ENDPOINT"
    url = specific or generic or _DEFAULT_ENDPOINT[protocol]
    parts = urlsplit(url)
    if protocol == "http" and (parts.scheme not in ("http", "https") or not parts.hostname):
        raise ConfigError(f"{variable}: {_shown(url)!r} is not an http(s) URL, e.g. http://collector:4318")
    _check_port(variable, url, _DEFAULT_ENDPOINT[protocol])  # (gRPC: 4317)
    if not url.isascii() or any(c.isspace() or not c.isprintable() for c in url):
        raise ConfigError(
            f"{variable}: {_shown(url)!r} is not a URL HTTP can send (percent-encode spaces and non-ASCII)"
        )
    if protocol == "http" and not specific:
        return url.rstrip("/") + _HTTP_PATH
    return url


def _check_port(variable: str, url: str, example: str) -> None:
    try:
        urlsplit(url).port  # noqa: B018  # (a property that checks the port)
    except ValueError:
        raise ConfigError(f"{variable}: {_shown(url)!r} has no valid port, e.g. {example}") from None


def _basic_auth(url: Any) -> str:
    """The `Basic` credentials of a split URL's user and password."""
    user = f"{unquote(url.username)}:{unquote(url.password or '')}"
    return f"Basic {base64.b64encode(user.encode()).decode()}"


def _shown(url: str) -> str:
    """`url` as logs and errors show it: without the credentials and the query it may carry."""
    parts = urlsplit(url)
    if "@" not in parts.netloc and not parts.query:
        return url
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _proxy(endpoint: str, env: Mapping[str, str]) -> str | None:
    """The proxy for `endpoint` from `<scheme>_proxy` or `all_proxy` (lowercase first, as curl
    and urllib), unless `no_proxy` names its host; only http:// proxies are taken."""

    def get(name: str) -> tuple[str, str] | None:
        for variable in (name, name.upper()):
            value = env.get(variable, "").strip()
            if value:
                return variable, value
        return None

    url = urlsplit(endpoint)
    found = get(f"{url.scheme}_proxy") or get("all_proxy")
    if found is None:
        return None
    no_proxy = get("no_proxy")
    host = f"{url.hostname}:{url.port}" if url.port else url.hostname
    if no_proxy is not None and proxy_bypass_environment(host, {"no": no_proxy[1]}):
        return None
    variable, proxy = found
    if "://" not in proxy:
        proxy = f"http://{proxy}"
    _check_port(variable, proxy, ":3128")
    parts = urlsplit(proxy)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(
            f"{variable}: {parts.scheme}://{parts.hostname or ''}... is not supported for OTLP/HTTP: "
            "expected an http:// proxy, e.g. http://proxy:3128"
        )
    return proxy


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")


def _headers(variable: str, raw: str) -> dict[str, str]:
    """`key1=value1,key2=value2`, percent-decoded (the OpenTelemetry format)."""
    headers: dict[str, str] = {}
    for number, item in enumerate(raw.split(","), 1):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():  # (its text may be a secret: not shown)
            raise ConfigError(f"{variable}: item {number} is not key=value")
        name, text = unquote(key.strip()).lower(), unquote(value.strip())
        if not _HEADER_NAME.fullmatch(name) or not text.isascii() or not text.isprintable():
            raise ConfigError(f"{variable}: {name!r} is not a valid header (name or value)")
        headers[name] = text
    return headers


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: sent, or retry (after `retry_after` seconds when the receiver
    said), or a final failure; `reason` for the log."""

    sent: bool
    retry: bool = False
    retry_after: float | None = None
    reason: str = ""


SENT = Outcome(True)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A `Retry-After` header's delay: delta-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time() if now is None else now))


_MAX_ANSWER = 64 * 1024  # the most of an answer's body read (an error's text for the log)
# A keep-alive connection the receiver closed while it was idle fails this way on its next use.
_STALE = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ssl.SSLEOFError,  # TLS: the receiver closed without close_notify
    ssl.SSLZeroReturnError,
)


class HttpTransport:
    """OTLP/HTTP with protobuf bodies over one keep-alive `http.client` connection (see the
    module docstring for why not httpx)."""

    def __init__(self, settings: OtlpSettings) -> None:
        from pilothouse import __version__

        url = urlsplit(settings.endpoint)
        self._gzip = settings.gzip
        headers = {"content-type": "application/x-protobuf", "user-agent": f"pilothouse/{__version__}"}
        if settings.gzip:
            headers["content-encoding"] = "gzip"
        if url.username is not None:  # credentials in the endpoint: Basic auth, as httpx sent them
            headers["authorization"] = _basic_auth(url)
        headers.update(settings.headers)
        self._headers = headers
        host, port = url.hostname or "", url.port
        self._target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self._context: ssl.SSLContext | None = None
        if url.scheme == "https":
            try:
                self._context = _tls_context(settings)
            except (OSError, ValueError) as exc:  # (ssl.SSLError is an OSError)
                raise ConfigError(f"OTLP/HTTP TLS files (certificate, client key): {exc}") from None
        self._tunnel: tuple[str, int | None, dict[str, str]] | None = None
        if settings.proxy is not None:
            proxy = urlsplit(settings.proxy)
            # The proxy's credentials: on the CONNECT of a tunnel, else on each request to it.
            auth = {"proxy-authorization": _basic_auth(proxy)} if proxy.username is not None else {}
            if self._context is not None:  # a CONNECT tunnel through the proxy, TLS inside it
                self._tunnel = (host, port or 443, auth)
            else:  # the proxy is asked for the whole URL
                headers.update(auth)
                netloc = url.netloc.rpartition("@")[2]  # never the credentials
                self._target = f"{url.scheme}://{netloc}{self._target}"
            host, port = proxy.hostname or "", proxy.port or 80
        self._host, self._port = host, port
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection
        if self._context is not None:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._context
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        if self._tunnel is not None:
            host, port, headers = self._tunnel
            connection.set_tunnel(host, port, headers)
        return connection

    def send(self, body: bytes, timeout: float) -> Outcome:
        if self._gzip:
            body = gzip.compress(body, compresslevel=6)
        for fresh in (False, True):
            connection = self._connection
            reused = connection is not None and connection.sock is not None
            if connection is None:
                connection = self._connection = self._connect(timeout)
            elif connection.sock is not None:
                connection.sock.settimeout(timeout)
            connection.timeout = timeout  # for a connection (re)opened by `request`
            try:
                connection.request("POST", self._target, body, self._headers)
                response = connection.getresponse()
                answer = response.read(_MAX_ANSWER)
                if not response.isclosed():  # more than we read: not reusable
                    connection.close()
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, timeouts, TLS
                connection.close()
                if reused and not fresh and isinstance(exc, _STALE):
                    continue
                return Outcome(False, retry=True, reason=f"{type(exc).__name__}: {exc}")
            except ValueError as exc:  # what no retry mends (a host name http.client cannot write)
                connection.close()
                return Outcome(False, reason=f"{type(exc).__name__}: {exc}")
            break
        status = response.status
        if 200 <= status < 300:
            return SENT
        reason = f"HTTP {status}"
        if status in _RETRY_STATUS:
            return Outcome(False, True, retry_after_seconds(response.getheader("retry-after")), reason)
        return Outcome(False, reason=f"{reason}: {answer[:200].decode(errors='replace')}")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


def _tls_context(settings: OtlpSettings) -> ssl.SSLContext:
    """The receiver's certificate verified against the configured certificate, else
    `SSL_CERT_FILE`/`SSL_CERT_DIR`, else certifi's roots (what httpx and the SDK's exporter
    trust); the client certificate presented when configured."""
    if settings.certificate:
        context = ssl.create_default_context(cafile=settings.certificate)
    elif settings.ca_file or settings.ca_dir:
        context = ssl.create_default_context(cafile=settings.ca_file, capath=settings.ca_dir)
    else:
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
    if settings.client_certificate:
        context.load_cert_chain(settings.client_certificate, settings.client_key)
    return context


class GrpcTransport:
    """OTLP/gRPC: the TraceService `Export` method called with the encoded request as it is
    (no protobuf serializer: the bytes are the message). The channel is made on the first send,
    in the export thread: a gRPC channel does not survive a fork, and a process that forks
    workers after setting up tracing (a preloading server) exports only from the workers."""

    def __init__(self, settings: OtlpSettings) -> None:
        try:
            import grpc  # type: ignore[import-untyped]  # grpcio ships no stubs
        except ImportError:
            raise ConfigError(
                "telemetry.otlp_protocol: 'grpc' needs grpcio: pip install 'pilothouse[otlp-grpc]'"
            ) from None
        self._grpc = grpc
        self._settings = settings
        self._channel: Any = None
        self._export: Any = None
        self._metadata = tuple(settings.headers.items())
        code = grpc.StatusCode
        self._retryable = frozenset(
            (
                code.UNAVAILABLE,
                code.RESOURCE_EXHAUSTED,
                code.DEADLINE_EXCEEDED,
                code.ABORTED,
                code.CANCELLED,
                code.OUT_OF_RANGE,
                code.DATA_LOSS,
            )
        )

    def _connect(self) -> Any:
        grpc, settings = self._grpc, self._settings
        parts = urlsplit(settings.endpoint)
        target = parts.netloc if parts.scheme in ("http", "https") else settings.endpoint
        insecure = settings.insecure if settings.insecure is not None else parts.scheme == "http"
        compression = grpc.Compression.Gzip if settings.gzip else grpc.Compression.NoCompression
        if insecure:
            self._channel = grpc.insecure_channel(target, compression=compression)
        else:

            def read(path: str | None) -> bytes | None:
                if path is None:
                    return None
                with open(path, "rb") as f:
                    return f.read()

            credentials = grpc.ssl_channel_credentials(
                read(settings.certificate), read(settings.client_key), read(settings.client_certificate)
            )
            self._channel = grpc.secure_channel(target, credentials, compression=compression)
        self._export = self._channel.unary_unary(
            _GRPC_METHOD, request_serializer=None, response_deserializer=None
        )
        return self._export

    def send(self, body: bytes, timeout: float) -> Outcome:
        export = self._export or self._connect()
        try:
            export(body, timeout=timeout, metadata=self._metadata)
        except self._grpc.RpcError as exc:
            code = exc.code()
            reason = f"gRPC {code.name}: {exc.details()}"
            return Outcome(False, retry=code in self._retryable, reason=reason)
        return SENT

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()


class OtlpExporter(SpanExporter):
    """An SDK `SpanExporter` (so any span processor can use it) with `export_until`, which the
    batch exporter calls with the shutdown flush's deadline."""

    def __init__(self, settings: OtlpSettings) -> None:
        self.settings = settings
        self._transport: HttpTransport | GrpcTransport = (
            HttpTransport(settings) if settings.protocol == "http" else GrpcTransport(settings)
        )
        self._stopping = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.export_until(spans, None)

    def export_until(self, spans: Sequence[ReadableSpan], deadline: float | None) -> SpanExportResult:
        """Send `spans`, retrying until the export timeout or `deadline` (monotonic) if sooner."""
        if not spans:
            return SpanExportResult.SUCCESS
        body = encode_request(spans)
        limit = monotonic() + self.settings.timeout
        if deadline is not None:
            limit = min(limit, deadline)
        attempt = 0
        while True:
            remaining = limit - monotonic()
            if remaining <= 0:
                outcome = Outcome(False, reason="deadline passed")
                break
            outcome = self._transport.send(body, remaining)
            if outcome.sent or not outcome.retry:
                break
            delay = outcome.retry_after
            if delay is None:
                delay = min(_MAX_BACKOFF, 2.0**attempt) * random.uniform(0.8, 1.2)  # noqa: S311
            attempt += 1
            if monotonic() + delay >= limit or self._stopping.wait(delay):
                break
        if outcome.sent:
            return SpanExportResult.SUCCESS
        log.warning(
            "OTLP export to %s failed (%s): %d spans dropped",
            _shown(self.settings.endpoint),
            outcome.reason,
            len(spans),
        )
        return SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        self._stopping.set()
        self._transport.close()
