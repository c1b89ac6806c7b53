"""The small Gemma with tensor parallelism 2 over two "nodes", through vLLM's own
multi-node executor (``--nnodes 2``, ``--headless`` on rank 1): the CPU build
refuses Ray, this is how it spans nodes (reference/multi-node.md §4).

The head (rank 0) runs in this machine's network namespace, so the console here
reaches its API on loopback as it would on a real head box; rank 1 runs in a
namespace the test creates; the ranks talk over a veth pair with addresses the
test assigns (10.77.0.1 and .2). The console brings the cluster up from a
profile, monitors it (``monitor --json`` with its ``cluster`` object), chats
through it, shows it failed with the cause when rank 1 is killed, and ``down``
leaves no process.

Needs two vLLM ranks' memory: waits (up to 5 min) for 8 GiB available, KV cache
1 GiB. Time here: about 3-5 minutes (ready in ~2 min on a loaded 2-core box).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from console.cli import main
from console.profiles import load_file
from console.runtime.base import ServerState
from console.runtime.cluster import ClusterRuntime, session_members
from tests.helpers import free_port, wait_for
from tests.netns import netns_pids, two_nodes

pytestmark = pytest.mark.timeout(1200)

NEEDED_GIB = 8


def _wait_for_memory() -> None:
    deadline = time.monotonic() + 300
    while psutil.virtual_memory().available < NEEDED_GIB * 2**30:
        if time.monotonic() > deadline:
            gib = psutil.virtual_memory().available / 2**30
            pytest.fail(
                f"two vLLM ranks need {NEEDED_GIB} GiB available; only {gib:.1f} GiB "
                "after waiting 5 min"
            )
        time.sleep(10)  # polling the machine's free memory, not synchronising with the test


def _profile(tmp_path: Path, nodes, port: int, master_port: int) -> Path:
    (_, ns_b), (addr_a, addr_b), (if_a, if_b) = nodes.netns, nodes.addresses, nodes.interfaces
    path = tmp_path / "tp2.yaml"
    path.write_text(
        f"""
name: tp2
runtime: local
serve:
  model: gemma3-270m
  served_model_name: gemma3-270m
  host: 127.0.0.1
  port: {port}
  local: {{runtime: cpu, managed_model: gemma3-270m}}
  env: {{VLLM_CPU_KVCACHE_SPACE: "1"}}
  engine_args: {{max-model-len: 512, enforce-eager: true, tensor-parallel-size: 2}}
cluster:
  backend: vllm
  master_port: {master_port}
  nodes:
    - {{name: a, address: {addr_a}, interface: {if_a}, gpus: 0}}
    - {{name: b, address: {addr_b}, interface: {if_b}, netns: {ns_b}, gpus: 0}}
"""
    )
    return path


@pytest.mark.usefixtures("private_state")
def test_gemma_tp2_over_two_namespaces_monitor_chat_kill_down(tmp_path: Path, capsys) -> None:
    started = time.monotonic()
    _wait_for_memory()
    with two_nodes("v", "10.77.0", head_in_root=True) as nodes:
        port = free_port()
        path = _profile(tmp_path, nodes, port, free_port())
        profile = load_file(path)
        assert main(["profiles", "check", str(path), "--no-probe"]) == 0
        capsys.readouterr()
        runtime = ClusterRuntime(die_with_parent=True)
        lines: list[str] = []
        procs = []
        try:
            status = runtime.up(profile, on_line=lines.append, timeout=900)
            assert status.state is ServerState.READY, status.detail
            record = runtime.record(profile)
            assert record is not None
            procs = runtime.procs(record)
            # vLLM's executor: the headless follower first, then rank 0, which serves
            assert [(p.name, p.rank) for p in procs] == [("b", 1), ("a", 0)]
            assert any("all 2 ranks joined" in ln for ln in lines), lines[-20:]
            print(f"two-node vLLM ready after {time.monotonic() - started:.0f} s")

            url = f"http://127.0.0.1:{port}"
            capsys.readouterr()
            assert main(["monitor", "--url", url, "--once", "--json", "--no-history"]) == 0
            report = json.loads(capsys.readouterr().out)
            assert report["ok"] is True and report["server"]["model"] == "gemma3-270m"
            cluster = report["cluster"]
            assert cluster["backend"] == "vllm"
            assert [(n["name"], n["state"]) for n in cluster["nodes"]] == [
                ("a", "running"),
                ("b", "running"),
            ]
            assert all(n["rss_bytes"] > 0 for n in cluster["nodes"])

            code = main(
                [
                    "chat",
                    "--url",
                    url,
                    "--max-tokens",
                    "8",
                    "--temperature",
                    "0",
                    "The capital of France is",
                ]
            )
            out = capsys.readouterr().out
            assert code == 0 and out.strip(), out
            print(f"chat through TP=2 answered: {out.strip()!r}")
            capsys.readouterr()

            # rank 1's node dies: every process in its namespace, by PID
            for pid in netns_pids(nodes.netns[1]):
                os.kill(pid, signal.SIGKILL)

            def failed() -> bool:
                return runtime.status(profile).state is ServerState.FAILED

            wait_for(failed, 60, "the cluster to show as failed", step=1.0)
            capsys.readouterr()
            assert main(["status", str(path)]) == 1
            shown = capsys.readouterr().out
            assert "failed" in shown and "worker b (rank 1" in shown, shown
            assert "killed by SIGKILL" in shown, shown
        finally:
            down = runtime.down(profile)
        assert down.state is ServerState.STOPPED, down.detail
        assert netns_pids(nodes.netns[1]) == []
        assert [session_members(p.pid) for p in procs] == [[] for _ in procs]
        assert not any(psutil.pid_exists(p.pid) for p in procs)
        assert runtime.record(profile) is None
    print(f"two-node vLLM test: {time.monotonic() - started:.0f} s")
