"""The fleet view: one row per vLLM server, Enter opens its dashboard.

The servers are the session's fleet (``--url`` more than once, ``--discover``)
plus every running profile's server. Each server has its own running
:class:`console.sampler.MetricsSampler` (its own thread, its own deadline), so
a server that answers slowly, or not at all, holds up only its own row; the
others keep updating. The drill-down dashboard follows that same sampler, so
its chart starts with the history the fleet already has.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from console.fleet import (
    COLUMNS,
    LEGEND,
    POLL_S,
    POLL_TIMEOUT_S,
    FleetRow,
    FleetSpec,
    Target,
    resolve_spec,
    row_cells,
    start_samplers,
    stop_samplers,
)
from console.sanitize import clean_line
from console.screens.base import ForwardWorkerErrors
from console.screens.dashboard import DashboardScreen

if TYPE_CHECKING:
    from console.sampler import MetricsSampler


class FleetRowUpdated(Message):
    """One poll of one server finished."""

    def __init__(self, row: FleetRow) -> None:
        super().__init__()
        self.row = row


class FleetTargetsFound(Message):
    """The fleet's servers are known (URLs, probe finds, running profiles)."""

    def __init__(self, targets: list[Target], notes: list[str]) -> None:
        super().__init__()
        self.targets = targets
        self.notes = notes


class FleetServerDashboard(DashboardScreen, ForwardWorkerErrors):
    """Today's single-server dashboard, following one fleet server's sampler; Esc
    goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back to fleet")]

    def action_back(self) -> None:
        self.dismiss()


class FleetScreen(ForwardWorkerErrors, Screen):
    """Every server of the fleet, live."""

    DEFAULT_CSS = """
    FleetScreen #fleet-status { height: 1; padding: 0 1; background: $boost; }
    FleetScreen #fleet-table { height: 1fr; }
    FleetScreen #fleet-legend { height: auto; padding: 0 1; color: $text-muted; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open dashboard", show=True, priority=False),
        Binding("escape", "back", "Back"),
        Binding("d", "rediscover", "Find again"),
    ]

    def __init__(
        self,
        spec: FleetSpec | None = None,
        *,
        poll_s: float = POLL_S,
        timeout_s: float = POLL_TIMEOUT_S,
        live: bool = True,
    ) -> None:
        super().__init__()
        self.spec = spec
        """None: the session's fleet (read when the view first shows)."""
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.live = live
        self.rows: dict[str, FleetRow] = {}
        """The last row of each server, by URL (tests read it)."""
        self.targets: list[Target] = []
        self.notes: list[str] = []
        self.samplers: dict[str, MetricsSampler] = {}
        """One running sampler per server, by URL."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("finding the fleet's servers…", id="fleet-status")
        table: DataTable[str] = DataTable(id="fleet-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(LEGEND, id="fleet-legend")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name in COLUMNS:
            table.add_column(name, key=name)
        if self.live:
            self.find_servers()

    def on_unmount(self) -> None:
        stop_samplers(self.samplers)

    # -- workers -------------------------------------------------------------

    def _spec(self) -> FleetSpec:
        if self.spec is not None:
            return self.spec
        session = getattr(self.app, "session", None)
        return getattr(session, "fleet", None) or FleetSpec(
            urls=(session.url,) if session is not None else ()
        )

    @work(exclusive=True, group="fleet-find", exit_on_error=False, description="fleet")
    async def find_servers(self) -> None:
        """The URLs at once; then what the probes and the runtimes' state add."""
        spec = self._spec()
        self.post_message(FleetTargetsFound([Target(u) for u in spec.urls], []))
        targets, notes = await resolve_spec(spec, api_key=self._api_key())
        self.post_message(FleetTargetsFound(targets, notes))

    def _api_key(self) -> str | None:
        session = getattr(self.app, "session", None)
        return getattr(session, "api_key", None)

    def _start_polls(self, targets: list[Target]) -> None:
        """One sampler per server: their polls never wait on one another."""
        started = start_samplers(
            targets,
            lambda row: self.post_message(FleetRowUpdated(row)),
            api_key=self._api_key(),
            poll_s=self.poll_s,
            timeout_s=self.timeout_s,
        )
        session = getattr(self.app, "session", None)
        if session is not None:  # every fleet server's polls go to the history file
            for sampler in started.values():
                session.record(sampler)
        self.samplers.update(started)

    # -- handlers ------------------------------------------------------------

    @on(FleetTargetsFound)
    def _found(self, event: FleetTargetsFound) -> None:
        table = self.query_one(DataTable)
        new = [t for t in event.targets if t.url not in self.rows]
        for target in new:
            row = FleetRow(target=target, state="connecting")
            self.rows[target.url] = row
            self.targets.append(target)
            table.add_row(*row_cells(row), key=target.url)
        for target in event.targets:
            if target.name and self.rows[target.url].target.name is None:
                # A bare URL turned out to be a running profile's server: name it.
                self.targets = [target if t.url == target.url else t for t in self.targets]
                self._show(dataclasses.replace(self.rows[target.url], target=target))
        if event.notes:
            self.notes = event.notes
        self._status()
        if new and self.live:
            self._start_polls(new)

    @on(FleetRowUpdated)
    def _updated(self, event: FleetRowUpdated) -> None:
        url = event.row.target.url
        if url in self.rows:
            # The target as this view knows it (a name may have come later).
            self._show(dataclasses.replace(event.row, target=self.rows[url].target))

    def _show(self, row: FleetRow) -> None:
        """Store ``row`` and repaint only the cells that changed."""
        url = row.target.url
        old = row_cells(self.rows[url])
        self.rows[url] = row
        table = self.query_one(DataTable)
        for name, before, after in zip(COLUMNS, old, row_cells(row), strict=True):
            if before != after:
                table.update_cell(url, name, after, update_width=True)
        self._status()

    def _status(self) -> None:
        rows = list(self.rows.values())
        up = sum(r.state in ("up", "stale") for r in rows)
        down = sum(r.state == "down" for r in rows)
        text = f"fleet: {len(rows)} servers · {up} up · {down} down · Enter: dashboard"
        if not rows:
            text = "fleet: no servers (give --url, --discover HOST:PORT-PORT, or start a profile)"
        if self.notes:
            text += " · " + clean_line("; ".join(self.notes))
        self.query_one("#fleet-status", Static).update(text)

    # -- actions -------------------------------------------------------------

    def selected_url(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.targets or table.cursor_row < 0:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key
        return str(key.value) if key.value is not None else None

    def action_open(self) -> None:
        url = self.selected_url()
        sampler = self.samplers.get(url) if url is not None else None
        if sampler is not None:
            self.app.push_screen(FleetServerDashboard(sampler=sampler))

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.dismiss()

    def action_rediscover(self) -> None:
        """Probe and ask the runtimes again; new servers are added, none removed."""
        self.query_one("#fleet-status", Static).update("finding the fleet's servers…")
        self.find_servers()
