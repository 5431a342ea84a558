"""Bounded decoding and size caps: gzip/deflate/br decoded in steps, caps before and after decoding,
compression bombs against a real socket with bounded memory."""

from __future__ import annotations

import gzip
import os
import tracemalloc
import zlib
from collections.abc import Callable, Iterator

import brotli
import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from feedmaker.errors import TooLarge
from feedmaker.fetch import (
    STEP,
    BrotliDecoder,
    Decoder,
    Fetcher,
    ZlibDecoder,
    decode_steps,
)
from feedmaker.models import Page
from tests.fetch_support import (
    KIB,
    MIB,
    Script,
    Untouchable,
    fetch_error,
    make_settings,
    mock,
    raw,
)
from tests.hostile_server import HostileServer, bomb, serve_routes


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def site() -> Iterator[HostileServer]:
    with serve_routes() as server:
        yield server


# -- decoding and caps ----------------------------------------------------------------------------

TEXT = b"<p>" + b"The quick brown fox. " * 5000 + b"</p>"


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("coding", "encoded"),
    [
        ("gzip", gzip.compress(TEXT)),
        ("x-gzip", gzip.compress(TEXT)),
        ("deflate", zlib.compress(TEXT)),
        ("deflate", raw_deflate(TEXT)),
        ("br", brotli.compress(TEXT)),
        ("gzip, br", brotli.compress(gzip.compress(TEXT))),
        ("identity", TEXT),
        ("GZIP", gzip.compress(TEXT[:10]) + gzip.compress(TEXT[10:])),
    ],
    ids=[
        "gzip",
        "x-gzip",
        "deflate-zlib",
        "deflate-raw",
        "br",
        "gzip-then-br",
        "identity",
        "multi-member-gzip",
    ],
)
async def test_decodes_content_codings_itself(coding: str, encoded: bytes):
    async with mock(Script(raw(200, encoded, {"Content-Encoding": coding}))) as fetcher:
        page = await fetcher.fetch("https://news.example/")
    assert isinstance(page, Page)
    assert page.body == TEXT


@pytest.mark.anyio
async def test_unsupported_content_encoding_is_an_error():
    error = await fetch_error(
        mock(Script(raw(200, b"x", {"Content-Encoding": "zstd"}))), "https://news.example/"
    )
    assert error.reason == "unsupported Content-Encoding zstd"


@pytest.mark.anyio
async def test_corrupt_gzip_is_an_error_naming_the_coding():
    error = await fetch_error(
        mock(Script(raw(200, b"not gzip at all", {"Content-Encoding": "gzip"}))), "https://n.example/"
    )
    assert (
        error.reason == "cannot decode gzip body: Error -3 while decompressing data: incorrect header check"
    )


@pytest.mark.anyio
async def test_content_length_over_the_cap_is_refused_before_reading():
    response = httpx.Response(200, headers={"Content-Length": str(2 * MIB)}, stream=Untouchable())
    error = await fetch_error(mock(Script(response), max_bytes=MIB), "https://news.example/")
    assert isinstance(error, TooLarge)
    assert error.reason == f"Content-Length {2 * MIB} over {MIB} bytes"


@pytest.mark.anyio
async def test_compressed_body_over_the_cap_is_refused_before_decoding():
    """Incompressible junk labelled gzip: the undecoded body has its own cap."""
    junk = gzip.compress(os.urandom(4 * KIB))
    error = await fetch_error(
        mock(Script(raw(200, junk, {"Content-Encoding": "gzip"})), max_bytes=KIB), "https://n.example/"
    )
    assert isinstance(error, TooLarge)
    assert error.reason == "body over 1024 bytes before decoding (gzip)"


@pytest.mark.anyio
async def test_decoded_cap_is_exact():
    """max_bytes of decoded body is fine; one byte more is TooLarge."""
    body = b"a" * (64 * KIB)
    async with mock(
        Script(raw(200, gzip.compress(body), {"Content-Encoding": "gzip"})), max_bytes=64 * KIB
    ) as fetcher:
        page = await fetcher.fetch("https://n.example/")
    assert isinstance(page, Page)
    assert page.body == body
    error = await fetch_error(
        mock(Script(raw(200, gzip.compress(body + b"a"), {"Content-Encoding": "gzip"})), max_bytes=64 * KIB),
        "https://n.example/",
    )
    assert error.reason == f"body over {64 * KIB} bytes after decoding"


@given(data=st.binary(max_size=200_000), cuts=st.lists(st.integers(min_value=1, max_value=5000), max_size=20))
@hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_bounded_decoders_round_trip_any_chunking(data: bytes, cuts: list[int]):
    """Whatever the chunk boundaries, each decoder returns the original bytes in steps of ~64 KiB."""
    cases: list[tuple[Callable[[], Decoder], bytes]] = [
        (lambda: ZlibDecoder(gzip=True), gzip.compress(data)),
        (lambda: ZlibDecoder(gzip=False), zlib.compress(data)),
        (lambda: ZlibDecoder(gzip=False), raw_deflate(data)),
        (BrotliDecoder, brotli.compress(data)),
    ]
    for make, encoded in cases:
        decoder, start = make(), 0
        pieces: list[bytes] = []
        for cut in [*cuts, len(encoded)]:
            pieces.extend(decode_steps([decoder], encoded[start : start + cut]))
            start += cut
        pieces.extend(decode_steps([decoder], encoded[start:]))
        assert b"".join(pieces) == data
        assert all(len(p) <= 2 * STEP for p in pieces)


def test_a_brotli_bomb_decodes_in_bounded_steps():
    """A few hundred bytes that decode to 16 MiB come out in pieces of ~64 KiB, so the cap can stop them."""
    decoder = BrotliDecoder()
    sizes = [len(p) for p in decoder.decode(brotli.compress(bytes(16 * MIB), quality=5))]
    assert sum(sizes) == 16 * MIB
    assert max(sizes) <= 2 * STEP


@pytest.mark.anyio
async def test_endless_body_is_stopped_by_the_cap(site: HostileServer):
    error = await fetch_error(Fetcher(make_settings(max_bytes=256 * KIB)), site.url("/endless"))
    assert isinstance(error, TooLarge)
    assert error.reason == "body over 262144 bytes after decoding"


@pytest.mark.anyio
async def test_huge_body_is_stopped_at_the_default_10_mib(site: HostileServer):
    error = await fetch_error(Fetcher(make_settings(max_bytes=10 * MIB)), site.url("/huge"))
    assert isinstance(error, TooLarge)
    assert error.reason == "body over 10485760 bytes after decoding"


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/gzip-bomb", "/brotli-bomb"])
async def test_compression_bombs_are_stopped_at_the_cap_with_bounded_memory(site: HostileServer, path: str):
    """16 MiB of zeros in a few KiB: stopped at 1 MiB decoded, peak Python memory a few MiB."""
    bomb("gzip" if "gzip" in path else "br", site.bomb_size)  # built before measuring: the server's memory
    tracemalloc.start()
    try:
        error = await fetch_error(Fetcher(make_settings(max_bytes=MIB)), site.url(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(error, TooLarge)
    assert error.reason == "body over 1048576 bytes after decoding"
    assert peak < 4 * MIB
