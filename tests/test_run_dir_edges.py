"""A run directory named by the user (`--run-dir`, `--resume`) holds one experiment and nothing
of the user's is touched: folders gan did not make are refused, a user's `.tmp` files stay, a
stop while setting up leaves no half-built cache or empty run, and a resume says what it changes."""

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import (
    REPO,
    TINY,
    assert_one_error_line,
    poison_dcgan_step_once,
    random_rgb,
    run_folders,
    tiny_recipe_config,
    write_recipe_data,
)

import gan.data.cache as cache_module
from gan.commands.main import main
from gan.core.config import DataConfig
from gan.data import build_dataset
from gan.data.cache import load_or_build_cache
from gan.training import loop as loop_module

DEMO = str(REPO / "experiments" / "dcgan_demo.toml")


def sets(*items: str) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def train_command(*args: str):
    return CliRunner().invoke(main, ["train", *args])


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


# ----------------------------------------------------------------------------- --run-dir on existing folders


@pytest.mark.parametrize("contents", [["notes.txt"], ["best.pt"], ["config.toml", "photo.jpg"]])
def test_a_folder_gan_did_not_make_is_refused_untouched(tmp_path, contents):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in contents:
        (folder / name).write_bytes(b"precious")
    result = train_command(DEMO, *sets(*TINY), "--run-dir", str(folder))
    assert result.exit_code == 2 and len(error_lines(result.output)) == 1, result.output
    assert "nothing in it was touched" in result.output
    assert "best.pt but no checkpoint" in result.output if contents == ["best.pt"] else "files gan did not write"
    assert sorted(path.name for path in folder.iterdir()) == sorted(contents)
    assert [path.name for path in tmp_path.iterdir()] == ["mine"]  # nothing renamed beside it


def test_a_start_killed_between_its_first_best_pt_and_checkpoint_is_set_aside_not_refused(tmp_path):
    # with metrics.every = train.checkpoint_every (the demo's), a kill -9 between the two writes left a
    # folder no --run-dir line would start again ("holds a best.pt but no checkpoint-*.pt")
    from gan.core.checkpoint import FORMAT, save_checkpoint, stored_step
    from gan.core.files import LOCK_NAME

    folder = tmp_path / "run"
    folder.mkdir()
    for name in (LOCK_NAME, "events.out.tfevents.1.host", "metrics.jsonl", "best.json"):
        (folder / name).write_bytes(b"left by the start")
    (folder / "config.toml").write_text("[train]\ncheckpoint_every = 2\n")
    for best_step, kept in ((4, True), (2, False)):  # a finished run's of later steps (its checkpoints deleted): kept
        save_checkpoint({"format": FORMAT, "step": best_step}, folder / "best.pt")
        result = train_command(DEMO, *sets(*TINY), "--run-dir", str(folder))
        if kept:
            assert result.exit_code == 2 and "a best.pt but no checkpoint-*.pt" in result.output, result.output
            continue
        assert result.exit_code == 0, result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run", "run.abandoned-0"]
    assert stored_step(tmp_path / "run.abandoned-0" / "best.pt") == 2
    assert any(path.name.startswith("checkpoint-") for path in folder.iterdir())


def test_a_folder_of_runs_given_to_run_dir_is_said_to_be_one(tmp_path):
    # its runs were listed as "files gan did not write"
    runs = tmp_path / "runs"
    assert train_command(DEMO, *sets(*TINY), "--out", str(runs)).exit_code == 0
    (run,) = [path.name for path in runs.iterdir() if path.is_dir()]
    result = train_command(DEMO, *sets(*TINY), "--run-dir", str(runs))
    assert result.exit_code == 2 and len(error_lines(result.output)) == 1, result.output
    assert f"--run-dir '{runs}' is a folder of runs ({run}), not a run: give a new folder, or one of them to resume " \
        f"it, e.g. --run-dir {runs / run}" in result.output
    # past run 99999, the newest by its number (by name, '100000-' came before '99999-')
    import shutil

    from gan.commands.common import _numbered_run_hint
    from gan.core.registry import ConfigError
    from gan.training.run_dir import start_or_resume

    for number in ("99999", "100000"):
        shutil.copytree(runs / run, runs / f"{number}-dcgan_demo")
    with pytest.raises(ConfigError, match=rf"\({run}, 99999-dcgan_demo, 100000-dcgan_demo\), not a run: .* e.g. "
                                          rf"--run-dir {runs / '100000-dcgan_demo'}"):
        start_or_resume(runs)
    assert f"holds {run}, 99999-dcgan_demo, 100000-dcgan_demo (gan train" in _numbered_run_hint(runs / "00042-dcgan_demo")

def test_a_users_folder_holding_a_config_toml_is_not_called_a_run(tmp_path):
    # `--run-dir .` beside a photos/ holding a file named config.toml (and a link to it) said "is a
    # folder of runs (photos, photos_link)": a config.toml alone made a run; `--resume .` said the same
    from gan.core.registry import ConfigError
    from gan.training.run_dir import start_or_resume

    folder = tmp_path / "here"
    (folder / "photos").mkdir(parents=True)
    (folder / "photos" / "config.toml").write_text('camera = "x100"\n')
    (folder / "photos_link").symlink_to(folder / "photos")
    with pytest.raises(ConfigError, match=r"holds files gan did not write \(photos, photos_link\) and no checkpoint"):
        start_or_resume(folder)  # (still refused, as not a new folder: nothing in it touched)
    assert sorted(path.name for path in folder.iterdir()) == ["photos", "photos_link"]
    resumed = train_command("--resume", str(folder))
    assert resumed.exit_code == 2 and "has no config.toml and no checkpoint" in resumed.output, resumed.output
    run = folder / "00000-dcgan_demo"  # a start of gan train (its lock taken first) is a run
    run.mkdir()
    (run / "config.toml").write_text('recipe = "dcgan"\n')
    (run / ".lock").write_text("")
    with pytest.raises(ConfigError, match=r"is a folder of runs \(00000-dcgan_demo\), not a run"):
        start_or_resume(folder)


def test_a_start_that_died_before_its_first_checkpoint_is_set_aside_with_a_line(tmp_path):
    folder = tmp_path / "run"
    (folder / "samples").mkdir(parents=True)
    (folder / "config.toml").write_text("recipe = \"dcgan\"\n")
    (folder / "events.out.tfevents.1.host.2.0").write_bytes(b"")
    result = train_command(DEMO, *sets(*TINY), "--run-dir", str(folder))
    assert result.exit_code == 0, result.output
    assert "set aside as" in result.output and (tmp_path / "run.abandoned-0" / "config.toml").is_file()
    assert (folder / "checkpoint-00000004.pt").is_file()


@pytest.mark.parametrize("name", ["s" * 246, "é" * 122 + "s"])
def test_a_dead_start_in_a_folder_of_a_long_legal_name_is_set_aside_within_255_bytes(tmp_path, capsys, name):
    """`<name>.abandoned-0` of a 245-to-255-byte name was too long to make ("File name too long"):
    that --run-dir line failed so every time, until the folder was deleted by hand."""
    from gan.core.checkpoint import is_set_aside
    from gan.core.files import LOCK_NAME
    from gan.training.run_dir import start_or_resume

    for number in range(2):
        folder = tmp_path / name
        folder.mkdir()
        for left in (LOCK_NAME, "config.toml", "events.out.tfevents.1.host.2.0"):
            (folder / left).write_bytes(b"left by the start")
        assert start_or_resume(folder) is False and not folder.exists()
        (aside,) = [path for path in tmp_path.iterdir() if path.name.endswith(f".abandoned-{number}")]
        encoded = os.fsencode(aside.name)
        assert len(encoded) <= 255 and encoded.decode("utf-8").startswith(name[:100]) and is_set_aside(aside)
        assert (aside / "config.toml").read_bytes() == b"left by the start"
        assert f"set aside as '{aside}'" in capsys.readouterr().err


def test_a_config_file_of_a_long_name_gives_run_folders_a_file_system_can_make(tmp_path):
    """A config file of a 250-byte stem made `00000-<stem>`, 256 bytes: every --out start was refused with
    'choose a shorter one', not saying that the config file's name was what made it long."""
    from gan.training.run_dir import create_run_dir

    made = [create_run_dir(tmp_path / "runs", stem) for stem in ("c" * 250, "c" * 250, "é" * 125, "dcgan_demo")]
    assert all(run_dir.is_dir() for run_dir in made)
    for number, run_dir in enumerate(made[:3]):  # (cut within a file name's bytes, at a character's start)
        assert re.fullmatch(rf"0000{number}-(c+|é+)-[0-9a-f]{{8}}", os.fsencode(run_dir.name).decode("utf-8"))
        assert len(os.fsencode(run_dir.name)) <= 255 - len(".abandoned-99")
    assert made[0].name != made[1].name and made[3].name == "00003-dcgan_demo"


def test_the_same_line_resumes_and_another_line_is_refused(tmp_path):
    folder = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY), "--run-dir", str(folder)).exit_code == 0
    longer = train_command(DEMO, *sets(*TINY, "train.steps=6"), "--run-dir", str(folder))
    assert longer.exit_code == 0 and (folder / "checkpoint-00000006.pt").is_file(), longer.output
    config_before = (folder / "config.toml").read_text()
    other = train_command(DEMO, *sets(*TINY, "train.steps=8", "train.batch_size=4"), "--run-dir", str(folder))
    assert other.exit_code == 2 and "train.batch_size 8 -> 4" in other.output, other.output
    assert "--resume" in other.output and (folder / "config.toml").read_text() == config_before


def test_the_same_line_continues_with_the_cache_folder_of_the_machine_it_runs_on(tmp_path):
    """A SLURM requeue whose job has a scratch disk of its own gives another data.cache_dir: the run went on
    with config.toml's, making the ended job's folder again (and failing every requeue where it could not)."""
    images = tmp_path / "faces"
    images.mkdir()
    for index in range(8):
        random_rgb((32, 32), index).save(images / f"{index}.png")
    data = ("data.dataset=folder", f"data.root={images}", "data.cache=mmap")
    folder, first_job, requeued_job = tmp_path / "run", tmp_path / "job1", tmp_path / "job2"
    first = train_command(DEMO, *sets(*TINY, *data, f"data.cache_dir={first_job}"), "--run-dir", str(folder))
    assert first.exit_code == 0, first.output
    shutil.rmtree(first_job)  # (the job's scratch, gone with it)
    requeued = train_command(DEMO, *sets(*TINY, *data, "train.steps=6", f"data.cache_dir={requeued_job}"),
                             "--run-dir", str(folder))
    assert requeued.exit_code == 0 and (folder / "checkpoint-00000006.pt").is_file(), requeued.output
    assert f"(data.cache_dir '{first_job}' -> '{requeued_job}': the second goes on)" in requeued.output
    assert not first_job.exists() and list(requeued_job.glob("*.npy"))
    assert f'cache_dir = "{requeued_job}"' in (folder / "config.toml").read_text()


def test_the_same_line_continues_with_its_own_dist_timeout_s(tmp_path):
    """torchrun's processes form their group with the line's train.dist_timeout_s before config.toml is read:
    the line said "(train.dist_timeout_s 3600 -> 20: the first goes on)", waited 20 s, and recorded 3600."""
    folder = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY), "--run-dir", str(folder)).exit_code == 0
    again = train_command(DEMO, *sets(*TINY, "train.steps=6", "train.dist_timeout_s=20"), "--run-dir", str(folder))
    assert again.exit_code == 0 and (folder / "checkpoint-00000006.pt").is_file(), again.output
    assert "dist_timeout_s" not in again.output and "dist_timeout_s = 20" in (folder / "config.toml").read_text()


@pytest.mark.parametrize("command", ["train --out RUN", "train --out RUN/samples", "train --run-dir RUN/nested",
                                     "sweep --out RUN"])
def test_new_runs_are_never_made_inside_a_run_directory(tmp_path, command):
    run = tmp_path / "runs" / "run"
    assert train_command(DEMO, *sets(*TINY), "--run-dir", str(run)).exit_code == 0
    before = sorted(path.relative_to(run) for path in run.rglob("*"))
    name, option, where = command.split()
    arguments = [DEMO, *sets(*TINY), option, where.replace("RUN", str(run))]
    if name == "sweep":
        arguments[1:1] = ["--grid", "train.g_lr=1e-4,2e-4"]
    result = CliRunner().invoke(main, [name, *arguments])
    assert result.exit_code == 2, result.output
    assert_one_error_line(result, f"the run directory '{run}'", f"such as '{run.parent}'")
    assert sorted(path.relative_to(run) for path in run.rglob("*")) == before  # nothing written there


def test_config_and_resume_together_are_refused(tmp_path):
    folder = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY), "--run-dir", str(folder)).exit_code == 0
    result = train_command(DEMO, "--resume", str(folder))
    assert result.exit_code == 2 and "give CONFIG or --resume, not both" in result.output, result.output


def test_out_with_resume_or_run_dir_is_refused_not_passed_over(tmp_path):
    # `--resume RUN --out OTHER` resumed RUN in place and made nothing in OTHER, without a word.
    folder = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY), "--run-dir", str(folder)).exit_code == 0
    before = sorted(path.name for path in folder.iterdir())
    for command in (["--resume", str(folder)], [str(DEMO), "--run-dir", str(folder)]):
        result = train_command(*command, *sets("train.steps=6"), "--out", str(tmp_path / "other"))
        assert result.exit_code == 2 and "--out does not go with it" in result.output, result.output
    assert sorted(path.name for path in folder.iterdir()) == before and not (tmp_path / "other").exists()


def test_a_resume_names_what_it_changes_and_warns_of_a_new_seed(tmp_path):
    folder = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY), "--run-dir", str(folder)).exit_code == 0
    # (not the latents: the training's random state is the checkpoint's)
    with pytest.warns(UserWarning, match="train.seed changed on resume: .* come from the checkpoint, while the new "
                                         "seed draws the data order and flips from here on, so this is a run of "
                                         "neither seed"):
        result = train_command("--resume", str(folder), *sets("train.steps=6", "train.seed=7"))
    assert result.exit_code == 0, result.output
    assert "changed settings: train.seed 0 -> 7; train.steps 4 -> 6" in result.output


def test_a_resume_names_settings_edited_into_config_toml_by_hand_as_changes(tmp_path):
    folder = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY), "--run-dir", str(folder)).exit_code == 0
    text = (folder / "config.toml").read_text()
    assert "g_lr = 0.0002\n" in text
    (folder / "config.toml").write_text(text.replace("g_lr = 0.0002\n", "g_lr = 0.5\n").replace(
        "steps = 4\n", "steps = 5\n"))
    result = train_command("--resume", str(folder), *sets("train.steps=6"))
    assert result.exit_code == 0, result.output
    # measured against what the checkpoint trained with (steps 4), not the edited file (5)
    assert ("changed settings: train.g_lr 0.0002 -> 0.5; train.steps 4 -> 6 (train.g_lr: from its config.toml, "
            "edited by hand, written by an earlier command stopped before its first checkpoint (kill -9), or left by a "
            "later checkpoint now lost, not from --set)") in result.output


def test_a_resume_with_a_preset_by_set_names_its_keys_as_from_set_not_as_edited_by_hand(tmp_path):
    folder = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY), "--run-dir", str(folder)).exit_code == 0
    result = train_command("--resume", str(folder), *sets("train.steps=6", "loss.preset=lsgan"))
    assert result.exit_code == 0, result.output
    assert "changed settings:" in result.output and "train.d_lr" in result.output
    assert "edited by hand" not in result.output


def test_a_resume_that_falls_back_measures_its_changes_against_the_checkpoint_it_continues(tmp_path):
    folder = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY), "--run-dir", str(folder)).exit_code == 0
    assert train_command("--resume", str(folder), *sets("train.steps=6", "train.seed=5",
                                                         "train.g_lr=5e-5")).exit_code == 0
    (folder / "checkpoint-00000006.pt").write_bytes(b"")  # the newest is lost: the resume continues step 4
    with pytest.warns(UserWarning, match="train.seed changed on resume"):
        result = train_command("--resume", str(folder), *sets("train.steps=8"))
    assert result.exit_code == 0, result.output
    assert "changed settings: train.g_lr 0.0002 -> 5e-05; train.seed 0 -> 5; train.steps 4 -> 8" in result.output


def test_training_longer_says_which_schedules_tied_to_the_runs_length_restart(tmp_path):
    folder = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY, "loss.instance_noise=0.1", "train.lr_decay_steps=4"),
                         "--run-dir", str(folder)).exit_code == 0
    with pytest.warns(UserWarning, match=r"resuming at step 4 with these settings moves schedules tied to the run's "
                                         r"length: at step 5, the learning rates rise from 0.2x to 0.8x of their base "
                                         r".*; and the instance noise rises from 0.025 to 0.05 .*--set "
                                         r"loss.instance_noise_steps=4 keeps its anneal"):
        assert train_command("--resume", str(folder), *sets("train.steps=8")).exit_code == 0
    by_line = tmp_path / "by-line"  # the same --run-dir line with another length (what a sweep runs) used to say nothing
    first = train_command(DEMO, *sets(*TINY, "loss.instance_noise=0.1", "train.lr_decay_steps=4"), "--run-dir", str(by_line))
    assert first.exit_code == 0
    # (its advice, a key the same line refuses, is given as the --resume that can set it)
    with pytest.warns(UserWarning, match=r"resuming at step 4 with these settings moves schedules tied to the run's "
                                         r"length: at step 5, the learning rates rise from 0.2x to 0.8x.*the same "
                                         r"--run-dir line changes no other key: to set those named, stop and continue "
                                         rf"with gan train --resume {re.escape(str(by_line))} --set KEY=VALUE"):
        assert train_command(DEMO, *sets(*TINY, "loss.instance_noise=0.1", "train.lr_decay_steps=4", "train.steps=8"),
                             "--run-dir", str(by_line)).exit_code == 0
    shorter = tmp_path / "shorter"  # a shorter run drops a decaying rate at once, which used to go unsaid
    assert train_command(DEMO, *sets(*TINY, "train.steps=8", "train.lr_schedule=cosine"),
                         "--run-dir", str(shorter)).exit_code == 0
    (shorter / "checkpoint-00000008.pt").unlink()
    (shorter / "checkpoint-00000006.pt").unlink()
    with pytest.warns(UserWarning, match=r"resuming at step 4 with these settings moves schedules tied to the run's "
                                         r"length: at step 5, the learning rates fall from 0.5x to 0x of their base"):
        assert train_command("--resume", str(shorter), *sets("train.steps=5")).exit_code == 0
    warm = tmp_path / "warm"  # a warm-up added at the run's end drops the rate at once, which went unsaid
    assert train_command(DEMO, *sets(*TINY, "train.lr_decay_steps=0"), "--run-dir", str(warm)).exit_code == 0
    with pytest.warns(UserWarning, match=r"at step 5, the learning rates fall from 1x to 0.5x of their base "
                                         r"\(train.warmup_steps = 10 warms up from 0 again, after 0\)"):
        assert train_command("--resume", str(warm), *sets("train.steps=20", "train.warmup_steps=10")).exit_code == 0
    filled = tmp_path / "filled"  # a cosine whose warm-up filled the first leg falls after it as a longer run does
    assert train_command(DEMO, *sets(*TINY, "train.lr_schedule=cosine", "train.warmup_steps=3", "train.steps=3"),
                         "--run-dir", str(filled)).exit_code == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert train_command("--resume", str(filled), *sets("train.steps=8")).exit_code == 0
    assert not [warning for warning in caught if "moves schedules" in str(warning.message)]
    stronger = tmp_path / "stronger"  # a stronger noise asked for: the advice to keep the anneal changed nothing
    assert train_command(DEMO, *sets(*TINY, "train.steps=6", "loss.instance_noise=0.1"),
                         "--run-dir", str(stronger)).exit_code == 0
    for newer in ("checkpoint-00000006.pt", "checkpoint-00000004.pt"):
        (stronger / newer).unlink()
    with pytest.warns(UserWarning, match=r"the instance noise rises from 0.0833 to 0.133 \(loss.instance_noise = 0.2 "
                                         r"now, after 0.1\)$"):
        assert train_command("--resume", str(stronger), *sets("loss.instance_noise=0.2")).exit_code == 0
    weaker = tmp_path / "weaker"  # a weaker noise over a longer run: the length raises it, as its advice says
    assert train_command(DEMO, *sets(*TINY, "loss.instance_noise=0.1"), "--run-dir", str(weaker)).exit_code == 0
    with pytest.warns(UserWarning, match=r"the instance noise rises from 0.025 to 0.045 \(annealed over the new "
                                         r"train.steps; --set loss.instance_noise_steps=4 keeps its anneal\)$"):
        assert train_command("--resume", str(weaker), *sets("loss.instance_noise=0.05", "train.steps=40")).exit_code == 0
    folder2 = tmp_path / "run2"  # a resume that only goes on as planned moves nothing
    assert train_command(DEMO, *sets(*TINY, "train.steps=8", "loss.instance_noise=0.1"),
                         "--run-dir", str(folder2)).exit_code == 0
    (folder2 / "checkpoint-00000008.pt").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert train_command("--resume", str(folder2)).exit_code == 0
    assert not [warning for warning in caught if "moves schedules" in str(warning.message)]
    # nor does one with nothing left to train (it warned the rates fall to -2x of their base)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train_command("--resume", str(folder), *sets("train.steps=2"))  # (a linear decay)
    assert result.exit_code == 0 and "nothing to do" in result.output, result.output
    assert not [warning for warning in caught if "moves schedules" in str(warning.message)]


def test_nothing_to_do_leaves_config_toml_as_it_was(tmp_path):
    folder = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY, "train.steps=6"), "--run-dir", str(folder)).exit_code == 0
    before = (folder / "config.toml").read_text()
    result = train_command("--resume", str(folder), *sets("train.steps=2"))
    assert result.exit_code == 0 and "nothing to do" in result.output
    assert (folder / "config.toml").read_text() == before


# ----------------------------------------------------------------------------- stops while setting up


def images_folder(tmp_path, count: int = 6):
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(count):
        random_rgb((20, 20), index).save(folder / f"{index}.png")
    return folder


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, "terminated"])
def test_a_stop_while_the_cache_builds_leaves_no_temp_and_no_run(tmp_path, monkeypatch, interruption):
    from gan.commands.train import Terminated

    raised = Terminated if interruption == "terminated" else KeyboardInterrupt
    folder, cache, out = images_folder(tmp_path), tmp_path / "cache", tmp_path / "runs"

    def interrupted(*args, **kwargs):
        raise raised

    monkeypatch.setattr(cache_module.Progress, "update", interrupted)  # mid-build, after the temp is made
    result = train_command(DEMO, *sets(*TINY, "data.dataset=folder", f"data.root={folder}", "data.cache=mmap",
                                       f"data.cache_dir={cache}"), "--out", str(out))
    assert result.exit_code == (143 if raised is Terminated else 130), result.output
    assert len(error_lines(result.output)) == 1 and "without saving a checkpoint" in result.output
    assert not list(cache.glob("*.tmp")) and not out.exists()  # (the --out folder it made: removed, as it was empty)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_or_sighup_while_setting_up_raises_where_ctrl_c_would(monkeypatch, name):
    import signal

    from gan.commands import train as train_module
    from gan.core import processes

    signum = getattr(signal, name)
    left = []
    monkeypatch.setattr(processes, "leave_the_terminal", lambda: left.append(True))  # (pytest's own terminal)
    previous = signal.getsignal(signum)
    replaced = train_module.interrupt_on_sigterm()
    try:
        assert replaced[signum] is previous  # what `gan train` puts back at the end
        with pytest.raises(train_module.Terminated) as stop:
            signal.raise_signal(signum)
        assert stop.value.signum == signum and left == ([True] if name == "SIGHUP" else [])
    finally:
        for replaced_signum, handler in replaced.items():  # (SIGTERM's and SIGHUP's both: none leaks on)
            signal.signal(replaced_signum, handler)


# ----------------------------------------------------------------------------- the decoded-image cache


def cache_config(tmp_path) -> DataConfig:
    return DataConfig(dataset="folder", root=str(images_folder(tmp_path)), resolution=8, num_workers=0,
                      cache="mmap", cache_dir=str(tmp_path / "cache"))


def test_a_folder_where_a_cache_file_goes_is_named_not_removed(tmp_path):
    config = cache_config(tmp_path)
    dataset = build_dataset(config)
    load_or_build_cache(dataset, {"source": "test"}, tmp_path / "cache")
    (header,) = (tmp_path / "cache").glob("*.json")
    header.unlink()
    header.mkdir()
    (header / "mine.txt").write_text("keep")
    with pytest.raises(cache_module.WriteError, match="not a file: move it away"):
        load_or_build_cache(build_dataset(config), {"source": "test"}, tmp_path / "cache")
    assert (header / "mine.txt").read_text() == "keep"


def test_an_edited_header_and_a_pickle_shaped_array_are_reported_plainly(tmp_path):
    config = cache_config(tmp_path)
    load_or_build_cache(build_dataset(config), {"source": "test"}, tmp_path / "cache")
    (header,) = (tmp_path / "cache").glob("*.json")
    stored = json.loads(header.read_text())
    header.write_text(json.dumps({**stored, "count": 99}))
    with pytest.warns(UserWarning, match="does not describe this data set"):
        load_or_build_cache(build_dataset(config), {"source": "test"}, tmp_path / "cache")
    (array,) = (tmp_path / "cache").glob("*.npy")
    array.write_bytes(b"\x80\x04" + bytes(array.stat().st_size - 2))  # starts like a pickle
    with pytest.warns(UserWarning) as caught:
        load_or_build_cache(build_dataset(config), {"source": "test"}, tmp_path / "cache")
    messages = " ".join(str(warning.message) for warning in caught)
    assert "is not a NumPy array file" in messages and "pickle" not in messages


def test_a_dead_builds_temp_of_another_cache_is_removed_once_quiet(tmp_path):
    config = cache_config(tmp_path)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    finished = subprocess.Popen(["true"])
    finished.wait()
    other = cache_dir / f"{'a' * 20}.npy.{finished.pid}.tmp"
    other.write_bytes(b"half of another data set")
    recent = cache_dir / f"{'b' * 20}.npy.{finished.pid}.tmp"
    recent.write_bytes(b"maybe another machine's build")
    old = 1_000_000_000
    os.utime(other, (old, old))
    load_or_build_cache(build_dataset(config), {"source": "test"}, cache_dir)
    assert not other.exists() and recent.exists()


# ----------------------------------------------------------------------------- resuming SRGAN


def test_srgan_resumes_after_its_initial_generator_run_is_gone(tmp_path):
    data = write_recipe_data(tmp_path / "data")
    cpu = torch.device("cpu")
    first = loop_module.train(tiny_recipe_config("srresnet", data), tmp_path / "srresnet", cpu,
                              progress_stream=sys.stdout)
    srresnet_shape = ["model.generator_args.batch_norm=true", "model.generator_args.residual=false"]

    def srgan(steps: int):
        return tiny_recipe_config("srgan", data, *srresnet_shape, f"model.init_generator={first.run_dir}",
                                  f"train.steps={steps}")

    with pytest.warns(UserWarning, match="RANDOM weights"):
        run = loop_module.train(srgan(2), tmp_path / "srgan", cpu, progress_stream=sys.stdout)
        shutil.rmtree(first.run_dir)
        resumed = loop_module.train(srgan(4), run.run_dir, cpu, resume=True, progress_stream=sys.stdout)
    assert resumed.step == 4


# ----------------------------------------------------------------------------- --resume on what is not a run


def test_resume_says_what_a_folder_is_when_it_is_not_a_run(tmp_path):
    runs = tmp_path / "runs"
    assert train_command(DEMO, *sets(*TINY), "--out", str(runs)).exit_code == 0
    (run,) = [path for path in runs.iterdir() if path.is_dir()]
    parent = train_command("--resume", str(runs))
    assert parent.exit_code == 2 and f"a folder of runs, not a run: give one of them, e.g. --resume {run}" in \
        parent.output, parent.output
    for checkpoint in run.glob("checkpoint-*.pt"):
        checkpoint.rename(run / "best.pt")
    only_best = train_command("--resume", str(run))
    assert only_best.exit_code == 2 and "no checkpoint-*.pt to resume from (its best.pt" in only_best.output
    (run / "config.toml").unlink()
    no_config = train_command("--resume", str(run))
    assert no_config.exit_code == 2 and "has no config.toml and no checkpoint" in no_config.output
    assert len(error_lines(no_config.output)) == 1
    (run / "config.toml").write_text("\n")
    empty = train_command("--resume", str(run))
    assert empty.exit_code == 2 and "no checkpoint-*.pt to resume from" in empty.output, empty.output
    (run / "config.toml").unlink()
    (run / "config.toml").mkdir()
    folder = train_command("--resume", str(run))
    assert folder.exit_code == 2 and "its config.toml is a folder, not the run's config file" in folder.output


def toml_value(text: str, section: str, key: str) -> str:
    """The value text of `key` under [section] in a config.toml."""
    lines = text.split(f"[{section}]\n", 1)[1].splitlines()
    return next(line.split(" = ", 1)[1] for line in lines if line.startswith(f"{key} = "))


def test_a_config_toml_cut_short_or_gone_is_filled_from_the_checkpoint_not_the_defaults(tmp_path):
    run = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY, "train.g_lr=0.0005", "loss.label_smoothing=0.1"), "--run-dir",
                         str(run)).exit_code == 0
    config = run / "config.toml"
    original = config.read_text()
    # cut at a line end, before [loss] and [train]: those settings would be read as defaults
    config.write_text(original[:original.index("[loss]")])
    with pytest.warns(UserWarning, match=r"config.toml' lacks \d+ of the run's settings \(the first: loss.preset\): "
                                          r"cut short or edited; they are taken from '.*checkpoint-00000004.pt'"):
        resumed = train_command("--resume", str(run), *sets("train.steps=6"))
    assert resumed.exit_code == 0, resumed.output
    assert "changed settings: train.steps 4 -> 6" in resumed.output and "g_lr" not in resumed.output
    assert config.read_text() == ("# resumed at step 4 with train.steps 4 -> 6\n"
                                  + original.replace("steps = 4\n", "steps = 6\n", 1))
    # cut inside a value: "g_lr = 0.00" reads as 0, so the last line is taken from the checkpoint too
    original = config.read_text()
    config.write_text(original[:original.index("g_lr = 0.0005") + len("g_lr = 0.00")])
    with pytest.warns(UserWarning, match="its last line, train.g_lr, ends without a line end"):
        resumed = train_command("--resume", str(run), *sets("train.steps=8"))
    assert resumed.exit_code == 0, resumed.output
    assert toml_value(config.read_text(), "train", "g_lr") == "0.0005"
    assert toml_value(config.read_text(), "loss", "label_smoothing") == "0.1"
    # cut where the rest is no TOML at all ("g_lr = ", "g_lr = 0.", '[tra'): it stopped the resume as not valid TOML
    for cut in ("g_lr = ", "g_lr = 0.", "[tra"):
        original = config.read_text()
        at = original.index("g_lr = 0.0005") if cut.startswith("g_lr") else original.index("[train]")
        config.write_text(original[:at + len(cut)])
        with pytest.warns(UserWarning, match=f"its last line, '{re.escape(cut.strip())}', ends without a line end and "
                                             "is not valid TOML, so it is taken from there as well"):
            resumed = train_command("--resume", str(run))
        assert resumed.exit_code == 0, resumed.output
        assert toml_value(config.read_text(), "train", "g_lr") == "0.0005"
    config.write_text(config.read_text().replace("[loss]\n", "[loss]\nbroken = = 1\n"))  # an edit: refused
    assert "not valid TOML" in train_command("--resume", str(run)).output
    config.write_text(config.read_text().replace("broken = = 1\n", ""))
    # gone, or empty: rebuilt whole, also by a resume that has nothing to train
    for damage, said in ((lambda: config.unlink(), "the run's config.toml is missing: its settings are taken from"),
                         (lambda: config.write_text(""), "lacks")):
        damage()
        with pytest.warns(UserWarning, match=said):
            nothing = train_command("--resume", str(run))
        assert nothing.exit_code == 0 and "nothing to do" in nothing.output, nothing.output
        assert config.is_file() and toml_value(config.read_text(), "train", "g_lr") == "0.0005"
    config.write_text("")
    again = train_command(DEMO, *sets(*TINY, "train.g_lr=0.0005", "loss.label_smoothing=0.1", "train.steps=8"),
                          "--run-dir", str(run))
    assert again.exit_code == 0 and "nothing to do" in again.output, again.output
    config.unlink()  # gone, with no checkpoint that loads: nothing holds the run's settings
    for checkpoint in run.glob("checkpoint-*.pt"):
        checkpoint.write_bytes(b"cut")
    assert_one_error_line(train_command("--resume", str(run)), "has no config.toml, and none of its checkpoints "
                          "loads to give the run's settings")


def test_a_resume_whose_first_step_fails_leaves_config_toml_as_it_found_it(tmp_path, monkeypatch):
    run = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY), "--run-dir", str(run)).exit_code == 0
    before = (run / "config.toml").read_bytes()

    def failing_step(*args, **kwargs):
        raise RuntimeError("a kernel refused this shape")

    with monkeypatch.context() as patched:
        patched.setattr(loop_module, "training_step", lambda *args: failing_step)
        failed = train_command("--resume", str(run), *sets("train.steps=6", "train.g_lr=0.001"))
    assert failed.exit_code != 0 and "a kernel refused this shape" in str(failed.exception)
    assert (run / "config.toml").read_bytes() == before  # a plain resume goes on as the run trained
    resumed = train_command("--resume", str(run), *sets("train.steps=6"))
    assert resumed.exit_code == 0 and "g_lr" not in resumed.output, resumed.output


def test_a_new_run_that_fails_in_its_first_step_leaves_no_run_directory(tmp_path, monkeypatch):
    def failing_step(*args, **kwargs):
        raise RuntimeError("a kernel refused this shape")

    monkeypatch.setattr(loop_module, "training_step", lambda *args: failing_step)
    out = tmp_path / "runs"
    result = train_command(DEMO, *sets(*TINY), "--out", str(out))
    assert result.exit_code != 0 and "a kernel refused this shape" in str(result.exception)
    assert not run_folders(out)


def test_a_prebuilt_cache_on_a_read_only_disk_is_only_read(tmp_path, monkeypatch):
    from gan.training import preflight

    folder, cache = images_folder(tmp_path), tmp_path / "cache"
    line = [DEMO, *sets(*TINY, "data.dataset=folder", f"data.root={folder}", "data.cache=mmap",
                        f"data.cache_dir={cache}")]
    assert train_command(*line, "--out", str(tmp_path / "first")).exit_code == 0
    real_check = preflight._require_writable

    def read_only(folder, what):
        if what == "data.cache_dir":
            raise OSError(30, "Read-only file system")
        real_check(folder, what)

    monkeypatch.setattr(preflight, "_require_writable", read_only)
    monkeypatch.setattr(cache_module.os, "utime", lambda *args, **kwargs: (_ for _ in ()).throw(OSError(30, "Read-only")))
    reused = train_command(*line, "--out", str(tmp_path / "second"))
    assert reused.exit_code == 0, reused.output
    other = train_command(*line[:-1], f"data.cache_dir={tmp_path / 'empty'}", "--out", str(tmp_path / "third"))
    assert other.exit_code == 2 and "data.cache_dir" in other.output and "Read-only" in other.output


def test_reference_statistics_on_a_read_only_disk_are_only_read(tmp_path, monkeypatch):
    """A lab's pre-built statistics in a read-only metrics.cache_dir (or a read-only HOME's default one):
    gan train refused the folder before step 1, "cannot be written", though the statistics the run needs
    were all there and gan eval read them; the same folder was accepted as data.cache_dir."""
    from gan.training import preflight

    cache = tmp_path / "shared"
    line = [DEMO, *sets(*TINY, "metrics.every=2", "metrics.names=[\"swd\"]", "metrics.num_samples=16",
                        f"metrics.cache_dir={cache}")]
    assert train_command(*line, "--out", str(tmp_path / "first")).exit_code == 0
    real_check = preflight._require_writable

    def read_only(folder, what):  # (root writes past permission bits: the disk's refusal is played here)
        if what == "metrics.cache_dir":
            raise PermissionError(f"metrics.cache_dir '{folder}' cannot be written: Read-only file system")
        real_check(folder, what)

    monkeypatch.setattr(preflight, "_require_writable", read_only)
    reused = train_command(*line, "--out", str(tmp_path / "second"))
    assert reused.exit_code == 0 and "computing reference statistics" not in reused.output, reused.output
    other = train_command(*line, "--set", "metrics.num_samples=8", "--out", str(tmp_path / "third"))
    assert other.exit_code == 2 and f"  - metrics.cache_dir: metrics.cache_dir '{cache}' cannot be written: Read-only " \
        "file system (it does not hold what this run needs from it yet, which the run would write there)" in \
        other.output, other.output



def test_a_cache_folder_that_can_be_neither_written_nor_read_is_said_so_not_as_a_raw_errno(tmp_path, monkeypatch):
    """Another user's private metrics.cache_dir: preflight's look at the statistics in it raised, and the start was
    refused with "- metrics.cache_dir: [Errno 13] Permission denied: '<its file>'"."""
    import errno

    from gan.training import preflight

    def read_only(folder, what):
        raise PermissionError(f"{what} '{folder}' cannot be written: Permission denied")

    def unreadable():
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "swd-0123.pt"))

    monkeypatch.setattr(preflight, "_require_writable", read_only)
    with pytest.raises(PermissionError) as raised:
        preflight._require_writable_unless(unreadable, tmp_path, "metrics.cache_dir")
    assert str(raised.value) == (f"metrics.cache_dir '{tmp_path}' cannot be written: Permission denied, nor can what "
                                 "it holds be read: Permission denied; set it to a folder of your own")

# ----------------------------------------------------------------------------- --run-dir, second round


def dead_start(folder):
    """What a start that died before its first checkpoint leaves."""
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text("recipe = \"dcgan\"\n")
    (folder / "events.out.tfevents.1.host.2.0").write_bytes(b"")


def test_a_dead_start_in_the_folder_the_command_runs_in_or_behind_a_link_is_refused(tmp_path, monkeypatch):
    dead_start(tmp_path / "here")
    monkeypatch.chdir(tmp_path / "here")
    in_place = train_command(DEMO, *sets(*TINY), "--run-dir", ".")
    assert_one_error_line(in_place, "is the folder this command runs in")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link").symlink_to(tmp_path / "here", target_is_directory=True)
    linked = train_command(DEMO, *sets(*TINY), "--run-dir", "link")
    assert_one_error_line(linked, "is a link to")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["here", "link"]
    assert (tmp_path / "here" / "config.toml").read_text() == "recipe = \"dcgan\"\n"


def test_a_persons_config_in_the_folder_is_not_taken_for_a_dead_start(tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "config.toml").write_text(Path(DEMO).read_text())
    for config in (folder / "config.toml", DEMO):
        result = train_command(str(config), *sets(*TINY), "--run-dir", str(folder))
        assert_one_error_line(result, "nothing in it was touched")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["exp"]
    assert (folder / "config.toml").read_text() == Path(DEMO).read_text()


def test_hidden_files_count_for_nothing_and_strict_is_the_same_run(tmp_path):
    """Nor do Windows Explorer's Thumbs.db and desktop.ini, its .DS_Store on a share (refused as
    "files gan did not write")."""
    folder = tmp_path / "finder"
    folder.mkdir()
    for name in (".DS_Store", "Thumbs.db", "desktop.ini"):
        (folder / name).write_bytes(b"\0")
    assert train_command(DEMO, *sets(*TINY), "--run-dir", str(folder)).exit_code == 0
    assert (folder / "Thumbs.db").is_file() and (folder / "checkpoint-00000004.pt").is_file()
    stricter = train_command(DEMO, *sets(*TINY, "train.steps=6"), "--strict", "--run-dir", str(folder))
    assert stricter.exit_code == 0 and (folder / "checkpoint-00000006.pt").is_file(), stricter.output


def test_the_same_line_continues_with_the_rates_a_rollback_halved(tmp_path, monkeypatch):
    import torch

    poisoned_once = poison_dcgan_step_once(monkeypatch, 3, lambda recipe, metrics: metrics.update(
        {"loss/d": torch.tensor(float("inf"))}))
    folder = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY), "--on-nan", "rollback", "--run-dir", str(folder)).exit_code == 0
    config = folder / "config.toml"
    assert poisoned_once == [3] and "g_lr = 0.0001" in config.read_text()
    result = train_command(DEMO, *sets(*TINY, "train.steps=6"), "--on-nan", "rollback", "--run-dir", str(folder))
    assert result.exit_code == 0 and "rollback halved: g 0.0001, d 0.0001" in result.output, result.output
    assert "g_lr = 0.0001" in config.read_text() and (folder / "checkpoint-00000006.pt").is_file()
    again = train_command(DEMO, *sets(*TINY, "train.steps=8"), "--run-dir", str(folder))  # (the note outlives resumes)
    assert again.exit_code == 0 and "rollback halved" in again.output, again.output


def test_a_line_with_both_rates_doubled_is_another_experiment_not_a_rollback(tmp_path):
    # taken for an --on-nan rollback by the ratio alone: "continuing ... with the learning rates its
    # --on-nan rollback halved", and the doubled rates never ran
    folder = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY, "train.g_lr=1e-4", "train.d_lr=1e-4"), "--run-dir", str(folder)).exit_code == 0
    doubled = train_command(DEMO, *sets(*TINY, "train.g_lr=2e-4", "train.d_lr=2e-4", "train.steps=6"),
                            "--run-dir", str(folder))
    assert_one_error_line(doubled, "holds a run with other settings", "train.g_lr", "train.d_lr")
    assert not (folder / "checkpoint-00000006.pt").exists()


def test_a_second_ctrl_c_in_a_new_runs_first_step_leaves_no_run_directory(tmp_path, monkeypatch):
    def interrupted_step(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop_module, "training_step", lambda *args: interrupted_step)
    out = tmp_path / "runs"
    result = train_command(DEMO, *sets(*TINY), "--out", str(out))
    assert result.exit_code == 130 and not out.exists()  # (the --out folder it made: removed, as it was empty)
    # (it said "checkpoints written before are kept", of a run that had written none)
    assert "stopped by Ctrl-C without saving a checkpoint (none was written before)" in result.output, result.output


def test_a_second_ctrl_c_in_a_resume_names_the_command_that_continues(tmp_path, monkeypatch):
    run = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY), "--run-dir", str(run)).exit_code == 0

    def interrupted_step(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop_module, "training_step", lambda *args: interrupted_step)
    result = train_command("--resume", str(run), *sets("train.steps=8"))
    assert result.exit_code == 130, result.output
    assert f"without saving a checkpoint (continue from the newest kept with: gan train --resume {run})" in \
        result.output, result.output


def test_a_signal_while_the_last_checkpoint_is_written_cuts_nothing_short(tmp_path, monkeypatch):
    import signal

    save = loop_module._save

    def signalled_save(run, step, final=False, **keywords):
        if final:
            signal.raise_signal(signal.SIGTERM)  # the scheduler's stop, as the finished run writes its checkpoint
        return save(run, step, final, **keywords)

    monkeypatch.setattr(loop_module, "_save", signalled_save)
    result = train_command(DEMO, *sets(*TINY), "--run-dir", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert "SIGTERM came after the last step" in result.output and "done: 4 steps" in result.output
    assert "stopped by" not in result.output


@pytest.mark.parametrize("during", ["checkpoint", "previews"])
def test_a_signal_during_a_steps_side_tasks_or_checkpoint_trains_no_further_step(tmp_path, monkeypatch, during):
    # The stop was read just after the step, before its outputs and checkpoint: one that came during
    # them trained another step and wrote a second checkpoint, inside a preemption's grace period.
    import signal

    from gan.core.checkpoint import list_checkpoints

    save, previews = loop_module._save, loop_module._write_previews

    def signalled_save(run, step, final=False, **keywords):
        if step == 2 and during == "checkpoint":
            signal.raise_signal(signal.SIGTERM)
        return save(run, step, final, **keywords)

    def signalled_previews(recipe, run_dir, step):
        if step == 3 and during == "previews":
            signal.raise_signal(signal.SIGTERM)
        return previews(recipe, run_dir, step)

    monkeypatch.setattr(loop_module, "_save", signalled_save)
    monkeypatch.setattr(loop_module, "_write_previews", signalled_previews)
    run = tmp_path / "run"
    result = train_command(DEMO, *sets(*TINY, "train.steps=8", "log.image_every=1"), "--run-dir", str(run))
    assert result.exit_code == 143, result.output
    stopped_at = 2 if during == "checkpoint" else 3  # (TINY checkpoints every 2 steps; the stop writes its own)
    assert list_checkpoints(run)[-1].name == f"checkpoint-{stopped_at:08d}.pt", result.output


@pytest.mark.parametrize("code, fix", [(errno.EROFS, "remount its disk writable"),
                                       (errno.EACCES, "make it writable (chmod -R u+w")])
def test_a_resume_that_cannot_write_its_run_directory_says_how_to_go_on(tmp_path, monkeypatch, code, fix):
    from gan.core.files import RunLock

    run = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY), "--run-dir", str(run)).exit_code == 0

    def refused(self):  # (root writes past permission bits, so the disk's refusal is played here)
        raise OSError(code, os.strerror(code), str(self.run_dir / self.lock_name))

    monkeypatch.setattr(RunLock, "__enter__", refused)
    result = train_command("--resume", str(run), *sets("train.steps=6"))
    assert_one_error_line(result, str(run / ".lock"), fix, "copy the run directory to a disk you may write to and "
                          "resume the copy: gan train --resume COPY")
    assert "choose a folder on another" not in result.output
    # the same --run-dir line resumes it too, and its look at the lock is what the disk refuses
    monkeypatch.setattr(RunLock, "locked_handle", refused)
    result = train_command(DEMO, *sets(*TINY, "train.steps=6"), "--run-dir", str(run))
    assert_one_error_line(result, str(run / ".lock"), fix, "gan train --resume COPY")
    assert "choose a folder on another" not in result.output


def test_a_resume_of_another_users_run_says_to_copy_it_not_to_chmod_it(tmp_path, monkeypatch):
    """A run made by another user: "make it writable (chmod -R u+w ...)", which only its owner can do."""
    from gan.core.files import RunLock

    run = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY), "--run-dir", str(run)).exit_code == 0

    def refused(self):  # (root writes past permission bits, so the refusal is played here)
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(self.run_dir / self.lock_name))

    monkeypatch.setattr(RunLock, "__enter__", refused)
    owner = run.stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)  # (this process, another user than the run's)
    line = assert_one_error_line(train_command("--resume", str(run), *sets("train.steps=6")), str(run / ".lock"),
                                 "which belongs to another user (", f"copy it (cp -r {run} COPY) and resume the "
                                 "copy: gan train --resume COPY, or ask its owner")
    assert "chmod" not in line


def test_training_says_when_its_metrics_use_fewer_images_than_asked(tmp_path):
    result = train_command(DEMO, *sets(*TINY, "data.synthetic_size=16", "metrics.every=2", "metrics.num_samples=32",
                                       'metrics.names=["swd"]', f"metrics.cache_dir={tmp_path / 'c'}"),
                           "--out", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    assert "(16 images: all the data set holds, not the 32 of metrics.num_samples)" in result.output
    # a folder of more, of which data.max_images keeps 16: it is the key, not the folder, that holds them back
    faces = tmp_path / "faces"
    faces.mkdir()
    for index in range(20):
        random_rgb((32, 32), index).save(faces / f"{index}.png")
    result = train_command(DEMO, *sets(*TINY, "data.dataset=folder", f"data.root={faces}", "data.max_images=16",
                                       "metrics.every=2", "metrics.num_samples=32", 'metrics.names=["swd"]',
                                       f"metrics.cache_dir={tmp_path / 'c'}"), "--out", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    assert "(16 images: all that data.max_images = 16 keeps, not the 32 of metrics.num_samples)" in result.output


def test_a_resume_warns_of_its_config_once_with_the_values_it_runs_with(tmp_path):
    import warnings

    run = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY, "train.steps=3", "train.warmup_steps=100"), "--run-dir",
                         str(run)).exit_code == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train_command("--resume", str(run), *sets("train.steps=5"))
    assert result.exit_code == 0, result.output
    said = [str(w.message) for w in caught if "train.warmup_steps = 100" in str(w.message)]
    assert len(said) == 1 and "train.steps = 5" in said[0], said  # not also the run's old 3


def test_a_resume_that_turns_the_ema_off_says_it_drops_the_generator_that_sampling_uses(tmp_path):
    # Said only as "train.ema_decay 0.995 -> 0.0": the EMA weights vanished as old checkpoints were pruned.
    folder = tmp_path / "run"
    assert train_command(DEMO, *sets(*TINY), "--run-dir", str(folder)).exit_code == 0
    with pytest.warns(UserWarning, match=r"train.ema_decay = 0 on this resume drops the EMA generator, the one gan "
                                         r"sample, eval and export use: .* checkpoints of step 4 and before"):
        assert train_command("--resume", str(folder), *sets("train.steps=6", "train.ema_decay=0")).exit_code == 0


def test_a_resume_that_turns_the_adversarial_loss_off_says_it_drops_the_discriminator(tmp_path):
    """pix2pix's L1-alone setting on a resume dropped the trained discriminator from every later
    checkpoint without a word; turning it on again was refused as a checkpoint "from another version
    of gan", the run's config and this one "building it alike"."""
    from conftest import TINY_PIX2PIX

    data = write_recipe_data(tmp_path / "data")
    folder = tmp_path / "run"
    config = str(REPO / "experiments" / "pix2pix_facades.toml")
    assert train_command(config, *sets(*TINY_PIX2PIX, f"data.root={data['paired']}"), "--run-dir",
                         str(folder), "--device", "cpu").exit_code == 0
    with pytest.warns(UserWarning, match=r"loss.adversarial_weight = 0 on this resume drops the discriminator: "
                                         r"checkpoints from here on keep the generator alone, .* of step 2 and before"):
        off = train_command("--resume", str(folder), *sets("train.steps=4", "loss.adversarial_weight=0"))
    assert off.exit_code == 0, off.output
    again = train_command("--resume", str(folder), *sets("train.steps=6", "loss.adversarial_weight=1"))
    assert_one_error_line(again, "the checkpoint has no network 'discriminator'. The run was trained with "
                                 "loss.adversarial_weight = 0.0; this config has loss.adversarial_weight = 1.0")
    # dcgan ignores the key (said as such): a refusal of another change does not name it
    dcgan = tmp_path / "dcgan"
    assert train_command(DEMO, *sets(*TINY), "--run-dir", str(dcgan)).exit_code == 0
    other = train_command("--resume", str(dcgan), *sets("train.steps=6", "loss.adversarial_weight=0",
                                                        "model.discriminator_args.channels=16"))
    line = assert_one_error_line(other, "model.discriminator_args.channels = 8")
    assert "adversarial_weight" not in line, line


def test_a_signal_as_the_finished_runs_event_file_closes_cuts_nothing_short(tmp_path, monkeypatch):
    """A Ctrl-C while TensorBoard's writer flushed, after the last checkpoint, said 'stopped by Ctrl-C
    without saving a checkpoint' and exited 130: a sweep counted the finished run as failed."""
    import signal

    from gan.training.event_log import EventLog

    close = EventLog.close

    def interrupted_close(self):
        signal.raise_signal(signal.SIGINT)
        close(self)

    monkeypatch.setattr(EventLog, "close", interrupted_close)
    result = train_command(DEMO, *sets(*TINY), "--run-dir", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert "SIGINT came after the last checkpoint" in result.output and "done: 4 steps" in result.output
    assert "stopped by" not in result.output


def test_a_signal_as_the_finished_runs_loader_workers_shut_down_cuts_nothing_short(tmp_path, monkeypatch):
    """The shutdown of the loader workers came after the late stop's cover: "Exception ignored in
    __del__ ... Terminated: SIGTERM", and the workers' shutdown cut short."""
    import signal

    batches = loop_module.training_batches

    class SignalledAtItsEnd:
        def __init__(self, stream):
            self.stream = stream

        def __iter__(self):
            return self

        def __next__(self):
            return next(self.stream)

        def __del__(self):
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(loop_module, "training_batches", lambda *args, **kwargs: SignalledAtItsEnd(
        batches(*args, **kwargs)))
    result = train_command(DEMO, *sets(*TINY), "--run-dir", str(tmp_path / "run"))
    assert result.exit_code == 0 and "SIGTERM came after the last checkpoint" in result.output, result.output
    assert "Traceback" not in result.output and "Exception ignored" not in result.output


def test_a_relative_data_root_read_from_another_folder_on_resume_is_named(tmp_path, monkeypatch):
    """`data.root = "imgs"` resumed from another working folder trained on that folder's imgs/ with a
    warning that the data differ, and nothing to say why."""
    for place, offset in (("first", 0), ("second", 100)):
        (tmp_path / place / "imgs").mkdir(parents=True)
        for index in range(8):
            random_rgb((32, 32), offset + index).save(tmp_path / place / "imgs" / f"{place}{index}.png")
    run = tmp_path / "run"
    monkeypatch.chdir(tmp_path / "first")
    result = train_command(DEMO, *sets(*TINY, "data.dataset=folder", "data.root=imgs", "train.steps=2"),
                           "--run-dir", str(run))
    assert result.exit_code == 0, result.output
    monkeypatch.chdir(tmp_path / "second")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train_command("--resume", str(run), *sets("train.steps=3"))
    assert result.exit_code == 0, result.output
    said = " ".join(str(warning.message) for warning in caught)
    assert (f"it read data.root '{tmp_path / 'first' / 'imgs'}', and now reads '{tmp_path / 'second' / 'imgs'}' "
            "(data.root = 'imgs' is relative, read from the folder gan runs in") in said, said
    # the same folder spelled another way is the same run (it was refused as "other settings")
    other = tmp_path / "other"
    for root, steps in (("imgs", 2), ("./imgs/", 3), (str(tmp_path / "second" / "imgs"), 4)):
        result = train_command(DEMO, *sets(*TINY, "data.dataset=folder", f"data.root={root}", f"train.steps={steps}"),
                               "--run-dir", str(other))
        assert result.exit_code == 0, result.output


def test_a_moved_milestone_is_named_as_the_cause_of_a_step_schedules_jump():
    """It said "train.lr_schedule = 'step' ends at the new train.steps", which had not changed."""
    from gan.commands.train import schedule_jumps
    from gan.core.config import config_to_dict
    from gan.training.resolve import load_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the EMA's warm-up, of no matter here)
        before, after = (load_config(None, ["train.lr_schedule=step", "train.steps=1000", f"train.lr_milestones=[{at}]",
                                            "train.lr_gamma=0.1"]) for at in (600, 200))
    assert schedule_jumps(config_to_dict(before), 300, after) == [
        "the learning rates fall from 1x to 0.1x of their base (train.lr_milestones = [200] and train.lr_gamma = 0.1 "
        "now, after [600] and 0.1)"]


def test_a_stop_while_torch_is_imported_is_one_line_though_the_modules_it_left_fail(tmp_path, monkeypatch, capsys):
    # A Ctrl-C inside torchvision's import left half-imported modules (sympy), and the report of the
    # stop imported the training loop again: AttributeError, two tracebacks, exit 1
    import sys

    from gan.commands.train import _report_failure, _Start
    from gan.core.distributed import SINGLE_PROCESS

    monkeypatch.setitem(sys.modules, "gan.training.loop", None)  # (importing it fails, as after such a stop)
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint-00000004.pt").write_bytes(b"")
    for run_dir, said in ((None, "(none was written before)"),
                          (run, f"(continue from the newest kept with: gan train --resume {run})")):
        with pytest.raises(SystemExit) as stopped:
            _report_failure(_Start(run_dir=run_dir, named_dir=False, resuming=True, group=SINGLE_PROCESS),
                            KeyboardInterrupt())
        assert stopped.value.code == 130
        assert capsys.readouterr().err == f"error: stopped by Ctrl-C without saving a checkpoint {said}\n"


def test_resume_of_a_start_killed_as_it_wrote_its_config_says_how_to_start_it_again(tmp_path):
    # a kill -9 during the first config.toml write left its lock and temp: "not a run directory gan made"
    import os
    import subprocess
    import sys

    from gan.core.files import LOCK_NAME, temp_name

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_NAME).write_text("")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    temp = temp_name(folder / "config.toml").name.replace(f".{os.getpid()}.", f".{int(dead.stdout)}.")
    (folder / temp).write_text("recipe = ")  # (of a writer gone)
    result = train_command("--resume", str(folder))
    assert result.exit_code == 2 and len(error_lines(result.output)) == 1, result.output
    assert f"stopped before it wrote its config.toml: there is nothing to resume; start it again with gan train " \
        f"CONFIG --run-dir {folder}, which sets this one aside" in result.output
    started = train_command(DEMO, *sets(*TINY), "--run-dir", str(folder))
    assert started.exit_code == 0 and (tmp_path / "run.abandoned-0").is_dir(), started.output
