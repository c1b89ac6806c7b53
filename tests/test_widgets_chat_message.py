"""A long streamed answer is cut into Markdown pieces (only the last one live)
at paragraph breaks outside code fences, nothing is lost or reordered however
the text is cut into fragments, and what is on screen is that text: finished
pieces are fixed lines, rendered once per width, correct when scrolled back
to and after a resize."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll

from console.chat import Answer
from console.widgets import chat_markdown
from console.widgets.chat_message import AssistantMessage, split_point

FENCED = "```python\nx = 1\n\ny = 2\n\n\nz = 3\n```\n"


def document(sections: int) -> str:
    parts = []
    for i in range(sections):
        parts.append(f"## Part {i}\n\n" + "words and more words " * 20 + ".\n\n")
        parts.append("- one\n- two\n\n" + FENCED + "\n")
    return "".join(parts)


def cuts(text: str, min_cut: int) -> list[int]:
    """All cuts ``split_point`` finds, fed the text whole."""
    found, scan, fence, base = [], 0, False, 0
    while True:
        cut, scan, fence = split_point(text, scan, fence, min_cut)
        if not cut:
            return found
        found.append(base + cut)
        text, base, scan = text[cut:], base + cut, 0


def test_split_points_are_after_blank_lines_outside_fences() -> None:
    text = document(3)
    found = cuts(text, 1)
    assert found, "a document with paragraphs has places to cut"
    for cut in found:
        assert text[:cut].endswith("\n\n")
        head = text[:cut]
        assert head.count("```") % 2 == 0, f"cut inside a code fence at {cut}: {head[-40:]!r}"


def test_no_cut_before_min_cut() -> None:
    text = document(2)
    assert all(c >= 500 for c in cuts(text, 500))
    assert split_point("one\n\ntwo\n\n", 0, False, 10_000)[0] == 0


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_incremental_scan_finds_the_same_cut(seed: int) -> None:
    """Scanning as fragments arrive finds what one scan of the whole finds."""
    text = document(2)
    whole = split_point(text, 0, False, 300)[0]
    rng = random.Random(seed)
    scan, fence, have = 0, False, ""
    pos = 0
    while pos < len(text):
        n = rng.randint(1, 40)
        have, pos = have + text[pos : pos + n], pos + n
        cut, scan, fence = split_point(have, scan, fence, 300)
        if cut:
            assert cut == whole
            return
    assert whole == 0


class OneMessage(App):
    def compose(self) -> ComposeResult:
        with VerticalScroll(id="log"):
            yield AssistantMessage()

    def on_mount(self) -> None:
        self.query_one("#log").anchor()


def words(text: str) -> list[str]:
    """The words a reader sees, Markdown syntax aside."""
    for mark in ("```python", "```", "##", "- ", "•", "|", "---", "*"):
        text = text.replace(mark, " ")
    return text.split()


def screen_text(app: App) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


async def stream(view: AssistantMessage, text: str, seed: int = 7) -> None:
    rng = random.Random(seed)
    pos = 0
    while pos < len(text):
        n = rng.randint(1, 60)
        await view.add_content(text[pos : pos + n])
        pos += n
    await view.finish(Answer(t_request=0.0, content=text))


async def test_streamed_answer_is_split_and_whole(monkeypatch) -> None:
    monkeypatch.setattr(chat_markdown, "SEGMENT_CHARS", 300)
    text = document(4)
    async with OneMessage().run_test(size=(80, 40)) as pilot:
        view = pilot.app.query_one(AssistantMessage)
        await stream(view, text)
        await pilot.pause()
        answer = view.answer
        assert answer.pieces >= 4
        assert view.answer_text == text
        for piece in answer._pieces:
            assert piece.source.count("```") % 2 == 0, "a code fence was split"
        # Every word of the answer is in the widget's lines, in order.
        lines = [answer.render_line(y).text for y in range(answer.size.height)]
        assert words("\n".join(lines)) == words(text)


async def test_scrolling_back_shows_the_first_pieces_as_rendered() -> None:
    text = document(6)
    app = OneMessage()
    async with app.run_test(size=(80, 20)) as pilot:
        view = app.query_one(AssistantMessage)
        await stream(view, text)
        await pilot.pause()
        log = app.query_one("#log", VerticalScroll)
        assert log.max_scroll_y > 40, "the answer is several screens long"
        assert log.scroll_y == log.max_scroll_y
        assert "Part 0" not in "\n".join(screen_text(app))
        log.scroll_home(animate=False)
        await pilot.pause()
        shown = "\n".join(screen_text(app))
        assert "Part 0" in shown and "Part 5" not in shown
        # What is shown at the top is the first piece's lines, as they were rendered.
        first = view.answer._pieces[0].strips[0].text.strip()
        assert first and first in shown


async def test_a_resize_renders_finished_pieces_again_once(monkeypatch) -> None:
    text = document(4)
    app = OneMessage()
    async with app.run_test(size=(80, 30)) as pilot:
        view = app.query_one(AssistantMessage)
        await stream(view, text)
        await pilot.pause()
        answer = view.answer
        renders: list[int] = []
        real = chat_markdown.render_markdown

        def counting(console, source, width):  # type: ignore[no-untyped-def]
            renders.append(width)
            return real(console, source, width)

        monkeypatch.setattr(chat_markdown, "render_markdown", counting)
        for _ in range(3):  # frames at the same width render nothing again
            answer.refresh(layout=True)
            await pilot.pause()
        assert renders == []
        await pilot.resize_terminal(50, 30)
        await pilot.pause()
        width = answer.size.width
        assert width < 50
        # Each finished piece once at the new width (the live one too).
        assert renders.count(width) <= answer.pieces + 1
        assert set(renders) == {width}
        lines = [answer.render_line(y) for y in range(answer.size.height)]
        assert all(line.cell_length == width for line in lines)
        assert words("\n".join(line.text for line in lines)) == words(text)
