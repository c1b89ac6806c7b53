"""Profiles: schema, loading with ``extends:``, lint, rendering.

The names below load their submodule on first use (PEP 562): pydantic, yaml and
the lint rules cost most of a second, and the console's first frame and most CLI
commands need none of them. ``from console.profiles import load_profile`` works
as before.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from console.profiles.lint import Finding, has_errors, lint
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
        docker_run_lines,
        dockerfile_lines,
        image_labels,
        local_python,
        model_ref,
        render_argv,
        render_docker_run,
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

_SUBMODULE_OF = {
    **dict.fromkeys(("Finding", "has_errors", "lint"), "lint"),
    **dict.fromkeys(
        (
            "Problem",
            "ProfileError",
            "discover",
            "list_profiles",
            "load_file",
            "load_profile",
            "shipped_profiles_dir",
        ),
        "loader",
    ),
    **dict.fromkeys(
        ("MASK", "is_secret_name", "redact_argv", "redact_env", "redact_text"), "redaction"
    ),
    **dict.fromkeys(
        (
            "ContextFile",
            "build_context_files",
            "container_name",
            "display_argv",
            "display_env",
            "docker_run_lines",
            "dockerfile_lines",
            "image_labels",
            "local_python",
            "model_ref",
            "render_argv",
            "render_docker_run",
            "render_dockerfile",
            "render_env",
            "secret_values",
            "with_overrides",
        ),
        "render",
    ),
    **dict.fromkeys(
        ("ContainerSpec", "ImageSpec", "LocalSpec", "Patch", "PipStep", "Profile", "ServeSpec"),
        "schema",
    ),
}
"""Public name -> the submodule that defines it."""


def __getattr__(name: str) -> Any:
    submodule = _SUBMODULE_OF.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """Keeps ``console.profiles.lint`` the function, as the eager package had it.

    Importing the submodule ``console.profiles.lint`` sets the package attribute
    ``lint`` to that module; the function of the same name must win.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "lint" and isinstance(value, types.ModuleType):
            value = value.lint
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "MASK",
    "ContainerSpec",
    "ContextFile",
    "Finding",
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
    "discover",
    "display_argv",
    "display_env",
    "docker_run_lines",
    "dockerfile_lines",
    "has_errors",
    "image_labels",
    "is_secret_name",
    "lint",
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
