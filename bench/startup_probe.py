"""Child process for the startup bench: start an app headless, print FRAME at its first frame.

``python -m bench.startup_probe hello|console``; the parent times it from
spawn to the FRAME line, so imports and interpreter start count too. The line
carries the process's CPU seconds (all threads) at that moment.

The first frame is the first whole screen Textual hands to its driver (a
``LayoutUpdate`` outside a batch: what a terminal would show; headless, the
driver drops it). Both apps are timed to the same event. Work an app starts
after that frame (the console's history, sampler and chart) is not part of
it, and it runs on until the app exits (the parent's CPU-to-exit figure).
"""

from __future__ import annotations

import resource
import sys
from typing import Any


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

    from textual._compositor import LayoutUpdate

    display = app._display
    seen = False

    def first_frame(screen: Any, renderable: Any) -> None:
        nonlocal seen
        display(screen, renderable)
        if seen or not isinstance(renderable, LayoutUpdate) or app._batch_count:
            return
        seen = True
        # CPU of the whole process (every thread) up to the first frame
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(f"FRAME {usage.ru_utime + usage.ru_stime:.4f}", flush=True)
        app.exit()

    app._display = first_frame  # type: ignore[method-assign]
    app.run(headless=True, size=(120, 40))


if __name__ == "__main__":
    main()
