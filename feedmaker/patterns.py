"""User regexes (config `filters`, `[canonical] strip`, a field's `regex`) -> matches in linear time.

Every pattern a user writes runs through RE2 (google-re2), which never backtracks: `(a+)+$` against a long
headline costs microseconds, not hours of CPU on the daemon's one event loop. RE2's syntax is Python's
minus backreferences, lookarounds, possessive quantifiers, atomic groups and conditionals; `\\w`, `\\d`, `\\s`
and `\\b` are ASCII-only (`\\pL` is any letter). The rules of use live here too: filters and strip patterns
match in any case; a field keeps group 1, or the whole match when the pattern has no group.

Config validators call `check_any_case` / `check_field` at load, which compiles each pattern once; the
stages reach the same compiled object through a cache keyed by the pattern, so the config models keep
plain strings (frozen, hashable, picklable to a worker).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

__all__ = ["blank_out", "captured", "check_any_case", "check_field", "matches"]

_REFUSED = "which feedmaker's linear-time engine (RE2) does not support"
# What RE2 refuses that Python's `re` takes, by the start of RE2's message (the rest of it names the spot).
_UNSUPPORTED: tuple[tuple[str, str], ...] = (
    ("invalid perl operator: (?=", "a lookahead `(?=`"),
    ("invalid perl operator: (?!", "a negative lookahead `(?!`"),
    ("invalid perl operator: (?<=", "a lookbehind `(?<=`"),
    ("invalid perl operator: (?<!", "a negative lookbehind `(?<!`"),
    ("invalid perl operator: (?>", "an atomic group `(?>`"),
    ("invalid perl operator: (?(", "a conditional `(?(`"),
    ("invalid perl operator: (?#", "a comment group `(?#`"),
)
_BACKREFERENCE = re.compile(r"invalid escape sequence: (\\[1-9])")
_POSSESSIVE = re.compile(r"bad repetition operator: (\S+\+)$")


def _explain(pattern: str, message: str) -> str:
    # RE2 cuts "(?P=name)" to "(?P": the pattern tells a named backreference from a misspelt group.
    if message.startswith("invalid perl operator: (?P") and "(?P=" in pattern:
        return f"regex {pattern!r} uses a named backreference `(?P=`, {_REFUSED}"
    for start, construct in _UNSUPPORTED:
        if message.startswith(start):
            return f"regex {pattern!r} uses {construct}, {_REFUSED}"
    if m := _BACKREFERENCE.search(message):
        return f"regex {pattern!r} uses a backreference `{m.group(1)}`, {_REFUSED}"
    if m := _POSSESSIVE.search(message):
        return f"regex {pattern!r} uses a possessive quantifier `{m.group(1)}`, {_REFUSED} (it never backtracks: drop the `+`)"
    if message.startswith("invalid escape sequence: \\Z"):
        return f"regex {pattern!r} uses `\\Z`; write `\\z` for the end of the text (RE2 syntax)"
    return f"invalid regular expression {pattern!r}: {message} (RE2 syntax: Python's without lookarounds or backreferences)"


@functools.lru_cache(maxsize=1024)  # keys are the config's patterns: a few dozen, compiled once at load
def _compiled(pattern: str, any_case: bool) -> Any:
    options = re2.Options()
    options.case_sensitive = not any_case
    options.log_errors = False  # RE2 would print every refused pattern to stderr; we raise instead
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = (
            exc.args[0].decode("utf-8", "replace")
            if exc.args and isinstance(exc.args[0], bytes)
            else str(exc)
        )
        raise ValueError(_explain(pattern, reason)) from exc


def check_any_case(pattern: str) -> str:
    """`pattern` if RE2 takes it (compiled for `matches` / `blank_out`), else ValueError in plain words."""
    _compiled(pattern, True)
    return pattern


def check_field(pattern: str) -> str:
    """`pattern` if RE2 takes it (compiled for `captured`), else ValueError in plain words."""
    _compiled(pattern, False)
    return pattern


def matches(pattern: str, text: str) -> bool:
    """A filter's test: `pattern` found anywhere in `text`, in any case."""
    return _compiled(pattern, True).search(text) is not None


def blank_out(pattern: str, text: str) -> str:
    """A `[canonical] strip` rule: every match of `pattern`, in any case, becomes one space."""
    return str(_compiled(pattern, True).sub(" ", text))


def captured(pattern: str, text: str) -> str | None:
    """A field's regex: group 1 of the first match (the whole match without groups); None when none matches.
    A group that took no part in the match gives ""."""
    compiled = _compiled(pattern, False)
    m = compiled.search(text)
    if m is None:
        return None
    return str(m.group(1) or "") if compiled.groups else str(m.group(0))
