"""The chat screen: talk to the served model, see how fast it answered.

The conversation logic is headless (:class:`console.chat.ChatSession`); this
screen only renders its events. One async worker (group ``chat``) streams an
answer; ``Esc`` cancels it and the partial answer stays, in the view, the
history and the transcript. The transcript is written by the session as events
arrive, so quitting mid-answer loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static
from textual.worker import Worker

from console.chat import (
    Answer,
    ChatClient,
    ChatSession,
    ContentDelta,
    ReasoningDelta,
    StreamError,
    ToolCallDelta,
    Transcript,
    Usage,
)
from console.errors import ConsoleError
from console.sanitize import clean, clean_line
from console.screens.base import session_of
from console.screens.messages import ActiveProfileChanged, ChatRequested, ServerStatusBroadcast
from console.widgets.chat_markdown import warm_up
from console.widgets.chat_message import AssistantMessage, UserMessage
from console.widgets.chat_settings import ChatSettingsPanel

if TYPE_CHECKING:
    from console.session import Session


WRITE_EVERY_S = 0.05
"""Streamed text reaches the view at most this often: one Markdown write per
tick, however many tokens arrived (at 1,000 tokens/s a write per token costs
more than the rendering)."""

PAINT_WAIT_S = 1.0
"""The longest the writer waits for a write to be painted before the next."""

STATS_EVERY_S = 0.25
"""The live token count is redrawn at most this often."""


@contextlib.contextmanager
def young_collections_only() -> Iterator[None]:
    """While an answer streams, the garbage collector collects young objects
    only. A full collection walks every object the app holds, the answer's
    rendered lines included, so its pause grows with the answer (the slowest
    frames late in a long answer were these); it runs again once the answer
    ends. Textual pauses collection during smooth scrolling for the same reason.
    """
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, 1_000_000)
    try:
        yield
    finally:
        gc.set_threshold(young, middle, full)


@dataclass
class _Pending:
    """What arrived from the stream since the view was last written to."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tools: bool = False
    usage: bool = False
    stats_at: float = 0.0


class ChatScreen(Screen):
    """Multi-turn chat with the served model."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop", "Stop/leave input"),
        Binding("ctrl+o", "toggle_settings", "Settings"),
        Binding("ctrl+l", "new_chat", "New chat"),
        Binding("i", "focus_input", "Input", show=False),
    ]

    DEFAULT_CSS = """
    ChatScreen #chat-main {
        width: 1fr;
    }
    ChatScreen #chat-log {
        height: 1fr;
        padding: 0 1;
        scrollbar-size-vertical: 1;
    }
    ChatScreen #chat-status {
        height: 1;
        padding: 0 1;
        color: $text-muted;
        background: $boost;
    }
    ChatScreen #chat-input {
        margin: 0;
    }
    ChatScreen ChatSettingsPanel {
        display: none;
    }
    ChatScreen.-wide ChatSettingsPanel {
        display: block;
        width: 44;
    }
    ChatScreen.-settings ChatSettingsPanel {
        display: block;
    }
    ChatScreen.-wide.-settings-hidden ChatSettingsPanel {
        display: none;
    }
    ChatScreen #chat-empty {
        color: $text-muted;
        padding: 1 0;
    }
    """

    client_factory: ClassVar[Callable[..., ChatClient]] = ChatClient
    measure_acceptance: ClassVar[bool] = True
    """Without per-request metrics, take each answer's acceptance from /metrics."""
    """Builds the HTTP client (``url``, ``api_key=``); tests replay recorded streams here."""

    write_every_s: ClassVar[float | None] = WRITE_EVERY_S
    """How often streamed text is written to the view; None: every delta as it
    comes (the benchmark's naive baseline)."""

    generating: reactive[bool] = reactive(False)
    """True while an answer streams (Esc stops it)."""

    def __init__(self) -> None:
        super().__init__()
        self.chat: ChatSession | None = None
        """The headless conversation (None until the first message is sent)."""
        self._worker: Worker | None = None
        self._receiving = False
        """True while the answer's events come in (Esc cancels them); the view
        is finished after that, with ``generating`` still True until it is."""
        self._served_model: str | None = None
        """What ``/v1/models`` listed first, shown before the first answer."""
        self.warming: Worker | None = None
        """Renders a Markdown sample when the screen opens (the benchmark waits on it)."""

    # -- layout ----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="chat-body"):
            with Vertical(id="chat-main"):
                with VerticalScroll(id="chat-log"):
                    yield Static(
                        "Type a message below and press Enter. Esc stops an answer; "
                        "ctrl+o opens the settings (system prompt, temperature, max "
                        "tokens, top_p).",
                        id="chat-empty",
                    )
                yield Static("", id="chat-status")
                yield Input(placeholder="Message (Enter to send)", id="chat-input")
            yield ChatSettingsPanel(id="chat-settings")
        yield Footer()

    @property
    def session(self) -> Session:
        return session_of(self)

    def on_mount(self) -> None:
        self.query_one("#chat-log").anchor()
        self.query_one("#chat-input", Input).focus()
        self._show_status()
        self.warming = self.run_worker(
            warm_up, thread=True, group="chat-warm", description="chat: warm Markdown"
        )

    def on_screen_resume(self) -> None:
        self._show_status()
        self._probe()

    def _show_status(self, extra: str = "") -> None:
        model = (self.chat.model if self.chat else None) or self.session.model or self._served_model
        model = clean_line(model) if model else model  # the server's words: untrusted
        text = Text()
        text.append(model or "model ?", style="bold")
        text.append(f" @ {clean_line(self.session.url)}")
        if self._base_model():
            text.append(" · base model: it continues text, e.g. 'The capital of France is'")
        if extra:
            text.append(f" · {clean_line(extra)}")
        self.query_one("#chat-status", Static).update(text)
        transcript = self.chat.transcript if self.chat else None
        self.query_one(ChatSettingsPanel).show_where(
            model, str(transcript.path) if transcript else None
        )

    def _base_model(self) -> bool:
        """Whether the active profile's server runs a managed base model (the Gemma)."""
        profile = self.session.profile
        local = profile.serve.local if profile is not None else None
        if local is None or not local.managed_model or self.session.url != profile.url:
            return False
        from console.runtime.models import is_base_model

        return is_base_model(local.managed_model)

    @work(exclusive=True, group="chat-probe", exit_on_error=False, description="chat: /v1/models")
    async def _probe(self) -> None:
        """Which model is served (shown before the first message); a down server is normal."""
        if self.session.model or (self.chat and self.chat.model):
            return
        client = self.client_factory(self.session.url, api_key=self.session.api_key, timeout=5)
        try:
            model = await client.default_model()
        except ConsoleError:
            self._show_status("no server answering; start one on the Server screen (2)")
            return
        finally:
            await client.aclose()
        self._served_model = model
        self._show_status("ready")

    # -- sending ---------------------------------------------------------------

    def _chat_session(self) -> ChatSession:
        """The conversation, re-pointed at the session URL if that changed."""
        session = self.session
        if self.chat is None:
            self.chat = ChatSession(
                self.client_factory(session.url, api_key=session.api_key),
                model=session.model or self._served_model,
                transcript=Transcript.new(),
                measure_acceptance=self.measure_acceptance,
            )
        elif self.chat.client.url != session.url.rstrip("/"):
            old = self.chat.client
            self.chat.client = self.client_factory(session.url, api_key=session.api_key)
            self.chat.model = session.model
            self._served_model = None
            self.run_worker(old.aclose(), exit_on_error=False)
        return self.chat

    @on(Input.Submitted, "#chat-input")
    def _submit(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        if self.generating:
            self.notify("an answer is still coming: wait, or press Esc to stop it")
            return
        panel = self.query_one(ChatSettingsPanel)
        try:
            settings = panel.read_settings()
        except ConsoleError as exc:
            self.notify(str(exc), title="chat settings", severity="error")
            return
        event.input.value = ""
        self.send(text, settings_system=(settings, panel.system))

    def send(self, text: str, *, settings_system: tuple | None = None) -> Worker:
        """Show ``text`` as the user's turn and stream the answer (also used by tests)."""
        chat = self._chat_session()
        if settings_system is None:
            panel = self.query_one(ChatSettingsPanel)
            settings_system = (panel.read_settings(), panel.system)
        chat.settings, system = settings_system
        chat.set_system(system)
        self.generating = True
        self._receiving = True
        self._worker = self._answer(text)
        return self._worker

    @work(exclusive=True, group="chat", exit_on_error=False, description="chat")
    async def _answer(self, text: str) -> None:
        chat = self._chat_session()
        log = self.query_one("#chat-log", VerticalScroll)
        for empty in self.query("#chat-empty"):
            await empty.remove()
        view = AssistantMessage(chat.model)
        await log.mount_all([UserMessage(text), view])
        log.anchor()  # a new message brings the view back to the bottom
        self._show_status("sending…")
        answer = Answer(t_request=time.monotonic())
        pending = _Pending()
        finished = asyncio.Event()

        async def flush(*, final: bool = False) -> None:
            """Hand what arrived since the last flush to the view, in one write each."""
            if pending.reasoning:
                text, pending.reasoning = "".join(pending.reasoning), []
                await view.add_reasoning(text)
            if pending.content:
                text, pending.content = "".join(pending.content), []
                await view.add_content(text)
            if pending.tools:
                pending.tools = False
                view.show_tool_calls(answer.tool_calls)
            now = time.monotonic()
            if pending.usage and not final and now - pending.stats_at >= STATS_EVERY_S:
                pending.usage, pending.stats_at = False, now
                view.show_stats(answer, live=True)

        async def painted() -> None:
            """Until the screen has been refreshed with what was just written
            (bounded: a screen out of sight may not be refreshed)."""
            shown = asyncio.get_running_loop().create_future()
            self.call_after_refresh(lambda: shown.done() or shown.set_result(None))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(shown, PAINT_WAIT_S)

        async def writer() -> None:
            """Flush every tick until the stream ends, each write once the last
            one is on screen: when frames take longer than a tick (a busy box,
            a faster model) more text goes into each, and the view never falls
            more than a frame behind. Never cancelled (a write cut short would
            leave the view half-updated): it is told to finish instead."""
            done = False
            loop = asyncio.get_running_loop()
            tick = self.write_every_s or 0.0
            last = loop.time()
            while not done:
                wait = tick - (loop.time() - last)
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(finished.wait(), wait)
                done = finished.is_set()  # then this flush is the last
                last = loop.time()
                await flush(final=done)
                if not done:
                    await painted()

        per_delta = self.write_every_s is None
        writing = None if per_delta else asyncio.create_task(writer())
        first = True
        collector = contextlib.ExitStack()
        collector.enter_context(young_collections_only())
        try:
            async with contextlib.aclosing(chat.send(text, answer=answer)) as events:
                async for event in events:
                    if first:
                        first = False
                        self._show_status("generating…  (Esc stops)")
                    if isinstance(event, ContentDelta):
                        pending.content.append(event.text)
                    elif isinstance(event, ReasoningDelta):
                        pending.reasoning.append(event.text)
                    elif isinstance(event, ToolCallDelta):
                        pending.tools = True
                    elif isinstance(event, Usage):
                        pending.usage = True
                    elif isinstance(event, StreamError):
                        self.notify(
                            f"{clean(event.message)} (the conversation so far is kept)",
                            title="the server stopped the answer",
                            severity="error",
                            timeout=12,
                        )
                    if per_delta:
                        await flush()
        finally:
            finished.set()
            self._receiving = False  # Esc no longer cancels: what is left is quick and must land
            try:
                if writing is None:
                    await flush(final=True)
                else:
                    await asyncio.shield(writing)  # its last flush writes what is left
                await view.finish(answer)
                state = "stopped" if answer.stopped else "error" if answer.error else "done"
                self._show_status(state)
            finally:
                collector.close()
                self.generating = False
                self.post_message(self.AnswerDone(answer))

    class AnswerDone(Message):
        """An answer finished (complete, stopped or failed); tests wait on it."""

        def __init__(self, answer: Answer) -> None:
            super().__init__()
            self.answer = answer

    async def add_exchange(self, text: str, answer: Answer) -> None:
        """Show a finished exchange at once (a replayed transcript, fixed data for
        snapshots and screenshots); the live conversation is not touched."""
        log = self.query_one("#chat-log", VerticalScroll)
        for empty in self.query("#chat-empty"):
            await empty.remove()
        view = AssistantMessage()
        await log.mount_all([UserMessage(text), view])
        await view.show_finished(answer)
        log.anchor()

    # -- actions ---------------------------------------------------------------

    def action_stop(self) -> None:
        """Stop the answer being generated; otherwise leave the input field."""
        if self.generating and self._receiving and self._worker is not None:
            self._worker.cancel()
            self.notify("stopped; the partial answer is kept")
            return
        panel = self.query_one(ChatSettingsPanel)
        if self.focused is not None and panel in self.focused.ancestors:
            if self.has_class("-settings"):
                self.remove_class("-settings")  # narrow: the panel was opened just to edit
            self.action_focus_input()
        elif self.focused is not None:
            self.set_focus(None)  # digits switch screens again

    def action_focus_input(self) -> None:
        self.query_one("#chat-input", Input).focus()

    def action_toggle_settings(self) -> None:
        if self.has_class("-wide"):
            self.toggle_class("-settings-hidden")
            shown = not self.has_class("-settings-hidden")
        else:
            self.toggle_class("-settings")
            shown = self.has_class("-settings")
        if shown:
            self.query_one("#chat-system").focus()
        else:
            self.action_focus_input()

    async def action_new_chat(self) -> None:
        if self.generating:
            self.notify("stop the answer first (Esc)")
            return
        if self.chat is not None:
            self.chat.reset()
        await self.query_one("#chat-log").remove_children()
        self._show_status("new conversation")

    # -- app messages ------------------------------------------------------------

    @on(ChatRequested)
    def _requested(self, request: ChatRequested) -> None:
        self.action_focus_input()
        if request.text and not self.generating:
            self.send(request.text)

    @on(ActiveProfileChanged)
    @on(ServerStatusBroadcast)
    def _server_moved(self) -> None:
        if self.chat is None or self.chat.client.url != self.session.url.rstrip("/"):
            self._served_model = None
        if self.is_current:
            self._show_status()
            self._probe()
