"""The k-sweep from the Bench screen: tok/s against k, measured on this box.

Opened from the Bench screen (ctrl+k) with the profile prefilled (arm B's
profile, else the active one). Run starts the headless
:class:`console.bench.sweep.SweepRunner` in an async worker: it starts the
profile once per k and once without speculation, in turn, and stops each
server before the next; Stop (ctrl+s) or leaving the console cancels the
worker and the server running at that moment is ended (``down``) before the
worker ends. The chart (``widgets/sweep_plot``) gains a point per k as each
server's cells finish; the summary beside it shows the figures per load and
the best k. Results go to a JSON file under the state folder as they come.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Log, Static

from console.errors import ConsoleError, UsageError
from console.sanitize import clean, clean_log_line
from console.widgets.sweep_plot import SweepPlot, color_of

if TYPE_CHECKING:
    from pathlib import Path

    from console.bench.sweep import SweepConfig, SweepResult
    from console.bench.sweep_run import SweepEvent, SweepRunner

NUMBER_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("concurrency", "Conc", 8),
    ("per_category", "Per-cat", 3),
    ("max_tokens", "Tokens", 128),
)


class SweepProgress(Message):
    def __init__(self, event: SweepEvent) -> None:
        super().__init__()
        self.event = event


class SweepScreen(Screen):
    """Profile and ks in, tok/s against k out (one line per load, baseline marked)."""

    DEFAULT_CSS = """
    SweepScreen #sweep-form { height: auto; padding: 0 1; background: $boost; }
    SweepScreen .sweep-row { height: auto; }
    SweepScreen .sweep-row Label { padding: 0 1 0 0; }
    SweepScreen .sweep-row Input { border: none; height: 1; padding: 0 1; }
    SweepScreen #sweep-profile { width: 1fr; }
    SweepScreen #sweep-ks { width: 14; }
    SweepScreen .sweep-num { width: 7; margin-right: 1; }
    SweepScreen #sweep-port { width: 8; }
    SweepScreen #sweep-run, SweepScreen #sweep-stop {
        min-width: 6; width: 7; height: 1; border: none; margin-left: 1;
    }
    SweepScreen #sweep-body { height: 1fr; }
    SweepScreen #sweep-summary { width: 34; padding: 0 1; }
    SweepScreen #sweep-log {
        height: 5; border: round $primary 50%; border-title-color: $text-accent;
    }
    """

    AUTO_FOCUS = "#sweep-run"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "run", "Run sweep"),
        Binding("ctrl+s", "stop", "Stop sweep"),
        Binding("escape", "close", "Back"),
    ]

    class Finished(Message):
        def __init__(self, result: SweepResult | None, error: str | None = None) -> None:
            super().__init__()
            self.result = result
            self.error = error

    def __init__(self, profile: str = "", ks: str = "1,2,3,4,6") -> None:
        super().__init__()
        self.initial_profile = profile
        self.initial_ks = ks
        self.result: SweepResult | None = None
        self.json_path: Path | None = None
        self.running = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="sweep-form"):
            with Horizontal(classes="sweep-row"):
                yield Label("Profile")
                yield Input(
                    self.initial_profile,
                    id="sweep-profile",
                    placeholder="a speculative profile, e.g. gemma3-270m-cpu-ngram",
                )
                yield Label(" k")
                yield Input(self.initial_ks, id="sweep-ks", placeholder="1,2,3,4,6")
            with Horizontal(classes="sweep-row"):
                for field, label, default in NUMBER_FIELDS:
                    yield Label(label)
                    yield Input(
                        str(default), id=f"sweep-{field}", classes="sweep-num", type="integer"
                    )
                yield Label("Port")
                yield Input("", id="sweep-port", type="integer", placeholder="own")
                yield Button("Run", id="sweep-run", variant="primary")
                yield Button("Stop", id="sweep-stop", variant="error", disabled=True)
        with Horizontal(id="sweep-body"):
            yield SweepPlot(id="sweep-plot")
            yield Static(
                "tok/s against k, one line per load in its colour; each load's baseline "
                "(no speculation) is the flat line. Run (ctrl+r) starts the profile once per k.",
                id="sweep-summary",
            )
        log = Log(id="sweep-log", max_lines=4000)
        log.border_title = "Sweep progress"
        yield log
        yield Footer()

    # -- starting and stopping ----------------------------------------------------

    def config(self) -> SweepConfig:
        from console.bench.sweep import SweepConfig, parse_ks

        values: dict[str, int] = {}
        for field, label, _default in NUMBER_FIELDS:
            raw = self.query_one(f"#sweep-{field}", Input).value.strip()
            try:
                values[field] = int(raw)
            except ValueError:
                raise UsageError(f"{label}: {raw!r} is not a whole number") from None
        port_text = self.query_one("#sweep-port", Input).value.strip()
        try:
            port = int(port_text) if port_text else None
        except ValueError:
            raise UsageError(f"Port: {port_text!r} is not a port number") from None
        ks = parse_ks(self.query_one("#sweep-ks", Input).value)
        config = SweepConfig(ks=ks, port=port, **values)
        config.check()
        return config

    def make_runner(self) -> SweepRunner:
        from console.bench.sweep import load_sweep_profile
        from console.bench.sweep_run import SweepRunner
        from console.commands.bench_sweep import default_json_path

        name = self.query_one("#sweep-profile", Input).value.strip()
        if not name:
            raise UsageError("Profile is empty: give a profile with speculative decoding")
        config = self.config()
        profile = load_sweep_profile(name)
        return SweepRunner(profile, config, json_path=default_json_path(profile.name))

    @on(Button.Pressed, "#sweep-run")
    def action_run(self) -> None:
        if self.running:
            self.notify("a sweep is already running", severity="warning")
            return
        try:
            runner = self.make_runner()
        except ConsoleError as exc:
            self.notify(str(exc), title="sweep", severity="error")
            return
        runner.on_event = lambda ev: self.post_message(SweepProgress(ev))
        self.result = runner.result
        self.json_path = runner.json_path
        self.running = True
        self._set_running(True)
        self.query_one("#sweep-log", Log).clear()
        self._log(f"results: {self.json_path}")
        self._show(runner.result)
        self._run_worker(runner)

    @on(Button.Pressed, "#sweep-stop")
    def action_stop(self) -> None:
        if self.running:
            self.workers.cancel_group(self, "sweep")
            self._log("stopping: the running server is ended first …")

    def action_close(self) -> None:
        if self.running:
            self.notify("stop the sweep first (ctrl+s)", title="sweep", severity="warning")
            return
        self.dismiss()

    @work(exclusive=True, group="sweep", exit_on_error=False)
    async def _run_worker(self, runner: SweepRunner) -> None:
        try:
            result = await runner.run()
        except ConsoleError as exc:
            self.post_message(self.Finished(runner.result, str(exc)))
            return
        except BaseException:
            self.post_message(self.Finished(runner.result, "stopped"))
            raise
        self.post_message(self.Finished(result))

    def _set_running(self, running: bool) -> None:
        self.query_one("#sweep-run", Button).disabled = running
        self.query_one("#sweep-stop", Button).disabled = not running

    # -- progress -------------------------------------------------------------------

    def _log(self, line: str) -> None:
        self.query_one("#sweep-log", Log).write_line(clean_log_line(line))

    @on(SweepProgress)
    def _progress(self, message: SweepProgress) -> None:
        event = message.event
        if event.kind != "done":
            self._log(event.message)
        if event.kind in ("cell", "server", "done"):
            self._show(event.result)

    @on(Finished)
    def _finished(self, message: Finished) -> None:
        from console.bench.sweep_report import render_table

        self.running = False
        self._set_running(False)
        if message.result is not None:
            self._show(message.result)
            for line in clean(render_table(message.result)).splitlines():
                self._log(line)
        if message.error:
            self._log(f"sweep ended: {message.error}")
            if message.error != "stopped":
                self.notify(message.error, title="sweep failed", severity="error", timeout=12)
        else:
            self.notify(f"sweep complete; results in {self.json_path}", title="sweep")

    def _show(self, result: SweepResult) -> None:
        from console.bench.sweep_report import advisor_check, best, figures, plot_series

        series, base = plot_series(result)
        self.query_one("#sweep-plot", SweepPlot).set_data(series, base)
        out = Text()
        for load in result.config.loads:
            rows = figures(result, load)
            where = "1 stream" if load == 1 else f"{load} concurrent"
            color = color_of(list(result.config.loads), load)
            out.append(f"{where} (flat: base)\n", style=f"bold {color}")
            for f in rows:
                tok = "—" if f.tok_s is None else f"{f.tok_s:6.1f}"
                spd = "" if f.speedup is None else f" {f.speedup:4.2f}x"
                acc = "" if f.acceptance_length is None else f" acc {f.acceptance_length:.2f}"
                out.append(f" {f.label:<5}{tok}{spd}{acc}\n")
            b = best(rows)
            if b is not None:
                out.append(f" best: {b.label}\n", style="bold green")
        check = advisor_check(result)
        if check is not None and check.predicted is not None:
            out.append(f"advisor (estimate): k={check.predicted}\n", style="dim")
        pending = [s.label for s in result.servers if s.phase in ("pending", "starting")]
        if pending and self.running:
            out.append(f"to do: {', '.join(pending)}", style="dim")
        self.query_one("#sweep-summary", Static).update(out)
