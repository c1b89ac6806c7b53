"""The cluster view from Ray's node table (a probe's answer, captured from the
two-namespace run and extended with a dead node, hostile text and a node the
profile does not list), the panel's text and the exit wording."""

from __future__ import annotations

import io
import json
import signal
from pathlib import Path

from rich.console import Console

from console.profiles import load_file
from console.runtime.cluster import exit_text, log_error
from console.runtime.ray_state import ClusterView, _from_ray
from console.widgets.cluster_panel import render_cluster

DATA = Path(__file__).parent / "data" / "cluster"


def profile(tmp_path: Path):
    path = tmp_path / "r.yaml"
    path.write_text(
        """
name: r
runtime: local
serve: {model: m, local: {runtime: ray}}
cluster:
  backend: ray
  nodes:
    - {name: a, address: 10.78.0.1, interface: x, gpus: 0}
    - {name: b, address: 10.78.0.2, interface: y, gpus: 0}
    - {name: c, address: 10.78.0.3, interface: z, gpus: 0}
"""
    )
    return load_file(path)


def test_ray_node_table_to_view(tmp_path: Path) -> None:
    data = json.loads((DATA / "ray_nodes.json").read_text())
    nodes = _from_ray(profile(tmp_path), data)
    assert [(n.name, n.state, n.address) for n in nodes] == [
        ("a", "alive", "10.78.0.1"),
        ("b", "dead", "10.78.0.2"),
        ("c", "not joined", "10.78.0.3"),
        ("77aa00000000", "alive", "10.78.0.9"),  # in Ray, not in the profile: shown too
    ]
    a, b, _, extra = nodes
    assert (a.cpus, a.gpus, a.object_store_bytes) == (1.0, 0.0, 6721755955.0)
    assert extra.gpus == 1.0
    # Ray's text is untrusted: the OSC 52 clipboard write is gone
    assert b.detail.startswith("health check failed") and "\x1b" not in b.detail
    assert "\x07" not in b.detail


def test_panel_text(tmp_path: Path) -> None:
    data = json.loads((DATA / "ray_nodes.json").read_text())
    view = ClusterView(
        "ray",
        _from_ray(profile(tmp_path), data),
        source="Ray 2.60.0 GCS node table @ 10.78.0.1:6379",
    )
    view.host_memory = {"total_bytes": 24 * 2**30, "available_bytes": 20 * 2**30}
    console = Console(width=100, file=io.StringIO(), color_system=None)
    console.print(render_cluster(view))
    text = console.file.getvalue()
    assert "cluster · ray · 2/4 nodes up" in text
    assert "6.3 GiB" in text and "not joined" in text
    assert "b: health check failed" in text
    assert "this machine: 20.0 GiB of 24.0 GiB available" in text
    json.dumps(view.to_dict(), allow_nan=False)  # no NaN/Inf ever


def test_error_and_exit_wording(tmp_path: Path) -> None:
    console = Console(width=100, file=io.StringIO(), color_system=None)
    console.print(render_cluster(ClusterView("ray", error="the Ray probe did not answer")))
    assert "✗ the Ray probe did not answer" in console.file.getvalue()
    assert exit_text(-signal.SIGKILL) == "was killed by SIGKILL"
    assert exit_text(1) == "exited with code 1" and exit_text(None) == "is gone"
    log = tmp_path / "n.log"
    log.write_text("INFO 12-02 04:30:09 [scripts.py:1274] -- Process exit logs\n")
    assert log_error(log) == "no error in its log (stopped from outside?)"
    log.write_text("Traceback (most recent call last):\nValueError: current platform cpu\n")
    assert "ValueError: current platform cpu" in log_error(log)
