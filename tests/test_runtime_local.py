"""The local runtime against real vLLM servers (the session fixtures) and real
failing processes: a bad model, a port already taken, a server that died."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from console.cli import main
from console.errors import ConsoleError
from console.logs import failure_reason
from console.profiles import load_profile, with_overrides
from console.runtime import ServerState, runtime_for, state
from console.runtime.local import LocalRuntime
from console.runtime.state import ServerRecord
from tests.fixtures.vllm_server import VllmServer, free_port
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

PARAGRAPH = (
    "The lighthouse keeper climbed the spiral stairs every evening at dusk. He polished "
    "the great lens, trimmed the wick, and wrote the weather in a leather logbook. Ships "
    "passing the rocky point relied on the steady beam to find the harbour entrance."
)
PER_POS = "vllm:spec_decode_num_accepted_tokens_per_pos_total"


def _metric(text: str, name: str) -> dict[str, float]:
    """Samples of one metric family: label text -> value."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name):
            head, _, value = line.rpartition(" ")
            out[head[len(name) :]] = float(value)
    return out


# --- the real server -----------------------------------------------------------------------


def test_health_and_models(vllm_server: VllmServer) -> None:
    assert httpx.get(f"{vllm_server.url}/health", timeout=10).status_code == 200
    models = httpx.get(f"{vllm_server.url}/v1/models", timeout=10).json()
    ids = [card["id"] for card in models["data"]]
    assert ids == [vllm_server.model]
    assert models["data"][0]["max_model_len"] == 2048


def test_streamed_chat_returns_real_text(vllm_server: VllmServer) -> None:
    body = {
        "model": vllm_server.model,
        "messages": [{"role": "user", "content": "Write one sentence about the sea."}],
        "max_tokens": 32,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    pieces: list[str] = []
    usage: dict[str, int] = {}
    finish = None
    with httpx.stream(
        "POST", f"{vllm_server.url}/v1/chat/completions", json=body, timeout=120
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: ") :])
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk["choices"]:
                pieces.append(choice["delta"].get("content") or "")
                finish = choice.get("finish_reason") or finish
    text = "".join(pieces)
    assert len([p for p in pieces if p]) > 3, "the answer must arrive in several chunks"
    assert sum(ch.isalpha() for ch in text) > 10, f"not real text: {text!r}"
    assert finish in ("stop", "length")
    assert usage["completion_tokens"] > 0


def test_metrics_expose_kv_cache_usage(vllm_server: VllmServer) -> None:
    text = httpx.get(f"{vllm_server.url}/metrics", timeout=10).text
    samples = _metric(text, "vllm:kv_cache_usage_perc")
    assert samples, "vllm:kv_cache_usage_perc missing from /metrics"
    assert all(0.0 <= v <= 1.0 for v in samples.values())


def test_ngram_acceptance_counters_rise(vllm_ngram_server: VllmServer) -> None:
    url = vllm_ngram_server.url
    before = _metric(httpx.get(f"{url}/metrics", timeout=10).text, PER_POS)
    body = {
        "model": vllm_ngram_server.model,
        "messages": [
            {
                "role": "user",
                "content": f"Repeat this paragraph exactly, word for word:\n\n{PARAGRAPH}",
            }
        ],
        "max_tokens": 96,
        "temperature": 0,
    }
    answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300)
    assert answer.status_code == 200
    after = _metric(httpx.get(f"{url}/metrics", timeout=10).text, PER_POS)
    assert len(after) == 4, f"expected 4 draft positions, got {sorted(after)}"
    gained = {k: after[k] - before.get(k, 0.0) for k in after}
    assert sum(gained.values()) > 0, f"no accepted draft tokens after the request: {gained}"
    first = next(k for k in gained if 'position="0"' in k)
    assert gained[first] == max(gained.values()), "position 0 accepts at least as often"


# --- the start path the fixtures went through ------------------------------------------------


def _local(server: VllmServer) -> tuple[LocalRuntime, object]:
    if server.runtime is None or server.profile is None:
        pytest.skip("attached to a server by URL (VLLM_CONSOLE_TEST_URL): start path not ours")
    return server.runtime, server.profile


def test_log_has_readiness_and_a_second_console_reattaches(vllm_server: VllmServer) -> None:
    runtime, profile = _local(vllm_server)
    assert vllm_server.log_path is not None
    assert "Application startup complete." in vllm_server.log_path.read_text(errors="replace")
    other = LocalRuntime(state_dir=runtime.state_dir)  # as a second console would
    status = other.status(profile)
    assert status.state is ServerState.READY
    rec = other.record(profile)
    assert rec is not None and rec.pid == status.pid
    assert psutil.Process(rec.pid).create_time() == pytest.approx(rec.create_time, abs=1.0)
    lines = list(other.logs(profile))
    assert any("Application startup complete." in ln for ln in lines)


def test_cli_status_and_logs_reattach(
    vllm_server: VllmServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runtime, profile = _local(vllm_server)
    monkeypatch.setenv("VLLM_CONSOLE_STATE_DIR", str(runtime.state_dir))
    assert main(["status", profile.name, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["state"] == "ready" and shown["url"] == vllm_server.url
    assert main(["logs", profile.name]) == 0
    assert "Application startup complete." in capsys.readouterr().out


def test_port_taken_is_refused_naming_port_and_process(
    vllm_server: VllmServer, private_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = urlsplit(vllm_server.url).port
    assert port is not None
    profile = with_overrides(load_profile("gemma3-270m-cpu"), port=port)
    with pytest.raises(ConsoleError) as err:
        LocalRuntime().up(profile, timeout=30)
    assert f"port {port}" in err.value.message
    assert "pid" in err.value.message and "python" in err.value.message
    # The CLI says the same, exit status 1, and records nothing.
    assert main(["up", "gemma3-270m-cpu", "--port", str(port), "--detach"]) == 1
    assert f"port {port}" in capsys.readouterr().err
    assert state.load("gemma3-270m-cpu") is None


def test_cli_up_in_the_foreground_until_ctrl_c(tmp_path: Path) -> None:
    """`up NAME` follows the log once ready; Ctrl-C stops the server and clears the record."""
    config = tmp_path / "config"
    (config / "profiles").mkdir(parents=True)
    (config / "profiles/fg-cpu.yaml").write_text(
        "name: fg-cpu\nextends: gemma3-270m-cpu\n"
        f"serve:\n  port: {free_port()}\n  env:\n    VLLM_CPU_KVCACHE_SPACE: '1'\n"
    )
    env = dict(
        os.environ,
        VLLM_CONSOLE_CONFIG_DIR=str(config),
        VLLM_CONSOLE_STATE_DIR=str(tmp_path / "state"),
    )
    cli = subprocess.Popen(
        [sys.executable, "-m", "console", "up", "fg-cpu"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [seen.put(ln) for ln in cli.stdout or []], daemon=True).start()
    deadline = time.monotonic() + 900
    lines: list[str] = []
    try:
        while not any("following the log" in ln for ln in lines):
            if cli.poll() is not None or time.monotonic() > deadline:
                pytest.fail("`up` never reached the foreground:\n" + "".join(lines[-40:]))
            with contextlib.suppress(queue.Empty):
                lines.append(seen.get(timeout=1))
        assert any("fg-cpu: ready" in ln for ln in lines)
        rec = state.load("fg-cpu", tmp_path / "state/servers")
        assert rec is not None
        cli.send_signal(signal.SIGINT)
        assert cli.wait(timeout=60) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
    assert not psutil.pid_exists(rec.pid) or psutil.Process(rec.pid).status() == "zombie"
    assert state.load("fg-cpu", tmp_path / "state/servers") is None
    assert rec.log_path.exists(), "the log stays on disk"


# --- failures with real processes --------------------------------------------------------------


def test_missing_model_path_is_refused_before_starting(private_state: Path) -> None:
    profile = with_overrides(
        load_profile("gemma3-270m-cpu"),
        model="/nonexistent/gemma",
        port=free_port(),
        local={"runtime": "cpu", "managed_model": None},
    )
    with pytest.raises(ConsoleError, match=r"serve\.model /nonexistent/gemma does not exist"):
        LocalRuntime().up(profile, timeout=30)


def test_bad_model_folder_fails_with_the_reason(private_state: Path, tmp_path: Path) -> None:
    """A real vLLM process given a folder that is not a model exits; the reason is its error."""
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "no_such_architecture"}))
    profile = with_overrides(
        load_profile("gemma3-270m-cpu"),
        model=str(bad),
        port=free_port(),
        local={"runtime": "cpu", "managed_model": None},
    )
    lines: list[str] = []
    runtime = LocalRuntime(provision=False)
    started = time.monotonic()
    status = runtime.up(profile, on_line=lines.append, timeout=600)
    took = time.monotonic() - started
    assert status.state is ServerState.FAILED
    assert "no_such_architecture" in status.detail, status.detail
    assert "exited with code" in status.detail
    assert lines, "the log must reach on_line as it arrives"
    assert status.log_path is not None and status.log_path.exists()
    assert runtime.record(profile) is None, "a failed start leaves no record"
    print(f"bad model folder failed after {took:.0f} s")


def test_python_without_vllm_fails_with_the_reason(private_state: Path, tmp_path: Path) -> None:
    """serve.local.python pointing at an interpreter without vLLM: a real exit, named."""
    profile = with_overrides(
        load_profile("gemma3-270m-cpu"),
        model=str(tmp_path),
        port=free_port(),
        local={"runtime": None, "python": sys.executable, "managed_model": None},
    )
    status = LocalRuntime().up(profile, timeout=120)
    assert status.state is ServerState.FAILED
    assert "No module named 'vllm'" in status.detail, status.detail


def test_down_on_a_server_that_already_died(private_state: Path) -> None:
    profile = with_overrides(load_profile("gemma3-270m-cpu"), port=free_port())
    runtime = LocalRuntime()
    status = runtime.up(profile, wait=False)
    assert status.state is ServerState.STARTING and status.pid
    os.killpg(status.pid, signal.SIGKILL)
    wait_for(
        lambda: runtime.status(profile).state is ServerState.STALE,
        timeout=30,
        what="the killed server to show as stale",
    )
    stale = runtime.status(profile)
    assert "no longer running" in stale.detail and f"pid {status.pid}" in stale.detail
    down = runtime.down(profile)
    assert down.state is ServerState.STOPPED
    assert "had already exited" in down.detail
    assert runtime.record(profile) is None
    assert runtime.status(profile).state is ServerState.ABSENT


def test_recycled_pid_is_never_signalled(private_state: Path) -> None:
    """A record whose PID now belongs to another process (here: this test) is stale."""
    profile = load_profile("gemma3-270m-cpu")
    me = psutil.Process()
    rec = ServerRecord(
        profile=profile.name,
        pid=me.pid,
        create_time=me.create_time() - 1000.0,
        host="127.0.0.1",
        port=free_port(),
        url="http://127.0.0.1:1",
        log=str(private_state / "none.log"),
        argv=["vllm"],
        started_at="then",
    )
    state.save(rec)
    runtime = runtime_for(profile)
    status = runtime.status(profile)
    assert status.state is ServerState.STALE
    assert "now belongs to another process" in status.detail
    assert runtime.down(profile).state is ServerState.STOPPED  # and we are still alive
    assert state.load(profile.name) is None


def test_status_cli_lists_and_reports_stale(
    private_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = ServerRecord(
        profile="gemma3-270m-cpu",
        pid=2**22 + 12345,
        create_time=0.0,
        host="127.0.0.1",
        port=free_port(),
        url="http://127.0.0.1:1",
        log=str(private_state / "none.log"),
        argv=["vllm"],
        started_at="then",
    )
    state.save(rec)
    assert main(["status", "--json"]) == 1
    listed = json.loads(capsys.readouterr().out)
    assert [s["state"] for s in listed if s["runtime"] == "local"] == ["stale"]
    assert main(["down", "gemma3-270m-cpu"]) == 0
    assert "already exited" in capsys.readouterr().out


# --- reasons from real log lines ---------------------------------------------------------------


def test_failure_reason_prefers_the_root_cause() -> None:
    lines = [
        "(EngineCore pid=12) INFO 11-30 14:13:17 [model.py:733] Resolved architecture: X",
        "(EngineCore pid=12) ERROR 11-30 14:13:18 [core.py:1100] EngineCore failed to start.",
        "(EngineCore pid=12) ValueError: Free memory on device cpu (1.0/2.0 GiB) on startup",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "RuntimeError: Engine core initialization failed. See root cause above. "
        "Failed core proc(s): {}",
    ]
    assert failure_reason(lines).startswith("ValueError: Free memory on device cpu")


def test_failure_reason_of_a_bad_repo_id() -> None:
    lines = [
        "    validate_repo_id(arg_value)",
        "huggingface_hub.errors.HFValidationError: Repo id must be in the form 'repo_name' "
        "or 'namespace/repo_name': '/tmp/x'. Use `repo_type` argument if needed.",
    ]
    assert "HFValidationError: Repo id must be" in failure_reason(lines)
