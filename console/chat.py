"""Chat with an OpenAI-compatible server (vLLM): streaming client and JSONL transcript.

Headless: the chat screen and ``vllm-console chat`` drive the same
:class:`ChatSession`, which turns one user message into a stream of typed
events and keeps the bookkeeping that must survive anything (a stop, a network
error, a server error in the middle of the answer):

* the conversation history (the user turn and whatever part of the answer
  arrived, so the next turn still alternates user/assistant),
* the transcript, one JSON object per line, written and flushed as events
  arrive, so a crash loses nothing,
* per-answer figures taken from the server's ``usage`` (one chunk can carry
  several tokens under speculative decoding, so chunks are never counted).

Wire format facts (SSE framing, ``reasoning`` vs ``reasoning_content``, tool
call deltas, mid-stream ``{"error": ...}``) are in reference/vllm.md section 5.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from console import acceptance, paths
from console.acceptance import Acceptance
from console.errors import ConsoleError
from console.server_client import STREAM, ServerClient, ServerError

# The one SSE decoder lives in server_client; these names stay importable from here.
from console.server_client import SSEDecoder as SSEDecoder
from console.server_client import iter_sse_data as iter_sse_data

if TYPE_CHECKING:
    import httpx

# -- SSE ---------------------------------------------------------------------

DONE = "[DONE]"
"""The payload that ends an OpenAI stream."""


# -- events ------------------------------------------------------------------


@dataclass(frozen=True)
class ContentDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call: id and name come first, arguments in fragments."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class Finished:
    reason: str


@dataclass(frozen=True)
class StreamError:
    """The server reported an error in the middle of the stream."""

    message: str
    type: str | None = None
    code: int | None = None


@dataclass(frozen=True)
class SpecMetrics:
    """``metrics.speculative_decoding`` of the final usage chunk (per-request acceptance)."""

    acceptance: Acceptance


Event = ContentDelta | ReasoningDelta | ToolCallDelta | Usage | Finished | StreamError | SpecMetrics


def events_from_chunk(chunk: dict[str, Any]) -> list[Event]:
    """Typed events from one decoded ``chat.completion.chunk`` (or error) object."""
    if "error" in chunk:
        err = chunk["error"]
        if isinstance(err, dict):
            return [StreamError(str(err.get("message", err)), err.get("type"), err.get("code"))]
        return [StreamError(str(err))]
    events: list[Event] = []
    for choice in chunk.get("choices") or []:
        if choice.get("index", 0) != 0:
            continue  # the console asks for one choice (n=1)
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning") or delta.get("reasoning_content")
        if reasoning:
            events.append(ReasoningDelta(reasoning))
        if delta.get("content"):
            events.append(ContentDelta(delta["content"]))
        for call in delta.get("tool_calls") or []:
            function = call.get("function") or {}
            events.append(
                ToolCallDelta(
                    index=int(call.get("index", 0)),
                    id=call.get("id"),
                    name=function.get("name"),
                    arguments=function.get("arguments") or "",
                )
            )
        if choice.get("finish_reason"):
            events.append(Finished(choice["finish_reason"]))
    metrics = chunk.get("metrics")
    if isinstance(metrics, dict) and "speculative_decoding" in metrics:
        found = acceptance.from_payload(metrics["speculative_decoding"])
        if found is not None:
            events.append(SpecMetrics(found))
    usage = chunk.get("usage")
    if isinstance(usage, dict) and "completion_tokens" in usage:
        events.append(
            Usage(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                total_tokens=int(usage.get("total_tokens") or 0),
            )
        )
    return events


def events_from_payload(data: str) -> list[Event] | None:
    """Events of one SSE data payload; None for the ``[DONE]`` terminator."""
    if data.strip() == DONE:
        return None
    try:
        chunk = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: a hostile nesting
        return [StreamError(f"the server sent a line that is not JSON: {data[:200]!r}")]
    if not isinstance(chunk, dict):
        return [StreamError(f"the server sent an unexpected event: {data[:200]!r}")]
    try:
        events = events_from_chunk(chunk)
    except (AttributeError, TypeError, ValueError, OverflowError):
        # Fields of the wrong type (a hostile or broken server): an error, not a crash.
        return [StreamError(f"the server sent a malformed event: {data[:200]!r}")]
    if any(
        isinstance(e, ContentDelta | ReasoningDelta) and not isinstance(e.text, str) for e in events
    ):
        return [StreamError(f"the server sent a malformed event: {data[:200]!r}")]
    return events


# -- one answer --------------------------------------------------------------


@dataclass
class ToolCall:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""

    def arguments_json(self) -> Any:
        """The parsed arguments, or None while (or if) they are not valid JSON."""
        try:
            return json.loads(self.arguments)
        except ValueError:
            return None


def format_tool_call(call: ToolCall) -> str:
    """``name({"arg": 1})``: arguments re-serialised when they are complete JSON."""
    parsed = call.arguments_json()
    args = json.dumps(parsed, ensure_ascii=False) if parsed is not None else call.arguments
    return f"{call.name or '?'}({args})"


def tool_calls_text(calls: dict[int, ToolCall]) -> str:
    return "\n".join(f"tool call {format_tool_call(c)}" for _, c in sorted(calls.items()))


@dataclass
class Answer:
    """One assistant turn as it arrives, with its timing.

    Times are ``time.monotonic()`` seconds. ``tokens_per_s`` is the decode rate:
    the tokens after the first chunk over the time after the first chunk, both
    from ``usage`` (continuous usage stats), so several tokens per chunk count.
    """

    t_request: float
    content: str = ""
    reasoning: str = ""
    tool_calls: dict[int, ToolCall] = field(default_factory=dict)
    usage: Usage | None = None
    finish_reason: str | None = None
    error: str | None = None
    stopped: bool = False
    t_first: float | None = None
    t_last: float | None = None
    t_end: float | None = None
    tokens_at_first: int | None = None
    acceptance: Acceptance | None = None
    """This answer's own spec-decode acceptance, when the server told (or counters showed)."""
    _awaiting_first_usage: bool = field(default=False, repr=False)

    def apply(self, event: Event, now: float) -> None:
        if isinstance(event, ContentDelta | ReasoningDelta | ToolCallDelta):
            if self.t_first is None:
                self.t_first = now
                self._awaiting_first_usage = True
            self.t_last = now
        if isinstance(event, ContentDelta):
            self.content += event.text
        elif isinstance(event, ReasoningDelta):
            self.reasoning += event.text
        elif isinstance(event, ToolCallDelta):
            call = self.tool_calls.setdefault(event.index, ToolCall(event.index))
            if event.id:
                call.id = event.id
            if event.name:
                call.name = event.name
            call.arguments += event.arguments
        elif isinstance(event, Usage):
            self.usage = event
            if self._awaiting_first_usage:
                # The usage riding on the first token-bearing chunk: tokens it carried.
                self.tokens_at_first = event.completion_tokens
                self._awaiting_first_usage = False
        elif isinstance(event, Finished):
            self.finish_reason = event.reason
        elif isinstance(event, StreamError):
            self.error = event.message
        elif isinstance(event, SpecMetrics):
            self.acceptance = event.acceptance

    def finish(self, now: float) -> None:
        if self.t_end is None:
            self.t_end = now

    @property
    def ttft_s(self) -> float | None:
        return None if self.t_first is None else self.t_first - self.t_request

    @property
    def completion_tokens(self) -> int | None:
        return None if self.usage is None else self.usage.completion_tokens

    @property
    def prompt_tokens(self) -> int | None:
        return None if self.usage is None else self.usage.prompt_tokens

    @property
    def tokens_per_s(self) -> float | None:
        tokens = self.completion_tokens
        if tokens is None or self.t_first is None or self.t_last is None:
            return None
        first = self.tokens_at_first if self.tokens_at_first is not None else 1
        span = self.t_last - self.t_first
        if span <= 0 or tokens - first <= 0:
            return None
        return (tokens - first) / span

    @property
    def elapsed_s(self) -> float | None:
        return None if self.t_end is None else self.t_end - self.t_request

    def stats(self) -> dict[str, Any]:
        """Per-answer figures, as stored in the transcript."""
        return {
            "ttft_s": _round(self.ttft_s),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens_per_s": _round(self.tokens_per_s),
            "elapsed_s": _round(self.elapsed_s),
            "acceptance": self.acceptance.to_dict() if self.acceptance else None,
        }

    def stats_line(self) -> str:
        """``TTFT 0.12 s · 57 tokens · 85.3 tok/s`` (``?`` where unknown)."""
        ttft = "?" if self.ttft_s is None else f"{self.ttft_s:.2f} s"
        tokens = "?" if self.completion_tokens is None else str(self.completion_tokens)
        rate = "?" if self.tokens_per_s is None else f"{self.tokens_per_s:.1f}"
        parts = [f"TTFT {ttft}", f"{tokens} tokens", f"{rate} tok/s"]
        if self.acceptance is not None:
            parts.append(self.acceptance.line())
        if self.stopped:
            parts.append("stopped")
        elif self.finish_reason and self.finish_reason != "stop":
            parts.append(f"finish: {self.finish_reason}")
        if self.error:
            parts.append("error")
        return " · ".join(parts)

    def as_message(self) -> dict[str, Any]:
        """The assistant message sent back as history in the next request."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id or f"call_{call.index}",
                    "type": "function",
                    "function": {"name": call.name or "", "arguments": call.arguments},
                }
                for call in sorted(self.tool_calls.values(), key=lambda c: c.index)
            ]
        return message


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


# -- settings and history ----------------------------------------------------


@dataclass
class ChatSettings:
    """Sampling settings; None leaves the server's default (the model's generation config)."""

    temperature: float | None = None
    max_tokens: int | None = 512
    top_p: float | None = None

    def validate(self) -> None:
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            raise ConsoleError(f"temperature {self.temperature} is out of range: use 0 to 2")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConsoleError(f"max tokens {self.max_tokens} must be at least 1")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConsoleError(f"top_p {self.top_p} is out of range: use a value in (0, 1]")

    def to_body(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Conversation:
    system: str = ""
    turns: list[dict[str, Any]] = field(default_factory=list)

    def request_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        if self.system.strip():
            messages.append({"role": "system", "content": self.system})
        return messages + self.turns


# -- transcript --------------------------------------------------------------


class Transcript:
    """A JSONL file, one record per line, flushed as each record is written.

    Records have ``type`` and ``ts`` (Unix time): ``meta`` (URL, model,
    settings), ``system``, ``user`` (written before the request is sent),
    ``delta`` (``content``/``reasoning``/``tool_call`` as they stream) and
    ``answer`` (the whole answer with its figures, ``stopped`` and ``error``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        paths.ensure(path.parent)
        self._file: IO[str] | None = path.open("a", encoding="utf-8")

    @classmethod
    def new(cls, directory: Path | None = None) -> Transcript:
        folder = directory if directory is not None else paths.transcripts_dir()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return cls(folder / f"{stamp}-{secrets.token_hex(3)}.jsonl")

    def record(self, kind: str, **fields: Any) -> None:
        if self._file is None:
            return
        line = json.dumps({"type": kind, "ts": round(time.time(), 3), **fields}, default=str)
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        with path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]


# -- client ------------------------------------------------------------------


class ChatClient:
    """``/v1/models`` and streamed ``/v1/chat/completions``, over the one server client.

    ``timeout`` is the stream's idle timeout (no byte for that long ends it);
    connect timeout, whole-answer deadline and size caps are
    :data:`console.server_client.STREAM`'s.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = STREAM.idle_s,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``transport`` replays recorded streams in tests (httpx's own seam)."""
        self._server = ServerClient(url, api_key=api_key, transport=transport)
        self.url = self._server.url
        self._limits = replace(STREAM, idle_s=timeout)

    @property
    def server(self) -> ServerClient:
        """The underlying server client (``/metrics`` for the acceptance fallback)."""
        return self._server

    async def aclose(self) -> None:
        await self._server.aclose()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @staticmethod
    def _with_hint(exc: ServerError) -> ServerError:
        if exc.kind == "unreachable" and exc.hint is not None:
            exc.hint = (
                "is the server running? start it on the server screen or with "
                "`vllm-console up NAME`, or pass --url"
            )
        return exc

    async def models(self) -> list[str]:
        try:
            return await self._server.models()
        except ServerError as exc:
            raise self._with_hint(exc) from None

    async def default_model(self) -> str:
        models = await self.models()
        if not models:
            raise ConsoleError(f"{self.url}/v1/models lists no model", hint="pass --model")
        return models[0]

    @staticmethod
    def request_body(
        model: str, messages: list[dict[str, Any]], settings: ChatSettings
    ) -> dict[str, Any]:
        return {
            "model": model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            **settings.to_body(),
        }

    async def stream(
        self, model: str, messages: list[dict[str, Any]], settings: ChatSettings
    ) -> AsyncIterator[Event]:
        """Events of one streamed answer; ends after ``[DONE]`` or a ``StreamError``."""
        body = self.request_body(model, messages, settings)
        try:
            async with contextlib.aclosing(
                self._server.sse("/v1/chat/completions", body, self._limits)
            ) as payloads:
                async for data in payloads:
                    events = events_from_payload(data)
                    if events is None:
                        return
                    for event in events:
                        yield event
                        if isinstance(event, StreamError):
                            return
        except ServerError as exc:
            raise self._with_hint(exc) from None


# -- the session the UI and CLI drive ----------------------------------------

ALONE_WAIT_S = 3.0
"""How long the counters may take to show a finished answer (they update per step)."""


@dataclass(frozen=True)
class _Counters:
    spec: tuple[float, float, float, tuple[float, ...]]
    generated: float
    finished: float


class ChatSession:
    """A multi-turn conversation with one server, kept on disk as it happens."""

    def __init__(
        self,
        client: ChatClient,
        *,
        model: str | None = None,
        system: str = "",
        settings: ChatSettings | None = None,
        transcript: Transcript | None = None,
        measure_acceptance: bool = False,
    ) -> None:
        """``measure_acceptance``: without per-request metrics from the server, take an
        answer's acceptance from the /metrics counters around it when it ran alone."""
        self.client = client
        self.measure_acceptance = measure_acceptance
        self._spec_server: bool | None = None  # None: not known yet
        self.model = model
        self.conversation = Conversation(system=system)
        self.settings = settings or ChatSettings()
        self.transcript = transcript
        self.answers: list[Answer] = []
        self._meta_written = False

    @property
    def system(self) -> str:
        return self.conversation.system

    def set_system(self, text: str) -> None:
        if text != self.conversation.system:
            self.conversation.system = text
            if self.transcript is not None and self._meta_written:
                self.transcript.record("system", content=text)

    async def resolve_model(self) -> str:
        if self.model is None:
            self.model = await self.client.default_model()
        return self.model

    def _write_meta(self) -> None:
        if self.transcript is None or self._meta_written:
            return
        self.transcript.record(
            "meta",
            url=self.client.url,
            model=self.model,
            settings=asdict(self.settings),
        )
        if self.conversation.system:
            self.transcript.record("system", content=self.conversation.system)
        self._meta_written = True

    async def send(self, text: str, *, answer: Answer | None = None) -> AsyncIterator[Event]:
        """Send ``text``; yield the answer's events as they arrive.

        Whatever happens (stop, error, cancellation) the user turn and the
        partial answer stay in the history and the transcript. Request-level
        failures raise ``ConsoleError``; a mid-stream server error is yielded as
        ``StreamError`` and left in ``answer.error``. Pass ``answer`` to watch it
        fill in; it is also appended to ``self.answers``.
        """
        self.settings.validate()
        resolve_error: ConsoleError | None = None
        try:
            await self.resolve_model()
        except ConsoleError as exc:
            resolve_error = exc  # raised below, once the user turn is on disk
        self._write_meta()
        if self.transcript is not None:
            self.transcript.record("user", content=text)
        messages = [*self.conversation.request_messages(), {"role": "user", "content": text}]
        self.conversation.turns.append({"role": "user", "content": text})
        current = answer if answer is not None else Answer(t_request=time.monotonic())
        self.answers.append(current)
        model = self.model
        try:
            if resolve_error is not None:
                raise resolve_error
            model = await self.resolve_model()
            before = await self._idle_counters()
            current.t_request = time.monotonic()
            async for event in self.client.stream(model, messages, self.settings):
                current.apply(event, time.monotonic())
                self._record_delta(event)
                yield event
            if before is not None and current.acceptance is None and current.error is None:
                current.acceptance = await self._alone_delta(before, current)
        except ConsoleError as exc:
            current.error = str(exc)
            raise
        except Exception as exc:
            current.error = f"{type(exc).__name__}: {exc}"
            raise
        except BaseException:
            # CancelledError, GeneratorExit, KeyboardInterrupt: the user stopped it.
            current.stopped = True
            raise
        finally:
            current.finish(time.monotonic())
            self.conversation.turns.append(current.as_message())
            if self.transcript is not None:
                with contextlib.suppress(OSError):
                    self.transcript.record(
                        "answer",
                        content=current.content,
                        reasoning=current.reasoning or None,
                        tool_calls=[asdict(c) for c in current.tool_calls.values()] or None,
                        finish_reason=current.finish_reason,
                        stopped=current.stopped,
                        error=current.error,
                        model=model,
                        settings=asdict(self.settings),
                        stats=current.stats(),
                    )

    async def _scrape(self) -> Any:
        from console import metrics

        try:
            return await metrics.ascrape(self.client.server, timeout=5.0)
        except ConsoleError:
            return None

    async def _idle_counters(self) -> _Counters | None:
        """The spec counters before an answer, if this is a spec-decode server at rest."""
        if not self.measure_acceptance or self._spec_server is False:
            return None
        from console import metric_names as N
        from console import metrics

        sample = await self._scrape()
        spec = metrics.spec_counts(sample) if sample is not None else None
        if spec is None:
            self._spec_server = False  # no spec counters (or no /metrics): never again
            return None
        self._spec_server = True
        if (sample.total(N.RUNNING) or 0) + (sample.total(N.WAITING) or 0):
            return None  # another request is in flight: its drafts would mix in
        return _Counters(
            spec, sample.total(N.GENERATION_TOKENS) or 0, sample.total(N.REQUEST_SUCCESS) or 0
        )

    async def _alone_delta(self, before: _Counters, answer: Answer) -> Acceptance | None:
        """Counter differences once they show exactly this answer, and nothing else."""
        import asyncio

        from console import metric_names as N
        from console import metrics

        tokens = answer.completion_tokens
        if tokens is None:
            return None
        deadline = time.monotonic() + ALONE_WAIT_S
        while True:
            sample = await self._scrape()
            spec = metrics.spec_counts(sample) if sample is not None else None
            if spec is None:
                return None
            generated = (sample.total(N.GENERATION_TOKENS) or 0) - before.generated
            finished = (sample.total(N.REQUEST_SUCCESS) or 0) - before.finished
            if generated > tokens or finished > 1:
                return None  # another request ran meanwhile
            if generated == tokens and finished == 1:
                return acceptance.from_counts(before.spec, spec)
            if time.monotonic() > deadline:
                return None  # counters never settled on this answer alone
            await asyncio.sleep(0.1)

    def _record_delta(self, event: Event) -> None:
        if self.transcript is None:
            return
        if isinstance(event, ContentDelta):
            self.transcript.record("delta", content=event.text)
        elif isinstance(event, ReasoningDelta):
            self.transcript.record("delta", reasoning=event.text)
        elif isinstance(event, ToolCallDelta):
            self.transcript.record("delta", tool_call=asdict(event))
        elif isinstance(event, StreamError):
            self.transcript.record("error", message=event.message, code=event.code)

    def reset(self) -> None:
        """A new conversation (same system prompt and settings); a new transcript file."""
        self.conversation.turns.clear()
        self.answers.clear()
        if self.transcript is not None:
            folder = self.transcript.path.parent
            self.transcript.close()
            self.transcript = Transcript.new(folder)
            self._meta_written = False

    async def aclose(self) -> None:
        if self.transcript is not None:
            self.transcript.close()
        await self.client.aclose()
