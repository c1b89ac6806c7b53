"""``vllm-console monitor``: a down server, the real servers, the live view,
``--record`` and the API key (sent, never printed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from console.cli import main
from console.gpu import GpuSampler
from console.gpu_recorded import RecordedNvml
from console.metrics import derive, parse_metrics
from console.monitor_report import build_report, render_text

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent
DOWN = "http://127.0.0.1:9"  # discard port: nothing listens
TOP_KEYS = {
    "url",
    "ok",
    "error",
    "counter_reset",
    "server",
    "requests",
    "kv_cache",
    "throughput",
    "prefix_cache",
    "latency",
    "spec_decode",
    "gpu",
    "host_memory",
}


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    rc = main(["monitor", *argv])
    return rc, json.loads(capsys.readouterr().out)


def test_down_server_once_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc, r = run_json(capsys, "--url", DOWN, "--once", "--json", "--interval", "0.1")
    assert rc == 1
    assert set(r) >= TOP_KEYS
    assert r["ok"] is False and "cannot reach" in r["error"] and DOWN in r["error"]
    assert r["requests"] is None and r["spec_decode"] is None
    assert r["host_memory"]["total"] > 0  # the box itself still reports


def test_down_server_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "--url", DOWN, "--once", "--interval", "0.1"]) == 1
    out = capsys.readouterr().out
    assert "DOWN" in out and DOWN in out


def test_bad_interval_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "--once", "--interval", "-1"]) == 2
    assert "--interval" in capsys.readouterr().err


def test_record_appends_one_flushed_line_per_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = tmp_path / "sub" / "rec.jsonl"
    for _ in range(2):
        main(["monitor", "--url", DOWN, "--once", "--interval", "0.1", "--record", str(rec)])
    capsys.readouterr()
    lines = rec.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(x)["ok"] is False for x in lines)


def test_record_to_unwritable_path_names_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "--once", "--record", "/proc/nope/rec.jsonl"]) == 1
    assert "/proc/nope/rec.jsonl" in capsys.readouterr().err


def test_text_view_labels_unified_memory_honestly() -> None:
    nv = RecordedNvml.load(DATA / "nvml-gb10" / "nvml_gb10_handmade.json")
    gpu = GpuSampler(nv, host_memory=nv.host_memory).sample()
    fig = derive(
        parse_metrics((DATA / "vllm-0.32-cpu" / "metrics_ngram.prom").read_text(), timestamp=1)
    )
    r = build_report("http://x", figures=fig, server=None, gpu=gpu, error=None)
    text = render_text(r)
    assert "memory unified; GPU allocations 86.0 GiB" in text
    assert "host pool" in text and "unified pool shared by CPU and GPU" in text
    assert r["gpu"][0]["mem_used"] is None
    assert r["host_memory"]["used"] == gpu.host.total - gpu.host.available  # type: ignore[union-attr]


# --------------------------------------------------------------------------- real servers


def test_once_json_plain_server(vllm_server, capsys: pytest.CaptureFixture[str]) -> None:
    rc, r = run_json(capsys, "--url", vllm_server.url, "--once", "--json", "--interval", "0.5")
    assert rc == 0, r["error"]
    assert set(r) >= TOP_KEYS and r["ok"] is True and r["error"] is None
    assert r["server"]["model"] == vllm_server.model
    assert r["server"]["version"] and r["server"]["max_model_len"] == 2048
    assert r["spec_decode"] is None  # absent, not zeros
    assert r["kv_cache"]["capacity_tokens"] > 0 and 0 <= r["kv_cache"]["usage"] <= 1
    assert r["window_s"] == pytest.approx(0.5, abs=0.4)
    for k in ("ttft_s", "tpot_s"):
        assert set(r["latency"][k]) >= {"p50", "p90", "p99"}


def test_once_json_ngram_server(vllm_ngram_server, capsys: pytest.CaptureFixture[str]) -> None:
    rc, r = run_json(capsys, "--url", vllm_ngram_server.url, "--once", "--json")
    assert rc == 0, r["error"]
    sd = r["spec_decode"]
    assert sd is not None and sd["num_speculative_tokens"] == 4
    for scope in ("lifetime", "window"):
        assert set(sd[scope]) >= {
            "drafts",
            "draft_tokens",
            "accepted_tokens",
            "mean_acceptance_length",
            "draft_acceptance_rate",
            "per_position",
            "advisor",
        }
        adv = sd[scope]["advisor"]
        if sd[scope]["drafts"]:
            assert adv["estimate"] is True and adv["configured_k"] == 4
            assert adv["method"] is None and adv["draft_cost_source"] == "default, method unknown"
            if adv["enough_drafts"]:
                assert [p["k"] for p in adv["curve"]] == [1, 2, 3, 4]
                assert adv["best_k"] in (1, 2, 3, 4)
            else:
                assert adv["curve"] == [] and adv["best_k"] is None
                assert adv["label"].startswith("too few drafts to judge")
        else:
            assert adv is None  # no drafts in the window: no rates, no advice


def _wait_lines(path: Path, n: int, proc: subprocess.Popen, deadline_s: float = 60) -> list[str]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if len(lines) >= n:
                return lines
        if proc.poll() is not None:
            pytest.fail(f"monitor exited early with {proc.returncode}: {proc.stderr.read()}")  # type: ignore[union-attr]
        time.sleep(0.1)
    pytest.fail(f"{path} did not reach {n} lines in {deadline_s} s")


@pytest.mark.parametrize("as_json", [False, True])
def test_live_view_records_every_sample_and_never_prints_the_key(
    vllm_server, tmp_path: Path, as_json: bool
) -> None:
    rec = tmp_path / "live.jsonl"
    secret = "sk-test-do-not-print-123"
    env = {**os.environ, "VLLM_API_KEY": secret, "PYTHONUNBUFFERED": "1"}
    env["VLLM_CONSOLE_STATE_DIR"] = str(tmp_path / "state")
    env["VLLM_CONSOLE_CONFIG_DIR"] = str(tmp_path / "config")
    argv = [sys.executable, "-m", "console", "monitor", "--url", vllm_server.url]
    argv += ["--interval", "0.3", "--record", str(rec)] + (["--json"] if as_json else [])
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # Ctrl-C as a terminal delivers it, also when the test runner itself was
        # started in the background (which leaves SIGINT ignored in its children)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        lines = _wait_lines(rec, 4, proc)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    samples = [json.loads(x) for x in lines]
    assert all(s["ok"] for s in samples)
    assert samples[0]["window_s"] is None  # first sample: no window yet
    assert all(s["window_s"] is not None for s in samples[1:])
    assert [s["timestamp"] for s in samples] == sorted(s["timestamp"] for s in samples)
    if as_json:
        printed = [json.loads(x) for x in out.splitlines() if x.strip()]
        assert len(printed) >= 4 and set(printed[0]) >= TOP_KEYS
    else:
        assert out.count("vllm-console monitor") >= 4 and "requests  running" in out
    assert secret not in out and secret not in err and secret not in rec.read_text()
    # the same samples went to the history file (docs/history.md)
    from console.history.store import HistoryStore

    with HistoryStore(tmp_path / "state" / "history.sqlite3", readonly=True) as store:
        stored = [r.ts for r in store.samples(vllm_server.url)]
    assert [s["timestamp"] for s in samples] == stored[: len(samples)]


def test_api_key_is_sent_as_bearer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a real local HTTP endpoint that echoes the header it received."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen: list[str | None] = []

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(401)
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        monkeypatch.setenv("VLLM_API_KEY", "k-123")
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        from console.metrics import MetricsError, scrape

        with pytest.raises(MetricsError) as info:
            scrape(f"http://127.0.0.1:{srv.server_port}", client=httpx.Client())
        assert "401" in str(info.value) and "VLLM_API_KEY" in str(info.value)
        assert "k-123" not in str(info.value)
    finally:
        srv.shutdown()
    assert seen == ["Bearer k-123"]
