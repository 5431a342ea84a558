"""Page bytes -> text (or the bytes lexbor reads as they are): BOM, HTTP charset, <meta>, detection."""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

__all__ = ["decode_html", "is_utf8", "parser_input"]

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:\-]+)", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:\-]+)", re.IGNORECASE)
# WHATWG Encoding: labels browsers decode as a superset, so bytes the page really uses are not lost.
_SUPERSETS = {
    "latin_1": "cp1252", "iso8859-1": "cp1252", "ascii": "cp1252", "iso8859-9": "cp1254",
    "iso8859-11": "cp874", "shift_jis": "cp932", "euc_kr": "cp949", "gb2312": "gb18030", "gbk": "gb18030",
    "utf-16": "utf-8", "utf-16-le": "utf-8", "utf-16-be": "utf-8",  # a <meta> cannot truly say UTF-16
}  # fmt: skip
_ALIASES = {"x-sjis": "shift_jis", "windows-31j": "cp932", "x-euc-jp": "euc_jp", "tis-620": "cp874"}


def _codec(label: str) -> str | None:
    label = label.strip().strip("\"'").lower()
    try:
        name = codecs.lookup(_ALIASES.get(label, label)).name
    except LookupError:
        return None
    return _SUPERSETS.get(name, name)


def decode_html(body: bytes, declared: str | None) -> str:
    """Bytes -> text: BOM, then the HTTP charset, then <meta> in the first 4 KiB, then detection.

    One deviation from WHATWG order: a body that decodes as strict UTF-8 is UTF-8, whatever the header
    or <meta> says. Text in cp1252, Shift_JIS, EUC-* etc. is practically never valid UTF-8 once it has
    a non-ASCII byte, while stale labels on re-encoded pages are common (every non-UTF-8 <meta> in the
    postlight corpus labels UTF-8 bytes). So a UTF-8 label that fails strict decoding falls through,
    and the check costs nothing: most pages are UTF-8 and are decoded exactly once.
    """
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(name, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    candidates: list[str] = []
    if declared:
        m = _HEADER_CHARSET.search(declared)
        candidates.append(m.group(1) if m else declared)
    m_meta = _META_CHARSET.search(body[:4096])
    if m_meta:
        candidates.append(m_meta.group(1).decode("ascii", "replace"))
    for label in candidates:
        codec = _codec(label)
        if codec is None:
            continue
        if codec == "utf-8":
            continue  # it was not: strict UTF-8 failed above
        return body.decode(codec, errors="replace")
    best = from_bytes(body).best()
    if best is not None and best.encoding:
        codec = _codec(best.encoding) or "utf-8"
        return body.decode(codec, errors="replace")
    return body.decode("utf-8", errors="replace")


_BOM_PREFIXES = tuple(bom for bom, _ in _BOMS)
_CHUNK = 16384


def is_utf8(body: bytes, chunk_size: int = _CHUNK) -> bool:
    """Whether body.decode("utf-8") would succeed, without decoding all of it. ASCII bytes are whole
    characters and never part of a multi-byte sequence, so only chunks holding other bytes need
    decoding; an incremental decoder carries a sequence cut at a chunk's end into the next chunk
    (and that chunk's first byte, if it is ASCII, ends such a sequence in an error, as it should)."""
    decoder = _utf8_decoder()
    try:
        for start in range(0, len(body), chunk_size):
            chunk = body[start : start + chunk_size]
            decoder.decode(chunk[:1] if chunk.isascii() else chunk)
        decoder.decode(b"", True)
    except UnicodeDecodeError:
        return False
    return True


_utf8_decoder = codecs.getincrementaldecoder("utf-8")


def parser_input(body: bytes, declared: str | None) -> bytes | str:
    """What to hand lexbor: the bytes themselves when they are UTF-8 (lexbor reads bytes as UTF-8),
    saving a decode + re-encode of the whole page; decoded text otherwise."""
    if body.isascii():
        return body
    if not body.startswith(_BOM_PREFIXES) and is_utf8(body):
        return body
    return decode_html(body, declared)
