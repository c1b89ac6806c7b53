"""Web mode against the real ``vllm-console web`` server: real HTTP and
WebSocket clients, and headless Chromium opening the printed URL.

Refused: a missing or wrong token, a foreign ``Host`` (DNS rebinding) and a
cross-origin WebSocket (``Origin: http://evil.example``). Accepted: the
printed URL, whose token becomes a cookie the browser's WebSocket carries.
The console behind it is attached to a dead URL (no vLLM needed): the
dashboard renders either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import pytest

from tests.browser import Browser, Page
from tests.helpers import free_port, wait_for

ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|.)")
CONSOLE = [sys.executable, "-m", "console"]
ARTIFACTS = Path(__file__).resolve().parent.parent / ".test-artifacts"


@dataclass
class WebServer:
    proc: subprocess.Popen[str]
    port: int
    url: str  # as printed: with the token
    lines: list[str]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return self.url.split("token=", 1)[1]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["VLLM_CONSOLE_STATE_DIR"] = str(tmp_path / "state")
    env["VLLM_CONSOLE_CONFIG_DIR"] = str(tmp_path / "config")
    env.pop("VLLM_API_KEY", None)
    return env


def _start(tmp_path: Path, *extra: str) -> Iterator[WebServer]:
    port = free_port()
    proc = subprocess.Popen(
        [*CONSOLE, "--url", "http://127.0.0.1:9", "web", "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(tmp_path),
        start_new_session=True,
    )
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    try:
        wait_for(
            lambda: any(ln.startswith("open ") for ln in lines) or proc.poll() is not None,
            60,
            "web to print its URL",
        )
        opened = [ln for ln in lines if ln.startswith("open ")]
        assert opened, f"web exited {proc.poll()} without a URL: {lines}"

        def answers() -> bool:
            try:
                httpx.get(f"http://127.0.0.1:{port}/static/css/xterm.css", timeout=2)
                return True
            except httpx.HTTPError:
                return False

        wait_for(answers, 60, f"web to answer on port {port}")
        yield WebServer(proc, port, opened[0].removeprefix("open "), lines)
    finally:
        # SIGINT: textual-serve stops its console sessions; then the group, whatever is left.
        os.killpg(proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebServer]:
    yield from _start(tmp_path)


def test_web_prints_a_token_url_once_and_it_opens_the_page(web: WebServer) -> None:
    assert re.fullmatch(rf"http://127\.0\.0\.1:{web.port}/\?token=[\w-]{{40,}}", web.url)
    with httpx.Client(timeout=10) as client:
        first = client.get(web.url)
        assert first.status_code == 303 and first.headers["location"] == "/"
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        page = client.get(web.base + "/")  # the cookie now stands for the token
        assert page.status_code == 200
        assert "textual" in page.text.lower()
    assert sum(web.token in line for line in web.lines) == 1, web.lines


@pytest.mark.parametrize(
    ("path", "headers", "why"),
    [
        ("/", {}, "token"),
        ("/?token=wrong", {}, "token"),
        ("/?token={token}", {"Host": "evil.example:{port}"}, "Host"),
        ("/?token={token}", {"Host": "127.0.0.1.nip.io:{port}"}, "Host"),
        ("/?token={token}", {"Origin": "http://evil.example"}, "cross-origin"),
        ("/download/x", {}, "token"),
    ],
)
def test_web_refuses_http(web: WebServer, path: str, headers: dict[str, str], why: str) -> None:
    fill = {"token": web.token, "port": web.port}
    response = httpx.get(
        web.base + path.format(**fill),
        headers={k: v.format(**fill) for k, v in headers.items()},
        timeout=10,
    )
    assert response.status_code == 403, response.text
    assert why in response.text
    assert "\n" not in response.text.strip()


async def _ws(web: WebServer, *, query: str = "", headers: dict[str, str] | None = None) -> int:
    """Open the console WebSocket; the handshake status (101 = a console started)."""
    url = f"ws://127.0.0.1:{web.port}/ws?width=80&height=24{query}"
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers or {}) as ws:
                # A console answers with its screen: wait for its first bytes.
                message = await asyncio.wait_for(ws.receive(), 60)
                assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT)
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


async def test_web_refuses_websockets_without_token_or_from_elsewhere(web: WebServer) -> None:
    origin = {"Origin": f"http://127.0.0.1:{web.port}"}
    token = f"&token={web.token}"
    assert await _ws(web, headers=origin) == 403
    assert await _ws(web, query="&token=nope", headers=origin) == 403
    assert await _ws(web, query=token, headers={"Origin": "http://evil.example"}) == 403
    assert await _ws(web, query=token, headers={"Origin": "null"}) == 403
    evil_host = {**origin, "Host": f"evil.example:{web.port}"}
    assert await _ws(web, query=token, headers=evil_host) == 403
    # The right token from the right origin drives a console.
    assert await _ws(web, query=token, headers=origin) == 101


def test_web_no_auth_still_checks_host_and_origin(tmp_path: Path) -> None:
    for server in _start(tmp_path, "--no-auth"):
        assert server.url == f"http://127.0.0.1:{server.port}/"
        assert httpx.get(server.base + "/", timeout=10).status_code == 200
        evil = httpx.get(server.base + "/", headers={"Host": "evil.example"}, timeout=10)
        assert evil.status_code == 403
        assert any("NO authentication" in line for line in server.lines)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--port", "70000"], "out of range"),
        (["--port", "0"], "out of range"),
        (["--port", "http"], "not a port"),
        (["--host", "no such host"], "not a host name"),
        (["--host", "nosuch.invalid"], "does not resolve"),
        (["--host", "192.0.2.1"], "Cannot assign requested address"),
    ],
)
def test_web_bad_port_or_host_exits_2(tmp_path: Path, args: list[str], says: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "console", "web", *args],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def _terminal_text(page: Page) -> str:
    return ANSI.sub("", page.websocket_bytes().decode("utf-8", "replace"))


async def test_web_in_headless_chromium(web: WebServer, tmp_path: Path) -> None:
    """The printed URL opens the dashboard in a real browser; the bare URL does not."""
    with Browser(tmp_path / "chromium") as browser:
        port = browser.debug_port()
        async with aiohttp.ClientSession() as session:
            page = await Page.open(session, port)
            try:
                await page.send("Network.enable")
                await page.send("Page.enable")
                # Without the token: a 403 page, no terminal, no WebSocket.
                await page.navigate(web.base + "/")
                text = await page.evaluate("document.body.innerText")
                assert "403 Forbidden" in text and "token" in text, text
                assert await page.evaluate("document.querySelector('.textual-terminal')") is None
                assert page.websockets_created() == 0
                # The printed URL: cookie, redirect, terminal, dashboard.
                await page.navigate(web.url)
                assert await page.evaluate("location.href") == web.base + "/"
                await page.wait_for(
                    lambda: (
                        "Throughput" in _terminal_text(page)
                        and "Speculative decoding" in _terminal_text(page)
                    ),
                    120,
                    "the dashboard in the browser's terminal",
                )
                connected = "document.querySelector('.textual-terminal.-connected') !== null"
                assert await page.evaluate(connected)
                ARTIFACTS.mkdir(exist_ok=True)
                shot = ARTIFACTS / "web-dashboard.png"
                await page.screenshot(shot)
                assert shot.stat().st_size > 10_000
                shots = os.environ.get("VLLM_CONSOLE_SCREENSHOT_DIR")
                if shots:
                    shutil.copy(shot, Path(shots) / shot.name)
            finally:
                await page.close()
