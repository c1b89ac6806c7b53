"""Profiles: schema, loading with ``extends:``, lint, rendering."""

from console.profiles.schema import (
    ContainerSpec,
    ImageSpec,
    LocalSpec,
    Patch,
    PipStep,
    Profile,
    ServeSpec,
)

__all__ = ["ContainerSpec", "ImageSpec", "LocalSpec", "Patch", "PipStep", "Profile", "ServeSpec"]
