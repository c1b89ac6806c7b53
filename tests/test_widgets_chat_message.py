"""A long streamed answer is split over several Markdown widgets (only the last
one live) at paragraph breaks outside code fences, and nothing is lost or
reordered however the text is cut into fragments."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st
from textual.app import App, ComposeResult
from textual.widgets import Markdown

from console.chat import Answer
from console.widgets import chat_message
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
        yield AssistantMessage()


async def test_streamed_answer_is_split_and_whole(monkeypatch) -> None:
    monkeypatch.setattr(chat_message, "SEGMENT_CHARS", 300)
    text = document(4)
    rng = random.Random(7)
    async with OneMessage().run_test(size=(80, 40)) as pilot:
        view = pilot.app.query_one(AssistantMessage)
        pos = 0
        while pos < len(text):
            n = rng.randint(1, 60)
            await view.add_content(text[pos : pos + n])
            pos += n
        await view.finish(Answer(t_request=0.0, content=text))
        await pilot.pause()
        segments = list(view.query(".answer").results(Markdown))
        assert len(segments) >= 4, [len(m.source) for m in segments]
        assert view.answer_text == text
        for segment in segments:
            assert segment.source.count("```") % 2 == 0, "a code fence was split"
