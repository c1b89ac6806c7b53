"""The Bench screen: A/B a baseline against speculative decoding from the console.

Arm A and arm B each take a server URL (already running) or a profile name
(the bench starts, warms, measures and stops that server, in turn). The run
is the headless :class:`console.bench.BenchRunner` in an async worker; its
progress events travel to the screen as messages and fill the table as runs
finish. Every result is also written, as it grows, to a JSON file under the
state folder, so nothing measured is lost if the console closes mid-run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Log, Static

from console import paths
from console.errors import ConsoleError, UsageError
from console.sanitize import clean, clean_log_line
from console.screens.base import session_of
from console.screens.messages import BenchRequested

if TYPE_CHECKING:
    # Imported when a bench runs, not at console start-up (httpx, metrics parser).
    from console.bench import ArmSpec, BenchConfig, BenchEvent, BenchResult, BenchRunner
    from console.history.live import RunSamples
    from console.profiles.schema import Profile

NUMBER_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("sequential", "Seq", 3),
    ("concurrent", "Conc", 8),
    ("max_tokens", "Tokens", 256),
    ("repeats", "Reps", 3),
    ("warmup", "Warm", 2),
)
"""Config field, label, default: the knobs the form exposes."""


def arm_spec(label: str, text: str) -> ArmSpec:
    """A URL (``scheme://`` or ``host:port``) or else a profile name."""
    from console.bench import ArmSpec

    text = text.strip()
    if "://" in text or (":" in text and text.rsplit(":", 1)[-1].isdigit()):
        url = text if "://" in text else f"http://{text}"
        return ArmSpec(label, url=url)
    return ArmSpec(label, profile=text)


def results_path() -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return paths.state_dir() / "bench" / f"bench-{stamp}.json"


class BenchProgress(Message):
    """One event of the running bench (a note, an arm ready, a finished run, done)."""

    def __init__(self, event: BenchEvent) -> None:
        super().__init__()
        self.event = event


class BenchScreen(Screen):
    """Configure two arms, run the bench, read the seed's table as it fills."""

    DEFAULT_CSS = """
    BenchScreen #bench-form { height: auto; padding: 0 1; background: $boost; }
    BenchScreen .bench-row { height: auto; }
    BenchScreen .bench-row Label { padding: 0 1 0 0; }
    BenchScreen .bench-row Input { border: none; height: 1; padding: 0 1; }
    BenchScreen .bench-arm { width: 1fr; }
    BenchScreen .bench-num { width: 6; margin-right: 1; }
    BenchScreen #bench-run, BenchScreen #bench-stop {
        min-width: 6; width: 7; height: 1; border: none; margin-left: 1;
    }
    BenchScreen #bench-headline { height: auto; padding: 0 1; }
    BenchScreen #bench-table { height: 1fr; }
    BenchScreen #bench-log {
        height: 7; border: round $primary 50%; border-title-color: $text-accent;
    }
    BenchScreen.-wide #bench-log { height: 10; }
    """

    AUTO_FOCUS = "#bench-table"
    """Not a text field: digits 1-6 switch screens as soon as the screen opens."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "run", "Run bench"),
        Binding("ctrl+s", "stop", "Stop bench"),
        Binding("ctrl+o", "open_samples", "Samples"),
        Binding("ctrl+k", "sweep", "Sweep k"),
    ]

    class Finished(Message):
        """The bench ended (complete, stopped or failed); ``result`` holds what it measured."""

        def __init__(
            self, result: BenchResult | None, error: str | None = None, *, failed: bool = False
        ) -> None:
            super().__init__()
            self.result = result
            self.error = error
            self.failed = failed

    def __init__(self) -> None:
        super().__init__()
        self.result: BenchResult | None = None
        self.json_path: Path | None = None
        self.samples: RunSamples | None = None
        """The last run's recorded samples (ctrl+o replays them)."""
        self._samples_shown = 0
        self.running = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="bench-form"):
            with Horizontal(classes="bench-row"):
                yield Label("A")
                yield Input(id="bench-arm-a", classes="bench-arm", placeholder="URL or profile")
                yield Label(" B")
                yield Input(
                    id="bench-arm-b",
                    classes="bench-arm",
                    placeholder="URL or profile, e.g. gemma3-270m-cpu-ngram",
                )
            with Horizontal(classes="bench-row"):
                for field, label, default in NUMBER_FIELDS:
                    yield Label(label)
                    yield Input(
                        str(default), id=f"bench-{field}", classes="bench-num", type="integer"
                    )
                yield Button("Run", id="bench-run", variant="primary")
                yield Button("Stop", id="bench-stop", variant="error", disabled=True)
        yield Static("Set arm A (baseline) and arm B, then Run (ctrl+r).", id="bench-headline")
        yield DataTable(id="bench-table", zebra_stripes=True, cursor_type="row")
        log = Log(id="bench-log", max_lines=2000)
        log.border_title = "Progress"
        yield log
        yield Footer()

    def on_mount(self) -> None:
        session = session_of(self)
        self.query_one("#bench-arm-a", Input).value = session.url
        if session.profile is not None and not session.url_pinned:
            self._prefill_pair(session.profile)

    @work(thread=True, exclusive=True, group="bench-prefill", exit_on_error=False)
    def _prefill_pair(self, active: Profile) -> None:
        """Arms from the active profile's A/B pair: its baseline (A) and its
        speculative-decoding side (B), by profile name (a running one is used as is)."""
        from console.profiles.counterpart import ab_pair
        from console.profiles.loader import discover

        profiles, _broken = discover()  # a broken file elsewhere is not this screen's news
        pair = ab_pair(active, profiles)
        if pair is not None:
            self.app.call_from_thread(self._set_arms, pair.baseline, pair.speculative)

    def _set_arms(self, a: str, b: str) -> None:
        """Fill the arms unless the user has typed in them meanwhile."""
        arm_a = self.query_one("#bench-arm-a", Input)
        arm_b = self.query_one("#bench-arm-b", Input)
        if arm_b.value or arm_a.value != session_of(self).url:
            return
        arm_a.value, arm_b.value = a, b

    # -- starting and stopping ---------------------------------------------------

    def _config(self) -> BenchConfig:
        from console.bench import BenchConfig

        values: dict[str, int] = {}
        for field, label, _default in NUMBER_FIELDS:
            raw = self.query_one(f"#bench-{field}", Input).value.strip()
            try:
                values[field] = int(raw)
            except ValueError:
                raise UsageError(f"{label}: {raw!r} is not a whole number") from None
        config = BenchConfig(**values)
        config.check()
        return config

    def _arms(self) -> list[ArmSpec]:
        a = self.query_one("#bench-arm-a", Input).value.strip()
        b = self.query_one("#bench-arm-b", Input).value.strip()
        if not a:
            raise UsageError("arm A is empty: give a server URL or a profile name")
        arms = [arm_spec("A", a)]
        if b:
            arms.append(arm_spec("B", b))
        return arms

    @on(Button.Pressed, "#bench-run")
    @on(BenchRequested)
    def action_run(self) -> None:
        if self.running:
            self.notify("a bench is already running", severity="warning")
            return
        from console.bench import BenchRunner

        try:
            runner = BenchRunner(self._arms(), self._config(), json_path=results_path())
        except ConsoleError as exc:
            self.notify(str(exc), title="bench", severity="error")
            return
        runner.on_event = lambda ev: self.post_message(BenchProgress(ev))
        self.json_path = runner.json_path
        self.result = runner.result
        self.running = True
        self._set_running(True)
        self.query_one("#bench-log", Log).clear()
        self._log(f"results: {self.json_path}")
        self._show_result(runner.result)
        self._run_worker(runner)

    def action_sweep(self) -> None:
        """The k-sweep (screens/bench_sweep.py), for arm B's profile or the active one."""
        from console.screens.bench_sweep import SweepScreen

        b = self.query_one("#bench-arm-b", Input).value.strip()
        profile = session_of(self).profile
        name = b if b and arm_spec("B", b).profile else (profile.name if profile else "")
        self.app.push_screen(SweepScreen(profile=name))

    # -- the run's samples -------------------------------------------------------

    def _watch_samples(self, runner: BenchRunner) -> None:
        """Record the arms' servers for the run (the session's one already is)."""
        from console.history.live import RunSamples

        session = session_of(self)
        history = getattr(session, "history", None)
        self.samples = None
        self._samples_shown = 0
        if history is None or history.store is None:
            return
        self.samples = RunSamples(history, session.url, session.api_key)
        for spec in runner.arms:
            if spec.url:
                self.samples.watch(spec.url)

    def action_open_samples(self) -> None:
        """Replay the samples of the last finished run (each press: the next arm's server)."""
        from console.screens.replay import ReplayScreen

        samples = self.samples
        if samples is None or samples.ended is None or not samples.urls:
            self.notify("no finished bench run with recorded samples yet", title="bench")
            return
        url = samples.urls[self._samples_shown % len(samples.urls)]
        self._samples_shown += 1
        source = samples.source(url)
        if source is None or not source.frames:
            self.notify(f"no samples of {url} in the run's span", title="bench")
            return
        self.app.push_screen(ReplayScreen(source, closable=True))

    @on(Button.Pressed, "#bench-stop")
    def action_stop(self) -> None:
        if self.running:
            self.workers.cancel_group(self, "bench")
            self._log("stopping …")

    @work(exclusive=True, group="bench", exit_on_error=False)
    async def _run_worker(self, runner: BenchRunner) -> None:
        # A run started right after launch waits for the history (opened after the
        # first frame), so its samples are recorded and ctrl+o can replay them.
        session = session_of(self)
        while session.history is None and session.history_pending:
            await asyncio.sleep(0.05)
        self._watch_samples(runner)
        try:
            result = await runner.run()
        except ConsoleError as exc:
            # Handled here (a notice from _finished), so it is not raised on.
            self.post_message(self.Finished(runner.result, str(exc), failed=True))
            return
        except BaseException:
            self.post_message(self.Finished(runner.result, "stopped"))
            raise
        self.post_message(self.Finished(result))

    def _set_running(self, running: bool) -> None:
        self.query_one("#bench-run", Button).disabled = running
        self.query_one("#bench-stop", Button).disabled = not running

    # -- progress --------------------------------------------------------------

    def _log(self, line: str) -> None:
        # Progress quotes servers (errors, model names): the one sanitiser.
        self.query_one("#bench-log", Log).write_line(clean_log_line(line))

    @on(BenchProgress)
    def _progress(self, message: BenchProgress) -> None:
        event = message.event
        if event.kind != "done":
            self._log(event.message)
        if event.kind == "arm" and self.samples is not None:
            for arm in event.result.arms:
                if arm.url:
                    self.samples.watch(arm.url)
        if event.kind in ("arm", "run", "done"):
            self._show_result(event.result)

    @on(Finished)
    def _finished(self, message: Finished) -> None:
        if self.samples is not None:
            self.samples.finish()
            self._log("ctrl+o replays this run's samples (again for the next arm's server)")
        self.running = False
        self._set_running(False)
        if message.result is not None:
            self._show_result(message.result)
        if message.error:
            self._log(f"bench ended: {message.error}")
            if message.failed:
                self.notify(message.error, title="bench failed", severity="error", timeout=12)
        else:
            self._log("bench complete")
            self.notify(f"bench complete; results in {self.json_path}", title="bench")

    def _show_result(self, result: BenchResult) -> None:
        from console.bench.report import (
            arm_line,
            config_line,
            equality,
            equality_line,
            headline,
            table_rows,
        )

        lines = [arm_line(a) for a in result.arms]
        lines.append(config_line(result))
        lines += headline(result)
        eq = equality(result)
        if eq is not None and eq["checked"]:
            lines.append(equality_line(eq))
        self.query_one("#bench-headline", Static).update(Text(clean("\n".join(lines))))
        table = self.query_one("#bench-table", DataTable)
        table.clear(columns=True)
        labels = [a.label for a in result.arms] or ["A"]
        table.add_columns("", *labels, *(["B vs A"] if len(labels) == 2 else []))
        for name, cells, ratio in table_rows(result):
            table.add_row(name, *cells, *([ratio] if len(labels) == 2 else []))
