"""The server screen (placeholder until the area lands)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class ServerScreen(Screen):
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("server: coming soon")
        yield Footer()
