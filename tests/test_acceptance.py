"""Acceptance per answer: vLLM's per-request figures, the counter fallback, the call-out."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from console import acceptance, metrics
from console.acceptance import Acceptance
from console.chat import (
    Answer,
    ChatClient,
    ChatSession,
    ChatSettings,
    SpecMetrics,
    Transcript,
    events_from_chunk,
)
from console.cli import main

# The final usage chunk of a real vLLM 0.32 CPU answer (n-gram, k=4), as it arrives.
FINAL_CHUNK = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "choices": [],
    "usage": {"prompt_tokens": 30, "total_tokens": 70, "completion_tokens": 40},
    "metrics": {
        "speculative_decoding": {
            "mean_acceptance_length": 2.25,
            "draft_acceptance_rate": 0.3125,
            "acceptance_histogram": [6, 2, 1, 1, 2],
            "num_spec_steps": 12,
            "num_accepted_draft_tokens": 15,
            "num_draft_tokens": 48,
            "num_spec_tokens": 4,
        }
    },
}


# --- figures from the payload ------------------------------------------------------------------


def test_payload_figures_are_recomputed_from_the_counts() -> None:
    [spec] = [e for e in events_from_chunk(FINAL_CHUNK) if isinstance(e, SpecMetrics)]
    acc = spec.acceptance
    assert (acc.source, acc.steps, acc.accepted, acc.drafted, acc.k) == (
        "per-request", 12, 15, 48, 4
    )  # fmt: skip
    assert acc.mean_length == pytest.approx(2.25) and acc.rate == pytest.approx(0.3125)
    # vLLM's per-position convention: steps that accepted at least i+1 tokens
    assert acc.per_position == pytest.approx((6 / 12, 4 / 12, 3 / 12, 2 / 12))
    assert sum(acc.per_position) == pytest.approx(acc.mean_length - 1)
    answer = Answer(t_request=0.0)
    for event in events_from_chunk(FINAL_CHUNK):
        answer.apply(event, 1.0)
    assert "accept 2.25 · 31 % · pos 0.50 0.33 0.25 0.17" in answer.stats_line()
    assert answer.stats()["acceptance"]["histogram"] == [6, 2, 1, 1, 2]
    json.dumps(answer.stats(), allow_nan=False)


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "x",
        {"acceptance_histogram": [1, float("nan")], "num_draft_tokens": 4},
        {"acceptance_histogram": [1, -2], "num_draft_tokens": 4},
        {"acceptance_histogram": [1] * 500, "num_draft_tokens": 4},
        {"acceptance_histogram": [], "num_draft_tokens": 4},
        {"acceptance_histogram": [1, 2], "num_draft_tokens": "4"},
        {"acceptance_histogram": [1, True], "num_draft_tokens": 4},
    ],
)
def test_hostile_payloads_show_nothing(payload: Any) -> None:
    assert acceptance.from_payload(payload) is None
    chunk = {"choices": [], "metrics": {"speculative_decoding": payload}}
    assert not [e for e in events_from_chunk(chunk) if isinstance(e, SpecMetrics)]


def test_near_zero_acceptance_is_called_out() -> None:
    dead = Acceptance("per-request", 40, 160, 1, (0.025, 0, 0, 0), (39, 1, 0, 0, 0), 4)
    assert dead.near_zero
    assert "draft not matching the target?" in dead.line() and "0 %" in dead.line()
    assert "accept 1." not in dead.line()  # not shown as a plain figure
    short = Acceptance("per-request", 1, 4, 0, (0.0,) * 4, (1, 0, 0, 0, 0), 4)
    assert not short.near_zero  # four draft tokens prove nothing


def test_counter_delta_figures() -> None:
    before = (10.0, 40.0, 12.0, (8.0, 3.0, 1.0, 0.0))
    after = (22.0, 88.0, 27.0, (14.0, 7.0, 4.0, 2.0))
    acc = acceptance.from_counts(before, after)
    assert acc is not None and acc.source == "metrics-delta"
    assert (acc.steps, acc.drafted, acc.accepted) == (12, 48, 15)
    assert acc.per_position == pytest.approx((0.5, 4 / 12, 0.25, 2 / 12))
    assert acc.line().endswith("(from /metrics, ran alone)")
    assert acceptance.from_counts(after, before) is None  # a restart in between


# --- a real n-gram server ------------------------------------------------------------------------

PROMPT = (
    "Repeat this list exactly, twice: alpha beta gamma delta epsilon zeta eta theta "
    "iota kappa lambda mu."
)


def spec_totals(url: str) -> tuple[tuple[float, float, float, tuple[float, ...]], float]:
    sample = metrics.scrape(url)
    counts = metrics.spec_counts(sample)
    assert counts is not None, f"{url} exports no spec-decode counters"
    return counts, sample.total(("vllm:generation_tokens_total",)) or 0.0


def settled_after(url: str, generated_before: float, tokens: int) -> tuple[Any, float]:
    """The counters once they include exactly this answer's tokens (deadline 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        counts, generated = spec_totals(url)
        if generated - generated_before == tokens:
            return counts, generated
        assert generated - generated_before < tokens, "another request ran on the server"
        assert time.monotonic() < deadline, "the counters never showed the answer"
        time.sleep(0.2)


class WithoutPerRequest(ChatClient):
    """The same server, as if it did not send per-request figures (kept aside here)."""

    dropped: Acceptance | None = None

    async def stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for event in super().stream(*args, **kwargs):
            if isinstance(event, SpecMetrics):
                self.dropped = event.acceptance
                continue
            yield event


def test_real_answer_carries_its_own_acceptance(
    vllm_ngram_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = vllm_ngram_server.url
    settings = ChatSettings(temperature=0.0, max_tokens=48)

    async def one(client: ChatClient, transcript: Transcript | None) -> Answer:
        chat = ChatSession(
            client, settings=settings, transcript=transcript, measure_acceptance=True
        )
        answer = Answer(t_request=time.monotonic())
        async for _ in chat.send(PROMPT, answer=answer):
            pass
        await chat.aclose()
        return answer

    # 1. per-request figures, checked against the counter deltas of that answer
    before, generated = spec_totals(url)
    transcript = Transcript(tmp_path / "t.jsonl")
    answer = asyncio.run(one(ChatClient(url), transcript))
    assert answer.error is None and answer.completion_tokens
    acc = answer.acceptance
    if acc is None or acc.source != "per-request":
        pytest.fail(
            f"{url} sent no metrics.speculative_decoding: start it with "
            "--per-request-spec-decode-metrics summary (the gemma3-270m-cpu-ngram preset does)"
        )
    after, _ = settled_after(url, generated, answer.completion_tokens)
    delta = acceptance.from_counts(before, after)
    assert delta is not None and delta.steps > 0
    assert (acc.steps, acc.drafted, acc.accepted) == (delta.steps, delta.drafted, delta.accepted)
    assert acc.per_position == pytest.approx(delta.per_position)
    assert acc.k == 4 and acc.accepted > 0
    # ... and the same figures are in the transcript
    [record] = [r for r in Transcript.read(transcript.path) if r["type"] == "answer"]
    assert record["stats"]["acceptance"] == acc.to_dict()
    assert record["stats"]["acceptance"]["source"] == "per-request"

    # 2. without per-request figures: the counters around the lone answer, labelled
    client = WithoutPerRequest(url)
    fallback = asyncio.run(one(client, None))
    assert client.dropped is not None  # the server did send them; we hid them
    got = fallback.acceptance
    assert got is not None and got.source == "metrics-delta"
    assert (got.steps, got.drafted, got.accepted) == (
        client.dropped.steps, client.dropped.drafted, client.dropped.accepted
    )  # fmt: skip
    assert "(from /metrics, ran alone)" in fallback.stats_line()

    # 3. `chat --stats` prints the answer's figures, acceptance included
    code = main(["chat", "--url", url, "--stats", "--no-transcript", "--temperature", "0",
                 "--max-tokens", "24", PROMPT])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    stats = json.loads(next(line for line in err.splitlines() if line.startswith("stats: "))[7:])
    assert stats["acceptance"]["source"] == "per-request"
    assert stats["acceptance"]["num_spec_steps"] > 0
    assert "accept " in err
