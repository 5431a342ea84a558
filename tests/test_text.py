"""text: the one title-affix rule and the one fold, as extract and canon both use them."""

from __future__ import annotations

import html

from feedmaker.canon import canonical_key
from feedmaker.config import ListSelectors, SiteConfig
from feedmaker.extract import extract_fields
from feedmaker.models import Page
from feedmaker.text import compact, fold, strip_title_affixes

WIRE = "North Korea\u2019s Kim orders increased production of mobile launch vehicles as tensions grow with US"
WELT = "Scholz verurteilt Angriff aus SPD-Spitzenkandidat \u2013 \u201eDemokratie wird von so etwas bedroht\u201c"

# (title as a page or a farm prints it, the site names known for it, the headline)
AFFIX_CASES = (
    ("BBC News: Big story happens", ("BBC News",), "Big story happens"),
    ("Big story happens -BBC News", ("BBC News",), "Big story happens"),
    ("Big story happens \u00bb BBC News", ("BBC News",), "Big story happens"),
    (f"{WELT} - WELT", ("WELT",), WELT),
    (
        f"Indexbit Exchange:{WIRE} -GrowthSphere Strategies",
        ("GrowthSphere Strategies", "Indexbit Exchange"),
        WIRE,
    ),
    ("Release v2.10.2 \u00b7 nuxt/nuxt.js \u00b7 GitHub", ("GitHub",), "Release v2.10.2 \u00b7 nuxt/nuxt.js"),
)


def test_one_affix_rule_gives_one_headline_to_extract_and_canon() -> None:
    """Each title has one answer, and extract's <title> fallback and canon's key both come to it."""
    for title, names, headline in AFFIX_CASES:
        assert strip_title_affixes(title, names) == headline, title
        assert canonical_key(title, site_names=names) == fold(headline), title
        body = (
            f"<html><head><title>{html.escape(title)}</title>"
            + "".join(f'<meta property="og:site_name" content="{html.escape(n)}">' for n in names[1:])
            + "</head><body><p>Text.</p></body></html>"
        )
        site = SiteConfig(
            id="s", name=names[0], start_urls=("https://news.example/",), list=ListSelectors(item="li")
        )
        article = extract_fields(
            Page(url="https://news.example/a/1", body=body.encode(), encoding="utf-8"), site
        )
        assert (article.headline, article.origin("headline")) == (headline, "title"), title


def test_fold_is_the_one_notion_of_same_words() -> None:
    """Quotes, dashes, case and in-word apostrophes fold together; compact() is fold() without spaces."""
    assert (
        fold("Kim\u2019s \u201cbig\u201d plan \u2014 US-led")
        == fold('kim\'s "BIG" plan - us led')
        == "kims big plan us led"
    )
    assert compact("Ars Technica") == compact("ars-technica") == compact("arstechnica") == "arstechnica"
