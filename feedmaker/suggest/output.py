"""Candidate / Suggestion, and a Suggestion as the text of a `config/sites/*.toml`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from feedmaker.config import FieldSpec, ListSelectors
from feedmaker.models import Article

__all__ = ["Candidate", "Suggestion"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One way to read the page: the `[list]` selectors, what they read, and how much we like it."""

    selectors: ListSelectors
    items: tuple[Article, ...]  # as extract reads them: what `check` shows
    score: float
    matched: int  # nodes the item selector matched; items are those that gave a link and a headline

    @property
    def item(self) -> str:
        return self.selectors.item


@dataclass(frozen=True, slots=True, kw_only=True)
class Suggestion:
    url: str
    title: str | None  # the page's <title>, the default site name
    best: Candidate
    candidates: tuple[Candidate, ...]  # best first; `best` is candidates[0]

    def to_toml(self, site_name: str | None = None) -> str:
        """A site config that `load_site` accepts as it is."""
        name = site_name or self.title or urlsplit(self.url).hostname or "site"
        s = self.best.selectors
        lines = [
            f"# Suggested by `feedmaker suggest` from {_comment(self.url)}",
            f"# {len(self.best.items)} items; the first ones read as:",
            *(f"#   {_comment(it.headline)[:90]}  <{_comment(it.url)}>" for it in self.best.items[:3]),
            f"name = {_toml_str(name)}",
            f"start_urls = [{_toml_str(self.url)}]",
            "",
            "[list]",
            f"item = {_toml_str(s.item)}",
            f"link = {_toml_chain(s.link)}",
        ]
        for key in ("headline", "date", "summary", "image"):
            chain: tuple[FieldSpec, ...] | None = getattr(s, key)
            if chain:
                lines.append(f"{key} = {_toml_chain(chain)}")
        return "\n".join(lines) + "\n"


def _toml_str(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes, \uXXXX included).
    return json.dumps(value, ensure_ascii=False)


def _comment(value: str) -> str:
    return " ".join(value.split())


def _toml_spec(spec: FieldSpec) -> str:
    if spec.attr is None and spec.format is None and spec.regex is None and not spec.all:
        return _toml_str(spec.css)
    pairs = [f"css = {_toml_str(spec.css)}"]
    for key in ("attr", "format", "regex"):
        value = getattr(spec, key)
        if value is not None:
            pairs.append(f"{key} = {_toml_str(value)}")
    if spec.all:
        pairs.append("all = true")
    return "{ " + ", ".join(pairs) + " }"


def _toml_chain(chain: Sequence[FieldSpec]) -> str:
    if len(chain) == 1:
        return _toml_spec(chain[0])
    return "[" + ", ".join(_toml_spec(s) for s in chain) + "]"
