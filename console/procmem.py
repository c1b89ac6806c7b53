"""The server's process tree and its memory, for boxes without a GPU reading.

On a CPU box the memory that matters is the vLLM process tree's resident
memory (API server, engine core and workers) against the host's RAM. The
server is found by the PID the runtime reported, or else by who listens on
the URL's port when the URL is on this machine; a remote URL has no local
process and says so. psutil does the reading; nothing is estimated.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import psutil

LOCAL_HOSTS = frozenset({"localhost", "0.0.0.0", "::"})


@dataclass(frozen=True)
class ServerMemory:
    """Resident memory of one server's process tree (None: not found, ``reason`` says why)."""

    pid: int | None = None
    processes: int = 0
    rss: int | None = None
    reason: str = ""


def _is_local(host: str) -> bool:
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == socket.gethostname()


def _port(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return parts.hostname, port


def listener_pid(port: int) -> int | None:
    """The PID listening on TCP ``port`` on this machine (None if unknown)."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            return c.pid
    return None


def tree_rss(pid: int) -> tuple[int, int] | None:
    """(RSS in bytes, process count) of ``pid`` and all its descendants."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = count = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
            count += 1
    return (total, count) if count else None


class ServerProcessFinder:
    """Finds the server of a URL once, then re-reads its tree's memory each call
    (the port lookup walks every process, so it is cached while the PID lives)."""

    def __init__(self) -> None:
        self._url: str | None = None
        self._pid: int | None = None

    def memory(self, url: str, pid: int | None = None) -> ServerMemory:
        where = _port(url)
        if pid is None and (where is None or not _is_local(where[0])):
            return ServerMemory(reason="server is not on this machine")
        if pid is None:
            if url != self._url or self._pid is None or not psutil.pid_exists(self._pid):
                self._url, self._pid = url, listener_pid(where[1]) if where else None
            pid = self._pid
        if pid is None:
            return ServerMemory(reason="no process listens on the server's port")
        found = tree_rss(pid)
        if found is None:
            self._pid = None
            return ServerMemory(pid=pid, reason=f"process {pid} is gone")
        rss, count = found
        return ServerMemory(pid=pid, processes=count, rss=rss)
