"""The TUI entry points: ``vllm-console`` (bare), ``demo`` and ``web``.

Textual is imported inside the functions so the headless subcommands stay
fast and work without a terminal.
"""

from __future__ import annotations

import argparse

WEB_HOST = "127.0.0.1"
WEB_PORT = 8765
"""Not 8000: that is vLLM's default port."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo`` and ``web``."""
    web = subparsers.add_parser(
        "web",
        help="serve the TUI to a browser on loopback (no authentication)",
        description=(
            "Serve the console to a web browser with textual-serve. It has no "
            "authentication: it binds to 127.0.0.1 unless --host says otherwise; "
            "reach it from another machine through an SSH tunnel."
        ),
    )
    web.add_argument("--host", default=WEB_HOST, help=f"address to bind (default {WEB_HOST})")
    web.add_argument("--port", type=int, default=WEB_PORT, help=f"port (default {WEB_PORT})")
    web.set_defaults(func=run_web)


def run_tui(args: argparse.Namespace) -> int:
    """Open the console: ``--url`` attaches to a server, else the last active profile."""
    from console.app import ConsoleApp
    from console.session import Session

    session = Session.create(url=getattr(args, "url", None), profile=getattr(args, "profile", None))
    ConsoleApp(session=session).run()
    return 0


def run_web(args: argparse.Namespace) -> int:
    """Serve the TUI to a browser (placeholder until the web area lands)."""
    from console.errors import ConsoleError

    raise ConsoleError("web is not built yet")
