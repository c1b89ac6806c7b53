"""GPU memory, honestly labelled.

Dedicated memory (NVML answers) is one gauge. On unified-memory boxes (GB10:
NVML memory is "Not Supported") the host pool and the per-process GPU
allocations are two separate figures; the pool is never called "GPU memory".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Vertical
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


class MemoryPanel(Vertical):
    """Memory and GPU load: util, temperature, power."""

    DEFAULT_CSS = """
    MemoryPanel { height: auto; }
    MemoryPanel > .mem-line { height: 1; }
    MemoryPanel > #mem-procs { height: auto; color: $text-muted; }
    MemoryPanel > #mem-note { height: auto; color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        yield Gauge("GPU mem", id="mem-gauge", classes="mem-line")
        yield Static("", id="mem-procs")
        yield StatTile("GPU util", id="mem-util", label_width=11, classes="mem-line")
        yield StatTile("temp/power", id="mem-thermal", label_width=11, classes="mem-line")
        yield Static("", id="mem-note")

    def show(self, view: GpuView) -> None:
        gauge = self.query_one("#mem-gauge", Gauge)
        procs = self.query_one("#mem-procs", Static)
        note = self.query_one("#mem-note", Static)
        if not view.available:
            gauge.label = "GPU mem"
            gauge.set(None, "no GPU")
            procs.update("")
            self.query_one("#mem-util", StatTile).set(None)
            self.query_one("#mem-thermal", StatTile).set(None)
            note.update(view.reason or "no NVIDIA GPU visible (NVML unavailable)")
            return
        if view.unified:
            gauge.label = "host pool"
            frac = _frac(view.host_used, view.host_total)
            cached = f", cache {gib(view.host_cached)}" if view.host_cached is not None else ""
            gauge.set(frac, f"{gib(view.host_used)}/{gib(view.host_total)} GiB{cached}")
            lines = ["GPU allocations (per process, unified memory):"]
            if view.processes:
                lines += [
                    f"  {p.pid:>7} {p.name[:18]:<18} {gib(p.used_bytes)} GiB"
                    for p in view.processes
                ]
            else:
                lines.append("  none")
            procs.update("\n".join(lines))
        else:
            gauge.label = "GPU mem"
            frac = _frac(view.mem_used, view.mem_total)
            gauge.set(frac, f"{gib(view.mem_used)}/{gib(view.mem_total)} GiB")
            procs.update("")
        self.query_one("#mem-util", StatTile).set(
            None if view.util_pct is None else f"{view.util_pct:.0f} %"
        )
        temp = "–" if view.temp_c is None else f"{view.temp_c:.0f} °C"
        power = "–" if view.power_w is None else f"{view.power_w:.0f} W"
        if view.power_w is not None and view.power_limit_w:
            power += f" / {view.power_limit_w:.0f} W"
        self.query_one("#mem-thermal", StatTile).set(f"{temp}  {power}")
        bits = [view.name] if view.name else []
        if view.unified:
            bits.append("unified memory: host pool shared by CPU and GPU")
        if view.age_s is not None and view.age_s > 5:
            bits.append(f"stale: {view.age_s:.0f} s old")
        note.update(" · ".join(bits))


def _frac(used: float | None, total: float | None) -> float | None:
    if used is None or not total:
        return None
    return used / total
