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
import time
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


def _alive(p: psutil.Process) -> bool:
    """Running (an ended child its parent has not reaped yet holds no memory)."""
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


TREE_EVERY_S = 15.0
"""How often the server's process tree is walked again (new workers show by then)."""


class ServerProcessFinder:
    """Finds the server of a URL once, then re-reads its tree's memory each call.

    The port lookup walks every process, so it is cached while the PID lives;
    so is the tree itself (finding children also reads every process on the
    machine, ~4 ms a call on a busy box): it is walked again every
    ``TREE_EVERY_S`` seconds or as soon as one of its processes is gone, and in
    between only the known processes' memory is read (~0.1 ms)."""

    def __init__(self, *, tree_every_s: float = TREE_EVERY_S) -> None:
        self._url: str | None = None
        self._pid: int | None = None
        self.tree_every_s = tree_every_s
        self._tree: tuple[int, list[psutil.Process], float] | None = None
        """(root pid, its processes, when walked)."""
        self.walks = 0
        """Tree walks made (tests)."""

    def _rss(self, pid: int) -> tuple[int, int] | None:
        tree = self._tree
        now = time.monotonic()
        if tree is None or tree[0] != pid or now - tree[2] > self.tree_every_s:
            try:
                root = psutil.Process(pid)
                procs = [root, *(c for c in root.children(recursive=True) if _alive(c))]
            except psutil.Error:
                self._tree = None
                return None
            self.walks += 1
            tree = self._tree = (pid, procs, now)
        total = 0
        for p in tree[1]:
            try:
                if p.pid != pid and not _alive(p):
                    raise psutil.NoSuchProcess(p.pid)
                total += p.memory_info().rss
            except psutil.Error:  # one ended: walk the tree again now
                self._tree = None
                return self._rss(pid) if p.pid != pid else None
        return total, len(tree[1])

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
        found = self._rss(pid)
        if found is None:
            self._pid = None
            return ServerMemory(pid=pid, reason=f"process {pid} is gone")
        rss, count = found
        return ServerMemory(pid=pid, processes=count, rss=rss)
