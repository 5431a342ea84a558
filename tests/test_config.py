"""Config loading: every mistake is an error naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedmaker.config import Schedule, check_config, load_all, load_settings, load_site
from feedmaker.errors import ConfigError, ConfigErrors

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
        (('headline = "h2"', 'headlin = "h2"'), "list.headlin", "unknown key"),
        (('item = "article.post"', 'item = "article["'), "list.item", "invalid CSS selector"),
        (("https://example.com/news/", "ftp://example.com/"), "start_urls", "not an http(s) URL"),
        (("every 30m", "every thirty minutes"), "schedule", "neither 'every N(s|m|h|d)' nor"),
        (("every 30m", "61 * * * *"), "schedule", "invalid cron line"),
        (("every 30m", "0 0 30 2 *"), "schedule", "cron line '0 0 30 2 *' never fires"),
        (("every 30m", "every 99999999999999999999d"), "schedule", "must be between 1 s and 366 days"),
        (("every 30m", "every 0s"), "schedule", "must be between 1 s and 366 days"),
        (("Asia/Seoul", "Mars/Olympus"), "timezone", "unknown time zone"),
        (("^Indexbit Exchange:", "(unclosed"), "canonical.strip", "invalid regular expression"),
        (('css = ".date"', 'css = "..date"'), "article.date.0.css", "invalid CSS selector"),
    ],
)
def test_a_mistake_names_file_and_key(
    tmp_path: Path, change: tuple[str, str], key: str, problem: str
) -> None:
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
    with pytest.raises(ConfigError, match=r"line 1") as info:
        load_site(path)
    assert info.value.line == 1
    assert str(info.value).startswith(f"{path}:1: TOML syntax: ")


def test_missing_required_field_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('item = "article.post"\n', ""))
    with pytest.raises(ConfigError, match=r"example\.toml:5: list\.item: missing$"):
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


def test_every_problem_of_a_file_is_reported_in_one_pass(tmp_path: Path) -> None:
    """Three mistakes in one file: three errors, in file order, each with its own line and key."""
    text = (
        GOOD.replace("every 30m", "every thirty")
        .replace('"h2 a"', '"h2 a["')
        .replace('author = ".byline"', 'author = ".byline"\nautor = "x"')
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigErrors) as info:
        load_site(path)
    found = [(e.key, e.line) for e in info.value.errors]
    lines = path.read_text().splitlines()
    assert [key for key, _ in found] == ["schedule", "list.link.0.css", "article.autor"]
    for key, line in found:
        assert line is not None
        assert key.split(".")[-1].replace("0", "").strip(".") in lines[line - 1] or "css" in key
    assert str(info.value).count("\n") == 2
    assert str(info.value).splitlines()[0].startswith(f"{path}:4: schedule: ")


def test_every_problem_of_every_file_is_reported(tmp_path: Path) -> None:
    sites = tmp_path / "sites"
    sites.mkdir()
    write(sites, GOOD, "good.toml")
    write(sites, GOOD.replace("Asia/Seoul", "Mars/Olympus"), "bad-zone.toml")
    write(sites, GOOD.replace('name = "Example News"', 'name = "Example'), "bad-toml.toml")
    write(tmp_path, "feed_size = 0\n[fetch]\ntimout = 3\n", "feedmaker.toml")
    found = check_config(tmp_path)
    assert [s.id for s in found.sites] == ["good"]
    assert found.settings is None
    where = sorted((Path(e.path).name, e.key) for e in found.errors)
    assert where == [
        ("bad-toml.toml", ""),
        ("bad-zone.toml", "timezone"),
        ("feedmaker.toml", "feed_size"),
        ("feedmaker.toml", "fetch.timout"),
    ]
    with pytest.raises(ConfigErrors) as info:
        load_all(tmp_path)
    assert len(info.value.errors) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('headline = "h2"', 'headlin = "h2"'), "list.headlin: unknown key; did you mean `headline`?"),
        (('item = "article.post"', 'itme = "article.post"'), "list.itme: unknown key; did you mean `item`?"),
        (("start_urls =", "start_url ="), "start_url: unknown key; did you mean `start_urls`?"),
        (('attr = "datetime"', 'atr = "datetime"'), "list.date.0.atr: unknown key; did you mean `attr`?"),
        (("[canonical]", "[canonicl]"), "canonicl: unknown key; did you mean `canonical`?"),
    ],
)
def test_a_misspelt_key_suggests_the_key_of_its_table(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    """The suggestion comes from the keys valid at that level, and the key it stands for is not also 'missing'."""
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_site(path)
    assert [e.problem for e in info.value.errors if e.problem.startswith("unknown")] == [
        message.split(": ", 1)[1]
    ]
    assert message in str(info.value)
    assert "missing" not in str(info.value)


def test_a_key_far_from_any_known_key_gets_no_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_site(write(tmp_path, GOOD.replace("[list]", "zzzzzz = 1\n[list]")))
    assert str(info.value).endswith("zzzzzz: unknown key")


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        (('schedule = "every 30m"', 'max_items = "ten"'), "max_items", "must be a whole number, not 'ten'"),
        (('schedule = "every 30m"', "max_items = 0"), "max_items", "must be at least 1"),
        (('schedule = "every 30m"', "max_pages = 99"), "max_pages", "must be at most 50"),
        (
            ('["https://example.com/news/"]', '"https://example.com/news/"'),
            "start_urls",
            "must be a list [ … ], not 'https://example.com/news/'",
        ),
        (('["https://example.com/news/"]', "[]"), "start_urls", "must not be empty"),
        (
            ('schedule = "every 30m"', 'allow_private_network = "maybe"'),
            "allow_private_network",
            "must be true or false, not 'maybe'",
        ),
        (('name = "Example News"', "name = 5"), "name", "must be text in quotes, not 5"),
        (("strip = [", "strip = 3 #"), "canonical.strip", "must be a list [ … ], not 3"),
        (('schedule = "every 30m"', "filters = 3"), "filters", "must be a table, not 3"),
    ],
)
def test_messages_are_plain_words(tmp_path: Path, change: tuple[str, str], key: str, message: str) -> None:
    """No pydantic wording ("Input should be a valid tuple", "Field required") reaches a user."""
    with pytest.raises(ConfigError) as info:
        load_site(write(tmp_path, GOOD.replace(*change)))
    problems = {e.key: e.problem for e in info.value.errors}
    assert problems[key] == message
    assert "Input should" not in str(info.value)
    assert "Field required" not in str(info.value)


def test_a_selector_field_of_the_wrong_type_says_what_it_may_be(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_site(write(tmp_path, GOOD.replace('headline = "h1"', "headline = 1")))
    assert info.value.key == "article.headline"
    assert "CSS selector" in info.value.problem
    assert "Input should" not in info.value.problem


def test_combined_feed_errors_name_their_line(tmp_path: Path) -> None:
    (tmp_path / "sites").mkdir()
    write(tmp_path / "sites", GOOD)
    write(
        tmp_path, '[[feed]]\nid = "example"\ntitle = "All"\nsites = ["example", "nope"]\n', "feedmaker.toml"
    )
    found = check_config(tmp_path)
    assert [(e.key, e.line) for e in found.errors] == [("feed.0.id", 2), ("feed.0.sites", 4)]


def test_schedule_bounds() -> None:
    assert Schedule.parse("every 1s").interval == 1
    assert Schedule.parse("every 366d").interval == 366 * 86400
    assert Schedule.parse("0 0 29 2 *").cron == "0 0 29 2 *"  # leap day: rare but real
    for bad in ("every 367d", "0 0 31 4 *", "0 0 30 2 *"):
        with pytest.raises(ValueError, match=r"366 days|never fires"):
            Schedule.parse(bad)


def test_feed_cross_checks_run_beside_broken_site_files(tmp_path: Path) -> None:
    """A broken site file is one problem; a feed naming it is not another, a feed naming nothing is."""
    (tmp_path / "sites").mkdir()
    write(tmp_path / "sites", GOOD.replace("Asia/Seoul", "Mars/Olympus"))
    write(tmp_path, '[[feed]]\nid = "all"\ntitle = "All"\nsites = ["example", "nope"]\n', "feedmaker.toml")
    found = check_config(tmp_path)
    assert [(Path(e.path).name, e.key) for e in found.errors] == [
        ("example.toml", "timezone"),
        ("feedmaker.toml", "feed.0.sites"),
    ]
    assert "['nope']" in found.errors[1].problem


def test_settings_problems_come_in_file_order_in_plain_words(tmp_path: Path) -> None:
    path = write(
        tmp_path, 'log_level = "LOUD"\n[server]\nport = 99999\n[fetch]\ndelay = -1\n', "feedmaker.toml"
    )
    with pytest.raises(ConfigErrors) as info:
        load_settings(path)
    assert [(e.line, e.key, e.problem) for e in info.value.errors] == [
        (1, "log_level", "must be one of 'DEBUG', 'INFO', 'WARNING' or 'ERROR', not 'LOUD'"),
        (3, "server.port", "must be at most 65535"),
        (5, "fetch.delay", "must be at least 0"),
    ]


_RE2 = "which feedmaker's linear-time engine (RE2) does not support"


@pytest.mark.parametrize(
    ("change", "key", "line", "message"),
    [
        (
            ('strip = ["^Indexbit Exchange:\\\\s*"]', 'strip = ["^Indexbit(?=:)", "x"]'),
            "canonical.strip",
            18,
            f"regex '^Indexbit(?=:)' uses a lookahead `(?=`, {_RE2}",
        ),
        (
            ('author = ".byline"', 'author = { css = ".byline", regex = "(\\\\w+) \\\\1" }'),
            "article.author.0.regex",
            14,
            f"regex '(\\\\w+) \\\\1' uses a backreference `\\1`, {_RE2}",
        ),
        (
            ("[canonical]", '[filters]\nexclude = ["ok", "(?<!not )sponsored"]\n[canonical]'),
            "filters.exclude",
            18,
            f"regex '(?<!not )sponsored' uses a negative lookbehind `(?<!`, {_RE2}",
        ),
    ],
)
def test_a_regex_re2_cannot_take_names_file_line_and_key(
    tmp_path: Path, change: tuple[str, str], key: str, line: int, message: str
) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_site(path)
    assert str(info.value) == f"{path}:{line}: {key}: {message}"
    assert key.split(".")[-1] in path.read_text().splitlines()[line - 1]


def test_a_combined_feed_filter_re2_cannot_take_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "sites").mkdir()
    write(tmp_path / "sites", GOOD)
    text = '[[feed]]\nid = "all"\ntitle = "All"\nsites = ["example"]\nfilters = { include = ["(a)\\\\1"] }\n'
    path = write(tmp_path, text, "feedmaker.toml")
    with pytest.raises(ConfigError) as info:
        load_all(tmp_path)
    assert (
        str(info.value)
        == f"{path}:5: feed.0.filters.include: regex '(a)\\\\1' uses a backreference `\\1`, {_RE2}"
    )


def test_site_regexes_are_re2_syntax_and_keep_their_text(tmp_path: Path) -> None:
    """RE2-only forms load; the models keep the pattern text (frozen, hashable, equal across loads)."""
    text = GOOD.replace('strip = ["^Indexbit Exchange:\\\\s*"]', 'strip = ["^\\\\pL+ Exchange:\\\\s*\\\\z"]')
    first, second = load_site(write(tmp_path, text)), load_site(write(tmp_path, text))
    assert first.canonical.strip == (r"^\pL+ Exchange:\s*\z",)
    assert first == second
    assert hash(first.canonical) == hash(second.canonical)
