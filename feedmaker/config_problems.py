"""Config problems in plain words: pydantic's ValidationError + the TOML text -> ConfigError per problem.

Each error names the file, the line (found by walking the key's path through the TOML text) and the key;
pydantic's error types are translated through one table, and an unknown key gets the closest key its
table accepts ("did you mean `item`?").
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from feedmaker.errors import ConfigError, ConfigErrors

if TYPE_CHECKING:
    from feedmaker.config import Settings

__all__ = ["combined", "config_errors", "feed_errors", "line_of"]


def line_of(text: str, loc: tuple[str | int, ...]) -> int | None:
    """Best-effort line of a key: walk its path through [section] / n-th [[array]] headers and `key =`
    lines, skipping comments."""
    lines = text.splitlines()
    pos, found = 0, None
    names: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            continue
        names.append(part)
        header = ".".join(names)
        following = loc[i + 1] if i + 1 < len(loc) else None
        nth = following if isinstance(following, int) else 0
        tables = [k for k, line in enumerate(lines) if line.strip() == f"[{header}]"]
        arrays = [k for k, line in enumerate(lines) if line.strip() == f"[[{header}]]"]
        if arrays:
            hit: int | None = arrays[min(nth, len(arrays) - 1)]
        elif tables:
            hit = tables[0]
        else:
            pattern = re.compile(rf"(^|[\s{{,]){re.escape(part)}\s*=")
            hit = next(
                (
                    k
                    for k in range(pos, len(lines))
                    if not lines[k].lstrip().startswith("#") and pattern.search(lines[k])
                ),
                None,
            )
        if hit is None:
            break
        pos = found = hit
    return None if found is None else found + 1


# pydantic's error types in plain words; `{…}` fields come from the error's context.
_PLAIN: dict[str, str] = {
    "missing": "missing",
    "extra_forbidden": "unknown key",
    "string_type": "must be text in quotes",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "tuple_type": "must be a list [ … ]",
    "list_type": "must be a list [ … ]",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "dict_type": "must be a table",
    "path_type": "must be a path in quotes",
    "too_short": "needs at least {min_length} value(s)",
    "string_too_short": "needs at least {min_length} character(s)",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "literal_error": "must be one of {expected}",
}
_SHOW_INPUT = {"string_type", "int_type", "int_parsing", "int_from_float", "float_type", "float_parsing",
               "bool_type", "bool_parsing", "tuple_type", "list_type", "model_type", "model_attributes_type",
               "dict_type", "path_type", "literal_error"}  # fmt: skip


def _plain(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind in ("value_error", "assertion_error"):
        return err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "too_short" and err.get("ctx", {}).get("min_length") == 1:
        return "must not be empty"
    template = _PLAIN.get(kind)
    if template is None:
        return err["msg"]
    # A float bound prints as written in the model: "at least 0", not "at least 0.0".
    ctx = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in err.get("ctx", {}).items()}
    message = template.format(**ctx)
    return f"{message}, not {_shown(err['input'])}" if kind in _SHOW_INPUT else message


def _shown(value: object) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field's type (`ArticleSelectors | None`, `tuple[FieldSpec, ...]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _keys_at(model: type[BaseModel], loc: tuple[str | int, ...], hidden: Sequence[str]) -> tuple[str, ...]:
    """The keys a file may write at `loc` (the table holding an unknown key)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if current is not None else None
        current = _model_in(field.annotation) if field is not None else None
    if current is None:
        return ()
    return tuple(k for k in current.model_fields if k not in hidden)


def config_errors(
    path: Path, exc: ValidationError, model: type[BaseModel], text: str = "", *, hidden: Sequence[str] = ()
) -> list[ConfigError]:
    """One ConfigError per problem pydantic found in `path`, in plain words, in file order, with "did you mean"
    for a misspelt key (never suggesting a key in `hidden`)."""
    found: list[ConfigError] = []
    suggested: set[tuple[str | int, ...]] = set()
    errors = exc.errors()
    for err in errors:
        loc = tuple(err["loc"])
        message = _plain(err)
        if err["type"] == "extra_forbidden" and isinstance(loc[-1], str):
            close = difflib.get_close_matches(loc[-1], _keys_at(model, loc[:-1], hidden), n=1)
            if close:
                message += f"; did you mean `{close[0]}`?"
                suggested.add((*loc[:-1], close[0]))
        found.append(ConfigError(str(path), _dotted(loc), message, line=line_of(text, loc)))
    # "itme = …" also leaves `item` missing: the misspelling already says so.
    missing = {
        _dotted(tuple(e["loc"])) for e in errors if e["type"] == "missing" and tuple(e["loc"]) in suggested
    }
    kept = [e for e in found if not (e.key in missing and e.problem == "missing")]
    return sorted(kept, key=lambda e: e.line or 0)


def _dotted(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in loc)


def combined(errors: Sequence[ConfigError]) -> ConfigError:
    """The error to raise for `errors` (at least one): itself when alone, else all of them together."""
    return errors[0] if len(errors) == 1 else ConfigErrors(errors)


def feed_errors(settings: Settings, ids: set[str], text: str) -> list[ConfigError]:
    """The combined feeds' cross-checks against the site ids: no clash, known sites, `prefer` among them."""
    errors = []
    for i, feed in enumerate(settings.feed):
        if feed.id in ids:
            line = line_of(text, ("feed", i, "id"))
            errors.append(
                ConfigError(settings.path, f"feed.{i}.id", f"{feed.id!r} is also a site id", line=line)
            )
        missing = [s for s in feed.sites if s not in ids]
        if missing:
            line = line_of(text, ("feed", i, "sites"))
            problem = f"unknown site(s) {missing}; known: {sorted(ids)}"
            errors.append(ConfigError(settings.path, f"feed.{i}.sites", problem, line=line))
        strangers = [s for s in feed.prefer if s not in feed.sites]
        if strangers:
            line = line_of(text, ("feed", i, "prefer"))
            problem = f"site(s) {strangers} are not in this feed's sites {list(feed.sites)}"
            errors.append(ConfigError(settings.path, f"feed.{i}.prefer", problem, line=line))
    return errors
