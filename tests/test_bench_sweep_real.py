"""A real k-sweep through the CLI on vLLM's CPU build (Gemma 3 270M, n-gram).

Tiny on purpose (each k is one server start, a minute or more here): k = 2
(the preset's own k is 4) plus the baseline, one prompt per category for two categories, a few
tokens, one stream and 2 concurrent. What it checks is the honesty of the
result, not speed: the baseline is there and has no acceptance figures, every
speculative server reports acceptance length >= 1 and exports as many draft
positions as its k, every request returned its fixed length, every server the
sweep started is gone afterwards (by PID and port), and ``--apply --apply-k 2``
wrote a profile that loads, extends the swept one and differs only in k
(which k wins on a busy 2-core box is not this test's business: the choice
is unit-tested in test_bench_sweep.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from console.cli import main
from console.profiles.loader import load_profile
from tests.helpers import free_port

TOKENS = 12


def user_profile(private_state: Path, name: str) -> tuple[Path, int]:
    """A user profile ``name`` extending the n-gram CPU preset on a free port with a
    small KV cache (the box is shared); returns its folder and port."""
    folder = private_state / "config" / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (folder / f"{name}.yaml").write_text(
        f"name: {name}\nextends: gemma3-270m-cpu-ngram\nserve:\n  port: {port}\n"
        "  env:\n    VLLM_CPU_KVCACHE_SPACE: '1'\n"
    )
    return folder, port


def listening(port: int) -> list[int | None]:
    return [
        c.pid
        for c in psutil.net_connections("tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
    ]


def test_real_sweep_k2_and_baseline(
    private_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, port = user_profile(private_state, "sweep-real")
    out_json = private_state / "sweep.json"
    argv = [
        "bench", "--sweep-k", "2", "sweep-real", "--category", "coding",
        "--category", "extraction", "--per-category", "1", "--concurrent", "2",
        "--max-tokens", str(TOKENS), "--warmup", "0", "--json", str(out_json),
        "--apply", "--apply-k", "2",
    ]  # fmt: skip
    code = main(argv)
    out, err = capsys.readouterr()
    data = json.loads(out_json.read_text())
    servers = data["servers"]
    assert code == 0, f"{err}\n{out}"
    assert data["complete"] is True
    assert [s["k"] for s in servers] == [None, 2]
    # every server it started is gone: its PID and its port
    assert all(s["pid"] for s in servers)
    for s in servers:
        assert not psutil.pid_exists(s["pid"]) or psutil.Process(s["pid"]).status() == "zombie"
        assert "processes of its session ended" in s["stopped"], s["stopped"]
    assert not listening(port)
    for s in servers:
        assert s["phase"] == "done"
        cells = {(c["category"], c["load"]) for c in s["cells"]}
        assert cells == {(c, ld) for c in ("coding", "extraction") for ld in (1, 2)}
        for c in s["cells"]:
            assert c["failed"] == 0
            assert all(r["output_tokens"] == TOKENS for r in c["per_request"])
            assert c["requests"] == (1 if c["load"] == 1 else 2)
            if s["k"] is None:
                assert c["spec_decode"] is None  # the baseline drafts nothing
                continue
            spec = c["spec_decode"]  # exported counters; a cell may see no n-gram match
            accept = spec["mean_acceptance_length"]
            assert (spec["drafts"] == 0 and accept is None) or accept >= 1.0
            assert len(spec["accepted_per_position"]) == s["k"]
        assert s["measured_k"] == s["k"]
    overall = data["summary"]["loads"]["1"]["figures"]["overall"]
    assert overall[0]["k"] is None and overall[0]["acceptance_length"] is None
    assert overall[0]["speedup"] == 1.0
    assert all(f["acceptance_length"] >= 1.0 for f in overall[1:])  # it did draft
    # the table
    assert "At 1 stream (all categories)" in out and "At 2 concurrent" in out
    assert "best:" in out and "Best k per category" in out
    # --apply: a profile extending the swept one, only k differs
    applied_line = next(ln for ln in out.splitlines() if ln.startswith("applied: k="))
    k = int(applied_line.split("k=")[1].split()[0])
    assert k == 2
    path = Path(applied_line.rsplit("-> ", 1)[1])
    assert path.parent == folder
    applied = load_profile(path.stem)
    original = load_profile("sweep-real")
    assert applied.extends == "sweep-real"
    assert applied.serve.speculative_config == {
        **original.serve.speculative_config,
        "num_speculative_tokens": k,
    }
    assert applied.serve.model_dump(exclude={"speculative_config"}) == original.serve.model_dump(
        exclude={"speculative_config"}
    )
    assert "# tok/s at 2 concurrent: base" in path.read_text()


def test_sigterm_ends_the_server_being_started(private_state: Path) -> None:
    """`timeout` or a service manager stops the sweep with SIGTERM: the server it was
    starting is ended (`down`) before the process exits, not left behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    _folder, port = user_profile(private_state, "sweep-term")
    out_json = private_state / "term.json"
    argv = [sys.executable, "-m", "console", "bench", "--sweep-k", "1", "sweep-term",
            "--per-category", "1", "--max-tokens", "4", "--json", str(out_json)]  # fmt: skip
    proc = subprocess.Popen(argv, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        pid = None
        while pid is None and time.monotonic() < deadline and proc.poll() is None:
            if out_json.exists():
                data = json.loads(out_json.read_text())
                pid = data["servers"][0]["pid"]
            time.sleep(0.2)
        assert pid is not None, "the sweep never recorded its first server's PID"
        assert psutil.pid_exists(pid)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    assert not listening(port)
    data = json.loads(out_json.read_text())
    assert data["servers"][0]["phase"] == "failed" and data["servers"][0]["stopped"]
    assert not list((private_state / "state" / "servers").glob("*.json"))  # no record left
