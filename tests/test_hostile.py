"""Hostile servers, end to end: the CLI and the TUI against a real loopback server
that sends escape sequences, NaN/Inf pages, a one-byte-a-second drip and a
50 MB page (tests/fixtures/hostile_server.py). Nothing reaches the terminal
unsanitised, no figure is NaN, nothing hangs or crashes."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import pytest

from console.app import ConsoleApp
from console.chat import Transcript
from console.cli import main
from console.metrics import derive, parse_metrics
from console.screens.chat import ChatScreen
from console.session import Session
from console.widgets.chat_message import AssistantMessage
from tests.fixtures.hostile_server import (
    ANSWER_DELTAS,
    CLIPBOARD_B64,
    PAGE,
    REASONING_DELTAS,
    TITLE_MARK,
    VISIBLE_ANSWER,
    HostileServer,
    nonfinite_page,
)
from tests.screen_helpers import wait_until

UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def assert_terminal_safe(text: str) -> None:
    bad = UNSAFE.search(text)
    assert bad is None, f"control character {bad.group()!r} at {bad.start()}: {text!r}"
    assert TITLE_MARK not in text and CLIPBOARD_B64 not in text


def strict_loads(text: str) -> Any:
    """json.loads that refuses NaN/Infinity (they are not JSON)."""

    def refuse(name: str) -> None:
        raise ValueError(f"non-JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


# -- CLI chat --------------------------------------------------------------------


def test_cli_chat_shows_no_escape_and_keeps_the_exact_transcript(
    hostile_server: HostileServer,
    private_state: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc = main(["chat", "--url", hostile_server.url("escape"), "hi"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert_terminal_safe(out)
    assert_terminal_safe(err)
    assert out == VISIBLE_ANSWER + "\n"
    assert "[reasoning] thinking red" in err
    assert "tool call get_weather" in err
    # The transcript keeps what the server sent, byte for byte (JSON-escaped).
    path = Path(err.split("transcript: ", 1)[1].strip())
    raw = path.read_text(encoding="utf-8")
    assert "\x1b" not in raw  # escaped in JSON, not raw
    answer = Transcript.read(path)[-1]
    assert answer["content"] == "".join(ANSWER_DELTAS)
    assert answer["reasoning"] == "".join(REASONING_DELTAS)


# -- monitor ----------------------------------------------------------------------


def test_monitor_once_json_on_a_nan_inf_page(
    hostile_server: HostileServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    record = tmp_path / "rec.jsonl"
    url = hostile_server.url("nan")
    rc = main(["monitor", "--url", url, "--once", "--json", "--interval", "0.2"])
    rc_rec = main(
        ["monitor", "--url", url, "--once", "--json", "--interval", "0.2", "--record", str(record)]
    )
    out = capsys.readouterr().out.splitlines()
    assert rc in (0, 1) and rc_rec in (0, 1)
    report = strict_loads(out[0])
    assert strict_loads(record.read_text().strip())["url"] == url
    assert report["ok"] is True
    assert report["kv_cache"]["usage"] is None  # NaN gauge
    assert report["requests"]["running"] is None  # +Inf gauge
    assert report["requests"]["waiting"] is None  # -Inf gauge
    assert report["throughput"]["generation_tokens_per_s"] is None  # NaN counter: window skipped
    assert report["throughput"]["prompt_tokens_per_s"] is None  # +Inf counter
    assert report["preemptions"]["lifetime"] is None  # -Inf counter
    assert report["latency"]["ttft_s"]["mean"] is None  # NaN histogram sum
    assert "vllm:kv_cache_usage_perc" in report["nonfinite"]
    assert "vllm:generation_tokens_total" in report["nonfinite"]


def test_monitor_text_on_a_nan_page_says_so(
    hostile_server: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["monitor", "--url", hostile_server.url("nan"), "--once", "--interval", "0.2"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "NON-FINITE" in out and "vllm:generation_tokens_total" in out
    figures = [
        line
        for line in out.splitlines()[1:]  # the head names the URL, .../nan
        if "NON-FINITE" not in line and "windows over" not in line
    ]
    assert figures and not re.search(r"\b(?:nan|inf)", "\n".join(figures), re.IGNORECASE)
    assert "running -  waiting -" in out


def test_monitor_once_against_a_drip_returns_with_the_deadline(
    hostile_server: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = hostile_server.url("drip")
    t0 = time.monotonic()
    rc = main(["monitor", "--url", url, "--once", "--json", "--interval", "0.2"])
    elapsed = time.monotonic() - t0
    report = strict_loads(capsys.readouterr().out)
    assert rc == 1
    assert report["ok"] is False
    assert "deadline" in report["error"] and f"{url}/metrics" in report["error"]
    assert elapsed < 30, f"monitor --once took {elapsed:.0f} s against a drip"


def test_monitor_once_against_a_50mb_page_stops_at_the_cap(
    hostile_server: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["monitor", "--url", hostile_server.url("big"), "--once", "--json"])
    report = strict_loads(capsys.readouterr().out)
    assert rc == 1 and report["ok"] is False
    assert "size cap" in report["error"] and "8 MiB" in report["error"]


def test_non_finite_counter_skips_the_window_and_recovers() -> None:
    good = parse_metrics(PAGE, timestamp=100.0)
    bad = parse_metrics(nonfinite_page(), timestamp=101.0)
    later = parse_metrics(PAGE.replace(" 770.0", " 790.0"), timestamp=102.0)
    over_bad = derive(bad, good)
    assert over_bad.throughput.generation_tokens_per_s is None
    assert over_bad.kv_cache.usage is None and over_bad.requests.running is None
    assert "vllm:generation_tokens_total" in over_bad.nonfinite
    after_bad = derive(later, bad)  # the window starts on a NaN: skipped too
    assert after_bad.throughput.generation_tokens_per_s is None
    back = derive(later, good)
    assert back.throughput.generation_tokens_per_s == pytest.approx(10.0)
    assert back.nonfinite == ()
    for value in json.loads(json.dumps(over_bad.to_dict())).values():
        assert not (isinstance(value, float) and not math.isfinite(value))


# -- TUI (Pilot) -----------------------------------------------------------------


async def test_tui_chat_shows_no_escape_and_stays_up(
    hostile_server: HostileServer, private_state: Path
) -> None:
    app = ConsoleApp(session=Session(url=hostile_server.url("escape")), start_mode="chat")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await wait_until(
            pilot,
            lambda: screen._served_model is not None,
            timeout=20,
            what="the served model name",
        )
        status = str(screen.query_one("#chat-status").render())
        assert "evil-model" in status
        assert_terminal_safe(status)
        await pilot.click("#chat-input")
        await pilot.press(*"hi", "enter")
        await wait_until(
            pilot,
            lambda: (
                screen.chat is not None
                and screen.chat.answers
                and screen.chat.answers[-1].t_end is not None
                and not screen.generating
            ),
            timeout=30,
            what="the hostile answer",
        )
        await pilot.pause()
        view = screen.query_one(AssistantMessage)
        assert view.answer_text == VISIBLE_ANSWER
        reasoning = view.query_one(".reasoning").source  # type: ignore[attr-defined]
        assert reasoning == "thinking red"
        tools = str(view.query_one(".tools").render())
        assert "get_weather" in tools
        for shown in (view.answer_text, reasoning, tools):
            assert_terminal_safe(shown)
        # The transcript on disk keeps the exact bytes.
        assert screen.chat.transcript is not None
        last = Transcript.read(screen.chat.transcript.path)[-1]
        assert last["content"] == "".join(ANSWER_DELTAS)
        assert app.is_running


async def test_tui_dashboard_on_a_nan_page_stays_up(
    hostile_server: HostileServer, private_state: Path
) -> None:
    app = ConsoleApp(session=Session(url=hostile_server.url("nan")), start_mode="dashboard")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await wait_until(
            pilot,
            lambda: (
                getattr(screen, "tracker", None) is not None and screen.tracker.previous is not None
            ),
            timeout=30,
            what="two scrapes of the NaN page",
        )
        await pilot.pause(0.5)
        figures = screen.tracker.last_interval()
        assert figures is not None and figures.kv_cache.usage is None
        # Every consumer of the polls (history recorder, event detector) took
        # the NaN/-Inf page; polling goes on.
        sampler = app.session.sampler
        polls = sampler.polls
        await wait_until(pilot, lambda: sampler.polls > polls, timeout=30, what="one more poll")
        assert sampler.subscriber_error is None
        assert app.is_running
        assert not any(n.severity == "error" for n in app._notifications)


@pytest.mark.parametrize(
    "payload",
    [
        '{"choices": [1]}',
        '{"choices": [{"delta": {"content": 5}}]}',
        '{"choices": [{"delta": {"tool_calls": [{"index": "x"}]}}]}',
        '{"usage": {"completion_tokens": 1e999}}',
        "[" * 100_000 + "]" * 100_000,
    ],
    ids=["choice-not-object", "content-not-text", "bad-index", "infinite-usage", "deep-nesting"],
)
def test_malformed_stream_events_are_errors_not_crashes(payload: str) -> None:
    from console.chat import StreamError, events_from_payload

    events = events_from_payload(payload)
    assert events is not None and len(events) == 1 and isinstance(events[0], StreamError)
