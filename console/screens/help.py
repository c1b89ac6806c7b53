"""The help screen: every key, and the formulas behind the spec-decode numbers.

A modal over whatever screen is showing, so help never loses the user's place.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Markdown

HELP_TEXT = """\
## Screens

- `1` **Dashboard**: memory, GPU, KV cache, tokens/s, speculative decoding
- `2` **Server**: start / stop / restart the active profile's server, its log
- `3` **Chat**: talk to the served model; reasoning, tool calls, TTFT, tok/s
- `4` **Profiles**: pick the active profile, its command and lint findings
- `5` **Build**: build the profile's image, live log
- `6` **Bench**: speculative decoding against a baseline

Digits switch screens when no text field has focus; in a field press `Esc` first.

## Everywhere

- `ctrl+p` command palette: switch profile, build, start / stop / restart the
  server, open chat, run bench, theme
- `?` or `f1` this help (`Esc` closes it)
- `ctrl+t` light / dark theme
- `tab` / `shift+tab` move focus; `ctrl+q` quit (a detached server keeps running)

{screen_keys}
## Chat

- `enter` send; `esc` stop the answer (the partial answer is kept), else leave the field
- `ctrl+o` settings: system prompt, temperature, max tokens, top_p
- `ctrl+l` new conversation (the old transcript stays on disk); `i` back to the input

Per answer: **TTFT** (request sent to first token), **tokens** (the server's
`usage`, not counted chunks: with speculative decoding one chunk carries
several tokens) and **tok/s** (tokens after the first chunk over the time after it).

## Speculative decoding

Counters are differenced over a window (the last minute, or since start).
D = drafts, T = draft tokens proposed, A = draft tokens accepted,
A_i = accepted at draft position i, k = speculative tokens per draft.

```
mean acceptance length   1 + A / D     1 ... k+1
draft acceptance rate    A / T         0 ... 1
per-position acceptance  A_i / D       0 ... 1, falls with i
```

A mean acceptance length of 3.2 with k = 4 means each forward pass of the
target model produced 3.2 tokens on average.
"""


_KEY_NAMES = {"slash": "/", "escape": "esc", "question_mark": "?"}


def _screen_keys() -> str:
    """The keys of each screen, read from the screens' own bindings so help
    never drifts from what the keys do."""
    from console.screens.bench import BenchScreen
    from console.screens.build import BuildScreen
    from console.screens.dashboard import DashboardScreen
    from console.screens.profiles import ProfilesScreen
    from console.screens.server import ServerScreen

    parts: list[str] = []
    for title, screen in (
        ("Dashboard", DashboardScreen),
        ("Server", ServerScreen),
        ("Profiles", ProfilesScreen),
        ("Build", BuildScreen),
        ("Bench", BenchScreen),
    ):
        rows = []
        for binding in screen.BINDINGS:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            keys = " / ".join(_KEY_NAMES.get(k, k) for k in binding.key.split(","))
            rows.append(f"- `{keys}` {binding.description}")
        if rows:
            parts.append(f"## {title}\n\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)


class HelpScreen(ModalScreen[None]):
    """Keys and formulas, over the current screen."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Close"),
        Binding("q", "app.pop_screen", "Close", show=False),
        Binding("question_mark", "app.pop_screen", "Close", show=False),
        # A modal hides the App's keys; screen keys still work from here.
        *(
            Binding(str(i), f"app.show_mode('{mode}')", mode, show=False)
            for i, mode in enumerate(
                ("dashboard", "server", "chat", "profiles", "build", "bench"), start=1
            )
        ),
    ]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 100;
        max-width: 100%;
        height: 100%;
        max-height: 100%;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen.-wide > VerticalScroll {
        height: 90%;
    }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body") as body:
            body.border_title = "vllm-console — help"
            yield Markdown(HELP_TEXT.format(screen_keys=_screen_keys()), id="help-text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()
