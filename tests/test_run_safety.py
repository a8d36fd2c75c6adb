"""A run's progress is never lost to what surrounds its steps: a checkpoint's name that lies,
a folder missing at the first validation, a side task that fails, a stale lock after kill -9,
a malformed best record."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import (
    REPO,
    TINY,
    damage_past_the_header,
    random_rgb,
    run_folders,
    tiny_config,
    tiny_recipe_config,
    write_recipe_data,
)
from torch import nn

from gan.commands.main import main
from gan.core.checkpoint import (
    BEST_RECORD,
    FORMAT,
    BestCheckpoint,
    CheckpointError,
    checkpoint_path,
    checkpoints_by_content,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    resolve_checkpoint,
    save_checkpoint,
)
from gan.core.files import WriteError, write_atomically
from gan.core.registry import ConfigError
from gan.recipes.pix2pix import Pix2PixRecipe
from gan.training import loop as train_module
from gan.training import records as records_module
from gan.training.errors import SideTaskError
from gan.training.loop import train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def recipe_data(tmp_path_factory):
    return write_recipe_data(tmp_path_factory.mktemp("data"))


# ----------------------------------------------------------------------------- names that lie


def test_a_checkpoint_named_for_another_step_is_ordered_by_the_step_it_holds(tmp_path, capsys):
    # A copy of step 4 named checkpoint-00000100.pt was trusted: the resume started at step 4, and
    # pruning then deleted the real newest checkpoints.
    common = ("train.checkpoint_every=2", "train.keep_checkpoints=2")
    run_dir = train(tiny_config(*common, "train.steps=6"), tmp_path / "run", CPU).run_dir
    shutil.copy(checkpoint_path(run_dir, 4), checkpoint_path(run_dir, 100))
    with pytest.warns(UserWarning, match="holds step 4, not the 100 of its name"):
        assert resolve_checkpoint(run_dir) == checkpoint_path(run_dir, 6)
        resumed = train(tiny_config(*common, "train.steps=10"), run_dir, CPU, resume=True)
    assert "at step 6" in capsys.readouterr().err and resumed.step == 10
    # The two newest by content are kept; the misnamed old copy went with the other old ones.
    assert [(step, path.name) for step, path in checkpoints_by_content(run_dir)] == [
        (8, "checkpoint-00000008.pt"), (10, "checkpoint-00000010.pt")]
    # a copy holding the newest step under a later name does not win the tie: the run's own file does
    shutil.copy(checkpoint_path(run_dir, 10), checkpoint_path(run_dir, 99))
    with pytest.warns(UserWarning, match="holds step 10, not the 99 of its name"):
        assert resolve_checkpoint(run_dir) == checkpoint_path(run_dir, 10)


def test_gan_eval_results_and_grids_of_steps_a_resume_trains_again_are_set_aside(tmp_path, capsys):
    # after a fall-back past a lost checkpoint (or a rollback), metrics-00000004.json stayed under
    # its name and claimed to score the new checkpoint-00000004.pt
    common = ("train.checkpoint_every=2", "train.keep_checkpoints=5")
    run_dir = train(tiny_config(*common, "train.steps=4"), tmp_path / "run", CPU).run_dir
    results = ["metrics-00000002.json", "metrics-00000004.json", "metrics-00000004-live.json",
               "eval-val-00000004.csv", "eval-val-00000004.json", "eval-notes.txt"]
    for name in results:
        (run_dir / name).write_text("old\n")
    (run_dir / "metrics-00000004.discarded.json").write_text("set aside before\n")
    checkpoint_path(run_dir, 4).unlink()  # lost: the resume starts from step 2
    (run_dir / "samples" / "00000004-generator.png").write_bytes(b"another branch's grid")
    train(tiny_config(*common, "train.steps=4"), run_dir, CPU, resume=True)
    said = capsys.readouterr().err
    assert "gan eval results of steps past 2, which this resume trains again, set aside as <name>.discarded: " \
           "eval-val-00000004.csv, eval-val-00000004.json, metrics-00000004-live.json, metrics-00000004.json" in said
    assert "preview grids of steps past 2, which this resume trains again, set aside" in said
    kept = sorted(path.name for path in run_dir.iterdir() if "metrics-" in path.name or "eval-" in path.name)
    assert kept == ["eval-notes.txt", "eval-val-00000004.discarded.csv", "eval-val-00000004.discarded.json",
                    "metrics-00000002.json", "metrics-00000004-live.discarded.json", "metrics-00000004.discarded-1.json",
                    "metrics-00000004.discarded.json"]
    assert (run_dir / "metrics-00000004.discarded.json").read_text() == "set aside before\n"
    # the grids of step 4 are the new run's: those of the lost branch were set aside first, and those
    # the exact resume wrote again byte for byte dropped (each kill -9 and resume added a copy)
    grids = sorted(path.name for path in (run_dir / "samples").iterdir())
    assert "00000004-generator.discarded.png" in grids and "00000004-generator.png" in grids, grids
    assert "00000004-generator_ema.png" in grids and "00000004-generator_ema.discarded.png" not in grids, grids
    assert (run_dir / "samples" / "00000004-generator.discarded.png").read_bytes() == b"another branch's grid"


def test_records_of_steps_past_the_eight_digits_of_their_names_are_set_aside_too(tmp_path):
    # past step 99,999,999 the names grow a digit: they were left under their names by a resume and
    # by a failed start's clean-up
    from gan.training.records import set_aside_records_after
    from gan.training.run_dir import discard_start

    (tmp_path / "samples").mkdir()
    names = ["metrics-100000006.json", "eval-val-100000006.csv", "samples/100000006-generator.png",
             "metrics-99999998.json", "samples/99999998-generator.png"]
    for name in names:
        (tmp_path / name).write_text("old\n")
    said = []
    set_aside_records_after(tmp_path, 100000004, said.append)
    assert sorted(path.name for path in tmp_path.rglob("*") if path.is_file()) == [
        "100000006-generator.discarded.png", "99999998-generator.png", "eval-val-100000006.discarded.csv",
        "metrics-100000006.discarded.json", "metrics-99999998.json"], said
    (tmp_path / "samples" / "100000008-generator.png").write_text("failed start\n")
    (tmp_path / "samples" / "1-notes.png").write_text("a person's\n")
    discard_start(tmp_path)
    assert sorted(path.name for path in (tmp_path / "samples").iterdir()) == ["1-notes.png", "100000006-generator.discarded.png"]


def test_a_failed_starts_clean_up_removes_only_the_files_the_start_wrote(tmp_path):
    """The clean-up removed config.toml, event files and preview grids by name: a person's config.toml
    in the folder was deleted with the failed start's files."""
    from gan.training.run_dir import discard_start, start_outputs

    (tmp_path / "samples").mkdir()
    for name in ("config.toml", "events.out.tfevents.1.host.1.0", "samples/00000001-generator.png"):
        (tmp_path / name).write_text("there before\n")
    found = start_outputs(tmp_path)
    for name in ("events.out.tfevents.2.host.2.0", "samples/00000001-generator_ema.png"):
        (tmp_path / name).write_text("the failed start's\n")
    discard_start(tmp_path, found)
    assert sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file()) == [
        "config.toml", "events.out.tfevents.1.host.1.0", "samples/00000001-generator.png"]


@pytest.mark.parametrize("command", [["sample", "--n", "2", "--out", "s.png"], ["eval", "--metrics", "swd", "--n", "2"]])
def test_sample_of_a_run_whose_newest_checkpoint_is_damaged_names_the_one_before(tmp_path, command):
    # the error named the damaged file alone, while gan train --resume falls back to the one before (gan
    # eval's still did)
    run_dir = train(tiny_config("train.checkpoint_every=2", "train.steps=4"), tmp_path / "run", CPU).run_dir
    newest = checkpoint_path(run_dir, 4)
    newest.write_bytes(newest.read_bytes()[:300])
    args = [command[0], str(run_dir), *[str(tmp_path / arg) if arg.endswith(".png") else arg for arg in command[1:]]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert (f"give an earlier checkpoint of the run instead, e.g. '{checkpoint_path(run_dir, 2)}' (gan train "
            "--resume falls back to it)") in " ".join(result.output.split())


def test_a_folder_named_like_a_checkpoint_is_warned_of_not_passed_over_in_silence(tmp_path):
    save_checkpoint({"format": FORMAT, "step": 2}, checkpoint_path(tmp_path, 2))
    checkpoint_path(tmp_path, 4).mkdir()  # (say, a checkpoint unpacked by hand)
    with pytest.warns(UserWarning, match=r"checkpoint-00000004.pt' is a folder named like a checkpoint: it is "
                                         "passed over"):
        assert checkpoints_by_content(tmp_path) == [(2, checkpoint_path(tmp_path, 2))]


def test_pruning_never_deletes_a_checkpoint_newer_than_the_one_written(tmp_path):
    for name_step, held in ((2, 50), (4, 4), (6, 6)):  # the file named 2 holds step 50
        save_checkpoint({"format": FORMAT, "step": held}, checkpoint_path(tmp_path, name_step))
    with pytest.warns(UserWarning, match="holds step 50"):
        prune_checkpoints(tmp_path, keep=1, written=checkpoint_path(tmp_path, 6))
    assert [path.name for path in list_checkpoints(tmp_path)] == ["checkpoint-00000002.pt", "checkpoint-00000006.pt"]
    assert load_checkpoint(checkpoint_path(tmp_path, 2))["step"] == 50


def test_pruning_counts_and_deletes_only_files_that_load_as_checkpoints(tmp_path):
    # A cut-short checkpoint took a retention slot, so a good one was deleted in its place; a
    # foreign file named like an old checkpoint was deleted as if it were one.
    for step in (2, 4, 6, 8):
        save_checkpoint({"format": FORMAT, "step": step}, checkpoint_path(tmp_path, step))
    damaged = checkpoint_path(tmp_path, 6)
    damaged.write_bytes(damaged.read_bytes()[:100])
    foreign = checkpoint_path(tmp_path, 1)
    torch.save({"state_dict": {}}, foreign)
    with pytest.warns(UserWarning, match=r"checkpoint-00000006.pt' does not load as a checkpoint: it is not "
                                         "counted among the 2 kept, nor deleted"):
        prune_checkpoints(tmp_path, keep=2, written=checkpoint_path(tmp_path, 8), said=(said := set()))
    assert [path.name for path in list_checkpoints(tmp_path)] == [
        "checkpoint-00000001.pt", "checkpoint-00000004.pt", "checkpoint-00000006.pt", "checkpoint-00000008.pt"]
    # said once a run: it was said again at every save (37 times in 111 steps of checkpoint_every = 3)
    save_checkpoint({"format": FORMAT, "step": 10}, checkpoint_path(tmp_path, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prune_checkpoints(tmp_path, keep=2, written=checkpoint_path(tmp_path, 10), said=said)
    assert [path.name for path in list_checkpoints(tmp_path)] == [
        "checkpoint-00000001.pt", "checkpoint-00000006.pt", "checkpoint-00000008.pt", "checkpoint-00000010.pt"]


def test_pruning_does_not_count_a_checkpoint_that_fails_its_checksum(tmp_path):
    # A flipped bit in a tensor's bytes still reads the step (the resume fell back past it), so it
    # took a retention slot and the good checkpoint before it was deleted.
    for step in (3, 6, 7, 9):
        save_checkpoint({"format": FORMAT, "step": step, "weights": torch.arange(4096.0)}, checkpoint_path(tmp_path, step))
    flipped = checkpoint_path(tmp_path, 7)
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x10
    flipped.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"checkpoint-00000007.pt' is corrupt \(its record 'data/\d+' fails its "
                                         r"checksum\): it is not counted among the 2 kept, and goes with the older ones"):
        prune_checkpoints(tmp_path, keep=2, written=checkpoint_path(tmp_path, 9), said=(said := set()))
    assert [path.name for path in list_checkpoints(tmp_path)] == [
        "checkpoint-00000006.pt", "checkpoint-00000007.pt", "checkpoint-00000009.pt"]
    with warnings.catch_warnings():  # (said once a run, and still not counted)
        warnings.simplefilter("error")
        prune_checkpoints(tmp_path, keep=2, written=checkpoint_path(tmp_path, 9), said=said)
    assert [path.name for path in list_checkpoints(tmp_path)] == [
        "checkpoint-00000006.pt", "checkpoint-00000007.pt", "checkpoint-00000009.pt"]
    with pytest.raises(CheckpointError, match=r"its record 'data/\d+' fails its checksum"):  # (not the temp name)
        load_checkpoint(flipped)


def test_a_malformed_best_record_is_reported_and_replaced(tmp_path):
    # A NaN in best.json was never beaten, so best.pt stayed frozen.
    for record in ('{"metric": "val/psnr", "value": NaN, "step": 3}', '{"metric": "val/psnr", "value": "high"}',
                   "[1, 2]", '{"metric": "val/psnr", "val'):
        (tmp_path / BEST_RECORD).write_text(record)
        with pytest.warns(UserWarning, match="malformed"):
            best = BestCheckpoint(tmp_path, "val/psnr", "higher")
        assert best.value is None and best.improves(1.0)


# ----------------------------------------------------------------------------- before step 1


def test_a_run_whose_validation_folder_is_missing_stops_before_step_1(tmp_path, monkeypatch):
    # Without data.val_root, sr_pix2pix_x4 trained until its first validation, then stopped
    # without a checkpoint: every step was lost.
    monkeypatch.chdir(tmp_path)  # datasets/sr/Set5, the config's val_root, is not there
    train_folder = tmp_path / "hr"
    train_folder.mkdir()
    for index in range(3):
        random_rgb((64, 64), seed=index).save(train_folder / f"{index}.png")
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "sr_pix2pix_x4.toml"),
                                       "--set", f"data.root={train_folder}", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "this run could not finish, so it does not start" in result.output
    assert "datasets/sr/Set5" in result.output and "data.val_root" in result.output
    assert "step 1/" not in result.output and not list((tmp_path / "runs").glob("*/checkpoint-*.pt"))
    assert not run_folders(tmp_path / "runs")  # no run directory left behind


def test_every_problem_is_listed_at_once(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    (tmp_path / "faces").mkdir()
    for index in range(4):
        random_rgb((40, 40), seed=index).save(tmp_path / "faces" / f"{index}.png")
    config = tiny_config("data.dataset=folder", f"data.root={tmp_path / 'faces'}", "metrics.every=2", f"metrics.root={tmp_path / 'held-out'}",
                         f"metrics.cache_dir={blocker / 'cache'}", "metrics.names=[\"swd\"]")
    with pytest.raises(ConfigError) as error:
        train(config, tmp_path / "run", CPU)
    lines = str(error.value).splitlines()
    assert lines[0] == "this run could not finish, so it does not start:"
    assert any(line.startswith("  - metrics.root:") and "held-out" in line for line in lines)
    assert any(line.startswith("  - metrics.cache_dir:") and "cannot be written" in line for line in lines)
    blocker_cache = tiny_config("data.dataset=folder", f"data.root={tmp_path / 'faces'}", "data.cache=mmap",
                                f"data.cache_dir={blocker}")  # the file itself: "File exists", it said
    with pytest.raises(ConfigError, match=r"data.cache_dir '.*a-file' is a file, not a folder: move it, or name "
                                          r"another folder"):
        train(blocker_cache, tmp_path / "run2", CPU)
    device_cache = tiny_config("data.dataset=folder", f"data.root={tmp_path / 'faces'}", "data.cache=mmap",
                               "data.cache_dir=/dev/null")  # ("is a file", it said)
    with pytest.raises(ConfigError, match=r"data.cache_dir '/dev/null' is a device, pipe or socket, not a folder"):
        train(device_cache, tmp_path / "run3", CPU)
    assert not list_checkpoints(tmp_path / "run")


def test_a_refused_run_leaves_no_cache_folder_its_probe_made(tmp_path):
    """The write probes of data.cache_dir and metrics.cache_dir made their folders, parents and all
    (mkdir -p), and a run refused for another problem (a missing metrics.root) left them behind."""
    (tmp_path / "faces").mkdir()
    for index in range(4):
        random_rgb((40, 40), seed=index).save(tmp_path / "faces" / f"{index}.png")
    config = tiny_config("data.dataset=folder", f"data.root={tmp_path / 'faces'}", "data.cache=mmap",
                         f"data.cache_dir={tmp_path / 'decoded' / 'a' / 'b'}", "metrics.every=2",
                         f"metrics.root={tmp_path / 'held-out'}", f"metrics.cache_dir={tmp_path / 'stats' / 'c'}",
                         "metrics.names=[\"swd\"]")
    with pytest.raises(ConfigError, match="metrics.root: image folder '.*held-out' does not exist"):
        train(config, tmp_path / "run", CPU)
    assert not (tmp_path / "decoded").exists() and not (tmp_path / "stats").exists()


def test_a_file_named_samples_in_the_run_directory_stops_the_run_before_step_1(tmp_path):
    # it failed at the first preview with a raw FileExistsError (a resume's run directory: a new run's
    # folder holding files gan did not write is refused whole, as gan train --run-dir refuses it)
    run_dir = train(tiny_config("train.steps=2"), tmp_path / "run", CPU).run_dir
    shutil.rmtree(run_dir / "samples")
    (run_dir / "samples").write_text("notes")
    with pytest.raises(ConfigError, match=r"samples/: '.*run/samples' is a file where the run keeps its preview "
                                          r"grids in a folder: move it out of the run directory"):
        train(tiny_config(), run_dir, CPU, resume=True)
    assert (run_dir / "samples").read_text() == "notes"


def test_a_folder_named_like_a_run_record_stops_the_run_before_step_1(tmp_path):
    # it trained until its first evaluation, then failed with IsADirectoryError (a resume's run directory,
    # as above)
    run_dir = train(tiny_config("train.steps=2"), tmp_path / "run", CPU).run_dir
    (run_dir / "metrics.jsonl").mkdir()
    (run_dir / "best.json").mkdir()
    (run_dir / "checkpoint-00000004.pt").mkdir()  # (found as the last step's checkpoint failed to write)
    written = sorted(path.name for path in [*run_dir.iterdir(), *(run_dir / "samples").iterdir()])
    with pytest.raises(ConfigError) as error:
        train(tiny_config("metrics.every=2", "metrics.num_samples=16", 'metrics.names=["swd"]',
                          "train.keep_best=swd/mean"), run_dir, CPU, resume=True)
    message = str(error.value)
    assert "metrics.jsonl: '" in message and "is a folder where the run keeps its metrics' rows in a file" in message
    assert "best.json: '" in message and "its best checkpoint's record" in message
    assert "checkpoint-00000004.pt: '" in message and "keeps a checkpoint in a file" in message
    assert sorted(path.name for path in [*run_dir.iterdir(), *(run_dir / "samples").iterdir()]) == written


def test_a_validation_folder_whose_images_are_all_truncated_stops_the_run_before_step_1(tmp_path):
    # Files damaged past their header pass the folder scan: the run trained until its first preview,
    # then stopped. (Files cut short are found by the scan.)
    data = write_recipe_data(tmp_path)
    for path in (data["paired"] / "val").iterdir():
        damage_past_the_header(path)
    with pytest.warns(UserWarning, match="truncated|broken data stream"), \
            pytest.raises(ConfigError, match=r"the evaluation images \(previews, validation\): none of the 2 images "
                                             r"under '.*paired/val' could be decoded"):
        train(tiny_recipe_config("pix2pix", data, "log.image_every=10", "log.eval_every=10",
                                 "train.steps=10"), tmp_path / "run", CPU)
    assert not list_checkpoints(tmp_path / "run")


@pytest.mark.parametrize("recipe, setting, why", [
    ("srresnet", "data.val_root=", "data.val_root is empty"),
    ("pix2pix", "data.val_split=", "data.val_split is empty"),
    ("pix2pix", "data.val_split=train", "data.val_split is data.split"),
    ("cyclegan", "data.val_split=train", "data.val_split is data.split"),
])
def test_validation_on_the_training_images_is_said_before_step_1(tmp_path, recipe, setting, why):
    # val/psnr and best.pt then measured fit to the training images, without a word
    data = write_recipe_data(tmp_path)
    extra = ["log.eval_every=2"] if recipe == "cyclegan" else []
    with pytest.warns(UserWarning, match=rf"validation scores the images this run trains on \({why}\)"):
        train(tiny_recipe_config(recipe, data, setting, "train.steps=1", *extra), tmp_path / "run", CPU)


@pytest.mark.parametrize("recipe, nested, settings, why", [
    # the shared data's layout, sr/{T91,Set5}: data.root at sr/ trained on Set5 too
    ("srresnet", ("hr", "hr/Set5"), ["data.root={hr}", "data.val_root={hr}/Set5"],
     "data.val_root, '{hr}/Set5', is inside data.root, '{hr}'"),
    # A|B images with one split folder beside them: "all" read val/ with the rest
    ("pix2pix", ("paired/val", "paired/train/val"), ["data.root={paired}/train", "data.split=all",
                                                      "data.val_split=val"],
     "data.val_split = 'val' (data.root/val), '{paired}/train/val', is inside data.split = 'all' (data.root), "
     "'{paired}/train'"),
    ("cyclegan", None, ["data.a_root={unpaired}/testA", "data.b_root={unpaired}/testB", "data.val_split=test",
                        "log.eval_every=2"],
     "the validation folder of domain A is the training folder of domain A, '{unpaired}/testA'"),
])
def test_validation_folders_inside_the_training_folders_are_said_before_step_1(tmp_path, recipe, nested, settings,
                                                                              why):
    # Training reads its folder with the subfolders: the validation images were trained on, without a word
    data = write_recipe_data(tmp_path)
    folders = {name: str(path) for name, path in data.items()}
    if nested:
        shutil.copytree(tmp_path / nested[0], tmp_path / nested[1])
    with pytest.warns(UserWarning, match=re.escape(f"validation scores the images this run trains on "
                                                   f"({why.format(**folders)})")):
        train(tiny_recipe_config(recipe, data, *[setting.format(**folders) for setting in settings],
                                 "train.steps=1"), tmp_path / "run", CPU)


def test_held_out_validation_images_get_no_such_warning(tmp_path):
    data = write_recipe_data(tmp_path)
    held_out = tmp_path / "held_out"
    shutil.copytree(data["hr"], held_out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(tiny_recipe_config("srresnet", data, f"data.val_root={held_out}", "train.steps=1"), tmp_path / "run", CPU)
    assert not [str(w.message) for w in caught if "validation scores" in str(w.message)]


# ----------------------------------------------------------------------------- side tasks


def fail_on_call(monkeypatch, name: str, call: int):
    """`name` of gan.training.loop (or of gan.training.records, where the loop calls it) raises on its
    `call`-th call, and works otherwise."""
    module = train_module if hasattr(train_module, name) else records_module
    original, calls = getattr(module, name), {"n": 0}

    def patched(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise RuntimeError(f"{name} broke")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, patched)


@pytest.mark.parametrize("function, task", [
    ("_window_scalars", "logging"), ("_write_previews", "previews"), ("_log_validation", "validation"),
    ("save_best", "the best checkpoint")])
def test_a_side_task_that_fails_costs_no_progress(function, task, recipe_data, tmp_path, monkeypatch):
    psnr = iter(range(100))  # validation improves every step: best.pt is saved every step
    monkeypatch.setattr(Pix2PixRecipe, "validation_metrics", lambda self: {"val/psnr": float(next(psnr))})
    settings = ("train.steps=5", "train.checkpoint_every=100", "log.every=1", "log.image_every=1",
                "log.eval_every=1", "train.keep_best=val/psnr")
    fail_on_call(monkeypatch, function, 3)  # step 3
    with pytest.raises(SideTaskError) as error:
        train(tiny_recipe_config("pix2pix", recipe_data, *settings), tmp_path / "run", CPU)
    message = str(error.value)
    assert message.startswith(f"{task} failed at step 3 (RuntimeError: {function} broke)")
    assert "nothing is lost" in message and f"gan train --resume {tmp_path / 'run'}" in message
    assert load_checkpoint(resolve_checkpoint(tmp_path / "run"))["step"] == 3
    monkeypatch.undo()
    monkeypatch.setattr(Pix2PixRecipe, "validation_metrics", lambda self: {"val/psnr": 1.0})
    resumed = train(tiny_recipe_config("pix2pix", recipe_data, *settings), tmp_path / "run", CPU, resume=True)
    assert resumed.step == 5


def loss_events(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every (step, value) TensorBoard shows for each loss and learning rate, in file order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)]
            for tag in events.Tags()["scalars"] if tag.startswith(("loss/", "lr/", "d/"))}


@pytest.mark.parametrize("failing_call", [13, 25])  # (a window writes 10 scalars: steps 2 and 3, part-written)
def test_a_logging_window_that_failed_is_written_by_the_resume_once_and_whole(tmp_path, monkeypatch, failing_call):
    # The window's scalars were lost for good ("nothing is lost", said the stop), or those written
    # before the failure stayed beside nothing.
    from gan.training.event_log import EventLog

    settings = ("train.steps=4", "train.checkpoint_every=100", "log.every=1", "log.image_every=100")
    whole = train(tiny_config(*settings), tmp_path / "whole", CPU)
    original, calls = EventLog.add_scalar, {"n": 0}

    def add_scalar(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == failing_call:
            raise ValueError("the event writer broke")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EventLog, "add_scalar", add_scalar)
    with pytest.raises(SideTaskError, match=r"^logging failed at step (2|3) .*nothing is lost") as stopped:
        train(tiny_config(*settings), tmp_path / "run", CPU)
    assert load_checkpoint(resolve_checkpoint(tmp_path / "run"))["side_tasks_due"]["scalars"]
    monkeypatch.undo()
    train(tiny_config(*settings), tmp_path / "run", CPU, resume=True)
    resumed, expected = loss_events(tmp_path / "run"), loss_events(whole.run_dir)
    assert set(resumed) == set(expected) and "loss/d" in resumed, (stopped.value, sorted(resumed))
    for tag, series in expected.items():
        assert [step for step, _ in resumed[tag]] == [1, 2, 3, 4], (tag, resumed[tag])
        assert [value for _, value in resumed[tag]] == pytest.approx([value for _, value in series]), tag


def test_failing_generative_metrics_cost_no_progress_either(tmp_path, monkeypatch):
    fail_on_call(monkeypatch, "log_generative_metrics", 2)  # step 4 (every 2 steps)
    config = tiny_config("train.steps=6", "train.checkpoint_every=100", "metrics.every=2", "metrics.names=[\"swd\"]",
                         "metrics.num_samples=16", f"metrics.cache_dir={tmp_path / 'cache'}")
    with pytest.raises(SideTaskError, match=r"^generative metrics failed at step 4 .*metrics.every=0"):
        train(config, tmp_path / "run", CPU)
    assert load_checkpoint(resolve_checkpoint(tmp_path / "run"))["step"] == 4


def metric_rows(run_dir: Path) -> list[tuple[int, float]]:
    return [(row["step"], row["swd/mean"]) for row in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())]


@pytest.mark.parametrize("failing_step", [4, 6])
def test_the_resume_finishes_the_side_tasks_of_the_step_that_failed_as_an_uninterrupted_run(tmp_path, monkeypatch,
                                                                                              failing_step, capsys):
    # The step's metrics row, its scalars and its chance at best.pt were never made: a gap for good,
    # and at the last step "nothing to do" on the resume.
    metrics = ("train.steps=6", "train.checkpoint_every=100", "metrics.every=2", "metrics.names=[\"swd\"]",
               "metrics.num_samples=16", f"metrics.cache_dir={tmp_path / 'cache'}", "train.keep_best=swd/mean")
    whole = train(tiny_config(*metrics), tmp_path / "whole", CPU)
    fail_on_call(monkeypatch, "log_generative_metrics", failing_step // 2)
    with pytest.raises(SideTaskError, match=f"generative metrics failed at step {failing_step}"):
        train(tiny_config(*metrics), tmp_path / "run", CPU)
    fail_on_call(monkeypatch, "log_generative_metrics", 1)  # (still broken: the record stays for the next resume)
    with pytest.raises(SideTaskError, match=f"generative metrics failed at step {failing_step}"):
        train(tiny_config(*metrics), tmp_path / "run", CPU, resume=True)
    monkeypatch.undo()
    capsys.readouterr()
    resumed = train(tiny_config(*metrics), tmp_path / "run", CPU, resume=True)
    assert f"step {failing_step}: the side tasks left undone when the run stopped (generative metrics on) are done" \
        in capsys.readouterr().err
    assert resumed.step == 6 and metric_rows(tmp_path / "run") == metric_rows(whole.run_dir)
    assert [row[0] for row in metric_rows(whole.run_dir)] == [2, 4, 6]
    assert (json.loads((tmp_path / "run" / "best.json").read_text())
            == json.loads((whole.run_dir / "best.json").read_text()))
    final, expected = load_checkpoint(resumed.checkpoint), load_checkpoint(whole.checkpoint)
    assert "side_tasks_due" not in final
    for name, weights in expected["networks"]["generator"].items():
        assert torch.equal(final["networks"]["generator"][name], weights), name
    capsys.readouterr()
    train(tiny_config(*metrics), tmp_path / "run", CPU, resume=True)  # and once done, they are not done again
    assert "nothing to do" in capsys.readouterr().err and metric_rows(tmp_path / "run") == metric_rows(whole.run_dir)


@pytest.mark.parametrize("stopped_step", [4, 6])
def test_a_stop_during_a_metrics_pass_gives_it_up_and_the_resume_measures_it(tmp_path, monkeypatch, capsys,
                                                                             stopped_step):
    """A SIGTERM during a metrics pass waited for the whole pass (11 min at metrics.num_samples=16384), and a
    scheduler kills 30 s after its SIGTERM: every step since the last checkpoint was lost. The pass now
    gives up at its next batch, the step's checkpoint records it as left undone (at the last step too: the
    run is not done), and the resume measures it first, ending as an uninterrupted run."""
    from gan.metrics import generative

    metrics = ("train.steps=6", "train.checkpoint_every=100", "metrics.every=2", "metrics.names=[\"swd\"]",
               "metrics.num_samples=16", f"metrics.cache_dir={tmp_path / 'cache'}", "train.keep_best=swd/mean")
    whole = train(tiny_config(*metrics), tmp_path / "whole", CPU)
    generate, passes = generative.generated_images, []

    def stopped_as_it_generates(*args, **kwargs):  # (SIGTERM in the pass of `stopped_step`)
        passes.append(True)
        if len(passes) == stopped_step // 2:
            signal.raise_signal(signal.SIGTERM)
        return generate(*args, **kwargs)

    monkeypatch.setattr(generative, "generated_images", stopped_as_it_generates)
    capsys.readouterr()
    stopped = train(tiny_config(*metrics), tmp_path / "run", CPU)
    said = capsys.readouterr().err
    assert stopped.interrupted_by == "SIGTERM" and stopped.step == stopped_step, said
    assert f"step {stopped_step}: generative metrics given up for SIGTERM" in said
    assert [row[0] for row in metric_rows(tmp_path / "run")] == list(range(2, stopped_step, 2))
    assert load_checkpoint(stopped.checkpoint)["side_tasks_due"]["from"] == "generative metrics"
    monkeypatch.undo()
    resumed = train(tiny_config(*metrics), tmp_path / "run", CPU, resume=True)
    assert f"step {stopped_step}: the side tasks left undone when the run stopped (generative metrics on) are " \
        "done" in capsys.readouterr().err
    assert resumed.step == 6 and metric_rows(tmp_path / "run") == metric_rows(whole.run_dir)
    assert (json.loads((tmp_path / "run" / "best.json").read_text())
            == json.loads((whole.run_dir / "best.json").read_text()))


def test_a_stop_during_validation_gives_it_up_and_the_resume_validates(recipe_data, tmp_path, monkeypatch, capsys):
    """Validation, as a metrics pass, ran to its end after a stop (minutes at 256 px): it now gives up at its next
    image, and the resume validates the step first."""
    from gan.recipes import image_to_image

    settings = ("train.steps=4", "train.checkpoint_every=100", "log.eval_every=2")
    score_pairs, images = image_to_image.pair_scores, []

    def stopped_at_the_first_image(*args, **kwargs):
        advance = args[-1]

        def counted(count):
            images.append(count)
            signal.raise_signal(signal.SIGTERM)
            advance(count)
        return score_pairs(*args[:-1], counted)

    monkeypatch.setattr(image_to_image, "pair_scores", stopped_at_the_first_image)
    stopped = train(tiny_recipe_config("pix2pix", recipe_data, *settings), tmp_path / "run", CPU)
    assert stopped.interrupted_by == "SIGTERM" and stopped.step == 2 and len(images) == 1
    assert load_checkpoint(stopped.checkpoint)["side_tasks_due"]["from"] == "validation"
    monkeypatch.undo()
    capsys.readouterr()
    resumed = train(tiny_recipe_config("pix2pix", recipe_data, *settings), tmp_path / "run", CPU, resume=True)
    said = capsys.readouterr().err
    assert "step 2: val/psnr" in said and "step 2: the side tasks left undone when the run stopped (validation on)" in said
    assert resumed.step == 4


@pytest.mark.parametrize("function, target", [("write_atomically", "metrics.jsonl"),
                                              ("save_encoded_image", "00000004-generator.png")])
def test_a_side_task_that_failed_after_its_events_leaves_them_to_the_resume_once(tmp_path, monkeypatch, function,
                                                                                 target):
    # Its scores (or grids) went to TensorBoard before the file that failed, and the resume, doing the
    # task again, wrote the step's events a second time.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    settings = ("train.steps=4", "train.checkpoint_every=100", "log.image_every=2", "metrics.every=2",
                "metrics.names=[\"swd\"]", "metrics.num_samples=16", f"metrics.cache_dir={tmp_path / 'cache'}")
    module = records_module if function == "write_atomically" else train_module  # (metrics.jsonl: records')
    original = getattr(module, function)

    def failing(*args, **kwargs):
        path = Path(args[0] if function == "write_atomically" else args[1])
        if path.name == target and (function != "write_atomically" or path.exists()):  # step 4's, not 2's
            raise RuntimeError(f"writing {target} broke")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, function, failing)
    with pytest.raises(SideTaskError, match="failed at step 4"):
        train(tiny_config(*settings), tmp_path / "run", CPU)
    monkeypatch.undo()
    train(tiny_config(*settings), tmp_path / "run", CPU, resume=True)
    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"scalars": 0, "images": 0}).Reload()
    assert [event.step for event in events.Scalars("metrics/swd/mean")] == [2, 4]
    assert [event.step for event in events.Images("samples/generator")] == [2, 4]
    assert [row[0] for row in metric_rows(tmp_path / "run")] == [2, 4]


def test_a_resume_that_only_finishes_side_tasks_leaves_config_toml_as_the_checkpoint_it_writes(tmp_path, monkeypatch):
    # It put the old config.toml back (a resume that trains no step changes nothing), beside a checkpoint it had
    # written again with its own settings: the next plain resume reported changes nobody made.
    from gan.training.resolve import load_config

    metrics = ("train.steps=2", "train.checkpoint_every=100", "metrics.every=2", "metrics.names=[\"swd\"]",
               "metrics.num_samples=16", f"metrics.cache_dir={tmp_path / 'cache'}")
    fail_on_call(monkeypatch, "log_generative_metrics", 1)
    with pytest.raises(SideTaskError, match="generative metrics failed at step 2"):
        train(tiny_config(*metrics), tmp_path / "run", CPU)
    monkeypatch.undo()
    train(tiny_config(*metrics, "metrics.num_samples=8"), tmp_path / "run", CPU, resume=True)
    written = load_checkpoint(resolve_checkpoint(tmp_path / "run"))
    assert "side_tasks_due" not in written and written["config"]["metrics"]["num_samples"] == 8
    assert load_config(tmp_path / "run" / "config.toml", []).metrics.num_samples == 8


def test_a_resume_that_switches_the_failed_task_off_as_advised_goes_on_without_it(tmp_path, monkeypatch):
    metrics = ("train.steps=4", "train.checkpoint_every=100", "metrics.every=2", "metrics.names=[\"swd\"]",
               "metrics.num_samples=16", f"metrics.cache_dir={tmp_path / 'cache'}")
    fail_on_call(monkeypatch, "log_generative_metrics", 1)
    with pytest.raises(SideTaskError, match=r"generative metrics failed at step 2 .*metrics.every=0"):
        train(tiny_config(*metrics), tmp_path / "run", CPU)
    monkeypatch.undo()
    resumed = train(tiny_config(*metrics, "metrics.every=0"), tmp_path / "run", CPU, resume=True)
    assert resumed.step == 4 and not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_side_task_failure_before_any_checkpoint_does_not_advise_a_resume(tmp_path):
    error = SideTaskError("previews", 1, RuntimeError("broke"), None, tmp_path / "run",
                          save_error=OSError(28, "No space left on device"))
    assert "'None'" not in str(error) and "--resume" not in str(error)
    assert "none was written before" in str(error) and str(error).endswith("start the run again with gan train CONFIG")
    other_rank = SideTaskError("reading the training data", 2, ValueError("truncated"), None, tmp_path / "run",
                               main=False)  # rank 1 of torchrun: rank 0 may well have written a checkpoint
    assert "before any checkpoint" not in str(other_rank) and "start the run again" not in str(other_rank)
    assert "the run's checkpoints are rank 0's to write, and its own line says which is kept" in str(other_rank)
    at_start = SideTaskError("reading the training data", 0, ValueError("radius must be >= 0"), None, tmp_path / "run")
    assert "'None'" not in str(at_start) and "--resume" not in str(at_start)
    assert "training stopped at step 0, before any checkpoint, with nothing trained to keep" in str(at_start)


def test_the_command_reports_a_side_task_failure_in_one_line(tmp_path, monkeypatch):
    fail_on_call(monkeypatch, "_write_previews", 1)
    sets = [arg for item in (*TINY, "train.steps=3", "log.image_every=2") for arg in ("--set", item)]
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"), *sets,
                                       "--out", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "error: previews failed at step 2" in result.output


# ----------------------------------------------------------------------------- kill -9


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads child processes from Linux's /proc")
def test_a_trainer_killed_with_its_loader_workers_running_restarts_at_once(tmp_path):
    # Workers inherited the lock's file and outlived their killed parent for a few seconds, so an
    # immediate restart was refused as "in use by another gan process (pid N)" with N dead.
    faces = tmp_path / "faces"
    faces.mkdir()
    for index in range(32):
        random_rgb((40, 40), seed=index).save(faces / f"{index:02d}.png")
    sets = [arg for item in (*TINY, "data.dataset=folder", f"data.root={faces}", "data.num_workers=2",
                             "data.cache=off", "train.steps=100000", "train.checkpoint_every=1", "log.every=1",
                             "log.image_every=100000") for arg in ("--set", item)]
    command = [sys.executable, "-m", "gan", "train", str(REPO / "experiments" / "dcgan_demo.toml"), *sets,
               "--run-dir", str(tmp_path / "run"), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers: list[int] = []
    try:
        for attempt in range(3):  # restart at once after each kill
            trainer = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
            for line in trainer.stderr:
                if "step 3/" in line or "step 3 " in line or f"step {4 + attempt}/" in line:
                    break
            workers = children_of(trainer.pid)
            assert len(workers) >= 2  # the loader workers are running
            os.kill(trainer.pid, signal.SIGKILL)
            trainer.wait()
            trainer.stderr.close()
        restarted = subprocess.run([*command[:4], "--resume", str(tmp_path / "run"), "--set", "train.steps=1",
                                    "--device", "cpu"], capture_output=True, text=True, env=env, timeout=120)
        assert "in use by another gan process" not in restarted.stderr
        assert restarted.returncode == 0, restarted.stderr[-2000:]
    finally:
        for worker in workers:
            try:
                os.kill(worker, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


# ----------------------------------------------------------------------------- atomic writes


def test_a_failed_write_whose_cleanup_also_fails_reports_the_write(tmp_path, monkeypatch):
    def write(temp: Path) -> None:
        raise OSError(28, "No space left on device")

    def unlink(self, missing_ok=False):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(WriteError, match="No space left on device"):
        write_atomically(tmp_path / "out.json", write)
    monkeypatch.undo()
    assert json.loads(json.dumps({"ok": True}))  # (the module still works after the patch is gone)


# ----------------------------------------------------------------------------- sweeps


def test_a_sweep_that_fails_validation_writes_nothing_and_the_corrected_command_runs(tmp_path):
    # A grid value that fails validation left a sweep.toml that then refused the corrected command.
    config, out = str(REPO / "experiments" / "dcgan_demo.toml"), tmp_path / "sweep"
    bad = CliRunner().invoke(main, ["sweep", config, "--grid", "loss.adversarial=hinge,hinj", "--out", str(out),
                                    "--print-commands"])
    assert bad.exit_code == 2 and "loss.adversarial" in bad.output and "hinj" in bad.output
    assert "run 00001-adversarial=hinj" in bad.output and not out.exists()
    good = CliRunner().invoke(main, ["sweep", config, "--grid", "loss.adversarial=hinge,lsgan", "--out", str(out),
                                     "--print-commands"])
    assert good.exit_code == 0, good.output
    assert (out / "sweep.toml").is_file() and len(good.output.strip().splitlines()) == 2


# ----------------------------------------------------------------------------- a batch that cannot fit


def test_a_batch_that_cannot_fit_in_memory_is_refused_with_the_figure(tmp_path):
    # --set train.batch_size=100000000 was killed by the kernel after 82 s, with no message.
    sets = [arg for item in (*TINY, "train.batch_size=100000000") for arg in ("--set", item)]
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"), *sets,
                                       "--out", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert re.search(r"train.batch_size 100000000 needs at least [\d.,]+ TiB for one step's activations "
                     r"\([\d.,]+ KiB per image.*and cpu has [\d.,]+ GiB available: at most about [\d,]+ images fit",
                     result.output), result.output
    assert time.perf_counter() - started < 30 and not list(tmp_path.glob("*/checkpoint-*.pt"))


def test_a_batch_that_fits_only_without_its_backward_pass_is_warned_of(monkeypatch):
    # The refusal advised "at most about N images fit", yet let batches up to twice N through without a word.
    from gan.recipes.dcgan import DCGANRecipe
    from gan.training import preflight

    config = tiny_config("train.batch_size=64")
    recipe = DCGANRecipe(config, CPU, lambda: torch.no_grad())
    per_image = sum(preflight.activation_bytes(network, preflight.example_input(name, network, config, CPU))
                    for name, network in recipe.networks.items() if not name.endswith("_ema"))
    # (beside the gradients and Adam's two moments of every trained weight, which the first step makes)
    state = 3 * sum(parameter.numel() * 4 for name, network in recipe.networks.items() if not name.endswith("_ema")
                    for parameter in network.parameters())
    available = int(per_image * 64 * 1.5) + state
    monkeypatch.setattr(preflight, "available_memory", lambda device: available)
    with pytest.warns(UserWarning, match=r"train.batch_size 64 needs about .* with the backward pass .* beside .* of "
                                         r"gradients and Adam's moments, .* the run may be stopped for lack of memory; "
                                         rf"at most about {(available - state) // (2 * per_image)} images fit"):
        preflight.check_batch_fits(recipe.networks, config, CPU)
    monkeypatch.setattr(preflight, "available_memory", lambda device: per_image * 64 * 2 + state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        preflight.check_batch_fits(recipe.networks, config, CPU)
    # Networks whose training state alone cannot fit (DCGAN at 256 px: 0.7 GB, six times its activations at
    # batch 4) passed the check, and the kernel killed the run without a word
    monkeypatch.setattr(preflight, "available_memory", lambda device: state - 1)
    with pytest.raises(ConfigError, match=r"the networks' gradients and Adam's moments need .* \(3x their [\d,]+ trained "
                                          r"weights\) from the first step, .* train smaller networks \(model.generator_"
                                          r"args.channels, model.discriminator_args.channels\) or at a lower data.res"):
        preflight.check_batch_fits(recipe.networks, config, CPU)



def test_the_memory_a_cpu_command_may_use_is_within_its_cgroups_limits(tmp_path, monkeypatch):
    """MemAvailable is the machine's: under a container's --memory (or systemd's MemoryMax, a Slurm
    job's limit) every check passed and the kernel killed the command without a word."""
    from gan.core import memory

    def cgroup(folder, limit, usage, cache=0, version="v1"):
        folder.mkdir(parents=True, exist_ok=True)
        limit_file, usage_file, cache_key = memory.CGROUP_MEMORY_FILES[version]
        (folder / limit_file).write_text(f"{limit}\n")
        (folder / usage_file).write_text(f"{usage}\n")
        (folder / "memory.stat").write_text(f"cache 5\n{cache_key[0]} {cache // 2}\n{cache_key[1]} {cache - cache // 2}"
                                            "\nanon 7\n")

    root = tmp_path / "cgroup"
    # v1: a job's limit below a parent's without one; the page cache counted in its usage, active as well as
    # inactive, is reclaimed first (a job that read its data twice holds it all active: it read near 0, refusing
    # a batch of 128 that trained)
    cgroup(root / "memory", 9223372036854771712, 10)
    cgroup(root / "memory" / "slurm", 8 * 2**30, 5 * 2**30)
    cgroup(root / "memory" / "slurm" / "job_7", 3 * 2**30, 2 * 2**30, cache=2**29)
    membership = "4:memory:/slurm/job_7\n3:cpuset:/\n0::/\n"
    assert memory.cgroup_headroom(root, membership) == 2**30 + 2**29
    # ... and the least of the cgroups above it
    cgroup(root / "memory" / "slurm", 8 * 2**30, 8 * 2**30 - 2**20)
    assert memory.cgroup_headroom(root, membership) == 2**20
    # v2 (a container's namespace shows its own cgroup at the root: read there)
    v2 = tmp_path / "v2"
    cgroup(v2, 1500 * 2**20, 1000 * 2**20, version="v2")
    assert memory.cgroup_headroom(v2, "0::/docker/abc\n") == 500 * 2**20
    (v2 / "memory.max").write_text("max\n")
    assert memory.cgroup_headroom(v2, "0::/\n") is None
    assert memory.cgroup_headroom(tmp_path / "none", "0::/\n") is None  # (no cgroup file system)
    # what the checks read: the least of the machine's and the cgroups'
    monkeypatch.setattr(memory, "cgroup_headroom", lambda: 2**20)
    assert memory.available_memory(CPU) == 2**20
    monkeypatch.setattr(memory, "cgroup_headroom", lambda: None)
    assert memory.available_memory(CPU) > 2**20


def test_the_memory_check_leaves_out_a_network_whose_input_it_cannot_tell(monkeypatch):
    """A discriminator of one's own that starts with Flatten and Linear (an MLP), or one whose first
    Conv2d is not its input layer, stopped `gan train` before step 1 in an AttributeError traceback."""
    from gan.recipes.dcgan import DCGANRecipe
    from gan.training import preflight

    config = tiny_config("train.batch_size=64")
    recipe = DCGANRecipe(config, CPU, lambda: torch.no_grad())
    size = config.data.resolution
    networks = {"generator": recipe.networks["generator"],
                "discriminator": nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, 8), nn.Linear(8, 1)),
                "critic": nn.Sequential(nn.Conv2d(16, 1, 1), nn.Conv2d(3, 16, 3))}  # (its output layer first)
    assert preflight.example_input("discriminator", networks["discriminator"], config, CPU) is None
    generator_alone = preflight.activation_bytes(networks["generator"], preflight.example_input(
        "generator", networks["generator"], config, CPU))
    # what the check measures is the generator alone: refused past it, and passed below it
    monkeypatch.setattr(preflight, "available_memory", lambda device: generator_alone * 64 - 1)
    with pytest.raises(ConfigError, match="train.batch_size 64 needs at least"):
        preflight.check_batch_fits(networks, config, CPU)
    monkeypatch.setattr(preflight, "available_memory", lambda device: generator_alone * 64 * 2)
    preflight.check_batch_fits(networks, config, CPU)

def test_the_activation_estimate_is_a_lower_bound_of_what_a_step_holds():
    from gan.recipes.dcgan import DCGANRecipe
    from gan.training.device import make_autocast
    from gan.training.preflight import activation_bytes, example_input

    config = tiny_config()
    recipe = DCGANRecipe(config, CPU, make_autocast(CPU, False))
    generator = recipe.networks["generator"]
    per_image = activation_bytes(generator, example_input("generator", generator, config, CPU))
    # What autograd keeps for backward from a forward of 8 latents, counted by its saved-tensor hooks.
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel() * t.element_size()) or t,
                                                  lambda t: t):
        generator(torch.randn(8, generator.latent_dim))
    assert 0 < per_image * 8 <= sum(saved) * 1.05


def test_a_resume_says_when_metrics_jsonl_ends_in_a_line_cut_short(tmp_path, capsys):
    # A torn last row stayed between the rows before it and those the resume adds, without a word
    # (kept: it may be an edit; test_best_checkpoint checks the rows after it stay whole).
    metrics = ("train.steps=4", "metrics.every=2", "metrics.names=[\"swd\"]", "metrics.num_samples=16",
               f"metrics.cache_dir={tmp_path / 'cache'}")
    run = train(tiny_config(*metrics, "train.steps=2"), tmp_path / "run", CPU).run_dir
    record = run / "metrics.jsonl"
    record.write_bytes(record.read_bytes() + b'{"step": 12, "swd/me')
    capsys.readouterr()
    train(tiny_config(*metrics), run, CPU, resume=True)
    assert "metrics.jsonl: its last line is cut short before its end" in capsys.readouterr().err
    lines = record.read_text().splitlines()
    assert lines[1] == '{"step": 12, "swd/me' and [json.loads(line)["step"] for line in (lines[0], lines[2])] == [2, 4]


def test_a_run_that_keeps_only_its_best_checkpoint_is_pointed_to_it(tmp_path):
    run_dir = train(tiny_config("train.steps=2"), tmp_path / "run", CPU).run_dir
    checkpoint_path(run_dir, 2).rename(run_dir / "best.pt")  # (checkpoint-*.pt deleted to save space, say)
    result = CliRunner().invoke(main, ["sample", str(run_dir), "--n", "2", "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 2, result.output
    assert f"it keeps '{run_dir / 'best.pt'}': give that file" in " ".join(result.output.split())
    assert CliRunner().invoke(main, ["sample", str(run_dir), "--best", "--n", "2", "--out",
                                     str(tmp_path / "s.png")]).exit_code == 0


def test_on_windows_a_process_is_never_asked_after_with_a_signal_and_counts_as_alive(monkeypatch):
    # os.kill(pid, 0) on Windows is GenerateConsoleCtrlEvent(CTRL_C_EVENT, pid): a Ctrl-C sent to a
    # process group, not a question; and it never says a process is gone
    import os
    import sys

    from gan.core.files import process_alive

    def no_signal(*args):
        raise AssertionError("os.kill called")

    assert not process_alive(2**22 + 12345)  # (no such process here)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "kill", no_signal)
    assert process_alive(2**22 + 12345)
