"""Which runtime serves a profile: kept apart from ``base`` so the interface
never imports the runtimes that implement it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.profiles.schema import Profile
    from console.runtime.base import ServerRuntime


def runtime_for(profile: Profile) -> ServerRuntime:
    """The runtime that serves ``profile``."""
    if profile.cluster is not None:
        from console.runtime.cluster import ClusterRuntime

        return ClusterRuntime()
    if profile.runtime == "docker":
        from console.runtime.docker import DockerRuntime

        return DockerRuntime(host=profile.docker_host)
    from console.runtime.local import LocalRuntime

    return LocalRuntime()
