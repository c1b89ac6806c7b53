"""First run: a fresh clone's ``make demo`` to the first dashboard frame.

Clones this repository (its committed HEAD) into a temporary folder and runs
``make demo`` in a tmux pane (80x24, a real terminal, so the set-up shows its
progress bars as a user sees them) with private data/state/config folders, and
times it from the start of ``make`` to the first dashboard frame (the pane is
on the alternate screen and shows the dashboard's panels). Three runs:

1. cold: an empty pip cache (``PIP_CACHE_DIR`` in the temporary folder; pip's
   own configuration, e.g. the local torch wheel folder, still applies),
2. second: the same clone and data again: nothing may be redone,
3. warm: a fresh clone and empty data folders, the pip cache of run 1.

Per step (the console's venv, the runtime install and the model, from
``setup-times.json``, then server start) so the overlap is visible. The demo
runs as a copy of the demo profile on a free port, so a server on 8000 is never
mistaken for ours. Everything it starts is ended (``vllm-console down``, the
tmux session) and the folder removed, also on failure.

``python -m bench firstrun`` (about 10-20 minutes and ~1.5 GB of downloads);
``BENCH_FIRSTRUN_RUNS=cold,second`` picks runs; ``python -m bench --skip firstrun``
leaves it out of a full run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.results import Goal, record

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 240.0
DEADLINE_S = 1500.0
PROFILE = "firstrun-bench"
MARKERS = ("Engine", "Throughput", "Latency")
"""Panel titles of the dashboard: one on the alternate screen = its first frame."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _profile(config: Path, port: int) -> None:
    """The demo profile as it ships, on ``port`` (a user profile of another name)."""
    from console.commands.tui import DEMO_PROFILE
    from console.session import load_profile_by_name

    source = load_profile_by_name(DEMO_PROFILE).source
    text = Path(str(source)).read_text()
    text = text.replace(f"name: {DEMO_PROFILE}", f"name: {PROFILE}").replace(
        "port: 8000", f"port: {port}"
    )
    folder = config / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{PROFILE}.yaml").write_text(text)


TMUX = ["tmux", "-L", f"firstrun-bench-{os.getpid()}", "-f", "/dev/null"]
"""A tmux server of our own: its panes get this process's environment, not that
of whichever tmux server another user started first."""


def _tmux(*args: str) -> str:
    return subprocess.run(
        [*TMUX, *args], capture_output=True, text=True, timeout=30, check=False
    ).stdout


def _clone(dest: Path) -> None:
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(dest)],
        check=True,
        timeout=300,
    )


def _stamp_time(clone: Path) -> float | None:
    stamp = clone / ".venv" / ".installed"
    return stamp.stat().st_mtime if stamp.exists() else None


def _one_run(name: str, base: Path, env: dict[str, str]) -> dict[str, Any]:
    """``make demo`` in a tmux pane until the first dashboard frame."""
    session = f"firstrun-{os.getpid()}-{name}"
    clone = base / "clone"
    times = base / "state" / "logs" / "setup-times.json"
    times.unlink(missing_ok=True)
    env_args = [f"{k}={v}" for k, v in env.items()]
    command = f"env {' '.join(env_args)} make demo DEMO_ARGS='--demo-profile {PROFILE}'"
    started_wall = time.time()
    started = time.monotonic()
    _tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", "-c", str(clone), command)
    pane = _tmux("display-message", "-p", "-t", session, "#{pane_pid}").strip()
    frame = None
    text = ""
    try:
        while time.monotonic() - started < DEADLINE_S:
            text = _tmux("capture-pane", "-p", "-t", session)
            alt = _tmux("display-message", "-p", "-t", session, "#{alternate_on}").strip()
            if alt == "1" and any(m in text for m in MARKERS):
                frame = time.monotonic() - started
                break
            if session not in _tmux("list-sessions", "-F", "#{session_name}"):
                break  # make ended without a dashboard
            time.sleep(0.25)
    finally:
        _tmux("kill-server")
        if pane.isdigit():
            _end_group(int(pane))
    result: dict[str, Any] = {"to_dashboard_s": round(frame, 1) if frame else None}
    stamp = _stamp_time(clone)
    if stamp is not None and stamp >= started_wall:
        result["venv_s"] = round(stamp - started_wall, 1)
    if times.exists():
        steps = json.loads(times.read_text())["steps"]
        setup_end = 0.0
        for step in steps:
            key = step["step"].split()[0]  # runtime / model
            begin = step["started"] - started_wall
            result[f"{key}_start_s"] = round(begin, 1)
            result[f"{key}_s"] = step["seconds"]
            setup_end = max(setup_end, begin + step["seconds"])
        result["setup_end_s"] = round(setup_end, 1)
        if frame:
            result["server_and_tui_s"] = round(frame - setup_end, 1)
    elif frame and "venv_s" in result:
        result["server_and_tui_s"] = round(frame - result["venv_s"], 1)
    result["loadavg"] = _loadavg()
    if frame is None:
        tail = [ln for ln in text.splitlines() if ln.strip()][-8:]
        result["error"] = f"no dashboard within {DEADLINE_S:.0f} s; the pane: {tail}"
    return result


def _end_group(pid: int) -> None:
    """End ``make`` and the console it ran: the TUI outlives the SIGHUP of a
    killed tmux server, and a left-over dashboard would load the next run."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _size(folder: Path) -> int:
    """Bytes under ``folder``: the pip cache after a run says whether the "warm"
    run had anything to reuse (a package mirror without cache headers leaves
    pip's HTTP cache empty, and then warm means cold)."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _down(clone: Path, env: dict[str, str]) -> None:
    python = clone / ".venv" / "bin" / "python"
    if python.exists():
        subprocess.run(
            [str(python), "-m", "console", "down", PROFILE],
            env={**os.environ, **env},
            capture_output=True,
            timeout=120,
            check=False,
        )


def main() -> dict[str, Any]:
    wanted = os.environ.get("BENCH_FIRSTRUN_RUNS", "cold,second,warm").split(",")
    if shutil.which("tmux") is None:
        raise RuntimeError("tmux is not installed (make system installs it)")
    base = Path(tempfile.mkdtemp(prefix="vllm-console-firstrun-"))
    runs: dict[str, dict[str, Any]] = {}
    port = _free_port()
    pip_cache = base / "pip-cache"
    try:
        for name in ("cold", "second", "warm"):
            if name not in wanted:
                continue
            fresh = name != "second" or not (base / "clone").exists()
            if fresh:
                for folder in ("clone", "data", "state", "config"):
                    shutil.rmtree(base / folder, ignore_errors=True)
                _clone(base / "clone")
                _profile(base / "config", port)
            env = {
                "PIP_CACHE_DIR": str(pip_cache),
                "VLLM_CONSOLE_DATA_DIR": str(base / "data"),
                "VLLM_CONSOLE_STATE_DIR": str(base / "state"),
                "VLLM_CONSOLE_CONFIG_DIR": str(base / "config"),
            }
            print(
                f"   {name}: make demo in {'a fresh clone' if fresh else 'the same clone again'} "
                f"(load {_loadavg()})",
                flush=True,
            )
            try:
                runs[name] = _one_run(name, base, env)
            finally:
                _down(base / "clone", env)
            runs[name]["pip_cache_mib"] = round(_size(pip_cache) / 2**20)
            print(f"   {name}: {runs[name]}", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return _record(runs)


def _record(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    def value(run: str) -> float | None:
        return runs.get(run, {}).get("to_dashboard_s")

    order = ("venv", "runtime_start", "runtime", "model_start", "model", "setup_end")
    parts = []
    for name, run in runs.items():
        shown = f"{run['to_dashboard_s']:.0f} s" if run.get("to_dashboard_s") else "no frame"
        steps = [f"{k} {run[k + '_s']:.0f} s" for k in order if run.get(k + "_s") is not None]
        if run.get("server_and_tui_s") is not None:
            steps.append(f"server+TUI {run['server_and_tui_s']:.0f} s")
        steps.append(f"pip cache after it {run.get('pip_cache_mib', '?')} MiB")
        parts.append(f"{name}: {shown} ({', '.join(steps)}; load {run['loadavg']})")
    return record(
        "firstrun",
        title="First run: fresh clone `make demo` to the first dashboard frame",
        goals=[
            Goal("fresh clone, empty pip cache", value("cold"), "s", "<=", GOAL_S),
            Goal("fresh clone, warm pip cache", value("warm"), "s", "<=", GOAL_S),
        ],
        metrics={"runs": runs, "second_run_s": value("second")},
        note=(
            "; ".join(parts)
            + ". Steps: venv = the console's own venv (make), runtime/model = the parallel "
            "set-up steps (start offset and length), server_and_tui = the rest to the frame "
            "(vLLM's start-up; all of the second run). The runtime installs from "
            "console/data/runtime-cpu.lock without triton (286 MB), torchcodec and "
            "torchaudio (12 MB), which are no longer downloaded."
        ),
    )


if __name__ == "__main__":
    main()
