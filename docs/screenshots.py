"""Regenerate the chat and shell screenshots in docs/img/ against a real server.

    VLLM_CONSOLE_STATE_DIR=/tmp/vc-shots .venv/bin/python docs/screenshots.py http://127.0.0.1:8101

Drives the console with a Pilot exactly as a user would (keys, a real answer
streamed from the server) and saves SVGs with ``App.save_screenshot``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from textual.widgets import Input, TextArea

from console.app import ConsoleApp
from console.screens.chat import ChatScreen
from console.session import Session

IMG = Path(__file__).parent / "img"
PROMPT = "Repeat after me: the cat sat on the mat. The cat sat on the mat."


def no_blink(app: ConsoleApp) -> None:
    for field in app.screen.query(Input):
        field.cursor_blink = False
    for area in app.screen.query(TextArea):
        area.cursor_blink = False


async def chat_shot(url: str, size: tuple[int, int], name: str, settings: bool) -> None:
    app = ConsoleApp(session=Session(url=url), start_mode="chat")
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        screen.query_one("#chat-max-tokens", Input).value = "48"
        screen.query_one("#chat-temperature", Input).value = "0"
        await pilot.click("#chat-input")
        await pilot.press(*PROMPT, "enter")
        deadline = time.monotonic() + 300
        while not (screen.chat and screen.chat.answers and screen.chat.answers[-1].t_end):
            if time.monotonic() > deadline:
                raise SystemExit("no answer within 300 s")
            await pilot.pause(0.1)
        if settings:
            await pilot.press("ctrl+o")
        await pilot.press("escape")
        no_blink(app)
        await pilot.pause(0.5)
        app.save_screenshot(str(IMG / f"{name}.svg"))
        print(IMG / f"{name}.svg", screen.chat.answers[-1].stats_line())


async def shell_shots(url: str) -> None:
    app = ConsoleApp(session=Session(url=url), start_mode="chat")
    async with app.run_test(size=(80, 24)) as pilot:
        no_blink(app)
        await pilot.press("f1")
        await pilot.pause(1.0)
        app.save_screenshot(str(IMG / "help-80x24.svg"))
        await pilot.press("escape", "ctrl+p")
        await pilot.pause(0.5)
        await pilot.press(*"server")
        await pilot.pause(1.5)
        app.save_screenshot(str(IMG / "palette-80x24.svg"))
        print("help and palette saved")


async def main(url: str) -> None:
    IMG.mkdir(exist_ok=True)
    await chat_shot(url, (80, 24), "chat-80x24", settings=False)
    await chat_shot(url, (160, 48), "chat-160x48", settings=False)
    await shell_shots(url)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"))
