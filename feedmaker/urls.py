"""The one URL policy every stage calls: absolute resolution, allowed schemes, the canonical URL
(tracking parameters dropped), origins, hosts, and sites (registrable domains). Pure, no I/O.

extract resolves links with `absolute`; suggest reads its candidate links the same way; canon and the
store key articles by `canonical_url`; feed writes hrefs through `href`; robots asks for an `origin`.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

import tldextract

from feedmaker.text import XML_FORBIDDEN

__all__ = [
    "IMAGE_SCHEMES", "LINK_SCHEMES", "absolute", "canonical_url", "host_of", "href", "item_url_key", "origin", "plain_origin", "same_site", "site_of", "without_fragment",
]  # fmt: skip

_URL_INVISIBLE = re.compile("[\t\n\r]")
_PLAIN_ABSOLUTE = re.compile(
    r"^https?://[^\x00-\x20/?#\\@]+(?:[/?#][^\x00-\x1f\x7f\ufffe\uffff\ud800-\udfff]*)?\Z", re.IGNORECASE
)
_PLAIN_ROOTED = re.compile(r"^/(?![/\\])[^\x00-\x20\\\x7f\ufffe\uffff\ud800-\udfff]*\Z")
_C0_AND_SPACE = "".join(chr(i) for i in range(0x21))
LINK_SCHEMES = frozenset({"http", "https", "mailto"})  # what an entry may link to
IMAGE_SCHEMES = frozenset({"http", "https"})  # what may be fetched or shown: pages, images, bases
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Query parameters that only say where a click came from. Sources: the click ids Google (gclid,
# dclid), Microsoft (msclkid), Meta (fbclid, igshid), Yandex (yclid), Mailchimp (mc_cid, mc_eid)
# and Google Analytics (_ga, utm_*) append, and Twitter's ref_src / ref_url; as miniflux's
# internal/reader/urlcleaner keeps them. Not "ref": many sites use it as the article id (news.php?ref=101).
_TRACKING = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "_ga",
        "yclid",
        "ref_src",
        "ref_url",
    }
)
_TRACKING_PREFIXES = ("utm_",)
# The Public Suffix List snapshot tldextract ships with its release: never downloaded (no list URLs)
# and never cached on disk (no cache_dir), so a crawl makes no request but its own. ICANN suffixes
# only: a blogspot.com blog and its neighbours are one site, as a reader would say.
_PUBLIC_SUFFIXES = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
# ASCII a URL must not carry raw (RFC 3986): percent-encoded rather than dropping the link. Other
# non-ASCII text stays as it is: Atom hrefs are IRIs.
_URL_UNSAFE = re.compile('[\x00-\x20\x7f"<>\\\\^`{|}]')


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


def without_fragment(url: str) -> str:
    return url.split("#", 1)[0]


def host_of(url: str) -> str:
    """The URL's host name, lowercased, without "www." ("" when it has none or cannot be parsed)."""
    origin = plain_origin(url)
    if origin is not None and "[" not in origin:  # the common case, without urlsplit's cost
        return origin[origin.index("//") + 2 :].split(":", 1)[0].lower().removeprefix("www.")
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.removeprefix("www.")


def site_of(url: str) -> str:
    """The site a URL belongs to: its registrable domain by the Public Suffix List ("www.bbc.co.uk" ->
    "bbc.co.uk"); under a name the list does not know (".example", ".internal"), the last two labels;
    an IP address or a one-label host is its own site."""
    return _registrable(host_of(url))


@functools.lru_cache(maxsize=4096)
def _registrable(host: str) -> str:
    parts = _PUBLIC_SUFFIXES(host)
    if parts.suffix and parts.domain:
        return f"{parts.domain}.{parts.suffix}"
    if parts.ipv4 or parts.ipv6 or "." not in host:
        return host
    return ".".join(host.rsplit(".", 2)[-2:])


def same_site(a: str, b: str) -> bool:
    """Whether two URLs belong to one site (see site_of): "www.bbc.co.uk" and "news.bbc.co.uk" do."""
    site = site_of(a)
    return bool(site) and site == site_of(b)


def canonical_url(url: str, *, keep_fragment: bool = False) -> str:
    """Lowercase scheme and host, no fragment (unless `keep_fragment`: items of one page that differ only
    by #anchor), no default port, no tracking parameters, sorted query.

    Deliberately conservative: the path is kept byte for byte ("/index.html", trailing slashes and case
    can all name different resources on some servers).
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    if parts.username is not None:
        auth = parts.username + (f":{parts.password}" if parts.password is not None else "")
        host = f"{auth}@{host}"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    # Parameters are kept as written (no re-encoding), only filtered and sorted.
    query = sorted(p for p in parts.query.split("&") if p and not _is_tracking(p.split("=", 1)[0]))
    path = parts.path or ("/" if parts.netloc else "")
    return urlunsplit((scheme, host, path, "&".join(query), parts.fragment if keep_fragment else ""))


def _is_tracking(raw_key: str) -> bool:
    key = unquote_plus(raw_key).lower()
    return key.startswith(_TRACKING_PREFIXES) or key in _TRACKING


def origin(url: str) -> str:
    """`url`'s "scheme://host[:port]", without any user:password@."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme.lower()}://{host}{port}"


def href(value: str) -> str | None:
    """An http, https or mailto URL fit for an href, or None. Spaces and other characters that are not
    allowed raw in a URL are percent-encoded; anything else (javascript:, data:, relative) is dropped.
    `value` is XML-clean text already (feed.xml_text)."""
    # Browsers drop tab and newline anywhere in a URL ("java\tscript:"); check what they would follow.
    text = _URL_INVISIBLE.sub("", value.strip())
    if not text:
        return None
    text = _URL_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", text)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in LINK_SCHEMES:
        return None
    if scheme == "mailto":
        return text if parts.path else None
    return text if parts.hostname else None


# Fragments that only point into a page (comments, navigation); any other id-like fragment names an item,
# as a changelog's #v2-1-0 does. Fragments holding "=" or "&" are tracking ("#xtor=RSS-1") and dropped.
_NOISE_FRAGMENTS = re.compile(
    r"(?i)^(?:top|main|content|main-content|comments?|respond|reply|disqus_thread|comment-\d+|more)$"
)
_ID_FRAGMENT = re.compile(r"^[A-Za-z][\w.:-]*$")


def _names_an_item(url: str) -> bool:
    """Whether the #fragment of a listing link tells items apart: the same for every page and run, so
    an item's key never changes when other items come and go."""
    fragment = url.partition("#")[2]
    return bool(_ID_FRAGMENT.match(fragment)) and not _NOISE_FRAGMENTS.match(fragment)


def item_url_key(url: str) -> str:
    """A listed item's identity in the store: its canonical URL, with the #fragment only where it names the item."""
    return canonical_url(url, keep_fragment=_names_an_item(url))
