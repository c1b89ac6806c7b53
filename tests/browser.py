"""Headless Chromium driven over the DevTools protocol (for the web-mode tests).

Just enough CDP to open a page, watch the WebSocket frames it receives, read
the DOM and take a screenshot. Chromium is Debian's ``chromium`` package
(scripts/install-system.sh installs it); a missing browser fails the test
with that reason.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no chromium on PATH: run scripts/install-system.sh (Debian package chromium)")


class Browser:
    """One headless Chromium with a private profile; ``page()`` gives its first tab."""

    def __init__(self, profile_dir: Path) -> None:
        self.profile_dir = profile_dir
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Browser:
        self.proc = subprocess.Popen(
            [
                chromium_binary(),
                "--headless=new",
                "--no-sandbox",  # root in a container: no user namespaces for the sandbox
                "--disable-gpu",
                "--no-first-run",
                "--window-size=1280,800",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile_dir}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)

    def debug_port(self, timeout: float = 60.0) -> int:
        """Chromium writes the port it chose to DevToolsActivePort."""
        marker = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"chromium exited with {self.proc.returncode} before it listened")
            with contextlib.suppress(OSError, ValueError, IndexError):
                return int(marker.read_text().splitlines()[0])
            time.sleep(0.1)
        pytest.fail(f"chromium wrote no {marker} within {timeout:.0f} s")


class Page:
    """A CDP session on one tab: commands, and the events it has seen."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, port: int) -> Page:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        page = next(t for t in targets if t.get("type") == "page")
        ws = await session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        return cls(ws)

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            elif "method" in data:
                self.events.append(data)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        await self.ws.send_json({"id": ident, "method": method, "params": params})
        reply = await asyncio.wait_for(future, 60)
        if "error" in reply:
            raise AssertionError(f"CDP {method}: {reply['error']}")
        return reply.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def navigate(self, url: str, timeout: float = 60.0) -> None:
        seen = len(self.events)
        await self.send("Page.navigate", url=url)
        await self.wait_for(
            lambda: any(e["method"] == "Page.loadEventFired" for e in self.events[seen:]),
            timeout,
            f"the page at {url} to load",
        )

    async def wait_for(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            await asyncio.sleep(0.1)
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")

    def websocket_bytes(self) -> bytes:
        """Every WebSocket frame the page received (binary frames decoded)."""
        out = bytearray()
        for event in self.events:
            if event["method"] != "Network.webSocketFrameReceived":
                continue
            response = event["params"]["response"]
            payload = response.get("payloadData", "")
            out += base64.b64decode(payload) if response.get("opcode") == 2 else payload.encode()
        return bytes(out)

    def websockets_created(self) -> int:
        return sum(1 for e in self.events if e["method"] == "Network.webSocketCreated")

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
