"""A multi-node server's nodes as Ray (or, for vLLM's executor, the processes) see them.

Ray's node table comes from Ray's own state, read by a small probe run with the
**head's** interpreter inside the head's namespace: the same Ray version as the
GCS by construction (a client of another version is refused), and no dashboard
needed (the plain ``ray`` package has none: nothing on :8265). The probe uses
``GlobalState.node_table()`` (what ``ray.nodes()`` returns, without connecting a
driver) and falls back to ``ray.init`` + ``ray.nodes()``.

Per-node memory: the RSS of the processes the console started for that node
(psutil), and the host's ``/proc/meminfo`` (one figure for nodes sharing this
machine; on a GB10 the unified pool). Every figure is ``None`` where unknown.

This module is Ray's side only; joining it with the processes the console
started (``ClusterRuntime``) is ``console.runtime.cluster_view``'s job, so the
runtime can poll :func:`probe` without an import cycle.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from console.profiles.schema import Profile

MAX_OUTPUT = 1 << 20
"""Bytes of probe output read at most (a node table is a few KB per node)."""

PROBE = r"""
import json, sys
addr = sys.argv[1]
try:
    from ray._private.state import GlobalState
    from ray._raylet import GcsClientOptions
    state = GlobalState()
    state._initialize_global_state(GcsClientOptions.create(
        addr, None, allow_cluster_id_nil=True, fetch_cluster_id_if_nil=False))
    nodes = state.node_table()
    how = "GCS node table"
except Exception as first:
    try:
        import ray
        ray.init(address=addr, logging_level="ERROR", log_to_driver=False)
        nodes = ray.nodes()
        ray.shutdown()
        how = "ray.nodes()"
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"[:400]}))
        sys.exit(0)
keep = ("NodeID", "Alive", "NodeManagerAddress", "NodeName", "Resources",
        "DeathReason", "DeathReasonMessage")
print(json.dumps({"how": how, "ray": __import__("ray").__version__,
                  "nodes": [{k: n.get(k) for k in keep} for n in nodes]}, default=str))
"""


@dataclass
class ClusterNode:
    """One node in the cluster view."""

    name: str
    """The profile's node name, or Ray's node id where Ray has a node we did not list."""
    address: str | None
    state: str
    """``alive``, ``dead``, ``not joined`` (Ray), ``running``/``exited`` (processes)."""
    alive: bool
    cpus: float | None = None
    gpus: float | None = None
    object_store_bytes: float | None = None
    memory_bytes: float | None = None
    """Ray's ``memory`` resource (what Ray may schedule), not what is used."""
    rss_bytes: int | None = None
    """Resident memory of the processes the console started for this node."""
    detail: str = ""
    node_id: str | None = None


@dataclass
class ClusterView:
    backend: str
    nodes: list[ClusterNode] = field(default_factory=list)
    source: str = ""
    """Where the node states came from (``Ray 2.60.0 GCS node table @ HEAD:6379``,
    ``processes``)."""
    error: str | None = None
    timestamp: float = field(default_factory=time.time)
    host_memory: dict[str, int] | None = None
    """``/proc/meminfo`` of this machine (total/available bytes) for local nodes."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _run_probe(python: str, netns: str | None, address: str, timeout: float) -> dict[str, Any]:
    from console.runtime.netns import netns_argv

    argv = [*netns_argv(netns), python, "-c", PROBE, address]
    env = {"RAY_USAGE_STATS_ENABLED": "0", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"the Ray probe did not answer within {timeout:.0f} s"}
    except OSError as exc:
        return {"error": f"cannot run the Ray probe ({argv[0]}): {exc.strerror or exc}"}
    out = proc.stdout[:MAX_OUTPUT].decode("utf-8", "replace").strip().splitlines()
    if not out:
        err = proc.stderr[-2000:].decode("utf-8", "replace").strip().splitlines()
        return {
            "error": f"the Ray probe printed nothing (exit {proc.returncode})"
            + (f": {err[-1]}" if err else "")
        }
    try:
        data = json.loads(out[-1])
    except ValueError:
        return {"error": "the Ray probe's answer is not JSON"}
    return data if isinstance(data, dict) else {"error": "the Ray probe's answer is not an object"}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)


def _from_ray(profile: Profile, data: dict[str, Any]) -> list[ClusterNode]:
    from console import sanitize

    spec = profile.cluster
    assert spec is not None
    raw = [n for n in data.get("nodes", []) if isinstance(n, dict)]
    # Newest entry per address first: a restarted node leaves its dead entry behind.
    by_addr: dict[str, dict[str, Any]] = {}
    for entry in raw:
        addr = str(entry.get("NodeManagerAddress") or "")
        if addr not in by_addr or (entry.get("Alive") and not by_addr[addr].get("Alive")):
            by_addr[addr] = entry
    out: list[ClusterNode] = []
    seen: set[str] = set()
    for node in spec.nodes:
        entry = by_addr.get(node.address or "")
        if entry is None:
            out.append(ClusterNode(node.name, node.address, "not joined", False))
            continue
        seen.add(node.address or "")
        out.append(_node(node.name, entry, sanitize))
    for addr, entry in by_addr.items():
        if addr not in seen:
            out.append(
                _node(sanitize.clean_line(str(entry.get("NodeID", "?"))[:12]), entry, sanitize)
            )
    return out


def _node(name: str, entry: dict[str, Any], sanitize: Any) -> ClusterNode:
    res = entry.get("Resources") if isinstance(entry.get("Resources"), dict) else {}
    alive = bool(entry.get("Alive"))
    reason = sanitize.clean_line(str(entry.get("DeathReasonMessage") or ""))[:200]
    return ClusterNode(
        name=name,
        address=sanitize.clean_line(str(entry.get("NodeManagerAddress") or ""))[:64] or None,
        state="alive" if alive else "dead",
        alive=alive,
        cpus=_num(res.get("CPU")),
        gpus=_num(res.get("GPU", 0.0)),
        object_store_bytes=_num(res.get("object_store_memory")),
        memory_bytes=_num(res.get("memory")),
        detail="" if alive else reason,
        node_id=sanitize.clean_line(str(entry.get("NodeID") or ""))[:64] or None,
    )


def probe(profile: Profile, *, timeout: float = 20.0) -> ClusterView:
    """Ray's view of the profile's cluster (``error`` set when Ray does not answer)."""
    from console.profiles.render import local_python

    spec = profile.cluster
    assert spec is not None
    head = spec.head
    address = f"{head.address}:{spec.ray_port}"
    data = _run_probe(local_python(profile), head.netns, address, timeout)
    if "error" in data:
        from console import sanitize

        return ClusterView(
            spec.backend, source="ray", error=sanitize.clean_line(str(data["error"]))
        )
    how = f"Ray {data.get('ray', '?')} {data.get('how', '')} @ {address}"
    return ClusterView(spec.backend, _from_ray(profile, data), source=how)
