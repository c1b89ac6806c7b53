"""``up``, ``down``, ``restart``, ``status``, ``logs``: one server per profile.

Every action goes through ``runtime_for(profile)``, so local processes and Docker
containers are driven the same way. ``up`` without ``--detach`` stays in the
foreground following the log until Ctrl-C, which stops the server; with
``--detach`` it returns once the server is ready and leaves it running.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from console.errors import ConsoleError
from console.runtime import ServerState, ServerStatus, runtime_for
from console.runtime.provenance import provenance_lines
from console.validate import port_number

if TYPE_CHECKING:
    from console.profiles.schema import Profile


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this area's subcommands."""
    up = subparsers.add_parser(
        "up",
        help="start a profile's server (provisions a local runtime/model first if missing)",
        description=(
            "Start the server, print its log as it arrives, and wait until it is ready "
            "(log 'Application startup complete.' and /health 200). Without --detach it "
            "stays in the foreground until Ctrl-C, which stops the server."
        ),
    )
    up.add_argument("name", metavar="NAME", help="profile name or YAML file")
    _start_args(up)
    add_docker_host_arg(up)
    up.set_defaults(func=_up)

    down = subparsers.add_parser("down", help="stop a profile's server")
    down.add_argument("name", metavar="NAME")
    down.add_argument(
        "--timeout", type=float, default=20.0, metavar="S", help="seconds before SIGKILL"
    )
    add_docker_host_arg(down)
    down.set_defaults(func=_down)

    restart = subparsers.add_parser("restart", help="stop, then start a profile's server")
    restart.add_argument("name", metavar="NAME")
    _start_args(restart)
    add_docker_host_arg(restart)
    restart.set_defaults(func=_restart)

    status = subparsers.add_parser(
        "status", help="state of one server, or of every server the console started"
    )
    status.add_argument("name", metavar="NAME", nargs="?")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    add_docker_host_arg(status)
    status.set_defaults(func=_status)

    logs = subparsers.add_parser(
        "logs", help="a server's log (-f to follow), or parse a saved log with --parse"
    )
    logs.add_argument("name", metavar="NAME", nargs="?")
    logs.add_argument("-f", "--follow", action="store_true", help="keep following new lines")
    logs.add_argument("--parse", metavar="FILE", help="parse a saved vLLM log into events")
    logs.add_argument("--json", action="store_true", help="with --parse: JSON lines")
    add_docker_host_arg(logs)
    logs.set_defaults(func=_logs)


def _start_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--detach", "-d", action="store_true", help="return once ready, leave it running"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        metavar="S",
        help="seconds to wait for readiness (default 900)",
    )
    parser.add_argument("--port", type=port_number, metavar="P", help="serve on this port instead")
    parser.add_argument(
        "--record",
        action="store_true",
        help="keep a background recorder writing the server's history until `down` "
        "(docs/history.md)",
    )
    parser.add_argument(
        "--cluster-only",
        action="store_true",
        help="multi-node Ray profiles: start the nodes and wait until all joined, no server",
    )


def add_docker_host_arg(parser: argparse.ArgumentParser) -> None:
    """``--docker-host``: the engine for this command, over the profile's ``docker_host``."""
    parser.add_argument(
        "--docker-host",
        metavar="URL",
        help="Docker engine to use, e.g. ssh://user@gpu-box[:port] (over the profile's "
        "docker_host and DOCKER_HOST)",
    )


def with_docker_host(profile: Profile, host: str | None) -> Profile:
    """``profile`` aimed at the engine ``host`` (``--docker-host``), when one is given."""
    if not host:
        return profile
    from console.runtime.enginehost import check_host

    check_host(host, field="--docker-host")
    if profile.runtime != "docker":
        raise ConsoleError(
            f"--docker-host: profile {profile.name} runs on the {profile.runtime} runtime, "
            "not in Docker",
            hint="drop --docker-host, or use a docker-runtime profile",
            exit_code=2,
        )
    return profile.model_copy(update={"docker_host": host})


def _profile(name: str, port: int | None = None, docker_host: str | None = None) -> Profile:
    from console.profiles import load_profile, with_overrides

    profile = load_profile(name)
    if port is not None:
        profile = with_overrides(profile, port=port)
    return with_docker_host(profile, docker_host)


def _print_line(line: str) -> None:
    from console.sanitize import clean_log_line

    print(clean_log_line(line), flush=True)  # a server's or container's words: untrusted


def _report(status: ServerStatus) -> None:
    from console.sanitize import clean_line

    print(f"{status.profile}: {status.state.value}: {clean_line(status.detail)}", flush=True)


def _start(args: argparse.Namespace, *, restart: bool) -> int:
    profile = _profile(args.name, args.port, args.docker_host)
    runtime = runtime_for(profile)
    printed = 0

    def on_line(line: str) -> None:
        nonlocal printed
        printed += 1
        _print_line(line)

    where = profile.runtime
    if profile.cluster is not None:
        where = f"{len(profile.cluster.nodes)} nodes, {profile.cluster.backend} backend"
    print(f"{profile.name}: starting on {profile.url} ({where})", flush=True)
    try:
        if restart:
            stopped = runtime.down(profile)
            if stopped.state is not ServerState.ABSENT:
                _report(stopped)
        if getattr(args, "cluster_only", False):
            status = _cluster_only(profile, on_line, args.timeout)
        else:
            from console.commands.setup_view import terminal_bars

            with terminal_bars():
                status = runtime.up(profile, on_line=on_line, wait=True, timeout=args.timeout)
    except KeyboardInterrupt:
        print(f"interrupted; stopping {profile.name}", file=sys.stderr, flush=True)
        _report(runtime.down(profile))
        return 130
    if status.state is not ServerState.READY:
        raise ConsoleError(
            f"{profile.name} did not start: {status.detail}",
            hint=f"full log: {status.log_path}" if status.log_path else None,
        )
    _report(status)
    if getattr(args, "record", False):
        from console.history import background

        pid = background.start(profile.name, profile.url)
        print(f"{profile.name}: recording its history (recorder pid {pid})", flush=True)
    if args.detach:
        print(f"detached; stop it with `vllm-console down {profile.name}`", flush=True)
        return 0
    print("following the log; Ctrl-C stops the server", flush=True)
    try:
        for index, line in enumerate(runtime.logs(profile, follow=True)):
            if index >= printed:
                _print_line(line)
    except KeyboardInterrupt:
        print(f"stopping {profile.name}", file=sys.stderr, flush=True)
        _report(runtime.down(profile))
        _stop_recorder(profile.name)
        return 0
    final = runtime.status(profile)
    raise ConsoleError(f"{profile.name} stopped while in the foreground: {final.detail}")


def _cluster_only(profile: Profile, on_line: Any, timeout: float) -> ServerStatus:
    from console.runtime.cluster import ClusterRuntime

    if profile.cluster is None or profile.cluster.backend != "ray":
        raise ConsoleError(
            f"--cluster-only needs a profile with cluster.backend: ray ({profile.name} has "
            f"{'no cluster section' if profile.cluster is None else 'backend vllm'})",
            exit_code=2,
        )
    return ClusterRuntime().up(profile, on_line=on_line, timeout=timeout, serve=False)


def _up(args: argparse.Namespace) -> int:
    return _start(args, restart=False)


def _restart(args: argparse.Namespace) -> int:
    return _start(args, restart=True)


def _down(args: argparse.Namespace) -> int:
    profile = _profile(args.name, docker_host=args.docker_host)
    status = runtime_for(profile).down(profile, timeout=args.timeout)
    _report(status)
    _stop_recorder(profile.name)
    return 0


def _stop_recorder(name: str) -> None:
    """End the profile's ``up --record`` recorder, if one runs."""
    from console.history import background

    if background.stop(name):
        print(f"{name}: history recorder stopped", flush=True)


def _as_dict(status: ServerStatus) -> dict[str, Any]:
    out = asdict(status)
    out["state"] = status.state.value
    out["log_path"] = str(status.log_path) if status.log_path else None
    return out


def _all_statuses(docker_host: str | None = None) -> list[ServerStatus]:
    from console.runtime.enginehost import check_host
    from console.runtime.local import LocalRuntime

    if docker_host:
        check_host(docker_host, field="--docker-host")
    from console.runtime.cluster import ClusterRuntime

    found = LocalRuntime().servers() + ClusterRuntime().servers()
    try:
        from console.runtime.docker import DockerRuntime

        found += DockerRuntime(host=docker_host).servers()
    except ConsoleError as exc:
        print(f"note: Docker servers not listed: {exc.message}", file=sys.stderr)
    except ImportError:
        pass
    return found


def _status(args: argparse.Namespace) -> int:
    from console.sanitize import clean_line

    if args.name:
        profile = _profile(args.name, docker_host=args.docker_host)
        statuses = [runtime_for(profile).status(profile)]
    else:
        statuses = _all_statuses(args.docker_host)
    if args.json:
        payload: Any = _as_dict(statuses[0]) if args.name else [_as_dict(s) for s in statuses]
        json.dump(payload, sys.stdout, indent=2)
        print()
    elif not statuses:
        print("no servers started by the console")
    else:
        for status in statuses:
            where = f" {status.url}" if status.url else ""
            pid = f" pid {status.pid}" if status.pid else ""
            print(f"{status.profile} ({status.runtime}): {status.state.value}{where}{pid}")
            if status.detail:
                print(f"  {clean_line(status.detail)}")
            if status.log_path:
                print(f"  log: {status.log_path}")
            for line in provenance_lines(status.image):
                print(f"  {line}")
    bad = {ServerState.FAILED, ServerState.STALE}
    return 1 if any(s.state in bad for s in statuses) else 0


def _logs(args: argparse.Namespace) -> int:
    if args.parse:
        from console.commands.logparse import run_parse

        return run_parse(args.parse, args.json)
    if not args.name:
        raise ConsoleError("logs needs a profile NAME (or --parse FILE)", exit_code=2)
    profile = _profile(args.name, docker_host=args.docker_host)
    try:
        for line in runtime_for(profile).logs(profile, follow=args.follow):
            _print_line(line)
    except KeyboardInterrupt:
        return 0
    return 0
