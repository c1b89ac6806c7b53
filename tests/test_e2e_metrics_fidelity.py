"""Fidelity: the console's window acceptance equals vLLM's own log line.

vLLM's ``SpecDecoding metrics:`` line counts the drafts observed since its
previous print (every ``VLLM_LOG_STATS_INTERVAL`` = 10 s, and only when there
were drafts); the Prometheus counters are fed from the same per-step stats in
the same process. So a window bounded by two *quiet* scrapes matches the sum of
the log lines printed in between, provided each quiet period is longer than one
log interval: a quiet stretch of more than 10 s contains a log tick, which
flushes (prints and resets) everything observed before it, and nothing is
observed after it.

Procedure: wait for quiet (> 10 s without counter change, nothing running),
scrape S0 and note the log's size; drive repeat-the-paragraph completions
(n-gram drafts from the prompt get accepted); wait for quiet again and scrape
S1. The log lines appended after S0 must sum to exactly the drafted and
accepted tokens of ``derive(S1, S0).spec_decode.window``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from console.logs import LogParser, SpecDecodeLogStats
from console.metrics import MetricsSample, derive, scrape

LOG_INTERVAL_S = 10.0  # vLLM's default VLLM_LOG_STATS_INTERVAL
QUIET_S = LOG_INTERVAL_S + 2.5
POLL_S = 0.5
DEADLINE_S = 180.0

PARAGRAPH = (
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, "
    "carrying a brass lantern, a notebook and a flask of tea. From the gallery he "
    "watched the fishing boats return to the harbour, counted the gulls on the "
    "breakwater and wrote the wind, the swell and the colour of the sky in neat "
    "columns before lighting the great lamp."
)


def _counters(s: MetricsSample) -> tuple[float | None, ...]:
    return (
        s.total(("vllm:spec_decode_num_drafts_total",)),
        s.total(("vllm:generation_tokens_total",)),
        s.total(("vllm:num_requests_running",)),
        s.total(("vllm:num_requests_waiting",)),
    )


def wait_for_quiet(url: str, client: httpx.Client) -> MetricsSample:
    """A sample taken after more than one log interval with no activity at all."""
    deadline = time.monotonic() + DEADLINE_S
    first = scrape(url, client=client)
    since, last = time.monotonic(), _counters(first)
    while time.monotonic() < deadline:
        s = scrape(url, client=client)
        c = _counters(s)
        busy = bool(c[2]) or bool(c[3])
        if c != last or busy:
            since, last = time.monotonic(), c
        elif time.monotonic() - since >= QUIET_S:
            return s
        time.sleep(POLL_S)  # polling cadence; the condition above is what we wait on
    pytest.fail(
        f"{url} never stayed idle for {QUIET_S:.0f} s within {DEADLINE_S:.0f} s "
        "(someone else is driving the shared server?)"
    )


def drive_repeat_requests(url: str, model: str, n: int = 4) -> None:
    prompt = (
        f"{PARAGRAPH}\n\nRepeat the paragraph above exactly, word for word.\n\n{PARAGRAPH[:60]}"
    )
    with httpx.Client(timeout=120.0) as c:
        for _ in range(n):
            r = c.post(
                f"{url}/v1/completions",
                json={"model": model, "prompt": prompt, "max_tokens": 64, "temperature": 0},
            )
            assert r.status_code == 200, r.text


def _log_path(server) -> Path:
    path = server.log_path or os.environ.get("VLLM_CONSOLE_TEST_NGRAM_LOG")
    if not path:
        pytest.fail(
            "the n-gram server fixture gives no log_path: this test needs the server's log "
            "(set VLLM_CONSOLE_TEST_NGRAM_LOG when attaching to a running server)"
        )
    p = Path(path)
    if not p.is_file():
        pytest.fail(f"{p}: server log not found")
    return p


@pytest.mark.timeout(600)
def test_window_acceptance_matches_vllm_log_line(vllm_ngram_server) -> None:
    url, log = vllm_ngram_server.url.rstrip("/"), _log_path(vllm_ngram_server)
    with httpx.Client(timeout=10.0) as client:
        s0 = wait_for_quiet(url, client)
        offset = log.stat().st_size
        drive_repeat_requests(url, vllm_ngram_server.model)
        s1 = wait_for_quiet(url, client)

    window = derive(s1, s0).spec_decode
    assert window is not None and window.window is not None, "no spec-decode counters"
    w = window.window
    assert w.drafts > 0, "the burst produced no drafts"

    parser = LogParser()
    with log.open(encoding="utf-8", errors="replace") as fh:
        fh.seek(offset)
        events = [e for line in fh for e in parser.feed(line)]
    events += parser.flush()
    lines = [e for e in events if isinstance(e, SpecDecodeLogStats)]
    assert lines, f"no SpecDecoding line in {log} after offset {offset}"

    assert sum(e.drafted for e in lines) == w.draft_tokens
    assert sum(e.accepted for e in lines) == w.accepted_tokens
    if len(lines) == 1:
        # One interval: the log's rounded figures match the console's exact ones.
        (e,) = lines
        assert e.mean_acceptance_length == pytest.approx(w.mean_acceptance_length, abs=0.006)
        assert e.acceptance_rate == pytest.approx(w.draft_acceptance_rate, abs=0.0006)
        assert e.per_position == pytest.approx(w.per_position, abs=0.0006)
