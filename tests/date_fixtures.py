"""feedmaker's own annotated date pages (tests/pages/dates): small pages, one general date rule each,
scored like the shared corpora (tests/corpus.py) by benchmarks/accuracy.py and tests/test_extract.py.

truth.json lists, per page: the file, the URL it is served from (URL date cues), the site's time zone (absent: not configured)
and language, "now" (the fetch time: what "in the future" means) and the published truth (ISO 8601;
a day alone where only the day is known), plus `rule`: the one-line rule the page exercises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from feedmaker.config import ListSelectors, SiteConfig
from feedmaker.models import Page
from tests.corpus import CorpusPage

__all__ = ["DATE_PAGES", "DatePage", "date_pages"]

DATE_PAGES = Path(__file__).resolve().parent / "pages" / "dates"


@dataclass(frozen=True, slots=True, kw_only=True)
class DatePage(CorpusPage):
    now: datetime

    def page(self) -> Page:
        return Page(url=self.url, body=self.body, encoding=None, fetched_at=self.now)

    @property
    def body(self) -> bytes:
        return self.path.read_bytes()


@cache
def date_pages() -> tuple[DatePage, ...]:
    entries = json.loads((DATE_PAGES / "truth.json").read_text(encoding="utf-8"))
    pages = []
    for entry in entries:
        site = SiteConfig(
            id="dates",
            name=entry.get("site_name", "Example News"),
            start_urls=(entry["url"],),
            **({"timezone": entry["timezone"]} if "timezone" in entry else {}),
            language=entry.get("language"),
            list=ListSelectors(item="article"),
        )
        pages.append(
            DatePage(
                name=Path(entry["file"]).stem,
                path=DATE_PAGES / entry["file"],
                url=entry["url"],
                truth={
                    "published": entry["published"],
                    "rule": entry["rule"],
                    "asserted_fields": ["date_published"],
                },
                site=site,
                bare=site,
                now=datetime.fromisoformat(entry["now"]),
            )
        )
    return tuple(pages)
