"""The bench screen (placeholder until the area lands)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class BenchScreen(Screen):
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("bench: coming soon")
        yield Footer()
