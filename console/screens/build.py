"""The build screen: build the active profile's image and watch it.

The build (:class:`console.runtime.build.ImageBuild`) is an iterator of typed
events that blocks on the engine, so it runs in a thread worker. Output lines
go straight into the thread-safe :class:`LogView` buffer (a pip install can
print tens of thousands); only steps, warnings and the outcome travel as
messages. ``c`` cancels: the engine stops the build and removes its
intermediate container. The full log is on disk as it happens; its path is
shown from the start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header, ProgressBar, Static

from console.buildlog import (
    BuildDone,
    BuildError,
    BuildEvent,
    BuildOutput,
    BuildPull,
    BuildStep,
    BuildWarning,
)
from console.screens.base import session_of
from console.screens.messages import ActiveProfileChanged, BuildRequested
from console.widgets.log_view import LogView

if TYPE_CHECKING:
    from console.profiles.schema import Profile

IDLE, BUILDING, DONE, FAILED, CANCELLED = "idle", "building", "done", "failed", "cancelled"
STATE_STYLE = {
    IDLE: "dim",
    BUILDING: "bold yellow",
    DONE: "bold green",
    FAILED: "bold red",
    CANCELLED: "bold magenta",
}


class BuildEvents(Message):
    """Steps, warnings and the outcome of a build (output lines go to the log directly)."""

    def __init__(self, events: list[BuildEvent]) -> None:
        super().__init__()
        self.events = events


class BuildStarted(Message):
    def __init__(self, log_path: Path | None, tag: str | None) -> None:
        super().__init__()
        self.log_path = log_path
        self.tag = tag


class BuildFinished(Message):
    """The worker ended (whatever the outcome); ``error`` if it could not even start."""

    def __init__(self, error: str | None = None) -> None:
        super().__init__()
        self.error = error


def fmt_elapsed(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}" if m < 60 else f"{m // 60}:{m % 60:02d}:{s:02d}"


class BuildScreen(Screen):
    """Build log, step i/N, elapsed, the failing step, cancel."""

    DEFAULT_CSS = """
    BuildScreen #build-status { height: auto; padding: 0 1; background: $boost; }
    BuildScreen #build-progress-row { height: 1; padding: 0 1; }
    BuildScreen #build-progress-row ProgressBar { width: auto; }
    BuildScreen #build-elapsed { width: 12; text-align: right; }
    BuildScreen #build-step { height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    BuildScreen #build-failure {
        height: auto;
        max-height: 8;
        padding: 0 1;
        border: round $error;
        border-title-color: $error;
        color: $text;
    }
    BuildScreen #build-failure.-none { display: none; }
    BuildScreen #build-log {
        height: 1fr;
        border: round $primary 50%;
        border-title-color: $text-accent;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "build", "Build"),
        Binding("c", "cancel", "Cancel build"),
    ]

    state: reactive[str] = reactive(IDLE)
    """idle, building, done, failed or cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.step: BuildStep | None = None
        self.failed_step: BuildStep | None = None
        self.error: str | None = None
        self.warnings: list[str] = []
        self.result: BuildDone | BuildError | None = None
        self.log_path: Path | None = None
        self.tag: str | None = None
        self._build: Any = None
        self._started_at: float | None = None
        self._ended_at: float | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="build-status")
        with Horizontal(id="build-progress-row"):
            yield ProgressBar(total=None, show_eta=False, id="build-progress")
            yield Static("", id="build-elapsed")
        yield Static("", id="build-step")
        failure = Static("", id="build-failure", classes="-none")
        failure.border_title = "Build failed"
        yield failure
        log = LogView(id="build-log", max_lines=50_000)
        log.border_title = "Build log"
        yield log
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#build-progress-row").display = False
        self.set_interval(1.0, self._tick)
        self._render_status()

    # -- session -------------------------------------------------------------

    @property
    def profile(self) -> Profile | None:
        return session_of(self).profile

    # -- actions -------------------------------------------------------------

    def action_build(self) -> None:
        if self.state == BUILDING:
            self.notify("a build is already running (c cancels it)", severity="warning")
            return
        profile = self.profile
        if profile is None:
            self.notify("no active profile: choose one on the profiles screen", severity="warning")
            return
        if profile.image is None:
            self.notify(
                f"profile {profile.name} runs a local vLLM process: there is no image to build",
                severity="warning",
            )
            return
        if not profile.image.needs_build:
            self.notify(
                f"profile {profile.name} runs the stock image {profile.image.base}: "
                "nothing to build",
            )
            return
        self._reset(profile.image.tag)
        self._run_build(profile)

    @on(BuildRequested)
    def _requested(self, _: BuildRequested) -> None:
        self.action_build()

    def action_cancel(self) -> None:
        if self.state != BUILDING:
            return
        build = self._build
        if build is not None:
            build.cancel()  # safe from any thread: cuts the engine stream
        self.notify("cancelling the build…")

    @on(ActiveProfileChanged)
    def _profile_changed(self, _: ActiveProfileChanged) -> None:
        self._render_status()

    # -- running -------------------------------------------------------------

    def _reset(self, tag: str | None) -> None:
        self.step = self.failed_step = None
        self.error = None
        self.warnings = []
        self.result = None
        self.log_path = None
        self.tag = tag
        self._started_at = time.monotonic()
        self._ended_at = None
        self.query_one(LogView).clear()
        self.query_one("#build-failure", Static).set_class(True, "-none")
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)
        self.query_one("#build-step", Static).update("")
        self.state = BUILDING

    @work(thread=True, exclusive=True, group="build", exit_on_error=False, description="build")
    def _run_build(self, profile: Profile) -> None:
        from console.runtime.build import ImageBuild

        try:
            build = ImageBuild(profile)
        except Exception as exc:
            self.post_message(BuildFinished(str(exc)))
            raise
        self._build = build
        self.post_message(BuildStarted(build.log_path, build.tag))
        self._pump(build, cancelled=lambda: build.cancelled)

    def replay(
        self, events: Iterable[BuildEvent], *, log_path: Path | None = None, tag: str | None = None
    ) -> None:
        """Show a build from any event source (a saved log parsed by console.buildlog)."""
        self._reset(tag)
        self._replay(list(events), log_path, tag)

    @work(thread=True, exclusive=True, group="build", exit_on_error=False, description="build")
    def _replay(self, events: list[BuildEvent], log_path: Path | None, tag: str | None) -> None:
        self.post_message(BuildStarted(log_path, tag))
        self._pump(events, cancelled=lambda: False)

    def _pump(self, events: Iterable[BuildEvent], *, cancelled: Callable[[], bool]) -> None:
        """Route events (in the worker thread): output to the log, the rest as messages."""
        log = self.query_one(LogView)
        batch: list[BuildEvent] = []
        last_post = time.monotonic()
        error: str | None = None
        try:
            for event in events:
                if isinstance(event, BuildOutput):
                    log.push(event.text)
                    continue
                if isinstance(event, BuildPull):
                    continue  # progress of layer pulls would flood the log
                if isinstance(event, BuildStep):
                    log.push(f"Step {event.index}/{event.total} : {event.instruction}")
                elif isinstance(event, BuildWarning):
                    log.push(f"WARNING: {event.message}")
                elif isinstance(event, BuildError):
                    log.push(f"ERROR: {event.message}")
                batch.append(event)
                now = time.monotonic()
                if now - last_post > 0.05 or isinstance(event, BuildDone | BuildError):
                    self.post_message(BuildEvents(batch))
                    batch, last_post = [], now
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if batch:
                self.post_message(BuildEvents(batch))
            if cancelled() and error is None and not isinstance(self.result, BuildError):
                error = "build cancelled"
            self.post_message(BuildFinished(error))

    # -- handlers ------------------------------------------------------------

    @on(BuildStarted)
    def _started(self, event: BuildStarted) -> None:
        self.log_path = event.log_path
        self.tag = event.tag or self.tag
        self._render_status()

    @on(BuildEvents)
    def _events(self, message: BuildEvents) -> None:
        bar = self.query_one(ProgressBar)
        for event in message.events:
            if isinstance(event, BuildStep):
                self.step = event
                if event.total:
                    bar.update(total=event.total, progress=event.index - 1)
                self.query_one("#build-step", Static).update(
                    Text.assemble(
                        (f"step {event.index}/{event.total or '?'} ", "bold"), event.instruction
                    )
                )
            elif isinstance(event, BuildWarning):
                self.warnings.append(event.message)
            elif isinstance(event, BuildError):
                self.result = event
                self.failed_step = event.step or self.step
                self.error = event.message
                self._show_failure(event)
            elif isinstance(event, BuildDone):
                self.result = event
                if bar.total:
                    bar.update(progress=bar.total)

    def _show_failure(self, event: BuildError) -> None:
        box = self.query_one("#build-failure", Static)
        text = Text()
        step = event.step or self.step
        if step is not None:
            text.append(f"step {step.index}/{step.total or '?'}: ", style="bold red")
            text.append(step.instruction + "\n", style="bold")
        text.append(event.message)
        box.update(text)
        box.set_class(False, "-none")

    @on(BuildFinished)
    def _finished(self, event: BuildFinished) -> None:
        self._ended_at = time.monotonic()
        self._build = None
        if isinstance(self.result, BuildDone):
            self.state = DONE
        elif self.result is not None and "cancelled" in self.result.message:
            self.state = CANCELLED
        elif self.result is not None or event.error:
            self.state = FAILED
            if self.result is None and event.error:
                self.error = event.error
                self._show_failure(BuildError(event.error, self.step))
        else:
            self.state = FAILED
        self._tick()

    def watch_state(self) -> None:
        if self.is_mounted:
            # No build yet: an empty (pulsing) bar would suggest one is running.
            self.query_one("#build-progress-row").display = self.state != IDLE
            self._render_status()

    # -- rendering -----------------------------------------------------------

    def elapsed(self) -> float | None:
        if self._started_at is None:
            return None
        end = self._ended_at if self._ended_at is not None else time.monotonic()
        return end - self._started_at

    def _tick(self) -> None:
        elapsed = self.elapsed()
        self.query_one("#build-elapsed", Static).update(
            "" if elapsed is None else fmt_elapsed(elapsed)
        )
        if self.state != BUILDING:
            self._render_status()

    def _render_status(self) -> None:
        profile = self.profile
        text = Text()
        text.append(profile.name if profile else "no active profile", style="bold")
        tag = self.tag or (profile.image.tag if profile and profile.image else None)
        if tag:
            text.append(f" → {tag}")
        elif profile is not None and profile.image is None:
            text.append(" (local runtime: nothing to build)", style="dim")
        text.append(" · ")
        text.append(self.state.upper(), style=STATE_STYLE[self.state])
        if isinstance(self.result, BuildDone):
            text.append(f" · image {self.result.image_id[:19]} in {self.result.duration_s:.1f} s")
        if self.warnings:
            text.append(f" · {len(self.warnings)} warnings", style="yellow")
        if self.state == IDLE:
            text.append(" · b builds", style="dim")
        if self.log_path is not None:
            text.append(f"\nlog file: {self.log_path}", style="dim")
        self.query_one("#build-status", Static).update(text)
