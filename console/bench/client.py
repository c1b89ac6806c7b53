"""One streamed chat request, timed the way ``vllm bench serve`` times it.

Definitions (reference/vllm.md section 7, vLLM 0.33 ``endpoint_request_func``):

- TTFT: send -> the first chunk whose delta carries content, reasoning or
  tool calls (the opening ``role`` chunk does not count);
- latency: send -> the last chunk that carries choices (the trailing usage
  chunk carries no token);
- output tokens: ``usage.completion_tokens`` of the final chunk, requested
  with ``stream_options.include_usage`` — never counted from chunks, since
  speculative decoding packs several tokens into one chunk;
- TPOT: (latency - TTFT) / (output tokens - 1), for answers longer than one token.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from console.server_client import STREAM, ServerClient, ServerError, StreamLimits, error_message

if TYPE_CHECKING:
    import httpx


@dataclass
class RequestResult:
    """What one request produced; times are seconds from the request's send."""

    prompt_id: str
    start: float = 0.0
    """Send time relative to the start of the run it belongs to."""
    ttft: float | None = None
    latency: float | None = None
    output_tokens: int | None = None
    prompt_tokens: int | None = None
    text: str = ""
    token_ids: list[int] | None = None
    finish_reason: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.ttft is not None

    @property
    def tpot(self) -> float | None:
        if self.ttft is None or self.latency is None or not self.output_tokens:
            return None
        if self.output_tokens <= 1:
            return None
        return (self.latency - self.ttft) / (self.output_tokens - 1)

    @property
    def stream_tok_s(self) -> float | None:
        """Tokens per second this one stream saw (the seed's per-stream tok/s)."""
        if not self.output_tokens or not self.latency:
            return None
        return self.output_tokens / self.latency

    def to_dict(self, *, with_text: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "prompt_id": self.prompt_id,
            "start_s": self.start,
            "ttft_s": self.ttft,
            "latency_s": self.latency,
            "tpot_s": self.tpot,
            "output_tokens": self.output_tokens,
            "prompt_tokens": self.prompt_tokens,
            "finish_reason": self.finish_reason,
            "error": self.error,
        }
        if with_text:
            data["text"] = self.text
        return data


@dataclass(frozen=True)
class ChatRequest:
    """The body fields that make a fair, fixed-length benchmark request."""

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int
    temperature: float = 0.0
    ignore_eos: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
            # vLLM extension: the generated token ids, so the lossless check
            # can name the first differing token rather than a character.
            "return_token_ids": True,
        }
        if self.ignore_eos:
            body["ignore_eos"] = True
        body.update(self.extra)
        return body


def _has_output(delta: dict[str, Any]) -> bool:
    return bool(
        delta.get("content")
        or delta.get("reasoning")
        or delta.get("reasoning_content")
        or delta.get("tool_calls")
    )


async def stream_chat(
    client: httpx.AsyncClient,
    url: str,
    request: ChatRequest,
    *,
    prompt_id: str,
    run_start: float | None = None,
    limits: StreamLimits = STREAM,
) -> RequestResult:
    """Send ``request`` to ``url``/v1/chat/completions and time its stream.

    The stream is read by the one server client (``console.server_client``):
    its connect timeout, idle timeout, deadline and size caps apply (``limits``);
    ``client`` is the run's shared connection pool.

    Failures (HTTP errors, a broken stream, an error event mid-stream) are
    recorded on the result, not raised: one bad request must not lose a run.
    """
    server = ServerClient(url, http=client)
    endpoint = server.endpoint("/v1/chat/completions")
    result = RequestResult(prompt_id=prompt_id)
    sent = time.perf_counter()
    result.start = sent - run_start if run_start is not None else 0.0
    token_ids: list[int] = []
    got_ids = False
    last_choice_at: float | None = None
    try:
        async with contextlib.aclosing(
            server.sse("/v1/chat/completions", request.body(), limits)
        ) as payloads:
            async for payload in payloads:
                if payload.strip() == "[DONE]":
                    break
                now = time.perf_counter()
                chunk = json.loads(payload)
                if not isinstance(chunk, dict):
                    result.error = f"unexpected event from {endpoint}: {error_message(payload)}"
                    break
                if "error" in chunk and not chunk.get("choices"):
                    result.error = f"server error mid-stream: {error_message(payload)}"
                    break
                choices = chunk.get("choices") or []
                if choices:
                    choice = choices[0]
                    delta = choice.get("delta") or {}
                    if result.ttft is None and _has_output(delta):
                        result.ttft = now - sent
                    result.text += delta.get("content") or ""
                    ids = choice.get("token_ids")
                    if ids is not None:
                        got_ids = True
                        token_ids.extend(ids)
                    if choice.get("finish_reason"):
                        result.finish_reason = choice["finish_reason"]
                    last_choice_at = now
                usage = chunk.get("usage")
                if usage and not choices:
                    result.output_tokens = usage.get("completion_tokens")
                    result.prompt_tokens = usage.get("prompt_tokens")
    except ServerError as exc:
        result.error = exc.message
    except (ValueError, RecursionError, AttributeError, TypeError) as exc:
        result.error = f"{type(exc).__name__} reading the stream from {endpoint}: {exc}"
    if last_choice_at is not None:
        result.latency = last_choice_at - sent
    if got_ids:
        result.token_ids = token_ids
    if result.error is None and result.ttft is None:
        result.error = f"no streamed output from {endpoint}"
    if result.error is None and result.output_tokens is None:
        result.error = f"no usage chunk from {endpoint} (stream_options.include_usage ignored?)"
    return result
