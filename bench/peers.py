"""Peers: what other vLLM terminal monitors cost next to ours, same server, same load.

Each peer is pip-installed from the package index into its own virtual
environment under a cache directory (``BENCH_PEERS_CACHE``, default
``~/.cache/vllm-console-bench/peers``; never the console's environment, never
the repository): vllm-htop, vllm-top and vllm-dash (a package that does not
install is recorded as such, with pip's reason). Ours are ``vllm-console
monitor --interval 1`` and the TUI dashboard (``vllm-console --url URL``).

Every tool runs in a tmux pane of its own private tmux server (a real
terminal, 120x40), at 1 Hz, against the same real vLLM server
(``BENCH_VLLM_URL``) while ``bench.load`` keeps streamed chat requests
flowing in its own process (an n-gram speculative server makes the spec
decode counters move too). The tools take turns, one at a time, for
``BENCH_PEERS_ROUNDS`` rounds (the order rotates each round); each turn
measures ``BENCH_PEERS_SECONDS`` (45) after ``BENCH_PEERS_WARMUP_S`` (65: past
start-up and a full 60 s window, the steady state anyone watching longer
than a minute sees).
CPU share = the tool's process tree's user+system time (its children
included) / wall time. The figure per tool is the median over its turns.

Goals: ``monitor`` no heavier than vllm-htop in the same run (ratio ≤ 1), the
TUI dashboard ≤ 2 % of a core with the loaded server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil

from bench.load import load
from bench.results import Goal, record

ROOT = Path(__file__).resolve().parent.parent
URL = os.environ.get("BENCH_VLLM_URL", "http://127.0.0.1:8100").rstrip("/")
CACHE = Path(
    os.environ.get("BENCH_PEERS_CACHE", Path.home() / ".cache" / "vllm-console-bench" / "peers")
)
SECONDS = float(os.environ.get("BENCH_PEERS_SECONDS", "45"))
WARMUP_S = float(os.environ.get("BENCH_PEERS_WARMUP_S", "65"))
ROUNDS = int(os.environ.get("BENCH_PEERS_ROUNDS", "2"))
SIZE = (120, 40)
MONITOR = "vllm-console monitor"
TUI = "vllm-console (TUI dashboard)"

Argv = Callable[[str, Path], list[str]]
"""(server URL, the tool's bin directory) -> argv."""


def _host_port(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", str(parts.port or 80)


@dataclass
class Tool:
    name: str
    package: str | None
    """PyPI package; None: ours (the console's own interpreter)."""
    argv: Argv
    version: str | None = None
    error: str | None = None
    """Why it could not be installed or run (then it has no figure)."""
    shares: list[float] = field(default_factory=list)
    """CPU share (% of one core) of each turn."""


def tools() -> list[Tool]:
    py = sys.executable
    return [
        Tool(
            MONITOR,
            None,
            lambda url, _bin: [py, "-m", "console", "monitor", "--url", url, "--interval", "1"],
        ),
        Tool(TUI, None, lambda url, _bin: [py, "-m", "console", "--url", url]),
        Tool(
            "vllm-htop",
            "vllm-htop",
            lambda url, bin_: [str(bin_ / "vllm-htop"), "--url", url, "--interval", "1"],
        ),
        Tool(
            "vllm-top",
            "vllm-top",
            lambda url, bin_: [
                str(bin_ / "vllm-top"),
                *("--host", _host_port(url)[0], "--port", _host_port(url)[1]),
                *("--interval", "1"),
            ],
        ),
        Tool(
            "vllm-dash",
            "vllm-dash",
            lambda url, bin_: [str(bin_ / "vllm-dash"), "--url", url, "--interval", "1"],
        ),
    ]


# --------------------------------------------------------------------------- install


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "WARNING:" not in ln]
    return (lines[-1] if lines else "no output")[:200]


def install(tool: Tool) -> Path:
    """The bin directory of the tool's own venv (created and pip-installed once)."""
    if tool.package is None:
        return Path(sys.executable).parent
    venv = CACHE / tool.package
    py = venv / "bin" / "python"
    marker = venv / ".installed"
    if not marker.exists():
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        pip = subprocess.run(
            [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", tool.package],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if pip.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise RuntimeError(f"pip install {tool.package} failed: {_last_line(pip.stderr)}")
        marker.write_text("ok\n")
    out = subprocess.run(
        [str(py), "-c", f"import importlib.metadata as m; print(m.version({tool.package!r}))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    tool.version = out.stdout.strip() or None
    return venv / "bin"


def our_version() -> str:
    from console import __version__

    return str(__version__)


# --------------------------------------------------------------------------- tmux


class Tmux:
    """A private tmux server (its own socket): panes that stay after their
    process exits, so a crash is seen with its last screen."""

    def __init__(self, folder: Path) -> None:
        self.socket = f"vllm-console-bench-peers-{os.getpid()}"
        conf = folder / "tmux.conf"
        conf.write_text("set -g remain-on-exit on\nset -g history-limit 200\n")
        self.conf = conf

    def _tmux(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, "-f", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode != 0:
            raise RuntimeError(f"tmux {args[0]}: {out.stderr.strip()}")
        return out.stdout

    def open(self) -> None:
        """Start the server with an idle session that lives for the whole run: a
        server whose last session ends exits, racing the next turn's start."""
        self._tmux("new-session", "-d", "-s", "keep", "--", "sleep", "infinity")

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> int:
        """Run ``argv`` (no shell) in a new pane; its pid."""
        envs = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        width, height = SIZE
        self._tmux(
            "new-session", "-d", "-s", name, "-x", str(width), "-y", str(height),
            "-c", str(ROOT), *envs, "--", *argv,
        )  # fmt: skip
        return int(self._tmux("display-message", "-p", "-t", name, "#{pane_pid}").strip())

    def dead(self, name: str) -> str | None:
        """None while the pane's process runs; else its exit and last screen line."""
        state = self._tmux(
            "display-message", "-p", "-t", name, "#{pane_dead} #{pane_dead_status}"
        ).split()
        if not state or state[0] != "1":
            return None
        screen = self._tmux("capture-pane", "-p", "-t", name)
        status = state[1] if len(state) > 1 else "?"
        return f"exited ({status}): {_last_line(screen)}"

    def stop(self, name: str) -> None:
        with contextlib.suppress(RuntimeError):
            self._tmux("kill-session", "-t", name)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._tmux("kill-server")


def tree_cpu(pid: int) -> float:
    """User+system seconds of ``pid``, its reaped children and its live descendants."""
    proc = psutil.Process(pid)
    t = proc.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in proc.children(recursive=True):
        try:
            c = child.cpu_times()
        except psutil.Error:
            continue
        total += c.user + c.system
    return total


def turn(tmux: Tmux, tool: Tool, bin_dir: Path, env: dict[str, str], n: int) -> float:
    """One turn of one tool: start, warm up, measure, stop. CPU share in %."""
    name = f"t{n}"
    pid = tmux.start(name, tool.argv(URL, bin_dir), env)
    try:
        time.sleep(WARMUP_S)
        if (why := tmux.dead(name)) is not None:
            raise RuntimeError(why)
        c0, w0 = tree_cpu(pid), time.monotonic()
        time.sleep(SECONDS)
        if (why := tmux.dead(name)) is not None:
            raise RuntimeError(why)
        c1, w1 = tree_cpu(pid), time.monotonic()
    finally:
        tmux.stop(name)
    return 100.0 * (c1 - c0) / (w1 - w0)


# --------------------------------------------------------------------------- run


def _server_counters(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        for key in ("vllm:generation_tokens_total", "vllm:spec_decode_num_drafts_total"):
            if line.startswith(key):
                out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def main() -> dict[str, Any]:
    try:
        httpx.get(URL + "/health", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        raise RuntimeError(
            f"no vLLM server at {URL} ({exc}); start one (an n-gram profile, e.g. "
            "gemma3-270m-cpu-ngram) or set BENCH_VLLM_URL"
        ) from exc
    if shutil.which("tmux") is None:
        raise RuntimeError("tmux not found: scripts/install-system.sh installs it")
    all_tools = tools()
    bins: dict[str, Path] = {}
    for tool in all_tools:
        try:
            bins[tool.name] = install(tool)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            tool.error = str(exc)
            print(f"   {tool.name}: {tool.error}", flush=True)
    for tool in all_tools:
        if tool.package is None:
            tool.version = our_version()
    runnable = [t for t in all_tools if t.error is None]
    folder = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    # Ours write their history and read their config in a scratch place, not the user's.
    env = {
        "VLLM_CONSOLE_STATE_DIR": str(folder / "state"),
        "VLLM_CONSOLE_CONFIG_DIR": str(folder / "config"),
        "PYTHONPATH": str(ROOT),
    }
    tmux = Tmux(folder)
    loads: list[float] = []
    n = 0
    try:
        tmux.open()
        with load(URL):
            before, t0 = _server_counters(URL), time.monotonic()
            for r in range(ROUNDS):
                order = runnable[r % len(runnable) :] + runnable[: r % len(runnable)]
                for tool in order:
                    if tool.error is not None:
                        continue
                    n += 1
                    try:
                        share = turn(tmux, tool, bins[tool.name], env, n)
                    except (RuntimeError, OSError, psutil.Error) as exc:
                        tool.error = f"did not run: {exc}"
                        print(f"   {tool.name}: {tool.error}", flush=True)
                        continue
                    tool.shares.append(share)
                    loads.append(os.getloadavg()[0])
                    print(f"   round {r + 1}: {tool.name} {share:.2f} %", flush=True)
            after, t1 = _server_counters(URL), time.monotonic()
    finally:
        tmux.close()
        shutil.rmtree(folder, ignore_errors=True)

    def figure(name: str) -> float | None:
        tool = next(t for t in all_tools if t.name == name)
        return statistics.median(tool.shares) if tool.shares and tool.error is None else None

    gen = "vllm:generation_tokens_total"
    drafts = "vllm:spec_decode_num_drafts_total"
    served = (after.get(gen, 0.0) - before.get(gen, 0.0)) / max(t1 - t0, 1e-9)
    spec = drafts in after and after[drafts] > before.get(drafts, 0.0)
    ours, htop, tui = figure(MONITOR), figure("vllm-htop"), figure(TUI)
    ratio = ours / htop if ours is not None and htop else None
    rows = []
    for tool in all_tools:
        fig = figure(tool.name)
        status = "ok" if tool.error is None else tool.error
        rows.append(
            [
                tool.name,
                tool.version or "–",
                "–" if fig is None else f"{fig:.2f}",
                " / ".join(f"{s:.2f}" for s in tool.shares) or "–",
                status,
            ]
        )
    load_avg = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "?"
    metrics = {
        "url": URL,
        "seconds_per_turn": SECONDS,
        "warmup_s": WARMUP_S,
        "rounds": ROUNDS,
        "server_generation_tok_s": served,
        "spec_decode_moving": spec,
        "load_average": loads,
        "tools": {
            t.name: {"version": t.version, "shares_pct": t.shares, "error": t.error}
            for t in all_tools
        },
    }
    note = (
        f"{ROUNDS} alternating rounds against {URL} under bench.load (3 streamed chats, "
        f"server {served:.1f} generated tok/s, spec decode {'moving' if spec else 'NOT moving'}); "
        f"each turn {WARMUP_S:.0f} s warm-up then {SECONDS:.0f} s measured in a 120x40 tmux "
        f"pane; median per tool; load average {load_avg} on {os.cpu_count()} CPUs."
    )
    return record(
        "peers",
        title="Peers: CPU at 1 Hz, loaded server",
        goals=[
            Goal("monitor / vllm-htop CPU (same run)", ratio, "x", "<=", 1.0),
            Goal("TUI dashboard CPU, loaded server", tui, "%", "<=", 2.0),
        ],
        metrics=metrics,
        note=note,
        tables=[
            {
                "title": "Peers: CPU share of one core at 1 Hz (same server, same load)",
                "columns": ["tool", "version", "CPU % (median)", "per round", "status"],
                "rows": rows,
            }
        ],
    )


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
