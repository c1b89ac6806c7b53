"""Subcommands of this area (placeholder until the area lands)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this area's subcommands."""


def run_tui(args: argparse.Namespace) -> int:
    """Open the Textual console."""
    from console.errors import ConsoleError

    raise ConsoleError("the TUI is not built yet; use the headless subcommands")
