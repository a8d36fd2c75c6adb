"""What pip builds from the repository: an sdist whose tests run once unpacked (its conftest, test
data and the configs and docs they read travel with it)."""

import re
import shutil
import subprocess
import sys
import tarfile
import tomllib

import pytest
from conftest import REPO


def repository_files() -> list[str]:
    """The files git tracks or would track (this change's new ones included)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True)
    return [name for name in listed.stdout.splitlines() if (REPO / name).is_file()]


def test_the_sdist_carries_everything_its_tests_read(tmp_path):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout (an unpacked sdist, say): no list of the project's files to check against")
    source = tmp_path / "source"  # a copy: no egg-info of an earlier build lends it a file list
    files = repository_files()
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    build = subprocess.run([sys.executable, "-c", "import sys; from setuptools import build_meta; "
                            "build_meta.build_sdist(sys.argv[1])", str(tmp_path)], cwd=source, capture_output=True,
                           text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    (sdist,) = tmp_path.glob("gan-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    needed = {name for name in files if name.split("/")[0] in ("gan", "tests", "experiments", "docs", "datasets",
                                                                "benchmarks")} | {"constraints.txt", "pyproject.toml"}
    assert "tests/conftest.py" in needed and any(name.startswith("tests/data/") for name in needed)
    assert sorted(needed - members) == []


# The lowest version of each dependency that gan works with: pyproject.toml's bound once let pip install an older one
LOWEST_WORKING = {
    "click": "8.2.1",  # (before 8.2 every usage error was a traceback; 8.2.0's CliRunner dropped stderr from its output)
    "pillow": "10.1",  # (10.0 turned a TIFF with an EXIF orientation twice: on load, and again by gan)
    "matplotlib": "3.7.3",  # (3.7.0 to 3.7.2 admit numpy 2, which they fail to import with: gan compare failed)
}


def version_numbers(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def test_no_dependency_admits_a_version_gan_fails_with():
    """pyproject.toml's lower bounds admitted versions gan fails with, found by installing the lowest of each."""
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = dict(re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)(?:,.*)?", requirement).groups()
                    for requirement in dependencies)
    for name, lowest in LOWEST_WORKING.items():
        assert version_numbers(declared[name]) >= version_numbers(lowest), \
            f"pyproject.toml: {name}>={declared[name]} admits versions gan fails with; declare {name}>={lowest}"
