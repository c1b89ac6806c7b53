"""Textual's footer, rebuilt only when the keys it shows change.

Textual's ``Footer`` shows nothing until the first bindings update, then
rebuilds all its keys after every update (mount, focus, screen resume, a
screen switch), each rebuild restyling a dozen keys one by one: on the
console's first screen, several rebuilds before the first frame. This one
shows its keys from its first compose, folds updates that
arrive before a pending rebuild into it, and rebuilds only when what it would
show (keys, descriptions, enabled, tooltips) differs from what it shows.
"""

from __future__ import annotations

from collections.abc import Hashable

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer as TextualFooter


class Footer(TextualFooter):
    """The footer of a console screen (keys of the screen and the App)."""

    _rebuild_pending = False
    _shown: Hashable = None

    def _keys(self) -> Hashable:
        """What the footer shows, as a value to compare."""
        return tuple(
            (b.key, b.action, b.description, b.show, enabled, tooltip, b.group)
            for (_, b, enabled, tooltip) in self.screen.active_bindings.values()
        )

    def compose(self) -> ComposeResult:
        self._bindings_ready = True  # the screen's and the App's bindings exist now
        self._shown = self._keys()
        yield from super().compose()

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen and not self._rebuild_pending:
            self._rebuild_pending = True
            self.call_after_refresh(self._rebuild)

    async def _rebuild(self) -> None:
        self._rebuild_pending = False
        if self._keys() != self._shown:
            await self.recompose()
