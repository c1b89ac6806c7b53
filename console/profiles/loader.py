"""Find profiles, resolve ``extends:``, validate, and say exactly where a file is wrong.

Shipped presets live in ``profiles/`` next to the package (an editable install
or a checkout) or in the package data (a wheel). Profiles in the user folder
(``paths.user_profiles_dir()``) override shipped ones by name, so a user can
adapt a preset without editing the repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

import console
from console import paths
from console.errors import ConsoleError
from console.profiles import yamlsrc
from console.profiles.schema import Profile
from console.profiles.userpath import expand_home
from console.validate import bad_name

SUFFIXES = (".yaml", ".yml")
_MAX_DEPTH = 32


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a profile file, located for the user."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ProfileError(ConsoleError):
    """A profile that cannot be loaded; ``problems`` locate every fault."""

    def __init__(
        self, problems: list[Problem], *, hint: str | None = None, exit_code: int = 1
    ) -> None:
        self.problems = problems
        if len(problems) == 1:
            message = str(problems[0])
        else:
            message = f"{len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems)
        super().__init__(message, hint=hint, exit_code=exit_code)


def shipped_profiles_dir() -> Path:
    """The presets: the repository's ``profiles/`` or, in a wheel, the package data."""
    repo = Path(console.__file__).resolve().parent.parent / "profiles"
    if repo.is_dir():
        return repo
    return Path(console.__file__).resolve().parent / "data" / "profiles"


def search_dirs() -> list[Path]:
    """Folders searched by name, highest priority first."""
    return [paths.user_profiles_dir(), shipped_profiles_dir()]


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())


def _looks_like_path(ref: str) -> bool:
    return ref.endswith(SUFFIXES) or os.sep in ref or "/" in ref


def _twins_error(files: list[Path]) -> ProfileError:
    """Two files of one folder define one name (``x.yaml`` and ``x.yml``)."""
    return ProfileError(
        [
            Problem(
                str(files[0]),
                None,
                "",
                f"{files[1]} defines profile {files[0].stem!r} too; keep one of the two files",
            )
        ],
        exit_code=2,
    )


def find_file(name: str, *, skip: Path | None = None) -> Path | None:
    """The file that defines profile ``name`` (user folder first), not ``skip``.

    Both ``name.yaml`` and ``name.yml`` in one folder is an error naming both:
    one would silently shadow the other."""
    for folder in search_dirs():
        found = [
            folder / f"{name}{suffix}"
            for suffix in SUFFIXES
            if (folder / f"{name}{suffix}").is_file()
            and (folder / f"{name}{suffix}").resolve() != skip
        ]
        if len(found) > 1:
            raise _twins_error(found)
        if found:
            return found[0]
    return None


def available_names() -> list[str]:
    return sorted({p.stem for d in search_dirs() for p in _files(d)})


# --- raw files -------------------------------------------------------------------------

Origins = dict[yamlsrc.Loc, tuple[str, int]]


@dataclass
class _Raw:
    path: Path
    data: dict[str, Any]
    origins: Origins = field(default_factory=dict)


def _read(path: Path) -> _Raw:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConsoleError(f"{path}: no such profile file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConsoleError(f"{path}: cannot read: {exc}") from None
    data, lines = yamlsrc.parse(text, path)
    if data is None:
        raise ProfileError([Problem(str(path), None, "", "the file is empty")])
    if not isinstance(data, dict):
        raise ProfileError(
            [Problem(str(path), 1, "", f"expected a mapping of fields, got {_kind(data)}")]
        )
    for key in data:
        if not isinstance(key, str):
            line = lines.get((str(key),))
            raise ProfileError([Problem(str(path), line, str(key), "field names must be text")])
    origins = {loc: (str(path), line) for loc, line in lines.items()}
    return _Raw(path, data, origins)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{type(value).__name__} {value!r}"


def deep_merge(parent: Any, child: Any) -> Any:
    """Child over parent: mappings merge, everything else replaces, ``null`` removes."""
    if not isinstance(child, dict):
        return child
    if not isinstance(parent, dict):
        return _drop_nulls(child)
    merged = dict(parent)
    for key, value in child.items():
        if value is None:
            merged.pop(key, None)
        elif key in merged:
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = _drop_nulls(value)
    return merged


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def _resolve(path: Path, stack: tuple[Path, ...] = ()) -> _Raw:
    """``path`` with its ``extends:`` chain merged in (parents first)."""
    real = path.resolve()
    if real in stack:
        chain = " -> ".join(str(p) for p in (*stack, real))
        raise ConsoleError(
            f"{path}: 'extends' forms a cycle: {chain}", hint="remove one of the extends"
        )
    if len(stack) > _MAX_DEPTH:
        raise ConsoleError(f"{path}: 'extends' chain is deeper than {_MAX_DEPTH}")
    raw = _read(path)
    own_name = raw.data.get("name", path.stem)  # a name is never inherited
    parent_ref = raw.data.get("extends")
    if parent_ref is None:
        raw.data.setdefault("name", path.stem)
        return raw
    line = raw.origins.get(("extends",), (str(path), None))[1]
    if not isinstance(parent_ref, str) or not parent_ref.strip():
        raise ProfileError(
            [Problem(str(path), line, "extends", "expected the name or path of another profile")]
        )
    parent_path = _parent_path(parent_ref, path)
    if parent_path is None:
        known = ", ".join(available_names()) or "none"
        raise ProfileError(
            [
                Problem(
                    str(path),
                    line,
                    "extends",
                    f"no profile named {parent_ref!r} (known: {known})",
                )
            ]
        )
    parent = _resolve(parent_path, (*stack, real))
    data = deep_merge(parent.data, {k: v for k, v in raw.data.items() if k != "extends"})
    data["name"] = own_name
    data["extends"] = parent.data.get("name", parent_ref)
    origins = {**parent.origins, **raw.origins}
    return _Raw(path, data, origins)


def _parent_path(ref: str, child: Path) -> Path | None:
    if _looks_like_path(ref):
        candidate = expand_home(ref)
        if not candidate.is_absolute():
            candidate = child.parent / candidate
        return candidate if candidate.is_file() else None
    # A user profile may extend the shipped profile of the same name.
    return find_file(ref, skip=child.resolve())


# --- validation --------------------------------------------------------------------------


def _validate(raw: _Raw) -> Profile:
    try:
        profile = Profile.model_validate(raw.data)
    except ValidationError as exc:
        raise ProfileError(_problems(exc, raw)) from None
    if profile.runtime == "docker" and profile.image is None:
        file, line = _origin(raw, ("runtime",))
        raise ProfileError(
            [Problem(file, line, "image", "runtime 'docker' needs an 'image' section (base, tag)")]
        )
    return profile.model_copy(update={"source": str(raw.path)})


def _origin(raw: _Raw, loc: yamlsrc.Loc) -> tuple[str, int | None]:
    for end in range(len(loc), 0, -1):
        hit = raw.origins.get(loc[:end])
        if hit:
            return hit
    return str(raw.path), None


def _data_loc(data: Any, loc: tuple[Any, ...]) -> yamlsrc.Loc:
    """Pydantic's location minus its union/validator tags, as it maps onto the data."""
    out: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, dict) and isinstance(part, str):
            out.append(part)
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int):
            out.append(part)
            current = current[part] if 0 <= part < len(current) else None
        elif current is None:
            break
    return tuple(out)


def _dotted(loc: yamlsrc.Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _model_at(loc: yamlsrc.Loc) -> type[BaseModel] | None:
    """The schema model that holds the fields at ``loc`` (for "expected one of")."""
    model: Any = Profile
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        info = model.model_fields.get(part) if isinstance(model, type) else None
        if info is None:
            return None
        model = _inner_model(info.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    if get_origin(annotation) is None:
        return None
    return None


def _problems(exc: ValidationError, raw: _Raw) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = _data_loc(raw.data, err["loc"])
        file, line = _origin(raw, loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            model = _model_at(loc[:-1])
            allowed = ", ".join(model.model_fields) if model else ""
            msg = f"unknown field {loc[-1]!r}" + (
                f"; expected one of: {allowed}" if allowed else ""
            )
        elif kind == "missing":
            msg = f"required field {loc[-1]!r} is missing" if loc else "required field missing"
        else:
            got = repr(err.get("input"))
            if len(got) > 60:
                got = got[:57] + "..."
            msg = f"{err['msg']} (got {got})"
        problems.append(Problem(file, line, _dotted(loc), msg))
    return problems


# --- public API ---------------------------------------------------------------------------


def load_file(path: str | os.PathLike[str]) -> Profile:
    """The profile in one file, its ``extends:`` resolved."""
    raw = _resolve(expand_home(path))
    _check_name(raw)
    _check_name_is_plain(raw)
    return _validate(raw)


def _check_name_is_plain(raw: _Raw) -> None:
    """The name becomes file names (server record, logs): a plain identifier only."""
    name = raw.data.get("name")
    if not isinstance(name, str):
        return  # the schema reports a name that is not text
    why = bad_name(name)
    if why is None:
        return
    if ("name",) in raw.origins:
        file, line = _origin(raw, ("name",))
        field = "name"
    else:
        file, line, field = str(raw.path), None, "name (from the file name)"
    raise ProfileError(
        [Problem(file, line, field, f"{name!r} {why}")],
        exit_code=2,
    )


def _check_name(raw: _Raw) -> None:
    """In a profile folder the file name is the name: lookups and overrides go by it."""
    name = raw.data.get("name")
    folder = raw.path.parent.resolve()
    in_folder = any(folder == d.resolve() for d in search_dirs() if d.exists())
    if in_folder and isinstance(name, str) and name != raw.path.stem:
        file, line = _origin(raw, ("name",))
        raise ProfileError(
            [
                Problem(
                    file,
                    line,
                    "name",
                    f"{name!r} differs from the file name {raw.path.stem!r}; profiles are "
                    f"found by file name, so rename the file to {name}.yaml or drop 'name'",
                )
            ]
        )


def load_profile(name_or_path: str) -> Profile:
    """A profile by name (user folder first, then shipped) or by file path."""
    ref = str(name_or_path)
    if _looks_like_path(ref) or Path(ref).is_file():
        return load_file(ref)
    path = find_file(ref)
    if path is None:
        for profile in _scan()[0]:
            if profile.name == ref:
                return profile
        known = ", ".join(available_names()) or "none"
        raise ConsoleError(
            f"no profile named {ref!r} (known: {known})",
            hint=f"add {paths.user_profiles_dir()}/{ref}.yaml or pass a path to a .yaml file",
        )
    return load_file(path)


def _scan() -> tuple[list[Profile], list[ConsoleError]]:
    by_name: dict[str, Profile] = {}
    errors: list[ConsoleError] = []
    seen_stems: set[str] = set()
    for folder in search_dirs():
        files = _files(folder)
        for path in files:
            if path.stem in seen_stems:
                continue  # overridden by a higher-priority folder
            seen_stems.add(path.stem)
            twins = [p for p in files if p.stem == path.stem]
            if len(twins) > 1:
                errors.append(_twins_error(twins))
                continue
            try:
                profile = load_file(path)
            except ConsoleError as exc:
                errors.append(exc)
                continue
            by_name.setdefault(profile.name, profile)
    return sorted(by_name.values(), key=lambda p: p.name), errors


def discover() -> tuple[list[Profile], list[ConsoleError]]:
    """Every loadable profile (sorted by name) and the errors of those that are not."""
    return _scan()


def list_profiles() -> list[Profile]:
    """Every profile sorted by name; a broken file raises (see ``discover`` to go on)."""
    profiles, errors = _scan()
    if errors:
        raise ConsoleError("\n".join(str(e) for e in errors))
    return profiles
