"""YAML with line numbers: parse a profile file and remember where each key is.

Pydantic reports errors by location (``("serve", "port")``); users need the
line in their file. Composing the node tree once gives both the data and a
map from every location to the line it was written on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from console.errors import ConsoleError

Loc = tuple[str | int, ...]
LineMap = dict[Loc, int]


def _where(path: Path, mark: Any) -> str:
    if mark is None:
        return str(path)
    return f"{path}:{mark.line + 1}"


def parse(text: str, path: Path) -> tuple[Any, LineMap]:
    """Data and line map of one YAML document; ConsoleError on any bad input."""
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # the reader already rejects control characters
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _check_size(node, path)
        lines: LineMap = {}
        _walk(node, (), lines, path, set())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConsoleError(
            f"{_where(path, mark)}: not valid YAML: {problem}",
            hint="check indentation and quoting around this line",
        ) from None
    except yaml.YAMLError as exc:
        raise ConsoleError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConsoleError(f"{path}: YAML nests too deeply") from None
    except (TypeError, ValueError) as exc:
        # e.g. an unhashable key such as ``[a]: 1``
        raise ConsoleError(f"{path}: not valid YAML: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines


MAX_NODES = 100_000
"""Expanded size limit: aliases can make a few lines mean billions of values."""


def _check_size(root: yaml.Node, path: Path) -> None:
    """Refuse recursive aliases and alias bombs before anything walks the data."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConsoleError(
                f"{_where(path, node.start_mark)}: an alias refers to the list or mapping "
                "that contains it; profiles cannot be recursive"
            )
        active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
                if total > MAX_NODES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item)
                if total > MAX_NODES:
                    break
        active.discard(key)
        if total > MAX_NODES:
            raise ConsoleError(
                f"{_where(path, node.start_mark)}: aliases expand to more than "
                f"{MAX_NODES:,} values; write the profile out without them"
            )
        sizes[key] = total
        return total

    size(root)


def _key_text(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else "<complex key>"


def _walk(node: yaml.Node, loc: Loc, lines: LineMap, path: Path, seen: set[int]) -> None:
    # Each node is visited once: aliases may repeat (or contain) a node, and
    # walking them again would loop or blow up exponentially.
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: dict[str, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag.endswith(":merge"):
                continue
            key = _key_text(key_node)
            line = key_node.start_mark.line + 1
            if key in keys:
                raise ConsoleError(
                    f"{path}:{line}: key {key!r} appears twice "
                    f"(first on line {keys[key]}); keep one of them"
                )
            keys[key] = line
            lines[(*loc, key)] = line
            _walk(value_node, (*loc, key), lines, path, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*loc, index)] = item.start_mark.line + 1
            _walk(item, (*loc, index), lines, path, seen)
