"""Connecting to the Docker engine, with an error that says where we looked.

The engine is wherever ``DOCKER_HOST`` points (a unix socket, ``tcp://``, or
``ssh://user@box`` for a remote GPU box), else the default socket. Both the
image build and the server container use this one entry point, so "the daemon
is down" reads the same everywhere.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from typing import Any

import docker
import docker.errors

from console.errors import ConsoleError

DEFAULT_SOCKET = "unix:///var/run/docker.sock"


def engine_address() -> str:
    """Where the console talks to the engine (for messages and ``status``)."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def daemon_down(exc: BaseException) -> ConsoleError:
    host = engine_address()
    source = "DOCKER_HOST" if os.environ.get("DOCKER_HOST") else "the default socket"
    return ConsoleError(
        f"cannot reach the Docker engine at {host} ({source}): {_short(exc)}",
        hint="start dockerd (or `sudo systemctl start docker`), or point DOCKER_HOST at a "
        "running engine, e.g. DOCKER_HOST=ssh://user@gpu-box",
    )


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


def _ssh() -> bool:
    # ssh:// through the system ssh client (keys, agent, ~/.ssh/config), not paramiko.
    return engine_address().startswith("ssh://")


def connect(timeout: int = 120) -> docker.DockerClient:
    """A client for the engine at ``DOCKER_HOST``; ConsoleError when it does not answer."""
    try:
        client = docker.DockerClient.from_env(timeout=timeout, use_ssh_client=_ssh())
        client.ping()
    except docker.errors.DockerException as exc:
        raise daemon_down(exc) from None
    except Exception as exc:  # requests/urllib3 connection errors
        raise daemon_down(exc) from None
    return client


def connect_api(timeout: int = 120) -> CancellableAPIClient:
    """A low-level client whose streams can be cut from another thread."""
    try:
        kwargs = docker.utils.kwargs_from_env()
        client = CancellableAPIClient(timeout=timeout, use_ssh_client=_ssh(), **kwargs)
        client.ping()
    except Exception as exc:
        raise daemon_down(exc) from None
    return client
