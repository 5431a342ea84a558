"""User regexes: Python's backtracking `re` vs feedmaker's RE2 (patterns.py), side by side in one run.

The catastrophic case is `(a+)+$` against n a's and a '!' (a filter, a strip rule or a field regex meeting a
long headline): `re` doubles its time with each extra 'a', so it is timed on small n only and the 100 kB
headline is given to RE2 alone. The common case (a strip rule on an ordinary headline) shows what RE2's
wrapper costs per call where `re` is quick.

    .venv/bin/python benchmarks/regex.py
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable

from feedmaker import patterns

CATASTROPHIC = "(a+)+$"


def seconds(call: Callable[[], object], repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    backtracking = re.compile(CATASTROPHIC, re.IGNORECASE)
    print(f"{CATASTROPHIC!r} against n a's and '!' (no match)")
    print(f"{'n':>8}  {'re':>12}  {'re2':>12}")
    for n in (16, 18, 20, 22):
        text = "a" * n + "!"
        slow = seconds(functools.partial(backtracking.search, text))
        fast = seconds(functools.partial(patterns.matches, CATASTROPHIC, text), repeat=100)
        print(f"{n:>8}  {slow * 1000:>10.1f}ms  {fast * 1e6:>10.1f}µs")
    text = "a" * 100_000 + "!"
    fast = seconds(lambda: patterns.matches(CATASTROPHIC, text), repeat=10)
    print(f"{len(text):>8}  {'not run: ~2^n':>12}  {fast * 1000:>10.2f}ms")

    headline = "Indexbit Exchange: Costco membership growth 'robust,' even amid fee increase"
    strip = r"^Indexbit Exchange:\s*"
    plain = re.compile(strip, re.IGNORECASE)
    slow = seconds(lambda: plain.sub(" ", headline), repeat=20_000)
    fast = seconds(lambda: patterns.blank_out(strip, headline), repeat=20_000)
    print(f"\nstrip {strip!r} on an {len(headline)}-character headline, per call")
    print(f"{'':>8}  {slow * 1e6:>10.1f}µs  {fast * 1e6:>10.1f}µs")


if __name__ == "__main__":
    main()
