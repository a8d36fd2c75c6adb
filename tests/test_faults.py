"""Faults during training: a full disk mid-run, and kill -9 in the middle of writing a checkpoint."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from conftest import tiny_config

import gan.train as train_module
from gan.checkpoint import CheckpointError, list_checkpoints, load_checkpoint
from gan.train import _newest_loadable_checkpoint, train

CPU = torch.device("cpu")


def test_a_full_disk_mid_run_is_reported_and_loses_no_training(tmp_path, monkeypatch):
    straight = train(tiny_config(), tmp_path / "straight", CPU, progress_stream=sys.stdout)
    real_save = train_module.save_checkpoint

    def full_disk_at_step_2(state, path):
        if state["step"] == 2:
            raise CheckpointError(f"could not write checkpoint '{path}': [Errno 28] No space left on device")
        real_save(state, path)

    monkeypatch.setattr(train_module, "save_checkpoint", full_disk_at_step_2)
    with pytest.warns(UserWarning, match="No space left on device; training goes on and retries"):
        result = train(tiny_config(), tmp_path / "full", CPU, progress_stream=sys.stdout)
    assert result.step == 4 and [p.name for p in list_checkpoints(result.run_dir)] == ["checkpoint-00000004.pt"]
    for name, weights in load_checkpoint(straight.checkpoint)["networks"].items():
        for key, value in weights.items():
            assert torch.equal(load_checkpoint(result.checkpoint)["networks"][name][key], value)


def test_a_failed_final_checkpoint_stops_with_the_error(tmp_path, monkeypatch):
    def always_full(state, path):
        raise CheckpointError(f"could not write checkpoint '{path}': [Errno 28] No space left on device")

    monkeypatch.setattr(train_module, "save_checkpoint", always_full)
    with pytest.warns(UserWarning), pytest.raises(CheckpointError, match="checkpoint-00000004.pt.*No space left"):
        train(tiny_config(), tmp_path / "run", CPU, progress_stream=sys.stdout)


def test_kill_9_while_a_checkpoint_is_written_leaves_the_previous_one_loadable(tmp_path):
    """A child writes checkpoint 1, then starts checkpoint 2 and is SIGKILLed half-way through."""
    script = textwrap.dedent(f"""
        import time, torch
        from pathlib import Path
        from gan.checkpoint import FORMAT, checkpoint_path, save_checkpoint
        run = Path({str(tmp_path)!r})
        weights = {{"w": torch.arange(1000.0)}}
        save_checkpoint({{"format": FORMAT, "step": 1, "networks": weights}}, checkpoint_path(run, 1))
        real_save = torch.save
        def slow_save(obj, handle):
            handle.write(b"PK\\x03\\x04 half of a checkpoint")
            handle.flush()
            time.sleep(60)  # killed here
        torch.save = slow_save
        save_checkpoint({{"format": FORMAT, "step": 2, "networks": weights}}, checkpoint_path(run, 2))
    """)
    child = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    second = tmp_path / "checkpoint-00000002.pt.tmp"  # not checkpoint 1's temp file, which comes first
    while not second.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert second.exists(), "the child never started writing checkpoint 2"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    path, state = _newest_loadable_checkpoint(tmp_path)
    assert path.name == "checkpoint-00000001.pt" and state["step"] == 1
    assert torch.equal(state["networks"]["w"], torch.arange(1000.0))
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-00000001.pt"]  # no half file renamed in
