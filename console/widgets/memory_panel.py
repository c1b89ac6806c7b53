"""GPU memory, honestly labelled.

Dedicated memory (NVML answers) is one gauge. On unified-memory boxes (GB10:
NVML memory is "Not Supported") the host pool and the per-process GPU
allocations are two separate figures; the pool is never called "GPU memory".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static

from console.widgets.gauge import Gauge
from console.widgets.stat_tile import StatTile

GIB = 1024**3


def gib(n: float | None) -> str:
    return "–" if n is None else f"{n / GIB:.1f}"


@dataclass(frozen=True)
class ProcessAlloc:
    """One process's GPU allocation (NVML compute processes)."""

    pid: int
    name: str
    used_bytes: int | None


@dataclass(frozen=True)
class GpuView:
    """What the panel shows; built by the dashboard from the GPU sampler."""

    available: bool = False
    reason: str = ""
    """Why there is no GPU reading (no NVML, no device)."""
    name: str = ""
    unified: bool = False
    mem_used: int | None = None
    mem_total: int | None = None
    host_used: int | None = None
    host_total: int | None = None
    host_cached: int | None = None
    processes: Sequence[ProcessAlloc] = ()
    util_pct: float | None = None
    temp_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    age_s: float | None = None
    server_rss: int | None = None
    """Resident memory of the server's process tree (no-GPU boxes)."""
    server_processes: int = 0
    server_pid: int | None = None
    server_note: str = ""
    """Why the server's memory is unknown (not local, not found)."""


class MemoryPanel(Vertical):
    """Memory and GPU load (util, temperature, power) in four lines at 80x24;
    the per-process list shows when the screen is wide (``-wide``)."""

    SCOPED_CSS = False  # the process list depends on the screen's -wide class

    DEFAULT_CSS = """
    MemoryPanel { height: auto; }
    MemoryPanel > .mem-line { height: 1; }
    MemoryPanel > #mem-procs { height: auto; color: $text-muted; display: none; }
    Screen.-wide MemoryPanel > #mem-procs.-has-procs { display: block; }
    MemoryPanel > #mem-note { height: auto; max-height: 2; color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        yield Gauge("GPU mem", id="mem-gauge", classes="mem-line")
        yield StatTile("GPU alloc", id="mem-alloc", label_width=10, classes="mem-line")
        yield Static("", id="mem-procs")
        yield StatTile("GPU load", id="mem-load", label_width=10, classes="mem-line")
        yield Static("", id="mem-note")

    _last: GpuView | None = None

    def show(self, view: GpuView) -> None:
        """Show one reading; an identical reading (the usual case, once a
        second) touches nothing, so it costs no repaint."""
        # The age shows only once stale, in whole seconds; below that it changes nothing.
        age = view.age_s
        key = replace(
            view,
            age_s=round(age) if age is not None and age > 5 else None,
            # Shown in tenths of a GiB: finer changes (host memory moves every
            # second) would repaint for nothing.
            host_used=_tenth(view.host_used),
            host_cached=_tenth(view.host_cached),
            server_rss=_tenth(view.server_rss),
        )
        if key == self._last:
            return
        self._last = key
        gauge = self.query_one("#mem-gauge", Gauge)
        alloc = self.query_one("#mem-alloc", StatTile)
        procs = self.query_one("#mem-procs", Static)
        load = self.query_one("#mem-load", StatTile)
        note = self.query_one("#mem-note", Static)
        # Which lines show is decided first and applied once: toggling a line off
        # and on again in one reading would lay the whole screen out each time.
        if not view.available and view.host_total is not None:
            _display(alloc, True)
            _display(load, False)
            procs.set_class(False, "-has-procs")
            self._show_host(view)
            return
        _display(alloc, view.available and view.unified)
        _display(load, True)
        procs.set_class(view.available and view.unified and bool(view.processes), "-has-procs")
        _label(alloc, "GPU alloc", 10)
        if not view.available:
            gauge.label = "GPU mem"
            gauge.set(None, "no GPU")
            load.set(None)
            _update(note, view.reason or "no NVIDIA GPU visible (NVML unavailable)")
            return
        if view.unified:
            gauge.label = "host pool"
            gauge.set(
                _frac(view.host_used, view.host_total),
                f"{gib(view.host_used)}/{gib(view.host_total)} GiB",
            )
            gauge.tooltip = (
                "Unified memory: the host pool (MemTotal - MemAvailable) is shared by CPU "
                "and GPU; it is not GPU memory used. Page cache: "
                f"{gib(view.host_cached)} GiB."
            )
            known = [p.used_bytes for p in view.processes if p.used_bytes is not None]
            if view.processes:
                top = max(view.processes, key=lambda p: p.used_bytes or 0)
                more = f" +{len(view.processes) - 1}" if len(view.processes) > 1 else ""
                alloc.set(f"{gib(sum(known))} GiB", f"{top.pid} {top.name}{more}")
            else:
                alloc.set("0.0 GiB", "no GPU processes")
            alloc.tooltip = "Sum of per-process GPU allocations (NVML compute processes)."
            if view.processes:
                _update(
                    procs,
                    "\n".join(
                        f"  {p.pid:>7} {p.name[:24]:<24} {gib(p.used_bytes)} GiB"
                        for p in view.processes
                    ),
                )
        else:
            gauge.label = "GPU mem"
            gauge.tooltip = "Dedicated GPU memory used / total (NVML)."
            gauge.set(
                _frac(view.mem_used, view.mem_total),
                f"{gib(view.mem_used)}/{gib(view.mem_total)} GiB",
            )
        util = "–" if view.util_pct is None else f"{view.util_pct:.0f} %"
        temp = "–" if view.temp_c is None else f"{view.temp_c:.0f} °C"
        power = "–" if view.power_w is None else f"{view.power_w:.0f} W"
        if view.power_w is not None and view.power_limit_w:
            power += f"/{view.power_limit_w:.0f}"
        load.set(f"{util}  {temp}  {power}")
        bits = [view.name] if view.name else []
        if view.unified:
            bits.append("unified memory")
        if view.age_s is not None and view.age_s > 5:
            bits.append(f"stale: {view.age_s:.0f} s old")
        _update(note, " · ".join(bits))

    def _show_host(self, view: GpuView) -> None:
        """No GPU reading: the host's RAM and the server tree's RSS, called host memory."""
        gauge = self.query_one("#mem-gauge", Gauge)
        alloc = self.query_one("#mem-alloc", StatTile)
        note = self.query_one("#mem-note", Static)
        gauge.label = "host mem"
        gauge.set(
            _frac(view.host_used, view.host_total),
            f"{gib(view.host_used)}/{gib(view.host_total)} GiB",
        )
        gauge.tooltip = (
            "Host memory (psutil): total - available. Not GPU memory: no GPU is read here."
        )
        _label(alloc, "server RSS", 11)
        if view.server_rss is not None:
            procs = "process" if view.server_processes == 1 else "processes"
            alloc.set(f"{gib(view.server_rss)} GiB", f"{view.server_processes} {procs}")
        else:
            alloc.set(None, view.server_note)
        alloc.tooltip = (
            "Resident memory of the server's process tree (API server, engine, workers), "
            f"pid {view.server_pid}."
            if view.server_pid
            else "Resident memory of the server's process tree, when it runs on this machine."
        )
        reason = view.reason or "no NVIDIA GPU visible (NVML unavailable)"
        _update(note, f"host memory · {reason}")


def _tenth(n: int | None) -> int | None:
    return None if n is None else round(n / GIB * 10)


def _display(widget: Widget, shown: bool) -> None:
    """Show or hide a line only when that changes (a change lays the panel out)."""
    if widget.display != shown:
        widget.display = shown


def _label(tile: StatTile, label: str, width: int) -> None:
    """Relabel a tile only when that changes (a relabel repaints it)."""
    if (tile.label, tile.label_width) != (label, width):
        tile.label, tile.label_width = label, width
        tile.refresh()


def _update(widget: Static, text: str) -> None:
    """Update a text line only when it changes: an update lays the panel out again."""
    if widget.content != text:
        widget.update(text)


def _frac(used: float | None, total: float | None) -> float | None:
    if used is None or not total:
        return None
    return used / total
