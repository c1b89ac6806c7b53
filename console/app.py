"""The Textual application: six screens as modes, keys 1-6, a command palette, help.

How screens work inside this shell (read this before writing a screen)
-----------------------------------------------------------------------

* **State.** ``self.app.session`` (a :class:`console.session.Session`) is the one
  answer to "which server, which profile": ``.url``, ``.headers()`` (the API
  key, never print it), ``.profile_name``, ``.profile`` (loaded ``Profile`` or
  None when attached by ``--url``). Read it when needed (e.g. in
  ``on_screen_resume``); do not copy it at mount time and keep it.
* **Workers.** Every slow call runs in a worker, never in a handler:
  ``@work(exclusive=True, group="...", exit_on_error=False)`` on an ``async def``
  for HTTP (httpx), ``thread=True`` for Docker, NVML and subprocesses (check
  ``get_current_worker().is_cancelled`` in loops). ``exit_on_error=False`` is
  required: the App's single ``Worker.StateChanged`` handler turns any worker
  error into a notice (``ConsoleError`` text as is, anything else with its
  type), so a failure never kills the console. Textual does not bubble
  ``Worker.StateChanged``: the App mixes ``screens.base.ForwardWorkerErrors``
  into every mode screen, so screen workers are covered; a widget running its
  own workers calls ``screens.base.forward_worker_error(self, event)`` from its
  ``@on(Worker.StateChanged)`` handler (or starts them on its screen). Raise ``ConsoleError`` with a
  message that names the URL/file and says what to do. Polls never overlap:
  schedule the next one when the previous finished (``set_timer``), not with
  ``set_interval``.
* **Results travel as messages.** A worker posts a message to its screen
  (``self.post_message(...)``, safe from threads; or ``self.app.call_from_thread``
  for a direct widget update) and the screen updates its widgets in the handler.
* **Requests between screens** are the messages in :mod:`console.screens.messages`.
  Post a request to the App (``self.app.post_message(ServerActionRequested("start"))``);
  the App switches to the owning screen and re-posts it there, so the owner
  handles it with ``@on(ServerActionRequested)``. The server screen posts
  ``ServerStatusChanged`` when a runtime reports a new status; every screen then
  gets ``ServerStatusBroadcast``. Profile changes arrive as ``ActiveProfileChanged``
  (post ``ProfileSwitchRequested(name)`` to ask for one).
* **Layout.** Every screen yields ``Header()`` first and ``Footer()`` last. The
  App sets ``-narrow`` (< 120 columns) or ``-wide`` on each screen
  (``HORIZONTAL_BREAKPOINTS``): design for 80x24 and use the extra space with
  ``Screen.-wide`` rules. Digits 1-6, ``?``, ``f1`` and ``ctrl+t`` are App
  bindings, so do not bind them in a screen. Digits type into a focused text
  field; the App's ``escape`` binding takes focus out of it (a screen may bind
  ``escape`` itself, it then goes first).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from console.errors import ConsoleError
from console.sanitize import clean, clean_line
from console.screens.base import with_worker_errors
from console.screens.messages import (
    ActiveProfileChanged,
    BenchRequested,
    BuildRequested,
    ChatRequested,
    ConsoleRequest,
    HistoryEventDetected,
    ProfileSwitchRequested,
    ServerActionRequested,
    ServerStatusBroadcast,
    ServerStatusChanged,
)
from console.session import Session, load_profile_by_name, profile_names

if TYPE_CHECKING:
    from console.history.live import SessionHistory
    from console.profiles.schema import Profile


class ScreenMode:
    """One mode: its name, title and screen class, the class imported on first use.

    Screen modules pull in their own libraries (plotext, markdown, pydantic, ...);
    importing all six up front tripled the time to the first frame, so only the
    screen actually shown is imported. Unpacks as ``(mode, title, cls)``.
    """

    __slots__ = ("class_name", "mode", "module", "title")

    def __init__(self, mode: str, title: str, module: str, class_name: str) -> None:
        self.mode = mode
        self.title = title
        self.module = module
        self.class_name = class_name

    @property
    def screen_class(self) -> type[Screen]:
        cls: type[Screen] = getattr(importlib.import_module(self.module), self.class_name)
        return cls

    def __iter__(self) -> Iterator[object]:
        return iter((self.mode, self.title, self.screen_class))

    def __repr__(self) -> str:
        return f"ScreenMode({self.mode!r}, {self.title!r}, {self.module}:{self.class_name})"


SCREEN_MODES: tuple[ScreenMode, ...] = (
    ScreenMode("dashboard", "Dashboard", "console.screens.dashboard", "DashboardScreen"),
    ScreenMode("server", "Server", "console.screens.server", "ServerScreen"),
    ScreenMode("chat", "Chat", "console.screens.chat", "ChatScreen"),
    ScreenMode("profiles", "Profiles", "console.screens.profiles", "ProfilesScreen"),
    ScreenMode("build", "Build", "console.screens.build", "BuildScreen"),
    ScreenMode("bench", "Bench", "console.screens.bench", "BenchScreen"),
)
"""The modes in the order of keys 1-6."""


def _is_help(screen: Screen) -> bool:
    """Whether the help screen is showing, without importing it (it is lazy too)."""
    help_module = sys.modules.get("console.screens.help")
    return help_module is not None and isinstance(screen, help_module.HelpScreen)


_SCREENS_GROUP = Binding.Group("Screens", compact=True)


def error_text(error: BaseException | None) -> str:
    """What a notice says about a failed worker: ours verbatim, others with their type."""
    if error is None:
        return "unknown error"
    if isinstance(error, ConsoleError):
        return str(error)
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def worker_title(name: str, description: str) -> str:
    """A notice title for a failed worker that a person can read: its name when it has
    one, else its method's name in words (``_lifecycle('start')`` -> "lifecycle
    (start) failed"), never the raw call."""
    if name:
        return f"{name} failed"
    call = description.strip()
    method, _, args = call.partition("(")
    words = method.strip("_").replace("_", " ") or "a background task"
    args = args.rstrip(")").replace("'", "").replace('"', "").strip()
    return f"{words} ({args}) failed" if args and len(args) <= 30 else f"{words} failed"


class SamplingReady(Message):
    """The sampler is imported and the session's history open (None: it could not
    be): sampling may start."""

    def __init__(self, history: SessionHistory | None) -> None:
        super().__init__()
        self.history = history


class ConsoleCommands(Provider):
    """Command palette entries for the console's own actions."""

    async def startup(self) -> None:
        self._profiles = await asyncio.to_thread(profile_names)

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self.app
        assert isinstance(app, ConsoleApp)
        post = app.post_message
        commands: list[tuple[str, str, Callable[[], object]]] = [
            (
                f"Open {m.title}",
                f"Show the {m.title.lower()} screen (key {i})",
                partial(app.run_action, f"show_mode('{m.mode}')"),
            )
            for i, m in enumerate(SCREEN_MODES, start=1)
        ]
        commands += [
            (
                "Start server",
                "Start the active profile's server",
                partial(post, ServerActionRequested("start")),
            ),
            (
                "Stop server",
                "Stop the active profile's server",
                partial(post, ServerActionRequested("stop")),
            ),
            (
                "Restart server",
                "Restart the active profile's server",
                partial(post, ServerActionRequested("restart")),
            ),
            (
                "Open fleet",
                "Every server: --url, --discover and running profiles (key f on the dashboard)",
                partial(app.run_action, "fleet"),
            ),
            ("Build image", "Build the active profile's image", partial(post, BuildRequested())),
            ("Open chat", "Chat with the served model", partial(post, ChatRequested())),
            ("Run bench", "Benchmark speculative decoding", partial(post, BenchRequested())),
            ("Toggle light/dark theme", "Switch between light and dark", app.action_toggle_theme),
            ("Help", "Keys and spec-decode formulas", app.action_help),
        ]
        commands += [
            (
                f"Switch profile: {name}",
                "Make this profile active",
                partial(post, ProfileSwitchRequested(name)),
            )
            for name in getattr(self, "_profiles", [])
        ]
        return commands

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class ConsoleApp(App[None]):
    """vllm-console: one vLLM box, six screens."""

    TITLE = "vllm-console"
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))  # absolute: subclasses live elsewhere
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (120, "-wide")]
    COMMANDS: ClassVar = App.COMMANDS | {ConsoleCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(str(i), f"show_mode('{m.mode}')", m.title, group=_SCREENS_GROUP)
            for i, m in enumerate(SCREEN_MODES, start=1)
        ),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False),
        # Digits type into text fields; Esc leaves the field so they switch screens again.
        Binding("escape", "leave_field", "Leave field", show=False),
    ]

    def __init__(
        self,
        session: Session | None = None,
        *,
        start_mode: str = "dashboard",
        dark_theme: str = "textual-dark",
        light_theme: str = "textual-light",
    ) -> None:
        super().__init__()
        self.session = session if session is not None else Session.create()
        self.start_mode = start_mode
        self.dark_theme = dark_theme
        self.light_theme = light_theme
        self.theme = dark_theme
        self._fleet: Screen | None = None
        """The fleet view, once opened (installed: it keeps polling state)."""
        self.mode_screens: dict[str, Screen] = {}
        """The screen instance of each mode, once created (for broadcasts)."""
        for spec in SCREEN_MODES:
            self.add_mode(spec.mode, partial(self._make_screen, spec))

    def _make_screen(self, spec: ScreenMode) -> Screen:
        """Called by Textual when the mode is first shown: imports its module then."""
        screen = with_worker_errors(spec.screen_class)()
        self.mode_screens[spec.mode] = screen
        # A new screen gets its styles when it mounts. Textual would also re-parse
        # every stylesheet and restyle the whole app twice on the first switch to
        # a mode (a fresh screen's CSS generation is -1), and restyle the screen
        # once more when its first resize adds the -narrow/-wide class: together
        # a third of the time to the first frame. A screen born with the current
        # CSS generation and its width class skips only those redundant passes.
        screen._css_update_count = self._css_update_count
        fits = [b for b, _ in self.HORIZONTAL_BREAKPOINTS if self.size.width >= b]
        for breakpoint, name in self.HORIZONTAL_BREAKPOINTS:
            screen.set_class(bool(fits) and breakpoint == max(fits), name, update=False)
        return screen

    def compose(self) -> ComposeResult:
        # Nothing: the first mode's screen is shown before the first frame, and
        # each screen brings its own header and footer.
        yield from ()

    async def on_mount(self) -> None:
        self.sub_title = self.session.label
        # The first frame comes before anything slow: the history (config, pydantic,
        # YAML, SQLite) loads in a worker after it, and the session's samplers wait
        # for it, so their first poll is after the first paint and is recorded.
        if self.session.history is None:
            self.session.hold_sampling()
        await self.switch_mode(self.start_mode)
        for notice in self.session.notices:
            self.notify(notice, title="profile not loaded", severity="warning", timeout=20)
        if self.session.fleet is not None:
            await self.action_fleet()
        self.call_after_refresh(self._prepare_sampling)

    @work(thread=True, exclusive=True, group="history", exit_on_error=False)
    def _prepare_sampling(self) -> None:
        """Off the UI thread: import the sampler and open the history file; then
        sampling starts with every poll recorded (also when the history cannot be
        read: sampling must not wait on it)."""
        history = None
        try:
            import console.sampler  # noqa: F401

            if self.session.history is None:
                from console.history.live import SessionHistory

                history = SessionHistory.from_config(
                    lambda ev: self.post_message(HistoryEventDetected(ev))
                )
        finally:
            self.post_message(SamplingReady(history))  # thread-safe, never blocks

    @on(SamplingReady)
    def _sampling_ready(self, message: SamplingReady) -> None:
        if self.session.history is None:
            self.session.attach_history(message.history)
        # Sampling belongs to the session: it runs whatever screen shows.
        _ = self.session.sampler

    def on_unmount(self) -> None:
        self.session.close()

    @on(HistoryEventDetected)
    def _history_event(self, message: HistoryEventDetected) -> None:
        """Threshold alerts become notices. Down, back up and restarts are not
        repeated here: the dashboard's status line and notices report them, and the
        Events panel (e) lists them."""
        from console import sanitize
        from console.history.events import is_alert

        ev = message.event
        if not is_alert(ev) or ev.kind in ("down", "restarted"):
            return
        self.notify(
            sanitize.clean_line(ev.message),
            title=f"{ev.kind} · {sanitize.clean_line(ev.server)}",
            severity="error" if ev.severity == "critical" else "warning",
            timeout=8,
        )

    # -- actions -------------------------------------------------------------

    async def action_show_mode(self, mode: str) -> None:
        """Switch to a mode's screen (keys 1-6), closing help first if it is open."""
        if _is_help(self.screen):
            self.pop_screen()
        if self.current_mode != mode:
            await self.switch_mode(mode)

    async def action_fleet(self) -> None:
        """Show the fleet view (on the dashboard's stack), keeping its polls: it is
        installed once, so leaving it does not forget its servers."""
        from console.screens.fleet import FleetScreen

        if _is_help(self.screen):
            self.pop_screen()
        if self.current_mode != "dashboard":
            await self.switch_mode("dashboard")
        if self._fleet is None:
            self._fleet = FleetScreen()
            self.install_screen(self._fleet, name="fleet")
        if self._fleet in self.screen_stack:
            while self.screen is not self._fleet:
                self.pop_screen()
            return
        await self.push_screen(self._fleet)

    def action_leave_field(self) -> None:
        """Take focus out of a text field (a screen that binds Esc itself goes first)."""
        if self.screen.focused is not None:
            self.screen.set_focus(None)

    def action_help(self) -> None:
        from console.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        self.theme = self.light_theme if self.current_theme.dark else self.dark_theme

    # -- routing -------------------------------------------------------------

    @on(ConsoleRequest)
    async def _route_request(self, request: ConsoleRequest) -> None:
        """Show the screen that owns a request, then hand the request to it."""
        await self.action_show_mode(request.mode)
        forwarded = dataclasses.replace(request) if dataclasses.is_dataclass(request) else request
        self.screen.post_message(forwarded)

    @on(ProfileSwitchRequested)
    def _switch_profile(self, request: ProfileSwitchRequested) -> None:
        self._load_profile(request.name)

    @work(thread=True, exclusive=True, group="profile-switch", exit_on_error=False)
    def _load_profile(self, name: str) -> None:
        """Read and validate the profile off the UI thread (YAML, pydantic, files)."""
        try:
            profile = load_profile_by_name(name)
        except Exception as exc:
            self.call_from_thread(
                self.notify, error_text(exc), title=f"profile {name}", severity="error"
            )
            return
        self.call_from_thread(self._set_profile, profile)

    def _set_profile(self, profile: Profile) -> None:
        self.session.set_profile(profile)
        self.sub_title = self.session.label
        self.notify(f"active profile: {profile.name} ({self.session.url})")
        self.broadcast(lambda: ActiveProfileChanged(profile.name, self.session.url))

    @on(ServerStatusChanged)
    def _server_status(self, news: ServerStatusChanged) -> None:
        status = news.status
        self.session.server_status = status
        if (
            status.url
            and status.profile == self.session.profile_name
            and not self.session.url_pinned
            and status.url != self.session.url
        ):
            self.session.url = status.url
            self.sub_title = self.session.label
        self.broadcast(lambda: ServerStatusBroadcast(status))

    def broadcast(self, make: Callable[[], object]) -> None:
        """Post a fresh message from ``make()`` to every screen that exists."""
        for screen in self.mode_screens.values():
            if screen.is_attached:
                screen.post_message(make())  # type: ignore[arg-type]

    # -- errors --------------------------------------------------------------

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notice, from any screen, goes through the one sanitiser.

        Notices quote servers and containers (error bodies, model names, log
        lines): escape sequences are dropped and Textual markup is never
        interpreted (``[@click=...]`` in an error body must not become an action).
        """
        super().notify(
            clean(message),
            title=clean_line(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """The one place worker errors become visible: a notice, never a crash."""
        if event.state != WorkerState.ERROR:
            return
        worker = event.worker
        self.log.error(f"worker {worker.name!r} failed: {worker.error!r}")
        self.notify(
            error_text(worker.error),
            title=worker_title(worker.name, worker.description),
            severity="error",
            timeout=12,
        )
