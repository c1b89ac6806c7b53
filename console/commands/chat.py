"""``vllm-console chat``: one streamed answer to stdout, or a plain REPL.

The answer goes to stdout as it streams (pipe-friendly); reasoning, tool calls,
the figures line and the transcript path go to stderr, so ``chat "..." > out.txt``
keeps only the answer. The transcript is kept on disk like in the TUI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import TYPE_CHECKING, TextIO

from console.errors import ConsoleError, UsageError
from console.server_client import DEFAULT_URL
from console.validate import server_url

if TYPE_CHECKING:
    from console.chat import Answer, ChatSession, ChatSettings

# console.chat (and httpx with it) is imported inside the functions: every CLI
# start builds this parser, few of them chat.


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``chat``."""
    parser = subparsers.add_parser(
        "chat",
        help="chat with the served model (one answer, or a REPL without MESSAGE)",
        description=(
            "Stream an answer from an OpenAI-compatible server (vLLM). With MESSAGE, print "
            "one answer and exit; without, read messages from the terminal until an empty "
            "line or EOF. API key: VLLM_API_KEY or OPENAI_API_KEY."
        ),
    )
    parser.add_argument("message", nargs="?", metavar="MESSAGE", help="the message to send")
    parser.add_argument(
        "--url",
        type=server_url,
        dest="chat_url",
        metavar="URL",
        help=f"server URL (default: the active profile's, else {DEFAULT_URL})",
    )
    parser.add_argument("--model", help="served model name (default: the first in /v1/models)")
    parser.add_argument("--system", default="", help="system prompt")
    parser.add_argument("--temperature", type=float, help="sampling temperature (0-2)")
    parser.add_argument("--max-tokens", type=int, default=512, help="answer length cap (512)")
    parser.add_argument("--top-p", type=float, help="nucleus sampling (0-1]")
    parser.add_argument(
        "--no-transcript", action="store_true", help="do not keep a transcript on disk"
    )
    parser.add_argument(
        "--stats",
        action="store_true",
        help="after each answer, print its figures as one JSON line on stderr (TTFT, tok/s, "
        "and the answer's own speculative-decoding acceptance where the server gives it)",
    )
    parser.set_defaults(func=run_chat)


def run_chat(args: argparse.Namespace) -> int:
    import asyncio

    from console.chat import ChatSettings
    from console.session import Session

    if args.message is not None and not args.message.strip():
        raise UsageError("the message is empty; nothing was sent (leave it out for a REPL)")
    session = Session.create(url=args.chat_url or getattr(args, "url", None))
    settings = ChatSettings(
        temperature=args.temperature, max_tokens=args.max_tokens, top_p=args.top_p
    )
    settings.validate()
    return asyncio.run(_chat(session.url, session.api_key, args, settings))


async def _chat(
    url: str, api_key: str | None, args: argparse.Namespace, settings: ChatSettings
) -> int:
    from console.chat import ChatClient, ChatSession, Transcript

    chat = ChatSession(
        ChatClient(url, api_key=api_key),
        model=args.model,
        system=args.system,
        settings=settings,
        transcript=None if args.no_transcript else Transcript.new(),
        measure_acceptance=True,
    )
    try:
        if args.message is not None:
            answer = await _one(chat, args.message, sys.stdout, sys.stderr, stats=args.stats)
            return 1 if answer.error else 0
        return await _repl(chat, stats=args.stats)
    finally:
        if chat.transcript is not None:
            print(f"transcript: {chat.transcript.path}", file=sys.stderr)
        await chat.aclose()


async def _one(
    chat: ChatSession, text: str, out: TextIO, err: TextIO, *, stats: bool = False
) -> Answer:
    from console.chat import Answer, ContentDelta, ReasoningDelta, StreamError, tool_calls_text
    from console.sanitize import StreamCleaner, clean

    answer = Answer(t_request=0.0)
    in_reasoning = False
    # The model's text is untrusted: no escape sequence of it reaches the terminal.
    # One cleaner per stream, so a sequence split over two deltas is held back whole.
    content_cleaner, reasoning_cleaner = StreamCleaner(), StreamCleaner()
    async with contextlib.aclosing(chat.send(text, answer=answer)) as events:
        async for event in events:
            if isinstance(event, ReasoningDelta):
                if not in_reasoning:
                    err.write("[reasoning] ")
                    in_reasoning = True
                err.write(reasoning_cleaner.feed(event.text))
                err.flush()
            elif isinstance(event, ContentDelta):
                if in_reasoning:
                    err.write(reasoning_cleaner.flush() + "\n")
                    in_reasoning = False
                out.write(content_cleaner.feed(event.text))
                out.flush()
            elif isinstance(event, StreamError):
                out.write("\n")
                err.write(f"error: the server stopped the answer: {clean(event.message)}\n")
    err.write(reasoning_cleaner.flush())
    out.write(content_cleaner.flush())
    if answer.content and not answer.content.endswith("\n"):
        out.write("\n")
        out.flush()
    if answer.tool_calls:
        err.write(clean(tool_calls_text(answer.tool_calls)) + "\n")
    err.write(f"[{answer.stats_line()}]\n")
    if stats:
        err.write("stats: " + json.dumps(answer.stats(), allow_nan=False) + "\n")
    err.flush()
    return answer


async def _repl(chat: ChatSession, *, stats: bool = False) -> int:
    import asyncio

    from console.sanitize import clean

    print(
        f"chatting with {chat.client.url}; an empty line or ctrl+d ends, ctrl+c stops an answer",
        file=sys.stderr,
    )
    while True:
        try:
            text = await asyncio.to_thread(input, "you> ")
        except EOFError:
            print(file=sys.stderr)
            return 0
        if not text.strip():
            return 0
        task = asyncio.ensure_future(_one(chat, text, sys.stdout, sys.stderr, stats=stats))
        try:
            await task
        except ConsoleError as exc:
            print(f"error: {clean(str(exc))}", file=sys.stderr)
        except (KeyboardInterrupt, asyncio.CancelledError):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            print("\n[stopped]", file=sys.stderr)
