"""The one exception tree of feedmaker.

* FeedmakerError           the CLI prints these without a traceback; anything else is a bug
  - ConfigError            path + key (or line:col from tomllib) + problem
    · ConfigErrors         several of them, found in one pass over the config
  - FetchError             url + reason
    · Blocked              robots.txt disallows or is unreachable, private address refused, host paused, 401/403/429
    · TooLarge             body over the decoded-size cap (checked while streaming)
  - ExtractError           url + selector that matched nothing
  - StoreError             the database refused a read or write
  - FeedError              a feed could not be built or written
  - LockedError            another feedmaker process holds the state directory

Expected outcomes are values, not exceptions (`NotModified`, `Duplicate`).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "Blocked",
    "ConfigError",
    "ConfigErrors",
    "ExtractError",
    "FeedError",
    "FeedmakerError",
    "FetchError",
    "LockedError",
    "StoreError",
    "TooLarge",
]


class FeedmakerError(Exception):
    """Base of every error feedmaker raises on purpose."""


class ConfigError(FeedmakerError):
    def __init__(self, path: str, key: str, problem: str, *, line: int | None = None) -> None:
        where = f"{path}:{line}" if line else path
        where = f"{where}: {key}" if key else where
        super().__init__(f"{where}: {problem}")
        self.path, self.key, self.problem, self.line = path, key, problem, line

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        """Each problem on its own: this one, or every one a ConfigErrors holds."""
        return (self,)


class ConfigErrors(ConfigError):
    """Every problem of one pass (`validate`, start-up); its own fields are the first problem's."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.path, first.key, first.problem, line=first.line)
        self.args = ("\n".join(str(e) for e in errors),)
        self._errors = tuple(errors)

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        return self._errors


class FetchError(FeedmakerError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url, self.reason = url, reason


class Blocked(FetchError):
    """Robots.txt, the address guard or the server refused us; retrying now will not help."""


class TooLarge(FetchError):
    """The decoded body passed the size cap."""


class ExtractError(FeedmakerError):
    def __init__(self, url: str, selector: str, problem: str = "matched nothing") -> None:
        super().__init__(f"{url}: selector {selector!r} {problem}")
        self.url, self.selector, self.problem = url, selector, problem


class StoreError(FeedmakerError):
    pass


class FeedError(FeedmakerError):
    pass


class LockedError(FeedmakerError):
    pass
