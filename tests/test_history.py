"""History core: the store, events and alerts, summaries and replay frames.

Pages are real captures (tests/data/vllm-0.32-cpu) or hand-made with
``tests.test_metrics.build_page``; expected totals are computed by hand from
the counters written into those pages.
"""

from __future__ import annotations

import json
import math
import sqlite3
import sys
from pathlib import Path

import pytest

from console import logs as L
from console import metrics as M
from console.cli import main
from console.config import AlertSettings, load_config, parse_duration
from console.errors import ConsoleError
from console.history.alerts import AlertCommand, parse_command
from console.history.events import EventDetector, is_alert
from console.history.recorder import Recorder
from console.history.replay import ReplaySource
from console.history.store import HistoryStore, decode_series, encode_series
from console.history.summary import history_report, summarize
from tests.test_metrics import DATA, build_page

SERVER = "http://127.0.0.1:8000"


def sample(ts: float, **kw) -> M.MetricsSample:
    return M.parse_metrics(build_page(**kw), timestamp=ts, url=SERVER + "/metrics")


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    s = HistoryStore(tmp_path / "history.sqlite3")
    yield s
    s.close()


# --------------------------------------------------------------------------- store


def test_real_page_round_trips_exactly(store: HistoryStore) -> None:
    text = (DATA / "metrics_ngram.prom").read_text()
    s = M.parse_metrics(text, timestamp=1000.5, url=SERVER)
    rec = Recorder(SERVER, store=store)
    rec.feed(s)
    rows = store.samples(SERVER)
    assert len(rows) == 1 and rows[0].ok
    back = store.pages([rows[0].page_id])[rows[0].page_id]
    assert dict(back) == dict(s.series)
    again = M.MetricsSample(timestamp=rows[0].ts, series=back)
    assert M.derive(again).to_dict() == M.derive(s).to_dict()
    assert rows[0].drafts_total == 294 and rows[0].accepted_total == 621


def test_identical_pages_are_stored_once(store: HistoryStore) -> None:
    rec = Recorder(SERVER, store=store)
    for t in range(5):
        rec.feed(sample(100.0 + t))
    rows = store.samples(SERVER)
    assert len(rows) == 5
    assert len({r.page_id for r in rows}) == 1


def test_non_finite_values_are_unknown_never_numbers(store: HistoryStore) -> None:
    rec = Recorder(SERVER, store=store)
    rec.feed(sample(1.0, kv="NaN", gen=10))
    rec.feed(sample(2.0, kv="+Inf", gen=20))
    rows = store.samples(SERVER)
    assert [r.kv_usage for r in rows] == [None, None]
    page = store.pages([rows[0].page_id])[rows[0].page_id]
    assert "vllm:kv_cache_usage_perc" not in page or not page["vllm:kv_cache_usage_perc"]
    # strict JSON of the whole page encoding
    raw = encode_series({"x": ((((("a", "b"),), math.nan)),)})  # type: ignore[arg-type]
    assert decode_series(raw)["x"] == ()


def test_counter_reset_gives_no_negative_or_spiked_rate_and_totals_add_up(
    store: HistoryStore,
) -> None:
    rec = Recorder(SERVER, store=store)
    gens = [100, 150, 250, 5, 30, 60]  # restart after the third sample
    for i, g in enumerate(gens):
        rec.feed(sample(10.0 + i, gen=g, prompt=g // 2))
    rows = store.samples(SERVER)
    assert [r.reset for r in rows] == [False, False, False, True, False, False]
    rates = [r.gen_tps for r in rows]
    assert rates == [None, 50.0, 100.0, None, 25.0, 30.0]
    summary = summarize(SERVER, rows, store.events(SERVER))
    assert summary["generation_tokens"] == (250 - 100) + 60
    assert summary["prompt_tokens"] == (125 - 50) + 30
    assert summary["restarts"] == 1
    assert summary["peak_generation_tokens_per_s"] == 100.0
    assert summary["events"] == {"restarted": 1}


def test_restart_between_two_watchers_is_found_from_the_counters(store: HistoryStore) -> None:
    Recorder(SERVER, store=store).feed(sample(1.0, gen=500))
    Recorder(SERVER, store=store).feed(sample(60.0, gen=40))  # a new recorder: no reset flag
    rows = store.samples(SERVER)
    assert not rows[1].reset
    assert summarize(SERVER, rows)["generation_tokens"] == 40
    assert summarize(SERVER, rows)["restarts"] == 1


def test_failed_scrapes_are_gaps_not_zeros(store: HistoryStore) -> None:
    rec = Recorder(SERVER, store=store, clock=lambda: 3.0)
    rec.feed(sample(1.0, gen=10))
    rec.feed(sample(2.0, gen=20))
    rec.feed_error("connection refused")
    rec.feed(sample(4.0, gen=40))
    rows = store.samples(SERVER)
    assert [r.ok for r in rows] == [True, True, False, True]
    assert rows[2].gen_tps is None and rows[2].error == "connection refused"
    assert rows[3].gen_tps == 10.0  # over the 2 s since the last good sample
    s = summarize(SERVER, rows, max_gap_s=5)
    assert s["failed_samples"] == 1 and s["generation_tokens"] == 30


def test_retention_by_age_and_size(tmp_path: Path) -> None:
    s = HistoryStore(tmp_path / "h.sqlite3", max_age_s=100.0)
    rec = Recorder(SERVER, store=s)
    for t in range(50):
        rec.feed(sample(1000.0 + t, gen=t * 10))
    assert s.prune(now=1000.0 + 120) == 20  # samples older than 1020 are gone
    assert store_times(s)[0] == 1020.0
    s.max_bytes = 1
    s.prune(now=1100.0)
    assert store_times(s) == []
    assert s.pages([1, 2, 3]) == {}
    s.close()


def store_times(s: HistoryStore) -> list[float]:
    return [r.ts for r in s.samples(SERVER)]


def test_wal_mode_and_a_second_reader_while_writing(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    w = HistoryStore(path)
    Recorder(SERVER, store=w).feed(sample(1.0))
    (mode,) = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"
    r = HistoryStore(path, readonly=True)
    assert len(r.samples(SERVER)) == 1
    r.close()
    w.close()


def test_not_a_history_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.sqlite3"
    bad.write_text("hello, not sqlite " * 100)
    with pytest.raises(ConsoleError, match="not a vllm-console history file"):
        HistoryStore(bad, readonly=True)
    with pytest.raises(ConsoleError, match="no such history file"):
        HistoryStore(tmp_path / "missing.sqlite3", readonly=True)


def test_export_is_one_standalone_file(store: HistoryStore, tmp_path: Path) -> None:
    rec = Recorder(SERVER, store=store)
    for i in range(4):
        rec.feed(sample(float(i), gen=10 * i, kv=0.99))
    out = tmp_path / "share.sqlite3"
    assert store.export(out) == 4
    assert not (tmp_path / "share.sqlite3-wal").exists() or (
        (tmp_path / "share.sqlite3-wal").stat().st_size == 0
    )
    copy = HistoryStore(out, readonly=True)
    assert [r.gen_total for r in copy.samples(SERVER)] == [0, 10, 20, 30]
    assert [e.kind for e in copy.events(SERVER)] == ["kv_high"]
    copy.close()
    with pytest.raises(ConsoleError, match="already exists"):
        store.export(out)


# --------------------------------------------------------------------------- events


def kinds(events) -> list[str]:
    return [e.kind for e in events]


def test_kv_high_fires_once_and_clears() -> None:
    d = EventDetector(SERVER, AlertSettings(kv_usage=0.5))
    got = []
    for i, kv in enumerate([0.1, 0.6, 0.7, 0.8, 0.4, 0.3]):
        s = sample(float(i), kv=kv)
        got += d.on_sample(s, M.derive(s))
    assert kinds(got) == ["kv_high", "cleared"]
    assert got[0].data["usage"] == 0.6 and is_alert(got[0]) and not is_alert(got[1])


def test_queue_growing_within_the_window() -> None:
    d = EventDetector(SERVER, AlertSettings(waiting_growth=3, waiting_window=10))
    got = []
    for i, w in enumerate([0, 1, 2, 4, 5, 5, 5]):
        s = sample(float(i * 4), waiting=w)
        got += d.on_sample(s, M.derive(s))
    # 0 -> 4 within 12 s >= 3: fires at the 4th sample; 5,5,5 over 10 s: growth 0 -> cleared
    assert kinds(got) == ["queue_growing", "cleared"]


def test_acceptance_collapse_against_the_lifetime_baseline() -> None:
    d = EventDetector(
        SERVER, AlertSettings(acceptance_drop=0.5, acceptance_window=10, acceptance_min_drafts=10)
    )
    got = []
    drafts, accepted = 0, 0
    for i in range(30):
        drafts += 20
        accepted += 40 if i < 15 else 5  # 2.0 accepted per draft, then 0.25
        s = sample(float(i), spec=(drafts, drafts * 4, accepted, (0, 0, 0, 0)))
        got += d.on_sample(s, M.derive(s))
    assert kinds(got) == ["acceptance_collapse"]
    assert got[0].data["window_accept_len"] < 2.0 < got[0].data["baseline_accept_len"]


def test_no_spec_decode_no_acceptance_events() -> None:
    d = EventDetector(SERVER)
    s = sample(1.0)
    assert d.on_sample(s, M.derive(s)) == []


def test_non_finite_counters_are_unknown_not_a_crash() -> None:
    """A NaN/Inf counter (legal in a Prometheus page) is no increment and no event."""
    d = EventDetector(SERVER, AlertSettings(preemptions=1, admission_rejections=1))
    got = []
    for i, p in enumerate(["0", "NaN", "+Inf", "-Inf", "2"]):
        extra = f'vllm:num_preemptions_total{{engine="0",model_name="m"}} {p}\n'
        extra += f'vllm:admission_rejections_total{{model_name="m",reason="queue_full"}} {p}\n'
        s = sample(float(i * 100), extra=extra)
        got += d.on_sample(s, M.derive(s))
    # Only the finite totals count: the unknown ones in between are skipped
    # (the counter is unknown there; the next finite total starts afresh).
    assert all(e.data.get("count", 0) >= 0 for e in got)
    assert all(isinstance(e.data.get("count", 0), int) for e in got)


def test_preemptions_and_rejections_are_counted_and_repeated_at_most_every_minute() -> None:
    d = EventDetector(SERVER, AlertSettings(preemptions=2, repeat_after=60))
    got = []
    for i, p in enumerate([0, 1, 3, 10, 11, 20]):
        extra = f'vllm:num_preemptions_total{{engine="0",model_name="m"}} {p}\n'
        extra += f'vllm:admission_rejections_total{{model_name="m",reason="queue_full"}} {p}\n'
        s = sample(float(i * 20), extra=extra)
        got += d.on_sample(s, M.derive(s))
    # t=40: 3 preempted (>=2) -> event; t=60: +7 pending (within 60 s); t=100: 17 pending -> event
    pre = [e for e in got if e.kind == "preemption"]
    assert [(e.ts, e.data["count"]) for e in pre] == [(40.0, 3), (100.0, 17)]
    rej = [e for e in got if e.kind == "admission_rejected"]
    assert [(e.ts, e.data["count"]) for e in rej] == [(20.0, 1), (80.0, 10)]


def test_down_after_failures_then_up_again() -> None:
    d = EventDetector(SERVER, AlertSettings(down_after=3))
    s = sample(1.0)
    assert d.on_sample(s, M.derive(s)) == []
    got = []
    for t in (2.0, 3.0, 4.0, 5.0):
        got += d.on_error(t, "refused")
    s = sample(9.0)
    got += d.on_sample(s, M.derive(s))
    assert kinds(got) == ["down", "up"]
    assert got[0].ts == 4.0 and got[1].message == "answers again after 7 s down"


def test_restart_event_from_a_counter_reset() -> None:
    d = EventDetector(SERVER)
    a, b = sample(1.0, gen=500), sample(2.0, gen=3)
    d.on_sample(a, M.derive(a))
    got = d.on_sample(b, M.derive(b, a))
    assert kinds(got) == ["restarted"] and got[0].severity == "warning"


def test_log_lines_give_started_ready_and_failures() -> None:
    rec = Recorder(SERVER)
    for line in (DATA / "server_baseline.log").read_text().splitlines():
        rec.feed_log_line(line, at=5.0)
    assert kinds(rec.events) == ["started", "ready"]
    rec.feed_log_line("ERROR 12-01 10:00:00 [core.py:1] EngineCore failed to start.", at=6.0)
    rec.feed_log_line("Traceback (most recent call last):", at=6.0)
    rec.feed_log_line('  File "x.py", line 1, in <module>', at=6.0)
    rec.feed_log_line("RuntimeError: out of memory", at=6.0)
    rec.feed_log_line("INFO 12-01 10:00:01 [api.py:1] Starting vLLM server on http://x:1", at=7.0)
    assert "failure" in kinds(rec.events)
    assert all(e.severity == "critical" for e in rec.events if e.kind == "failure")


# --------------------------------------------------------------------------- alerts


def test_on_alert_runs_argv_with_the_event_json_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "alert.json"
    script = f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"
    hook = AlertCommand([sys.executable, "-c", script])
    d = EventDetector(SERVER, AlertSettings(kv_usage=0.5))
    s = sample(1.0, kv=0.9)
    for ev in d.on_sample(s, M.derive(s)):
        hook(ev)
    hook.wait(30)
    doc = json.loads(out.read_text())
    assert doc["kind"] == "kv_high" and doc["server"] == SERVER and doc["data"]["usage"] == 0.9


def test_on_alert_is_never_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    argv = parse_command(f"echo hello; touch {marker}")
    assert argv[0] == "echo" and ";" in argv[1]
    reports: list[str] = []
    hook = AlertCommand(["no-such-command-xyz"], report=reports.append)
    d = EventDetector(SERVER, AlertSettings(down_after=1))
    for ev in d.on_error(1.0, "x"):
        hook(ev)
    hook.wait(30)
    assert reports == ["--on-alert: no-such-command-xyz: command not found"]
    assert not marker.exists()


# --------------------------------------------------------------------------- config


def test_config_defaults_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_CONSOLE_CONFIG", str(tmp_path / "missing.yaml"))
    assert load_config().alerts.kv_usage == 0.95  # no file: the defaults
    f = tmp_path / "config.yaml"
    f.write_text("history:\n  max_age: 2d\nalerts:\n  kv_usage: 0.5\nother_area: {x: 1}\n")
    c = load_config(f)
    assert c.history.max_age == 2 * 86400 and c.alerts.kv_usage == 0.5
    f.write_text("alerts:\n  kv_usage: 5\n")
    with pytest.raises(ConsoleError, match=r"config.yaml: alerts.kv_usage: .*less than or equal"):
        load_config(f)
    f.write_text("alerts:\n  on_alert: notify-send x\n")
    with pytest.raises(ConsoleError, match="argv"):
        load_config(f)
    f.write_text("alerts:\n  kv_usag: 0.5\n")
    with pytest.raises(ConsoleError, match=r"alerts\.kv_usag"):
        load_config(f)
    assert parse_duration("90") == 90 and parse_duration("15m") == 900
    with pytest.raises(ValueError, match="--since"):
        parse_duration("yesterday", what="--since")


# --------------------------------------------------------------------------- replay frames


def test_replay_tracker_equals_the_live_tracker_at_every_cursor(store: HistoryStore) -> None:
    """What replay rebuilds at a cursor is what a live tracker had at that sample."""
    rec = Recorder(SERVER, store=store, clock=lambda: 0.0)
    live = M.MetricsTracker(window_s=10.0)
    seen: list[dict] = []
    gen = 0
    for i in range(40):
        t = 100.0 + i
        if i == 25:
            gen = 0  # restart
        if i in (12, 13):
            rec.feed_error("refused", at=t)
            live.feed_error(RuntimeError("refused"), at=t)
        else:
            gen += 7 * (i % 5)
            s = sample(t, gen=gen, prompt=gen + 1, waiting=i % 3)
            rec.feed(s)
            live.feed(s)
        since = live.since_start(t)
        seen.append(
            {
                "window": live.window(t).to_dict(),
                "since": since.to_dict() if since else None,
            }
        )
    src = ReplaySource.load(store, SERVER)
    assert len(src.frames) == 40
    for i in range(40):
        t = M.MetricsTracker(window_s=10.0)
        for f in src.tracker_frames(i, 10.0):
            if f.sample is not None:
                t.feed(f.sample)
            else:
                t.feed_error(RuntimeError(f.error), at=f.ts)
        now = src.frames[i].ts
        since = t.since_start(now)
        assert t.window(now).to_dict() == seen[i]["window"], i
        assert (since.to_dict() if since else None) == seen[i]["since"], i


def test_replay_event_navigation(store: HistoryStore) -> None:
    rec = Recorder(SERVER, store=store, settings=AlertSettings(kv_usage=0.5))
    for i, kv in enumerate([0.1, 0.1, 0.9, 0.9, 0.1, 0.1]):
        rec.feed(sample(float(i), kv=kv))
    src = ReplaySource.load(store, SERVER)
    assert src.event_frames() == [2, 4]
    assert src.next_event(0) == 2 and src.next_event(2) == 4 and src.next_event(4) is None
    assert src.previous_event(4) == 2 and src.previous_event(2) is None
    assert src.index_at(3.5) == 3 and src.index_at(-1) == 0 and src.index_at(99) == 5


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VLLM_CONSOLE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VLLM_CONSOLE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("VLLM_CONSOLE_CONFIG", raising=False)
    return tmp_path / "state"


def test_history_cli_json_is_strict_and_matches_the_counters(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    now = time.time()
    s = HistoryStore(state / "history.sqlite3")
    rec = Recorder(SERVER, store=s)
    for i, g in enumerate([10, 20, 40, 2, 12]):
        rec.feed(sample(now - 50 + i, gen=g, kv="NaN" if i == 1 else 0.5))
    s.close()
    assert main(["history", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out, parse_constant=pytest.fail)
    (srv,) = doc["servers"]
    assert srv["generation_tokens"] == (40 - 10) + 12 and srv["restarts"] == 1
    assert srv["kv_usage_peak"] == 0.5
    assert [e["kind"] for e in srv["event_list"]] == ["restarted"]
    assert main(["history"]) == 0
    text = capsys.readouterr().out
    assert "generated 42" in text and "restarts 1" in text


def test_history_cli_bad_usage(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history"]) == 1
    assert "no history yet" in capsys.readouterr().err
    assert main(["history", "--since", "soon"]) == 2
    assert "--since: 'soon' is not a duration" in capsys.readouterr().err
    assert main(["replay"]) == 2
    assert main(["replay", "/nonexistent.sqlite3"]) == 2
    assert "no such history file" in capsys.readouterr().err


def test_monitor_check_down_server_exits_1(state: Path, capsys) -> None:
    from tests.helpers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    assert main(["monitor", "--url", url, "--check", "--json", "--interval", "0.1"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["alerts"][0]["kind"] == "down"


def test_history_report_lists_every_server(store: HistoryStore) -> None:
    Recorder("http://a:1", store=store).feed(sample(1.0))
    Recorder("http://b:2", store=store).feed(sample(2.0))
    rep = history_report(store, since=None, until=None)
    assert [s["server"] for s in rep["servers"]] == ["http://a:1", "http://b:2"]


def test_log_parser_is_the_one_used() -> None:
    # The recorder goes through console.logs (no second parser): a Ready line is an event.
    assert isinstance(L.parse_line("INFO:     Application startup complete."), L.Ready)
