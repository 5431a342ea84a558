"""Why a request failed, in the words an operator needs: httpx transport error -> `Failure`.

The cause is read from the exception chain (httpx error <- httpcore error <- OSError / ssl.SSLError /
the guard's `CannotResolve`), because the top-level messages ("All connection attempts failed",
"[SSL: CERTIFICATE_VERIFY_FAILED] ...") hide it. `retryable` says whether trying again within
this run could help: a missing name, a bad certificate or oversized headers will not change.
"""

from __future__ import annotations

import errno
import os
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from feedmaker.config import FetchSettings
from feedmaker.fetch.guard import CannotResolve

__all__ = ["Failure", "describe"]

# h11's message when a response's head passes httpcore's limit (100 KiB); no public type says it.
_HEADERS_TOO_LARGE = "Receive buffer too long"
_SSL_MESSAGE = re.compile(r"^\[SSL: [A-Z0-9_]+\] (?P<text>.*?)(?: \(_ssl\.c:\d+\))?$")


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    retryable: bool


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


def _tls_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return exc.verify_message  # "certificate has expired", "self-signed certificate", ...
    text = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else str(exc)
    match = _SSL_MESSAGE.match(text)
    return match["text"] if match else text


def _connect_reason(exc: BaseException, settings: FetchSettings) -> Failure:
    for cause in _causes(exc):
        if isinstance(cause, CannotResolve) and cause.timed_out:
            return Failure(
                f"cannot resolve {cause.host} (no answer within {settings.connect_timeout:g} s)",
                retryable=True,
            )
        if isinstance(cause, CannotResolve):
            return Failure(f"cannot resolve {cause.host}", retryable=not cause.permanent)
        if isinstance(cause, ssl.SSLError):
            return Failure(f"TLS: {_tls_reason(cause)}", retryable=False)
    reason = str(exc)
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.errno:
            if cause.errno == errno.ECONNREFUSED:
                return Failure("connection refused", retryable=True)
            reason = os.strerror(cause.errno)  # asyncio's strerror is "Connect call failed (...)"
    return Failure(f"connection failed: {reason}", retryable=True)


def describe(exc: httpx.TransportError, settings: FetchSettings) -> Failure:
    """The reason for `exc`, naming the configured limit where one was hit."""
    match exc:
        case httpx.ConnectTimeout():
            return Failure(f"connect timed out after {settings.connect_timeout:g} s", retryable=True)
        case httpx.ReadTimeout():
            return Failure(f"read timed out after {settings.read_timeout:g} s", retryable=True)
        case httpx.PoolTimeout():
            return Failure(f"timed out after {settings.timeout:g} s waiting for a connection", retryable=True)
        case httpx.ConnectError():
            return _connect_reason(exc, settings)
        case httpx.RemoteProtocolError() if _HEADERS_TOO_LARGE in str(exc):
            return Failure("response headers too large (over 100 KiB)", retryable=False)
        case httpx.RemoteProtocolError():
            return Failure(f"malformed HTTP response: {exc}", retryable=True)
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLError):  # a TLS alert after the handshake arrives as a read error
            return Failure(f"TLS: {_tls_reason(cause)}", retryable=False)
    return Failure(f"network error: {type(exc).__name__}: {exc}", retryable=True)
