"""Page + SiteConfig -> Listing / Article. Pure; the only stage that imports selectolax.

A page is decoded once (`decode`) and parsed once (`metadata.Document`). Each field is read through its
FieldChain (`fields`: the first spec that yields a usable value wins); where a site gives no selector, or
its selectors match nothing, the page's own metadata fills in (`fallbacks`): JSON-LD, OpenGraph /
article:*, meta author, Twitter cards, <time datetime>, <link rel=canonical>, <title>. Every value
records where it came from in Article.origins. Metadata is only read when a fallback is needed.
`listing` and `article` put the fields together.

All text is NFC, whitespace-collapsed and free of characters XML 1.0 forbids; links are absolute
http(s) (or mailto); `content` is sanitised HTML (nh3).
"""

from feedmaker.extract.article import extract_article, extract_fields
from feedmaker.extract.decode import decode_html
from feedmaker.extract.fields import sanitize_html
from feedmaker.extract.listing import extract_listing, listing_document, read_item
from feedmaker.extract.metadata import BadSelector, Document, Node, Tree
from feedmaker.text import clean_text, strip_title_affixes

__all__ = [
    "BadSelector", "Document", "Node", "Tree", "clean_text", "decode_html", "extract_article",
    "extract_fields", "extract_listing", "listing_document", "read_item", "sanitize_html",
    "strip_title_affixes",
]  # fmt: skip
