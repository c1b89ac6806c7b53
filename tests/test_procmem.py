"""The server's process tree found by its port or PID, with its real RSS."""

from __future__ import annotations

import subprocess
import sys

import psutil

from console.procmem import ServerProcessFinder, tree_rss
from tests.helpers import free_port, wait_for

# A parent that serves HTTP and has a child: the shape of vLLM (API server + engine).
SERVER = """
import http.server, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
try:
    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])),
        http.server.SimpleHTTPRequestHandler).serve_forever()
finally:
    child.kill()
"""


def test_finds_the_listener_and_sums_its_tree() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        wait_for(
            lambda: (
                len(psutil.Process(proc.pid).children()) == 1
                and any(c.laddr.port == port for c in psutil.Process(proc.pid).net_connections())
            ),
            timeout=30,
            what="the server listening with its child",
        )
        finder = ServerProcessFinder()
        mem = finder.memory(f"http://127.0.0.1:{port}")
        assert mem.pid == proc.pid and mem.processes == 2, mem
        _rss, count = tree_rss(proc.pid) or (0, 0)
        assert count == 2 and mem.rss is not None and mem.rss > 0
        # By PID too (what a local runtime reports), and a remote URL has no local tree.
        assert finder.memory("http://10.1.2.3:8000", pid=proc.pid).pid == proc.pid
        assert finder.memory("http://10.1.2.3:8000").reason == "server is not on this machine"
    finally:
        for p in psutil.Process(proc.pid).children(recursive=True):
            p.kill()
        proc.kill()
        proc.wait(timeout=10)
    gone = ServerProcessFinder().memory(f"http://127.0.0.1:{port}")
    assert gone.rss is None and "no process listens" in gone.reason


def test_the_tree_is_walked_once_then_again_when_a_process_ends() -> None:
    """Between walks only the known processes' memory is read; a process that
    ended makes the next call walk the tree again (the count stays true)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        wait_for(
            lambda: len(psutil.Process(proc.pid).children()) == 1,
            timeout=30,
            what="the server with its child",
        )
        finder = ServerProcessFinder(tree_every_s=3600)
        first = finder.memory("http://10.1.2.3:8000", pid=proc.pid)
        for _ in range(5):
            again = finder.memory("http://10.1.2.3:8000", pid=proc.pid)
        assert first.processes == again.processes == 2 and finder.walks == 1
        child = psutil.Process(proc.pid).children()[0]
        child.kill()  # the parent does not reap it: a zombie, then
        wait_for(
            lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE,
            timeout=10,
            what="the child ended",
        )
        after = finder.memory("http://10.1.2.3:8000", pid=proc.pid)
        assert after.processes == 1 and after.rss is not None and finder.walks == 2
    finally:
        for p in psutil.Process(proc.pid).children(recursive=True):
            p.kill()
        proc.kill()
        proc.wait(timeout=10)
