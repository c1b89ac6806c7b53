"""The one client for a vLLM server: URL, auth, /health, /v1/models, /metrics, SSE.

Every screen and command that talks HTTP to a vLLM server goes through here, so
the rules live in one place:

* the base URL is normalised once (:func:`normalize_url`: ``host:port``, a
  trailing ``/``, ``/v1`` or ``/metrics`` all give the server's base URL);
* the bearer header comes from the API key (``VLLM_API_KEY`` / ``OPENAI_API_KEY``
  when none is given) and is never part of a message;
* every request has a **connect timeout**, a **whole-response deadline** and a
  **size cap** (:class:`Limits`). A server that drips one byte a second, or
  sends a 50 MB page, gets a :class:`ServerError` that names the URL and the
  limit, never a hang or a memory spike. Streams (SSE) have an idle timeout,
  a whole-stream deadline, a total size cap and a line-length cap.

Bytes read here are untrusted: whoever displays them passes them through
``console.sanitize``. This module only bounds how many there are and how long
they take.

:class:`ServerClient` is async (the TUI's workers, chat, bench);
:class:`SyncServerClient` is the same for threads and plain CLI loops. Both take
an existing ``httpx`` client (``http=``) to share a connection pool, and tests
may hand in an ``httpx`` transport.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from console.errors import ConsoleError

if TYPE_CHECKING:
    import httpx

# httpx is imported where a request is made: session.py (imported by every CLI
# start) takes normalize_url and the API key from here, and needs no HTTP stack.

DEFAULT_URL = "http://127.0.0.1:8000"
"""vLLM's default bind; used when neither ``--url`` nor a profile says otherwise."""

KIB = 1024
MIB = 1024 * KIB

API_KEY_VARS = ("VLLM_API_KEY", "OPENAI_API_KEY")
"""Environment variables read for the bearer token, first one set wins."""

CONNECT_S = 3.0
"""Connect timeout of every request: a listening server accepts at once."""


@dataclass(frozen=True)
class Limits:
    """Bounds of one request: connect timeout, whole-response deadline, size cap."""

    deadline_s: float
    max_bytes: int
    connect_s: float = CONNECT_S


HEALTH = Limits(deadline_s=3.0, max_bytes=64 * KIB)
VERSION = Limits(deadline_s=5.0, max_bytes=64 * KIB)
MODELS = Limits(deadline_s=5.0, max_bytes=1 * MIB)
METRICS = Limits(deadline_s=10.0, max_bytes=8 * MIB)
"""A real vLLM page is 20-200 KB; 8 MiB leaves room for many engines and LoRAs."""
ERROR_BODY_BYTES = 64 * KIB
"""Of an error answer (HTTP 4xx/5xx) at most this much is read, for its message."""


@dataclass(frozen=True)
class StreamLimits:
    """Bounds of one SSE stream (a chat answer can rightly take minutes on a CPU).

    ``idle_s``: no byte for that long ends the stream (a long prompt's prefill
    on a busy CPU server is the slowest legitimate gap); ``deadline_s``: the
    whole answer; ``max_bytes``: the whole stream; ``max_line_bytes``: one line.
    """

    connect_s: float = 10.0
    idle_s: float = 300.0
    deadline_s: float = 3600.0
    max_bytes: int = 64 * MIB
    max_line_bytes: int = 1 * MIB


STREAM = StreamLimits()


class ServerError(ConsoleError):
    """A request that failed; the message names the URL and, for a limit, its value.

    ``kind``: ``"unreachable"`` (connect failed), ``"deadline"``, ``"too_large"``,
    ``"status"`` (HTTP status other than 200; ``status`` is set) or
    ``"protocol"`` (a body that is not what the endpoint returns).
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        kind: str,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.url = url
        self.kind = kind
        self.status = status


# --------------------------------------------------------------------------- URL and auth


def api_key_from_env() -> str | None:
    for var in API_KEY_VARS:
        value = os.environ.get(var)
        if value:
            return value
    return None


_ENDPOINT_SUFFIXES = ("/metrics", "/health", "/v1")


def normalize_url(url: str) -> str:
    """The server's base URL from what a user or a profile gives.

    Accepts ``host:port`` (``http://`` is added), a trailing ``/``, and a URL
    that already names ``/v1``, ``/metrics`` or ``/health``.
    """
    url = url.strip()
    if "://" not in url:
        url = f"http://{url}"
    url = url.rstrip("/")
    for suffix in _ENDPOINT_SUFFIXES:
        if url.endswith(suffix):
            url = url[: -len(suffix)].rstrip("/")
    return url


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The bearer header for ``api_key`` (empty without one). Never log its value."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _request_headers(api_key: str | None) -> dict[str, str]:
    # identity: the size cap then counts the bytes on the wire, and no gzip bomb.
    key = api_key if api_key is not None else api_key_from_env()
    return {"Accept-Encoding": "identity", **auth_headers(key)}


def _size(n: int) -> str:
    if n >= MIB and n % MIB == 0:
        return f"{n // MIB} MiB"
    if n >= KIB and n % KIB == 0:
        return f"{n // KIB} KiB"
    return f"{n} bytes"


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Reply:
    """A whole answer, read within its limits."""

    url: str
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; a :class:`ServerError` (``protocol``) if it is not."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError) as exc:  # RecursionError: a hostile nesting
            raise ServerError(
                f"{self.url}: the answer is not JSON ({exc})", url=self.url, kind="protocol"
            ) from None

    def error_message(self) -> str:
        """The server's own words for an error answer (OpenAI or FastAPI shape)."""
        return error_message(self.text)

    def raise_for_status(self) -> Reply:
        if self.status != 200:
            raise status_error(self.url, self.status, self.text)
        return self


def error_message(body: str) -> str:
    """The message of an error body: ``{"error": {"message"}}``, ``{"detail"}`` or text.

    Made terminal-safe and one line here (``console.sanitize.clean_line``): it
    ends up in our own error messages, which every screen and command shows.
    """
    from console.sanitize import clean_line

    return clean_line(_error_message(body))


def _error_message(body: str) -> str:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return body.strip()[:300] or "no details"
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
        if data.get("detail"):
            return str(data["detail"])[:300]
        if err:
            return str(err)[:300]
    return body.strip()[:300] or "no details"


def status_error(url: str, status: int, body: str = "") -> ServerError:
    """The error for an HTTP status other than 200 (401/403 hint at the API key)."""
    if status in (401, 403):
        return ServerError(
            f"{url}: HTTP {status} (unauthorised)",
            url=url,
            kind="status",
            status=status,
            hint="set VLLM_API_KEY (or OPENAI_API_KEY) to the server's --api-key",
        )
    detail = error_message(body) if body.strip() else ""
    return ServerError(
        f"{url}: HTTP {status}" + (f": {detail}" if detail else ""),
        url=url,
        kind="status",
        status=status,
    )


def _transport_error(url: str, exc: Exception, connect_s: float, read_s: float) -> ServerError:
    import httpx

    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        why = (
            f"no connection within the {connect_s:g} s connect timeout"
            if isinstance(exc, httpx.ConnectTimeout)
            else "connection refused or host unreachable"
        )
        return ServerError(
            f"cannot reach {url}: {why}",
            url=url,
            kind="unreachable",
            hint="is the server running and ready? Check the URL (--url) and `vllm-console status`",
        )
    if isinstance(exc, httpx.TimeoutException):
        return _deadline_error(url, read_s, None)
    return ServerError(f"{url}: {type(exc).__name__}: {exc}", url=url, kind="unreachable")


def _deadline_error(
    url: str, deadline_s: float, received: int | None, what: str = ""
) -> ServerError:
    got = "" if received is None else f" ({received} bytes received)"
    return ServerError(
        f"{url}: no complete answer within the {deadline_s:g} s {what}deadline{got}",
        url=url,
        kind="deadline",
        hint="the server is overloaded, stuck, or not a vLLM server",
    )


def _too_large(url: str, cap: int, what: str = "answer") -> ServerError:
    return ServerError(
        f"{url}: {what} larger than the {_size(cap)} size cap; stopped reading",
        url=url,
        kind="too_large",
        hint="is this a vLLM server? Check the URL",
    )


def _timeout(limits: Limits) -> httpx.Timeout:
    import httpx

    return httpx.Timeout(limits.deadline_s, connect=limits.connect_s)


class _Body:
    """Collects a body chunk by chunk within a size cap (the shared half of a read)."""

    def __init__(self, url: str, cap: int) -> None:
        self.url, self.cap = url, cap
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.cap:
            raise _too_large(self.url, self.cap)
        self.parts.append(chunk)

    def bytes(self) -> bytes:
        return b"".join(self.parts)


# --------------------------------------------------------------------------- health


@dataclass(frozen=True)
class Health:
    """What ``/health`` said: ``status`` None when nothing answered (``detail`` says why)."""

    url: str
    status: int | None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def answered(self) -> bool:
        return self.status is not None


def _health_of(url: str, reply: Reply | None, error: ServerError | None) -> Health:
    if reply is not None:
        detail = "" if reply.status == 200 else f"/health answered {reply.status}"
        return Health(url, reply.status, detail)
    return Health(url, None, error.message if error is not None else "no answer")


def _model_ids(data: Any) -> list[str]:
    cards = data.get("data") if isinstance(data, dict) else None
    if not isinstance(cards, list):
        return []
    return [str(card["id"]) for card in cards if isinstance(card, dict) and "id" in card]


# --------------------------------------------------------------------------- SSE


class SSEDecoder:
    """Server-sent events, line by line: returns each event's data once complete.

    Follows the SSE rules that matter here: ``data:`` lines of one event are
    joined with newlines, an event ends at a blank line, comments (``:``) and
    other fields are ignored, one optional space after the colon is dropped.
    """

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        return None

    def flush(self) -> str | None:
        """The last event when the stream ended without a blank line."""
        return self._dispatch()

    def _dispatch(self) -> str | None:
        if not self._data:
            return None
        data = "\n".join(self._data)
        self._data = []
        return data


def iter_sse_data(lines: Iterable[str]) -> Iterator[str]:
    """Every event's data in ``lines`` (a whole captured stream, e.g. a fixture)."""
    decoder = SSEDecoder()
    for line in lines:
        data = decoder.feed(line)
        if data is not None:
            yield data
    data = decoder.flush()
    if data is not None:
        yield data


class _SSELines:
    """Bytes -> SSE lines (CR, LF or CR LF), with the stream's size and line caps."""

    def __init__(self, url: str, limits: StreamLimits) -> None:
        self.url, self.limits = url, limits
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._partial = ""
        self.total = 0

    def feed(self, chunk: bytes) -> list[str]:
        self.total += len(chunk)
        if self.total > self.limits.max_bytes:
            raise _too_large(self.url, self.limits.max_bytes, "stream")
        text = self._partial + self._decoder.decode(chunk)
        lines = text.splitlines(keepends=True)
        self._partial = ""
        if lines and (not lines[-1].endswith(("\n", "\r")) or lines[-1].endswith("\r")):
            # An unfinished line, or a CR that may be the first half of CR LF.
            self._partial = lines.pop()
        cap = self.limits.max_line_bytes  # counted in characters: at most that many bytes
        if len(self._partial) > cap or any(len(line) > cap for line in lines):
            raise _too_large(self.url, cap, "a stream line")
        return lines

    def flush(self) -> list[str]:
        rest = self._partial + self._decoder.decode(b"", final=True)
        self._partial = ""
        return [rest] if rest else []


# --------------------------------------------------------------------------- async client


class ServerClient:
    """Async client for one vLLM server (TUI workers, chat, bench).

    ``http``: an existing ``httpx.AsyncClient`` to share (its pool and transport;
    this client then does not close it). ``transport``: httpx's test seam.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        http: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int | None = None,
    ) -> None:
        import httpx

        self.url = normalize_url(url)
        self._headers = _request_headers(api_key)
        self._own = http is None
        if http is None:
            pool = (
                httpx.Limits(
                    max_connections=max_connections, max_keepalive_connections=max_connections
                )
                if max_connections
                else httpx.Limits()
            )
            http = httpx.AsyncClient(transport=transport, limits=pool, timeout=_timeout(METRICS))
        self._http = http

    @property
    def has_key(self) -> bool:
        return "Authorization" in self._headers

    async def aclose(self) -> None:
        if self._own:
            await self._http.aclose()

    async def __aenter__(self) -> ServerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def endpoint(self, path: str) -> str:
        return self.url + path

    async def get(self, path: str, limits: Limits) -> Reply:
        """GET ``path`` within ``limits``; any HTTP status is a :class:`Reply`.

        An error answer's body is read up to :data:`ERROR_BODY_BYTES` only.
        """
        import httpx

        url = self.endpoint(path)
        body = _Body(url, limits.max_bytes)
        try:
            async with asyncio.timeout(limits.deadline_s):
                async with self._http.stream(
                    "GET", url, headers=self._headers, timeout=_timeout(limits)
                ) as response:
                    if response.status_code != 200:
                        body.cap = min(body.cap, ERROR_BODY_BYTES)
                    async for chunk in response.aiter_bytes():
                        try:
                            body.add(chunk)
                        except ServerError:
                            if response.status_code == 200:
                                raise
                            break  # an error body: what fits is its message
                    status = response.status_code
        except TimeoutError:
            raise _deadline_error(url, limits.deadline_s, body.size) from None
        except httpx.HTTPError as exc:
            raise _transport_error(url, exc, limits.connect_s, limits.deadline_s) from exc
        return Reply(url, status, body.bytes())

    async def health(self, limits: Limits = HEALTH) -> Health:
        """``/health``; never raises: a dead, slow or hostile server is ``status=None``."""
        url = self.endpoint("/health")
        try:
            return _health_of(url, await self.get("/health", limits), None)
        except ServerError as exc:
            return _health_of(url, None, exc)

    async def models(self, limits: Limits = MODELS) -> list[str]:
        """Served model names from ``/v1/models`` (raises :class:`ServerError`)."""
        return _model_ids((await self.get("/v1/models", limits)).raise_for_status().json())

    async def models_json(self, limits: Limits = MODELS) -> Any:
        """``/v1/models`` as JSON, None on any error (the dashboard's info line)."""
        with contextlib.suppress(ServerError):
            return (await self.get("/v1/models", limits)).raise_for_status().json()
        return None

    async def version_json(self, limits: Limits = VERSION) -> Any:
        """``/version`` as JSON, None on any error."""
        with contextlib.suppress(ServerError):
            return (await self.get("/version", limits)).raise_for_status().json()
        return None

    async def metrics_page(self, limits: Limits = METRICS) -> str:
        """The ``/metrics`` page text (raises :class:`ServerError`)."""
        return (await self.get("/metrics", limits)).raise_for_status().text

    async def sse(
        self, path: str, body: dict[str, Any], limits: StreamLimits = STREAM
    ) -> AsyncIterator[str]:
        """POST ``body`` to ``path`` and yield each server-sent event's data.

        Ends when the server closes the stream; ``[DONE]`` is yielded like any
        data (the caller decides). A non-200 answer raises :class:`ServerError`
        with the server's message.
        """
        import httpx

        url = self.endpoint(path)
        start = time.monotonic()
        timeout = httpx.Timeout(limits.idle_s, connect=limits.connect_s)
        try:
            async with self._http.stream(
                "POST", url, json=body, headers=self._headers, timeout=timeout
            ) as response:
                if response.status_code != 200:
                    raise status_error(url, response.status_code, await _error_text(response))
                lines = _SSELines(url, limits)
                decoder = SSEDecoder()
                chunks = response.aiter_bytes()
                while True:
                    remaining = limits.deadline_s - (time.monotonic() - start)
                    if remaining <= 0:
                        raise _deadline_error(url, limits.deadline_s, lines.total, "stream ")
                    try:
                        # The timeout wraps the read only: never a yield inside it.
                        async with asyncio.timeout(min(limits.idle_s, remaining)):
                            chunk = await anext(chunks)
                    except StopAsyncIteration:
                        break
                    except TimeoutError:
                        if remaining <= limits.idle_s:
                            raise _deadline_error(
                                url, limits.deadline_s, lines.total, "stream "
                            ) from None
                        raise _idle_error(url, limits.idle_s) from None
                    for line in lines.feed(chunk):
                        data = decoder.feed(line)
                        if data is not None:
                            yield data
                for line in lines.flush():
                    data = decoder.feed(line)
                    if data is not None:
                        yield data
                data = decoder.flush()
                if data is not None:
                    yield data
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise _transport_error(url, exc, limits.connect_s, limits.idle_s) from exc
            raise _idle_error(url, limits.idle_s) from exc
        except httpx.HTTPError as exc:
            raise _transport_error(url, exc, limits.connect_s, limits.idle_s) from exc


def _idle_error(url: str, idle_s: float) -> ServerError:
    return ServerError(
        f"{url}: the stream sent nothing for {idle_s:g} s (idle timeout)",
        url=url,
        kind="deadline",
        hint="the server is overloaded or stuck",
    )


async def _error_text(response: httpx.Response) -> str:
    body = _Body(str(response.url), ERROR_BODY_BYTES)
    with contextlib.suppress(ServerError):
        async for chunk in response.aiter_bytes():
            body.add(chunk)
    return body.bytes().decode("utf-8", "replace")


# --------------------------------------------------------------------------- sync client


class SyncServerClient:
    """:class:`ServerClient` for threads and plain CLI loops (same limits, same errors).

    The deadline is checked after every chunk and bounds each read, so a
    server that drips bytes is cut off at the deadline; one that sends its
    headers and then nothing is cut off at most one deadline later.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        http: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        import httpx

        self.url = normalize_url(url)
        self._headers = _request_headers(api_key)
        self._own = http is None
        self._http = http or httpx.Client(transport=transport, timeout=_timeout(METRICS))

    def close(self) -> None:
        if self._own:
            self._http.close()

    def __enter__(self) -> SyncServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def endpoint(self, path: str) -> str:
        return self.url + path

    def get(self, path: str, limits: Limits) -> Reply:
        """GET ``path`` within ``limits``; any HTTP status is a :class:`Reply`."""
        import httpx

        url = self.endpoint(path)
        body = _Body(url, limits.max_bytes)
        start = time.monotonic()
        try:
            with self._http.stream(
                "GET", url, headers=self._headers, timeout=_timeout(limits)
            ) as response:
                if response.status_code != 200:
                    body.cap = min(body.cap, ERROR_BODY_BYTES)
                for chunk in response.iter_bytes():
                    if time.monotonic() - start > limits.deadline_s:
                        raise _deadline_error(url, limits.deadline_s, body.size)
                    try:
                        body.add(chunk)
                    except ServerError:
                        if response.status_code == 200:
                            raise
                        break
                status = response.status_code
        except httpx.HTTPError as exc:
            raise _transport_error(url, exc, limits.connect_s, limits.deadline_s) from exc
        if time.monotonic() - start > limits.deadline_s:
            raise _deadline_error(url, limits.deadline_s, body.size)
        return Reply(url, status, body.bytes())

    def health(self, limits: Limits = HEALTH) -> Health:
        url = self.endpoint("/health")
        try:
            return _health_of(url, self.get("/health", limits), None)
        except ServerError as exc:
            return _health_of(url, None, exc)

    def models(self, limits: Limits = MODELS) -> list[str]:
        return _model_ids(self.get("/v1/models", limits).raise_for_status().json())

    def models_json(self, limits: Limits = MODELS) -> Any:
        with contextlib.suppress(ServerError):
            return self.get("/v1/models", limits).raise_for_status().json()
        return None

    def version_json(self, limits: Limits = VERSION) -> Any:
        with contextlib.suppress(ServerError):
            return self.get("/version", limits).raise_for_status().json()
        return None

    def metrics_page(self, limits: Limits = METRICS) -> str:
        return self.get("/metrics", limits).raise_for_status().text


def check_health(
    url: str,
    *,
    http: httpx.Client | None = None,
    api_key: str | None = None,
    limits: Limits = HEALTH,
) -> Health:
    """One ``/health`` check. Pass a long-lived ``http`` client in loops: a new one
    loads the CA bundle each time (~0.3 s of CPU on a busy box)."""
    with SyncServerClient(url, api_key=api_key, http=http) as client:
        return client.health(limits)
