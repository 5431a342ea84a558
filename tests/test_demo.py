"""`make demo`: the bundled sites and config give one entry per story, and demo/serve.py prints the feed and
OPML URLs and stops the daemon and the site server on Ctrl-C. `make run` offline says the sites need the internet."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import feedparser
import httpx
import pytest

from demo.serve import CONFIG, PLACEHOLDER, serve_site, write_config
from feedmaker.cli import main
from feedmaker.config import load_all
from tests.atom import assert_valid_atom
from tests.sites import write_config as write_test_config

ROOT = Path(__file__).resolve().parent.parent
STORY = "floating bike bridge"


def test_demo_config_run_once_gives_the_copied_story_once(tmp_path: Path) -> None:
    """The wire story and the farm's prefixed, suffixed, zone-less copy are one entry of the combined feed."""
    with serve_site(0) as base:
        config = write_config(tmp_path / "config", base)
        assert main(["--config", str(config), "run", "--once"]) == 0
    output = tmp_path / "output"
    combined = assert_valid_atom((output / "demo.atom").read_bytes())
    titles = [e.title for e in combined.entries]
    assert sum(STORY in t.lower() for t in titles) == 1, titles
    assert len(titles) == 4, titles  # 3 wire stories + the farm's own one
    story = next(e for e in combined.entries if STORY in e.title.lower())
    links = {link.href for link in story.links}
    assert {
        f"{base}/wire/bridge.html",
        f"{base}/farm/2026-11-30/bridge.html",
    } <= links  # the copy is a source
    farm = assert_valid_atom((output / "profit-horizons.atom").read_bytes())
    assert len(farm.entries) == 2  # the farm was read, not failed: its feed has both of its items
    assert len(assert_valid_atom((output / "harbour-wire.atom").read_bytes()).entries) == 3


def test_loopback_is_allowed_for_the_demo_sites_only() -> None:
    demo_settings, demo_sites = load_all(CONFIG)
    assert demo_sites
    assert all(site.allow_private_network for site in demo_sites)
    assert all(site.start_urls[0].startswith(PLACEHOLDER) for site in demo_sites)
    assert demo_settings.fetch.allow_private_networks == ()
    settings, shipped = load_all(ROOT / "config")
    assert shipped
    assert not any(site.allow_private_network for site in shipped)
    assert settings.fetch.allow_private_networks == ()
    assert "allow_private_network" not in tomllib.loads((ROOT / "config" / "feedmaker.toml").read_text())


def _lines(stream: object, into: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)


@pytest.mark.slow
def test_demo_script_prints_reader_urls_serves_feeds_and_stops_both_on_ctrl_c(tmp_path: Path) -> None:
    script = [
        sys.executable,
        str(ROOT / "demo" / "serve.py"),
        "--port",
        "0",
        "--feeds-port",
        "0",
        "--run-dir",
        str(tmp_path),
    ]
    log = (tmp_path / "stderr.log").open("w")
    # A session of its own, as a terminal gives `make demo`: Ctrl-C is SIGINT to the whole group.
    proc = subprocess.Popen(script, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    out: list[str] = []
    daemon_pid = None
    try:
        deadline = time.monotonic() + 30
        while not any(line.startswith("OPML") for line in out) and time.monotonic() < deadline:
            try:
                out.append(lines.get(timeout=1))
            except queue.Empty:
                assert proc.poll() is None, (tmp_path / "stderr.log").read_text()
        text = "".join(out)
        daemon_pid = int(re.search(r"daemon pid (\d+)", text).group(1))  # type: ignore[union-attr]
        opml = re.search(r"OPML, every feed at once: (http://127\.0\.0\.1:\d+/opml)", text)
        assert opml, text
        feed_urls = re.findall(r"^\s+(http://127\.0\.0\.1:\d+/feeds/[\w-]+\.atom)", text, re.MULTILINE)
        assert [u.rsplit("/", 1)[1] for u in feed_urls] == [
            "harbour-wire.atom",
            "profit-horizons.atom",
            "demo.atom",
        ]
        listed = httpx.get(opml.group(1)).text
        assert all(url in listed for url in feed_urls)
        entries: list[str] = []
        while len(entries) < 4 and time.monotonic() < deadline + 20:  # the first crawl runs within seconds
            reply = httpx.get(feed_urls[-1])
            entries = (
                [e.title for e in feedparser.parse(reply.content).entries] if reply.status_code == 200 else []
            )
            time.sleep(0.3)
        assert len(entries) == 4, entries
        assert sum(STORY in t.lower() for t in entries) == 1, entries
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        reader.join(timeout=5)  # stdout is at its end once the script has exited
        while not lines.empty():
            out.append(lines.get_nowait())
        assert "demo stopped (daemon exit code 0)" in "".join(out)
        with pytest.raises(ProcessLookupError):
            os.kill(daemon_pid, 0)  # reaped by the script: gone, not orphaned
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        if daemon_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(daemon_pid, signal.SIGTERM)
        reader.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
        log.close()


def _refused_base() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed again: connections are refused


def _site(base: str) -> str:
    return f'name = "Away"\nstart_urls = ["{base}/wire/"]\n[list]\nitem = "article.story"\nlink = "h2 a"\n'


def test_run_once_where_no_site_answers_hints_that_the_sites_need_the_internet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make run` offline: every site fails without a page, so the summary points to the internet and `make demo`."""
    config = write_test_config(tmp_path / "config", {"away": _site(_refused_base())})
    assert main(["--config", str(config), "run", "--once"]) == 1
    err = capsys.readouterr().err
    assert "failed sites: away" in err
    assert "need the internet (`make demo` runs offline)" in err


def test_no_internet_hint_when_some_site_answered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve_site(0) as base:
        config = write_test_config(tmp_path / "config", {"away": _site(_refused_base()), "wire": _site(base)})
        assert main(["--config", str(config), "run", "--once"]) == 1
    err = capsys.readouterr().err
    assert "failed sites: away\n" in err  # the wire site on the demo server was read
    assert "internet" not in err
