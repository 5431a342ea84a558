"""patterns: user regexes run in linear time (RE2), with one case rule and one group rule for every stage."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedmaker import patterns
from feedmaker.canon import canonical_key
from feedmaker.config import Filters, load_site
from feedmaker.extract import extract_listing
from feedmaker.models import Page

# Python's re needs about 2**n steps to fail `(a+)+$` on n a's and a '!': this input would never finish.
CATASTROPHIC = "(a+)+$"
HOSTILE = "a" * 100_000 + "!"


def test_a_catastrophic_pattern_fails_fast_in_a_filter_a_strip_and_a_field() -> None:
    """`(a+)+$` never matches 100 kB of a's ending in '!': each use answers 'no match' at once."""
    assert Filters(exclude=(CATASTROPHIC,)).keeps(HOSTILE)
    assert not Filters(include=(CATASTROPHIC,)).keeps(HOSTILE)
    assert canonical_key(HOSTILE, strip=(CATASTROPHIC,)) == "a" * 100_000
    assert patterns.captured(CATASTROPHIC, HOSTILE) is None
    # Without the '!' the same pattern matches the whole text.
    assert canonical_key(HOSTILE[:-1] + " end", strip=(r"(a+)+\s",)) == "end"
    assert patterns.captured(CATASTROPHIC, HOSTILE[:-1]) == "a" * 100_000


SITE = """name = "Hostile"
start_urls = ["https://news.example/"]
[list]
item = "li"
headline = "a"
author = {{ css = ".by", regex = "{0}" }}
[canonical]
strip = ["{0}"]
[filters]
exclude = ["{0}", "sponsored"]
"""


def test_a_site_with_a_catastrophic_pattern_everywhere_extracts_its_items(tmp_path: Path) -> None:
    """The pattern loads from a site file and the listing with a 100 kB headline is read, filtered and keyed."""
    path = tmp_path / "hostile.toml"
    path.write_text(SITE.format(CATASTROPHIC), encoding="utf-8")
    site = load_site(path)
    body = (
        f'<ul><li><a href="/1">{HOSTILE}</a><span class="by">{HOSTILE}</span></li>'
        '<li><a href="/2">Second story</a><span class="by">by aaa</span></li>'
        '<li><a href="/3">SPONSORED: buy now</a></li></ul>'
    )
    page = Page(
        url="https://news.example/", body=body.encode(), encoding="utf-8", fetched_at=datetime.now(UTC)
    )
    items = extract_listing(page, site).items
    assert [(a.url, a.author) for a in items] == [
        ("https://news.example/1", None),
        ("https://news.example/2", "aaa"),
    ]
    assert canonical_key(items[0].headline, strip=site.canonical.strip) == "a" * 100_000


def test_filters_and_strip_match_in_any_case_and_a_field_as_written() -> None:
    assert patterns.matches("sponsored", "SPONSORED: buy")
    assert patterns.matches("münchen", "MÜNCHEN heute")
    assert patterns.blank_out(r"^breaking:\s*", "BREAKING: news") == " news"
    assert patterns.captured("^by (.+)$", "By Jane") is None
    assert patterns.captured("^By (.+)$", "By Jane") == "Jane"


def test_a_filter_anchored_at_the_end_sees_the_headline_end_and_the_summary_end() -> None:
    video = Filters(exclude=(r"\(video\)$",))
    assert not video.keeps("Storm hits the coast (video)")
    assert not video.keeps("Storm hits the coast (video)", "")
    assert video.keeps("Storm hits the coast (video)", "Winds of 150 km/h")
    assert not video.keeps("Storm hits the coast", "Watch it (video)")


def test_a_field_keeps_group_one_or_the_whole_match() -> None:
    assert patterns.captured(r"\d{4}-\d{2}-\d{2}", "on 2024-05-06 at noon") == "2024-05-06"
    assert patterns.captured(r"(\d{4})-\d{2}", "on 2024-05 at noon") == "2024"
    assert patterns.captured(r"(x)?y", "y") == ""  # group 1 took no part in the match
    assert patterns.captured(r"x", "abc") is None


def test_re2_syntax_beyond_python_is_accepted() -> None:
    assert patterns.check_field(r"^\pL+\z") == r"^\pL+\z"
    assert patterns.captured(r"^(\pL+)", "Ünïcode words") == "Ünïcode"


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        (
            r"foo(?=bar)",
            "uses a lookahead `(?=`, which feedmaker's linear-time engine (RE2) does not support",
        ),
        (r"foo(?!bar)", "uses a negative lookahead `(?!`"),
        (r"(?<=\$)\d+", "uses a lookbehind `(?<=`"),
        (r"(?<!not )good", "uses a negative lookbehind `(?<!`"),
        (r"(\w)\1", "uses a backreference `\\1`"),
        (r"(?P<w>\w)(?P=w)", "uses a named backreference `(?P=`"),
        (r"a++b", "uses a possessive quantifier `++`"),
        (r"a{2}+", "uses a possessive quantifier `{2}+`"),
        (r"(?>ab|a)c", "uses an atomic group `(?>`"),
        (r"(a)?(?(1)b|c)", "uses a conditional `(?(`"),
        (r"end\Z", "write `\\z` for the end of the text"),
        (r"(unclosed", "invalid regular expression '(unclosed': missing )"),
    ],
)
def test_a_pattern_re2_cannot_take_is_refused_in_plain_words(pattern: str, says: str) -> None:
    for check in (patterns.check_any_case, patterns.check_field):
        with pytest.raises(ValueError, match=r"^(regex|invalid regular expression) ") as info:
            check(pattern)
        assert says in str(info.value)
        assert repr(pattern) in str(info.value)


# ------------------------------------------------------------------------------------------------- hypothesis

_ATOMS = st.sampled_from(["a", "b", "ab", ".", "[ab]", "[^a]", r"\d", r"\s", "x", " ", "A", r"\.", "1"])
_BODY = st.recursive(
    _ATOMS,
    lambda inner: st.one_of(
        st.builds("{}{}".format, inner, inner),
        st.builds("(?:{}|{})".format, inner, inner),
        st.builds("(?:{}){}".format, inner, st.sampled_from(["*", "+", "?", "{1,2}", "*?", "+?"])),
    ),
    max_leaves=6,
)
PATTERNS = st.builds("{}({}){}".format, st.sampled_from(["", "^"]), _BODY, st.sampled_from(["", "$", "b"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=PATTERNS, text=st.text(alphabet="abAB1 .x", max_size=12))
def test_patterns_both_engines_take_give_what_python_re_gave(pattern: str, text: str) -> None:
    """Switching engines changes no answer for the syntax both take: the same match, group 1 and case rule."""
    m = re.search(pattern, text)
    assert patterns.captured(pattern, text) == (None if m is None else m.group(1) or "")
    assert patterns.matches(pattern, text) == bool(re.search(pattern, text, re.IGNORECASE))
