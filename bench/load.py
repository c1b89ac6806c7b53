"""Steady load for monitoring benchmarks: streamed chat requests in a loop.

``python -m bench.load URL [--concurrency 3] [--max-tokens 24]`` runs in its
own process (so its CPU is never counted as the monitor's), keeps
``--concurrency`` streamed chat completions in flight against ``URL`` until
killed, and prints one line per finished request batch to stderr. Prompts
repeat their own words so an n-gram speculative server finds drafts (spec
decode counters move).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx

PROMPTS = (
    "Repeat this list three times: red, green, blue, red, green, blue.",
    "Count from one to twenty in words, separated by commas.",
    "Write the alphabet twice, letters separated by spaces.",
    "Say 'the cat sat on the mat' five times.",
)


async def _one(
    client: httpx.AsyncClient, url: str, model: str, prompt: str, max_tokens: int
) -> int:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": True,
        "temperature": 0,
    }
    chunks = 0
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks += 1
    return chunks


async def _worker(url: str, model: str, i: int, max_tokens: int, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=120.0) as client:
        n = i
        while not stop.is_set():
            try:
                await _one(client, url, model, PROMPTS[n % len(PROMPTS)], max_tokens)
            except httpx.HTTPError as exc:
                print(f"load: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                await asyncio.sleep(1.0)
            n += 1


async def run(url: str, concurrency: int, max_tokens: int) -> None:
    url = url.rstrip("/")
    async with httpx.AsyncClient(timeout=10.0) as client:
        model = (await client.get(url + "/v1/models")).json()["data"][0]["id"]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("READY", flush=True)
    tasks = [
        asyncio.create_task(_worker(url, model, i, max_tokens, stop)) for i in range(concurrency)
    ]
    await stop.wait()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.contextmanager
def load(url: str, concurrency: int = 3, max_tokens: int = 24) -> Iterator[subprocess.Popen[str]]:
    """Run the load generator in its own process while the block runs."""
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "bench.load", url),
            *("--concurrency", str(concurrency), "--max-tokens", str(max_tokens)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "READY":
            raise RuntimeError(f"bench.load did not start against {url} (exit {proc.poll()})")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--concurrency", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=24)
    args = ap.parse_args(argv)
    asyncio.run(run(args.url, args.concurrency, args.max_tokens))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
