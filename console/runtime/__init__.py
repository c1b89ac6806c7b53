"""Where servers run: a local ``vllm serve`` process or a Docker container."""

from console.runtime.base import ServerRuntime, ServerState, ServerStatus
from console.runtime.select import runtime_for

__all__ = ["ServerRuntime", "ServerState", "ServerStatus", "runtime_for"]
