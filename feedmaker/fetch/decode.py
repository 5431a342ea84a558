"""Bounded body reading: raw chunks from the wire -> decoded bytes, never more than the cap in memory.

gzip, deflate and br are decoded here, in `STEP`-sized pieces, so a 405-byte brotli bomb costs about
the cap in memory, not 256 MiB (httpx's decoder turns each network read into its whole output at once).
Input: a streaming `httpx.Response`; output: the body, or `TooLarge`/`FetchError` naming the URL.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Protocol

import brotli
import httpx

from feedmaker.errors import FetchError, TooLarge

__all__ = [
    "MAX_ENCODINGS",
    "STEP",
    "BrotliDecoder",
    "Decoder",
    "ZlibDecoder",
    "decode_steps",
    "decoder_for",
    "read_body",
]

STEP = 64 * 1024  # decode and check the size cap in steps of this many bytes
MAX_ENCODINGS = 3


class Decoder(Protocol):
    def decode(self, data: bytes) -> Iterator[bytes]:
        """Yield the output for `data` in pieces of about `STEP` bytes, never all at once."""
        ...


class _Identity:
    def decode(self, data: bytes) -> Iterator[bytes]:
        for start in range(0, len(data), STEP):
            yield data[start : start + STEP]


class ZlibDecoder:
    """gzip (several members allowed) or deflate (zlib-wrapped, or raw as some servers send it)."""

    GZIP = zlib.MAX_WBITS | 16

    def __init__(self, *, gzip: bool) -> None:
        self._gzip = gzip
        self._head = b""
        self._decompressor: zlib._Decompress | None = None
        self._done = False

    def _start(self, data: bytes) -> zlib._Decompress:
        if self._gzip:
            wbits = self.GZIP
        else:  # RFC 1950 header: CM=8 and the two bytes a multiple of 31
            wbits = (
                zlib.MAX_WBITS
                if data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
                else -zlib.MAX_WBITS
            )
        self._decompressor = zlib.decompressobj(wbits)
        return self._decompressor

    def decode(self, data: bytes) -> Iterator[bytes]:
        if self._done:
            return
        if self._decompressor is None or self._decompressor.eof:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            self._head = b""
            if self._decompressor is not None and data[:2] != b"\x1f\x8b":
                self._done = True  # trailing garbage after the last member, as browsers ignore it
                return
        decompressor = self._decompressor or self._start(data)
        while True:
            out = decompressor.decompress(data, STEP)
            if out:
                yield out
            if decompressor.eof:
                rest = decompressor.unused_data
                if not rest:
                    return  # the next chunk may start another member
                if not self._gzip or rest[:2] != b"\x1f\x8b":
                    self._done = True
                    return
                decompressor, data = self._start(rest), rest
                continue
            data = decompressor.unconsumed_tail
            if not data and len(out) < STEP:
                return


class BrotliDecoder:
    """Needs brotli >= 1.2: `output_buffer_limit` is what makes a bounded brotli decoder possible."""

    def __init__(self) -> None:
        self._decompressor = brotli.Decompressor()

    def decode(self, data: bytes) -> Iterator[bytes]:
        decompressor = self._decompressor
        if decompressor.is_finished():
            return
        out: bytes = decompressor.process(data, output_buffer_limit=STEP)
        # A full buffer means more output is pending even when can_accept_more_data() says True
        # (measured with brotli 1.2.1), so drain until a short read, not only until it can accept.
        while out:
            yield out
            if decompressor.can_accept_more_data() and (len(out) < STEP or decompressor.is_finished()):
                return
            out = decompressor.process(b"", output_buffer_limit=STEP)


def decoder_for(encoding: str) -> Decoder | None:
    match encoding:
        case "gzip" | "x-gzip":
            return ZlibDecoder(gzip=True)
        case "deflate":
            return ZlibDecoder(gzip=False)
        case "br":
            return BrotliDecoder()
        case "identity" | "":
            return _Identity()
    return None


def _pipe(decoder: Decoder, pieces: Iterable[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield from decoder.decode(piece)


def decode_steps(decoders: list[Decoder], chunk: bytes) -> Iterator[bytes]:
    """Run `chunk` through content codings applied in `decoders` order, undoing the last first."""
    pieces: Iterable[bytes] = (chunk,)
    for decoder in reversed(decoders):
        pieces = _pipe(decoder, pieces)
    return iter(pieces)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _decoders(url: str, header: str) -> list[Decoder]:
    codings = [c.strip().lower() for c in header.split(",") if c.strip().lower() not in ("", "identity")]
    if len(codings) > MAX_ENCODINGS:
        raise FetchError(url, f"too many Content-Encodings ({header})")
    decoders: list[Decoder] = []
    for coding in codings:
        decoder = decoder_for(coding)
        if decoder is None:
            raise FetchError(url, f"unsupported Content-Encoding {coding}")
        decoders.append(decoder)
    return decoders


async def read_body(response: httpx.Response, *, url: str, max_bytes: int, truncate: bool) -> bytes:
    """Stream, decode and cap the body; errors name `url`, the URL asked for. With `truncate`, keep the
    first `max_bytes` instead of failing."""
    header = response.headers.get("Content-Encoding", "")
    decoders = _decoders(url, header)
    length = response.headers.get("Content-Length", "")
    # Checked again while streaming: Content-Length can lie or be absent.
    if not truncate and length.isdigit() and int(length) > max_bytes:
        raise TooLarge(url, f"Content-Length {length} over {max_bytes} bytes")
    chunks: AsyncIterator[bytes]
    if response.is_stream_consumed:
        # A transport handed over a response it had already read (httpx.MockTransport given
        # content=); httpx has decoded it, so only the cap is left to apply.
        decoders, chunks = [], _once(response.content)
    else:
        chunks = response.aiter_raw()
    steps = decoders or [_Identity()]
    body = bytearray()
    raw = 0
    try:
        async for chunk in chunks:
            raw += len(chunk)
            # A compressed body is never larger than what it decodes to, except when it is junk.
            if decoders and raw > max_bytes:
                if truncate:
                    break
                raise TooLarge(url, f"body over {max_bytes} bytes before decoding ({header})")
            for piece in decode_steps(steps, chunk):
                room = max_bytes - len(body)
                if len(piece) > room:
                    if truncate:
                        body += piece[:room]
                        return bytes(body)
                    raise TooLarge(url, f"body over {max_bytes} bytes after decoding")
                body += piece
    except (zlib.error, brotli.error) as exc:
        raise FetchError(url, f"cannot decode {header} body: {exc}") from exc
    return bytes(body)
