"""The nodes of a multi-node server: alive or dead, address, CPUs, GPUs, Ray's
object store, and the memory each node's processes hold.

Fed a :class:`console.runtime.ray_state.ClusterView` by its screen (the probe
runs in a thread worker); rendering only. Unknown figures show as ``–``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.widgets import Static

if TYPE_CHECKING:
    # Annotations only: the dashboard's first frame does not import the cluster
    # modules; the probe (cluster_view.poll) is imported by the worker, for cluster
    # profiles only.
    from console.profiles.schema import Profile
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


def strip_text(view: ClusterView | None) -> Text:
    """One line for the Dashboard: the nodes' states, the dead ones first with why."""
    line = Text()
    if view is None:
        line.append("cluster: checking…", style="dim")
        return line
    line.append(f"cluster {view.backend} · {summary(view)}", style="bold")
    if view.error:
        line.append(f" · ✗ {view.error}", style="red")
        return line
    for node in sorted(view.nodes, key=lambda n: n.alive):
        line.append(" · ")
        line.append(f"{node.name} {node.state}", style=STATE_STYLE.get(node.state, "yellow"))
        if node.detail and not node.alive:
            line.append(f" ({node.detail})", style="dim")
    return line


class ClusterStrip(Static):
    """The cluster in one line, polled by itself every ``interval`` s (one probe at a
    time, in a thread): the Dashboard shows it for a multi-node profile."""

    DEFAULT_CSS = """
    ClusterStrip { height: 1; padding: 0 1; display: none; }
    ClusterStrip.-on { display: block; }
    """

    def __init__(
        self, profile_of: Callable[[], Profile | None], *, interval: float = 5.0, **kwargs: Any
    ) -> None:
        super().__init__("", **kwargs)
        self._profile_of = profile_of
        self._interval = interval
        self._polling = False
        self.view: ClusterView | None = None

    def on_mount(self) -> None:
        self.set_interval(self._interval, self.tick)
        self.tick()

    def tick(self) -> None:
        profile = self._profile_of()
        on = profile is not None and profile.cluster is not None
        self.set_class(on, "-on")
        if not on or self._polling:
            return
        self._polling = True
        self._poll(profile)

    @work(thread=True, group="cluster-strip", exit_on_error=False)
    def _poll(self, profile: Profile) -> None:
        from console.runtime.cluster_view import poll

        _, view = poll(profile)
        self.app.call_from_thread(self._show, view)

    def _show(self, view: ClusterView | None) -> None:
        self._polling = False
        self.view = view
        self.update(strip_text(view))
