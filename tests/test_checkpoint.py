import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gan.core.checkpoint import (
    FORMAT,
    CheckpointError,
    capture_rng_state,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    resolve_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from gan.core.files import WriteError, run_order


def test_round_trip(tmp_path):
    state = {"format": FORMAT, "step": 3, "weights": {"w": torch.randn(4, 4)}, "names": ["a", "b"]}
    path = checkpoint_path(tmp_path, 3)
    save_checkpoint(state, path)
    loaded = load_checkpoint(path)
    assert loaded["step"] == 3 and torch.equal(loaded["weights"]["w"], state["weights"]["w"])
    assert not list(tmp_path.glob("*.tmp"))


def test_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = checkpoint_path(tmp_path, 1)
    save_checkpoint({"format": FORMAT, "step": 1}, path)

    def half_write_then_fail(obj, temp):
        Path(temp).write_bytes(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", half_write_then_fail)
    with pytest.raises(WriteError, match=r"could not write '.*checkpoint-00000001.pt' \(.* MiB free\): .*No space left"):
        save_checkpoint({"format": FORMAT, "step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert not list(tmp_path.glob("*.tmp"))


class Evil:
    def __reduce__(self):
        return (exec, ("raise SystemExit('code ran while loading')",))


def test_loading_never_unpickles_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="corrupt or not a gan checkpoint"):
        load_checkpoint(path)


def test_truncated_and_foreign_files_are_clear_errors(tmp_path):
    path = tmp_path / "checkpoint-00000001.pt"
    torch.save({"format": FORMAT, "w": torch.randn(100)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="checkpoint-00000001.pt' is corrupt"):
        load_checkpoint(path)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="not a gan checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_listing_pruning_and_resolving(tmp_path):
    for step in (30, 4, 200, 100):
        save_checkpoint({"format": FORMAT, "step": step}, checkpoint_path(tmp_path, step))
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "checkpoint-00000004.pt", "checkpoint-00000030.pt", "checkpoint-00000100.pt", "checkpoint-00000200.pt"]
    checkpoint_path(tmp_path, 999).mkdir()  # a folder named like a checkpoint is none
    prune_checkpoints(tmp_path, keep=2, written=checkpoint_path(tmp_path, 200))
    assert [load_checkpoint(p)["step"] for p in list_checkpoints(tmp_path)] == [100, 200]
    assert resolve_checkpoint(tmp_path) == checkpoint_path(tmp_path, 200)
    assert checkpoint_path(tmp_path, 999).is_dir()
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(CheckpointError, match="is no run directory: it holds no checkpoint-\\*.pt and no config.toml"):
        resolve_checkpoint(tmp_path / "empty_run")
    (tmp_path / "empty_run" / "config.toml").write_text("")  # a run that has written no checkpoint yet
    with pytest.raises(CheckpointError, match="no checkpoint-\\*.pt in run directory"):
        resolve_checkpoint(tmp_path / "empty_run")
    runs = tmp_path / "runs"
    for name in ("00000-a", "00001-b"):
        (runs / name).mkdir(parents=True)
        save_checkpoint({"format": FORMAT, "step": 1}, checkpoint_path(runs / name, 1))
    with pytest.raises(CheckpointError, match=f"'{runs}' is a folder of runs, not a run: give one of them, e.g. "
                                              f"'{runs / '00001-b'}'"):
        resolve_checkpoint(runs)
    # the run named is one the command reads: `gan sample runs` named the newest, an SR run it refuses
    (runs / "00000-a" / "config.toml").write_text('recipe = "dcgan"\n')
    (runs / "00001-b" / "config.toml").write_text('recipe = "srgan"\n')
    for unconditional, named in ((True, "00000-a"), (False, "00001-b")):
        with pytest.raises(CheckpointError, match=f"give one of them, e.g. '{runs / named}'"):
            resolve_checkpoint(runs, unconditional)
    (runs / "00000-a" / "config.toml").write_text('recipe = "pix2pix"\n')
    with pytest.raises(CheckpointError, match="it holds no run of an unconditional generator, which this command"):
        resolve_checkpoint(runs, unconditional=True)
    with pytest.raises(CheckpointError, match="nothing' does not exist: give a checkpoint file"):
        resolve_checkpoint(tmp_path / "nothing")
    # past run 99999 the newest is named by its number, not by its name (which sorts '100000-' first)
    wide = tmp_path / "wide"
    for name in ("99999-a", "100000-b", "notes"):
        (wide / name).mkdir(parents=True)
        save_checkpoint({"format": FORMAT, "step": 1}, checkpoint_path(wide / name, 1))
    with pytest.raises(CheckpointError, match=f"e.g. '{wide / '100000-b'}'"):
        resolve_checkpoint(wide)
    assert sorted(wide.iterdir(), key=run_order) == [wide / "notes", wide / "99999-a", wide / "100000-b"]


def test_a_checkpoint_that_is_not_there_is_said_to_be_missing_or_a_link_to_nothing(tmp_path):
    """model.init_generator of a missing file, or of a link to one, was "neither a checkpoint file nor a run
    directory", as if something were there to look at."""
    with pytest.raises(CheckpointError, match=r"'.*missing.pt' does not exist: give a checkpoint file, or the run "
                                              r"directory `gan train` made"):
        resolve_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "dangling.pt").symlink_to(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"dangling.pt' is a link to nothing \('.*missing.pt': a broken or "
                                              r"looping link\)"):
        resolve_checkpoint(tmp_path / "dangling.pt")
    os.mkfifo(tmp_path / "fifo.pt")  # (there, and neither)
    with pytest.raises(CheckpointError, match="is neither a checkpoint file nor a run directory"):
        resolve_checkpoint(tmp_path / "fifo.pt")


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    torch.manual_seed(1)
    random.seed(2)
    np.random.seed(3)
    np.random.normal()  # leaves a cached Gaussian in numpy's state
    path = tmp_path / "rng.pt"
    save_checkpoint({"format": FORMAT, "rng": capture_rng_state()}, path)
    expected = (torch.rand(3), random.random(), np.random.normal())
    restore_rng_state(load_checkpoint(path)["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert random.random() == expected[1]
    assert np.random.normal() == expected[2]


@pytest.mark.parametrize("saved, here, used", [(8, 1, 0), (1, 2, 1)])
def test_gpu_random_states_are_restored_for_the_gpus_this_machine_has(monkeypatch, saved, here, used):
    """A checkpoint of a node with 8 GPUs holds 8 states: restoring them all on a 1-GPU machine was an
    IndexError mid-resume (torch's set_rng_state_all sets device i for every state). A GPU drawn on
    with no state saved is said, its stream starting afresh. (Simulated: no GPU in CI.)"""
    import warnings

    restored = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: here)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: used)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.__setitem__(device, state))
    state = capture_rng_state()
    state["cuda"] = [torch.full((4,), index, dtype=torch.uint8) for index in range(saved)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        restore_rng_state(state)
    assert sorted(restored) == list(range(min(saved, here)))
    assert all(int(restored[device][0]) == device for device in restored)
    said = [str(warning.message) for warning in caught]
    assert said == ([] if used < saved else [f"the checkpoint holds the random state of {saved} GPU(s), none for "
                                             f"cuda:{used}, which this process draws on: its stream starts afresh, so "
                                             "the run goes on as an uninterrupted one would not, exactly"])


BEFORE_REGROUP = Path(__file__).parent / "data" / "before-regroup"


def test_a_checkpoint_from_before_the_regroup_resumes_as_the_run_would_have_gone_on(tmp_path):
    """Written at step 2 of 4 by gan at f9c4396 (2026-12-02), when the top of gan/ was loose modules
    (gan/train.py, gan/losses.py, ...): checkpoints hold no module paths, so the regrouped code
    resumes it, and ends where its own uninterrupted run of the same config ends."""
    from gan.training.loop import train
    from gan.training.resolve import load_config

    run_dir = tmp_path / "before-regroup"
    shutil.copytree(BEFORE_REGROUP, run_dir)
    config = load_config(run_dir / "config.toml")
    resumed = train(config, run_dir, torch.device("cpu"), resume=True)
    fresh = train(config, tmp_path / "fresh", torch.device("cpu"))
    assert resumed.step == fresh.step == 4
    resumed_networks = load_checkpoint(resumed.checkpoint)["networks"]
    fresh_networks = load_checkpoint(fresh.checkpoint)["networks"]
    assert sorted(resumed_networks) == ["discriminator", "generator", "generator_ema"]
    for name, weights in fresh_networks.items():
        for key, tensor in weights.items():  # (a tolerance: the old run was computed on another CPU)
            torch.testing.assert_close(resumed_networks[name][key], tensor, rtol=1e-4, atol=1e-5, msg=key)


def test_each_file_written_together_reaches_the_disk_before_it_is_renamed_into_place(tmp_path, monkeypatch):
    # renamed before its data was on the disk, a power cut could leave the final name holding an empty
    # or torn file, the good one it replaced already gone
    import os

    from gan.core.files import write_together

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def replace(source, target):
        events.append(("replace", str(source)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    (tmp_path / "weights.pt").write_bytes(b"old")
    write_together({tmp_path / "weights.pt": lambda path: path.write_bytes(b"new weights"),
                    tmp_path / "weights.json": lambda path: path.write_text("{}")})
    assert (tmp_path / "weights.pt").read_bytes() == b"new weights" and (tmp_path / "weights.json").read_text() == "{}"
    renamed = [name for kind, name in events if kind == "replace" and name.endswith(".tmp")]
    assert len(renamed) == 2
    for temp in renamed:
        assert ("fsync", temp) in events[:events.index(("replace", temp))], (temp, events)
