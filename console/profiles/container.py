"""The one container-run spec: what ``up`` creates and ``profiles render --as docker`` shows.

:func:`container_run` reads a docker profile once into a :class:`ContainerRun`.
The Docker runtime executes the resolved spec (``${VAR}`` expanded), the
preview renders the display spec (references kept, literal credentials
masked) as a pasteable ``docker run``: the same name, image, command, options,
environment, mounts and published ports, so what a user reads is what starts.
Ports are published on loopback (``127.0.0.1``), as the runtime does: a server
is reachable from elsewhere only when the user publishes it otherwise.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from console.errors import ConsoleError
from console.profiles import render as R
from console.profiles.schema import Profile

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class PublishedPort:
    """One ``-p``: the container's port (``8000/tcp``) on ``host_ip:host_port``."""

    container_port: str
    host_port: int
    host_ip: str = LOOPBACK

    @property
    def flag(self) -> str:
        """The ``-p`` value; ``/tcp`` is docker's default and stays implicit."""
        port = self.container_port.removesuffix("/tcp")
        return f"{self.host_ip}:{self.host_port}:{port}"


@dataclass(frozen=True)
class ContainerRun:
    """Everything ``docker run`` gets for a profile's server container."""

    name: str
    image: str
    command: tuple[tuple[str, ...], ...]
    """The args after the image, grouped as the preview writes them one per line."""
    env: dict[str, str]
    volumes: tuple[str, ...]
    """``host:container[:mode]`` as the profile writes them (the runtime resolves paths)."""
    gpus: str | None = None
    ipc: str | None = None
    network: str | None = None
    shm_size: str | None = None
    cap_add: tuple[str, ...] = ()
    ports: tuple[PublishedPort, ...] = ()
    entrypoint: str | None = None
    """``--entrypoint`` (the nodes of a multi-node profile run ``ray`` or ``vllm``)."""
    docker_host: str | None = None
    """The engine it runs on (``docker -H ...``); None: the caller's default."""

    @property
    def argv(self) -> list[str]:
        return [tok for group in self.command for tok in group]


def _build(profile: Profile, resolve: R.Resolver, env: dict[str, str]) -> ContainerRun:
    if profile.image is None:
        raise ConsoleError(f"profile {profile.name}: a docker profile needs an 'image' section")
    model = R.model_ref(profile)
    first = ("--model", model) if R.entry_uses_model_flag(profile) else (model,)
    c = profile.serve.container
    return ContainerRun(
        name=R.container_name(profile),
        image=profile.image.run_image,
        command=(first, *(tuple(g) for g in R.server_groups(profile, resolve))),
        env=env,
        volumes=tuple(profile.serve.volumes),
        gpus=c.gpus,
        ipc=c.ipc,
        network=c.network,
        shm_size=c.shm_size,
        cap_add=tuple(c.cap_add),
        ports=tuple(PublishedPort(k if "/" in k else f"{k}/tcp", v) for k, v in c.ports.items()),
    )


def container_run(profile: Profile, environ: Mapping[str, str] | None = None) -> ContainerRun:
    """The spec to execute: ``${VAR}`` resolved from ``environ`` (default ``os.environ``).

    Holds secrets: never print it; show :func:`display_run` instead.
    """
    env = os.environ if environ is None else environ
    return _build(profile, R.resolver(env), R.render_env(profile, env))


def display_run(profile: Profile) -> ContainerRun:
    """The spec to show: references stay ``${VAR}``, literal credentials are masked."""
    return _build(profile, R.display_value, R.display_env(profile))


def volume_arg(spec: str) -> str:
    """``~/x:/y`` keeps a bare ``~`` so the user's shell expands it."""
    if spec.startswith("~/"):
        return "~/" + shlex.quote(spec[2:])
    return shlex.quote(spec)


def run_lines(run: ContainerRun) -> list[str]:
    """A display spec as ``docker run -d`` lines (joined with `` \\`` continuations)."""
    docker = ["docker", "-H", shlex.quote(run.docker_host)] if run.docker_host else ["docker"]
    head = [*docker, "run", "-d", "--name", shlex.quote(run.name)]
    if run.gpus is not None:
        # docker parses --gpus as CSV: a device list needs its own double quotes
        gpus = f'"{run.gpus}"' if "," in run.gpus and not run.gpus.startswith('"') else run.gpus
        head += ["--gpus", shlex.quote(gpus)]
    if run.ipc:
        head.append(f"--ipc={shlex.quote(run.ipc)}")
    if run.network:
        head += ["--network", shlex.quote(run.network)]
    if run.shm_size:
        head.append(f"--shm-size={shlex.quote(run.shm_size)}")
    for cap in run.cap_add:
        head += ["--cap-add", shlex.quote(cap)]
    for port in run.ports:
        head += ["-p", shlex.quote(port.flag)]
    if run.entrypoint:
        head += ["--entrypoint", shlex.quote(run.entrypoint)]
    lines = [" ".join(head)]
    lines += [f"-v {volume_arg(v)}" for v in run.volumes]
    for key, value in run.env.items():
        if value == f"${{{key}}}":
            lines.append(f"-e {key}")  # docker copies it from the caller's environment
        else:
            lines.append(f"-e {R.shell_quote(f'{key}={value}')}")
    lines.append(shlex.quote(run.image))
    lines += [" ".join(R.shell_quote(tok) for tok in group) for group in run.command]
    return lines


def docker_run_lines(profile: Profile) -> list[str]:
    """``docker run`` for ``profile`` as display lines."""
    return run_lines(display_run(profile))


def render_docker_run(profile: Profile) -> str:
    """One pasteable ``docker run -d`` (secrets stay ``${VAR}`` or show as ``***``)."""
    return " \\\n".join(docker_run_lines(profile))
