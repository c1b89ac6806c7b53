"""Running a local process inside a network namespace (a cluster node's ``netns``).

Shared by the node launcher (``cluster``) and the Ray probe (``ray_state``).
"""

from __future__ import annotations


def netns_argv(netns: str | None) -> list[str]:
    """The argv prefix that runs a command in ``netns`` (none without one)."""
    return ["ip", "netns", "exec", netns] if netns else []
