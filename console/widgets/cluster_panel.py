"""The nodes of a multi-node server: alive or dead, address, CPUs, GPUs, Ray's
object store, and the memory each node's processes hold.

Fed a :class:`console.runtime.ray_state.ClusterView` by its screen (the probe
runs in a thread worker); rendering only. Unknown figures show as ``–``.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from console.runtime.ray_state import ClusterView

GIB = 1024**3
MIB = 1024**2


def _mem(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / GIB:.1f} GiB" if value >= GIB else f"{value / MIB:.0f} MiB"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


STATE_STYLE = {"alive": "green", "running": "green", "dead": "bold red", "exited": "bold red"}


class ClusterPanel(Static):
    """A table of the cluster's nodes (hidden for single-node servers)."""

    DEFAULT_CSS = """
    ClusterPanel { height: auto; padding: 0 0; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self.view: ClusterView | None = None

    def show(self, view: ClusterView | None, *, checking: bool = False) -> None:
        self.view = view
        self.update(render_cluster(view, checking=checking))


def summary(view: ClusterView) -> str:
    alive = sum(1 for n in view.nodes if n.alive)
    return f"{alive}/{len(view.nodes)} nodes up"


def render_cluster(view: ClusterView | None, *, checking: bool = False) -> Group | Text:
    if view is None:
        return Text("cluster: checking…" if checking else "cluster: not running", style="dim")
    head = Text()
    head.append(f"cluster · {view.backend} · ", style="bold")
    head.append(summary(view))
    if view.source:
        head.append(f" · {view.source}", style="dim")
    if view.error:
        return Group(head, Text(f"✗ {view.error}", style="red"))
    table = Table(box=None, padding=(0, 1), show_edge=False, expand=False)
    for column, justify in (
        ("node", "left"),
        ("state", "left"),
        ("address", "left"),
        ("CPU", "right"),
        ("GPU", "right"),
        ("obj store", "right"),
        ("RSS", "right"),
    ):
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    notes: list[Text] = []
    for node in view.nodes:
        table.add_row(
            node.name,
            Text(node.state, style=STATE_STYLE.get(node.state, "yellow")),
            node.address or "–",
            _num(node.cpus),
            _num(node.gpus),
            _mem(node.object_store_bytes),
            _mem(node.rss_bytes),
        )
        if node.detail:
            notes.append(Text(f"{node.name}: {node.detail}", style="red" if not node.alive else ""))
    parts: list[Text | Table] = [head, table, *notes]
    mem = view.host_memory
    if mem and "total_bytes" in mem and "available_bytes" in mem:
        parts.append(
            Text(
                f"this machine: {_mem(mem['available_bytes'])} of {_mem(mem['total_bytes'])} "
                "available (/proc/meminfo)",
                style="dim",
            )
        )
    return Group(*parts)
