"""A stand-in for a fast model: OpenAI-style chat chunks at a fixed token rate.

Run as a separate process (``python -m bench.sse_source --port 0``) so the
console under test shares the machine with its source the way it shares it
with vLLM. It prints ``PORT <n>`` once listening. Each streamed answer's
actual send times (``time.monotonic()``, which is system-wide on Linux) are
served at ``GET /stamps`` afterwards, so display lag can be measured per token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from aiohttp import web

MODEL = "bench-sse"


def answer_tokens(n: int) -> list[str]:
    """``n`` tokens of varied Markdown: headings, paragraphs, lists, code, a table."""
    text = (
        "the server keeps a cache of keys and values for every token so that each new "
        "token only needs one step of attention over what came before and this is why "
        "long answers stay fast while the prompt grows"
    )
    words = text.split(" ")
    code = [
        "```python\n",
        "def",
        " step",
        "(x",
        "):\n",
        "    return",
        " x",
        " +",
        " 1\n",
        "```\n\n",
    ]
    table = ["| a", " | b", " |\n", "|---", "|---", "|\n", "| 1", " | 2", " |\n\n"]
    out: list[str] = []
    section = 0
    while len(out) < n:
        section += 1
        out += [f"## Section {section}\n\n"]
        for i in range(40):
            out.append(("" if i == 0 else " ") + words[(section * 7 + i) % len(words)])
        out.append(".\n\n")
        for item in range(4):
            out.append("- item")
            for i in range(6):
                out.append(" " + words[(section + item * 3 + i) % len(words)])
            out.append("\n")
        out.append("\n")
        out += code if section % 2 else table
    return out[:n]


def chunk(delta: dict[str, object], finish: str | None = None, done: int | None = None) -> bytes:
    """One chat chunk; with ``done`` (tokens so far) it carries usage, as vLLM does
    on every chunk when the client asks for ``continuous_usage_stats``."""
    data: dict[str, object] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if done is not None:
        data["usage"] = {"prompt_tokens": 10, "completion_tokens": done, "total_tokens": done + 10}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


class Source:
    def __init__(self, tokens: int, rate: float) -> None:
        self.tokens = answer_tokens(tokens)
        self.rate = rate
        self.stamps: list[float] = []

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def stamps_handler(self, request: web.Request) -> web.Response:
        return web.json_response({"stamps": self.stamps, "tokens": self.tokens})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        continuous = bool((body.get("stream_options") or {}).get("continuous_usage_stats"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(chunk({"role": "assistant", "content": ""}))
        stamps: list[float] = []
        t0 = time.monotonic()
        i, n = 0, len(self.tokens)
        while i < n:
            due = t0 + i / self.rate
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
                now = time.monotonic()
            # Every token due by now goes out in one write: at thousands of
            # tokens/s a write per token would make this process the bottleneck.
            last = min(n, int((now - t0) * self.rate) + 1)
            body = b"".join(
                chunk({"content": self.tokens[j]}, done=j + 1 if continuous else None)
                for j in range(i, max(last, i + 1))
            )
            await resp.write(body)
            sent = time.monotonic()
            stamps.extend([sent] * (max(last, i + 1) - i))
            i = max(last, i + 1)
        await resp.write(chunk({}, finish="length"))
        n = len(self.tokens)
        usage = {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": n + 10}
        tail = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "model": MODEL}
        await resp.write(b"data: " + json.dumps({**tail, "choices": [], "usage": usage}).encode())
        await resp.write(b"\n\ndata: [DONE]\n\n")
        self.stamps = stamps
        return resp


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=4000)
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args()
    source = Source(args.tokens, args.rate)
    app = web.Application()
    app.router.add_get("/v1/models", source.models)
    app.router.add_get("/stamps", source.stamps_handler)
    app.router.add_post("/v1/chat/completions", source.chat)

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"PORT {port}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
