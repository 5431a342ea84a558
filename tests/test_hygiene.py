"""What a fresh clone relies on: no file names a path of one machine, and every package the code imports is
a declared dependency."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("feedmaker", "tests", "benchmarks", "config", "demo")
# Absolute paths that exist on one machine only: a home folder, a mount like /work or /mnt, a Windows user.
# The lookbehind keeps URL paths ("https://host/ho" "me/x") and relative ones ("../shared") out.
MACHINE_PATH = re.compile(
    r"(?<![\w.~/:-])(?:/(?:home|Users)/[a-z_][\w.-]*|/(?:work|mnt|root|srv|media)/|[A-Z]:\\Users\\)",
    re.IGNORECASE,
)


def _files() -> list[Path]:
    return sorted(
        p
        for top in CHECKED
        for p in (ROOT / top).rglob("*")
        if p.is_file() and not {"__pycache__", ".run"} & set(p.parts)
    )


def test_machine_path_pattern_catches_home_and_mount_paths_but_not_urls() -> None:
    hits = [
        "/wor" + "k/shared/corpora",
        "open('/ho" + "me/ada/x')",
        "C:\\Us" + "ers\\ada",
        " /mn" + "t/data/x",
    ]
    misses = [
        "https://example.com/ho" + "me/ada",
        "../shared/corpora",
        "~/wor" + "k/x",
        "/tmp/x",
        "href='/ho" + "me/'",
    ]
    assert all(MACHINE_PATH.search(text) for text in hits), hits
    assert not any(MACHINE_PATH.search(text) for text in misses), misses


def test_no_file_names_an_absolute_path_of_a_machine() -> None:
    """Paths come from settings or from the repository's own location, so a clone works anywhere."""
    found = []
    for path in _files():
        text = path.read_bytes().decode("utf-8", errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            if match := MACHINE_PATH.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {match.group(0)}")
    assert len(_files()) > 50  # the walk found the tree
    assert not found, "\n".join(found)


def _declared(*extras: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = [
        *project["dependencies"],
        *(s for extra in extras for s in project["optional-dependencies"][extra]),
    ]
    return {re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in specs}


def _imported_top_levels(directory: Path) -> set[str]:
    names: set[str] = set()
    for path in directory.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"feedmaker", "tests", "benchmarks", "demo"}


@pytest.mark.parametrize(
    ("directory", "extras", "sample"),
    [
        ("feedmaker", ("postgres",), {"httpx", "dateutil"}),  # store/postgres.py needs the optional extra
        ("tests", ("test", "postgres"), {"pytest"}),
        ("benchmarks", ("test", "bench"), {"lxml"}),
        ("demo", (), set()),
    ],
)
def test_every_imported_package_is_a_declared_dependency(
    directory: str, extras: tuple[str, ...], sample: set[str]
) -> None:
    """An import that works only because another dependency happens to pull the package in breaks the day it stops."""
    distributions = packages_distributions()
    imported = _imported_top_levels(ROOT / directory)
    assert sample <= imported  # the walk read the code
    declared = _declared(*extras)
    undeclared = {}
    for module in sorted(imported):
        dists = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not dists & declared:
            undeclared[module] = sorted(dists)
    assert not undeclared, f"imported in {directory}/ but not declared in pyproject.toml: {undeclared}"


def test_corpus_tier_skips_with_one_reason_where_the_corpora_are_absent(tmp_path: Path) -> None:
    """A bare clone: every `corpus` test is skipped, and the summary gives the count and the reason on one line."""
    env = {**os.environ, "FEEDMAKER_CORPORA": str(tmp_path / "absent")}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-m",
        "corpus",
        "tests/test_feed.py",
        "tests/test_suggest.py",
    ]
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    reasons = re.findall(
        r"^SKIPPED \[(\d+)\] .*: corpus tier: shared corpora not found at (\S+)", result.stdout, re.MULTILINE
    )
    assert reasons == [(reasons[0][0], str(tmp_path / "absent"))], result.stdout
    assert int(reasons[0][0]) >= 5
    assert re.search(rf"\b{reasons[0][0]} skipped\b", result.stdout)
    assert " passed" not in result.stdout
