"""Config loading: every mistake is an error naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedmaker.config import Schedule, load_all, load_site
from feedmaker.errors import ConfigError

GOOD = """name = "Example News"
start_urls = ["https://example.com/news/"]
timezone = "Asia/Seoul"
schedule = "every 30m"
[list]
item = "article.post"
link = "h2 a"
headline = "h2"
date = { css = "time", attr = "datetime" }
summary = "p.excerpt"
[article]
headline = "h1"
date = { css = ".date", format = "Date:%Y-%m-%d %H:%M:%S" }
author = ".byline"
image = { css = "meta[property='og:image']", attr = "content" }
content = "div.body"
[canonical]
strip = ["^Indexbit Exchange:\\\\s*"]
"""


def write(tmp_path: Path, text: str, name: str = "example.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_readme_example_loads_with_id_from_file_name(tmp_path: Path) -> None:
    site = load_site(write(tmp_path, GOOD))
    assert site.id == "example"
    assert site.schedule.interval == 1800
    assert site.list.link[0].css == "h2 a"
    assert site.article is not None
    assert site.article.date is not None
    assert site.article.date[0].format == "Date:%Y-%m-%d %H:%M:%S"
    assert site.canonical.strip == (r"^Indexbit Exchange:\s*",)


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (("headline = \"h2\"", "headlin = \"h2\""), "list.headlin", "unknown key"),
        (("item = \"article.post\"", "item = \"article[\""), "list.item", "invalid CSS selector"),
        (("https://example.com/news/", "ftp://example.com/"), "start_urls", "not an http(s) URL"),
        (("every 30m", "every thirty minutes"), "schedule", "neither 'every N(s|m|h|d)' nor"),
        (("every 30m", "61 * * * *"), "schedule", "invalid cron line"),
        (("Asia/Seoul", "Mars/Olympus"), "timezone", "unknown time zone"),
        (("^Indexbit Exchange:", "(unclosed"), "canonical.strip", "invalid regular expression"),
        (("css = \".date\"", "css = \"..date\""), "article.date.0.css", "invalid CSS selector"),
    ],
)
def test_a_mistake_names_file_and_key(tmp_path: Path, change: tuple[str, str], key: str, problem: str) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_site(path)
    assert info.value.path == str(path)
    assert info.value.key == key
    assert problem in info.value.problem
    assert info.value.line is not None
    assert str(info.value).startswith(f"{path}:{info.value.line}: {key}: ")
    assert key.split(".")[-1] in path.read_text().splitlines()[info.value.line - 1]


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('name = "Example News"', 'name = "Example News'))
    with pytest.raises(ConfigError, match=r"line 1"):
        load_site(path)


def test_missing_required_field_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('item = "article.post"\n', ""))
    with pytest.raises(ConfigError, match=r"list\.item: Field required"):
        load_site(path)


def test_bad_file_name_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="site id 'Bad Name'"):
        load_site(write(tmp_path, GOOD, "Bad Name.toml"))


def test_combined_feed_must_name_known_sites(tmp_path: Path) -> None:
    (tmp_path / "sites").mkdir()
    write(tmp_path / "sites", GOOD)
    write(tmp_path, '[[feed]]\nid = "all"\ntitle = "All"\nsites = ["example", "nope"]\n', "feedmaker.toml")
    with pytest.raises(ConfigError, match=r"feed\.0\.sites: unknown site\(s\) \['nope'\]"):
        load_all(tmp_path)


def test_schedule_forms() -> None:
    assert Schedule.parse("every 90s").interval == 90
    assert Schedule.parse("every 2h").interval == 7200
    assert Schedule.parse("*/15 * * * *").cron == "*/15 * * * *"


def test_shipped_configs_are_valid() -> None:
    settings, sites = load_all(Path(__file__).parent.parent / "config")
    assert len(sites) >= 2
    assert {s for f in settings.feed for s in f.sites} <= {s.id for s in sites}


def test_link_and_image_strings_mean_href_src_and_meta_content(tmp_path: Path) -> None:
    text = GOOD.replace('summary = "p.excerpt"', 'summary = "p.excerpt"\nimage = "img.lead"\nnext = "a.next"')
    site = load_site(write(tmp_path, text))
    assert site.list.link[0].attr == "href"
    assert site.list.next is not None
    assert site.list.next[0].attr == "href"
    assert site.list.image is not None
    assert site.list.image[0].attr == "src"
    assert site.article is not None
    assert site.article.image is not None
    assert site.article.image[0].attr == "content"


def test_a_missing_config_dir_or_no_sites_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config directory"):
        load_all(tmp_path / "nowhere")
    (tmp_path / "sites").mkdir()
    with pytest.raises(ConfigError, match=r"sites: no site files"):
        load_all(tmp_path)


def test_an_error_in_the_second_combined_feed_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "sites").mkdir()
    write(tmp_path / "sites", GOOD)
    settings = write(
        tmp_path,
        '# filters = { exclude = ["commented"] }\n[[feed]]\nid = "one"\ntitle = "One"\nsites = ["example"]\n'
        'filters = { exclude = ["fine"] }\n\n[[feed]]\nid = "two"\ntitle = "Two"\nsites = ["example"]\n'
        'filters = { exclude = ["(unclosed"] }\n',
        "feedmaker.toml",
    )
    with pytest.raises(ConfigError) as info:
        load_all(tmp_path)
    assert info.value.key == "feed.1.filters.exclude"
    assert info.value.line == 12
    assert "(unclosed" in settings.read_text().splitlines()[info.value.line - 1]
