"""urls: the one URL policy; registrable domains come from the Public Suffix List snapshot."""

from __future__ import annotations

import socket

import pytest

from feedmaker import urls
from feedmaker.urls import IMAGE_SCHEMES, LINK_SCHEMES, absolute, origin, same_site, site_of


@pytest.mark.parametrize(
    ("url", "site"),
    [
        ("https://www.bbc.co.uk/news/articles/1", "bbc.co.uk"),
        ("https://news.bbc.co.uk/", "bbc.co.uk"),
        ("https://edition.cnn.com/", "cnn.com"),
        ("https://www.welt.de/politik/", "welt.de"),
        ("https://a.b.example.com.au/", "example.com.au"),
        ("https://cdn.news.example/x", "news.example"),  # a name the list does not know: two labels
        ("http://127.0.0.1:8080/", "127.0.0.1"),
        ("http://localhost/", "localhost"),
    ],
)
def test_site_of_is_the_registrable_domain(url: str, site: str) -> None:
    assert site_of(url) == site


def test_same_site_joins_subdomains_of_one_registrable_domain_only() -> None:
    assert same_site("https://www.bbc.co.uk/a", "https://news.bbc.co.uk/b")
    assert not same_site("https://bbc.co.uk/a", "https://itv.co.uk/b")  # co.uk is a suffix, not a site
    assert not same_site("https://news.example/a", "https://other.example/a")


def test_the_suffix_list_is_never_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot shipped with tldextract is the only source: no list URLs, no disk cache, no socket."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the URL policy opened a connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    urls._registrable.cache_clear()
    fresh = type(urls._PUBLIC_SUFFIXES)(suffix_list_urls=(), cache_dir=None)
    monkeypatch.setattr(urls, "_PUBLIC_SUFFIXES", fresh)
    assert site_of("https://www.theguardian.co.uk/") == "theguardian.co.uk"
    assert fresh.suffix_list_urls == ()


def test_absolute_keeps_only_allowed_schemes() -> None:
    base = "https://news.example/section/"
    assert absolute("../story/1", base, LINK_SCHEMES) == "https://news.example/story/1"
    assert absolute("/story/2\n", base, LINK_SCHEMES) == "https://news.example/story/2"
    assert absolute("java\tscript:alert(1)", base, LINK_SCHEMES) is None
    assert absolute("mailto:desk@news.example", base, LINK_SCHEMES) == "mailto:desk@news.example"
    assert absolute("mailto:desk@news.example", base, IMAGE_SCHEMES) is None


def test_origin_drops_credentials_and_keeps_ports() -> None:
    assert origin("HTTPS://user:pw@News.Example:8443/a?b#c") == "https://news.example:8443"
    assert origin("http://[::1]:8080/x") == "http://[::1]:8080"
