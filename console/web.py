"""Web mode: the console served to a browser by textual-serve, behind a guard.

textual-serve (an aiohttp app) serves a page, its static files and one
WebSocket per browser tab that drives a fresh console process. It has no
authentication and accepts any ``Host`` and ``Origin``, so any web page the
operator visits could open that WebSocket (cross-site WebSocket hijacking),
and a DNS-rebinding name pointed at 127.0.0.1 could read the page.

The guard is one aiohttp middleware added to textual-serve's own application
(no fork of textual-serve):

- ``Host`` must be one of the names the server is reached by (loopback names
  when bound to loopback): defeats DNS rebinding.
- ``Origin``, when a browser sends one, must be one of those same hosts:
  defeats cross-origin WebSockets and requests.
- A random token, printed once in the URL, is needed for the page, the
  WebSocket and downloads. The page answers ``?token=`` with a cookie
  (HttpOnly, SameSite=Strict) and a redirect to the bare URL, so the token
  leaves the address bar and the browser's WebSocket carries the cookie.
  Static files (textual-serve's own JS, CSS and fonts) need no token.

Anything refused gets 403 and one line saying why; nothing of the console
starts.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from textual_serve.server import Server

from console.errors import UsageError

TOKEN_PARAM = "token"
STATIC_PREFIX = "/static/"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_token() -> str:
    """32 random bytes, URL-safe: unguessable, and fine in a query string."""
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")


def url_host(host: str) -> str:
    """``host`` as it appears in a URL (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def check_bind(host: str, port: int) -> None:
    """Refuse a bad ``--host``/``--port`` before anything starts (exit 2)."""
    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port} is out of range (1-65535)")
    if port == 8000:
        raise UsageError("port 8000 is vLLM's default port; pick another (default 8765)")
    if not host or any(c.isspace() or c in "/?#@" for c in host):
        raise UsageError(f"--host {host!r} is not a host name or IP address")
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(
            f"--host {host!r} does not resolve to an address to listen on ({exc})",
            hint="use an IP address of this machine, e.g. 127.0.0.1 (the default)",
        ) from None


def _local_addresses() -> set[str]:
    """Every address of this machine (for a wildcard bind's allowed hosts)."""
    import psutil

    found = {socket.gethostname().lower(), socket.getfqdn().lower()}
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family in (socket.AF_INET, socket.AF_INET6):
                found.add(addr.address.split("%", 1)[0].lower())
    return found


def allowed_hosts(bind_host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The ``Host`` header values (``name:port``) this server answers to."""
    names = {bind_host.lower(), *(name.lower() for name in extra)}
    if is_loopback(bind_host):
        names |= set(LOOPBACK_NAMES)
    elif _is_wildcard(bind_host):
        names |= set(LOOPBACK_NAMES) | _local_addresses()
        names.discard(bind_host)
    out = {f"{url_host(name)}:{port}" for name in names}
    if port == 80:
        out |= {url_host(name) for name in names}
    return frozenset(out)


@dataclass(frozen=True)
class Guard:
    """What a request needs to reach the console (see the module docstring)."""

    hosts: frozenset[str]
    token: str | None
    cookie: str

    def refusal(self, request: web.Request) -> str | None:
        """Why ``request`` is refused, or None when it may pass."""
        host = (request.headers.get("Host") or "").lower()
        if host not in self.hosts:
            return f"Host {host or '(none)'!r} is not this server's address"
        origin = request.headers.get("Origin")
        if origin is not None:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.netloc.lower() not in self.hosts:
                return f"cross-origin request from {origin!r}"
        if self.token is None or request.path.startswith(STATIC_PREFIX):
            return None
        if not self._token_ok(request):
            return "missing or wrong token (open the URL `vllm-console web` printed)"
        return None

    def _token_ok(self, request: web.Request) -> bool:
        assert self.token is not None
        given = [request.query.get(TOKEN_PARAM), request.cookies.get(self.cookie)]
        return any(
            value is not None and hmac.compare_digest(value.encode(), self.token.encode())
            for value in given
        )

    def middleware(self) -> Any:
        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            reason = self.refusal(request)
            if reason is not None:
                logging.getLogger("vllm-console.web").warning(
                    "refused %s %s: %s", request.method, request.path, reason
                )
                return web.Response(status=403, text=f"403 Forbidden: {reason}\n")
            if self.token is not None and TOKEN_PARAM in request.query and request.path == "/":
                return self._to_cookie(request)
            return await handler(request)

        return guard

    def _to_cookie(self, request: web.Request) -> web.StreamResponse:
        """The token moves from the URL into a cookie; the address bar loses it."""
        query = {k: v for k, v in request.query.items() if k != TOKEN_PARAM}
        target = request.rel_url.with_query(query) if query else request.rel_url.with_query(None)
        response = web.HTTPSeeOther(location=str(target))
        assert self.token is not None
        response.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict", path="/")
        return response


def _try_bind(host: str, port: int) -> None:
    """Raise OSError now if ``host:port`` cannot be bound (aiohttp binds later)."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(info[0], socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])


class GuardedServer(Server):
    """textual-serve's server with the guard in front of every route."""

    def __init__(self, command: str, *, host: str, port: int, guard: Guard, title: str) -> None:
        super().__init__(command, host=host, port=port, title=title)
        self.guard = guard
        self.public_url = f"http://{url_host(host)}:{port}"

    def initialize_logging(self) -> None:
        super().initialize_logging()
        # The access log would print the token of the first request.
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self.guard.middleware())
        return app

    async def handle_index(self, request: web.Request) -> Any:
        # textual-serve builds the WebSocket URL from ``public_url``; use the
        # (already checked) Host the browser came by, so the cookie goes with it.
        # No await happens between this and the page being rendered.
        self.public_url = f"{request.scheme}://{request.host}"
        return await super().handle_index(request)

    async def on_startup(self, app: web.Application) -> None:
        """textual-serve prints its logo here; the console prints its own lines."""


def serve(
    command: str,
    *,
    host: str,
    port: int,
    token: str | None,
    extra_hosts: Iterable[str] = (),
    say: Callable[[str], None] = print,
) -> None:
    """Serve until Ctrl-C; ``say`` gets the URL to open (with the token) once."""
    guard = Guard(
        hosts=allowed_hosts(host, port, extra_hosts),
        token=token,
        cookie=f"vllm_console_token_{port}",
    )
    _try_bind(host, port)  # a taken port or foreign address fails before the URL shows
    shown = "127.0.0.1" if _is_wildcard(host) else host
    url = f"http://{url_host(shown)}:{port}/"
    if token is not None:
        url += f"?{TOKEN_PARAM}={token}"
    say(f"open {url}")
    server = GuardedServer(command, host=host, port=port, guard=guard, title="vllm-console")
    server.serve()
