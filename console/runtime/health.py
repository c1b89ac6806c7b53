"""``GET /health`` as the runtimes read it: not just up or down, but which.

vLLM answers 200 when ready and 503 once its engine core is dead (the API
process lives on); a refused connection means nothing listens any more (the
API server is gone), while a timeout may only mean a busy server. ``status``
tells these apart, so a dead engine is never shown as "starting".
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Health:
    code: int | None
    """The HTTP status; None when no answer came."""
    error: str = ""
    """Why no answer came (when ``code`` is None)."""
    refused: bool = False
    """Nothing listens: the connection was refused, or closed without an answer
    (what a Docker port proxy does when nothing listens behind it)."""

    @property
    def ok(self) -> bool:
        return self.code == 200

    def describe(self) -> str:
        return f"/health {self.code}" if self.code is not None else f"/health: {self.error}"


def probe(url: str, client: httpx.Client | None = None) -> Health:
    """One ``GET {url}/health`` through the server client (its deadline and size cap)."""
    from console.server_client import HEALTH, ServerError, SyncServerClient

    try:
        with SyncServerClient(url, http=client) as server:
            return Health(server.get("/health", HEALTH).status)
    except ServerError as exc:
        cause = exc.__cause__
        if isinstance(cause, httpx.ConnectError):
            return Health(None, "connection refused", refused=True)
        if isinstance(cause, httpx.RemoteProtocolError | httpx.ReadError):
            return Health(None, "closed without an answer", refused=True)
        return Health(None, " ".join(exc.message.split()))
