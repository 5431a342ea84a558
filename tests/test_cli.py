"""The command line: exit codes and what a person reads."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from feedmaker.cli import main
from tests.sites import PAGES

ROOT = Path(__file__).parent.parent
NUXT = PAGES / "html2rss" / "nuxt-releases.html"


def test_validate_accepts_the_shipped_configs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(ROOT / "config"), "validate"]) == 0
    out = capsys.readouterr().out
    assert "nuxt-releases.toml" in out
    assert "all valid" in out


def test_validate_names_file_line_and_key_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    site = config / "sites" / "nuxt-releases.toml"
    site.write_text(site.read_text().replace('item = ".release"', 'itme = ".release"'))
    assert main(["--config", str(config), "validate"]) == 2
    err = capsys.readouterr().err
    line = next(n for n, text in enumerate(site.read_text().splitlines(), 1) if text.startswith("itme"))
    assert f"{site}:{line}: list.itme: unknown key" in err


def test_check_shows_every_item_and_a_field_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(ROOT / "config"), "check", "nuxt-releases", "--html", str(NUXT)]) == 0
    out = capsys.readouterr().out
    assert "10 item(s) from list.item '.release'" in out
    assert "v2.10.2" in out
    assert "[selector:relative-time@datetime]" in out
    assert any(line.split()[:3] == ["date", "relative-time@datetime", "10/10"] for line in out.splitlines())


def test_check_warns_about_a_selector_that_matches_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "nuxt.toml"
    text = (ROOT / "config" / "sites" / "nuxt-releases.toml").read_text()
    site.write_text(text.replace('author = { css = "img.avatar"', 'author = { css = "img.nothing-here"'))
    assert main(["check", str(site), "--html", str(NUXT)]) == 0
    out = capsys.readouterr().out
    assert "warning: list.author 'img.nothing-here@alt' is empty in 10/10 item(s)" in out


def test_check_exits_1_when_no_item_matches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "nuxt.toml"
    site.write_text((ROOT / "config" / "sites" / "nuxt-releases.toml").read_text().replace('".release"', '".gone"'))
    assert main(["check", str(site), "--html", str(NUXT)]) == 1
    assert "'.gone'" in capsys.readouterr().out


def test_suggest_from_a_file_prints_a_config_that_check_confirms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = "https://github.com/nuxt/nuxt.js/releases"
    assert main(["suggest", str(NUXT), "--url", url, "--name", "Nuxt"]) == 0
    site = tmp_path / "nuxt.toml"
    site.write_text(capsys.readouterr().out)
    assert main(["check", str(site), "--html", str(NUXT)]) == 0
    assert "10 item(s)" in capsys.readouterr().out


def test_suggest_from_a_file_needs_its_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["suggest", str(NUXT)]) == 2
    assert "--url" in capsys.readouterr().err


def test_config_option_works_after_the_command_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--config", str(ROOT / "config")]) == 0
    assert "all valid" in capsys.readouterr().out


# ------------------------------------------------------------ own fixtures: no corpus, no network beyond 127.0.0.1

LISTING = """<html><head><title>Local News</title></head><body>
<article><h2><a href="/one">A first local story</a></h2><span class="date">2025-03-04</span></article>
<article><h2><a href="/two">A second local story</a></h2><span class="date">2025-03-05</span></article>
</body></html>"""

SITE = """name = "Local News"
start_urls = ["https://local.example/"]
allow_private_network = true
[list]
item = "article"
headline = "h2"
date = { css = ".date", format = "%d.%m.%Y" }
"""


def make_config(tmp_path: Path, **sites: str) -> Path:
    config = tmp_path / "config"
    (config / "sites").mkdir(parents=True)
    (config / "feedmaker.toml").write_text(f'state_dir = "{tmp_path}/state"\noutput_dir = "{tmp_path}/out"\n')
    for name, text in sites.items():
        (config / "sites" / f"{name}.toml").write_text(text)
    return config


def test_validate_reports_every_problem_of_every_file_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config(
        tmp_path,
        good=SITE,
        typo=SITE.replace("item =", "itme =").replace('headline = "h2"', 'headlin = "h2"'),
        types=SITE.replace('name = "Local News"', 'name = "Local News"\nmax_items = "ten"\nschedule = "0 0 30 2 *"'),
    )
    assert main(["--config", str(config), "validate"]) == 2
    captured = capsys.readouterr()
    assert "good.toml" in captured.out
    typo, types = config / "sites" / "typo.toml", config / "sites" / "types.toml"
    assert captured.err.splitlines() == [
        f"{types}:2: max_items: must be a whole number, not 'ten'",
        f"{types}:3: schedule: cron line '0 0 30 2 *' never fires (no such day)",
        f"{typo}:5: list.itme: unknown key; did you mean `item`?",
        f"{typo}:6: list.headlin: unknown key; did you mean `headline`?",
        "config error: 4 problem(s) in 2 file(s)",
    ]


def test_run_stops_on_config_errors_with_the_same_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config(tmp_path, typo=SITE.replace("item =", "itme ="), zone=SITE.replace('name =', 'timezone = "Mars/Olympus"\nname ='))
    assert main(["--config", str(config), "run", "--once"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"config error: {config / 'sites' / 'typo.toml'}:5: list.itme: unknown key; did you mean `item`?",
        f"config error: {config / 'sites' / 'zone.toml'}:1: timezone: unknown time zone 'Mars/Olympus'",
    ]
    assert not (tmp_path / "state").exists()


def test_check_with_a_missing_html_file_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "local.toml"
    site.write_text(SITE)
    missing = tmp_path / "nowhere.html"
    assert main(["check", str(site), "--html", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: --html {missing}: cannot read: No such file or directory\n"
    assert captured.out == ""


def test_check_warns_about_a_date_format_that_never_matched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site, html = tmp_path / "local.toml", tmp_path / "listing.html"
    site.write_text(SITE)
    html.write_text(LISTING)
    assert main(["check", str(site), "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert "2 item(s) from list.item 'article'" in out
    assert "warning: list.date '.date' format '%d.%m.%Y' matched none of 2 date(s) such as '2025-03-04'" in out
    site.write_text(SITE.replace("%d.%m.%Y", "%Y-%m-%d"))
    assert main(["check", str(site), "--html", str(html)]) == 0
    assert "format" not in capsys.readouterr().out


def test_check_json_and_full_width(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site, html = tmp_path / "local.toml", tmp_path / "listing.html"
    site.write_text(SITE)
    long = "A headline " + "that goes on " * 10 + "and ends here"
    html.write_text(LISTING.replace("A first local story", long))
    assert main(["check", str(site), "--html", str(html), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["items"][0]["fields"]["headline"] == {"value": long, "origin": "selector:h2"}
    assert data["fields"]["link"]["filled"] == 2
    assert any("format '%d.%m.%Y'" in w for w in data["warnings"])
    assert main(["check", str(site), "--html", str(html)]) == 0
    assert "and ends here" not in capsys.readouterr().out
    assert main(["check", str(site), "--html", str(html), "--full"]) == 0
    assert long in capsys.readouterr().out


class _Listing(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = LISTING.encode() if self.path == "/" else b"not here"
        self.send_response(200 if self.path == "/" else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def local_site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Listing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def restore_log_levels() -> Iterator[None]:
    names = ("", "feedmaker", "httpx", "httpcore", "apscheduler")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("restore_log_levels")
@pytest.mark.parametrize(("flag", "library_debug"), [("-v", False), ("-vv", True)])
def test_verbose_shows_feedmakers_request_lines_and_twice_library_debug(
    tmp_path: Path, local_site: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], flag: str, library_debug: bool
) -> None:
    site = tmp_path / "local.toml"
    site.write_text(SITE)
    assert main([flag, "check", str(site), "--url", local_site]) == 0
    assert "2 item(s)" in capsys.readouterr().out
    ours = [r for r in caplog.records if r.name.startswith("feedmaker.fetch") and r.levelno == logging.DEBUG]
    assert any(local_site in r.getMessage() for r in ours)
    libraries = [r for r in caplog.records if r.name.split(".")[0] in ("httpx", "httpcore")]
    assert bool(libraries) is library_debug


@pytest.mark.usefixtures("restore_log_levels")
def test_without_verbose_no_debug_line_is_shown(tmp_path: Path, local_site: str, caplog: pytest.LogCaptureFixture) -> None:
    site = tmp_path / "local.toml"
    site.write_text(SITE)
    assert main(["check", str(site), "--url", local_site, "--json"]) == 0
    assert not [r for r in caplog.records if r.levelno < logging.INFO or r.name.startswith("httpx")]


@pytest.mark.parametrize("schedule", ["0 0 30 2 *", "every 99999999999999999999d"])
def test_the_daemon_refuses_a_schedule_validate_refuses_with_the_same_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], schedule: str
) -> None:
    """One schedule check at config load: the daemon stops with exit 2 before binding or scheduling anything."""
    config = make_config(tmp_path, local=SITE.replace('name = "Local News"', f'name = "Local News"\nschedule = "{schedule}"'))
    assert main(["--config", str(config), "validate"]) == 2
    from_validate = capsys.readouterr().err.splitlines()[0]
    assert from_validate.startswith(f"{config / 'sites' / 'local.toml'}:2: schedule: ")
    assert main(["--config", str(config), "run"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"config error: {from_validate}"]
    assert not (tmp_path / "state").exists()
