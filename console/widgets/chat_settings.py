"""The chat's settings: system prompt and sampling (temperature, max tokens, top_p).

Values are read when a message is sent, so editing never interrupts an answer
being generated. An empty field means "the server's default".
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Input, Label, Static, TextArea

from console.chat import ChatSettings
from console.errors import ConsoleError

_FIELDS = (
    ("temperature", "Temperature (0-2)", float),
    ("max_tokens", "Max tokens", int),
    ("top_p", "top_p (0-1]", float),
)


def _parse(raw: str, kind: type) -> float | int | None:
    raw = raw.strip()
    if not raw:
        return None
    return kind(raw)


class ChatSettingsPanel(VerticalScroll):
    """Side panel with the system prompt and sampling fields."""

    DEFAULT_CSS = """
    ChatSettingsPanel {
        width: 36;
        height: 1fr;
        border-left: solid $primary;
        padding: 0 1;
        background: $surface;
    }
    ChatSettingsPanel Label {
        margin-top: 1;
        color: $text-muted;
    }
    ChatSettingsPanel TextArea {
        height: 6;
    }
    ChatSettingsPanel Input.-invalid {
        border: tall $error;
    }
    ChatSettingsPanel .where {
        margin-top: 1;
        color: $text-muted;
    }
    """

    def __init__(self, system: str = "", settings: ChatSettings | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._system = system
        self._initial = settings or ChatSettings()

    def compose(self) -> ComposeResult:
        yield Label("System prompt")
        yield TextArea(self._system, id="chat-system", soft_wrap=True, show_line_numbers=False)
        for name, label, _kind in _FIELDS:
            value = getattr(self._initial, name)
            yield Label(label)
            yield Input(
                "" if value is None else str(value),
                placeholder="server default",
                id=f"chat-{name.replace('_', '-')}",
                type="number" if _kind is float else "integer",
            )
        yield Static("", classes="where", id="chat-where")

    @property
    def system(self) -> str:
        return self.query_one("#chat-system", TextArea).text

    def read_settings(self) -> ChatSettings:
        """The settings as typed; ``ConsoleError`` naming the field when one is wrong."""
        values: dict[str, float | int | None] = {}
        for name, label, kind in _FIELDS:
            raw = self.query_one(f"#chat-{name.replace('_', '-')}", Input).value
            try:
                values[name] = _parse(raw, kind)
            except ValueError:
                raise ConsoleError(f"chat settings: {label} {raw!r} is not a number") from None
        settings = ChatSettings(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def show_where(self, model: str | None, transcript: str | None) -> None:
        text = Text()
        text.append("model ", style="dim")
        text.append(model or "(first served)")
        if transcript:
            text.append("\ntranscript ", style="dim")
            text.append(transcript)
        self.query_one("#chat-where", Static).update(text)

    @on(Input.Changed)
    def _mark_invalid(self, event: Input.Changed) -> None:
        """Turn a field red while its own value is wrong (not because of another)."""
        name = (event.input.id or "").removeprefix("chat-").replace("-", "_")
        kinds = {field: kind for field, _label, kind in _FIELDS}
        if name not in kinds:
            return
        try:
            value = _parse(event.value, kinds[name])
            ChatSettings(**{name: value}).validate()  # type: ignore[arg-type]
            bad = False
        except (ValueError, ConsoleError):
            bad = True
        event.input.set_class(bad, "-invalid")
