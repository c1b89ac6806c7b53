"""Chat pane: a 4,000-token answer streamed at 1,000 tokens/s into the chat view.

The answer comes over real HTTP from ``bench.sse_source`` (another process)
through the console's own chat client (console.chat.ChatSession, transcript
included) and into a Markdown widget in a headless Textual app. Display lag
of token i = the first screen refresh that shows it − the moment the source
was due to produce it. Two consumers in the same run:

- ``stream``: the console's pattern, ``MarkdownStream`` (Markdown.get_stream),
  which coalesces fragments while the widget is busy;
- ``naive``: ``Markdown.update(whole_text)`` per token, which re-parses the
  whole answer every time and falls behind (capped at ``NAIVE_CAP_S``; tokens
  not shown by then count with their lag at the cap, a lower bound).

Goals: stream p99 ≤ 100 ms, lag not growing (last-quarter p99 at most 25 ms
above the first quarter's), naive p99 ≥ 5× stream p99.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Markdown

from bench.common import MarkdownProbe, lag_stats, sse_source
from bench.results import Goal, record
from console.chat import ChatClient, ChatSession, ContentDelta, Transcript

TOKENS = 4000
RATE = 1000.0
NAIVE_CAP_S = 30.0
SIZE = (100, 40)


class PaneApp(App[None]):
    """A chat-like pane: an anchored scroll with one Markdown answer."""

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="scroll"):
            yield Markdown(id="answer")

    def on_mount(self) -> None:
        self.query_one("#scroll", VerticalScroll).anchor()


async def _consume(app: PaneApp, url: str, mode: str, folder: Path) -> None:
    md = app.query_one("#answer", Markdown)
    session = ChatSession(ChatClient(url), transcript=Transcript.new(folder))
    try:
        if mode == "stream":
            stream = Markdown.get_stream(md)
            try:
                async for event in session.send("go"):
                    if isinstance(event, ContentDelta):
                        await stream.write(event.text)
            finally:
                await stream.stop()
        else:
            text = ""
            async for event in session.send("go"):
                if isinstance(event, ContentDelta):
                    text += event.text
                    await md.update(text)
    finally:
        await session.aclose()


async def run_mode(url: str, mode: str) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    app = PaneApp()
    with MarkdownProbe() as probe:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            t_start = time.monotonic()
            cap = NAIVE_CAP_S if mode == "naive" else 60.0
            capped = False
            try:
                await asyncio.wait_for(_consume(app, url, mode, folder), cap)
            except TimeoutError:
                capped = True
            await pilot.pause()
            await pilot.pause()
            t_end = time.monotonic()
    async with httpx.AsyncClient() as client:
        info = (await client.get(url + "/stamps")).json()
    stamps: list[float] = info["stamps"]
    tokens: list[str] = info["tokens"]
    if not stamps:
        raise RuntimeError("the SSE source recorded no stream")
    t0 = stamps[0]
    due = [t0 + i / RATE for i in range(len(tokens))]
    lengths = []
    total = 0
    for tok in tokens:
        total += len(tok)
        lengths.append(total)
    shown = probe.display_times(lengths)
    lags = [(s if s is not None else t_end) - d for s, d in zip(shown, due, strict=True)]
    missing = sum(1 for s in shown if s is None)
    src_lag = [s - d for s, d in zip(stamps, due, strict=False)]
    stats = lag_stats(lags)
    stats.update(
        {
            "tokens": len(tokens),
            "not_shown": missing,
            "capped": capped,
            "source_behind_p99_ms": sorted(src_lag)[int(0.99 * (len(src_lag) - 1))] * 1000,
            "seconds": t_end - t_start,
        }
    )
    return stats


async def main() -> dict[str, Any]:
    with sse_source(TOKENS, RATE) as url:
        stream = await run_mode(url, "stream")
        naive = await run_mode(url, "naive")
    ratio = (naive["p99_ms"] / stream["p99_ms"]) if stream["p99_ms"] else None
    growth = stream["last_quarter_p99_ms"] - stream["first_quarter_p99_ms"]
    note = (
        f"MarkdownStream in a minimal chat pane fed by console.chat.ChatSession; "
        f"naive capped at {NAIVE_CAP_S:.0f} s "
        f"({naive['not_shown']} of {naive['tokens']} tokens not shown by then, counted at the cap)."
    )
    entry = record(
        "chat_pane",
        title="Chat pane: 4,000 tokens at 1,000 tok/s",
        goals=[
            Goal("display lag p99", stream["p99_ms"], "ms", "<=", 100),
            Goal("lag growth (last − first quarter p99)", growth, "ms", "<=", 25),
            Goal("naive p99 / stream p99", ratio, "x", ">=", 5),
        ],
        metrics={"stream": stream, "naive": naive},
        note=note,
    )
    return entry


if __name__ == "__main__":
    import json

    print(json.dumps(asyncio.run(main()), indent=2))
