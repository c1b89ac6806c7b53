"""The chat core on recorded and hand-made streams: SSE framing, reasoning field
names, tool-call assembly, usage-based figures, mid-stream errors, transcript."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import httpx
import pytest

from console.chat import (
    Answer,
    ChatClient,
    ChatSession,
    ChatSettings,
    ContentDelta,
    Finished,
    ReasoningDelta,
    SSEDecoder,
    StreamError,
    ToolCallDelta,
    Transcript,
    Usage,
    events_from_payload,
    iter_sse_data,
)
from console.errors import ConsoleError

DATA = Path(__file__).parent / "data"
CAPTURE = DATA / "vllm-0.32-cpu" / "chat_stream.sse"


def replay(path: Path) -> list:
    """All events of a stream file, in order, as the client would see them."""
    events = []
    for data in iter_sse_data(path.read_text(encoding="utf-8").splitlines()):
        got = events_from_payload(data)
        if got is None:
            break
        events.extend(got)
    return events


def fill(path: Path, step: float = 0.01) -> Answer:
    """An answer built from a stream file, one event per ``step`` seconds."""
    answer = Answer(t_request=0.0)
    for i, event in enumerate(replay(path), start=1):
        answer.apply(event, i * step)
    answer.finish(1000.0)
    return answer


def transport_for(path: Path, status: int = 200) -> httpx.MockTransport:
    body = path.read_bytes()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": "m"}]})
        assert request.url.path == "/v1/chat/completions"
        return httpx.Response(status, content=body, headers={"content-type": "text/event-stream"})

    return httpx.MockTransport(handler)


# -- SSE framing -----------------------------------------------------------------


def test_sse_decoder_joins_data_lines_and_skips_comments() -> None:
    decoder = SSEDecoder()
    out = [decoder.feed(line) for line in [": ping", "data: a", "data:b", "event: x", ""]]
    assert out == [None, None, None, None, "a\nb"]
    assert decoder.feed("") is None


def test_sse_last_event_without_blank_line_is_kept() -> None:
    assert list(iter_sse_data(["data: 1", "", "data: [DONE]"])) == ["1", "[DONE]"]


def test_done_ends_the_stream() -> None:
    assert events_from_payload("[DONE]") is None


def test_non_json_payload_is_a_stream_error() -> None:
    (event,) = events_from_payload("<html>") or []
    assert isinstance(event, StreamError)
    assert "not JSON" in event.message


# -- the real capture (vLLM 0.32 CPU, continuous usage stats) ----------------------


def test_capture_text_and_usage() -> None:
    events = replay(CAPTURE)
    text = "".join(e.text for e in events if isinstance(e, ContentDelta))
    assert text.startswith("Write one sentence about the cosmos.")
    usages = [e for e in events if isinstance(e, Usage)]
    assert usages[-1] == Usage(prompt_tokens=16, completion_tokens=40, total_tokens=56)
    assert [e.reason for e in events if isinstance(e, Finished)] == ["length"]


def test_capture_figures_come_from_usage_not_chunks() -> None:
    answer = fill(CAPTURE, step=0.01)
    assert answer.completion_tokens == 40
    assert answer.prompt_tokens == 16
    assert answer.finish_reason == "length"
    # The first content chunk carried 1 token; the rate counts the 39 after it.
    assert answer.tokens_at_first == 1
    assert answer.ttft_s is not None and answer.ttft_s > 0
    span = answer.t_last - answer.t_first
    assert answer.tokens_per_s == pytest.approx(39 / span)


def test_several_tokens_per_chunk_count_as_tokens() -> None:
    """Under speculative decoding one chunk carries several tokens."""
    answer = Answer(t_request=0.0)
    answer.apply(ContentDelta("a"), 1.0)
    answer.apply(Usage(5, 3, 8), 1.0)  # first chunk: 3 tokens
    answer.apply(ContentDelta("bcde"), 2.0)
    answer.apply(Usage(5, 8, 13), 2.0)  # second chunk: 5 more
    answer.apply(ContentDelta("fg"), 3.0)
    answer.apply(Usage(5, 11, 16), 3.0)
    assert answer.ttft_s == 1.0
    assert answer.completion_tokens == 11
    assert answer.tokens_per_s == pytest.approx((11 - 3) / 2.0)
    assert "11 tokens" in answer.stats_line()


def test_without_usage_the_figures_are_unknown() -> None:
    answer = Answer(t_request=0.0)
    answer.apply(ContentDelta("a"), 1.0)
    answer.apply(ContentDelta("b"), 2.0)
    assert answer.completion_tokens is None
    assert answer.tokens_per_s is None
    assert "? tokens" in answer.stats_line()


# -- reasoning field names --------------------------------------------------------


def test_reasoning_content_old_servers() -> None:
    answer = fill(DATA / "chat" / "reasoning_content.sse")
    assert answer.reasoning == "Let me think."
    assert answer.content == "Four."
    assert answer.tokens_at_first == 2


def test_reasoning_both_fields_is_not_doubled() -> None:
    answer = fill(DATA / "chat" / "reasoning_both.sse")
    assert answer.reasoning == "Hmm, yes"
    assert answer.content == "Yes"


def test_reasoning_new_field() -> None:
    payload = json.dumps({"choices": [{"index": 0, "delta": {"reasoning": "r"}}]})
    assert events_from_payload(payload) == [ReasoningDelta("r")]


# -- tool calls ---------------------------------------------------------------------


def test_tool_call_arguments_are_assembled_per_index() -> None:
    answer = fill(DATA / "chat" / "tool_calls.sse")
    assert answer.finish_reason == "tool_calls"
    first, second = answer.tool_calls[0], answer.tool_calls[1]
    assert (first.id, first.name, first.arguments_json()) == (
        "chatcmpl-tool-a1",
        "get_weather",
        {"city": "Paris"},
    )
    assert (second.name, second.arguments_json()) == ("get_time", {"tz": "CET"})
    message = answer.as_message()
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["get_weather", "get_time"]


def test_tool_call_delta_fields() -> None:
    events = replay(DATA / "chat" / "tool_calls.sse")
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas[0] == ToolCallDelta(0, "chatcmpl-tool-a1", "get_weather", "")
    assert deltas[1] == ToolCallDelta(0, None, None, '{"city": "Par')


# -- settings ---------------------------------------------------------------------


def test_settings_body_leaves_unset_to_the_server() -> None:
    assert ChatSettings(temperature=None, max_tokens=None, top_p=None).to_body() == {}
    body = ChatClient.request_body("m", [], ChatSettings(temperature=0.2, max_tokens=64))
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    assert (body["temperature"], body["max_tokens"], body["stream"]) == (0.2, 64, True)


@pytest.mark.parametrize(
    "settings", [ChatSettings(temperature=3), ChatSettings(max_tokens=0), ChatSettings(top_p=0)]
)
def test_bad_settings_are_refused(settings: ChatSettings) -> None:
    with pytest.raises(ConsoleError):
        settings.validate()


# -- the session: history and transcript survive errors ------------------------------


async def collect(session: ChatSession, text: str) -> list:
    return [event async for event in session.send(text)]


async def test_midstream_error_keeps_history_and_transcript(tmp_path: Path) -> None:
    transcript = Transcript.new(tmp_path)
    client = ChatClient("http://x", transport=transport_for(DATA / "chat" / "midstream_error.sse"))
    session = ChatSession(client, system="be brief", transcript=transcript)
    events = await collect(session, "hello")
    await session.aclose()
    assert isinstance(events[-1], StreamError)
    answer = session.answers[-1]
    assert answer.error == "engine core died while generating"
    assert answer.content == "The first"
    assert session.conversation.turns == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "The first"},
    ]
    records = Transcript.read(transcript.path)
    kinds = [r["type"] for r in records]
    assert kinds == ["meta", "system", "user", "delta", "error", "answer"]
    assert records[-1]["error"] == answer.error
    assert records[-1]["content"] == "The first"


async def test_http_error_names_the_url_and_keeps_the_user_turn(tmp_path: Path) -> None:
    error = tmp_path / "err.json"
    error.write_text('{"error": {"message": "bad model", "type": "NotFoundError", "code": 404}}')
    transcript = Transcript.new(tmp_path)
    session = ChatSession(
        ChatClient("http://x", transport=transport_for(error, status=404)),
        model="nope",
        transcript=transcript,
    )
    with pytest.raises(ConsoleError, match=r"http://x/v1/chat/completions: HTTP 404: bad model"):
        await collect(session, "hi")
    assert session.conversation.turns[0] == {"role": "user", "content": "hi"}
    assert [r["type"] for r in Transcript.read(transcript.path)] == ["meta", "user", "answer"]


async def test_unreachable_server_is_a_console_error() -> None:
    session = ChatSession(ChatClient("http://127.0.0.1:9", timeout=2), model="m")
    with pytest.raises(ConsoleError, match=r"cannot reach http://127\.0\.0\.1:9"):
        await collect(session, "hi")
    await session.aclose()


async def test_model_defaults_to_the_first_served_one(tmp_path: Path) -> None:
    session = ChatSession(ChatClient("http://x", transport=transport_for(CAPTURE)))
    await collect(session, "hi")
    assert session.model == "m"
    assert session.answers[-1].completion_tokens == 40


async def test_cancel_keeps_the_partial_answer(tmp_path: Path) -> None:
    """A stop cancels the task mid-stream; the partial answer is kept and recorded."""
    transcript = Transcript.new(tmp_path)
    gate = asyncio.Event()

    async def slow_stream():
        yield b'data: {"choices":[{"index":0,"delta":{"content":"part"}}]}\n\n'
        await gate.wait()  # never set: the stream hangs until cancelled
        yield b"data: [DONE]\n\n"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=slow_stream())

    session = ChatSession(
        ChatClient("http://x", transport=httpx.MockTransport(handler)),
        model="m",
        transcript=transcript,
    )
    got_first = asyncio.Event()

    async def consume() -> None:
        async with contextlib.aclosing(session.send("go")) as events:
            async for _ in events:
                got_first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    answer = session.answers[-1]
    assert answer.stopped and answer.content == "part"
    last = Transcript.read(transcript.path)[-1]
    assert last["type"] == "answer" and last["stopped"] is True and last["content"] == "part"
    assert session.conversation.turns[-1] == {"role": "assistant", "content": "part"}
