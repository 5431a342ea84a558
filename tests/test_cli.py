"""The command line: exit codes and what a person reads."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from feedmaker.cli import main
from tests.sites import PAGES, write_config

ROOT = Path(__file__).parent.parent
NUXT = PAGES / "html2rss" / "nuxt-releases.html"
ATOM = "{http://www.w3.org/2005/Atom}"


def test_validate_accepts_the_shipped_configs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(ROOT / "config"), "validate"]) == 0
    out = capsys.readouterr().out
    assert "nuxt-releases.toml" in out
    assert "all valid" in out


def test_validate_names_file_line_and_key_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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


def test_check_warns_about_a_selector_that_matches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "nuxt.toml"
    text = (ROOT / "config" / "sites" / "nuxt-releases.toml").read_text()
    site.write_text(text.replace('author = { css = "img.avatar"', 'author = { css = "img.nothing-here"'))
    assert main(["check", str(site), "--html", str(NUXT)]) == 0
    out = capsys.readouterr().out
    assert "warning: list.author 'img.nothing-here@alt' is empty in 10/10 item(s)" in out


def test_check_exits_1_when_no_item_matches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "nuxt.toml"
    site.write_text(
        (ROOT / "config" / "sites" / "nuxt-releases.toml").read_text().replace('".release"', '".gone"')
    )
    assert main(["check", str(site), "--html", str(NUXT)]) == 1
    assert "'.gone'" in capsys.readouterr().out


def test_suggest_from_a_file_prints_a_config_that_check_confirms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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


def test_validate_reports_every_problem_of_every_file_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config(
        tmp_path,
        good=SITE,
        typo=SITE.replace("item =", "itme =").replace('headline = "h2"', 'headlin = "h2"'),
        types=SITE.replace(
            'name = "Local News"', 'name = "Local News"\nmax_items = "ten"\nschedule = "0 0 30 2 *"'
        ),
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


def test_run_stops_on_config_errors_with_the_same_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config(
        tmp_path,
        typo=SITE.replace("item =", "itme ="),
        zone=SITE.replace("name =", 'timezone = "Mars/Olympus"\nname ='),
    )
    assert main(["--config", str(config), "run", "--once"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"config error: {config / 'sites' / 'typo.toml'}:5: list.itme: unknown key; did you mean `item`?",
        f"config error: {config / 'sites' / 'zone.toml'}:1: timezone: unknown time zone 'Mars/Olympus'",
    ]
    assert not (tmp_path / "state").exists()


def test_check_with_a_missing_html_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "local.toml"
    site.write_text(SITE)
    missing = tmp_path / "nowhere.html"
    assert main(["check", str(site), "--html", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: --html {missing}: cannot read: No such file or directory\n"
    assert captured.out == ""


def test_check_warns_about_a_date_format_that_never_matched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, html = tmp_path / "local.toml", tmp_path / "listing.html"
    site.write_text(SITE)
    html.write_text(LISTING)
    assert main(["check", str(site), "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert "2 item(s) from list.item 'article'" in out
    assert (
        "warning: list.date '.date' format '%d.%m.%Y' matched none of 2 date(s) such as '2025-03-04'" in out
    )
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
    tmp_path: Path,
    local_site: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    library_debug: bool,
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
def test_without_verbose_no_debug_line_is_shown(
    tmp_path: Path, local_site: str, caplog: pytest.LogCaptureFixture
) -> None:
    site = tmp_path / "local.toml"
    site.write_text(SITE)
    assert main(["check", str(site), "--url", local_site, "--json"]) == 0
    assert not [r for r in caplog.records if r.levelno < logging.INFO or r.name.startswith("httpx")]


@pytest.mark.parametrize("schedule", ["0 0 30 2 *", "every 99999999999999999999d"])
def test_the_daemon_refuses_a_schedule_validate_refuses_with_the_same_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], schedule: str
) -> None:
    """One schedule check at config load: the daemon stops with exit 2 before binding or scheduling anything."""
    config = make_config(
        tmp_path, local=SITE.replace('name = "Local News"', f'name = "Local News"\nschedule = "{schedule}"')
    )
    assert main(["--config", str(config), "validate"]) == 2
    from_validate = capsys.readouterr().err.splitlines()[0]
    assert from_validate.startswith(f"{config / 'sites' / 'local.toml'}:2: schedule: ")
    assert main(["--config", str(config), "run"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"config error: {from_validate}"]
    assert not (tmp_path / "state").exists()


# ------------------------------------------------------------ run --once: signals, broken site files, huge fields

HUGE_HEADLINE = " ".join(f"word{n}" for n in range(110_000))  # about 1 MB


class _Sites(BaseHTTPRequestHandler):
    """/fast/: two stories; /slow/: twenty items whose article pages stall until the server's `release`
    is set; /huge/: one item with a 1 MB headline; anything else (robots.txt) 404."""

    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        if self.path.startswith("/slow/a/"):
            self.server.release.wait(20)  # type: ignore[attr-defined]
            body = "<h1>Late</h1>"
        elif self.path == "/slow/":
            body = "".join(
                f'<article><h2><a href="/slow/a/{n}">Slow story number {n} of today</a></h2></article>'
                for n in range(20)
            )
        elif self.path == "/fast/":
            body = (
                '<article><h2><a href="/fast/1">A first fast story today</a></h2></article>'
                '<article><h2><a href="/fast/2">A second fast story today</a></h2></article>'
            )
        elif self.path == "/huge/":
            body = f'<article><h2><a href="/huge/1">{HUGE_HEADLINE}</a></h2><p>{HUGE_HEADLINE}</p></article>'
        else:
            self.send_error(404)
            return
        data = f"<html><body>{body}</body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def sites_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sites)
    server.requests = []  # type: ignore[attr-defined]
    server.release = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def listing_site(name: str, url: str, *, article: bool = False, extra: str = "") -> str:
    return f"""name = "{name}"
start_urls = ["{url}"]
allow_private_network = true
{extra}
[list]
item = "article"
link = {{ css = "h2 a", attr = "href" }}
headline = "h2"
summary = "p"
""" + ('[article]\nheadline = "h1"\n' if article else "")


def feed_titles(path: Path) -> list[str]:
    return [
        e.findtext(f"{ATOM}title") or "" for e in ET.fromstring(path.read_bytes()).findall(f"{ATOM}entry")
    ]


def test_sigterm_to_run_once_writes_the_finished_sites_feeds_and_exits_1_naming_the_rest(
    tmp_path: Path, sites_server: ThreadingHTTPServer
) -> None:
    """SIGTERM while one site's article pages stall: the finished site's feed is written, the stalled site is
    cancelled and named, and the exit code is 1 (not 143) within a few seconds."""
    base = f"http://127.0.0.1:{sites_server.server_port}"
    config = write_config(
        tmp_path / "config",
        {
            "fast": listing_site("Fast", f"{base}/fast/"),
            "slow": listing_site("Slow", f"{base}/slow/", article=True),
        },
    )
    log = tmp_path / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "feedmaker", "--config", str(config), "run", "--once"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 20
        while not (
            "site=fast run ok" in log.read_text()
            and any(p.startswith("/slow/a/") for p in sites_server.requests)  # type: ignore[attr-defined]
        ):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        seconds = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err_text = log.read_text()
    assert proc.returncode == 1, err_text
    assert seconds < 5
    assert "stopped by a signal; unfinished sites: slow" in err_text
    assert "run stopped sites_unfinished=slow" in err_text
    assert sorted(feed_titles(tmp_path / "output" / "fast.atom")) == [
        "A first fast story today",
        "A second fast story today",
    ]
    assert not (tmp_path / "output" / "slow.atom").exists()
    assert b"fast" in out
    with sqlite3.connect(tmp_path / "state" / "feedmaker.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM entries WHERE site = 'fast'").fetchone() == (2,)


def test_run_once_runs_the_valid_sites_when_a_site_file_is_broken_and_exits_2(
    tmp_path: Path, sites_server: ThreadingHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A schedule that never fires costs only its own site: the good site's feed is written, the broken file's
    problem is printed as validate prints it, and the exit code says a config error."""
    base = f"http://127.0.0.1:{sites_server.server_port}"
    config = write_config(
        tmp_path / "config",
        {
            "bad": listing_site("Bad", f"{base}/fast/", extra='schedule = "0 0 30 2 *"'),
            "fast": listing_site("Fast", f"{base}/fast/"),
        },
    )
    assert main(["--config", str(config), "run", "--once"]) == 2
    err = capsys.readouterr().err
    bad = config / "sites" / "bad.toml"
    assert (
        f"config error: {bad}:4: schedule: cron line '0 0 30 2 *' never fires (no such day)"
        in err.splitlines()
    )
    assert len(feed_titles(tmp_path / "output" / "fast.atom")) == 2
    assert not (tmp_path / "output" / "bad.atom").exists()
    # Asking for the broken site alone runs nothing.
    assert main(["--config", str(config), "run", "--once", "--site", "bad"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"config error: {bad}:4: schedule: cron line '0 0 30 2 *' never fires (no such day)"
    ]


def test_a_megabyte_headline_becomes_a_capped_entry_title(
    tmp_path: Path, sites_server: ThreadingHTTPServer
) -> None:
    """A 1 MB headline and summary are cut at a word with an ellipsis before they reach the feed."""
    base = f"http://127.0.0.1:{sites_server.server_port}"
    config = write_config(tmp_path / "config", {"huge": listing_site("Huge", f"{base}/huge/")})
    assert main(["--config", str(config), "run", "--once"]) == 0
    [entry] = ET.fromstring((tmp_path / "output" / "huge.atom").read_bytes()).findall(f"{ATOM}entry")
    title, summary = entry.findtext(f"{ATOM}title") or "", entry.findtext(f"{ATOM}summary") or ""
    assert 150 < len(title) <= 300
    assert title.endswith("\u2026")
    assert HUGE_HEADLINE.startswith(title.removesuffix("\u2026") + " ")
    assert 1000 < len(summary) <= 2000
    assert summary.endswith("\u2026")
