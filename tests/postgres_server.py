"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temp dir, on a unix socket there.

The binaries come from PATH, then Debian's /usr/lib/postgresql/<version>/bin, then `pg_config --bindir`.
PostgreSQL refuses to run as root, so under root the server runs as the `postgres` user (runuser) in a
directory it owns. Tests never install anything: without the binaries `find_bindir` says why.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresServer", "find_bindir", "start_server"]

PORT = 5432  # names the socket file only: the socket lives in the server's own temp dir


def find_bindir() -> tuple[Path | None, str]:
    """The directory holding initdb and pg_ctl, or None and the one-line reason."""
    candidates: list[Path] = []
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(Path(found).resolve().parent)
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) for x in Path(p).parent.name.split(".") if x.isdigit()],
    )
    candidates.extend(Path(p) for p in reversed(versions))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if out:
            candidates.append(Path(out))
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            if os.geteuid() == 0 and not shutil.which("runuser"):
                return None, "PostgreSQL cannot run as root and runuser is missing"
            return bindir, ""
    return None, "PostgreSQL binaries (initdb, pg_ctl) not found; install Debian's postgresql package"


@dataclass(frozen=True, slots=True)
class PostgresServer:
    bindir: Path
    root: Path  # data dir, socket and log inside

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.socket_dir}&port={PORT}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=60)

    def start(self) -> None:
        options = f"-k {self.socket_dir} -p {PORT} -c listen_addresses='' -c fsync=off -c max_connections=200"
        self._run(
            "pg_ctl",
            "-D",
            str(self.root / "data"),
            "-l",
            str(self.root / "log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", mode, "-w", "stop", check=False)

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        done = self._run(
            "psql",
            "-X",
            "-q",
            "-At",
            "-h",
            str(self.socket_dir),
            "-p",
            str(PORT),
            "-U",
            "postgres",
            "-d",
            dbname,
            "-c",
            sql,
        )
        return done.stdout


def start_server(bindir: Path) -> PostgresServer:
    root = Path(tempfile.mkdtemp(prefix="feedmaker-pg-"))
    (root / "run").mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(root / "run", "postgres", "postgres")
    server = PostgresServer(bindir, root)
    try:
        server._run(
            "initdb",
            "-D",
            str(root / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        )
        server.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server


def remove(server: PostgresServer) -> None:
    server.stop("immediate")
    shutil.rmtree(server.root, ignore_errors=True)
