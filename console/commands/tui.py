"""The TUI entry points: ``vllm-console`` (bare), ``demo`` and ``web``.

Textual is imported inside the functions so the headless subcommands stay
fast and work without a terminal.
"""

from __future__ import annotations

import argparse
import errno
import shlex
import sys
from typing import TYPE_CHECKING

from console.errors import ConsoleError
from console.validate import port_number

if TYPE_CHECKING:
    from console.fleet import FleetSpec
    from console.runtime.base import ServerStatus

WEB_HOST = "127.0.0.1"
WEB_PORT = 8765
"""Not 8000: that is vLLM's default port."""


DEMO_PROFILE = "smollm2-135m-cpu"
"""The README's demo: SmolLM2-135M-Instruct on vLLM's CPU build: it answers questions,
where the base Gemma 3 270M only continues text. Without speculative decoding: vLLM
0.32's CPU n-gram speculation garbles sampled answers (docs/usage.md); the Gemma
profiles keep the speculative-decoding numbers."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo`` and ``web``."""
    demo = subparsers.add_parser(
        "demo",
        help="set up and start a small CPU model (SmolLM2-135M-Instruct), then open the console",
        description=(
            "Provision vLLM's CPU build and SmolLM2-135M-Instruct if needed (a few minutes the "
            f"first time), start the {DEMO_PROFILE} profile in the background (it keeps "
            "running after the console exits; stop it with `vllm-console down "
            f"{DEMO_PROFILE}`), wait until it is ready, and open the console on the "
            "dashboard. Press 3 for the chat. A server already up is reused."
        ),
    )
    demo.add_argument(
        "--demo-profile",
        default=DEMO_PROFILE,
        metavar="NAME",
        help=f"profile to start (default {DEMO_PROFILE})",
    )
    demo.add_argument(
        "--no-wait",
        action="store_true",
        help="open the console at once; watch the start-up on the server screen (2)",
    )
    demo.add_argument(
        "--timeout", type=float, default=900.0, help="seconds to wait for ready (900)"
    )
    demo.set_defaults(func=run_demo)

    web = subparsers.add_parser(
        "web",
        help="serve the TUI to a browser on loopback, behind a one-time token",
        description=(
            "Serve the console to a web browser with textual-serve. It binds to "
            "127.0.0.1 unless --host says otherwise and prints, once, a URL with a "
            "random token: only that URL opens the console. Requests whose Host or "
            "Origin is not this server's address are refused (403). From another "
            "machine use an SSH tunnel (ssh -L 8765:127.0.0.1:8765 box)."
        ),
    )
    web.add_argument("--host", default=WEB_HOST, help=f"address to bind (default {WEB_HOST})")
    web.add_argument(
        "--port", type=port_number, default=WEB_PORT, help=f"port (default {WEB_PORT})"
    )
    web.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept this Host name (a reverse proxy or DNS name); repeatable",
    )
    web.add_argument(
        "--no-auth",
        action="store_true",
        help="no token: anyone who can reach the port controls your servers",
    )
    web.set_defaults(func=run_web)


def run_tui(args: argparse.Namespace) -> int:
    """Open the console: ``--url`` attaches to a server, else the last active profile."""
    from console.app import ConsoleApp
    from console.session import Session

    session = Session.create(url=getattr(args, "url", None), profile=getattr(args, "profile", None))
    session.fleet = fleet_spec(args)
    ConsoleApp(session=session).run()
    return 0


def fleet_spec(args: argparse.Namespace) -> FleetSpec | None:
    """The fleet the TUI opens on: ``--url`` more than once, ``--discover`` or
    ``--fleet`` (running profiles' servers are always in it); None: one server."""
    from console.fleet import FleetSpec

    urls = tuple(getattr(args, "urls", None) or ())
    ranges = tuple(getattr(args, "discover", None) or ())
    if len(urls) <= 1 and not ranges and not getattr(args, "fleet", False):
        return None
    return FleetSpec(urls=urls, ranges=ranges, profiles=True)


def _say(line: str) -> None:
    from console.sanitize import clean_log_line

    print(f"  {clean_log_line(line)}", file=sys.stderr, flush=True)


def start_demo_server(name: str, *, wait: bool, timeout: float) -> ServerStatus:
    """Start (or reuse) the demo profile's server, detached; provisions on first use."""
    from console.runtime import ServerState, runtime_for
    from console.session import load_profile_by_name

    profile = load_profile_by_name(name)
    runtime = runtime_for(profile)
    status = runtime.status(profile)
    if status.state == ServerState.READY:
        print(f"{name}: already running at {status.url}; reusing it", file=sys.stderr)
        return status
    if status.state != ServerState.STARTING and _answers(profile.url):
        print(
            f"{name}: a server the console did not start already answers at {profile.url}; "
            "attaching to it",
            file=sys.stderr,
        )
        return status
    if status.state != ServerState.STARTING:
        print(
            f"{name}: starting at {profile.url} (first run: installs vLLM's CPU build "
            "while it fetches and converts the model, a few minutes)",
            file=sys.stderr,
        )
        from console.commands.setup_view import terminal_bars

        with terminal_bars():
            status = runtime.up(profile, on_line=_say, wait=False)
    if not wait:
        return status
    print(
        f"{name}: waiting until it is ready (ctrl+c opens nothing; the server keeps starting)",
        file=sys.stderr,
    )
    status = runtime.up(profile, on_line=_say, wait=True, timeout=timeout)
    if status.state != ServerState.READY:
        log = f" (log: {status.log_path})" if status.log_path else ""
        raise ConsoleError(
            f"{name} did not become ready: {status.state}: {status.detail}{log}",
            hint=f"look at the log, or run `vllm-console up {name}` to see it start",
        )
    print(f"{name}: ready at {status.url}", file=sys.stderr)
    return status


def _answers(url: str) -> bool:
    """True when something healthy already serves ``url`` (then there is nothing to start)."""
    from console.server_client import check_health

    return check_health(url).ok


def run_demo(args: argparse.Namespace) -> int:
    """Provision, start the demo server, open the console on the dashboard."""
    from console.app import ConsoleApp
    from console.session import Session, load_profile_by_name

    name = args.demo_profile
    status = start_demo_server(name, wait=not args.no_wait, timeout=args.timeout)
    session = Session.create(url=getattr(args, "url", None))
    session.set_profile(load_profile_by_name(name))
    ConsoleApp(session=session, start_mode="dashboard").run()
    if status.pid is not None:  # ours (started now or earlier), not someone else's
        print(
            f"the {name} server keeps running; stop it with `vllm-console down {name}`",
            file=sys.stderr,
        )
    return 0


def web_command(args: argparse.Namespace) -> list[str]:
    """The argv textual-serve runs for each browser session (the TUI with the same target)."""
    argv = [sys.executable, "-m", "console"]
    for url in getattr(args, "urls", None) or ([args.url] if getattr(args, "url", None) else []):
        argv += ["--url", url]
    for port_range in getattr(args, "discover", None) or []:
        argv += ["--discover", str(port_range)]
    if getattr(args, "fleet", False):
        argv.append("--fleet")
    if getattr(args, "profile", None):
        argv += ["--profile", args.profile]
    return argv


def run_web(args: argparse.Namespace) -> int:
    """Serve the TUI to a browser (console/web.py), on loopback by default."""
    from console import web

    web.check_bind(args.host, args.port)
    if not web.is_loopback(args.host):
        print(
            f"warning: {args.host} is not a loopback address: the web console is reachable "
            "from other machines, over plain HTTP (the token travels unencrypted).",
            file=sys.stderr,
        )
    if args.no_auth:
        print(
            "warning: --no-auth: the web console has NO authentication: anyone who can "
            f"reach {args.host}:{args.port} controls your servers.",
            file=sys.stderr,
        )
    token = None if args.no_auth else web.new_token()
    try:
        # textual-serve runs a shell command line; every part is quoted.
        web.serve(
            shlex.join(web_command(args)),
            host=args.host,
            port=args.port,
            token=token,
            extra_hosts=args.allow_host,
            say=lambda line: print(line, flush=True),
        )
    except OSError as exc:
        # Not this machine's address: bad usage (2); port taken: a finding (1).
        raise ConsoleError(
            f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}",
            exit_code=2 if exc.errno == errno.EADDRNOTAVAIL else 1,
            hint="pick another --port, or an address of this machine for --host",
        ) from None
    return 0
