"""canon.canonical_key / canonical_url: same story -> same key, different stories -> different keys."""

from __future__ import annotations

import pytest

from feedmaker.canon import canonical_key, canonical_url

FARM = (
    "Indexbit Exchange:North Korea\u2019s Kim orders increased production of mobile launch vehicles "
    "as tensions grow with US -GrowthSphere Strategies"
)
WIRE = "North Korea's Kim orders increased production of mobile launch vehicles as tensions grow with US"


def test_farm_prefix_and_suffix_map_to_the_wire_headline() -> None:
    """A content farm's 'Brand:Headline -Other Brand' is the same story as the wire headline."""
    farm = canonical_key(FARM, strip=(r"^Indexbit Exchange:\s*",), site_names=("GrowthSphere Strategies",))
    assert farm == canonical_key(WIRE)


def test_different_stories_keep_different_keys() -> None:
    other = "North Korea's Kim orders increased production of artillery shells as tensions grow with US"
    assert canonical_key(WIRE) != canonical_key(other)
    farm = canonical_key(FARM, strip=(r"^Indexbit Exchange:\s*",), site_names=("GrowthSphere Strategies",))
    assert farm != canonical_key("Costco membership growth 'robust,' even amid fee increase")


def test_curly_and_straight_quotes_apostrophes_and_dashes_fold_together() -> None:
    assert canonical_key("Kim\u2019s \u201cbig\u201d plan \u2014 explained") == canonical_key(
        'Kim\'s "big" plan - explained'
    )


def test_case_and_whitespace_do_not_matter() -> None:
    assert canonical_key("  Hello\tWORLD \n again ") == canonical_key("hello world again")


def test_nfkc_folds_full_width_forms() -> None:
    assert canonical_key("\uff21\uff22\uff23\u3000\uff11\uff12\uff13") == canonical_key("ABC 123")


def test_punctuation_is_removed() -> None:
    assert canonical_key("Breaking: Houston hires Applewhite!") == "breaking houston hires applewhite"


def test_strip_patterns_are_case_insensitive_and_run_on_nfkc_text() -> None:
    assert (
        canonical_key(
            "\uff29\uff2e\uff24\uff25\uff38\uff22\uff29\uff34 Exchange: Story here",
            strip=(r"^indexbit exchange:",),
        )
        == "story here"
    )


@pytest.mark.parametrize(
    "headline",
    [
        "Story here - Daily Planet",
        "Story here | Daily Planet",
        "Story here -Daily Planet",
        "Story here \u2014 Daily Planet",
        "Daily Planet: Story here",
        "Daily Planet:Story here",
        "Daily Planet | Story here | Daily Planet",
    ],
)
def test_site_name_affixes_are_removed(headline: str) -> None:
    assert canonical_key(headline, site_names=("Daily Planet",)) == "story here"


def test_suffix_that_names_no_known_site_is_kept() -> None:
    """Don't over-strip: a spaced dash inside a title is part of the title unless it names a site."""
    assert canonical_key("Spider-Man - Far From Home review") == "spider man far from home review"
    assert (
        canonical_key("Spider-Man - Far From Home review", site_names=("Daily Planet",))
        == "spider man far from home review"
    )


def test_long_affixes_are_not_site_names() -> None:
    long_name = "One Two Three Four Five"
    assert canonical_key(f"Story - {long_name}", site_names=(long_name,)) == "story one two three four five"


def test_a_headline_that_is_only_the_site_name_is_not_emptied() -> None:
    assert canonical_key("Daily Planet", site_names=("Daily Planet",)) == "daily planet"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://Example.COM/Path?b=2&a=1#frag", "https://example.com/Path?a=1&b=2"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com", "https://example.com/"),
        (
            "https://ex.com/a?utm_source=x&utm_medium=y&fbclid=1&gclid=2&mc_cid=3&mc_eid=4&ref_src=5&igshid=6&id=7",
            "https://ex.com/a?id=7",
        ),
        ("https://ex.com/news.php?ref=101", "https://ex.com/news.php?ref=101"),  # an article id on many CMSes
        ("https://ex.com/a/index.html", "https://ex.com/a/index.html"),
        ("https://ex.com/a%20b?q=a%20b", "https://ex.com/a%20b?q=a%20b"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_canonical_url_tolerates_garbage() -> None:
    assert canonical_url("http://[::1") == "http://[::1"


def test_soft_hyphens_and_zero_width_spaces_do_not_split_words():
    plain = "Bundesregierung beschließt neues Heizungsgesetz"
    assert canonical_key("Bundes\u00adregierung beschließt neues Heizungs\u200bgesetz") == canonical_key(
        plain
    )


def test_indic_vowel_signs_stay_inside_their_word():
    """'Live updates' in Hindi is two words, so it stays a generic (short) key."""
    assert canonical_key("लाइव अपडेट") == "लाइव अपडेट"
    assert canonical_key("ข่าว") != canonical_key("ขาว")  # Thai 'news' is not 'white'


def test_fragment_kept_only_when_asked():
    assert canonical_url("https://ex.com/changelog#v2-1-0") == "https://ex.com/changelog"
    assert (
        canonical_url("https://ex.com/changelog#v2-1-0", keep_fragment=True)
        == "https://ex.com/changelog#v2-1-0"
    )
