"""App-level messages: requests from keys or the command palette, and news screens share.

Screens never call each other. A request (``ConsoleRequest`` subclasses) is
posted to the App (``self.app.post_message(StartServer())``); the App switches
to the screen named by ``mode`` and re-posts the request there, so the screen
that owns the work handles it with ``@on(ServerActionRequested)``. Requests do
not bubble, so a screen that does not handle one drops it silently.

News (``ActiveProfileChanged``, ``ServerStatusChanged``) goes the other way:
the App updates ``app.session`` and re-posts the news to every screen that
exists, whichever mode is showing.

Only ``console/app.py``, ``screens/`` and ``widgets/`` may import this module
(it imports Textual).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from textual.message import Message

if TYPE_CHECKING:
    from console.history.store import Event
    from console.runtime.base import ServerStatus

ServerAction = Literal["start", "stop", "restart"]


class ConsoleRequest(Message, bubble=False):
    """A request routed by the App to the screen of ``mode`` (see the module docstring)."""

    mode: ClassVar[str] = ""


@dataclass
class ServerActionRequested(ConsoleRequest, bubble=False):
    """Start, stop or restart the active profile's server (handled by the server screen)."""

    action: ServerAction
    mode: ClassVar[str] = "server"


@dataclass
class BuildRequested(ConsoleRequest, bubble=False):
    """Build the active profile's image (handled by the build screen)."""

    mode: ClassVar[str] = "build"


@dataclass
class BenchRequested(ConsoleRequest, bubble=False):
    """Run the benchmark with the screen's current settings (handled by the bench screen)."""

    mode: ClassVar[str] = "bench"


@dataclass
class ChatRequested(ConsoleRequest, bubble=False):
    """Open the chat, optionally with text to send (handled by the chat screen)."""

    text: str | None = None
    mode: ClassVar[str] = "chat"


@dataclass
class ProfileSwitchRequested(Message):
    """Make the named profile active. Any screen may post it; the App handles it."""

    name: str


@dataclass
class ActiveProfileChanged(Message, bubble=False):
    """The active profile changed; ``app.session`` already holds the new one."""

    name: str
    url: str


@dataclass
class ServerStatusChanged(Message):
    """A runtime reported a new server status. The server screen posts it (it bubbles to
    the App); the App stores it in ``app.session.server_status``, moves the
    session URL to ``status.url`` when the status is for the active profile, and
    re-posts a ``ServerStatusBroadcast`` to every screen."""

    status: ServerStatus


@dataclass
class ServerStatusBroadcast(Message, bubble=False):
    """The App's copy of ``ServerStatusChanged`` delivered to every screen."""

    status: ServerStatus


@dataclass
class HistoryEventDetected(Message):
    """The session's recorder detected an event (restart, KV high, ...); posted to the
    App from the sampler's thread. The App shows alerts as notices."""

    event: Event
