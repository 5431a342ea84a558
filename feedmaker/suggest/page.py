"""The listing page while suggest works on it: the parsed Document, its body, memoised anatomy and chrome."""

from __future__ import annotations

from dataclasses import dataclass, field

from feedmaker.extract import Document, Node, Tree
from feedmaker.suggest.anatomy import Anatomy, read_anatomy
from feedmaker.suggest.nodes import ancestors, class_words
from feedmaker.suggest.selectors import Reader, url_reader

__all__ = ["MIN_ITEMS", "SAMPLE", "ListingPage"]

MIN_ITEMS = 3
SAMPLE = 16  # items looked at when deriving field selectors; the preview reads them all

_BAD_WORDS = frozenset(
    {
        "nav",
        "navbar",
        "navigation",
        "menu",
        "menubar",
        "footer",
        "breadcrumb",
        "breadcrumbs",
        "sidebar",
        "widget",
        "widgets",
        "comment",
        "comments",
        "share",
        "sharing",
        "social",
        "pagination",
        "pager",
        "cookie",
        "cookies",
        "masthead",
        "skip",
        "toolbar",
        "dropdown",
        "login",
        "subscribe",
    }
)
_BAD_TAGS = frozenset({"nav", "footer", "aside", "header", "form", "menu"})


@dataclass(slots=True)
class ListingPage:
    doc: Document  # the page as extract parsed it; `tree` is its tree
    tree: Tree
    root: Node
    url: str
    host: str
    size: int  # characters of text in the body
    chrome: dict[int, bool] = field(default_factory=dict)  # node -> is page furniture, memoised
    parts: dict[int, Anatomy] = field(default_factory=dict)  # node -> its anatomy, memoised
    read_url: Reader = field(init=False)

    def __post_init__(self) -> None:
        self.read_url = url_reader(self.url)

    def anatomy(self, node: Node) -> Anatomy:
        found = self.parts.get(node.mem_id)
        if found is None:
            found = self.parts[node.mem_id] = read_anatomy(node, self.url)
        return found

    def in_chrome(self, node: Node) -> bool:
        """Inside the page's furniture: nav, footer, aside, menus, comments, share bars.

        A block holding most of the page is a wrapper, whatever its class says (`experiment-repo-nav`).
        """
        for n in [node, *ancestors(node, self.root)]:
            known = self.chrome.get(n.mem_id)
            if known is None:
                bad = n.tag in _BAD_TAGS or n.attributes.get("role") in (
                    "navigation",
                    "banner",
                    "contentinfo",
                )
                bad = bad or bool(class_words(n) & _BAD_WORDS)
                if bad:
                    bad = len(n.text(deep=True)) < 0.3 * self.size
                known = self.chrome[n.mem_id] = bad
            if known:
                return True
        return False
