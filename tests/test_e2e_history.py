"""History against real vLLM servers: a restart seen as a counter reset with
totals equal to the server's own counters, kill -9 of the recorder, and
``monitor --check`` with a crossed and an uncrossed KV threshold.

The restart test starts its own server (one at a time, only with >= 6 GiB
available) through the console's LocalRuntime, as tests/fixtures/vllm_server.py
does, and stops it at the end whatever happens. The others use the shared
servers (``vllm_server``).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from console import metric_names as N
from console import metrics as M
from console.cli import main
from console.history.store import HistoryStore
from tests.helpers import free_port, wait_for

REPO = Path(__file__).resolve().parent.parent
NEEDED_BYTES = 6 * 2**30


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    state, config = tmp_path / "state", tmp_path / "config"
    monkeypatch.setenv("VLLM_CONSOLE_STATE_DIR", str(state))
    monkeypatch.setenv("VLLM_CONSOLE_CONFIG_DIR", str(config))
    monkeypatch.delenv("VLLM_CONSOLE_CONFIG", raising=False)
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _config(env: dict[str, str], text: str) -> None:
    path = Path(env["VLLM_CONSOLE_CONFIG_DIR"]) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _db(env: dict[str, str]) -> Path:
    return Path(env["VLLM_CONSOLE_STATE_DIR"]) / "history.sqlite3"


class Recording:
    """``vllm-console record --print-samples`` in a subprocess; lines read by a thread."""

    def __init__(self, url: str, env: dict[str, str], interval: float = 1.0) -> None:
        argv = [sys.executable, "-m", "console", "record", "--url", url, "--quiet"]
        argv += ["--interval", str(interval), "--print-samples"]
        self.proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.stored: list[float] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("stored "):
                self.stored.append(float(line.split()[1]))

    def kill9(self) -> list[float]:
        """SIGKILL; returns the samples the recorder said were stored before it died."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        return list(self.stored)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def _stored_ts(db: Path, server: str) -> list[float]:
    with HistoryStore(db, readonly=True) as s:
        return [r.ts for r in s.samples(server) if r.ok]


def _complete(url: str, model: str, n: int, max_tokens: int = 12) -> None:
    with httpx.Client(timeout=300) as c:
        for i in range(n):
            r = c.post(
                f"{url}/v1/completions",
                json={"model": model, "prompt": f"Count to {i + 3}:", "max_tokens": max_tokens},
            )
            assert r.status_code == 200, r.text


def _counters(url: str) -> tuple[float, float]:
    s = M.scrape(url)
    return s.total(N.GENERATION_TOKENS) or 0.0, s.total(N.PROMPT_TOKENS) or 0.0


# --------------------------------------------------------------------------- kill -9


def test_kill_9_of_the_recorder_loses_at_most_the_last_sample(vllm_server, env) -> None:
    rec = Recording(vllm_server.url, env, interval=0.5)
    try:
        wait_for(lambda: len(rec.stored) >= 6 or rec.proc.poll() is not None, 120, "6 samples")
        assert rec.proc.poll() is None, rec.proc.stderr.read() if rec.proc.stderr else ""
        said = rec.kill9()
    finally:
        rec.stop()
    kept = _stored_ts(_db(env), vllm_server.url)
    # Everything the recorder reported durable is in the file, in order; at most
    # the one sample it was writing when killed is extra (never half a row).
    assert kept[: len(said)] == said
    assert len(kept) - len(said) in (0, 1)


# --------------------------------------------------------------------------- --check


@pytest.fixture
def generating(vllm_server) -> Iterator[None]:
    """A streamed completion in flight (KV blocks in use) while the test runs."""
    started, stop = threading.Event(), threading.Event()

    def run() -> None:
        body = {
            "model": vllm_server.model,
            "prompt": "Write a long story about a lighthouse keeper.",
            "max_tokens": 400,
            "ignore_eos": True,
            "stream": True,
        }
        with (
            httpx.Client(timeout=300) as c,
            c.stream("POST", f"{vllm_server.url}/v1/completions", json=body) as r,
        ):
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    started.set()
                if stop.is_set():
                    return

    t = threading.Thread(target=run, daemon=True)
    t.start()
    wait_for(started.is_set, 120, "the first streamed token")
    yield
    stop.set()
    t.join(timeout=60)


def test_monitor_check_exits_0_below_the_kv_threshold(
    vllm_server, env, capsys: pytest.CaptureFixture[str]
) -> None:
    only_kv = "alerts:\n  kv_usage: {}\n  waiting_growth: null\n  preemptions: null\n"
    only_kv += "  admission_rejections: null\n  acceptance_drop: null\n"
    _config(env, only_kv.format(1.0))
    assert main(["monitor", "--url", vllm_server.url, "--check", "--interval", "0.5"]) == 0
    assert capsys.readouterr().out.startswith(f"OK {vllm_server.url}")


def test_monitor_check_exits_1_when_a_tiny_kv_threshold_is_crossed(
    vllm_server, env, generating, capsys: pytest.CaptureFixture[str]
) -> None:
    only_kv = "alerts:\n  kv_usage: 0.000001\n  waiting_growth: null\n  preemptions: null\n"
    _config(env, only_kv)
    argv = ["monitor", "--url", vllm_server.url, "--check", "--json", "--interval", "0.5"]
    assert main(argv) == 1
    doc = json.loads(capsys.readouterr().out, parse_constant=pytest.fail)
    assert doc["ok"] is False
    assert [a["kind"] for a in doc["alerts"]] == ["kv_high"]
    assert doc["alerts"][0]["data"]["usage"] > 0.000001
    # the check's samples went to the history as well
    assert len(_stored_ts(_db(env), vllm_server.url)) == 2


# --------------------------------------------------------------------------- restart


def _wait_memory() -> None:
    deadline = time.monotonic() + 900
    while psutil.virtual_memory().available < NEEDED_BYTES:
        if time.monotonic() > deadline:
            avail = psutil.virtual_memory().available / 2**30
            pytest.fail(f"only {avail:.1f} GiB available for 15 min; the restart test needs 6")
        time.sleep(30)


@pytest.fixture
def own_server(tmp_path: Path):
    """A server of this test's own (it gets restarted), stopped at the end."""
    from console.profiles import load_profile, with_overrides
    from console.runtime.base import ServerState
    from console.runtime.local import LocalRuntime, tail_lines

    _wait_memory()
    runtime = LocalRuntime(state_dir=tmp_path / "rt-state", die_with_parent=True)
    profile = load_profile("gemma3-270m-cpu")
    env = dict(profile.serve.env)
    env["VLLM_CPU_KVCACHE_SPACE"] = "1"
    profile = with_overrides(profile, port=free_port(), host="127.0.0.1", env=env)

    def start() -> None:
        status = runtime.up(profile, wait=True, timeout=900)
        if status.state is not ServerState.READY:
            tail = "\n".join(tail_lines(status.log_path, 30)) if status.log_path else ""
            pytest.fail(f"own server did not start: {status.detail}\n{tail}")

    start()
    try:
        yield profile, runtime, start
    finally:
        runtime.down(profile, timeout=15.0)


@pytest.mark.slow
@pytest.mark.timeout(2700)  # two server start-ups of its own; slow on a loaded CPU box
def test_restart_is_a_counter_reset_and_totals_equal_the_servers_counters(own_server, env) -> None:
    profile, runtime, start = own_server
    url, model = profile.url, profile.serve.served_model_name or "gemma3-270m"
    db = _db(env)
    first_gen, first_prompt = _counters(url)
    rec = Recording(url, env, interval=1.0)
    try:
        wait_for(lambda: len(rec.stored) >= 2, 120, "the recorder's first samples")
        _complete(url, model, 4)
        before = _counters(url)
        wait_for(lambda: _last_gen(db, url) == before[0], 60, "the recorder to see the load")
        runtime.down(profile, timeout=15.0)
        start()
        _complete(url, model, 2)
        after = _counters(url)
        wait_for(lambda: _last_gen(db, url) == after[0], 60, "samples after the restart")
        said = rec.kill9()
    finally:
        rec.stop()
    kept = _stored_ts(db, url)
    assert kept[: len(said)] == said and len(kept) - len(said) in (0, 1)

    with HistoryStore(db, readonly=True) as s:
        rows = s.samples(url)
        events = [e.kind for e in s.events(url)]
    good = [r for r in rows if r.ok]
    resets = [r for r in good if r.reset]
    assert len(resets) == 1 and resets[0].gen_tps is None and resets[0].prompt_tps is None
    assert "restarted" in events and "down" in events and "up" in events
    # No negative or spiked rate: every rate is exactly the counter difference
    # over its interval, within one run of the server.
    for a, b in itertools.pairwise(good):
        if b.reset:
            continue
        assert b.gen_tps is not None and b.gen_tps >= 0
        assert b.gen_tps * b.window_s == pytest.approx(b.gen_total - a.gen_total, abs=1e-6)

    out = subprocess.run(
        [sys.executable, "-m", "console", "history", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    (srv,) = json.loads(out, parse_constant=pytest.fail)["servers"]
    assert srv["restarts"] == 1
    assert srv["generation_tokens"] == round(before[0] - first_gen + after[0])
    assert srv["prompt_tokens"] == round(before[1] - first_prompt + after[1])
    assert srv["peak_generation_tokens_per_s"] <= max(r.gen_tps or 0 for r in good)


def _last_gen(db: Path, url: str) -> float | None:
    """The generation counter in the newest good stored sample."""
    if not db.exists():
        return None
    with HistoryStore(db, readonly=True) as s:
        rows = [r for r in s.samples(url) if r.ok]
    return rows[-1].gen_total if rows else None


# --------------------------------------------------------------------------- up --record


def test_background_recorder_writes_history_and_down_ends_it(vllm_server, env) -> None:
    """``up --record``'s recorder: detached, writing samples, ended by its profile's ``down``."""
    from console.history import background

    pid = background.start("gemma3-270m-cpu", vllm_server.url)
    try:
        assert background.running("gemma3-270m-cpu") == pid
        assert background.start("gemma3-270m-cpu", vllm_server.url) == pid  # one per profile
        db = _db(env)
        wait_for(
            lambda: db.exists() and len(_stored_ts(db, vllm_server.url)) >= 3,
            120,
            "the background recorder's samples",
        )
    finally:
        stopped = background.stop("gemma3-270m-cpu")
    assert stopped
    wait_for(lambda: not psutil.pid_exists(pid) or _zombie(pid), 30, "the recorder to end")
    assert background.running("gemma3-270m-cpu") is None
    assert background.stop("gemma3-270m-cpu") is False


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
