"""A fleet of vLLM servers: which ones, how to find them, one poll loop each.

Users outgrow one server: a baseline next to an MTP server, several models on
one host, a second box. The fleet is every server named with ``--url`` (more
than once), found by ``--discover HOST:PORT-PORT`` (a port range probed for
vLLM, as vllm-htop's ``--auto`` does), and every profile whose server the
console started and that is still running.

Headless: ``monitor`` prints the fleet as ``{"servers": [...]}`` or a table,
the TUI's fleet view (``console/screens/fleet.py``) shows the same rows. Each
server has its own :class:`console.sampler.MetricsSampler` (a thread, polls
that never overlap, a deadline each), so a slow or dead server only makes its
own row stale: the others keep updating.
A row is derived from the same report object ``monitor`` prints for one
server (:func:`row_from_report`), so the table and the JSON cannot disagree.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from console.sanitize import clean_line

if TYPE_CHECKING:
    from console.sampler import MetricsSampler, Tick
    from console.server_client import ServerClient

PROBE_CONCURRENCY = 32
"""Ports probed at once by ``--discover``."""
PROBE_TIMEOUT_S = 1.0
"""Whole-request deadline of one probe (a closed loopback port answers at once)."""
PROBE_CONNECT_S = 0.3
PROBE_MAX_BYTES = 64 * 1024
MAX_PORTS = 4096
"""The largest range ``--discover`` accepts (a typo like 1-65535 would take minutes)."""
POLL_S = 1.0
POLL_TIMEOUT_S = 5.0
"""Deadline of one poll of one server (scrape + server info)."""


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """One server of the fleet: its base URL and where we learnt of it."""

    url: str
    name: str | None = None
    """The profile's name for a profile's server; None for a bare URL."""
    source: str = "url"
    """``url`` (``--url``), ``discover`` (found by a probe) or ``profile``."""

    @property
    def label(self) -> str:
        """Short text for a table: the profile name, else ``host:port``."""
        return self.name or self.url.split("://", 1)[-1]


@dataclass(frozen=True)
class PortRange:
    """``--discover HOST:FIRST-LAST``."""

    host: str
    first: int
    last: int

    @property
    def urls(self) -> list[str]:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return [f"http://{host}:{port}" for port in range(self.first, self.last + 1)]

    def __str__(self) -> str:
        return f"{self.host}:{self.first}-{self.last}"


_RANGE = re.compile(r"^(?P<host>\[[^\]]+\]|[^:\s]+):(?P<first>\d+)(?:-(?P<last>\d+))?$")


def parse_port_range(text: str) -> PortRange:
    """argparse type for ``--discover``: ``HOST:PORT-PORT`` (or ``HOST:PORT``)."""
    m = _RANGE.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST:PORT-PORT, e.g. 127.0.0.1:8000-8010"
        )
    first = int(m["first"])
    last = int(m["last"] or first)
    if not (1 <= first <= 65535 and 1 <= last <= 65535):
        raise argparse.ArgumentTypeError(f"{text!r}: ports are 1-65535")
    if last < first:
        raise argparse.ArgumentTypeError(f"{text!r}: the range ends before it starts")
    if last - first + 1 > MAX_PORTS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is {last - first + 1} ports; probe at most {MAX_PORTS} at once"
        )
    return PortRange(m["host"].strip("[]"), first, last)


def unique(targets: Iterable[Target]) -> list[Target]:
    """Targets in order, one per URL (a named one wins over a bare URL)."""
    out: dict[str, Target] = {}
    for t in targets:
        have = out.get(t.url)
        if have is None or (have.name is None and t.name is not None):
            out[t.url] = t if have is None else Target(t.url, t.name, have.source)
    return list(out.values())


async def probe(client: ServerClient, *, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when the client's server is vLLM: ``/version`` answers JSON with a
    version and ``/v1/models`` answers (200, or 401 when it wants an API key)."""
    from console import server_client as SC

    limits = SC.Limits(
        deadline_s=timeout, max_bytes=PROBE_MAX_BYTES, connect_s=min(PROBE_CONNECT_S, timeout)
    )
    try:
        version = await client.get("/version", limits)
        if version.status != 200:
            return False
        data = version.json()
        if not (isinstance(data, dict) and isinstance(data.get("version"), str)):
            return False
        models = await client.get("/v1/models", limits)
        return models.status in (200, 401)
    except SC.ServerError:  # refused, too slow, too large, not JSON: not a server we can watch
        return False


async def discover(
    ranges: Sequence[PortRange],
    *,
    concurrency: int = PROBE_CONCURRENCY,
    timeout: float = PROBE_TIMEOUT_S,
    api_key: str | None = None,
) -> list[Target]:
    """Probe every port of ``ranges``, at most ``concurrency`` at once, each request
    within ``timeout``; the vLLM servers found, in port order."""
    import httpx

    from console.server_client import ServerClient

    urls = [u for r in ranges for u in r.urls]
    gate = asyncio.Semaphore(concurrency)
    pool = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=pool) as http:

        async def one(url: str) -> bool:
            async with gate:
                return await probe(ServerClient(url, api_key=api_key, http=http), timeout=timeout)

        found = await asyncio.gather(*(one(u) for u in urls))
    return [Target(u, source="discover") for u, ok in zip(urls, found, strict=True) if ok]


def running_profile_targets() -> tuple[list[Target], list[str]]:
    """Servers of profiles the console started that run now (local and Docker), and
    notes on what could not be asked (an engine that is down). Blocking: call it in
    a thread."""
    from console.errors import ConsoleError
    from console.runtime.base import ServerState

    live = (ServerState.READY, ServerState.STARTING)
    targets: list[Target] = []
    notes: list[str] = []
    try:
        from console.runtime.local import LocalRuntime

        statuses = list(LocalRuntime().servers())
    except Exception as exc:  # a broken state file must not hide the rest
        statuses = []
        notes.append(f"local servers not listed: {exc}")
    try:
        from console.runtime.docker import DockerRuntime

        statuses += DockerRuntime().servers()
    except ConsoleError as exc:
        notes.append(f"Docker servers not listed: {exc.message}")
    except ImportError:
        pass
    for status in statuses:
        if status.state in live and status.url:
            targets.append(Target(status.url.rstrip("/"), name=status.profile, source="profile"))
    return targets, notes


@dataclass(frozen=True)
class FleetSpec:
    """What the user asked the fleet to hold (resolved by :func:`resolve_spec`)."""

    urls: tuple[str, ...] = ()
    ranges: tuple[PortRange, ...] = ()
    profiles: bool = True
    """Add the servers of running profiles."""


async def resolve_spec(
    spec: FleetSpec, *, api_key: str | None = None
) -> tuple[list[Target], list[str]]:
    """The targets of ``spec`` (URLs, probe finds, running profiles) and notes on
    what could not be asked."""
    targets = [Target(u) for u in spec.urls]
    notes: list[str] = []
    if spec.ranges:
        found = await discover(spec.ranges, api_key=api_key)
        ranges = ", ".join(str(r) for r in spec.ranges)
        notes.append(f"discover {ranges}: {len(found)} vLLM server(s)")
        targets += found
    if spec.profiles:
        running, why = await asyncio.to_thread(running_profile_targets)
        targets += running
        notes += why
    return unique(targets), notes


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class FleetRow:
    """What the fleet table shows for one server."""

    target: Target
    state: str
    """``connecting`` (no answer yet), ``up``, ``down`` or ``stale`` (no fresh figures)."""
    model: str | None = None
    version: str | None = None
    gen_tps: float | None = None
    """Generation tokens/s over the window (``window_s``)."""
    window_s: float | None = None
    kv_usage: float | None = None
    """KV cache in use, fraction 0-1."""
    mean_acceptance_length: float | None = None
    mal_scope: str | None = None
    """``window``, ``lifetime`` (no drafts in the window) or None (spec decode off)."""
    spec_k: int | None = None
    running: int | None = None
    waiting: int | None = None
    error: str | None = None
    polls: int = 0
    updated_at: float = field(default_factory=time.time)


def row_from_report(target: Target, report: dict[str, Any], *, polls: int = 0) -> FleetRow:
    """A row from ``monitor``'s single-server report object."""
    server = report.get("server") or {}
    requests = report.get("requests") or {}
    kv = report.get("kv_cache") or {}
    tput = report.get("throughput") or {}
    spec = report.get("spec_decode")
    mal = scope = k = None
    if spec:
        k = spec.get("num_speculative_tokens")
        window = spec.get("window") or {}
        if window.get("drafts"):
            mal, scope = window.get("mean_acceptance_length"), "window"
        else:
            mal, scope = (spec.get("lifetime") or {}).get("mean_acceptance_length"), "lifetime"
    has_figures = report.get("requests") is not None
    state = ("stale" if report.get("stale") else "up") if report.get("ok") else "down"
    return FleetRow(
        target=target,
        state=state,
        model=server.get("model"),
        version=server.get("version"),
        gen_tps=tput.get("generation_tokens_per_s") if has_figures else None,
        window_s=report.get("window_s"),
        kv_usage=kv.get("usage"),
        mean_acceptance_length=mal,
        mal_scope=scope,
        spec_k=k,
        running=requests.get("running"),
        waiting=requests.get("waiting"),
        error=report.get("error"),
        polls=polls,
        updated_at=report.get("timestamp") or time.time(),
    )


COLUMNS = ("server", "model", "state", "tok/s", "KV %", "acc len", "run/wait", "vLLM")
"""The fleet table's columns (TUI and ``monitor`` text)."""


def _f(value: float | None, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def row_cells(row: FleetRow) -> tuple[str, ...]:
    """The row as table cells; every server-supplied text passes the sanitiser."""
    if row.mal_scope is None:
        mal = "off" if row.state in ("up", "stale") else "–"
    else:
        mal = _f(row.mean_acceptance_length, "{:.2f}")
        if row.mal_scope == "lifetime" and row.mean_acceptance_length is not None:
            mal += "*"  # no drafts in the window: since start
    run_wait = (
        "–"
        if row.running is None
        else f"{row.running}/{'–' if row.waiting is None else row.waiting}"
    )
    state = row.state.upper() if row.state == "down" else row.state
    return (
        clean_line(row.target.label),
        clean_line(row.model or "–"),
        state,
        _f(row.gen_tps, "{:,.1f}"),
        _f(None if row.kv_usage is None else row.kv_usage * 100, "{:.1f}"),
        mal,
        run_wait,
        clean_line(row.version or "–"),
    )


LEGEND = (
    "tok/s: generated, over the last window; acc len: mean acceptance length "
    "(* since start: no drafts in the window)"
)


def render_table(rows: Sequence[FleetRow]) -> str:
    """Plain-text fleet table (``monitor`` with several servers), errors below it."""
    cells = [COLUMNS, *(row_cells(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(COLUMNS))).rstrip() for c in cells]
    for r in rows:
        if r.state == "down" and r.error:
            lines.append(f"  {clean_line(r.target.label)}: {clean_line(r.error)}")
    lines.append(LEGEND)
    return "\n".join(lines)


# --------------------------------------------------------------------------- polling


def report_from_tick(url: str, tick: Tick) -> dict[str, Any]:
    """``monitor``'s single-server report of one sampler poll: the figures over the
    sampler's window (up to 60 s), ``ok: false`` with the error when it failed."""
    from console.monitor_report import build_report

    return build_report(url, figures=tick.window, server=tick.info, gpu=None, error=tick.error)


def row_from_tick(target: Target, tick: Tick) -> FleetRow:
    """A row from one poll of the server's :class:`console.sampler.MetricsSampler`."""
    return row_from_report(target, report_from_tick(target.url, tick), polls=tick.number)


def start_samplers(
    targets: Sequence[Target],
    on_row: Callable[[FleetRow], None],
    *,
    api_key: str | None = None,
    poll_s: float = POLL_S,
    timeout_s: float = POLL_TIMEOUT_S,
) -> dict[str, MetricsSampler]:
    """One running sampler per server, each in its own thread with its own
    deadline: a slow or dead server holds up only its own rows. ``on_row`` is
    called (in that sampler's thread) after every poll. Stop them when done."""
    from console.sampler import MetricsSampler

    samplers: dict[str, MetricsSampler] = {}
    for target in targets:
        sampler = MetricsSampler(target.url, api_key=api_key, poll_s=poll_s, timeout_s=timeout_s)
        sampler.subscribe(lambda tick, t=target: on_row(row_from_tick(t, tick)))
        samplers[target.url] = sampler.start()
    return samplers


def stop_samplers(samplers: dict[str, MetricsSampler]) -> None:
    """Stop every sampler without waiting on a poll in flight (it has a deadline)."""
    for sampler in samplers.values():
        sampler.stop(timeout=0)


# --------------------------------------------------------------------------- monitor --once


def collect_fleet_once(
    targets: Sequence[Target], *, interval: float, collect: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    """``{"servers": [report, ...]}``: every server's single-server report, taken at
    the same time in threads (a dead or slow one does not delay the others' scrapes)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(targets)))) as pool:
        futures = [pool.submit(collect, t.url, interval=interval) for t in targets]
        return {"servers": [f.result() for f in futures]}
