"""Reading one FieldChain in a scope: the first spec that yields a usable value wins; values typed and cleaned."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import nh3
from selectolax.lexbor import LexborHTMLParser, LexborNode

from feedmaker import patterns
from feedmaker.config import FieldSpec
from feedmaker.dates import common_iso, is_ambiguous, parse_date
from feedmaker.extract.metadata import Document, Firsts, select, select_first
from feedmaker.text import clean_html, clean_text
from feedmaker.urls import IMAGE_SCHEMES, LINK_SCHEMES, absolute

__all__ = [
    "Kind", "Value", "finish", "node_text", "read_chain", "read_spec", "sanitize_html", "spec_label",
]  # fmt: skip

Kind = Literal["text", "link", "image", "date", "content"]
Value = str | datetime


def sanitize_html(html: str, base_url: str) -> str:
    """Untrusted HTML -> safe HTML: no script/style/iframe/on*/javascript:; relative URLs made absolute."""

    # ammonia parses URLs as browsers do (tabs, newlines, entities, case), so "jav&#x09;ascript:" is
    # seen as javascript: and dropped; its own rewriting is much faster than a Python callback per URL.
    try:
        return clean_html(_sanitize(html, ("rewrite_with_base", base_url)))
    except ValueError:  # a base URL ammonia cannot parse: drop relative URLs rather than guess
        return clean_html(_sanitize(html, "deny"))


def _sanitize(html: str, url_relative: Literal["deny"] | tuple[Literal["rewrite_with_base"], str]) -> str:
    cleaned: str = nh3.clean(
        html,
        clean_content_tags={"script", "style", "template", "noscript", "textarea", "title"},
        url_schemes=set(LINK_SCHEMES),
        url_relative=url_relative,
        link_rel="noopener noreferrer nofollow",
    )
    return cleaned


def node_text(node: LexborNode) -> str:
    # No separator: "<h1>Beasts<span>:</span> A</h1>" is "Beasts: A"; source whitespace is kept anyway.
    return node.text(deep=True)


def spec_label(spec: FieldSpec) -> str:
    return f"selector:{spec.css}" + (f"@{spec.attr}" if spec.attr else "")


def _raw_value(node: LexborNode, spec: FieldSpec, kind: Kind) -> str | None:
    """The raw string `spec` reads from `node`, or None when it has none (or only whitespace)."""
    if spec.attr:
        raw = node.attributes.get(spec.attr)
    elif kind == "content":
        raw = node.inner_html
    else:
        raw = node_text(node)
    if raw is None:
        return None
    if spec.regex:
        raw = patterns.captured(spec.regex, raw) or ""
    return raw if raw and not raw.isspace() else None


def _first_node(scope: LexborNode | LexborHTMLParser, css: str, firsts: Firsts | None) -> LexborNode | None:
    """scope.css_first(css), memoised in `firsts` (one dict per scope) when given. A `firsts` with
    __missing__ (listing.ItemFirsts) answers for the scope itself, so it is asked by subscription."""
    if firsts is None:
        return select_first(scope, css)
    try:
        return firsts[css]
    except KeyError:
        node = firsts[css] = select_first(scope, css)
        return node


def finish(doc: Document, kind: Kind, raw: str, fmt: str | None = None) -> Value | None:
    """A raw string as the field's type, or None when it is not usable."""
    if kind == "text":
        return clean_text(raw) or None
    # URLs are not whitespace-collapsed first: a tab inside "java\tscript:" must vanish, not become a space.
    if kind == "link":
        return absolute(raw, doc.base, LINK_SCHEMES, doc.origin)
    if kind == "image":
        return absolute(raw, doc.base, IMAGE_SCHEMES, doc.origin)
    if kind == "date":
        text = clean_text(raw)
        key = (text, fmt)  # listings repeat dates ("24 Mar 2026" on many rows): parse each once
        if key in doc.dates:
            return doc.dates[key]
        found = common_iso(text, doc.now) if fmt is None else None
        if found is None:
            # The page's locale, looked up only when needed.
            dayfirst = doc.dayfirst if is_ambiguous(text) else None
            found = parse_date(text, tz=doc.zone, fmt=fmt, now=doc.now, dayfirst=dayfirst)
        doc.dates[key] = found
        return found
    sanitized = sanitize_html(raw, doc.base)
    return sanitized or None


def read_spec(
    doc: Document,
    scope: LexborNode | LexborHTMLParser,
    spec: FieldSpec,
    kind: Kind,
    firsts: Firsts | None = None,
) -> tuple[Value | None, LexborNode | None]:
    """The value `spec` reads in `scope` (the first match; with all=True, every match's text joined,
    or the first match that yields a value) and the first node matched."""
    if not spec.all:
        node = _first_node(scope, spec.css, doc.firsts if scope is doc.tree else firsts)
        raw = _raw_value(node, spec, kind) if node is not None else None
        if raw is None:
            return None, None
        value = finish(doc, kind, raw, spec.format)
        return (value, node) if value is not None else (None, None)
    nodes = select(scope, spec.css)
    values = [raw for node in nodes if (raw := _raw_value(node, spec, kind)) is not None]
    if not values:
        return None, None
    if kind in ("text", "content"):
        finished = [v for raw in values if isinstance(v := finish(doc, kind, raw, spec.format), str)]
        joined = ", " if kind == "text" else "\n"
        return (joined.join(finished) or None), nodes[0]
    for raw in values:
        value = finish(doc, kind, raw, spec.format)
        if value is not None:
            return value, nodes[0]
    return None, None


def read_chain(
    doc: Document,
    scope: LexborNode | LexborHTMLParser,
    chain: Sequence[FieldSpec] | None,
    kind: Kind,
    firsts: Firsts | None = None,
) -> tuple[Value, str, LexborNode | None] | None:
    for spec in chain or ():
        value, node = read_spec(doc, scope, spec, kind, firsts)
        if value is not None:
            return value, spec_label(spec), node
    return None
