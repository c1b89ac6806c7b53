"""A multi-node server's cluster view: Ray's state (``ray_state``) joined with the
processes the console started for each node (``ClusterRuntime``).

The join lives here, above both: ``ClusterRuntime`` polls ``ray_state.probe()``
while it starts a cluster, and this module reads both, so imports run one way
(docs/architecture.md). ``cluster`` (psutil, httpx) is imported inside the
functions: the screens import this module only for cluster profiles.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.runtime.ray_state import ClusterNode, ClusterView, probe

if TYPE_CHECKING:
    from console.profiles.schema import Profile
    from console.runtime.base import ServerStatus
    from console.runtime.state import ServerRecord


def _host_memory() -> dict[str, int] | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key in ("MemTotal", "MemAvailable") and parts:
            values["total_bytes" if key == "MemTotal" else "available_bytes"] = int(parts[0]) * 1024
    return values or None


def _rss(pids: list[int]) -> int | None:
    from console.runtime.cluster import session_members

    total = 0
    found = False
    for pid in pids:
        for proc in session_members(pid):
            try:
                total += proc.memory_info().rss
                found = True
            except Exception:
                continue
    return total if found else None


def view(profile: Profile, record: ServerRecord | None) -> ClusterView:
    """The cluster view: Ray's state (ray backend) joined with our processes."""
    from console.runtime.cluster import ClusterRuntime, _alive, exit_text

    spec = profile.cluster
    assert spec is not None
    procs = ClusterRuntime.procs(record) if record is not None else []
    if spec.backend == "ray" and record is not None:
        result = probe(profile)
    else:
        result = ClusterView(spec.backend, source="processes")
        for node in spec.nodes:
            result.nodes.append(ClusterNode(node.name, node.address, "not started", False))
    by_name = {n.name: n for n in result.nodes}
    for node in spec.nodes:
        mine = [p for p in procs if p.name == node.name]
        shown = by_name.get(node.name)
        if shown is None:
            continue
        if mine:
            shown.rss_bytes = _rss([p.pid for p in mine if _alive(p) is not None])
        gone = [p for p in mine if _alive(p) is None]
        if spec.backend != "ray" and mine:
            shown.alive = not gone
            shown.state = "running" if not gone else "exited"
            shown.gpus = float(node.gpus)
        if gone:
            ours = "; ".join(f"{p.role} pid {p.pid} {exit_text(p.exit_code)}" for p in gone)
            shown.detail = "; ".join(x for x in (shown.detail, ours) if x)
    result.host_memory = _host_memory()
    return result


def for_url(url: str) -> dict[str, Any] | None:
    """The cluster view (as JSON data) of the multi-node server the console started
    at ``url``; None when no cluster record matches (a single-node server)."""
    from console.errors import ConsoleError
    from console.profiles.loader import load_profile
    from console.runtime.cluster import ClusterRuntime

    runtime = ClusterRuntime()
    base = url.rstrip("/")
    for record in state_records(runtime):
        if record.url.rstrip("/") != base:
            continue
        try:
            profile = load_profile(record.source or record.profile)
        except ConsoleError as exc:  # a moved profile still gets a cluster entry
            return {"backend": None, "nodes": [], "error": f"profile not loadable: {exc}"}
        if profile.cluster is None:
            return None
        return view(profile, record).to_dict()
    return None


def state_records(runtime: Any) -> list[ServerRecord]:
    from console.runtime import state

    return [r for r in state.all_records(runtime.servers_dir) if r.runtime == runtime.name]


def poll(profile: Profile) -> tuple[ServerStatus, ClusterView | None]:
    """The server's status and its cluster view now (for the screens' workers)."""
    from console.runtime.base import ServerState, ServerStatus
    from console.runtime.cluster import ClusterRuntime

    try:
        runtime = ClusterRuntime()
        status = runtime.status(profile)
        record = runtime.record(profile)
        return status, (view(profile, record) if record is not None else None)
    except Exception as exc:  # shown; the next poll tries again
        return ServerStatus(profile.name, "cluster", ServerState.ABSENT, detail=str(exc)), None
