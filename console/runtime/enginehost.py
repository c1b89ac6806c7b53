"""Which Docker engine a profile or command means, without importing the SDK.

Order, first found: ``--docker-host`` (folded into the profile by the CLI), the
profile's ``docker_host``, ``DOCKER_HOST``, the default socket. The profile
schema validates ``docker_host`` with :func:`check_host`, so this module stays
free of the docker SDK (every CLI start loads the schema).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from console.errors import ConsoleError

DEFAULT_SOCKET = "unix:///var/run/docker.sock"

ENGINE_SCHEMES = ("unix", "tcp", "ssh", "npipe", "http", "https")
"""What the docker SDK accepts as a base URL."""


def check_host(host: str, *, field: str = "docker_host") -> str:
    """``host`` if it is an engine address the SDK takes, else ConsoleError naming ``field``."""
    parts = urlsplit(host)
    if parts.scheme not in ENGINE_SCHEMES or not (parts.netloc or parts.path):
        raise ConsoleError(
            f"{field}: {host!r} is not a Docker engine address",
            hint="use ssh://user@host[:port], tcp://host:2376 or unix:///var/run/docker.sock",
            exit_code=2,
        )
    if parts.scheme == "ssh":
        try:
            parts.port  # noqa: B018 (validates the port)
        except ValueError:
            raise ConsoleError(
                f"{field}: {host!r} has a bad port", hint="ssh://user@host:22", exit_code=2
            ) from None
        if not parts.hostname:
            raise ConsoleError(
                f"{field}: {host!r} names no host", hint="ssh://user@host[:port]", exit_code=2
            )
    return host


def engine_address(host: str | None = None) -> str:
    """Where the console talks to the engine (for messages and ``status``)."""
    return host or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def is_remote(host: str | None = None) -> bool:
    """True when the engine runs on another machine (ssh:// or tcp://)."""
    return urlsplit(engine_address(host)).scheme in ("ssh", "tcp", "http", "https")


def engine_hostname(host: str | None = None) -> str | None:
    """The machine a remote engine runs on (``gpu-box`` of ``ssh://me@gpu-box:22``)."""
    if not is_remote(host):
        return None
    return urlsplit(engine_address(host)).hostname
