"""The one URL policy: absolute resolution, allowed schemes, hosts and sites. Pure, no I/O."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urljoin, urlsplit

from feedmaker.text import XML_FORBIDDEN

__all__ = ["IMAGE_SCHEMES", "LINK_SCHEMES", "absolute", "plain_origin"]

_URL_INVISIBLE = re.compile("[\t\n\r]")
_PLAIN_ABSOLUTE = re.compile(
    r"^https?://[^\x00-\x20/?#\\@]+(?:[/?#][^\x00-\x1f\x7f\ufffe\uffff\ud800-\udfff]*)?\Z", re.IGNORECASE
)
_PLAIN_ROOTED = re.compile(r"^/(?![/\\])[^\x00-\x20\\\x7f\ufffe\uffff\ud800-\udfff]*\Z")
_C0_AND_SPACE = "".join(chr(i) for i in range(0x21))
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
IMAGE_SCHEMES = frozenset({"http", "https"})


def plain_origin(base: str) -> str | None:
    """The "scheme://host" of a base URL that _PLAIN_ABSOLUTE accepts; None for any other."""
    if not _PLAIN_ABSOLUTE.match(base):
        return None
    start = base.index("//") + 2
    # The host ends at the first "/", "?" or "#": "https://news.example?x=1" has the origin "https://news.example".
    ends = [i for i in (base.find(c, start) for c in "/?#") if i >= 0]
    return base[: min(ends)] if ends else base


def absolute(raw: str, base: str, schemes: frozenset[str], origin: str | None = None) -> str | None:
    """An absolute URL with an allowed scheme, or None. Tabs and newlines are dropped first, as
    browsers do, so "java\\tscript:" is seen for what it is. `origin` is plain_origin(base), when
    the caller has it already."""
    # Browsers ignore leading and trailing spaces and controls in an href ("…/story/1 ", "/story/2\n").
    raw = raw.strip(_C0_AND_SPACE)
    if _PLAIN_ABSOLUTE.match(raw):  # the common cases, without urljoin's cost
        return unicodedata.normalize("NFC", raw).replace(" ", "%20")
    if _PLAIN_ROOTED.match(raw) and "/." not in raw and "http" in schemes:
        origin = origin or plain_origin(base)
        if origin is not None:
            return unicodedata.normalize("NFC", origin + raw)
    raw = _URL_INVISIBLE.sub("", raw).strip(_C0_AND_SPACE)
    if not raw:
        return None
    try:
        url = urljoin(base, raw)
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in schemes:
        return None
    if parts.scheme.lower() != "mailto" and not parts.netloc:
        return None
    return unicodedata.normalize("NFC", XML_FORBIDDEN.sub("", url)).replace(" ", "%20")
