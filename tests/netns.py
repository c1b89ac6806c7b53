"""Two "nodes" on one machine: network namespaces joined by a veth pair, with
addresses the test assigns (reference/multi-node.md §4).

Everything made here is removed on exit, whatever happened inside: processes
left in the namespaces are killed by their PIDs (``ip netns pids``: only
processes inside namespaces this test created), then the namespaces go, and
with them the veth pair. Needs root (``ip netns``); without it the test fails
with that reason instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class TwoNodes:
    netns: tuple[str | None, str]
    """The head's namespace (None: this machine's own) and the worker's."""
    addresses: tuple[str, str]
    interfaces: tuple[str, str]


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def netns_pids(name: str) -> list[int]:
    proc = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the two-node tests need root for `ip netns` (run them as root, as CI does)")
    if shutil.which("ip") is None:
        pytest.fail("`ip` (iproute2) is missing: scripts/install-system.sh installs it")


@contextlib.contextmanager
def two_nodes(tag: str, subnet: str, *, head_in_root: bool = False) -> Iterator[TwoNodes]:
    """Namespaces ``vc-TAG-PID-a``/``-b`` (``a`` only if not ``head_in_root``) on
    ``SUBNET.1``/``SUBNET.2``/24 joined by veth ``vcTAGPIDa``/``b``.

    ``head_in_root``: the head's end stays in this machine's namespace (so the
    console here reaches the head's server on loopback, as on a real head box)."""
    require_root()
    pid = os.getpid() % 100000
    ns_a, ns_b = f"vc-{tag}-{pid}-a", f"vc-{tag}-{pid}-b"
    if_a, if_b = f"vc{tag}{pid}a", f"vc{tag}{pid}b"
    addr_a, addr_b = f"{subnet}.1", f"{subnet}.2"
    made: list[str] = []
    try:
        for ns in ([] if head_in_root else [ns_a]) + [ns_b]:
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "add", if_a, "type", "veth", "peer", "name", if_b)
        made.append(f"link:{if_a}")
        _ip("link", "set", if_b, "netns", ns_b)
        _ip("-n", ns_b, "addr", "add", f"{addr_b}/24", "dev", if_b)
        _ip("-n", ns_b, "link", "set", if_b, "up")
        if head_in_root:
            _ip("addr", "add", f"{addr_a}/24", "dev", if_a)
            _ip("link", "set", if_a, "up")
        else:
            _ip("link", "set", if_a, "netns", ns_a)
            _ip("-n", ns_a, "addr", "add", f"{addr_a}/24", "dev", if_a)
            _ip("-n", ns_a, "link", "set", if_a, "up")
        yield TwoNodes((None if head_in_root else ns_a, ns_b), (addr_a, addr_b), (if_a, if_b))
    finally:
        for item in reversed(made):
            if item.startswith("link:"):
                subprocess.run(["ip", "link", "del", item[5:]], capture_output=True)
                continue
            for leftover in netns_pids(item):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(leftover, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", item], capture_output=True)
