"""Fetch stage: URL -> `Page` | `NotModified`, or a `FetchError` naming the URL and the reason.

What every fetch promises (RELIABILITY.md, promises 3-5):

* a total deadline (`timeout`) over connect, redirects, retries and body; time spent waiting for our
  turn at a host is not counted, so a long politeness queue cannot time out a fetch that never ran;
* a decoded-size cap enforced while streaming: gzip, deflate and br are decoded here, in 64 KiB
  steps, so a 405-byte brotli bomb costs about the cap in memory, not 256 MiB;
* no connection to a non-global address (loopback, private, link-local, CGNAT, multicast, ...)
  unless allowed: the check runs in the network backend at connect time, after our own DNS lookup,
  for every hop; literal addresses in any spelling are refused even before that;
* politeness: robots.txt (RFC 9309), one request in flight per host, at least `delay` seconds
  between one request's end and the next one's start, `Retry-After` honoured by pausing the host;
* retries with exponential backoff and jitter for 5xx (but not 503 with Retry-After), 408 and
  network errors that another try may cure; never for other 4xx, a bad redirect Location, a name
  that does not resolve, a TLS failure or oversized headers;
* conditional GET from `Validators`; a 304 is `NotModified`, with no body read;
* a reason that names the cause: `cannot resolve <host>`, `connection refused`,
  `timed out after 30 s (total deadline)`, `TLS: certificate has expired`, ...

Modules, one concern each:

    guard.py      address policy and the guarded httpcore network backend (connect-time check)
    transport.py  httpx transport over an httpcore pool using that backend, public APIs only
    decode.py     bounded gzip/deflate/br decoding and the capped body read
    gate.py       per-host turns, global slots, Retry-After pauses, the total deadline
    steps.py      the per-hop checks (scheme, literal address, pause, robots.txt), in order
    reasons.py    transport errors -> the reason an operator reads, and whether to retry
    client.py     `Fetcher` and one fetch call: hops, redirects, retries, the request log line
"""

from feedmaker.fetch.client import Fetcher
from feedmaker.fetch.decode import STEP, BrotliDecoder, Decoder, ZlibDecoder, decode_steps
from feedmaker.fetch.gate import HostGate, retry_after_seconds
from feedmaker.fetch.guard import (
    AddressPolicy,
    AddressRefused,
    GuardedBackend,
    IPAddress,
    is_public,
    numeric_host,
    resolve,
)
from feedmaker.fetch.steps import HOP_STEPS, Hop, HopContext, Step
from feedmaker.fetch.transport import GuardedTransport

__all__ = [
    "HOP_STEPS",
    "STEP",
    "AddressPolicy",
    "AddressRefused",
    "BrotliDecoder",
    "Decoder",
    "Fetcher",
    "GuardedBackend",
    "GuardedTransport",
    "Hop",
    "HopContext",
    "HostGate",
    "IPAddress",
    "Step",
    "ZlibDecoder",
    "decode_steps",
    "is_public",
    "numeric_host",
    "resolve",
    "retry_after_seconds",
]
