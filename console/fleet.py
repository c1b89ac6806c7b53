"""A fleet of vLLM servers: which ones, how to find them, one poll loop each.

Users outgrow one server: a baseline next to an MTP server, several models on
one host, a second box. The fleet is every server named with ``--url`` (more
than once), found by ``--discover HOST:PORT-PORT`` (a port range probed for
vLLM, as vllm-htop's ``--auto`` does), and every profile whose server the
console started and that is still running.

Headless: ``monitor`` prints the fleet as ``{"servers": [...]}`` or a table,
the TUI's fleet view (``console/screens/fleet.py``) shows the same rows. Each
server has its own poll loop (:class:`FleetPoller`), with its own deadline, so
a slow or dead server only makes its own row stale: the others keep updating.
A row is derived from the same report object ``monitor`` prints for one
server (:func:`row_from_report`), so the table and the JSON cannot disagree.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from console.sanitize import clean_line

if TYPE_CHECKING:
    import httpx

    from console import metrics as M

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
WINDOW_S = 60.0


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


async def probe(client: httpx.AsyncClient, url: str, *, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when ``url`` is a vLLM server: ``/version`` answers JSON with a version and
    ``/v1/models`` answers (200, or 401 when it wants an API key)."""
    try:
        version = await _get_capped(client, f"{url}/version", timeout)
        if version is None or version[0] != 200:
            return False
        data = _json(version[1])
        if not (isinstance(data, dict) and isinstance(data.get("version"), str)):
            return False
        models = await _get_capped(client, f"{url}/v1/models", timeout)
        return models is not None and models[0] in (200, 401)
    except Exception:  # any transport trouble: not a server we can watch
        return False


async def _get_capped(client: httpx.AsyncClient, url: str, timeout: float) -> tuple[int, bytes]:
    """(status, body) of a GET with a whole-request deadline and a size cap."""

    async def fetch() -> tuple[int, bytes]:
        async with client.stream("GET", url) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > PROBE_MAX_BYTES:
                    break
            return response.status_code, bytes(body[:PROBE_MAX_BYTES])

    return await asyncio.wait_for(fetch(), timeout)


def _json(body: bytes) -> Any:
    import json

    try:
        return json.loads(body)
    except ValueError:
        return None


async def discover(
    ranges: Sequence[PortRange],
    *,
    concurrency: int = PROBE_CONCURRENCY,
    timeout: float = PROBE_TIMEOUT_S,
    headers: dict[str, str] | None = None,
) -> list[Target]:
    """Probe every port of ``ranges``, at most ``concurrency`` at once; the vLLM
    servers found, in port order."""
    import httpx

    urls = [u for r in ranges for u in r.urls]
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    deadline = httpx.Timeout(timeout, connect=min(PROBE_CONNECT_S, timeout))
    async with httpx.AsyncClient(timeout=deadline, limits=limits, headers=headers) as client:

        async def one(url: str) -> bool:
            async with gate:
                return await probe(client, url, timeout=timeout)

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


async def resolve_spec(spec: FleetSpec) -> tuple[list[Target], list[str]]:
    """The targets of ``spec`` (URLs, probe finds, running profiles) and notes on
    what could not be asked."""
    targets = [Target(u) for u in spec.urls]
    notes: list[str] = []
    if spec.ranges:
        found = await discover(spec.ranges)
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


COLUMNS = ("server", "model", "state", "gen tok/s", "KV %", "accept len", "run/wait", "vLLM")
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
    "gen tok/s: over the last window; accept len: mean acceptance length "
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


class ServerPoll:
    """One poll of one server: a ``/metrics`` sample and, once, its version and model.

    The one place the fleet talks HTTP, behind a whole-poll deadline, so swapping
    in the shared client or sampler changes this class only."""

    def __init__(self, url: str, *, timeout: float = POLL_TIMEOUT_S) -> None:
        self.url = url
        self.timeout = timeout
        self.info: M.ServerInfo | None = None

    async def __call__(self, client: httpx.AsyncClient) -> M.MetricsSample:
        from console import metrics as M

        async def poll() -> M.MetricsSample:
            sample = await M.ascrape(client, self.url, timeout=self.timeout)
            if self.info is None:
                with contextlib.suppress(M.MetricsError):
                    self.info = await M.afetch_server_info(client, self.url, timeout=self.timeout)
            return sample

        try:
            return await asyncio.wait_for(poll(), self.timeout)
        except TimeoutError:
            raise M.MetricsError(
                f"{M.metrics_url(self.url)}: no answer within {self.timeout:.0f} s", url=self.url
            ) from None


class ServerWatch:
    """One server's poll loop state: its tracker, info and last row."""

    def __init__(self, target: Target, *, timeout: float = POLL_TIMEOUT_S) -> None:
        from console import metrics as M

        self.target = target
        self.poll = ServerPoll(target.url, timeout=timeout)
        self.tracker = M.MetricsTracker(window_s=WINDOW_S, stale_after_s=3 * timeout)
        self.polls = 0
        self.row = FleetRow(target=target, state="connecting")

    def report(self, error: Exception | None) -> dict[str, Any]:
        from console import metrics as M
        from console.commands.monitor import build_report

        figures = self.tracker.window()
        return build_report(
            self.target.url,
            figures=figures,
            server=self.poll.info if error is None else None,
            gpu=None,
            error=error if isinstance(error, M.MetricsError | None) else str(error),
        )

    async def step(self, client: httpx.AsyncClient) -> FleetRow:
        """One poll; the row it gives (down with the error when it failed)."""
        from console import metrics as M

        error: Exception | None = None
        try:
            self.tracker.feed(await self.poll(client))
        except M.MetricsError as exc:
            error = exc
            self.tracker.feed_error(exc)
            self.poll.info = None  # ask again when it is back (it may be another server)
        self.polls += 1
        self.row = row_from_report(self.target, self.report(error), polls=self.polls)
        return self.row


class FleetPoller:
    """One independent loop per server: a slow or dead one stalls only its own row.

    ``on_row`` is called after every poll of every server. Each loop waits
    ``interval`` after its own poll finished before the next (never overlaps)."""

    def __init__(
        self,
        targets: Sequence[Target],
        on_row: Callable[[FleetRow], None],
        *,
        interval: float = POLL_S,
        timeout: float = POLL_TIMEOUT_S,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.watches = [ServerWatch(t, timeout=timeout) for t in targets]
        self.on_row = on_row
        self.interval = interval
        self.headers = headers

    async def loop(
        self, watch: ServerWatch, *, gate: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        """Poll one server forever (cancel to stop); ``gate()`` is awaited before
        each poll (the TUI pauses while the fleet view is hidden)."""
        import httpx

        async with httpx.AsyncClient(headers=self.headers) as client:
            while True:
                if gate is not None:
                    await gate()
                self.on_row(await watch.step(client))
                await asyncio.sleep(self.interval)

    async def run(self) -> None:
        """Every server's loop at once (the CLI's live view)."""
        await asyncio.gather(*(self.loop(w) for w in self.watches))


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
