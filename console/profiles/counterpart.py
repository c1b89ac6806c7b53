"""Which profile an A/B bench compares the active one with.

A speculative-decoding profile's *baseline* is the same server without
speculative decoding: its parent when the parent has none
(``gemma3-270m-cpu-ngram`` extends ``gemma3-270m-cpu``), or a profile that
extends it and switches it off (``gemma4-26b-baseline`` extends
``gemma4-26b-mtp``). A baseline's counterpart is, the other way round, a
profile that extends it and adds speculative decoding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from console.profiles.schema import Profile


def speculative(profile: Profile) -> bool:
    return bool(profile.serve.speculative_config)


@dataclass(frozen=True)
class AbPair:
    """Arm A (the baseline) and arm B (speculative decoding), by profile name."""

    baseline: str
    speculative: str


def ab_pair(active: Profile, profiles: Iterable[Profile]) -> AbPair | None:
    """The baseline/speculative pair the active profile belongs to, if any."""
    known = {p.name: p for p in profiles}
    if speculative(active):
        parent = known.get(active.extends or "")
        if parent is not None and not speculative(parent):
            return AbPair(parent.name, active.name)
        for p in sorted(known.values(), key=lambda p: p.name):
            if p.extends == active.name and not speculative(p):
                return AbPair(p.name, active.name)
        return None
    for p in sorted(known.values(), key=lambda p: p.name):
        if p.extends == active.name and speculative(p):
            return AbPair(active.name, p.name)
    parent = known.get(active.extends or "")
    if parent is not None and speculative(parent):
        return AbPair(active.name, parent.name)
    return None
