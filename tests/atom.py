"""One check for every Atom document a test produces: RFC 4287's structure and feedparser run everywhere;
the RELAX NG schema (from the shared corpora) runs wherever the corpora are present."""

from __future__ import annotations

import re

import feedparser
from lxml import etree

from tests.corpus import atom_schema

__all__ = ["ATOM", "assert_valid_atom"]

ATOM = "{http://www.w3.org/2005/Atom}"
# RFC 3339 date-time, as RFC 4287 3.3 requires for atom:updated and atom:published.
_DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _one(parent: etree._Element, name: str, where: str) -> etree._Element:
    found = parent.findall(f"{ATOM}{name}")
    assert len(found) == 1, f"{where}: {len(found)} atom:{name} (RFC 4287 wants exactly one)"
    return found[0]


def assert_valid_atom(data: bytes) -> feedparser.FeedParserDict:
    """Structural RFC 4287 checks and feedparser bozo == 0 always; the RELAX NG schema where it is
    available. Returns the parsed feed."""
    root = etree.fromstring(data)
    assert root.tag == f"{ATOM}feed", root.tag
    count = 0
    for element, where in (
        (root, "feed"),
        *((e, f"entry {n}") for n, e in enumerate(root.iter(f"{ATOM}entry"))),
    ):
        assert (_one(element, "id", where).text or "").strip(), f"{where}: empty atom:id"
        _one(element, "title", where)
        updated = (_one(element, "updated", where).text or "").strip()
        assert _DATE_TIME.match(updated), f"{where}: atom:updated {updated!r} is not an RFC 3339 date-time"
        count += where != "feed"
    schema = atom_schema()
    if schema is not None:
        assert schema.validate(root), schema.error_log
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert len(parsed.entries) == count
    return parsed
