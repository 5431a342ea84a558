"""Politeness and work shared by every worker on one database: site-run leases (one worker per site and
schedule slot), per-host turns (one request in flight, `delay` between requests), Retry-After pauses and the
robots.txt cache.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from feedmaker.models import RobotsFile
from feedmaker.store.rows import clean, from_iso, iso
from feedmaker.store.transactions import Transactions

__all__ = ["LEASES_KEPT", "ROBOTS_KEPT", "Claim", "Coordination"]

# robots.txt files older than robots.py's cache lifetime (a day) are of no use to the next process.
ROBOTS_KEPT = timedelta(days=1)
LEASES_KEPT = timedelta(days=2)  # site-run leases kept for the status page and debugging


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """claim_run -> schedule: who holds a site's run for one schedule slot, and until when."""

    won: bool  # this worker holds the lease now and runs the site
    worker: str  # the holder
    expires: datetime  # the holder renews it while the run lasts; once past, another worker may take over
    done: bool  # the run finished (well or not): nobody runs this slot again


class Coordination(Transactions):
    """The store's shared crawl state (see the module docstring)."""

    # -- Retry-After pauses and robots.txt files ------------------------------------------------------

    def host_pauses(self) -> dict[str, datetime]:
        """Hosts paused by Retry-After that have not resumed yet."""
        now = iso(self._now())
        with self._read("read host pauses") as db:
            return {
                host: from_iso(until)
                for host, until in db.execute("SELECT host, until FROM host_pauses WHERE until > ?", (now,))
            }

    def save_host_pauses(self, pauses: Mapping[str, datetime]) -> None:
        """Keep these pauses, the later one where a host has two (other workers save theirs too), and
        drop expired ones. Each paused host's turn is held until its pause ends, so that a request
        another worker has already queued for the host waits (`take_host_turn`) rather than goes."""
        rows = [(clean(h), iso(u)) for h, u in sorted(pauses.items())]
        with self._write("save host pauses") as db:
            db.execute("DELETE FROM host_pauses WHERE until <= ?", (iso(self._now()),))
            db.executemany(
                "INSERT INTO host_pauses (host, until) VALUES (?, ?) ON CONFLICT (host) DO UPDATE "
                "SET until = excluded.until WHERE excluded.until > host_pauses.until",
                rows,
            )
            db.executemany(
                "INSERT INTO host_turns (host, holder, held_until, next_allowed) VALUES (?, NULL, ?, ?) "
                "ON CONFLICT (host) DO UPDATE SET next_allowed = excluded.next_allowed "
                "WHERE excluded.next_allowed > host_turns.next_allowed",
                [(host, until, until) for host, until in rows],
            )

    def robots_files(self) -> list[tuple[str, datetime, RobotsFile]]:
        with self._read("read robots.txt cache") as db:
            rows = db.execute("SELECT url, fetched, status, body FROM robots").fetchall()
        return [
            (url, from_iso(fetched), RobotsFile(status, bytes(body))) for url, fetched, status, body in rows
        ]

    def robots_file(self, url: str) -> tuple[datetime, RobotsFile] | None:
        """The robots.txt kept for `url` (a worker saves one right after fetching it), with when it was
        fetched; the caller judges its freshness."""
        with self._read("read robots.txt") as db:
            row = db.execute(
                "SELECT fetched, status, body FROM robots WHERE url = ?", (clean(url),)
            ).fetchone()
        return None if row is None else (from_iso(row[0]), RobotsFile(row[1], bytes(row[2])))

    def claim_robots_fetch(self, url: str, *, hold: float) -> bool:
        """Take the fetch of `url` (a robots.txt) for every worker, for at most `hold` seconds: False while
        another worker holds it. The claim is kept after the file is saved, so a worker that read no file
        just before the save cannot win it and fetch again; it lapses after `hold`, or at once when the
        fetch failed (`release_robots_fetch`), and a fetch held by a dead worker lapses likewise."""
        now = self._now()
        with self._write(f"claim fetch of {url}") as db:
            won = db.execute(
                "INSERT INTO robots_claims (url, worker, until) VALUES (?, ?, ?) ON CONFLICT (url) DO UPDATE "
                "SET worker = excluded.worker, until = excluded.until "
                "WHERE robots_claims.until <= ? OR robots_claims.worker = excluded.worker RETURNING url",
                (clean(url), self.worker, iso(now + timedelta(seconds=hold)), iso(now)),
            ).fetchone()
        return won is not None

    def release_robots_fetch(self, url: str) -> None:
        """Give up this worker's claim on fetching `url` (the fetch failed): the next worker asking takes it."""
        with self._write(f"release fetch of {url}") as db:
            db.execute("DELETE FROM robots_claims WHERE url = ? AND worker = ?", (clean(url), self.worker))

    def save_robots_files(self, files: Iterable[tuple[str, datetime, RobotsFile]]) -> None:
        """Keep these robots.txt files, the newer fetch where a URL has two (other workers save theirs
        too), and drop files older than the cache lifetime and lapsed fetch claims."""
        with self._write("save robots.txt cache") as db:
            db.execute("DELETE FROM robots WHERE fetched < ?", (iso(self._now() - ROBOTS_KEPT),))
            db.execute("DELETE FROM robots_claims WHERE until <= ?", (iso(self._now()),))
            db.executemany(
                "INSERT INTO robots (url, fetched, status, body) VALUES (?, ?, ?, ?) ON CONFLICT (url) DO UPDATE "
                "SET fetched = excluded.fetched, status = excluded.status, body = excluded.body "
                "WHERE excluded.fetched > robots.fetched",
                sorted((clean(url), iso(fetched), f.status, f.body) for url, fetched, f in files),
            )

    # -- site-run leases: one worker per (site, schedule slot) -----------------------------------------

    def claim_run(self, site: str, slot: datetime, *, lease: timedelta) -> Claim:
        """Take the run of `site` for the slot starting at `slot`, unless another worker holds it (its
        lease not yet expired) or it is done. One statement decides, so of several workers asking at
        once exactly one wins; a lease left by a dead worker is taken over once it expires."""
        now = self._now()
        with self._write(f"claim run of site {site}") as db:
            won = db.execute(
                "INSERT INTO leases (site, slot, worker, claimed, expires, done) VALUES (?, ?, ?, ?, ?, 0) "
                "ON CONFLICT (site, slot) DO UPDATE SET worker = excluded.worker, claimed = excluded.claimed, "
                "expires = excluded.expires WHERE leases.done = 0 AND leases.expires <= excluded.claimed "
                "RETURNING worker",
                (site, iso(slot), self.worker, iso(now), iso(now + lease)),
            ).fetchone()
            row = db.execute(
                "SELECT worker, expires, done FROM leases WHERE site = ? AND slot = ?", (site, iso(slot))
            ).fetchone()
        return Claim(won=won is not None, worker=row[0], expires=from_iso(row[1]), done=bool(row[2]))

    def renew_run(self, site: str, slot: datetime, *, lease: timedelta) -> bool:
        """Extend this worker's lease; False when it lost it (expired and taken over by another worker)."""
        with self._write(f"renew run of site {site}") as db:
            renewed = db.execute(
                "UPDATE leases SET expires = ? WHERE site = ? AND slot = ? AND worker = ? AND done = 0",
                (iso(self._now() + lease), site, iso(slot), self.worker),
            ).rowcount
        return bool(renewed)

    def finish_run(self, site: str, slot: datetime, *, done: bool = True) -> None:
        """Mark this worker's run of the slot done; with done=False release it for another worker now (a
        run cancelled at shutdown). Leases older than LEASES_KEPT are dropped."""
        now = self._now()
        with self._write(f"finish run of site {site}") as db:
            if done:
                db.execute(
                    "UPDATE leases SET done = 1, expires = ? WHERE site = ? AND slot = ? AND worker = ?",
                    (iso(now), site, iso(slot), self.worker),
                )
            else:
                db.execute(
                    "UPDATE leases SET expires = claimed WHERE site = ? AND slot = ? AND worker = ? AND done = 0",
                    (site, iso(slot), self.worker),
                )
            db.execute("DELETE FROM leases WHERE site = ? AND slot < ?", (site, iso(now - LEASES_KEPT)))

    # -- per-host turns across workers (the fetcher's HostGate asks these on a shared store) -----------

    def take_host_turn(self, host: str, *, hold: float) -> float:
        """Take `host`'s one request in flight for at most `hold` seconds: 0.0 when taken, else the
        seconds until it may be free (another worker's request is in flight, or its delay not over).
        One statement decides, so two workers never both get the turn; a turn held by a dead worker
        lapses after `hold`."""
        now = self._now()
        with self._write(f"take turn of host {host}") as db:
            taken = db.execute(
                "INSERT INTO host_turns (host, holder, held_until, next_allowed) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (host) DO UPDATE SET holder = excluded.holder, held_until = excluded.held_until "
                "WHERE host_turns.next_allowed <= excluded.next_allowed "
                "AND (host_turns.holder IS NULL OR host_turns.held_until <= excluded.next_allowed) RETURNING host",
                (clean(host), self.worker, iso(now + timedelta(seconds=hold)), iso(now)),
            ).fetchone()
            if taken is not None:
                return 0.0
            holder, held_until, next_allowed = db.execute(
                "SELECT holder, held_until, next_allowed FROM host_turns WHERE host = ?", (clean(host),)
            ).fetchone()
        free = (
            max(from_iso(next_allowed), from_iso(held_until))
            if holder is not None
            else from_iso(next_allowed)
        )
        return max((free - now).total_seconds(), 0.001)

    def end_host_turn(self, host: str, *, delay: float) -> None:
        """Give `host`'s turn back; the next request to it, from any worker, waits `delay` seconds, or
        until the end of a pause saved meanwhile (`save_host_pauses`), whichever is later."""
        after = iso(self._now() + timedelta(seconds=delay))
        with self._write(f"end turn of host {host}") as db:
            db.execute(
                "UPDATE host_turns SET holder = NULL, next_allowed = CASE WHEN next_allowed > ? "
                "THEN next_allowed ELSE ? END WHERE host = ? AND holder = ?",
                (after, after, clean(host), self.worker),
            )
