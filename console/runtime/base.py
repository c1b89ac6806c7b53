"""The one interface both runtimes implement, so the CLI and the TUI never
branch on where a server runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from console.profiles.schema import Profile


class ServerState(StrEnum):
    ABSENT = "absent"  # never started, or cleaned up
    STARTING = "starting"  # process/container alive, not ready yet
    READY = "ready"  # /health 200 after "Application startup complete."
    FAILED = "failed"  # exited or reported a fatal error; ``detail`` says why
    STOPPED = "stopped"  # stopped by the user
    STALE = "stale"  # a record exists but the process/port belongs to someone else
    UNKNOWN = "unknown"  # the runtime could not be asked (Docker engine down); ``detail`` says why


@dataclass(frozen=True)
class ServerStatus:
    profile: str
    runtime: str  # "local" | "docker"
    state: ServerState
    url: str | None = None
    pid: int | None = None
    container_id: str | None = None
    log_path: Path | None = None
    detail: str = ""
    """Human-readable reason (failure cause, stale-state explanation)."""
    image: dict[str, str] = field(default_factory=dict)
    """Provenance labels of the image a container runs (docker runtime)."""
    leftovers: tuple[Leftover, ...] = ()
    """Processes of a dead server's session that still run (``down`` ends them)."""


@dataclass(frozen=True)
class Leftover:
    """A process of a server's session still running after its API server died."""

    pid: int
    name: str
    rss_bytes: int

    def describe(self) -> str:
        return f"pid {self.pid} {self.name} {self.rss_bytes / 2**30:.1f} GiB"


# Called with each server log line as it arrives (already without trailing newline).
LineCallback = Callable[[str], None]


class ServerRuntime(Protocol):
    def up(
        self,
        profile: Profile,
        *,
        on_line: LineCallback | None = None,
        wait: bool = True,
        timeout: float = 600.0,
    ) -> ServerStatus:
        """Start the server; with ``wait`` return once ready or failed."""
        ...

    def down(self, profile: Profile, *, timeout: float = 10.0) -> ServerStatus:
        """Stop the server (graceful, then forced after ``timeout``)."""
        ...

    def status(self, profile: Profile) -> ServerStatus:
        """Current state, re-attaching to a server started earlier."""
        ...

    def logs(self, profile: Profile, *, follow: bool = False) -> Iterator[str]:
        """The server's log lines, from the start; ``follow`` keeps waiting."""
        ...
