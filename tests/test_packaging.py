"""What pip builds from the repository: an sdist whose tests run once unpacked (its conftest, test
data and the configs and docs they read travel with it)."""

import shutil
import subprocess
import sys
import tarfile

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
