"""Every process of a real local vLLM server is ended by ``down``, whatever
died first; ``status`` tells the truth in between.

Each test starts its own CPU server (gemma3-270m-cpu) through the console's
runtime, one at a time and only with >= 6 GiB available, then kills part of
it with SIGKILL as a crash or the OOM killer would:

- the API server: its engine core and worker live on (GiBs each); ``status``
  must list them with their memory and ``down`` must end them all;
- the engine core under a live API server: ``status`` must say failed, with
  the cause from the log, never "starting".

The server also gets an API key, which must reach vLLM through its
environment (``VLLM_API_KEY``), never its argv.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from console.profiles import load_profile, with_overrides
from console.runtime.base import ServerState
from console.runtime.local import LocalRuntime, session_members, tail_lines
from console.runtime.state import ServerRecord
from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.slow

NEEDED_BYTES = 6 * 2**30
KEY = "sk-lifecycle-test-5f1e2d"


@dataclass
class Server:
    runtime: LocalRuntime
    record: ServerRecord
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "console", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )


def _wait_for_memory(timeout: float = 1800.0) -> None:
    """The shared box runs other servers: start ours only with room (poll every 30 s)."""
    deadline = time.monotonic() + timeout
    while psutil.virtual_memory().available < NEEDED_BYTES:
        if time.monotonic() > deadline:
            free = psutil.virtual_memory().available / 2**30
            pytest.fail(f"only {free:.1f} GiB available after {timeout:.0f} s; need 6 GiB")
        time.sleep(30)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    state_dir = tmp_path / "state"
    monkeypatch.setenv("VLLM_CONSOLE_STATE_DIR", str(state_dir))
    monkeypatch.setenv("LIFECYCLE_TEST_KEY", KEY)
    profile = load_profile("gemma3-270m-cpu")
    env = {**profile.serve.env, "VLLM_CPU_KVCACHE_SPACE": "1"}
    args = {**profile.serve.engine_args, "api-key": "${LIFECYCLE_TEST_KEY}"}
    profile = with_overrides(profile, port=free_port(), env=env, engine_args=args)
    _wait_for_memory()
    runtime = LocalRuntime(state_dir=state_dir, die_with_parent=True)
    record = None
    try:
        status = runtime.up(profile, timeout=float(os.environ.get("LIFECYCLE_START_S", "1200")))
        record = runtime.record(profile)
        if status.state is not ServerState.READY or record is None:
            tail = "\n".join(tail_lines(status.log_path, 30)) if status.log_path else ""
            pytest.fail(f"the server did not start: {status.detail}\n{tail}")
        yield Server(runtime, record, dict(os.environ))
    finally:
        if record is not None:
            runtime.down_record(record, timeout=15)
            left = session_members(record)
            for proc in left:  # never leave GiBs behind, even when the test failed
                proc.kill()
            assert not left, f"left running after the test: {left}"


def _engine_core(members: list[psutil.Process]) -> psutil.Process:
    for proc in members:
        if "EngineCore" in " ".join(proc.cmdline()):
            return proc
    pytest.fail(f"no EngineCore among {[p.cmdline()[:1] for p in members]}")


def test_kill_9_of_the_api_server_then_status_then_down_leaves_nothing(server: Server) -> None:
    members = session_members(server.record)
    assert len(members) >= 3  # API server, engine core, worker (+ helpers)
    # The API key went through the environment: in no argv, and vLLM enforces it.
    for proc in members:
        assert KEY not in " ".join(proc.cmdline()), proc.cmdline()
    assert KEY not in " ".join(server.record.argv)
    url = server.record.url
    assert httpx.get(f"{url}/v1/models", timeout=30).status_code == 401
    headers = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(f"{url}/v1/models", headers=headers, timeout=30).status_code == 200

    api = psutil.Process(server.record.pid)
    others = [p for p in members if p.pid != api.pid]
    api.send_signal(signal.SIGKILL)
    wait_for(lambda: not api.is_running() or api.status() == "zombie", 30, "the API to die")

    status = server.cli("status")
    print(status.stdout)  # the measured leftovers, for the record (pytest -s)
    assert status.returncode == 1, status.stdout + status.stderr
    out = status.stdout
    assert "gemma3-270m-cpu (local): failed" in out, out
    assert f"the API server (pid {server.record.pid}) is gone" in out
    assert "EngineCore" in out and "GiB" in out
    assert "`vllm-console down gemma3-270m-cpu` ends them" in out
    listed = [p for p in others if f"pid {p.pid} " in out]
    assert listed, out

    down = server.cli("down", "gemma3-270m-cpu")
    print(down.stdout)
    assert down.returncode == 0, down.stderr
    assert down.stdout.count("stopped") == 1, down.stdout
    assert "ended" in down.stdout
    assert session_members(server.record) == []
    assert not any(p.is_running() and p.status() != "zombie" for p in members)
    again = server.cli("status")
    assert "no servers started by the console" in again.stdout


def test_kill_9_of_the_engine_core_under_a_live_api_says_failed_with_the_cause(
    server: Server,
) -> None:
    engine = _engine_core(session_members(server.record))
    engine.send_signal(signal.SIGKILL)
    seen: list[str] = []

    def failed() -> bool:
        result = server.runtime.status_of(server.record)
        seen.append(f"{result.state}: {result.detail}")
        return result.state is ServerState.FAILED

    wait_for(failed, 60, "status to say failed", step=0.5)
    assert not any(s.startswith("starting") for s in seen), seen
    detail = seen[-1]
    assert "engine core exited unexpectedly" in detail or "EngineDead" in detail, detail
    assert "vllm-console down gemma3-270m-cpu" in detail

    down = server.cli("down", "gemma3-270m-cpu")
    assert down.returncode == 0, down.stderr
    assert session_members(server.record) == []
