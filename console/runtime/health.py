"""``GET /health`` as the runtimes read it: not just up or down, but which.

vLLM answers 200 when ready and 503 once its engine core is dead (the API
process lives on); a refused connection means nothing listens any more (the
API server is gone), while a timeout may only mean a busy server. ``status``
tells these apart, so a dead engine is never shown as "starting".
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

TIMEOUT = httpx.Timeout(3.0, connect=0.5)


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
    """One ``GET {url}/health`` with a short deadline."""
    try:
        if client is None:
            with httpx.Client(timeout=TIMEOUT) as own:
                return Health(own.get(f"{url}/health").status_code)
        return Health(client.get(f"{url}/health").status_code)
    except httpx.ConnectError:
        return Health(None, "connection refused", refused=True)
    except (httpx.RemoteProtocolError, httpx.ReadError):
        return Health(None, "closed without an answer", refused=True)
    except httpx.TimeoutException:
        return Health(None, "no answer in time (busy?)")
    except httpx.HTTPError as exc:
        return Health(None, str(exc) or type(exc).__name__)
