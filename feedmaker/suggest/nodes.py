"""Node helpers for suggest: flattened text, stable classes (no state, no hashes), links, ancestors."""

from __future__ import annotations

import re

from feedmaker.extract import Node
from feedmaker.urls import IMAGE_SCHEMES, absolute, without_fragment

__all__ = [
    "HEADINGS", "SKIP_TAGS", "TAGGY_PATH", "ancestors", "class_list", "class_words", "flat_text", "link_of",
    "stable_classes", "stable_id",
]  # fmt: skip

HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "head", "html", "body"})
_IDENT = re.compile(r"^-?[A-Za-z_][A-Za-z0-9_-]*$")
_STATE_CLASSES = frozenset(
    {
        "active",
        "selected",
        "show",
        "shown",
        "hidden",
        "hide",
        "open",
        "opened",
        "closed",
        "current",
        "first",
        "last",
        "odd",
        "even",
        "clearfix",
        "visible",
        "invisible",
        "in",
        "fade",
        "loaded",
        "lazy",
        "lazyload",
        "lazyloaded",
        "sticky",
        "focus",
        "hover",
        "disabled",
        "new",
    }
)
_STATE_PREFIX = ("is-", "has-", "js-", "u-is-", "ng-", "v-", "wp-image-")
_HASHY = re.compile(
    r"^(?:css|sc|jsx|svelte|emotion|styled|tw)-|[0-9]{3,}|(?=.*[A-Z])(?=.*[0-9])"  # generated, numbered
    r"|^[A-Z][A-Za-z]+-[A-Za-z]{5,7}$"  # styled-components: SummaryItemWrapper-iwvBff
    r"|^(?=[a-z])(?=(?:[^A-Z]*[A-Z]){2})[A-Za-z]{5,8}$"  # bare hashes: clSLtF, jBLKxE
)

TAGGY_PATH = re.compile(  # first path segment (after a language prefix): /tag/x, /en-gb/author/y
    r"^(?:/[a-z]{2}(?:[-_][a-zA-Z]{2})?)?/(?:tag|tags|category|categories|topic|topics|author|authors|section|user|users|profile|login|signin|"
    r"signup|register|subscribe|newsletters?|search|about|contact|privacy|terms|help|account)(?:/|$)",
    re.I,
)


def flat_text(node: Node) -> str:
    return " ".join(node.text(deep=True, separator=" ").split())


def class_list(node: Node) -> list[str]:
    return (node.attributes.get("class") or "").split()


def stable_classes(node: Node) -> list[str]:
    """Classes fit for a config: no state, no hashes, no generated numbers, valid CSS identifiers."""
    out = []
    for c in class_list(node):
        low = c.lower()
        if not _IDENT.match(c) or low in _STATE_CLASSES or low.startswith(_STATE_PREFIX) or _HASHY.search(c):
            continue
        if len(c) > 40 or c in out:
            continue
        out.append(c)
    return out


def stable_id(node: Node) -> str | None:
    value = node.attributes.get("id")
    if (
        not value
        or not _IDENT.match(value)
        or len(value) > 30
        or re.search(r"\d{2,}", value)
        or _HASHY.search(value)
    ):
        return None
    return value


def link_of(node: Node, base: str) -> str | None:
    """The http(s) URL an <a> links to, without its #fragment; in-page "#..." links are not articles."""
    raw = node.attributes.get("href") or ""
    if raw.lstrip().startswith("#"):
        return None
    url = absolute(raw, base, IMAGE_SCHEMES)
    return without_fragment(url) if url is not None else None


def ancestors(node: Node, stop: Node) -> list[Node]:
    out = []
    parent = node.parent
    while parent is not None and parent.mem_id != stop.mem_id and parent.tag not in ("html", None):
        out.append(parent)
        parent = parent.parent
    return out


def class_words(node: Node) -> set[str]:
    raw = " ".join([*class_list(node), node.attributes.get("id") or "", node.attributes.get("role") or ""])
    return {w for w in re.split(r"[^a-zA-Z]+", raw.lower()) if w}
