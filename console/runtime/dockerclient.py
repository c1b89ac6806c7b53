"""Connecting to the Docker engine, with an error that says where we looked.

The engine is, first found: ``--docker-host`` (already folded into the
profile), the profile's ``docker_host``, ``DOCKER_HOST``, else the default
socket. Any of them may be a unix socket, ``tcp://`` or ``ssh://user@box[:port]``
for a remote GPU box; ssh goes through the system ``ssh`` client (the user's
keys, agent and ``~/.ssh/config``), which runs ``docker system dial-stdio`` on
the far side. Both the image build and the server container use this one entry
point, so "the daemon is down" reads the same everywhere.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.errors

from console.errors import ConsoleError
from console.runtime.enginehost import (
    DEFAULT_SOCKET,
    check_host,
    engine_address,
    engine_hostname,
    is_remote,
)

__all__ = [
    "DEFAULT_SOCKET",
    "check_host",
    "connect",
    "connect_api",
    "engine_address",
    "engine_hostname",
    "is_remote",
]


def daemon_down(exc: BaseException, host: str | None = None) -> ConsoleError:
    address = engine_address(host)
    if host:
        source = "the profile's docker_host or --docker-host"
    else:
        source = "DOCKER_HOST" if os.environ.get("DOCKER_HOST") else "the default socket"
    if address.startswith("ssh://"):
        hint = (
            f"check that `ssh {_ssh_target(address)} docker version` works from this "
            "machine (key, known host, docker CLI and engine on the far side)"
        )
    else:
        hint = (
            "start dockerd (or `sudo systemctl start docker`), or point DOCKER_HOST (or a "
            "profile's docker_host) at a running engine, e.g. ssh://user@gpu-box"
        )
    return ConsoleError(
        f"cannot reach the Docker engine at {address} ({source}): {_short(exc)}", hint=hint
    )


def _ssh_target(address: str) -> str:
    parts = urlsplit(address)
    who = f"{parts.username}@{parts.hostname}" if parts.username else str(parts.hostname)
    return f"-p {parts.port} {who}" if parts.port else who


# docker-py wraps requests wraps urllib3 wraps the OS error; the user needs the last.
_CAUSES = (
    (r"FileNotFoundError|No such file or directory", "no engine socket there"),
    (r"Connection refused", "connection refused"),
    (r"PermissionError|Permission denied", "permission denied (is your user in the docker group?)"),
    (r"timed out|Timeout", "timed out"),
    (r"Name or service not known|nodename nor servname|getaddrinfo", "unknown host"),
    (r"Connection reset|Connection aborted", "the connection was cut"),
)


def _short(exc: BaseException) -> str:
    """One plain clause for why the engine did not answer (not docker-py's repr chain)."""
    text = str(exc).strip() or type(exc).__name__
    for pattern, cause in _CAUSES:
        if re.search(pattern, text):
            return cause
    text = text.splitlines()[0].removeprefix("Error while fetching server API version: ")
    return text[:200]


class CancellableAPIClient(docker.APIClient):
    """An APIClient that remembers its last streaming response, so another
    thread can cut it: shutting the socket down makes the engine cancel the
    build (and remove its intermediate container) within a second."""

    last_response: Any = None

    def _stream_helper(self, response: Any, decode: bool = False) -> Any:
        self.last_response = response
        return super()._stream_helper(response, decode)

    def cut_stream(self) -> None:
        response = self.last_response
        if response is None:
            return
        try:
            sock = self._get_raw_response_socket(response)
            sock = getattr(sock, "_sock", sock)
            sock.shutdown(socket.SHUT_RDWR)
        except Exception:  # already closed, or a transport without a socket (ssh)
            pass
        with contextlib.suppress(Exception):
            response.close()


def _client_kwargs(host: str | None) -> dict[str, Any]:
    """``APIClient`` arguments: an explicit host as is, else the environment's."""
    address = engine_address(host)
    # ssh:// through the system ssh client (keys, agent, ~/.ssh/config), not paramiko.
    ssh = address.startswith("ssh://")
    if host:
        return {"base_url": host, "use_ssh_client": ssh}
    return {**docker.utils.kwargs_from_env(), "use_ssh_client": ssh}


def connect(timeout: int = 120, host: str | None = None) -> docker.DockerClient:
    """A client for the engine at ``host`` (else ``DOCKER_HOST``); ConsoleError when it
    does not answer."""
    try:
        client = docker.DockerClient(timeout=timeout, **_client_kwargs(host))
        client.ping()
    except Exception as exc:  # DockerException, requests/urllib3 connection errors
        raise daemon_down(exc, host) from None
    return client


def connect_api(timeout: int = 120, host: str | None = None) -> CancellableAPIClient:
    """A low-level client whose streams can be cut from another thread."""
    try:
        client = CancellableAPIClient(timeout=timeout, **_client_kwargs(host))
        client.ping()
    except Exception as exc:
        raise daemon_down(exc, host) from None
    return client
