"""The lint rule registry: findings, rules, their vLLM version ranges, the context
a rule reads. Rules register here with ``@rule``; ``lint`` (the shipped rules)
and ``lint_cluster`` (multi-node rules) both build on it without importing
each other's way round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

from console.profiles.catalogue import Catalogue
from console.profiles.schema import Profile

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    rule_id: str
    severity: Severity
    message: str
    fix: str
    field: str = ""
    source: str = ""
    """The issue, PR or source file the rule rests on (printed with the finding)."""
    versions: str = ""
    """The vLLM releases the rule applies to, as text (``0.21 – 0.24``, ``all``)."""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


Version = tuple[int, int, int]


@dataclass(frozen=True)
class Versions:
    """The vLLM releases a rule applies to: ``low`` inclusive, ``high`` exclusive."""

    low: Version | None = None
    high: Version | None = None

    def __contains__(self, version: Version | None) -> bool:
        if version is None:
            return True  # unknown: the rule itself decides what it can say
        if self.low is not None and version < self.low:
            return False
        return self.high is None or version < self.high

    def __str__(self) -> str:
        if self.low is None and self.high is None:
            return "all versions"
        if self.low is None:
            return f"before {fmt_version(self.high)}"  # type: ignore[arg-type]
        if self.high is None:
            return f"{fmt_version(self.low)} and later"
        return f"{fmt_version(self.low)} up to (not incl.) {fmt_version(self.high)}"


ALL = Versions()


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    summary: str
    check: Callable[[Context], Iterator[Finding]]
    source: str
    """URL of the issue, PR or source file the rule rests on."""
    versions: Versions = ALL
    verified: str = ""
    """How the fact was checked (or that it was not: then the rule only warns)."""
    explain: str = ""
    """What goes wrong and why, for ``profiles check --explain``."""


@dataclass(frozen=True)
class Context:
    profile: Profile
    catalogue: Catalogue
    vllm_version: Version | None
    """The vLLM that will serve, when known (image ref/tag, or the probed runtime)."""

    @property
    def args(self) -> dict[str, Any]:
        return self.profile.serve.engine_args

    @property
    def spec(self) -> dict[str, Any]:
        return self.profile.serve.speculative_config or {}

    def arg(self, name: str) -> Any:
        return self.args.get(name)


RULES: list[Rule] = []


def rule(
    rule_id: str,
    severity: Severity,
    summary: str,
    *,
    source: str,
    versions: Versions = ALL,
    verified: str,
    explain: str = "",
) -> Callable[..., Any]:
    def register(fn: Callable[[Context], Iterator[Finding]]) -> Callable[..., Any]:
        text = explain or " ".join((fn.__doc__ or summary).split())
        RULES.append(Rule(rule_id, severity, summary, fn, source, versions, verified, text))
        return fn

    return register


def rule_by_id(rule_id: str) -> Rule | None:
    return next((r for r in RULES if r.id == rule_id), None)


def finding(rule_id: str, message: str, fix: str, field: str, severity: Severity | None = None):
    found = rule_by_id(rule_id)
    assert found is not None, rule_id
    return Finding(
        rule_id,
        severity or found.severity,
        message,
        fix,
        field,
        source=found.source,
        versions=str(found.versions),
    )


def fmt_version(version: Version) -> str:
    return ".".join(map(str, version))
