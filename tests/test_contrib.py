"""contrib/feedmaker.service: the systemd unit the README tells operators to install."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parent.parent / "contrib" / "feedmaker.service"


def directives(text: str) -> dict[str, list[str]]:
    """Key -> values in file order; systemd allows a key more than once (ExecReload runs each)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_unit_reloads_with_sighup_after_validating_and_writes_only_its_state_directory():
    unit = directives(UNIT.read_text(encoding="utf-8"))
    [start] = unit["ExecStart"]
    command = re.fullmatch(r"(\S+) --config (\S+) run", start)
    assert command is not None, start
    binary, config = command.groups()
    assert unit["ExecReload"] == [f"{binary} --config {config} validate", "/bin/kill -HUP $MAINPID"]
    assert unit["Type"] == ["simple"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["StateDirectory"] == ["feedmaker"]
    assert unit["DynamicUser"] == ["yes"]
    assert "ReadWritePaths" not in unit  # nothing writable beside the state directory


def test_unit_passes_systemd_analyze_verify(tmp_path: Path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not on PATH (it comes with systemd)")
    text = UNIT.read_text(encoding="utf-8")
    # verify insists that each command exists: point them at this interpreter's feedmaker.
    local = re.sub(
        r"^(Exec\w+=)\S+/feedmaker\b", rf"\g<1>{sys.executable} -m feedmaker", text, flags=re.MULTILINE
    )
    assert local.count(sys.executable) == 2
    path = tmp_path / "feedmaker.service"
    path.write_text(local, encoding="utf-8")
    done = subprocess.run(
        [tool, "verify", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    # verify exits 0 even for an unknown (misspelt) key, but names the file in its warning.
    assert done.returncode == 0, done.stderr
    assert "feedmaker.service" not in done.stdout + done.stderr, done.stdout + done.stderr
