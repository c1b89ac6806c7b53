"""Records of local servers the console started, one JSON file per profile.

A record is what lets a second console (or a later CLI call) find, check and stop
a server it did not start itself: the PID with its process creation time (so a
recycled PID is never mistaken for ours), the port, the log file and the argv
it was started with (secrets already redacted).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from console import paths


@dataclass(frozen=True)
class ServerRecord:
    profile: str
    pid: int
    create_time: float
    """psutil's creation time of ``pid``: identifies the process beyond its number."""
    host: str
    port: int
    url: str
    log: str
    argv: list[str]
    started_at: str
    runtime: str = "local"
    source: str | None = None
    """The profile file, so the server can be found again by path."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return Path(self.log)


def record_path(profile: str, servers_dir: Path | None = None) -> Path:
    return (servers_dir or paths.servers_dir()) / f"{profile}.json"


def save(record: ServerRecord, servers_dir: Path | None = None) -> Path:
    """Write atomically: a reader never sees half a record."""
    target = record_path(record.profile, servers_dir)
    paths.ensure(target.parent)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2) + "\n")
    os.replace(tmp, target)
    return target


def load(profile: str, servers_dir: Path | None = None) -> ServerRecord | None:
    path = record_path(profile, servers_dir)
    try:
        data = json.loads(path.read_text())
        return ServerRecord(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        # A damaged record cannot identify a process; treat it as absent.
        return None


def remove(profile: str, servers_dir: Path | None = None) -> None:
    record_path(profile, servers_dir).unlink(missing_ok=True)


def all_records(servers_dir: Path | None = None) -> list[ServerRecord]:
    folder = servers_dir or paths.servers_dir()
    out: list[ServerRecord] = []
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        record = load(path.stem, folder)
        if record is not None:
            out.append(record)
    return out
