"""Entry point: the TUI by default, headless subcommands for scripts.

Each area registers its subcommands from its own module under
``console.commands`` (see ``COMMAND_MODULES``), so areas stay independent.
Exit status: 0 success, 1 a finding or failure the user must act on, 2 bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from console import __version__
from console.errors import ConsoleError
from console.validate import server_url

# Each module defines ``register(subparsers) -> None`` and sets ``func`` on the
# parsers it adds; ``func(args) -> int`` returns the exit status.
COMMAND_MODULES = (
    "console.commands.profiles",
    "console.commands.runtime",
    "console.commands.server",
    "console.commands.build",
    "console.commands.monitor",
    "console.commands.history",
    "console.commands.chat",
    "console.commands.bench",
    "console.commands.tui",
)


class FleetUrlAction(argparse.Action):
    """``--url`` given more than once: ``url`` keeps the first (every command that
    attaches to one server reads it), ``urls`` collects them all (the fleet)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[no-untyped-def]
        urls = [*(getattr(namespace, "urls", None) or []), values]
        namespace.urls = urls
        if getattr(namespace, self.dest, None) is None:
            setattr(namespace, self.dest, values)


def add_fleet_args(parser: argparse.ArgumentParser) -> None:
    """``--discover`` and ``--fleet`` (the TUI and ``monitor``)."""
    from console.fleet import parse_port_range

    parser.add_argument(
        "--discover",
        type=parse_port_range,
        action="append",
        default=None,
        metavar="HOST:PORT-PORT",
        help="probe a port range for vLLM servers and add them to the fleet (repeatable)",
    )
    parser.add_argument(
        "--fleet",
        action="store_true",
        help="the fleet: every --url, every --discover find and every running profile's server",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vllm-console",
        description="Run one vLLM box end to end: profiles, build, serve, monitor, chat, bench.",
    )
    parser.add_argument("--version", action="version", version=f"vllm-console {__version__}")
    parser.add_argument(
        "--url",
        type=server_url,
        action=FleetUrlAction,
        help="attach the TUI to a running vLLM server (API key: VLLM_API_KEY or "
        "OPENAI_API_KEY); more than once: a fleet, shown in the fleet view",
    )
    add_fleet_args(parser)
    parser.add_argument("--profile", help="the profile the TUI starts with")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        from console.commands.tui import run_tui

        func = run_tui
    try:
        return int(func(args) or 0)
    except ConsoleError as exc:
        from console.sanitize import clean

        # A ConsoleError may quote a server's or a container's words (error bodies).
        print(f"error: {clean(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
