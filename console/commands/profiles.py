"""``vllm-console profiles list|show|check|render``: inspect profiles from scripts.

The profiles package (pydantic, yaml, the lint rules) is imported inside the
handlers: every ``vllm-console`` start builds this parser, and most need none of it.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.errors import ConsoleError

if TYPE_CHECKING:
    from console.profiles.lint import Finding
    from console.profiles.schema import Profile


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``profiles`` and its subcommands."""
    parser = subparsers.add_parser("profiles", help="list, show, check and render server profiles")
    sub = parser.add_subparsers(dest="profiles_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("list", help="every profile (user folder overrides shipped)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="one profile, resolved (extends merged), secrets masked")
    p.add_argument("name", metavar="NAME|PATH")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("check", help="validate and lint profiles (exit 1 on errors)")
    p.add_argument("refs", nargs="*", metavar="NAME|PATH", help="default: every profile")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--no-probe",
        action="store_true",
        help="check flags against the shipped catalogue instead of asking the runtime's vLLM",
    )
    p.add_argument(
        "--explain",
        metavar="RULE",
        help="print what a lint rule checks, the vLLM versions it applies to and its source "
        "('all' for every rule), then exit",
    )
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "fit",
        help="will it fit: weights, KV cache per token, KV capacity and max concurrency",
        description="Estimate a profile's memory on a named box (gb10, h100, h200) or a device "
        "of --gpu-memory GB; a local CPU profile uses its VLLM_CPU_KVCACHE_SPACE.",
    )
    p.add_argument("name", metavar="NAME|PATH")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--box", choices=("gb10", "h100", "h200"), help="a named box")
    where.add_argument("--gpu-memory", type=float, metavar="GB", help="device memory in GB")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("render", help="print the command or Dockerfile a profile produces")
    p.add_argument("name", metavar="NAME|PATH")
    p.add_argument(
        "--as",
        dest="fmt",
        choices=("argv", "docker", "dockerfile"),
        default="argv",
        help="argv: the server command; docker: a pasteable docker run; dockerfile: the image",
    )
    p.add_argument("--json", action="store_true", help="argv as a JSON list")
    p.set_defaults(func=cmd_render)


def _origin(profile: Profile) -> str:
    from console.profiles import loader

    if not profile.source:
        return "?"
    try:
        Path(profile.source).resolve().relative_to(loader.shipped_profiles_dir().resolve())
    except ValueError:
        return "user"
    return "shipped"


def cmd_list(args: argparse.Namespace) -> int:
    from console.profiles import loader

    profiles, errors = loader.discover()
    if args.json:
        rows = [
            {
                "name": p.name,
                "description": p.description,
                "runtime": p.runtime,
                "extends": p.extends,
                "origin": _origin(p),
                "source": p.source,
                "url": p.url,
                "speculative": bool(p.serve.speculative_config),
            }
            for p in profiles
        ]
        print(json.dumps(rows, indent=2))
    else:
        width = max((len(p.name) for p in profiles), default=4)
        for p in profiles:
            spec = "spec" if p.serve.speculative_config else "    "
            desc = " ".join(p.description.split())
            if len(desc) > 70:
                desc = desc[:67] + "..."
            print(f"{p.name:<{width}}  {p.runtime:<6}  {spec}  {_origin(p):<7}  {desc}")
    for err in errors:
        print(f"error: {err}", file=sys.stderr)
    return 1 if errors else 0


def _prune(value: Any) -> Any:
    """Drop empty lists/mappings so ``show`` reads like the file a user would write."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ({}, [])}
    return value


def _display_data(profile: Profile) -> dict[str, Any]:
    from console.profiles import render

    data = profile.model_dump(mode="json", exclude_none=True)
    data["serve"]["env"] = render.display_env(profile)
    args = data["serve"].get("engine_args", {})
    for key, value in args.items():
        if isinstance(value, str):
            args[key] = render.display_value(value, f"serve.engine_args.{key}")
    return _prune(data)


def cmd_show(args: argparse.Namespace) -> int:
    import yaml

    from console.profiles import container, loader, render

    profile = loader.load_profile(args.name)
    data = _display_data(profile)
    command = render.display_argv(profile)
    if args.json:
        out = {**data, "source": profile.source, "url": profile.url, "argv": command}
        print(json.dumps(out, indent=2))
        return 0
    print(f"# {profile.name} — {profile.source}")
    print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100).rstrip())
    if profile.cluster is not None:
        from console.profiles import nodes

        print("# per node (`profiles render NAME --as argv|docker`):")
        if profile.runtime == "docker":
            sys.stdout.write(nodes.render_docker(profile))
        else:
            _render_cluster(profile, argparse.Namespace(fmt="argv", json=False))
        return 0
    print("# server command:")
    if profile.runtime == "docker":
        print(container.render_docker_run(profile))
    else:
        print(" ".join(render.shell_quote(tok) for tok in command))
    return 0


def _load_targets(refs: list[str]) -> tuple[list[Profile], list[tuple[str, ConsoleError]]]:
    from console.profiles import loader

    if not refs:
        profiles, errors = loader.discover()
        return profiles, [(_error_source(e), e) for e in errors]
    profiles: list[Profile] = []
    failures: list[tuple[str, ConsoleError]] = []
    for ref in refs:
        try:
            profiles.append(loader.load_profile(ref))
        except ConsoleError as exc:
            failures.append((ref, exc))
    return profiles, failures


def _error_source(exc: ConsoleError) -> str:
    from console.profiles.loader import ProfileError

    if isinstance(exc, ProfileError) and exc.problems:
        return exc.problems[0].file
    return str(exc).split(":", 1)[0]


def _finding_lines(f: Finding) -> list[str]:
    field = f" [{f.field}]" if f.field else ""
    lines = [f"  {f.severity:<7} {f.rule_id}{field}: {f.message}", f"          fix: {f.fix}"]
    if f.source:
        lines.append(f"          source: {f.source} · applies to vLLM: {f.versions}")
    return lines


def explain_lines(rule_id: str) -> list[str]:
    """``--explain``: one rule's (or every rule's) facts, versions and source."""
    from console.profiles.lint import RULES

    chosen = RULES if rule_id == "all" else [r for r in RULES if r.id == rule_id]
    if not chosen:
        known = ", ".join(r.id for r in RULES)
        raise ConsoleError(
            f"profiles check --explain: no lint rule {rule_id!r}",
            hint=f"known rules: {known} (or 'all')",
            exit_code=2,
        )
    out: list[str] = []
    for r in chosen:
        out += [
            f"{r.id} ({r.severity}): {r.summary}",
            f"  applies to: vLLM {r.versions}",
            f"  source:     {r.source}",
            f"  verified:   {r.verified}",
            *("  " + line for line in textwrap.wrap(r.explain, 86)),
            "",
        ]
    return out


def cmd_check(args: argparse.Namespace) -> int:
    from console.profiles import catalogue
    from console.profiles.lint import has_errors, lint, probe_python

    if args.explain:
        print("\n".join(explain_lines(args.explain)).rstrip())
        return 0
    profiles, failures = _load_targets(args.refs)
    results: list[dict[str, Any]] = []
    failed = bool(failures)
    for ref, exc in failures:
        problems = [
            {"file": p.file, "line": p.line, "field": p.field, "message": p.message}
            for p in getattr(exc, "problems", [])
        ]
        results.append({"profile": ref, "ok": False, "error": str(exc), "problems": problems})
        if not args.json:
            print(f"{ref}: cannot load")
            for line in str(exc).splitlines():
                print(f"  error   {line.strip()}")
    for profile in profiles:
        python = None if args.no_probe else probe_python(profile)
        if python and not catalogue.is_cached(python):
            print(
                f"{profile.name}: asking the vLLM at {python} for its flags "
                "(once per interpreter, about a minute)...",
                file=sys.stderr,
                flush=True,
            )
        findings = lint(profile, probe=not args.no_probe)
        failed = failed or has_errors(findings)
        results.append(
            {
                "profile": profile.name,
                "source": profile.source,
                "ok": not has_errors(findings),
                "findings": [f.to_dict() for f in findings],
            }
        )
        if not args.json:
            counts = {s: sum(f.severity == s for f in findings) for s in ("error", "warning")}
            infos = len(findings) - sum(counts.values())
            print(
                f"{profile.name} ({profile.source}): {counts['error']} error(s), "
                f"{counts['warning']} warning(s), {infos} info"
            )
            for finding in findings:
                print("\n".join(_finding_lines(finding)))
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def cmd_render(args: argparse.Namespace) -> int:
    from console.profiles import container, loader, render

    profile = loader.load_profile(args.name)
    if profile.cluster is not None and args.fmt in ("argv", "docker"):
        return _render_cluster(profile, args)
    if args.fmt == "argv":
        argv = render.display_argv(profile)  # docker: the container args after the image
        if args.json:
            print(json.dumps(argv))
        else:
            print(" ".join(render.shell_quote(tok) for tok in argv))
    elif args.fmt == "docker":
        if profile.runtime != "docker":
            raise ConsoleError(
                f"profile {profile.name} runs locally (runtime: local); "
                "use --as argv for its command"
            )
        print(container.render_docker_run(profile))
    else:
        if profile.image is None:
            raise ConsoleError(f"profile {profile.name} has no image section to render")
        sys.stdout.write(render.render_dockerfile(profile))
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from console import fit
    from console.profiles import loader

    profile = loader.load_profile(args.name)
    result = fit.estimate(profile, box=args.box, gpu_memory_gb=args.gpu_memory)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, allow_nan=False))
    else:
        print("\n".join(result.lines()))
    return 0 if result.fits else 1


def _render_cluster(profile: Profile, args: argparse.Namespace) -> int:
    """A multi-node profile renders per node: docker commands, or each node's argv."""
    from console.profiles import nodes, render

    if args.fmt == "docker":
        if profile.runtime != "docker":
            raise ConsoleError(
                f"profile {profile.name} runs locally (runtime: local); "
                "use --as argv for each node's command"
            )
        sys.stdout.write(nodes.render_docker(profile))
        return 0
    plan = nodes.launches(profile, render.display_value)
    if args.json:
        rows = [
            {
                "node": p.node.name,
                "rank": p.rank,
                "role": p.role,
                "program": p.program,
                "args": p.args,
                "env": {k: render.display_value(v, k) for k, v in p.env.items()},
            }
            for p in plan
        ]
        if profile.cluster is not None and profile.cluster.backend == "ray":
            rows.append(
                {
                    "node": profile.cluster.head.name,
                    "role": "server",
                    "program": "vllm",
                    "args": nodes.ray_serve_args(profile, render.display_value),
                }
            )
        print(json.dumps(rows, indent=2))
        return 0
    for launch in nodes.start_order(nodes.cluster(profile), plan):
        env = " ".join(
            render.shell_quote(f"{k}={render.display_value(v, k)}") for k, v in launch.env.items()
        )
        args_text = " ".join(render.shell_quote(tok) for tok in launch.args)
        print(f"# {launch.role} {launch.node.name} (rank {launch.rank})")
        print(f"{env} {launch.program} {args_text}".strip())
    if profile.cluster is not None and profile.cluster.backend == "ray":
        serve = " ".join(
            render.shell_quote(tok) for tok in nodes.ray_serve_args(profile, render.display_value)
        )
        print(f"# server, on the head {profile.cluster.head.name} once every node joined")
        print(f"vllm {serve}")
    return 0
