"""The command line: exit codes and what a person reads."""

from __future__ import annotations

import shutil
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
