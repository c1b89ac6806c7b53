"""Child process for the startup bench: start an app headless, print FRAME at its first frame.

``python -m bench.startup_probe hello|console``; the parent times it from
spawn to the FRAME line, so imports and interpreter start count too.
"""

from __future__ import annotations

import sys


def main() -> None:
    which = sys.argv[1]
    if which == "hello":
        from textual.app import App, ComposeResult
        from textual.widgets import Footer, Header, Static

        class Hello(App[None]):
            def compose(self) -> ComposeResult:
                yield Header()
                yield Static("hello, world")
                yield Footer()

        app: App[None] = Hello()
    else:
        from console.app import ConsoleApp
        from console.session import Session

        url = sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:9"
        app = ConsoleApp(Session.create(url=url, remember=False))

    async def first_frame(pilot: object) -> None:
        def shown() -> None:
            print("FRAME", flush=True)
            app.exit()

        app.call_after_refresh(shown)

    app.run(headless=True, size=(120, 40), auto_pilot=first_frame)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
