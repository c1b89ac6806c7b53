"""What every console screen shares: worker errors reach the App; a mode's
first show is styled once.

Textual posts ``Worker.StateChanged`` to the node that started the worker and
does not bubble it, so the App would never hear about a screen's failed
worker. ``ForwardWorkerErrors`` re-posts failures to the App, whose single
handler turns them into a notice. The App mixes it into every screen of its
modes itself; a widget that runs its own workers can forward the same way with
:func:`forward_worker_error`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from textual import events, on
from textual.dom import DOMNode
from textual.screen import Screen
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from console.session import Session


@runtime_checkable
class HasSession(Protocol):
    """An App that carries the console's :class:`console.session.Session`."""

    session: Session


def session_of(node: DOMNode) -> Session:
    """The console session of ``node``'s App: the typed way screens reach the
    server URL, the active profile, the samplers (``ConsoleApp`` has one)."""
    app = node.app
    if not isinstance(app, HasSession):
        raise TypeError(f"{type(app).__name__} has no console session")
    return app.session


def forward_worker_error(node: DOMNode, event: Worker.StateChanged) -> None:
    """Send a failed worker's state change on to the App (a no-op for other states)."""
    if event.state == WorkerState.ERROR and node is not node.app:
        node.app.post_message(Worker.StateChanged(event.worker, event.state))


class ForwardWorkerErrors(Screen):
    """A screen whose failed workers become App notices."""

    @on(Worker.StateChanged)
    def _forward_worker_error(self, event: Worker.StateChanged) -> None:
        forward_worker_error(self, event)


class StyledOnShow(Screen):
    """A mode screen that is not restyled when first shown.

    Textual restyles a whole screen on every resume, and a mode's first show
    resumes it twice, right after mounting styled it: two redundant passes over
    every widget of the first screen before the first frame. Until the screen is
    first hidden, a resume restyles only when CSS changed since it was styled
    (the App marks a screen it creates as styled with the current CSS).
    """

    _hidden_once = False

    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        # Screen's own handler runs after this one (Textual calls each class's) and
        # reads refresh_styles.
        if not self._hidden_once and self._css_update_count == self.app._css_update_count:
            event.refresh_styles = False

    def _on_screen_suspend(self) -> None:
        self._hidden_once = True


def with_worker_errors(cls: type[Screen]) -> type[Screen]:
    """``cls`` with ``ForwardWorkerErrors`` and ``StyledOnShow`` mixed in (same
    name, so CSS still matches)."""
    if issubclass(cls, ForwardWorkerErrors) and issubclass(cls, StyledOnShow):
        return cls
    bases = tuple(b for b in (ForwardWorkerErrors, StyledOnShow) if not issubclass(cls, b))
    return type(cls.__name__, (cls, *bases), {"__module__": cls.__module__})
