"""The README and the guides in docs/: every relative link (and image) resolves, anchors
included, and every `--set KEY=...` they show names a real config key."""

import dataclasses
import inspect
import re
from pathlib import Path

import pytest
from conftest import REPO

from gan.core.config import Config, config_to_dict, flatten_config
from gan.nets import _zoo, network_names

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
SET_KEY = re.compile(r"--set[ =]['\"]?([A-Za-z_][A-Za-z0-9_.]*)=")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    return "".join(char for char in text if char.isalnum() or char in " -_").replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found, fenced = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"^#{1,6} ", line):
            found.add(slug(line.split(" ", 1)[1]))
    return found


def test_the_guides_exist_and_each_opens_with_what_it_covers():
    guides = sorted(path.name for path in (REPO / "docs").glob("*.md"))
    assert {"training.md", "sampling.md", "paired-translation.md", "cyclegan.md", "srgan.md", "metrics.md",
            "regularisers.md", "comparing-runs.md", "configs.md", "data.md", "performance.md", "layout.md",
            "results.md"} <= set(guides)
    for name in guides:
        lines = (REPO / "docs" / name).read_text().splitlines()
        assert lines[0].startswith("# ") and not lines[1] and lines[2] and lines[3] and not lines[4], name


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading '#{anchor}' in {linked.name}")
    assert broken == []


def config_keys() -> set[str]:
    keys = set(flatten_config(config_to_dict(Config())))
    for role, section in (("generator", "model.generator_args"), ("discriminator", "model.discriminator_args")):
        for name in network_names(role):
            keys |= {f"{section}.{arg}" for arg in inspect.signature(_zoo(role).get(name)).parameters}
    return keys


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_set_key_written_is_a_config_key(page):
    keys = config_keys()
    unknown = sorted({key for key in SET_KEY.findall(page.read_text()) if key not in keys})
    assert unknown == []


def test_the_key_check_would_catch_a_misspelt_key():
    assert SET_KEY.findall("gan train x.toml --set train.stpes=10") == ["train.stpes"]
    assert "train.stpes" not in config_keys() and "train.steps" in config_keys()
    assert dataclasses.is_dataclass(Config)


def test_the_readme_is_a_front_door():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    images = re.findall(r"!\[[^\]]*\]\((docs/images/[^)]+\.png)\)", text)
    assert len(images) >= 5
    total = sum(path.stat().st_size for path in (REPO / "docs" / "images").glob("*"))
    assert total < 3 * 2**20  # every picture together


def test_prepare_celeba_suggests_the_config_the_faces_are_large_enough_for(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("prepare_celeba", REPO / "datasets" / "prepare_celeba.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "dcgan_celeba128.toml" in module.ready_message((178, 218), tmp_path)
    half = module.ready_message((89, 109), tmp_path)  # the half-size copies: a 74-px crop
    assert "dcgan_celeba64.toml" in half and "too small for 128x128" in half
    assert "too small even for" in module.ready_message((40, 49), tmp_path)


def documented_sweeps() -> list[str]:
    """Every `gan sweep` command of the README, the guides and `gan sweep --help`, continuations joined."""
    from gan.commands.sweep import sweep

    texts = [(REPO / "README.md").read_text(), *(path.read_text() for path in (REPO / "docs").glob("*.md")),
             sweep.help or ""]
    commands = []
    for text in texts:
        joined = re.sub(r"\\\n\s*", "", text)
        commands += [match.strip().rstrip("`") for match in re.findall(r"gan sweep [^\n`|]+", joined)]
    # whole commands only (a CONFIG), and none built from a script's shell variables
    return sorted(command for command in set(commands) if ".toml" in command and "$" not in command)


@pytest.mark.parametrize("command", documented_sweeps())
def test_every_documented_sweep_expands_to_valid_configs(command, tmp_path):
    """--print-commands checks every grid point's config, as the sweep would before its first run."""
    import shlex

    from click.testing import CliRunner

    from gan.commands.main import main

    arguments = shlex.split(command)[2:]
    if "--out" in arguments:
        arguments[arguments.index("--out") + 1] = str(tmp_path / "sweep")
    arguments = [str(REPO / arg) if arg.startswith("experiments/") else arg for arg in arguments]
    result = CliRunner().invoke(main, ["sweep", *arguments, "--print-commands"])
    assert result.exit_code == 0, (command, result.output)
