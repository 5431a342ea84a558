"""`make demo`: serve the bundled example sites (demo/www) on 127.0.0.1, run the feedmaker daemon against them,
print the feed and OPML URLs to paste into a reader, and stop both on Ctrl-C. Works offline.

    .venv/bin/python demo/serve.py [--port 8765] [--feeds-port 8090] [--run-dir demo/.run]

demo/config is a config folder written for a site server on http://127.0.0.1:8765; `write_config` copies it
with the address the server really got (and the daemon's port), so any free port works and tests can use
port 0. Feeds and the store go to demo/.run/ (ignored by git; `make clean` removes it).
"""

from __future__ import annotations

import argparse
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from feedmaker.config import load_all

__all__ = ["CONFIG", "PLACEHOLDER", "WWW", "main", "serve_site", "write_config"]

HERE = Path(__file__).resolve().parent
WWW = HERE / "www"
CONFIG = HERE / "config"
RUN = HERE / ".run"
PLACEHOLDER = "http://127.0.0.1:8765"  # the site server address demo/config is written for
STOP_SECONDS = 15  # the daemon promises to stop within 10 s


class _Files(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # the daemon's own log says what it fetched


@contextmanager
def serve_site(port: int = 0) -> Iterator[str]:
    """Serve demo/www on 127.0.0.1:`port` (0: the OS picks); yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", port), partial(_Files, directory=str(WWW)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def write_config(dest: Path, base: str, *, feeds_port: int | None = None) -> Path:
    """demo/config copied to `dest` with the site server at `base` (and the daemon on `feeds_port`)."""
    (dest / "sites").mkdir(parents=True, exist_ok=True)
    for source in (CONFIG / "feedmaker.toml", *sorted((CONFIG / "sites").glob("*.toml"))):
        text = source.read_text(encoding="utf-8").replace(PLACEHOLDER, base)
        if feeds_port is not None and source.name == "feedmaker.toml":
            text = re.sub(r"(?m)^port = \d+", f"port = {feeds_port}", text)
        (dest / source.relative_to(CONFIG)).write_text(text, encoding="utf-8")
    return dest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_up(url: str, daemon: subprocess.Popen[bytes], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and daemon.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # it answered: up, whatever it thinks of its health
        except OSError:
            time.sleep(0.2)
    return False


def _stop(daemon: subprocess.Popen[bytes]) -> int:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    try:
        return daemon.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        daemon.kill()
        return daemon.wait()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM (kill, a supervisor) ends the demo like Ctrl-C


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--port", type=int, default=8765, help="site server port on 127.0.0.1 (0: any free one)"
    )
    parser.add_argument(
        "--feeds-port", type=int, default=8090, help="daemon port on 127.0.0.1 (0: any free one)"
    )
    parser.add_argument("--run-dir", type=Path, default=RUN, help="for the written config, feeds and store")
    args = parser.parse_args(argv)
    # Ctrl-C must end the demo even where the shell started us with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    feeds_port = args.feeds_port or _free_port()
    try:
        with serve_site(args.port) as base:
            config = write_config(args.run_dir / "config", base, feeds_port=feeds_port)
            settings, sites = load_all(config)
            command = [sys.executable, "-m", "feedmaker", "--config", str(config), "run"]
            # Its own process group: a terminal's Ctrl-C reaches only this script, which then stops the daemon
            # with exactly one SIGTERM (a second signal during its shutdown would cut that short).
            daemon = subprocess.Popen(command, process_group=0)
            try:
                feeds = f"http://127.0.0.1:{feeds_port}"
                if not _wait_until_up(f"{feeds}/healthz", daemon):
                    print(f"demo: the daemon did not come up on {feeds} (see its log above)", file=sys.stderr)
                    return _stop(daemon) or 1
                print(
                    f"\ndemo sites on {base}/ (pages in demo/www); daemon pid {daemon.pid}, feeds and store in {args.run_dir}"
                )
                print("feeds to paste into a reader (the first crawl lands within a few seconds):")
                listed = [(site.id, site.name) for site in sites] + [
                    (feed.id, feed.title) for feed in settings.feed
                ]
                width = max(len(f"{feeds}/feeds/{feed_id}.atom") for feed_id, _ in listed)
                for feed_id, title in listed:
                    print(f"  {f'{feeds}/feeds/{feed_id}.atom':<{width}}  {title}")
                print(f"OPML, every feed at once: {feeds}/opml")
                print(f"status page: {feeds}/\nCtrl-C stops the daemon and the site server.\n", flush=True)
                code = daemon.wait()
                print(f"demo: the daemon exited with code {code}", file=sys.stderr)
                return code
            except KeyboardInterrupt:
                code = _stop(daemon)
                print(f"\ndemo stopped (daemon exit code {code})", flush=True)
                return code
    except OSError as exc:
        print(
            f"demo: cannot serve the demo sites on 127.0.0.1:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
