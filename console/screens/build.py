"""The build screen (placeholder until the area lands)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class BuildScreen(Screen):
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("build: coming soon")
        yield Footer()
