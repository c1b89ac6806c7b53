"""What runs on each node of a multi-node profile (``cluster:``), as argv lists.

One plan serves the preview (``profiles render``) and the runtime (``up``), so
what a user reads is what starts. Two backends:

- **ray** (vLLM's ``run_cluster.sh`` and the DGX Spark recipes): every node runs
  ``ray start --block`` (head first in the file, started last by ``up``); once
  Ray's state lists every node and GPU, the head runs ``vllm serve ...
  --distributed-executor-backend ray``.
- **vllm** (vLLM's own multi-node executor): every node runs ``vllm serve`` with
  ``--nnodes``, its ``--node-rank``, ``--master-addr/--master-port``; followers
  are ``--headless``.

Per node, the environment carries the cluster link: ``VLLM_HOST_IP`` (its
address), ``NCCL_SOCKET_IFNAME`` and ``GLOO_SOCKET_IFNAME`` (its interface) —
the classic hang on multi-NIC hosts is NCCL or Ray picking another one.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from console.profiles import render as R
from console.profiles.container import ContainerRun, display_run, run_lines

if TYPE_CHECKING:
    from console.profiles.schema import ClusterSpec, NodeSpec, Profile

PLACEHOLDER = re.compile(r"<[A-Za-z0-9_.-]+>")
"""A value the user still has to fill, e.g. ``<HEAD_IP>`` or ``ssh://<USER>@<HOST>``."""


def is_placeholder(value: str | None) -> bool:
    return value is not None and bool(PLACEHOLDER.search(value))


@dataclass(frozen=True)
class NodeLaunch:
    """One node's process: ``argv`` after the program (``ray`` or ``vllm``)."""

    node: NodeSpec
    rank: int
    role: str
    """``head`` or ``worker``."""
    program: str
    """``ray`` (Ray node) or ``vllm`` (a ``vllm serve`` rank)."""
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    """The node's own environment (profile env, cluster link, node env)."""

    @property
    def serves(self) -> bool:
        """This process is the OpenAI server (answers /health)."""
        return self.program == "vllm" and self.rank == 0


def cluster(profile: Profile) -> ClusterSpec:
    if profile.cluster is None:
        raise ValueError(f"profile {profile.name} has no cluster section")
    return profile.cluster


def head_address(spec: ClusterSpec) -> str:
    return spec.head.address or "<HEAD_IP>"


def link_env(node: NodeSpec) -> dict[str, str]:
    """The cluster-link variables for one node (only those it sets)."""
    env: dict[str, str] = {}
    if node.address:
        env["VLLM_HOST_IP"] = node.address
    if node.interface:
        env["NCCL_SOCKET_IFNAME"] = node.interface
        env["GLOO_SOCKET_IFNAME"] = node.interface
    return env


def node_env(profile: Profile, node: NodeSpec) -> dict[str, str]:
    """Profile env, then the cluster link, then the node's own env (it wins)."""
    return {**profile.serve.env, **link_env(node), **node.env}


def _serve_flags(profile: Profile, resolve: R.Resolver, *, listen: bool) -> list[str]:
    groups = R.server_groups(profile, resolve)
    if not listen:
        groups = [g for g in groups if g[0] not in ("--port", "--host")]
    return [tok for group in groups for tok in group]


def _model_args(profile: Profile, flags: list[str]) -> list[str]:
    return ["serve", R.model_ref(profile), *flags]


def vllm_rank_args(profile: Profile, rank: int, resolve: R.Resolver) -> list[str]:
    """``serve MODEL ...`` for one rank of vLLM's own multi-node executor."""
    spec = cluster(profile)
    flags = _serve_flags(profile, resolve, listen=rank == 0)
    flags += [
        "--distributed-executor-backend",
        "mp",
        "--nnodes",
        str(len(spec.nodes)),
        "--node-rank",
        str(rank),
        "--master-addr",
        head_address(spec),
        "--master-port",
        str(spec.master_port),
    ]
    if rank > 0:
        flags.append("--headless")
    return _model_args(profile, flags)


def ray_start_args(spec: ClusterSpec, rank: int) -> list[str]:
    """``ray start --block ...`` for one node (the head owns the GCS port)."""
    node = spec.nodes[rank]
    args = ["start", "--block"]
    if rank == 0:
        args += ["--head", f"--port={spec.ray_port}", "--disable-usage-stats"]
    else:
        args.append(f"--address={head_address(spec)}:{spec.ray_port}")
    if node.address:
        args.append(f"--node-ip-address={node.address}")
    args.append(f"--num-gpus={node.gpus}")
    return args + list(spec.ray_args) + (list(spec.ray_head_args) if rank == 0 else [])


def ray_serve_args(profile: Profile, resolve: R.Resolver) -> list[str]:
    """``serve MODEL ... --distributed-executor-backend ray`` run on the Ray head."""
    flags = _serve_flags(profile, resolve, listen=True)
    flags += ["--distributed-executor-backend", "ray"]
    return _model_args(profile, flags)


def launches(profile: Profile, resolve: R.Resolver) -> list[NodeLaunch]:
    """Every node's process, head first (``up`` starts them in reverse)."""
    spec = cluster(profile)
    out: list[NodeLaunch] = []
    for rank, node in enumerate(spec.nodes):
        role = "head" if rank == 0 else "worker"
        env = node_env(profile, node)
        if spec.backend == "ray":
            out.append(NodeLaunch(node, rank, role, "ray", ray_start_args(spec, rank), env))
        else:
            args = vllm_rank_args(profile, rank, resolve)
            out.append(NodeLaunch(node, rank, role, "vllm", args, env))
    return out


ORDER_NOTE = {
    "ray": "the head first (Ray's GCS), then the workers, then the server on the head",
    "vllm": "the headless followers first, then rank 0 (it serves)",
}


def start_order(spec: ClusterSpec, plan: list[NodeLaunch]) -> list[NodeLaunch]:
    """The order ``up`` starts nodes in (``down`` stops in reverse)."""
    return list(plan) if spec.backend == "ray" else list(reversed(plan))


def tensor_times_pipeline(profile: Profile) -> int:
    """TP x PP as the engine args say (1 where unset)."""
    args = profile.serve.engine_args

    def num(name: str) -> int:
        try:
            return int(args.get(name) or 1)
        except (TypeError, ValueError):
            return 1

    return num("tensor-parallel-size") * num("pipeline-parallel-size")


def node_image(profile: Profile, node: NodeSpec) -> str | None:
    return node.image or (profile.image.run_image if profile.image else None)


def container_name(profile: Profile, node: NodeSpec) -> str:
    return f"{R.container_name(profile)}-{node.name}"


# --- the displayed docker commands ------------------------------------------------------------


def _docker(node: NodeSpec) -> str:
    return f"docker -H {R.shell_quote(node.docker_host)}" if node.docker_host else "docker"


def node_run(profile: Profile, launch: NodeLaunch, entrypoint: str | None) -> ContainerRun:
    """The node's container on the one container-run spec (display values): the
    profile's options, host network and IPC, the node's name, image, engine and env."""
    base = display_run(profile)
    env = {k: R.display_value(v, k) for k, v in launch.env.items()}
    return dataclasses.replace(
        base,
        name=container_name(profile, launch.node),
        image=node_image(profile, launch.node) or "<IMAGE>",
        command=(),
        env=env,
        network="host",
        ipc=base.ipc or "host",
        ports=(),  # host network: nothing to publish
        entrypoint=entrypoint,
        docker_host=launch.node.docker_host,
    )


def _where(node: NodeSpec) -> str:
    host = node.docker_host or "this machine's Docker"
    return f"{node.address or '<address?>'} via {node.interface or '<interface?>'}, {host}"


def _split_args(args: list[str]) -> list[str]:
    """Display lines for ``serve MODEL --flag value ...``: one flag per line."""
    lines: list[str] = []
    for tok in args:
        if tok.startswith("--") or not lines:
            lines.append(R.shell_quote(tok))
        else:
            lines[-1] += " " + R.shell_quote(tok)
    return lines


def docker_lines(profile: Profile) -> list[str]:
    """The commands, per node, that bring the cluster up by hand (display only)."""
    spec = cluster(profile)
    plan = launches(profile, R.display_value)
    out: list[str] = [
        f"# {profile.name}: {len(plan)} nodes, backend {spec.backend}; {ORDER_NOTE[spec.backend]}"
    ]
    order = start_order(spec, plan)
    entry = profile.image.entrypoint if profile.image else None
    for launch in order:
        out.append("")
        out.append(f"# {launch.role} {launch.node.name} ({_where(launch.node)})")
        if spec.backend == "ray":
            lines = run_lines(node_run(profile, launch, "ray")) + _split_args(launch.args)
        else:
            # the image's entrypoint (vllm serve) takes the model and flags
            args = launch.args[1:] if entry and entry[-1:] == ["serve"] else launch.args
            run = node_run(profile, launch, None if entry else "vllm")
            lines = run_lines(run) + _split_args(args)
        out.append(" \\\n  ".join(lines))
    if spec.backend == "ray":
        head = spec.head
        gpus = sum(n.gpus for n in spec.nodes)
        out.append("")
        out.append(
            f"# when `ray status` on the head lists {len(spec.nodes)} nodes and {gpus} GPUs: "
            "the server, on the head"
        )
        serve = ray_serve_args(profile, R.display_value)
        exe = [_docker(head), "exec", R.shell_quote(container_name(profile, head)), "vllm"]
        out.append(" \\\n  ".join([" ".join(exe), *_split_args(serve)]))
    return out


def render_docker(profile: Profile) -> str:
    return "\n".join(docker_lines(profile)) + "\n"
