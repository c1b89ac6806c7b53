"""``up --record``: a detached ``vllm-console record --profile NAME`` per server.

The recorder outlives the ``up`` command (``up --detach`` returns at once) and
is ended by ``down NAME`` (or a foreground ``up`` that stops its server). Its
PID lives in ``state_dir()/recorders/NAME.pid``; before signalling, the PID is
checked to still be *our* recorder of that profile (its command line), so a
recycled PID is never killed. Its output goes to ``logs/record-NAME.log``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from console import paths


def _pid_file(name: str) -> Path:
    return paths.state_dir() / "recorders" / f"{name}.pid"


def _argv(name: str, url: str | None = None) -> list[str]:
    argv = [sys.executable, "-m", "console", "record", "--profile", name, "--quiet"]
    return argv + (["--url", url] if url else [])


def _ours(pid: int, name: str) -> psutil.Process | None:
    try:
        proc = psutil.Process(pid)
        cmd = proc.cmdline()
    except (psutil.Error, OSError):
        return None
    tail = _argv(name)[1:]
    return proc if cmd[1 : 1 + len(tail)] == tail else None


def running(name: str) -> int | None:
    """PID of the profile's background recorder, if it runs."""
    try:
        pid = int(_pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _ours(pid, name) is not None else None


def start(name: str, url: str | None = None) -> int:
    """Start the profile's recorder (or return the one already running); ``url``
    when the server does not listen where the profile says (``up --port``)."""
    pid = running(name)
    if pid is not None:
        return pid
    log = paths.ensure(paths.logs_dir()) / f"record-{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            _argv(name, url),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(os.environ),
        )
    pid_file = _pid_file(name)
    paths.ensure(pid_file.parent)
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def stop(name: str, *, timeout: float = 5.0) -> bool:
    """End the profile's recorder (SIGTERM, then SIGKILL); True if one was running."""
    pid_file = _pid_file(name)
    pid = running(name)
    pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    proc = _ours(pid, name)
    if proc is None:
        return False
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    proc.kill()
    return True
