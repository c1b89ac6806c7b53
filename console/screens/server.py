"""The server screen: start, stop, restart or re-attach to the active
profile's server and watch it come up.

Every runtime call blocks (Docker SDK, subprocesses), so each runs in a thread
worker; log lines go straight into the thread-safe :class:`LogView` buffer and
only the typed events from :mod:`console.logs` travel as messages. Start-up
phases are driven by those events, so they work the same for a server started
here and for one re-attached to (its log is replayed from the start).

Attached by ``--url`` without a profile, the screen can only watch: status
comes from ``/health``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual.worker import get_current_worker

from console import logs as L
from console.errors import ConsoleError
from console.runtime.base import ServerState, ServerStatus
from console.runtime.provenance import provenance_lines
from console.sanitize import clean, clean_line
from console.screens.base import session_of
from console.screens.messages import (
    ActiveProfileChanged,
    ServerAction,
    ServerActionRequested,
    ServerStatusChanged,
)
from console.server_client import check_health
from console.widgets.cluster_panel import ClusterPanel
from console.widgets.log_view import LogView
from console.widgets.startup_progress import Phase, StartupProgress

if TYPE_CHECKING:
    from console.profiles.schema import Profile
    from console.runtime.ray_state import ClusterView

CLUSTER_POLL_S = 5.0
"""Seconds between cluster probes (one Ray probe takes seconds on a loaded box)."""

STATE_STYLE = {
    ServerState.READY: "bold green",
    ServerState.STARTING: "bold yellow",
    ServerState.FAILED: "bold red",
    ServerState.STOPPED: "dim",
    ServerState.ABSENT: "dim",
    ServerState.STALE: "bold magenta",
    ServerState.UNKNOWN: "bold red",
}


class StatusReported(Message):
    """A runtime (or /health) answered: the server's status now."""

    def __init__(self, status: ServerStatus) -> None:
        super().__init__()
        self.status = status


class ClusterPolled(Message):
    """The cluster's nodes and the server's status, read together in a worker."""

    def __init__(self, profile: str, view: ClusterView | None, status: ServerStatus) -> None:
        super().__init__()
        self.profile = profile
        self.view = view
        self.status = status


class LogEvents(Message):
    """Typed events parsed from server log lines (in a worker thread)."""

    def __init__(self, events: list[L.LogEvent]) -> None:
        super().__init__()
        self.events = events


def enforce_eager(profile: Profile | None) -> bool:
    """True when the profile disables CUDA graphs (the graphs phase is skipped)."""
    if profile is None:
        return False
    return bool(profile.serve.engine_args.get("enforce-eager")) or bool(
        profile.serve.engine_args.get("enforce_eager")
    )


def image_summary(profile: Profile | None, status: ServerStatus | None) -> str:
    """Which image/build the server runs: provenance labels when the container has them."""
    if status is not None and status.image:
        lines = provenance_lines(status.image)
        if lines:
            return (
                "image "
                + (profile.image.run_image if profile and profile.image else "")
                + "\n"
                + ("\n".join(lines))
            )
    if profile is None:
        return "attached by URL: no log, so earlier phases and the image are unknown"
    if profile.runtime == "docker" and profile.image is not None:
        ref = f", vLLM {profile.image.vllm_ref}" if profile.image.vllm_ref else ""
        if not profile.image.needs_build:
            return f"image: {profile.image.base} (stock{ref})"
        return f"image: {profile.image.tag} (from {profile.image.base}{ref})"
    local = profile.serve.local
    where = local.vllm or local.python or (f"runtime {local.runtime}" if local.runtime else "PATH")
    model = f", model {local.managed_model}" if local.managed_model else ""
    return f"local process: {where}{model}"


class ServerScreen(Screen):
    """The active profile's server: lifecycle, start-up progress and log."""

    DEFAULT_CSS = """
    ServerScreen #srv-status { height: auto; padding: 0 1; background: $boost; }
    ServerScreen #srv-body { height: 1fr; }
    ServerScreen #srv-side {
        height: auto;
        border: round $primary 50%;
        border-title-color: $text-accent;
        padding: 0 1;
    }
    ServerScreen #srv-log {
        border: round $primary 50%;
        border-title-color: $text-accent;
        height: 1fr;
    }
    ServerScreen.-narrow #srv-body { layout: vertical; }
    ServerScreen.-wide #srv-body { layout: horizontal; }
    ServerScreen.-wide #srv-side { width: 48; height: 1fr; }
    ServerScreen #srv-image { color: $text-muted; height: auto; }
    ServerScreen #srv-failure { color: $error; height: auto; }
    ServerScreen #srv-failure.-empty { display: none; }
    ServerScreen #srv-cluster.-empty { display: none; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "server('start')", "Start"),
        Binding("x", "server('stop')", "Stop"),
        Binding("r", "server('restart')", "Restart"),
        Binding("a", "attach", "Re-attach"),
        # Named in the log's status line ("… GET /metrics hidden · m"), not the footer.
        Binding("m", "metrics_polls", "/metrics lines", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.status: ServerStatus | None = None
        self.busy: str | None = None
        """The lifecycle action running now (start/stop/restart), if any."""
        self.events: list[L.LogEvent] = []
        """Every typed event seen in this log (tests and the summary read it)."""
        self.cluster_view: ClusterView | None = None
        self._cluster_polling = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="srv-status")
        with Horizontal(id="srv-body"):
            with Vertical(id="srv-side") as side:
                side.border_title = "Start-up"
                yield StartupProgress(id="srv-phases")
                yield Static("", id="srv-image")
                yield ClusterPanel(id="srv-cluster", classes="-empty")
                yield Static("", id="srv-failure", classes="-empty")
            log = LogView(
                id="srv-log",
                max_lines=50_000,
                hide=L.METRICS_POLL,
                hide_what="GET /metrics",
                hide_key="m",
            )
            log.border_title = "Server log"
            yield log
        yield Footer()

    def on_mount(self) -> None:
        self._render_status()
        self.action_attach()
        self._show_cluster_panel()
        self.set_interval(CLUSTER_POLL_S, self._tick_cluster)
        self._tick_cluster()

    # -- cluster (multi-node profiles) -------------------------------------------------

    def _show_cluster_panel(self) -> None:
        profile = self.profile
        panel = self.query_one(ClusterPanel)
        panel.set_class(profile is None or profile.cluster is None, "-empty")
        if profile is not None and profile.cluster is not None and panel.view is None:
            panel.show(None, checking=True)

    def _tick_cluster(self) -> None:
        """Start a probe unless one is still running (polls never overlap)."""
        profile = self.profile
        if profile is None or profile.cluster is None or self._cluster_polling:
            return
        self._cluster_polling = True
        self._poll_cluster(profile)

    @work(thread=True, group="cluster-poll", exit_on_error=False)
    def _poll_cluster(self, profile: Profile) -> None:
        from console.runtime.cluster_view import poll

        status, view = poll(profile)
        self.post_message(ClusterPolled(profile.name, view, status))

    @on(ClusterPolled)
    def _cluster_polled(self, message: ClusterPolled) -> None:
        self._cluster_polling = False
        profile = self.profile
        if profile is None or profile.name != message.profile:
            return
        self.cluster_view = message.view
        self.query_one(ClusterPanel).show(message.view)
        old = self.status
        new = message.status
        if (
            self.busy is None
            and (old is None or (old.state, old.detail) != (new.state, new.detail))
            and not (
                old is not None
                and new.state == ServerState.ABSENT
                and old.state in (ServerState.STOPPED, ServerState.FAILED)
            )
        ):
            self.post_message(StatusReported(new))

    # -- session ---------------------------------------------------------------

    @property
    def profile(self) -> Profile | None:
        return session_of(self).profile

    @property
    def url(self) -> str:
        return session_of(self).url

    # -- actions ---------------------------------------------------------------

    def action_server(self, action: ServerAction) -> None:
        if self.profile is None:
            self.notify(
                "no active profile: pick one on the profiles screen (4) to start or stop a server",
                severity="warning",
            )
            return
        if self.busy:
            self.notify(f"{self.busy} is still running", severity="warning")
            return
        self.busy = action
        self.workers.cancel_group(self, "server-follow")
        if action in ("start", "restart"):
            self._reset_log()
        self._lifecycle(action)
        self._render_status()

    def action_metrics_polls(self) -> None:
        """Show or hide the access-log lines of ``/metrics`` polls (the console's own)."""
        shown = self.query_one(LogView).toggle_hidden()
        self.notify("GET /metrics lines shown" if shown else "GET /metrics lines hidden")

    @on(ServerActionRequested)
    def _requested(self, request: ServerActionRequested) -> None:
        self.action_server(request.action)

    def action_attach(self) -> None:
        """Ask the runtime for the status now and follow the log of a running server."""
        if self.busy:
            return
        self._reset_log()
        if self.profile is None:
            self._probe_url()
        else:
            self._attach_runtime()

    @on(ActiveProfileChanged)
    def _profile_changed(self, _: ActiveProfileChanged) -> None:
        self.workers.cancel_group(self, "server-follow")
        self.status = None
        self.action_attach()
        self.query_one(ClusterPanel).show(None)
        self._show_cluster_panel()
        self._tick_cluster()

    def _reset_log(self) -> None:
        self.events = []
        self.query_one(LogView).clear()
        phases = self.query_one(StartupProgress)
        phases.reset()
        if enforce_eager(self.profile):
            phases.mark("graphs", Phase.SKIPPED, "skipped: --enforce-eager")
        self._show_failure("")

    # -- workers ---------------------------------------------------------------

    def _feed(self, parser: L.LogParser, line: str) -> None:
        """Called in worker threads for each log line."""
        self.query_one(LogView).push(line)
        events = parser.feed(line)
        if events:
            self.post_message(LogEvents(events))

    def _could_not(self, profile: Profile, what: str, exc: Exception) -> None:
        """A runtime error (Docker engine down, port taken): one line on screen and in a
        notice, and the status says so instead of staying at "checking…"/STARTING."""
        line = exc.message if isinstance(exc, ConsoleError) else f"{type(exc).__name__}: {exc}"
        line = " ".join(str(line).split())
        self.post_message(
            StatusReported(
                ServerStatus(profile.name, profile.runtime, ServerState.UNKNOWN, detail=line)
            )
        )
        self.app.call_from_thread(
            self.notify, line, title=f"could not {what} {profile.name}", severity="error"
        )

    @work(thread=True, exclusive=True, group="server-life", exit_on_error=False)
    def _lifecycle(self, action: ServerAction) -> None:
        profile = self.profile
        assert profile is not None
        try:
            self._run_action(action, profile)
        except Exception as exc:  # shown on the screen, never a crash or a raw worker name
            self._could_not(profile, action, exc)
        finally:
            self.app.call_from_thread(self._done_busy)

    def _run_action(self, action: ServerAction, profile: Profile) -> None:
        """Worker-thread body of ``_lifecycle``."""
        from console.runtime import runtime_for

        runtime = runtime_for(profile)
        if action in ("stop", "restart"):
            self.post_message(StatusReported(runtime.down(profile)))
        if action in ("start", "restart"):
            self.post_message(
                StatusReported(ServerStatus(profile.name, profile.runtime, ServerState.STARTING))
            )
            parser = L.LogParser()
            status = runtime.up(profile, on_line=lambda line: self._feed(parser, line))
            if flushed := parser.flush():
                self.post_message(LogEvents(flushed))
            self.post_message(StatusReported(status))

    def _done_busy(self) -> None:
        self.busy = None
        self._render_status()
        if self.status is not None and self.status.state == ServerState.READY:
            self._follow(skip=len(self.query_one(LogView).lines))

    @work(thread=True, exclusive=True, group="server-life", exit_on_error=False)
    def _attach_runtime(self) -> None:
        from console.runtime import runtime_for

        profile = self.profile
        assert profile is not None
        try:
            status = runtime_for(profile).status(profile)
        except Exception as exc:
            self._could_not(profile, "check", exc)
            return
        if status.state == ServerState.ABSENT:
            status = _someone_elses_server(status, profile.url, self.app)
        self.post_message(StatusReported(status))
        if status.state in (ServerState.READY, ServerState.STARTING, ServerState.FAILED):
            self.app.call_from_thread(self._follow, 0, status.state != ServerState.FAILED)

    @work(thread=True, exclusive=True, group="server-follow", exit_on_error=False)
    def _follow(self, skip: int = 0, follow: bool = True) -> None:
        """Replay the log from the start (skipping lines already shown), then follow."""
        from console.runtime import runtime_for

        profile = self.profile
        if profile is None:
            return
        worker = get_current_worker()
        parser = L.LogParser()
        runtime = runtime_for(profile)
        lines = runtime.logs(profile, follow=follow)
        try:
            for n, line in enumerate(lines):
                if worker.is_cancelled:
                    break
                if n < skip:
                    parser.feed(line)
                    continue
                self._feed(parser, line)
        finally:
            close = getattr(lines, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()
        if flushed := parser.flush():
            self.post_message(LogEvents(flushed))

    @work(exclusive=True, group="server-life", exit_on_error=False)
    async def _probe_url(self) -> None:
        """No profile: the server's state is whatever ``/health`` says."""
        url = self.url
        async with session_of(self).client() as client:
            health = await client.health()
        if health.ok:
            state, detail = ServerState.READY, ""
        elif health.answered:
            state, detail = ServerState.STARTING, health.detail
        else:
            state, detail = ServerState.ABSENT, health.detail
        self.post_message(
            StatusReported(ServerStatus("(url)", "attached", state, url, detail=detail))
        )

    # -- handlers ----------------------------------------------------------------

    @on(StatusReported)
    def _status(self, event: StatusReported) -> None:
        self.status = event.status
        if event.status.state == ServerState.READY:
            phases = self.query_one(StartupProgress)
            if phases.state_of("ready") != Phase.DONE:
                # Only the end is known from a status; earlier phases come from the log.
                phases.mark("ready", Phase.DONE, event.status.url or "", fill=False)
        elif event.status.state == ServerState.FAILED and event.status.detail:
            self._show_failure(event.status.detail)
        self._render_status()
        if event.status.runtime != "attached":
            self.post_message(ServerStatusChanged(event.status))

    @on(LogEvents)
    def _events(self, message: LogEvents) -> None:
        phases = self.query_one(StartupProgress)
        session = session_of(self)
        for ev in message.events:
            self.events.append(ev)
            # KV capacity from the log reaches the dashboard on servers whose /metrics lack it.
            session.note_log_event(ev)
            if message := apply_event(phases, ev):
                self._show_failure(message)

    def _show_failure(self, message: str) -> None:
        box = self.query_one("#srv-failure", Static)
        box.update(Text(f"✗ {clean(message)}") if message else "")
        box.set_class(not message, "-empty")

    # -- rendering -----------------------------------------------------------------

    def _render_status(self) -> None:
        profile = self.profile
        st = self.status
        text = Text()
        who = profile.name if profile else "no profile (attached by URL)"
        text.append(f"{who}", style="bold")
        if profile is not None:
            where = profile.runtime
            if profile.cluster is not None:
                where = f"{len(profile.cluster.nodes)} nodes, {profile.cluster.backend}"
            text.append(f" · {where}")
        if self.busy:
            text.append(f" · {self.busy}…", style="bold yellow")
        if st is None:
            text.append(" · checking…", style="dim")
        else:
            text.append(" · ")
            text.append(st.state.value.upper(), style=STATE_STYLE.get(st.state, ""))
            text.append(f" · {st.url or self.url}")
            if st.pid:
                text.append(f" · pid {st.pid}")
            if st.container_id:
                text.append(f" · container {st.container_id[:12]}")
            if st.state == ServerState.UNKNOWN:
                text.append(f" · {clean_line(st.detail)}", style="red")
            elif st.detail and st.state != ServerState.FAILED:
                text.append(f" · {clean_line(st.detail)}", style="dim")
            if st.log_path:
                text.append(f"\nlog file: {st.log_path}", style="dim")
        self.query_one("#srv-status", Static).update(text)
        self.query_one("#srv-image", Static).update(image_summary(profile, st))


def apply_event(phases: StartupProgress, ev: Any) -> str | None:
    """Move the start-up phases forward for one log event; a failure's message is returned."""
    if phases.state_of("process") == Phase.PENDING:
        phases.mark("process", Phase.DONE)
    if isinstance(ev, L.LoadingModel):
        phases.mark("weights", Phase.ACTIVE, ev.model)
    elif isinstance(ev, L.WeightsLoaded):
        phases.mark("weights", Phase.ACTIVE, f"{ev.seconds:.1f} s")
    elif isinstance(ev, L.ModelLoaded):
        phases.mark("weights", Phase.DONE, f"{ev.memory_gib:.2f} GiB in {ev.seconds:.1f} s")
        phases.mark("kv_cache", Phase.ACTIVE, "")
    elif isinstance(ev, L.KvCacheMemory):
        phases.mark("kv_cache", Phase.ACTIVE, f"{ev.gib:.2f} GiB")
    elif isinstance(ev, L.KvCacheSize):
        conc = f", {ev.max_concurrency:.1f}x" if ev.max_concurrency else ""
        phases.mark("kv_cache", Phase.DONE, f"{ev.tokens:,} tokens{conc}")
        if phases.state_of("graphs") == Phase.PENDING:
            phases.mark("graphs", Phase.ACTIVE, "")
    elif isinstance(ev, L.GraphCaptured):
        phases.mark("graphs", Phase.DONE, f"{ev.seconds:.0f} s, {ev.memory_gib:.2f} GiB")
    elif isinstance(ev, L.EngineInitialized):
        if phases.state_of("graphs") in (Phase.PENDING, Phase.ACTIVE):
            phases.mark("graphs", Phase.SKIPPED, "none captured")
        phases.mark("engine", Phase.DONE, f"{ev.seconds:.1f} s")
        phases.mark("ready", Phase.ACTIVE, "")
    elif isinstance(ev, L.Listening):
        phases.mark("ready", Phase.ACTIVE, ev.url)
    elif isinstance(ev, L.Ready):
        if phases.state_of("graphs") in (Phase.PENDING, Phase.ACTIVE):
            phases.mark("graphs", Phase.SKIPPED, "none captured")
        phases.mark("ready", Phase.DONE)
    elif isinstance(ev, L.Failure):
        from console.widgets.startup_progress import PHASES

        active = next(
            (k for k, _ in PHASES if phases.state_of(k) in (Phase.ACTIVE, Phase.PENDING)),
            None,
        )
        if active is not None and phases.state_of("ready") != Phase.DONE:
            phases.mark(active, Phase.FAILED, ev.cause)
        return ev.message
    return None


def _someone_elses_server(status: ServerStatus, url: str, app: object) -> ServerStatus:
    """A server the console did not start may still answer on the profile's
    address (started by hand, or by another tool): say so instead of ABSENT."""
    session = getattr(app, "session", None)
    if not check_health(url, api_key=getattr(session, "api_key", None)).ok:
        return status
    return dataclasses.replace(
        status,
        state=ServerState.READY,
        url=url,
        detail=f"answering at {url}, not started by this console (no log to follow)",
    )
