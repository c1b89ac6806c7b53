"""``down`` and ``status`` on a server's whole session, with real processes
standing in for vLLM's tree (no model needed): a leader that starts children
in its session, killed with SIGKILL the way a crash or the OOM killer would.
The real-server version is tests/test_e2e_lifecycle.py."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from console.profiles import load_profile, with_overrides
from console.runtime import state
from console.runtime.base import ServerState
from console.runtime.local import LocalRuntime, session_members
from console.runtime.state import ServerRecord
from tests.helpers import free_port, wait_for

# A leader that starts two "engine" children in its session and waits; the
# children ignore SIGTERM when asked to (a hung engine), so SIGKILL is needed.
TREE = """
import subprocess, sys, time
child = [sys.executable, "-c", sys.argv[1]]
procs = [subprocess.Popen(child, stdout=subprocess.PIPE, text=True) for _ in range(2)]
for proc in procs:
    proc.stdout.readline()  # each child is set up (its SIGTERM handler too)
print("started", flush=True)
time.sleep(600)
"""
CHILD_TERM = "import time; print('up', flush=True); time.sleep(600)"
CHILD_STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('up', flush=True); time.sleep(600)"
)


@pytest.fixture
def runtime(tmp_path: Path) -> LocalRuntime:
    return LocalRuntime(state_dir=tmp_path / "state", provision=False)


@contextlib.contextmanager
def _tree(
    runtime: LocalRuntime, child: str, tmp_path: Path, name: str = "tree"
) -> Iterator[ServerRecord]:
    log = tmp_path / "server.log"
    log.write_text("(APIServer pid=1) INFO 12-02 04:00:00 [api.py:1] starting\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", TREE, child],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        port = free_port()
        rec = ServerRecord(
            profile=name,
            pid=proc.pid,
            create_time=psutil.Process(proc.pid).create_time(),
            host="127.0.0.1",
            port=port,
            url=f"http://127.0.0.1:{port}",
            log=str(log),
            argv=["tree"],
            started_at="now",
        )
        state.save(rec, runtime.servers_dir)
        wait_for(lambda: len(session_members(rec)) == 3, 30, "the tree to start")
        yield rec
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.mark.parametrize("child", [CHILD_TERM, CHILD_STUBBORN], ids=["terminates", "stubborn"])
def test_kill_9_of_the_leader_then_status_then_down_leaves_nothing(
    runtime: LocalRuntime, tmp_path: Path, child: str
) -> None:
    with _tree(runtime, child, tmp_path) as rec:
        members = session_members(rec)
        leader = psutil.Process(rec.pid)
        children = [p for p in members if p.pid != rec.pid]
        assert len(children) == 2
        leader.send_signal(signal.SIGKILL)
        wait_for(
            lambda: leader.status() == psutil.STATUS_ZOMBIE or not leader.is_running(), 10, "death"
        )

        status = runtime.status_of(rec)
        assert status.state is ServerState.FAILED, status
        assert f"the API server (pid {rec.pid}) is gone but 2 processes" in status.detail
        assert "`vllm-console down tree` ends them" in status.detail
        # The log ends with an INFO line: no "last error" quoting it.
        assert "its log ends without an error (killed from outside" in status.detail
        assert sorted(x.pid for x in status.leftovers) == sorted(p.pid for p in children)
        assert all(x.rss_bytes > 0 for x in status.leftovers)
        assert json.dumps([x.__dict__ for x in status.leftovers])  # --json can carry them

        started = time.monotonic()
        down = runtime.down_record(rec, timeout=2.0)
        assert down.state is ServerState.STOPPED, down.detail
        assert "all 2 processes of its session ended" in down.detail
        assert "stopped" not in down.detail  # the CLI prints "tree: stopped: <detail>"
        if child == CHILD_STUBBORN:
            assert "SIGKILL" in down.detail
        assert time.monotonic() - started < 30
        assert session_members(rec) == []
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in children)
        assert state.load("tree", runtime.servers_dir) is None


def test_down_with_the_leader_alive_ends_its_children_too(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    with _tree(runtime, CHILD_STUBBORN, tmp_path) as rec:
        members = session_members(rec)
        down = runtime.down_record(rec, timeout=2.0)
        assert down.state is ServerState.STOPPED, down.detail
        assert f"SIGTERM to pid {rec.pid}" in down.detail and "SIGKILL" in down.detail
        assert session_members(rec) == []
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in members)


def test_a_record_whose_pid_is_someone_elses_has_no_session(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    """The PID of the record now belongs to another process: nothing is ours."""
    other = psutil.Process()  # this test process, created long after the "record"
    rec = ServerRecord(
        profile="gone",
        pid=other.pid,
        create_time=other.create_time() - 100,
        host="127.0.0.1",
        port=free_port(),
        url="http://127.0.0.1:9",
        log=str(tmp_path / "none.log"),
        argv=[],
        started_at="then",
    )
    assert session_members(rec) == []
    assert runtime.status_of(rec).state is ServerState.STALE


def test_up_ends_what_is_left_of_the_previous_server_first(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    """A new ``up`` after the API died does not leave the old engine holding its memory."""
    profile = with_overrides(
        load_profile("gemma3-270m-cpu"),
        model=str(tmp_path),
        port=free_port(),
        local={"runtime": None, "python": sys.executable, "managed_model": None},
    )
    with _tree(runtime, CHILD_TERM, tmp_path, name=profile.name) as rec:
        children = [p for p in session_members(rec) if p.pid != rec.pid]
        leader = psutil.Process(rec.pid)
        leader.send_signal(signal.SIGKILL)
        wait_for(lambda: leader.status() == psutil.STATUS_ZOMBIE, 10, "the leader to die")
        said: list[str] = []
        status = runtime.up(profile, on_line=said.append, timeout=120)
        assert status.state is ServerState.FAILED  # no vLLM in this Python: a quick exit
        assert any("ended what was left of the previous server" in s for s in said), said
        assert session_members(rec) == []
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in children)


@pytest.mark.parametrize(
    ("tail", "says"),
    [
        ('INFO:     127.0.0.1:1 - "GET /v1/models HTTP/1.1" 200 OK', "ends without an error"),
        ("(EngineCore pid=7) ERROR 12-02 04:41:45 [core.py:1] out of memory", "out of memory"),
        ("RuntimeError: CPU out of memory", "last error in its log: RuntimeError"),
        (
            "(APIServer pid=1) WARNING 12-02 04:41:45 [core_client.py:818] [shutdown] MPClient: "
            "engine core exited unexpectedly; starting cleanup",
            "last error in its log: [shutdown] MPClient: engine core exited unexpectedly",
        ),
    ],
)
def test_last_error_quotes_errors_only(tail: str, says: str) -> None:
    from console.logs import last_error

    lines = ["(APIServer pid=1) INFO 12-02 04:00:00 [api.py:1] Application startup complete.", tail]
    assert says in last_error(lines)
