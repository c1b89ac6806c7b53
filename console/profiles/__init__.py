"""Profiles: what a server run is (schema), where it comes from (loader), what it
renders to (render), what must stay hidden (redaction); lint is ``console.profiles.lint``.

A plain package: importing it loads pydantic and yaml, which anything that
touches a profile needs anyway. Lint (its rule tables cost about as much again
as rendering) is imported from its module by the two places that lint.
"""

from console.profiles.container import (
    ContainerRun,
    container_run,
    display_run,
    docker_run_lines,
    render_docker_run,
)
from console.profiles.loader import (
    Problem,
    ProfileError,
    discover,
    list_profiles,
    load_file,
    load_profile,
    shipped_profiles_dir,
)
from console.profiles.redaction import (
    MASK,
    is_secret_name,
    redact_argv,
    redact_env,
    redact_text,
)
from console.profiles.render import (
    ContextFile,
    build_context_files,
    container_name,
    display_argv,
    display_env,
    dockerfile_lines,
    image_labels,
    local_python,
    model_ref,
    render_argv,
    render_dockerfile,
    render_env,
    secret_values,
    with_overrides,
)
from console.profiles.schema import (
    ContainerSpec,
    ImageSpec,
    LocalSpec,
    Patch,
    PipStep,
    Profile,
    ServeSpec,
)

__all__ = [
    "MASK",
    "ContainerRun",
    "ContainerSpec",
    "ContextFile",
    "ImageSpec",
    "LocalSpec",
    "Patch",
    "PipStep",
    "Problem",
    "Profile",
    "ProfileError",
    "ServeSpec",
    "build_context_files",
    "container_name",
    "container_run",
    "discover",
    "display_argv",
    "display_env",
    "display_run",
    "docker_run_lines",
    "dockerfile_lines",
    "image_labels",
    "is_secret_name",
    "list_profiles",
    "load_file",
    "load_profile",
    "local_python",
    "model_ref",
    "redact_argv",
    "redact_env",
    "redact_text",
    "render_argv",
    "render_docker_run",
    "render_dockerfile",
    "render_env",
    "secret_values",
    "shipped_profiles_dir",
    "with_overrides",
]
