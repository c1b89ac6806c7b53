"""The profiles screen: pick the profile the console builds, starts and watches.

Before anything runs, the user sees exactly what would: the command (argv, or
the ``docker run`` line), the Dockerfile, and every lint finding with its fix.
Loading and linting read files and may probe a vLLM install, so both run in
thread workers; rendering is pure and quick.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import (
    Footer,
    Header,
    Input,
    OptionList,
    Static,
    TabbedContent,
    TabPane,
)
from textual.widgets.option_list import Option

from console.profiles.schema import Profile
from console.screens.base import session_of
from console.screens.messages import ActiveProfileChanged, ProfileSwitchRequested

SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "bold cyan"}


class ProfilesLoaded(Message):
    def __init__(self, profiles: list[Profile], errors: list[str]) -> None:
        super().__init__()
        self.profiles = profiles
        self.errors = errors


class LintDone(Message):
    def __init__(self, name: str, findings: list, error: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.findings = findings
        self.error = error


# --------------------------------------------------------------------------- rendering


def command_text(profile: Profile) -> str:
    """The exact command, one flag per line, as a user would paste it (secrets masked)."""
    from console.profiles import display_argv, render_docker_run

    if profile.runtime == "docker":
        return render_docker_run(profile)
    argv = display_argv(profile)
    lines: list[str] = []
    for token in argv:
        quoted = shlex.quote(token)
        if token.startswith("--") or not lines:
            lines.append(quoted)
        else:
            lines[-1] += " " + quoted
    return " \\\n  ".join(lines)


def dockerfile_text(profile: Profile) -> str:
    from console.profiles import render_dockerfile

    if profile.runtime != "docker" or profile.image is None:
        return "(no image: this profile runs a local vLLM process, nothing is built)"
    return render_dockerfile(profile)


def short_path(path: str) -> str:
    """Relative to the working directory when inside it, else with ``~``."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        home = str(Path.home())
        return "~" + path[len(home) :] if path.startswith(home + "/") else path


def details_text(profile: Profile) -> Text:
    s = profile.serve
    out = Text()

    def row(label: str, value: object) -> None:
        out.append(f"{label:<14}", style="bold")
        out.append(f"{value}\n")

    if profile.description:
        out.append(profile.description.strip() + "\n\n")
    row("runtime", profile.runtime)
    named = s.served_model_name and s.served_model_name != s.model
    row("model", f"{s.model} (served as {s.served_model_name})" if named else s.model)
    row("listens on", profile.url)
    if s.speculative_config:
        spec = ", ".join(f"{k}={v}" for k, v in s.speculative_config.items())
        row("spec decode", spec)
    else:
        row("spec decode", "off")
    if profile.image is not None:
        if profile.image.needs_build:
            row("image", profile.image.tag or "")
            row("base", profile.image.base)
        else:
            row("image", f"{profile.image.base} (stock, nothing to build)")
        if profile.image.vllm_ref:
            row("vLLM ref", profile.image.vllm_ref)
        for p in profile.image.patches:
            row("patch", f"PR #{p.pr} @ {p.commit}" if p.pr else p.file or p.checkout)
    elif profile.runtime == "local":
        loc = s.local
        row("python", loc.vllm or loc.python or f"runtime {loc.runtime}")
        if loc.managed_model:
            row("managed model", loc.managed_model)
    row("fits", fit_summary(profile))
    if profile.source:
        row("file", short_path(profile.source))
    return out


def fit_summary(profile: Profile) -> str:
    """KV capacity per box (``profiles fit``), or why it is unknown."""
    from console import fit
    from console.errors import ConsoleError

    try:
        if profile.runtime == "local":
            f = fit.estimate(profile)
            return f"{f.kv_tokens:,} KV tokens, {f.concurrency:.1f}x at {f.max_len:,} (this CPU)"
        parts = []
        for box in fit.BOXES:
            f = fit.estimate(profile, box=box)
            parts.append(f"{box} {f.concurrency:.1f}x" if f.fits else f"{box} no")
        return ", ".join(parts) + f" at {f.max_len:,} tokens"
    except ConsoleError as exc:
        return f"unknown ({exc.message})"


def findings_text(findings: list) -> Text:
    if not findings:
        return Text("✓ no findings", style="bold green")
    out = Text()
    for f in findings:
        out.append(f"{f.severity.upper():<8}", style=SEVERITY_STYLE.get(f.severity, "bold"))
        out.append(f"{f.rule_id}", style="dim")
        if f.field:
            out.append(f"  {f.field}", style="italic")
        out.append(f"\n  {f.message}\n")
        if f.fix:
            out.append("  fix: ", style="bold green")
            out.append(f"{f.fix}\n")
        if getattr(f, "source", ""):
            out.append(f"  source: {f.source} (vLLM {f.versions})\n", style="dim")
        out.append("\n")
    return out


def lint_summary(findings: list) -> str:
    """``E1 W2 I4`` (short enough for a tab label at 80 columns), or ``ok``."""
    counts = {s: sum(1 for f in findings if f.severity == s) for s in SEVERITY_STYLE}
    parts = [f"{s[0].upper()}{n}" for s, n in counts.items() if n]
    return " ".join(parts) or "ok"


# --------------------------------------------------------------------------- screen


class ProfilesScreen(Screen):
    """Profiles: filterable list left, the selected one's details right."""

    DEFAULT_CSS = """
    ProfilesScreen #prof-body { height: 1fr; }
    ProfilesScreen #prof-side { width: 34; height: 1fr; }
    ProfilesScreen #prof-list { text-wrap: nowrap; text-overflow: ellipsis; }
    ProfilesScreen.-wide #prof-side { width: 44; }
    ProfilesScreen #prof-filter { height: 3; }
    ProfilesScreen #prof-list { height: 1fr; }
    ProfilesScreen #prof-errors { height: auto; max-height: 6; color: $error; }
    ProfilesScreen #prof-errors.-empty { display: none; }
    ProfilesScreen TabbedContent { width: 1fr; height: 1fr; }
    ProfilesScreen TabPane { padding: 0 1; }
    ProfilesScreen .prof-text { width: 1fr; height: auto; }
    """

    AUTO_FOCUS = "#prof-list"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,a", "activate", "Make active"),
        Binding("slash", "filter", "Filter"),
        Binding("l", "relint", "Lint with vLLM"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.profiles: list[Profile] = []
        self.findings: dict[str, list] = {}
        self.selected: Profile | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="prof-body"):
            with Vertical(id="prof-side"):
                yield Input(placeholder="/ filter profiles", id="prof-filter")
                yield OptionList(id="prof-list")
                yield Static("", id="prof-errors", classes="-empty")
            with TabbedContent(id="prof-tabs"):
                with TabPane("Details", id="tab-details"), VerticalScroll():
                    yield Static("", id="prof-details", classes="prof-text")
                with TabPane("Command", id="tab-command"), VerticalScroll():
                    yield Static("", id="prof-command", classes="prof-text")
                with TabPane("Dockerfile", id="tab-dockerfile"), VerticalScroll():
                    yield Static("", id="prof-dockerfile", classes="prof-text")
                with TabPane("Lint", id="tab-lint"), VerticalScroll():
                    yield Static("", id="prof-lint", classes="prof-text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#prof-list", OptionList).focus()
        self.load_profiles()

    # -- workers ---------------------------------------------------------------

    @work(thread=True, exclusive=True, group="profiles-load", exit_on_error=False)
    def load_profiles(self) -> None:
        from console.profiles import discover

        profiles, errors = discover()
        self.post_message(ProfilesLoaded(profiles, [str(e) for e in errors]))

    @work(thread=True, exclusive=True, group="profiles-lint", exit_on_error=False)
    def lint_profile(self, profile: Profile, probe: bool = False) -> None:
        """Lint against the shipped flag catalogue (instant); ``probe`` asks the
        profile's own vLLM for its flags instead (starts a Python: seconds)."""
        from console.profiles.lint import lint

        try:
            findings = lint(profile, probe=probe)
        except Exception as exc:  # a probe that fails must not hide the rest
            self.post_message(LintDone(profile.name, [], f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(LintDone(profile.name, findings))

    # -- handlers --------------------------------------------------------------

    @on(ProfilesLoaded)
    def _loaded(self, event: ProfilesLoaded) -> None:
        self.profiles = event.profiles
        errors = self.query_one("#prof-errors", Static)
        errors.update("\n".join(f"✗ {e}" for e in event.errors))
        errors.set_class(not event.errors, "-empty")
        self._fill_list()

    def _active_name(self) -> str | None:
        return session_of(self).profile_name

    def _fill_list(self) -> None:
        needle = self.query_one("#prof-filter", Input).value.strip().lower()
        shown = [
            p
            for p in self.profiles
            if not needle
            or needle in p.name.lower()
            or needle in p.description.lower()
            or needle in p.runtime
        ]
        # Name matches first: typing a name finds it even if others mention it.
        shown.sort(key=lambda p: (needle not in p.name.lower(), p.name))
        olist = self.query_one("#prof-list", OptionList)
        keep = self.selected.name if self.selected else self._active_name()
        if needle:
            keep = shown[0].name if shown else None
        olist.clear_options()
        active = self._active_name()
        for p in shown:
            label = Text()
            label.append("● " if p.name == active else "  ", style="bold green")
            label.append(p.name)
            label.append(f"  {p.runtime}", style="dim")
            olist.add_option(Option(label, id=p.name))
        if not shown:
            self._show(None)
            return
        names = [p.name for p in shown]
        olist.highlighted = names.index(keep) if keep in names else 0

    @property
    def shown_names(self) -> list[str]:
        olist = self.query_one("#prof-list", OptionList)
        return [str(olist.get_option_at_index(i).id) for i in range(olist.option_count)]

    @on(Input.Changed, "#prof-filter")
    def _filter_changed(self) -> None:
        self._fill_list()

    @on(Input.Submitted, "#prof-filter")
    def _filter_submitted(self) -> None:
        self.query_one("#prof-list", OptionList).focus()

    @on(OptionList.OptionHighlighted, "#prof-list")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        name = event.option.id
        self._show(next((p for p in self.profiles if p.name == name), None))

    @on(OptionList.OptionSelected, "#prof-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.action_activate()

    def _show(self, profile: Profile | None) -> None:
        self.selected = profile
        if profile is None:
            for wid in ("#prof-details", "#prof-command", "#prof-dockerfile", "#prof-lint"):
                self.query_one(wid, Static).update("no profile matches the filter")
            return
        self.query_one("#prof-details", Static).update(details_text(profile))
        for wid, make in (("#prof-command", command_text), ("#prof-dockerfile", dockerfile_text)):
            try:
                text: str | Text = make(profile)
            except Exception as exc:
                text = Text(f"cannot render: {exc}", style="red")
            self.query_one(wid, Static).update(Text(text) if isinstance(text, str) else text)
        if profile.name in self.findings:
            self._show_findings(profile.name)
        else:
            self.query_one("#prof-lint", Static).update(Text("linting…", style="dim"))
            self._set_lint_tab("Lint …")
            self.lint_profile(profile)

    @on(LintDone)
    def _lint_done(self, event: LintDone) -> None:
        if event.error:
            self.query_one("#prof-lint", Static).update(
                Text(f"lint failed: {event.error}", style="red")
            )
            self._set_lint_tab("Lint ✗")
            return
        self.findings[event.name] = event.findings
        if self.selected is not None and self.selected.name == event.name:
            self._show_findings(event.name)

    def _show_findings(self, name: str) -> None:
        findings = self.findings[name]
        self.query_one("#prof-lint", Static).update(findings_text(findings))
        self._set_lint_tab(f"Lint ({lint_summary(findings)})")

    def _set_lint_tab(self, label: str) -> None:
        tabs = self.query_one(TabbedContent)
        tab = tabs.get_tab("tab-lint")
        tab.label = label

    # -- actions ---------------------------------------------------------------

    def action_activate(self) -> None:
        if self.selected is None:
            return
        self.app.post_message(ProfileSwitchRequested(self.selected.name))

    def action_filter(self) -> None:
        self.query_one("#prof-filter", Input).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#prof-filter", Input)
        box.value = ""
        self.query_one("#prof-list", OptionList).focus()

    def action_relint(self) -> None:
        """Lint again, asking the serving vLLM itself for its flags."""
        if self.selected is not None:
            self.findings.pop(self.selected.name, None)
            self.query_one("#prof-lint", Static).update(
                Text("asking the profile's vLLM for its flags…", style="dim")
            )
            self._set_lint_tab("Lint …")
            self.lint_profile(self.selected, probe=True)

    @on(ActiveProfileChanged)
    def _active_changed(self, _: ActiveProfileChanged) -> None:
        self._fill_list()
