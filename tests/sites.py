"""A real HTTP server on 127.0.0.1 serving fixture sites, and config directories pointing at it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.corpus import ATOM_SCHEMA, CORPORA

__all__ = ["ARRIVALS", "CORPORA", "PAGES", "SCHEMA", "TESTS", "QuietFiles", "serve_dir", "write_config"]

TESTS = Path(__file__).parent
PAGES = TESTS / "pages"
SCHEMA = ATOM_SCHEMA  # may be absent (a bare clone): tests.corpus.atom_schema() says so with None


# Request arrival times (monotonic seconds) per served root, for politeness checks.
ARRIVALS: dict[Path, list[tuple[float, str]]] = {}


class QuietFiles(SimpleHTTPRequestHandler):
    """Static files with Last-Modified and If-Modified-Since -> 304 (from the stdlib), and a request log."""

    requests: list[str]

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # One entry per request: log_message also runs for send_error's extra line.
        self.server.requests.append(self.path)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def parse_request(self) -> bool:
        arrivals = getattr(
            self.server, "arrivals", None
        )  # servers made elsewhere from this handler have none
        if arrivals is not None:
            arrivals.append((time.monotonic(), getattr(self, "path", "")))
        return super().parse_request()


@contextmanager
def serve_dir(root: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve `root` on 127.0.0.1 (port picked by the OS); yields the base URL and the request log."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietFiles, directory=str(root)))
    server.requests = []  # type: ignore[attr-defined]
    server.arrivals = ARRIVALS[root] = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", server.requests  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def write_config(directory: Path, sites: dict[str, str], *, extra: str = "", delay: float = 0.0) -> Path:
    """A config dir with fast, loopback-allowed fetch settings and the given site files."""
    (directory / "sites").mkdir(parents=True, exist_ok=True)
    (directory / "feedmaker.toml").write_text(
        f"""output_dir = "{directory.parent / "output"}"
state_dir = "{directory.parent / "state"}"
[fetch]
delay = {delay}
retries = 0
timeout = 10.0
allow_private_networks = ["127.0.0.0/8"]
{extra}
""",
        encoding="utf-8",
    )
    for name, text in sites.items():
        (directory / "sites" / f"{name}.toml").write_text(text, encoding="utf-8")
    return directory
