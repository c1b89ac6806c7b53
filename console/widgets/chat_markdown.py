"""Streamed Markdown whose cost per frame does not grow with its length.

A streamed answer is cut at blank lines outside code fences into *pieces*.
A finished piece is parsed and rendered (Rich's Markdown, markdown-it) once,
into a list of ``Strip`` lines cached for the current width: from then on it
is a fixed-height block of lines, never re-parsed, re-styled or re-measured.
Only the *live* tail (the last, still growing piece) is rendered again when
text arrives. The whole answer is one line-API widget: Textual lays out one
widget whatever the answer's length, and paints only the lines on screen
(``render_line``). A new width (a terminal resize) re-renders every piece
once at that width.

Textual's own ``Markdown`` widget builds a widget per block (paragraph, list
item, table cell); at thousands of tokens the screen's layout of those
widgets, not the parsing, was where a frame's time went (see docs/chat.md).
"""

from __future__ import annotations

import bisect
import re
from typing import Self

from rich.console import Console
from rich.markdown import Markdown as RichMarkdown
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

SEGMENT_CHARS = 200
"""The live piece is closed at the first paragraph break after this many
characters; a new live piece continues the text."""

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def split_point(text: str, start: int, in_fence: bool, min_cut: int) -> tuple[int, int, bool]:
    """The first place at or after ``min_cut`` where ``text`` can be cut: just
    after a blank line outside a code fence.

    Scans the complete lines from ``start`` (a line start, where the fence state
    is ``in_fence``). Returns the cut (0: none yet), where to resume, and the
    fence state there; each line is scanned once however the text arrives.
    """
    pos = start
    while True:
        end = text.find("\n", pos)
        if end < 0:
            return 0, pos, in_fence
        line = text[pos:end]
        pos = end + 1
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and pos >= min_cut and not line.strip():
            return pos, pos, in_fence


def render_markdown(console: Console, text: str, width: int) -> list[Strip]:
    """``text`` as Markdown, rendered into lines exactly ``width`` cells wide.

    Links are shown as text with their target, never as terminal hyperlinks:
    the text is the model's, and a link escape is one more way out of the pane.
    """
    if not text.strip() or width <= 0:
        return []
    markdown = RichMarkdown(text, hyperlinks=False)
    options = console.options.update(width=width, highlight=False)
    lines = console.render_lines(markdown, options, pad=True)
    # Rich opens some blocks (lists, tables) with a blank line and closes
    # others with one; trimmed, pieces join with exactly one blank line.
    first, last = 0, len(lines)
    while first < last and _blank(lines[first]):
        first += 1
    while last > first and _blank(lines[last - 1]):
        last -= 1
    return Strip.from_lines(lines[first:last], width)


def _blank(line: list[Segment]) -> bool:
    """Nothing to see: only spaces, and no background (a code block's padding has one)."""
    return all(
        not seg.text.strip() and (seg.style is None or seg.style.bgcolor is None) for seg in line
    )


class _Piece:
    """A finished stretch of the text and its lines at the widths last used.

    Two widths are kept: a layout can try a width and settle on another (a
    scrollbar coming and going), and neither should render the piece again.
    """

    __slots__ = ("_by_width", "source", "strips")

    def __init__(self, source: str) -> None:
        self.source = source
        self.strips: list[Strip] = []
        """The lines at the width asked for last."""
        self._by_width: dict[int, list[Strip]] = {}

    def lines(self, console: Console, width: int) -> list[Strip]:
        strips = self._by_width.pop(width, None)
        if strips is None:
            strips = render_markdown(console, self.source, width)
            if strips:
                strips.append(Strip.blank(width))  # the paragraph break it ended with
        self._by_width[width] = strips  # most recent last
        while len(self._by_width) > 2:
            del self._by_width[next(iter(self._by_width))]
        self.strips = strips
        return strips

    @property
    def widths(self) -> list[int]:
        """The widths it has lines for, the one used last at the end."""
        return list(self._by_width)


class StreamedMarkdown(Widget):
    """Markdown text that grows at the end (``append``) or is set whole (``update``)."""

    DEFAULT_CSS = """
    StreamedMarkdown {
        height: auto;
    }
    """

    def __init__(self, markdown: str = "", *, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self._pieces: list[_Piece] = []
        self._starts: list[int] = []
        """Line where each finished piece starts, at ``_width`` (rebuilt on a new width)."""
        self._finished_lines = 0
        self._width = -1
        self._live = ""
        self._live_strips: list[Strip] | None = None
        """The live piece's lines at ``_width``; None: to be rendered."""
        self._scan = 0
        """Where the next split-point scan of ``_live`` starts (a line start)."""
        self._in_fence = False
        self._style: Style | None = None
        """``rich_style`` (it walks every ancestor's styles), kept until the next refresh."""
        if markdown:
            self._add(markdown)

    @property
    def source(self) -> str:
        """All the text so far, as given."""
        return "".join(p.source for p in self._pieces) + self._live

    @property
    def pieces(self) -> int:
        """How many finished pieces the text was cut into (the live one not counted)."""
        return len(self._pieces)

    def append(self, text: str) -> None:
        """Add ``text`` at the end; only the live piece is rendered again."""
        if text:
            self._add(text)
            self.refresh(layout=True)

    def update(self, markdown: str) -> None:
        """Replace the whole text."""
        self._pieces, self._starts, self._finished_lines = [], [], 0
        self._live, self._scan, self._in_fence = "", 0, False
        self._live_strips = None
        self._add(markdown)
        self.refresh(layout=True)

    def _add(self, text: str) -> None:
        self._live += text
        self._live_strips = None
        while True:
            cut, self._scan, self._in_fence = split_point(
                self._live, self._scan, self._in_fence, SEGMENT_CHARS
            )
            if not cut:
                return
            piece = _Piece(self._live[:cut])
            self._live, self._scan = self._live[cut:], 0
            self._pieces.append(piece)
            if self._width >= 0:  # rendered once, now, at the width in use
                self._starts.append(self._finished_lines)
                self._finished_lines += len(piece.lines(self.app.console, self._width))

    # -- the line API ------------------------------------------------------------

    def _at_width(self, width: int) -> None:
        """Have every piece's lines at ``width`` (a new width re-renders them once)."""
        if width == self._width:
            return
        console = self.app.console
        self._width = width
        self._starts, total = [], 0
        for piece in self._pieces:
            self._starts.append(total)
            total += len(piece.lines(console, width))
        self._finished_lines = total
        self._live_strips = None

    def _live_lines(self) -> list[Strip]:
        if self._live_strips is None:
            self._live_strips = render_markdown(self.app.console, self._live, self._width)
        return self._live_strips

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return container.width

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        self._at_width(width)
        return self._finished_lines + len(self._live_lines())

    def refresh(
        self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False
    ) -> Self:
        self._style = None  # a repaint may come from a changed style, here or above
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def render_line(self, y: int) -> Strip:
        if self._style is None:
            self._style = self.rich_style
        style = self._style
        width = self.size.width
        self._at_width(width)
        if y >= self._finished_lines:
            live = self._live_lines()
            strip = live[y - self._finished_lines] if y - self._finished_lines < len(live) else None
        else:
            i = bisect.bisect_right(self._starts, y) - 1
            strip = self._pieces[i].strips[y - self._starts[i]]
        if strip is None:
            return Strip.blank(width, style)
        return strip.apply_style(style)


_SAMPLE = (
    "# a\n\n*b* `c`\n\n- d\n\n1. e\n\n| f | g |\n|---|---|\n| 1 | 2 |\n\n> h\n\n"
    "```python\ni = 1\n```\n"
)


def warm_up() -> None:
    """Render a sample once, off-screen: the first render imports and builds
    what Markdown needs (markdown-it's rules, Pygments' lexer and theme),
    hundreds of ms on a busy box that would otherwise land on the first answer."""
    import io

    render_markdown(Console(file=io.StringIO(), width=40), _SAMPLE, 40)
