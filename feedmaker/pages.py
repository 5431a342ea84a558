"""What the daemon's pages other than the feeds show: the status page (`/`), `/healthz` and `/opml`, from a
`Status` snapshot the daemon builds (run history from the store, the scheduler's next runs) and the feed list.

On a shared store the snapshot's run history and feed entry counts come from the database, so every instance
shows the same sites, who ran each (`SiteStatus.worker`) and when.
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from feedmaker.feed import xml_text

__all__ = ["SiteStatus", "Status", "health", "render_opml", "render_status"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteStatus:
    """daemon -> serve: what the status page and /healthz show for one site."""

    site: str
    name: str
    last_run: datetime | None = None  # when the last run finished; None = never ran
    items: int = 0  # items found by the last run
    not_modified: int = 0  # listing pages that answered 304 in the last run
    new: int = 0  # new entries from the last run
    errors: tuple[str, ...] = ()  # reasons the last run failed
    warnings: tuple[str, ...] = ()
    failures: int = 0  # consecutive failed runs
    last_good: datetime | None = None  # when the last successful run finished
    entries: int = 0  # entries the site's feed file holds
    next_run: datetime | None = None  # from the scheduler (after any back-off); None = not scheduled
    worker: str | None = None  # which feedmaker process ran the last run (several share a PostgreSQL store)

    @property
    def state(self) -> str:
        # Errors before a first run: the site file is broken, so the site will not run until it is fixed.
        if self.failures or self.errors:
            return "failing"
        return "pending" if self.last_run is None else "ok"


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """daemon -> serve: one snapshot for the status page and /healthz."""

    sites: tuple[SiteStatus, ...] = ()
    feed_entries: tuple[tuple[str, int], ...] = ()  # combined feed id -> entries its file holds
    write_error: str | None = None  # why the last store or feed write failed; None while writes succeed
    unreachable_since: datetime | None = None  # when the store was found unreachable; None while it answers


def render_opml(feeds: Sequence[tuple[str, str]], base_url: str) -> bytes:
    """OPML 2.0 listing every feed with an absolute xmlUrl."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = "feedmaker feeds"
    body = ET.SubElement(root, "body")
    base = base_url.rstrip("/")
    for feed_id, name in feeds:
        title = xml_text(name)  # a config name may hold characters XML forbids; the OPML must still parse
        ET.SubElement(
            body, "outline", type="rss", text=title, title=title, xmlUrl=f"{base}/feeds/{feed_id}.atom"
        )
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def health(status: Status) -> tuple[int, dict[str, object]]:
    """(HTTP status, body): `failing` (503) when the last write failed, as nothing new can be kept;
    `degraded` while any site's last run failed; `ok` otherwise (pending sites included)."""
    counts = {"ok": 0, "failing": 0, "pending": 0}
    for s in status.sites:
        counts[s.state] += 1
    failing_sites = [s.site for s in status.sites if s.state == "failing"]
    state = "failing" if status.write_error else "degraded" if failing_sites else "ok"
    body: dict[str, object] = {
        "status": state,
        "write_error": status.write_error,
        "failing_sites": failing_sites,
        "counts": counts,
        "sites": {s.site: {"state": s.state, "failures": s.failures} for s in status.sites},
    }
    return (503 if status.write_error else 200), body


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def render_status(status: Status, feeds: Sequence[tuple[str, str]]) -> str:
    e = html.escape
    rows = []
    for s in status.sites:
        items = "unchanged (304)" if s.not_modified and not s.items else str(s.items)
        if s.state == "failing":
            reason = "; ".join(s.errors) or "last run failed"
            times = f" x{s.failures}" if s.failures else ""
            state = f'<td class="failing">failing{times}: {e(reason)}</td>'
        else:
            state = f'<td class="{s.state}">{s.state}</td>'
        rows.append(
            f'<tr><td><a href="/feeds/{e(s.site)}.atom">{e(s.name)}</a> <small>{e(s.site)}</small></td>'
            f"<td>{_when(s.last_run)}{f' <small>by {e(s.worker)}</small>' if s.worker else ''}</td><td>{items}</td><td>{s.new}</td><td>{s.entries}</td>{state}"
            f"<td>{_when(s.last_good)}</td><td>{_when(s.next_run)}</td></tr>"
        )
    site_ids = {s.site for s in status.sites}
    entries = dict(status.feed_entries)
    combined = [
        f'<li><a href="/feeds/{e(feed_id)}.atom">{e(title)}</a> <span class="entries">{entries.get(feed_id, 0)} entries</span></li>'
        for feed_id, title in feeds
        if feed_id not in site_ids
    ]
    alarm = f'<p class="failing">writes failing: {e(status.write_error)}</p>' if status.write_error else ""
    if status.unreachable_since is not None:
        # Above the write error: the outage is the cause, and the run history below may be missing.
        alarm = f'<p class="failing">store unreachable since {_when(status.unreachable_since)}</p>{alarm}'
    combined_html = f"<h2>Combined feeds</h2><ul>{''.join(combined)}</ul>" if combined else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="60">'
        "<title>feedmaker status</title><style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}"
        ".failing{color:#b00}.ok{color:#070}</style></head><body><h1>feedmaker</h1>"
        f'<p><a href="/opml">OPML</a> · <a href="/healthz">healthz</a></p>{alarm}'
        "<table><tr><th>site</th><th>last run</th><th>items found</th><th>new</th><th>entries</th>"
        f"<th>state</th><th>last good run</th><th>next run</th></tr>{''.join(rows)}</table>{combined_html}"
        "</body></html>"
    )
