"""Faults during training: a full disk mid-run, and kill -9 in the middle of writing a checkpoint."""

import copy
import errno
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import REPO, TINY, as_another_users, assert_one_error_line, only_run, run_folders, tiny_config

import gan.core.checkpoint as checkpoint_module
import gan.core.files as files_module
from gan.commands.main import main
from gan.core.checkpoint import CheckpointError, list_checkpoints, load_checkpoint
from gan.core.files import RunDirectoryBusy, RunLock, host_tag, temp_name
from gan.data.sampling import end_batches
from gan.training.errors import NonFiniteLossError
from gan.training.loop import train
from gan.training.state import newest_loadable_checkpoint

CPU = torch.device("cpu")


def torch_save_on_a_full_disk(steps: set[int]):
    """torch.save as it fails when the disk fills: part of the file written, then torch's zip
    writer raises RuntimeError (not OSError), for checkpoints of the given steps."""
    real_save = torch.save

    def save(state, path, *args, **kwargs):
        if isinstance(state, dict) and state.get("step") in steps:
            Path(path).write_bytes(b"PK\x03\x04" + bytes(1000))
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 1088 vs 1024")
        return real_save(state, path, *args, **kwargs)

    return save


def test_a_failed_write_names_the_free_space_after_its_writer_let_go_of_the_temp(tmp_path, monkeypatch):
    """torch's zip writer fails on a full disk from inside its frames, during another error, and
    those frames hold the (unlinked) temp open: its space is free only once they let go. Measured
    before that, the message read "0.0 MiB free" on a disk the failed write had filled."""
    import weakref

    held = []

    def write(temp):
        handle = open(temp, "wb")  # held by this frame's locals, as torch's writer holds its file
        held.append(weakref.ref(handle))
        handle.write(bytes(4096))
        try:
            raise RuntimeError("basic_ios::clear: iostream error")
        finally:  # torch's __exit__ raises its own error during the first one
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    seen_open = []
    monkeypatch.setattr(files_module, "free_space", lambda folder: seen_open.append(held[0]() is not None) or "? free")
    with pytest.raises(files_module.WriteError, match=r"could not write '.*c.pt' \(\? free\): the writer could not write all of it"):
        files_module.write_atomically(tmp_path / "c.pt", write)
    assert seen_open == [False] and list(tmp_path.iterdir()) == []

    def fail_outside(kept="the caller's"):
        raise KeyError(kept)

    try:  # an error the caller is handling keeps its frames: it is not this write's to release
        fail_outside()
    except KeyError as outer:
        with pytest.raises(files_module.WriteError):
            files_module.write_atomically(tmp_path / "d.pt", write)
        assert outer.__traceback__.tb_next.tb_frame.f_locals == {"kept": "the caller's"}


def test_a_full_disk_mid_run_is_reported_and_loses_no_training(tmp_path, monkeypatch):
    straight = train(tiny_config(), tmp_path / "straight", CPU, progress_stream=sys.stdout)
    monkeypatch.setattr(checkpoint_module.torch, "save", torch_save_on_a_full_disk({2}))
    with pytest.warns(UserWarning, match=r"checkpoint-00000002.pt' \(.* MiB free\): the writer could not write all of it .*; "
                                         "training goes on and retries"):
        result = train(tiny_config(), tmp_path / "full", CPU, progress_stream=sys.stdout)
    assert result.step == 4 and [p.name for p in list_checkpoints(result.run_dir)] == ["checkpoint-00000004.pt"]
    assert not list(result.run_dir.rglob("*.tmp"))  # the partial temp file is gone
    for name, weights in load_checkpoint(straight.checkpoint)["networks"].items():
        for key, value in weights.items():
            assert torch.equal(load_checkpoint(result.checkpoint)["networks"][name][key], value)


# The failed write at step 2 is warned of with torch's own text; the warning is part of the fault, so it is
# captured here rather than left for the warnings summary, where it would read as a real failure.
@pytest.mark.filterwarnings("error:could not write:UserWarning")
def test_a_failed_final_checkpoint_stops_with_one_line_naming_the_file_and_the_free_space(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_module.torch, "save", torch_save_on_a_full_disk({2, 4}))
    with pytest.warns(UserWarning, match=r"checkpoint-00000002.pt' \(.* MiB free\): .*; training goes on and retries"):
        result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"),
                                           *[arg for item in TINY for arg in ("--set", item)], "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "Traceback" not in result.output
    assert re.search(r"checkpoint-00000004.pt' \(\d+\.\d MiB free\)", error_lines[0])
    assert "steps 1-4 are lost (no checkpoint was written yet)" in error_lines[0]
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.filterwarnings("error:could not write:UserWarning")
def test_a_failed_final_checkpoint_says_which_steps_are_lost_and_where_to_go_on(tmp_path, monkeypatch):
    """It said torch's words alone: not that checkpoint 2 is kept, steps 3-4 lost, nor how to go on."""
    monkeypatch.setattr(checkpoint_module.torch, "save", torch_save_on_a_full_disk({4}))
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"),
                                       *[arg for item in TINY for arg in ("--set", item)], "--out", str(tmp_path)])
    run_dir = only_run(tmp_path)
    assert result.exit_code == 2, result.output
    assert re.search(r"^error: could not write '.*checkpoint-00000004.pt' .*: the writer could not write all of it "
                     r".*; steps 3-4 are lost \('.*checkpoint-00000002.pt' is kept\); make room, then continue from "
                     rf"step 2 with: gan train --resume {re.escape(str(run_dir))}$", result.output, re.M), result.output


def test_kill_9_while_a_checkpoint_is_written_leaves_the_previous_one_loadable(tmp_path):
    """A child writes checkpoint 1, then starts checkpoint 2 and is SIGKILLed half-way through."""
    script = textwrap.dedent(f"""
        import time, torch
        from pathlib import Path
        from gan.core.checkpoint import FORMAT, capture_rng_state, checkpoint_path, save_checkpoint
        run = Path({str(tmp_path)!r})
        weights = {{"g": {{"w": torch.arange(1000.0)}}}}
        state = {{"format": FORMAT, "step": 1, "samples_seen": 8, "config": {{}}, "networks": weights,
                 "optimizers": {{}}, "recipe": {{}}, "rng": capture_rng_state()}}
        save_checkpoint(state, checkpoint_path(run, 1))
        def slow_save(obj, path):
            Path(path).write_bytes(b"PK\\x03\\x04 half of a checkpoint")
            time.sleep(60)  # killed here
        torch.save = slow_save
        save_checkpoint({{**state, "step": 2}}, checkpoint_path(run, 2))
    """)
    child = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    def second():  # checkpoint 2's temp file, not checkpoint 1's, which comes first
        return list(tmp_path.glob("checkpoint-00000002.pt.*.tmp"))

    while not second() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert second(), "the child never started writing checkpoint 2"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    path, state = newest_loadable_checkpoint(tmp_path)
    assert path.name == "checkpoint-00000001.pt" and state["step"] == 1
    assert torch.equal(state["networks"]["g"]["w"], torch.arange(1000.0))
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-00000001.pt"]  # no half file renamed in


# ----------------------------------------------------------------------------- one writer per run directory


def test_a_second_writer_on_a_run_directory_stops_at_once_naming_the_holder(tmp_path):
    first = train(tiny_config(), tmp_path / "run", CPU, progress_stream=sys.stdout)
    before = {path.name: path.read_bytes() for path in first.run_dir.glob("checkpoint-*.pt")}
    with RunLock(first.run_dir):  # as a `gan train --resume` that is still running holds it
        result = CliRunner().invoke(main, ["train", "--resume", str(first.run_dir), "--set", "train.steps=8"])
    assert result.exit_code == 2, result.output
    assert f"'{first.run_dir}' is in use by another gan process (pid {os.getpid()})" in result.output
    assert {path.name: path.read_bytes() for path in first.run_dir.glob("checkpoint-*.pt")} == before
    # the same --run-dir line with other settings, while the run trains: said busy, not "other settings"
    sets = [arg for item in [*TINY, "train.seed=9"] for arg in ("--set", item)]
    with RunLock(first.run_dir):
        result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"), *sets,
                                           "--run-dir", str(first.run_dir)])
    assert result.exit_code == 2 and f"is in use by another gan process (pid {os.getpid()})" in result.output, \
        result.output


@pytest.mark.parametrize("record, said", [
    ("{me}\n", "(pid {me})"),  # (a lock of an earlier version: the pid alone)
    # (a dead pid: the record of a holder before one that opened another user's lock file read-only, unable to
    # write its own, was named as the holder, and "stop it" pointed at whatever process had that pid since)
    ("999999999\n", "(pid unknown (the lock file names pid 999999999, which has ended))"),
    ("12345 h00000000 pid:[1]\n", "(pid 12345 on another machine that shares this folder)"),
    # a container on this host: its tag hashes the host name with its own namespace
    ("1 {container} pid:[1]\n", "(pid 1 in another PID namespace (a container's), not this machine's process 1)"),
    ("1 {before} pid:[1]\n", "(pid 1 in another PID namespace (a container's), not this machine's process 1)"),
    ("{me} {here} {namespace}\n", "(pid {me})"),
])
def test_a_lock_held_elsewhere_says_where_its_pid_belongs(tmp_path, record, said):
    # A run in a container (another PID namespace) was named as "pid 1": this machine's init; and once
    # the tags held the namespace, as "another machine" ({before}: the tag versions before wrote)
    from gan.core.files import _host_name_tag, _pid_namespace, host_tag

    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(record.format(container=host_tag("pid:[1]"), before=_host_name_tag(), here=host_tag(),
                                             namespace=_pid_namespace(), me=os.getpid()))
    assert f"is in use by another gan process {said.format(me=os.getpid())};" in busy_with_its_lock_held_elsewhere(run)


def busy_with_its_lock_held_elsewhere(run: Path) -> str:
    """The RunDirectoryBusy of `run` whose .lock another process holds (flock is per open file), as a
    writer elsewhere holds it."""
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; handle = open(sys.argv[1], 'rb'); "
                               "fcntl.flock(handle, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
                               str(run / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirectoryBusy) as busy:
            with RunLock(run):
                pass
        return str(busy.value)
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_held_on_another_machine_names_it_and_what_to_do_once_it_is_down(tmp_path):
    # "(pid 4242 on another machine that shares this folder)": the lock file held a hash of the host alone,
    # and a node that died left its lock to a network file system, with no word of what to do then
    run = tmp_path / "run"
    with RunLock(run):
        assert (run / ".lock").read_text().split()[3] == files_module._host_name()
    (run / ".lock").write_text("4242 h00000000 pid:[1] node07\n")
    said = busy_with_its_lock_held_elsewhere(run)
    assert "(pid 4242 on node07, another machine that shares this folder);" in said
    assert said.endswith(f"should node07 be down, the file server frees its lock once it gives node07 up (NFSv4: "
                         f"when its lease runs out, about 90 s); one kept longer (NFSv3 keeps it until node07 starts "
                         f"again) goes with the lock file: remove '{run / '.lock'}', but only once no gan process of "
                         f"node07 runs there")


def test_a_lock_taken_on_a_file_removed_meanwhile_is_taken_again_on_the_one_there(tmp_path, monkeypatch):
    # A failed start removes its .lock: a writer that had opened it just before held a lock on a file
    # no other writer would see, and a third could lock the new one
    flock, removed = files_module.fcntl.flock, []

    def removed_meanwhile(handle, operation):
        flock(handle, operation)
        if not removed:
            removed.append(os.fstat(handle.fileno()).st_ino)
            (tmp_path / ".lock").unlink()

    monkeypatch.setattr(files_module.fcntl, "flock", removed_meanwhile)
    with RunLock(tmp_path) as lock:
        assert os.path.samestat(os.fstat(lock._handle.fileno()), os.stat(tmp_path / ".lock"))
    assert len(removed) == 1


def test_a_lock_file_replaced_every_time_it_is_locked_is_an_error_not_a_spin(tmp_path, monkeypatch):
    import gan.training.run_dir as run_dir_module
    from gan.core.files import WriteError

    monkeypatch.setattr(files_module, "same_file", lambda handle, path: False)  # (identities that never agree)
    with pytest.raises(WriteError, match=r"could not lock '.*\.lock': the file was replaced each of 100 times"):
        RunLock(tmp_path).__enter__()
    monkeypatch.setattr(run_dir_module, "same_file", lambda handle, path: False)  # (numbering a run: the same)
    with pytest.raises(WriteError, match=r"could not lock '.*\.run-numbers\.lock': the file was replaced each of 100"):
        run_dir_module.create_run_dir(tmp_path / "runs", "demo")


def test_a_failed_start_leaves_a_lock_another_writer_took_meanwhile(tmp_path):
    from gan.core.files import remove_lock_file

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from gan.core.files import RunLock\n"
                               "with RunLock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)",
                               str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        remove_lock_file(tmp_path)
        assert (tmp_path / ".lock").is_file()  # (removing it would let a third writer in beside the holder)
    finally:
        holder.kill()
        holder.wait()
    remove_lock_file(tmp_path)
    assert not (tmp_path / ".lock").exists()


def test_a_lock_file_another_user_made_is_locked_read_only_and_still_keeps_writers_apart(tmp_path, monkeypatch):
    """A shared folder of runs: the .run-numbers.lock the first user made (mode 644, their umask's) could
    not be opened by a second, whose every start failed "'labruns/.run-numbers.lock': Permission denied"."""
    from gan.training.run_dir import create_run_dir

    out, run = tmp_path / "labruns", tmp_path / "run"
    out.mkdir()
    run.mkdir()
    (out / ".run-numbers.lock").touch()
    (run / ".lock").write_text("4242 h00000000 pid:[1] node07\n")  # (its last holder's record)
    as_another_users(monkeypatch, out / ".run-numbers.lock", run / ".lock")
    assert create_run_dir(out, "demo") == out / "00000-demo"
    with RunLock(run) as lock:
        assert lock.held and not lock._handle.writable()
        with pytest.raises(RunDirectoryBusy), RunLock(run):  # (a second writer: flock locks a read-only file too)
            pass
    assert (run / ".lock").read_text() == "4242 h00000000 pid:[1] node07\n"


@pytest.mark.parametrize("folder_mode, lock_mode", [(0o2775, 0o664), (0o1777, 0o666), (0o755, 0o644)])
def test_a_lock_file_is_writable_by_whoever_may_write_its_folder(tmp_path, folder_mode, lock_mode):
    """Made under the umask (022) alone, a lock file in a lab's setgid folder of runs or a sticky cache
    folder was its maker's to write: every other user's command there met "Permission denied"."""
    from gan.training.run_dir import create_run_dir

    out = tmp_path / "runs"
    out.mkdir()
    out.chmod(folder_mode)
    umask = os.umask(0o022)
    try:
        create_run_dir(out, "demo")
        with RunLock(out / "00000-demo"):
            pass
    finally:
        os.umask(umask)
    assert stat.S_IMODE((out / ".run-numbers.lock").stat().st_mode) == lock_mode
    assert stat.S_IMODE((out / "00000-demo" / ".lock").stat().st_mode) == 0o644  # (a run's own folder: its maker's)


def test_resuming_a_run_that_trains_now_before_its_first_checkpoint_names_the_holder(tmp_path):
    # It said "has no checkpoint-*.pt ...: start it again with gan train CONFIG", of a run still training.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.toml").write_text('recipe = "dcgan"\n')
    with RunLock(run_dir):
        result = CliRunner().invoke(main, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 2 and f"is in use by another gan process (pid {os.getpid()})" in result.output, \
        result.output
    result = CliRunner().invoke(main, ["train", "--resume", str(run_dir)])  # (once it has ended)
    assert result.exit_code == 2 and "has no checkpoint-*.pt to resume from" in result.output, result.output
    assert "start it again with gan train CONFIG" in result.output
    # under torchrun it is started again as it was (the advice dropped the launcher)
    from gan.commands.train import check_resumable
    from gan.core.registry import ConfigError

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WORLD_SIZE", "2")
        with pytest.raises(ConfigError, match=r"start it again with torchrun --nproc_per_node=2 \.\.\. -m gan train "
                                              "CONFIG"):
            check_resumable(run_dir)


def test_the_lock_of_a_killed_writer_is_released_by_the_kernel(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from gan.core.files import RunLock
        with RunLock({str(tmp_path)!r}):
            print("locked", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunDirectoryBusy, match=f"pid {holder.pid}"):
        RunLock(tmp_path).__enter__()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with RunLock(tmp_path):  # no stale lock after kill -9
        assert (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())


def test_temp_files_are_unique_to_their_writer_and_stale_ones_are_removed_on_resume(tmp_path):
    assert temp_name(tmp_path / "a.pt") != temp_name(tmp_path / "a.pt")
    assert f".{os.getpid()}.{host_tag()}." in temp_name(tmp_path / "a.pt").name
    first = train(tiny_config(), tmp_path / "run", CPU, progress_stream=sys.stdout)
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid names no process now
    stale = [first.run_dir / f"checkpoint-00000006.pt.{finished.pid}.{host_tag()}.abcd1234.tmp",
             first.run_dir / "samples" / f"x.png.{finished.pid}.00ff00ff.tmp",  # (as earlier versions named it)
             # another machine's, or a container's before a restart (a new host name), long untouched
             first.run_dir / f"checkpoint-00000006.pt.{finished.pid}.h0000beef.00ff00ff.tmp"]
    for path in stale:
        path.write_bytes(b"left by kill -9")
    os.utime(stale[-1], (time.time() - 601,) * 2)
    # not a dead writer's: a user's files, a folder, a live writer's temp (a gan eval writing now), and
    # one of another machine sharing the folder, whose pid says nothing here
    kept = [first.run_dir / "notes.tmp", first.run_dir / "samples" / "mine.tmp",
            first.run_dir / f"metrics-00000004.json.{os.getppid()}.abcd1234.tmp",
            first.run_dir / f"metrics-00000004.json.{finished.pid}.h0000beef.abcd1234.tmp"]
    for path in kept:
        path.write_bytes(b"keep me")
    (first.run_dir / "old.tmp").mkdir()
    train(tiny_config("train.steps=6"), first.run_dir, CPU, resume=True, progress_stream=sys.stdout)
    assert not any(path.exists() for path in stale)
    assert all(path.read_bytes() == b"keep me" for path in kept) and (first.run_dir / "old.tmp").is_dir()


def test_a_dead_nodes_fresh_checkpoint_temp_is_removed_by_the_run_that_holds_the_lock(tmp_path, monkeypatch):
    # A node that died writing checkpoint 6 left its temp, fresh and of another machine: kept for 10 minutes as
    # a write that may be under way, it outlived the requeued run that finished meanwhile. Only the lock's
    # holder writes checkpoints, so once a run holds it, such a temp is a dead writer's.
    first = train(tiny_config(), tmp_path / "run", CPU, progress_stream=sys.stdout)
    elsewhere = "4242.h0000beef.00ff00ff.tmp"  # (fresh, of another machine)
    dead = [first.run_dir / f"{name}.{elsewhere}" for name in ("checkpoint-00000006.pt", "best.pt", "config.toml")]
    dead.append(first.run_dir / "samples" / f"00000006-generator.png.{elsewhere}")
    live = first.run_dir / f"metrics-00000004.json.{elsewhere}"  # (gan eval writes there without the lock)
    for path in (*dead, live):
        path.write_bytes(b"half written")
    train(tiny_config("train.steps=6"), first.run_dir, CPU, resume=True, progress_stream=sys.stdout)
    assert not any(path.exists() for path in dead) and live.read_bytes() == b"half written"
    # where the file system refuses locks, nothing says the writer is gone: the age rule alone
    def refused(*args):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(files_module.fcntl, "flock", refused)
    for path in dead:
        path.write_bytes(b"half written")
    with pytest.warns(UserWarning, match="refuses locks"):
        train(tiny_config("train.steps=8"), first.run_dir, CPU, resume=True, progress_stream=sys.stdout)
    assert all(path.exists() for path in dead)


# ----------------------------------------------------------------------------- no partial artefacts


def write_failing_after(monkeypatch, count: int):
    """Make gan's atomic writes fail (as on a full disk) after `count` of them succeeded: the renames
    into place, and the hard links that move a new file in without replacing one (not those that keep
    a copy of a file replaced, under a temp name)."""
    real_replace, real_link = files_module.os.replace, files_module.os.link
    done = []

    def replace(source, target):
        if len(done) >= count:
            raise OSError(28, "No space left on device")
        done.append(target)
        return real_replace(source, target)

    def link(source, target):
        if not str(target).endswith(".tmp"):
            if len(done) >= count:
                raise OSError(28, "No space left on device")
            done.append(target)
        return real_link(source, target)

    monkeypatch.setattr(files_module.os, "replace", replace)
    monkeypatch.setattr(files_module.os, "link", link)


def test_a_run_that_cannot_write_its_config_leaves_no_run_directory(tmp_path, monkeypatch):
    write_failing_after(monkeypatch, 0)
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"),
                                       *[arg for item in TINY for arg in ("--set", item)], "--out", str(tmp_path)])
    assert result.exit_code == 2 and "config.toml" in result.output and "No space left" in result.output
    assert [path.name for path in tmp_path.iterdir() if path.is_dir()] == []
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_run_whose_lock_cannot_be_written_is_one_line_and_leaves_no_run_directory(tmp_path, monkeypatch):
    real_open_lock_file = files_module.open_lock_file

    class FullDisk:
        """A lock file whose pid cannot be written, as on a full disk (the error names no file)."""

        def __init__(self, handle):
            self.handle = handle

        def write(self, data):  # (the lock file is unbuffered: the write itself meets the full disk)
            raise OSError(28, "No space left on device")

        def flush(self):
            raise OSError(28, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.handle, name)

    def lock_on_a_full_disk(path):
        handle = real_open_lock_file(path)
        return FullDisk(handle) if Path(path).name == files_module.LOCK_NAME else handle

    monkeypatch.setattr(files_module, "open_lock_file", lock_on_a_full_disk)
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"),
                                       *[arg for item in TINY for arg in ("--set", item)], "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "could not write '" in result.output and ".lock' (" in result.output and "No space left" in result.output
    assert "Traceback" not in result.output
    assert [path.name for path in tmp_path.iterdir() if path.is_dir()] == []


def test_a_sweep_that_cannot_write_its_manifest_is_one_line_and_leaves_no_folder(tmp_path, monkeypatch):
    write_failing_after(monkeypatch, 0)
    result = CliRunner().invoke(main, ["sweep", str(REPO / "experiments" / "dcgan_demo.toml"),
                                       "--grid", "loss.adversarial=vanilla,hinge",
                                       *[arg for item in TINY for arg in ("--set", item)], "--out", str(tmp_path / "sw")])
    assert result.exit_code == 2 and "sweep.toml" in result.output and "No space left" in result.output, result.output
    assert not (tmp_path / "sw").exists()


def test_export_that_cannot_write_its_json_leaves_no_weights(tmp_path, monkeypatch):
    run = train(tiny_config(), tmp_path / "run", CPU, progress_stream=sys.stdout)
    write_failing_after(monkeypatch, 1)  # the weights are written, their .json is not
    result = CliRunner().invoke(main, ["export", str(run.run_dir), "--out", str(tmp_path / "g.safetensors")])
    assert result.exit_code == 2 and "g.safetensors.json" in result.output, result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]


def test_sample_separate_that_fails_half_way_leaves_no_files(tmp_path, monkeypatch):
    run = train(tiny_config(), tmp_path / "run", CPU, progress_stream=sys.stdout)
    write_failing_after(monkeypatch, 3)
    result = CliRunner().invoke(main, ["sample", str(run.run_dir), "--n", "6", "--separate", str(tmp_path / "s")])
    assert result.exit_code == 2 and "No space left" in result.output, result.output
    assert not (tmp_path / "s").exists()  # nor the folder it made for them


# ----------------------------------------------------------------------------- divergence, resumes that cannot fit


def test_weights_that_explode_without_a_nan_stop_the_run_naming_the_step_and_network(tmp_path):
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"),
                                       *[arg for item in TINY for arg in ("--set", item)], "--set", "train.g_lr=100",
                                       "--set", "train.divergence_bound=50", "--out", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert re.search(r"'weights of generator' reached [\d.e+]+ at step 1, beyond train.divergence_bound \(50\): "
                     "the run diverged", result.output)
    assert "done:" not in result.output
    assert [path.name for path in tmp_path.iterdir() if path.is_dir()] == []  # a first step that failed: no run


def test_a_data_error_right_after_step_1_keeps_the_run_its_checkpoint_needs(tmp_path, monkeypatch):
    """The checkpoint of step 1 written on the way out was not counted, so the failed start's
    clean-up deleted config.toml and the resume the error offered was refused."""
    import gan.training.loop as loop
    from gan.data.decode import ImageReadError

    batches = loop.training_batches

    def failing_after_one(*args, **kwargs):
        stream = batches(*args, **kwargs)
        yield next(stream)
        raise ImageReadError("cannot read image 'x.png': image file is truncated")

    monkeypatch.setattr(loop, "training_batches", failing_after_one)
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"),
                                       *[arg for item in TINY for arg in ("--set", item)], "--out", str(tmp_path)])
    assert result.exit_code == 2 and "reading the training data failed at step 1" in result.output, result.output
    (run_dir,) = [path for path in tmp_path.iterdir() if path.is_dir()]
    assert (run_dir / "config.toml").is_file() and (run_dir / "checkpoint-00000001.pt").is_file()
    monkeypatch.setattr(loop, "training_batches", batches)
    resumed = CliRunner().invoke(main, ["train", "--resume", str(run_dir)])
    assert resumed.exit_code == 0 and "at step 1" in resumed.output, resumed.output


@pytest.mark.parametrize("said_by", ["torch", "a worker"])
def test_a_loader_out_of_open_files_mid_run_names_the_limit_and_data_num_workers(tmp_path, monkeypatch, said_by):
    """`ulimit -n` too low for data.num_workers: torch's advice, to call torch.multiprocessing.
    set_sharing_strategy('file_system') "at the beginning of your code", is none a gan user can take, and a
    worker's own EMFILE ended in "Fix the cause" after the system's words alone."""
    import gan.training.loop as loop

    batches = loop.training_batches
    failure = (RuntimeError("Too many open files. Communication with the workers is no longer possible. Please "
                            "increase the limit using `ulimit -n` in the shell or change the sharing strategy by "
                            "calling `torch.multiprocessing.set_sharing_strategy('file_system')` at the beginning "
                            "of your code") if said_by == "torch" else
               OSError("Caught OSError in DataLoader worker process 1.\nOriginal Traceback (most recent call last):\n"
                       "  File \"worker.py\", line 1, in fetch\nOSError: [Errno 24] Too many open files: 'x.png'"))

    def failing_after_one(*args, **kwargs):
        stream = batches(*args, **kwargs)
        try:
            yield next(stream)
            raise failure
        finally:  # (the loop ends the loader's workers through its stream, which this stand-in hides: ended here,
            end_batches(stream)  # not left to the collector, which took up to 20 s in the whole suite)

    monkeypatch.setattr(loop, "training_batches", failing_after_one)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"),
                                       *[arg for item in [*TINY, "data.num_workers=2"] for arg in ("--set", item)],
                                       "--run-dir", str(run)])
    assert_one_error_line(result, "reading the training data failed at step 1 (the open-file limit, `ulimit -n`",
                          "is too low for data.num_workers = 2); training stopped with a checkpoint of step 1",
                          "Raise it (ulimit -n 4096, in the shell that runs gan) or use fewer workers",
                          f"then: gan train --resume {run}")
    assert "set_sharing_strategy" not in result.output and "Fix the cause" not in result.output


def test_a_start_out_of_open_files_is_said_as_such_not_as_its_run_directory(tmp_path, monkeypatch):
    """Out of open files as the loader started, the failed start's clean-up failed on them too, and its
    error replaced the start's: "error: '<run dir>': Too many open files", naming a folder with nothing
    wrong with it."""
    import gan.training.loop as loop

    def out_of_files(run_dir, found_before=()):
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE), str(run_dir))

    def no_pipe_for_the_workers(*args, **kwargs):
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))  # (os.pipe's: no file to name)

    monkeypatch.setattr(loop, "discard_start", out_of_files)
    monkeypatch.setattr(loop, "training_batches", no_pipe_for_the_workers)
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match=f"what the failed start wrote in '{run}' could not be removed"):
        result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"),
                                           *[arg for item in TINY for arg in ("--set", item)], "--run-dir", str(run)])
    line = assert_one_error_line(result, "Too many open files")
    assert str(run) not in line, line


def test_a_logged_value_beyond_the_bound_is_treated_as_a_nan(tmp_path):
    """A bound below what healthy runs log (1e-300: D's probabilities go up to 1) was said to be the
    learning rates' fault: the bound is named instead."""
    with pytest.raises(NonFiniteLossError, match=r"'[\w/]+' reached .* at step 1, beyond train.divergence_bound "
                                                 r"\(0.001\).*train.divergence_bound 0.001 is below what healthy "
                                                 r"runs log .*: raise it \(its default is 1e6\)\.$"):
        train(tiny_config("train.divergence_bound=0.001"), tmp_path / "run", CPU, progress_stream=sys.stdout)


def test_resuming_with_another_architecture_names_the_parameter_the_shapes_and_the_key(tmp_path):
    first = train(tiny_config(), tmp_path / "run", CPU, progress_stream=sys.stdout)
    result = CliRunner().invoke(main, ["train", "--resume", str(first.run_dir), "--set", "train.steps=6",
                                       "--set", "model.generator_args.channels=16"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "network 'generator' of this config does not fit" in result.output
    assert re.search(r"parameter '[\w.]+' has shape \[[\d, ]+\] in the file and \[[\d, ]+\] in the network",
                     result.output)
    assert ("model.generator_args.channels = 8; this config has model.generator_args.channels = 16"
            in result.output)


def test_a_resume_refused_for_its_networks_does_not_first_blame_the_runs_best_pt(tmp_path):
    # best.pt was checked against the changed networks before the checkpoint refused them: "best.pt
    # holds other networks than this run's: its record is dropped", of the run's own best.pt.
    first = train(tiny_config("metrics.every=2", "metrics.num_samples=16"), tmp_path / "run", CPU)
    assert (first.run_dir / "best.pt").is_file()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, ["train", "--resume", str(first.run_dir), "--set", "train.steps=6",
                                           "--set", "model.generator_args.channels=16"])
    assert result.exit_code == 2 and "does not fit" in result.output, result.output
    assert not [str(w.message) for w in caught if "best" in str(w.message)]


def test_resuming_from_a_checkpoint_of_another_recipe_says_it_belongs_to_another_run(tmp_path):
    from conftest import tiny_recipe_config, write_recipe_data

    dcgan = train(tiny_config(), tmp_path / "dcgan", CPU, progress_stream=sys.stdout)
    config = tiny_recipe_config("pix2pix", write_recipe_data(tmp_path / "data"))
    pix2pix = train(config, tmp_path / "pix2pix", CPU, progress_stream=sys.stdout)
    shutil.copy(list_checkpoints(dcgan.run_dir)[-1], pix2pix.run_dir / "checkpoint-00000099.pt")  # step 4: newest
    result = CliRunner().invoke(main, ["train", "--resume", str(pix2pix.run_dir), "--set", "train.steps=8"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "The checkpoint was trained by recipe 'dcgan', this config is 'pix2pix': it belongs to another run" in \
        result.output


def test_a_malformed_newest_checkpoint_falls_back_like_a_corrupt_one(tmp_path):
    first = train(tiny_config(), tmp_path / "run", CPU, progress_stream=sys.stdout)
    newest = list_checkpoints(first.run_dir)[-1]
    state = torch.load(newest, weights_only=True)
    del state["networks"]  # a gan-format file without the training state
    torch.save(state, newest)
    with pytest.warns(UserWarning, match="malformed: it has no 'networks'.*falling back"):
        path, restored = newest_loadable_checkpoint(first.run_dir)
    assert path.name == "checkpoint-00000002.pt" and restored["step"] == 2
    state["networks"], state["samples_seen"] = restored["networks"], -64  # a negative count, edited by hand
    torch.save(state, newest)
    with pytest.warns(UserWarning, match="its 'samples_seen' is -64, not a count of 0 or more.*falling back"):
        path, _ = newest_loadable_checkpoint(first.run_dir)
    assert path.name == "checkpoint-00000002.pt"
    # a random-number state that cannot be restored was a traceback mid-resume (KeyError, "state vector is
    # the wrong size"): it falls back too
    state["samples_seen"] = restored["samples_seen"]
    for rng in ({}, {**restored["rng"], "python": (3, [1, 2], None)}):
        state["rng"] = rng
        torch.save(state, newest)
        with pytest.warns(UserWarning, match="its random-number state cannot be restored.*falling back"):
            path, _ = newest_loadable_checkpoint(first.run_dir)
        assert path.name == "checkpoint-00000002.pt"
    # what only the recipe knows of its state falls back too: it said "resume from an earlier checkpoint of the
    # run (--resume with its path)", which --resume refuses (it takes the run directory)
    state["rng"], state["optimizers"] = restored["rng"], {}
    torch.save(state, newest)
    with pytest.warns(UserWarning, match=rf"checkpoint '{re.escape(str(newest))}' is malformed: its optimizer or recipe "
                                         r"state cannot be restored \(KeyError: 'generator'\); falling back"):
        result = CliRunner().invoke(main, ["train", "--resume", str(first.run_dir), "--set", "train.steps=6"])
    assert result.exit_code == 0 and "resuming from" in result.output and "checkpoint-00000002.pt' at step 2" in \
        result.output, result.output


def test_when_every_checkpoint_is_damaged_none_promises_a_fall_back_and_the_error_says_what_next(tmp_path):
    # The oldest said "falling back to an older checkpoint" too, and the error left the user there.
    first = train(tiny_config(), tmp_path / "run", CPU, progress_stream=sys.stdout)
    checkpoints = list_checkpoints(first.run_dir)
    for path in checkpoints:
        path.write_bytes(path.read_bytes()[:1000])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match=rf"none of the {len(checkpoints)} checkpoints in '.*' loads \(each is "
                                                  r"named above\); train a new run .*or restore a copy"):
            newest_loadable_checkpoint(first.run_dir)
    said = [str(warning.message) for warning in caught]
    assert len(said) == len(checkpoints) and sum("falling back" in line for line in said) == len(checkpoints) - 1
    assert checkpoints[0].name in said[-1] and "falling back" not in said[-1]


def test_a_flipped_bit_in_the_newest_checkpoints_weights_is_found_and_the_resume_falls_back(tmp_path):
    """torch.load does not check the zip's CRC-32s: without gan's check, the damaged weights would
    load silently."""
    first = train(tiny_config(), tmp_path / "run", CPU, progress_stream=sys.stdout)
    newest = list_checkpoints(first.run_dir)[-1]
    data = bytearray(newest.read_bytes())
    with zipfile.ZipFile(newest) as archive:
        record = max(archive.infolist(), key=lambda info: info.file_size)  # the largest tensor
    start = record.header_offset + 30 + len(record.orig_filename.encode()) + len(record.extra)
    data[start + record.file_size // 2] ^= 0x10
    newest.write_bytes(bytes(data))
    torch.load(newest, weights_only=True)  # loads without a word
    with pytest.raises(CheckpointError, match=rf"{newest.name}' is corrupt: its record '.*' fails its checksum"):
        load_checkpoint(newest)
    with pytest.warns(UserWarning, match="fails its checksum.*falling back"):
        path, restored = newest_loadable_checkpoint(first.run_dir)
    assert path.name == "checkpoint-00000002.pt" and restored["step"] == 2


def test_a_newest_checkpoint_with_a_non_finite_weight_falls_back_and_costs_no_rollback(tmp_path):
    """One written by another tool or edited was resumed: the run diverged at its next step, named it the
    last good checkpoint, and --on-nan rollback halved the rates three times for it."""
    first = train(tiny_config(), tmp_path / "run", CPU, progress_stream=sys.stdout)
    newest = list_checkpoints(first.run_dir)[-1]
    state = torch.load(newest, weights_only=True)
    good = copy.deepcopy(state)
    weight = next(key for key, tensor in state["networks"]["discriminator"].items() if tensor.is_floating_point())
    state["networks"]["discriminator"][weight].view(-1)[0] = float("nan")
    torch.save(state, newest)
    with pytest.warns(UserWarning, match=rf"network 'discriminator' parameter '{re.escape(weight)}' is not finite "
                                         r"\(NaN or inf\).*falling back"):
        path, _ = newest_loadable_checkpoint(first.run_dir)
    assert path.name == "checkpoint-00000002.pt"
    moments = copy.deepcopy(good)["optimizers"]["discriminator"]["state"]
    next(tensor for tensor in next(iter(moments.values())).values() if tensor.dim())[...] = float("inf")
    torch.save({**good, "optimizers": {**good["optimizers"], "discriminator": {
        **good["optimizers"]["discriminator"], "state": moments}}}, newest)
    with pytest.warns(UserWarning, match=r"optimizer 'discriminator' state parameter .* is not finite.*falling back"):
        path, _ = newest_loadable_checkpoint(first.run_dir)
    assert path.name == "checkpoint-00000002.pt"
    # a trained network's BatchNorm statistics too (training's watch stops at them: rolled back for good)
    statistics = copy.deepcopy(good)
    running = next(key for key in statistics["networks"]["generator"] if key.endswith("running_var"))
    statistics["networks"]["generator"][running][0] = float("nan")
    torch.save(statistics, newest)
    with pytest.warns(UserWarning, match=rf"network 'generator' parameter '{re.escape(running)}' is not finite"):
        path, _ = newest_loadable_checkpoint(first.run_dir)
    assert path.name == "checkpoint-00000002.pt"
    # ... but not an EMA copy's, which the next step copies from the trained one
    good["networks"]["generator_ema"][running][0] = float("nan")
    torch.save(good, newest)
    assert newest_loadable_checkpoint(first.run_dir)[0] == newest


# ----------------------------------------------------------------------------- a fresh clone


@pytest.mark.parametrize("config", sorted(path.name for path in (REPO / "experiments").glob("*.toml")
                                          if path.name != "dcgan_demo.toml"))
def test_every_shipped_config_without_its_data_says_which_key_to_set_and_where_to_read(config, tmp_path,
                                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)  # a checkout whose datasets/ folders are not filled
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / config), "--set", "train.steps=1"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    if config == "srgan_x4.toml":
        assert "model.init_generator is empty" in result.output
        assert "gan train experiments/srgan_x4.toml --set model.init_generator=runs/<N>-edsr_x4" in result.output
    else:
        assert re.search(r"does not exist.*; it is set by data\.(root|val_root)", result.output)
        assert "datasets/README.md" in result.output
    assert not (tmp_path / "runs").exists() or not [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]


def test_no_shipped_config_readme_command_or_help_example_names_the_shared_folder():
    from gan.commands.main import main as group

    texts = {path.name: path.read_text() for path in (REPO / "experiments").glob("*.toml")}
    commands = ("gan ", "python ", "torchrun ", "bash ", "pip ", "benchmarks/")
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        texts[f"{page.name} commands"] = "\n".join(line for line in page.read_text().splitlines()
                                                 if any(command in line for command in commands))
    for name in group.commands:
        texts[f"gan {name} --help"] = CliRunner().invoke(main, [name, "--help"]).output
    texts["gan --help"] = CliRunner().invoke(main, ["--help"]).output
    assert [name for name, text in texts.items() if "../shared" in text] == []


def test_the_readme_states_the_celeba_learning_rates_the_configs_use_and_a_cpu_only_install():
    from gan.training.resolve import load_config

    readme = " ".join(" ".join((REPO / name).read_text() for name in ("README.md", "docs/training.md")).split())
    for name in ("dcgan_celeba64.toml", "dcgan_celeba128.toml"):
        train_config = load_config(REPO / "experiments" / name, []).train
        assert train_config.g_lr == train_config.d_lr
        assert f"generator and discriminator lr {train_config.g_lr:.0e}".replace("e-04", "e-4") in readme
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme


@pytest.mark.parametrize("room_returns", ["at the next scalar", "only at the close"])
def test_tensorboard_events_on_a_full_disk_are_warned_about_once_and_resume_with_the_scalars_kept(
        tmp_path, monkeypatch, room_returns):
    """A fresh event file waited 60 s after the disk had room again, and the scalars logged without a
    writer were dropped: a run ending within that minute lost everything after the failure."""
    from gan.training import event_log
    from gan.training.event_log import EventLog

    class Writer:
        """Like TensorBoard's: once a write fails, every later call raises the same error."""
        opened = []

        def __init__(self, purge_step):
            self.broken, self.scalars = None, []
            Writer.opened.append(self)

        def add_scalar(self, tag, value, step):
            if self.broken or (len(Writer.opened) == 1 and step == 3):
                self.broken = self.broken or OSError(28, "No space left on device")
                raise self.broken
            self.scalars.append(step)

        def close(self):
            if self.broken:
                raise self.broken

    import threading

    hook = threading.excepthook
    room = {"free": False}
    monkeypatch.setattr(EventLog, "_has_room", lambda self: room["free"])
    log = EventLog(Writer, tmp_path, retry_s=3600)
    with pytest.warns(UserWarning, match="could not be written .*No space left.*logging resumes") as caught:
        for step in range(1, 7):
            log.add_scalar("loss", 1.0, step)
    assert len(caught) == 1 and Writer.opened[0].scalars == [1, 2] and len(Writer.opened) == 1 and not log.alive
    room["free"] = True  # space again: the next call (or the close) opens a fresh event file
    if room_returns == "at the next scalar":
        log.add_scalar("loss", 1.0, 7)
        assert log.alive
    log.close()
    kept = [3, 4, 5, 6] + ([7] if room_returns == "at the next scalar" else [])  # (3: the one the failure met)
    assert len(Writer.opened) == 2 and Writer.opened[1].scalars == kept
    assert event_log.MAX_PENDING >= 10_000
    assert threading.excepthook is hook  # TensorBoard's thread errors are quiet only while the log is open


def test_a_resumes_purge_step_waits_for_the_first_writer_that_opens(tmp_path, monkeypatch):
    """A resume onto a full disk opened its fresh file later without the purge step: the steps trained
    again showed twice in TensorBoard."""
    from gan.training.event_log import EventLog

    opened = []

    def open_writer(purge_step):
        if not getattr(open_writer, "tried", False):  # the disk is full the first time
            open_writer.tried = True
            raise OSError(28, "No space left on device")
        opened.append(purge_step)
        return type("Writer", (), {"add_scalar": lambda *args, **kwargs: None, "close": lambda self: None})()

    monkeypatch.setattr(EventLog, "_has_room", lambda self: True)
    with pytest.warns(UserWarning, match="could not be written"):
        log = EventLog(open_writer, tmp_path, purge_step=5, retry_s=0)
    log.add_scalar("loss", 1.0, 5)
    log.close()
    assert opened == [5]


def test_a_run_whose_event_file_cannot_be_written_finishes(tmp_path, monkeypatch):
    import torch.utils.tensorboard as tensorboard

    real = tensorboard.SummaryWriter

    class FullDiskWriter(real):
        def add_scalar(self, tag, value, step=None, *args, **kwargs):
            if step == 2:
                raise OSError(28, "No space left on device")
            return super().add_scalar(tag, value, step, *args, **kwargs)

    monkeypatch.setattr(tensorboard, "SummaryWriter", FullDiskWriter)
    with pytest.warns(UserWarning, match="TensorBoard events .* could not be written"):
        result = train(tiny_config(), tmp_path / "run", CPU, progress_stream=sys.stdout)
    assert result.step == 4 and result.checkpoint.name == "checkpoint-00000004.pt"


@pytest.mark.parametrize("event_log_writes", [True, False])
def test_a_disk_full_for_a_while_says_each_failed_write_not_only_the_first(tmp_path, monkeypatch, event_log_writes):
    # The CLI shows each distinct warning once ("default"): the same words at each failure of
    # metrics.jsonl, best.pt or a preview grid hid every failure after the first.
    import warnings

    from gan.core import checkpoint as checkpoint_module
    from gan.core.files import WriteError
    from gan.training import loop, records

    def refuse(path, write):
        raise WriteError(f"could not write '{path}' (0.0 MiB free): [Errno 28] No space left on device")

    monkeypatch.setattr(records, "write_atomically", refuse)  # metrics.jsonl
    monkeypatch.setattr(loop, "save_encoded_image", lambda png, path: refuse(path, None))
    monkeypatch.setattr(checkpoint_module, "write_atomically", refuse)  # checkpoints and best.pt
    from gan.training.event_log import EventLog

    monkeypatch.setattr(EventLog, "alive", property(lambda self: event_log_writes))  # (its own failure, or not)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(WriteError):  # (the final checkpoint)
            train(tiny_config("metrics.every=1", "metrics.num_samples=8", "train.steps=3", "log.image_every=1",
                              "train.checkpoint_every=1"), tmp_path / "run", CPU, progress_stream=sys.stdout)
    said = [str(warning.message) for warning in caught if "No space left" in str(warning.message)]
    for what in ("metrics.jsonl", ".png", "checkpoint-"):
        failures = {message for message in said if what in message}
        assert len(failures) >= 2, (what, said)  # one distinct message per step that failed
    # Where the scores are: the event log said to hold them though it had failed too.
    where = "the event log and the line below" if event_log_writes else \
        "the line below, and kept for the event log until the disk has room"
    assert all(f"its scores are in {where}, not in metrics.jsonl" in message for message in said
               if "metrics.jsonl" in message)


def test_a_samples_folder_a_full_disk_refuses_is_warned_of_and_training_goes_on(tmp_path, monkeypatch):
    """The first preview made the samples folder outside the atomic write: a disk full (or gone
    read-only) by then stopped the run with a bare OSError, and the steps before it were lost."""
    import errno
    import pathlib

    make = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.name == "samples":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return make(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    with pytest.warns(UserWarning, match=r"step 2: could not make the folder '.*samples' \(.*MiB free\): .*No space "
                                         r"left on device.*; training goes on"):
        result = train(tiny_config("train.steps=4", "log.image_every=2"), tmp_path / "run", CPU, progress_stream=sys.stdout)
    assert result.step == 4 and result.checkpoint.is_file() and not (result.run_dir / "samples").exists()


def test_an_event_log_on_a_disk_gone_read_only_says_so_not_free_space(tmp_path, monkeypatch):
    """A disk remounted read-only has room: the warning said "74823.0 MiB free" and that logging
    resumes "when there is space again"."""
    import errno

    from gan.training.event_log import EventLog

    def refuse(purge_step):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path))

    monkeypatch.setattr(EventLog, "_has_room", lambda self: False)
    with pytest.warns(UserWarning) as caught:
        EventLog(refuse, tmp_path, retry_s=3600).close()
    said = " ".join(str(warning.message) for warning in caught)
    assert "Read-only file system" in said and "MiB free" not in said and "space" not in said
    assert "resumes when it can write there again" in said


def test_a_run_lock_a_full_disk_refuses_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    # The failed write was buffered; closing the file flushed it again and raised a second OSError
    # from inside the handler, as a traceback.
    import errno
    import io

    from gan.core.files import RunLock, WriteError

    class FullDisk:
        """A file on a full disk, as Python's file objects meet it: a buffered one fails when its
        buffer is flushed (by flush, and again by close while data is pending), a raw one at write."""

        def __init__(self, handle):
            self.handle, self.pending = handle, False

        def write(self, data):
            if isinstance(self.handle, io.RawIOBase):
                raise OSError(errno.ENOSPC, "No space left on device")
            self.pending = True

        def flush(self):
            if self.pending:
                raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            try:
                self.flush()
            finally:
                self.handle.close()

        def __getattr__(self, name):
            return getattr(self.handle, name)

    real_open_lock_file = files_module.open_lock_file
    monkeypatch.setattr(files_module, "open_lock_file", lambda path: FullDisk(real_open_lock_file(path)))
    with pytest.raises(WriteError, match=r"could not write '.*\.lock' \(.* free\): .*No space left on device"):
        with RunLock(tmp_path / "run"):
            pass


def test_a_resume_that_cannot_write_its_config_leaves_it_and_says_nothing_untrue_of_it(tmp_path, monkeypatch):
    # The resume's config.toml was never written, yet it warned "config.toml keeps the settings of
    # this resume, which trained no step" (a restore of the old one had failed too).
    import warnings

    from gan.core.files import WriteError
    from gan.training import loop

    run = train(tiny_config(), tmp_path / "run", CPU, progress_stream=sys.stdout).run_dir
    before = (run / "config.toml").read_bytes()

    def refuse(path, *args, **kwargs):
        raise WriteError(f"could not write '{path}' (0.0 MiB free): [Errno 28] No space left on device")

    monkeypatch.setattr(loop, "write_text_atomically", refuse)
    monkeypatch.setattr(loop, "write_atomically", refuse)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(WriteError, match="config.toml"):
            train(tiny_config("train.steps=6"), run, CPU, resume=True, progress_stream=sys.stdout)
    assert not [warning for warning in caught if "keeps the settings of this resume" in str(warning.message)]
    assert (run / "config.toml").read_bytes() == before


def test_a_one_step_run_whose_only_checkpoint_fails_leaves_no_run_directory(tmp_path, monkeypatch):
    # Its preview grids stayed, in a folder --run-dir then called foreign ("files gan did not
    # write (samples)") and gan compare no run.
    monkeypatch.setattr(checkpoint_module.torch, "save", torch_save_on_a_full_disk({1}))
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"),
                                       *[arg for item in [*TINY, "train.steps=1", "log.image_every=1"]
                                         for arg in ("--set", item)], "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "checkpoint-00000001.pt" in result.output, result.output
    assert not (tmp_path / "runs").exists(), list((tmp_path / "runs").rglob("*"))  # (nor --out, made for it)


def test_each_retry_on_a_disk_still_full_leaves_no_empty_event_file(tmp_path):
    # Every retry (one a minute) made a fresh event file the full disk left empty: hundreds a night.
    from gan.training.event_log import EventLog

    class Writer:
        """Makes its event file, as TensorBoard's does, then fails to write anything into it."""
        count = 0

        def __init__(self, purge_step):
            Writer.count += 1
            (tmp_path / f"events.out.tfevents.{Writer.count}").touch()

        def add_scalar(self, *args):
            raise OSError(28, "No space left on device")

        def close(self):
            pass

    (tmp_path / "events.out.tfevents.0").write_bytes(b"the events written before")
    with pytest.warns(UserWarning, match=r"could not be written \(.* MiB free\): .*No space left"):
        log = EventLog(Writer, tmp_path, retry_s=0)
        for step in range(5):
            log.add_scalar("loss", 1.0, step)
        log.close()
    # (five scalars, and the close's last try for the ones kept)
    assert Writer.count == 6 and [path.name for path in tmp_path.iterdir()] == ["events.out.tfevents.0"]


def test_a_long_legal_file_name_is_written_and_one_too_long_is_named_as_such(tmp_path):
    # A 240-byte name failed ("File name too long", naming the temp): the temp name added 30 bytes
    from gan.core.files import WriteError, is_stale_temp, write_text_atomically

    long_name = tmp_path / ("é" * 118 + ".png")  # 240 bytes in UTF-8
    write_text_atomically(long_name, "whole")
    assert long_name.read_text() == "whole" and sorted(tmp_path.iterdir()) == [long_name]
    assert len(os.fsencode(temp_name(long_name).name)) <= 255 and not is_stale_temp(temp_name(long_name))
    # (cut to its bytes, a temp's name could end in half an 'é': no UTF-8 text, which APFS refuses;
    # one of the two cuts a character in half whatever the pid's digits)
    for name in ("é" * 127 + "x", "x" + "é" * 127):
        assert os.fsencode(temp_name(tmp_path / name).name).decode("utf-8").endswith(".tmp")  # (not half a character)
    too_long = tmp_path / ("x" * 252 + ".png")
    with pytest.raises(WriteError, match=r"its name is 256 bytes, more than a file name holds here \(at most 255"):
        write_text_atomically(too_long, "whole")
    assert sorted(tmp_path.iterdir()) == [long_name]


def test_a_replaced_file_that_cannot_be_put_back_is_kept_and_named(tmp_path, monkeypatch):
    # Where renames keep failing, the copy of what the first file held was deleted with the other temps
    from gan.core.files import WriteError, write_together

    first, second = tmp_path / "a.csv", tmp_path / "a.json"
    first.write_text("earlier a"), second.write_text("earlier b")
    replace = files_module.os.replace

    def renames_into_place_fail_after_the_first(source, target):
        if str(target) in (str(second), str(first)) and (tmp_path / "a.csv").read_text() != "earlier a":
            raise OSError(28, "No space left on device")
        return replace(source, target)

    monkeypatch.setattr(files_module.os, "replace", renames_into_place_fail_after_the_first)
    with pytest.raises(WriteError, match=r"could not write '.*a\.json' .*; the earlier '.*a\.csv' is kept as "
                                         r"'(?P<copy>.*\.tmp)'") as failed:
        write_together({first: lambda temp: temp.write_text("new a"), second: lambda temp: temp.write_text("new b")})
    copy = Path(re.search(r"is kept as '(.*)'", str(failed.value))[1])
    assert copy.read_text() == "earlier a" and second.read_text() == "earlier b"


def test_a_ctrl_c_after_the_rename_keeps_the_file_written(tmp_path, monkeypatch):
    """A Ctrl-C during the folder's fsync, after a file replaced another, deleted it: metrics.jsonl
    was lost whole (a one-file write keeps no copy of what it replaced, to put back)."""
    from gan.core.files import write_text_atomically

    target = tmp_path / "metrics.jsonl"
    target.write_text("step 4\n")

    def interrupted(folder):
        raise KeyboardInterrupt

    monkeypatch.setattr(files_module, "_fsync_folder", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomically(target, "step 4\nstep 8\n")
    assert target.read_text() == "step 4\nstep 8\n" and sorted(tmp_path.iterdir()) == [target]


def test_torchs_words_for_a_short_write_are_said_plainly_and_a_disk_out_of_inodes_is_named(tmp_path, monkeypatch):
    from gan.core.files import WriteError, write_atomically

    def zip_writer_fails(temp):
        temp.write_bytes(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 128 vs 0")

    with pytest.raises(WriteError) as failed:
        write_atomically(tmp_path / "checkpoint-00000030.pt", zip_writer_fails)
    assert "inline_container" not in str(failed.value) and "could not write all of it" in str(failed.value)
    stats = os.statvfs(tmp_path)
    no_inodes = os.statvfs_result((*stats[:7], 0, *stats[8:]))  # f_favail 0, f_files as it is

    monkeypatch.setattr(files_module.os, "statvfs", lambda folder: no_inodes)
    with pytest.raises(WriteError, match=r"MiB free, no free inodes\)"):
        write_atomically(tmp_path / "a.txt", lambda temp: (_ for _ in ()).throw(OSError(28, "No space left on device")))


def test_a_refused_write_does_not_name_the_free_space_as_if_the_disk_were_full(tmp_path):
    """Writing into /sys said "(0.0 MiB free): ... Permission denied", which reads as a full disk."""
    from gan.core.files import WriteError, write_atomically

    def refused(temp):
        raise PermissionError(13, "Permission denied", str(temp))

    def torch_refused(temp):
        raise RuntimeError("[enforce fail at inline_container.cc:747] . open file failed with strerror: Permission "
                           "denied")

    for writer in (refused, torch_refused):
        with pytest.raises(WriteError) as failed:
            write_atomically(tmp_path / "x.safetensors", writer)
        said = str(failed.value)
        assert "MiB free" not in said and "Permission denied" in said and "enforce fail" not in said, said


@pytest.mark.parametrize("appears", ["g.safetensors", "g.safetensors.json"])
def test_a_write_without_overwrite_never_replaces_a_file_another_command_wrote_meanwhile(tmp_path, appears):
    # two `gan export --out X` at once both said "wrote X": the later one replaced the other's without a word
    from gan.core.files import WriteError, write_together

    out, sidecar = tmp_path / "g.safetensors", tmp_path / "g.safetensors.json"

    def described(temp):  # the last file written: the other command's file lands meanwhile
        temp.write_text("{}")
        (tmp_path / appears).write_bytes(b"theirs")

    with pytest.raises(WriteError, match=rf"'{tmp_path / appears}' appeared while this command wrote it \(another "
                                         r"command's\?\): nothing was replaced; run again with --overwrite"):
        write_together({out: lambda temp: temp.write_bytes(b"ours"), sidecar: described}, new_only=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == [appears]  # theirs alone: none of ours, no temps
    assert (tmp_path / appears).read_bytes() == b"theirs"


def test_files_written_together_are_moved_in_under_a_lock_on_their_folder(tmp_path, monkeypatch):
    """Two --overwrite exports moving their pairs in at once could leave one's weights beside the
    other's description: the moves of a pair hold the folder."""
    from conftest import folder_is_held

    from gan.core.files import write_together

    real_replace, held = files_module.os.replace, []

    def replace(source, target):
        held.append(folder_is_held(tmp_path))
        return real_replace(source, target)

    monkeypatch.setattr(files_module.os, "replace", replace)
    write_together({tmp_path / "a": lambda temp: temp.write_text("a"), tmp_path / "b": lambda temp: temp.write_text("b")})
    assert held == [True, True]


def test_a_folder_held_by_another_process_is_waited_for_aloud_then_given_up(tmp_path, monkeypatch, capsys):
    """`flock OUT gan sample --out OUT/g.png` (or another process's flock) left gan waiting on the folder's
    flock in silence, for ever, with Ctrl-C and SIGTERM held back meanwhile: only kill -9 ended it."""
    import fcntl

    from gan.core.files import WriteError, write_together

    monkeypatch.setattr(files_module, "FOLDER_PATIENCE_S", 0.3)
    outside = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(outside, fcntl.LOCK_EX)
    try:
        with pytest.raises(WriteError, match=rf"'{tmp_path}' stayed held by another process for 0 s \(an flock of the "
                                             r"folder: another command's, or `flock` around this one\), so nothing was "
                                             "moved in"):
            write_together({tmp_path / "a": lambda temp: temp.write_text("a"),
                            tmp_path / "b": lambda temp: temp.write_text("b")})
    finally:
        os.close(outside)
    assert f"waiting for '{tmp_path}': another process holds it" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # (nothing moved in, no temps left)
    write_together({tmp_path / "a": lambda temp: temp.write_text("a"), tmp_path / "b": lambda temp: temp.write_text("b")})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a", "b"]
    # a stop while it waits ends the wait at once (it was held back until the folder came free)
    import signal
    import time

    from gan.core.processes import stop_signals_held

    monkeypatch.setattr(files_module, "FOLDER_PATIENCE_S", 60.0)
    fcntl.flock(outside := os.open(tmp_path, os.O_RDONLY), fcntl.LOCK_EX)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt), stop_signals_held():
            signal.raise_signal(signal.SIGINT)  # (a Ctrl-C, held back)
            write_together({tmp_path / "c": lambda temp: temp.write_text("c"),
                            tmp_path / "d": lambda temp: temp.write_text("d")})
    finally:
        os.close(outside)
    assert time.monotonic() - started < 10 and sorted(path.name for path in tmp_path.iterdir()) == ["a", "b"]


@pytest.mark.parametrize("extension", [".jpg", ".bmp", ".tif", ".png"])
def test_an_image_the_disk_cuts_short_is_an_error_not_a_file_cut_short_in_place(tmp_path, extension):
    """Given a file, Pillow's JPEG, BMP and TIFF encoders pass over a short write: under `ulimit -f`
    (or on a full disk) gan sample and translate put an 8 KiB stump in place and said "wrote"."""
    import subprocess
    import sys

    code = f"""
import resource
import numpy as np
from PIL import Image
from gan.core.files import WriteError
from gan.core.images import save_image
import io
image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8))
encoded = io.BytesIO()
image.save(encoded, format=Image.registered_extensions()[{extension!r}])
# (half the file: a file of one encoder buffer is written in one call, which writes part and says so)
resource.setrlimit(resource.RLIMIT_FSIZE, (len(encoded.getvalue()) // 2, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    save_image(image, {str(tmp_path / ('out' + extension))!r})
    print("wrote")
except WriteError as error:
    print("refused:", error)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.startswith("refused: could not write"), result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []


def _tiny_train_command(out: Path, *extra: str) -> list[str]:
    sets = [*TINY, "metrics.every=0", "train.keep_best=''", *extra]
    return [sys.executable, "-m", "gan", "train", str(REPO / "experiments" / "dcgan_demo.toml"),
            *[arg for item in sets for arg in ("--set", item)], "--out", str(out)]


def test_a_run_whose_stderr_is_closed_or_whose_reader_went_away_trains_to_its_end(tmp_path):
    """Started with `2>&-` (Python's sys.stderr is None) a run stopped before step 1 without a word;
    piped into `head`, it stopped at the first progress line after the reader left."""
    import shlex

    closed = subprocess.run(["bash", "-c", shlex.join(_tiny_train_command(tmp_path / "closed")) + " 2>&-"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert closed.returncode == 0, closed.stdout
    assert [path.name for path in list_checkpoints(only_run(tmp_path / "closed"))] == ["checkpoint-00000002.pt",
                                                                                        "checkpoint-00000004.pt"]
    command = _tiny_train_command(tmp_path / "piped", "train.steps=30", "log.every=1", "train.checkpoint_every=30")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    process.stdout.readline()
    process.stdout.close()  # (the reader goes away: `| head -1`)
    assert process.wait(timeout=300) == 0
    assert [path.name for path in list_checkpoints(only_run(tmp_path / "piped"))] == ["checkpoint-00000030.pt"]


@pytest.mark.parametrize("unbuffered", ["", "1"], ids=["buffered", "unbuffered"])  # ("": Python's default)
def test_a_result_that_stdout_cannot_take_is_one_line(tmp_path, unbuffered):
    """With PYTHONUNBUFFERED=1 (Docker, CI) the result was lost without a word and the command exited 0:
    click's probe of stdout, an empty write, failed on /dev/full, and the stream was pointed at /dev/null."""
    (tmp_path / "cache").mkdir()
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "gan", "cache", "list", "--dir", str(tmp_path / "cache")],
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
                                env={**os.environ, "PYTHONUNBUFFERED": unbuffered})
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == ["error: '<standard output>': No space left on device (the disk is "
                                                  "full: free space, or choose a folder on another disk)"]


def test_a_path_too_long_is_said_as_the_path_not_as_its_short_name(tmp_path):
    from gan.core.files import WriteError, write_atomically

    deep = tmp_path.joinpath(*["d" * 200] * 25) / "grid.png"  # (over 4,096 bytes; the name is 8)
    with pytest.raises(WriteError, match=r"its path is \d+ bytes, more than a path holds here \(at most 4096"):
        write_atomically(deep, lambda temp: temp.write_bytes(b"x"))


def test_a_file_size_limit_is_said_as_such_not_as_a_full_disk(tmp_path):
    """`ulimit -f`: "(45435.0 MiB free): ... (a full disk or quota?)" sent the user looking for space."""
    code = f"""
import resource
from pathlib import Path
from gan.core.files import WriteError, write_atomically
resource.setrlimit(resource.RLIMIT_FSIZE, (8192, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    write_atomically(Path({str(tmp_path / 'big.bin')!r}), lambda temp: temp.write_bytes(bytes(100_000)))
except WriteError as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "File too large; this process may write files of at most 8,192 bytes (ulimit -f)" in result.stdout, \
        result.stdout + result.stderr


def test_a_file_size_limit_met_by_safetensors_is_said_as_such_not_as_a_full_disk(tmp_path):
    """safetensors' writer says EFBIG in Rust's words ("File too large (os error 27)") in a
    SafetensorError: a .safetensors export under `ulimit -f` gave the free space alone, as if the disk were full."""
    code = f"""
import resource
from pathlib import Path
import torch
from safetensors.torch import save_file
from gan.core.files import WriteError, write_atomically
resource.setrlimit(resource.RLIMIT_FSIZE, (8192, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    write_atomically(Path({str(tmp_path / 'g.safetensors')!r}),
                     lambda temp: save_file({{"weight": torch.zeros(100_000)}}, str(temp)))
except WriteError as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "File too large (os error 27); this process may write files of at most 8,192 bytes (ulimit -f)" in \
        result.stdout, result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_file_size_limit_met_by_an_older_safetensors_is_said_as_such_too(tmp_path, monkeypatch):
    """safetensors before 0.6 says EFBIG in Rust's debug form, "IoError(Os { code: 27, kind: FileTooLarge, ... })",
    without "(os error 27)": a .safetensors export under `ulimit -f` gave the free space alone, as a full disk."""
    import resource

    import safetensors.torch
    from safetensors import SafetensorError

    from gan.core.files import WriteError, write_atomically

    def older_save_file(tensors, filename, metadata=None):  # (safetensors 0.4 and 0.5, past `ulimit -f`)
        raise SafetensorError('Error while serializing: IoError(Os { code: 27, kind: FileTooLarge, message: "File '
                              'too large" })')

    monkeypatch.setattr(safetensors.torch, "save_file", older_save_file)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (8192, resource.RLIM_INFINITY))
    with pytest.raises(WriteError, match=r"\}\); this process may write files of at most 8,192 bytes \(ulimit -f\)$"):
        write_atomically(tmp_path / "g.safetensors",
                         lambda temp: safetensors.torch.save_file({"weight": torch.zeros(4)}, str(temp)))
    assert list(tmp_path.iterdir()) == []


def test_an_open_file_limit_too_low_to_start_the_loader_workers_is_one_line(tmp_path):
    """`ulimit -n 40` with 8 workers: os.pipe failed as the loader started them, and the run said "error:
    '<run dir>': Too many open files" (its clean-up, out of files too, failed on the run directory), then
    "Exception ignored in ... _MultiProcessingDataLoaderIter.__del__ ... '_workers_status'", after a wait
    for the workers it had started, which lived on to the exit."""
    import resource

    limit = min(64, resource.getrlimit(resource.RLIMIT_NOFILE)[1])  # (torch loads; 32 workers' pipes cannot open)

    def with_the_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    result = subprocess.run(_tiny_train_command(tmp_path / "runs", "data.num_workers=32"), capture_output=True,
                            text=True, timeout=300, cwd=tmp_path, preexec_fn=with_the_limit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and errors == [
        f"error: starting 32 data-loading workers failed: the open-file limit, `ulimit -n` = {limit}, is too low for "
        "data.num_workers = 32. Raise it (ulimit -n 4096, in the shell that runs gan) or use fewer workers "
        "(data.num_workers = 0 reads in this process)"], result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert not run_folders(tmp_path / "runs")  # (a failed start leaves no run)


def test_memory_running_out_is_one_line_saying_what_to_ask_for(tmp_path, tiny_demo_run, monkeypatch):
    """Under `ulimit -v`, train, sample and eval ended in the CPU allocator's traceback."""
    from conftest import assert_one_error_line, invoke

    import gan.commands.sample
    from gan.recipes.dcgan import DCGANRecipe

    def allocation_fails(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1073741824 bytes. "
                           "Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(gan.commands.sample, "image_batches", allocation_fails)
    assert_one_error_line(invoke("sample", tiny_demo_run, "--n", "4", "--out", tmp_path / "four.png"),
                          "out of memory (DefaultCPUAllocator: can't allocate memory", "ask for less at a time (a smaller --n)")
    assert not (tmp_path / "four.png").exists()
    monkeypatch.setattr(DCGANRecipe, "step", allocation_fails)
    result = invoke("train", REPO / "experiments" / "dcgan_demo.toml",
                    *[arg for item in TINY for arg in ("--set", item)], "--out", tmp_path / "runs")
    assert_one_error_line(result, "out of memory", "a smaller train.batch_size")
    # a checkpoint that memory ran out loading is not called corrupt (with advice to start a new run)
    import gan.core.checkpoint

    def no_memory_to_load(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(gan.core.checkpoint, "quiet_torch_load", no_memory_to_load)
    result = invoke("export", tiny_demo_run, "--out", tmp_path / "g.safetensors")
    assert_one_error_line(result, "out of memory (MemoryError): free memory, or run it where there is more")
    assert "corrupt" not in result.output

    def windows_allocator_fails(*args, **kwargs):  # torch's wording on Windows: good checkpoints were "corrupt"
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:72] data. DefaultCPUAllocator: not enough memory: you "
                           "tried to allocate 1073741824 bytes.")

    monkeypatch.setattr(gan.core.checkpoint, "quiet_torch_load", windows_allocator_fails)
    result = invoke("export", tiny_demo_run, "--out", tmp_path / "g.safetensors")
    assert_one_error_line(result, "out of memory (", "not enough memory")
    assert "corrupt" not in result.output
    assert not (tmp_path / "runs").exists()  # (no run directory, nor the --out folder made for it)


def test_a_run_directory_whose_path_is_not_utf8_is_refused_before_step_1(tmp_path):
    """TensorBoard's writer failed on it with UnicodeEncodeError after the run had set up."""
    import os

    out = Path(os.fsdecode(os.fsencode(tmp_path) + b"/bad\xffdir"))
    result = subprocess.run(_tiny_train_command(out), capture_output=True, timeout=300, cwd=tmp_path)
    errors = result.stderr.decode("utf-8", "replace")
    assert result.returncode != 0 and "Traceback" not in errors, errors
    assert "has a path that is not UTF-8 text" in errors and "bad\\xffdir" in errors


def test_a_command_run_in_a_deleted_folder_says_so(tmp_path):
    """Every command ended in "Intel oneMKL FATAL ERROR: Cannot load libtorch_cpu.so"."""
    gone = tmp_path / "gone"
    gone.mkdir()
    code = f"import os, sys; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); sys.argv = ['gan', 'cache', 'list']; " \
           "from gan.commands.main import main; main()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: the folder this command runs in has been deleted (or moved): change to a folder that exists, and run "
        "it again"], result.stderr


def test_an_evaluation_is_written_before_its_scores_are_printed_to_a_stdout_that_fails(tiny_demo_run, tmp_path):
    """`gan eval ... > /dev/full`: the scores were printed first, and the failed print lost the JSON."""
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "gan", "eval", str(tiny_demo_run), "--metrics", "swd", "--n", "8",
                                 "--json", str(tmp_path / "e.json"), "--cache-dir", str(tmp_path / "statistics")],
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert result.returncode == 2 and "error: '<standard output>': No space left on device" in result.stderr
    assert "swd/mean" in (tmp_path / "e.json").read_text()


def test_a_closed_stdout_is_an_error_when_output_went_to_it_and_a_reader_gone_a_quiet_stop(tmp_path):
    """`gan cache list >&-` exited 0 having printed its whole result nowhere; `| head -1` called the
    reader's going an error, and then exited 1, the status of failed work (a diverged run): now 141, as
    a shell reports a Unix tool whose reader left (128 + SIGPIPE), also for the group's own --help."""
    import shlex

    (tmp_path / "cache").mkdir()
    listing = shlex.join([sys.executable, "-m", "gan", "cache", "list", "--dir", str(tmp_path / "cache")])
    closed = subprocess.run(["bash", "-c", listing + " >&-"], capture_output=True, text=True, timeout=120)
    assert closed.returncode == 2 and closed.stderr.strip().splitlines() == [
        "error: '<standard output>': it is closed, and the 42 characters of this command's output went nowhere"
        .replace("42", str(len(f"{tmp_path / 'cache'}: 0 cache(s)\ntotal 0.0 MiB\n")))]
    for command in (listing, shlex.join([sys.executable, "-m", "gan", "--help"])):
        gone = subprocess.run(["bash", "-c", command + " | head -c 0; exit ${PIPESTATUS[0]}"], capture_output=True,
                              text=True, timeout=120)
        assert gone.returncode == 141 and gone.stderr == "", (command, gone.returncode, gone.stderr)
    trained = subprocess.run(["bash", "-c", shlex.join(_tiny_train_command(tmp_path / "runs")) + " >&-"],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr  # (training prints nothing to stdout: nothing lost)


def test_a_path_too_long_for_an_output_is_said_as_the_path(tiny_demo_run, tmp_path):
    from conftest import assert_one_error_line, invoke

    deep = tmp_path.joinpath(*["d" * 200] * 25) / "grid.png"  # (over 4,096 bytes; the name is 8)
    assert_one_error_line(invoke("sample", tiny_demo_run, "--n", "2", "--out", deep),
                          "a path holds at most 4,096 bytes")


def test_a_sweep_or_compare_of_a_folder_whose_path_is_not_utf8_is_one_line(tmp_path):
    """gan sweep wrote sweep.toml, then every run failed at its start; gan compare ended in
    TensorBoard's UnicodeEncodeError traceback (then left such a run out: TensorBoard's reader could
    not open its files, which gan's reads)."""
    import os

    from torch.utils.tensorboard import SummaryWriter

    bad = Path(os.fsdecode(os.fsencode(tmp_path) + b"/bad\xffdir"))
    sweep = subprocess.run([sys.executable, "-m", "gan", "sweep", str(REPO / "experiments" / "dcgan_demo.toml"),
                            "--grid", "train.seed=1,2", "--out", str(bad / "sweep")], capture_output=True, timeout=300)
    errors = sweep.stderr.decode("utf-8", "replace")
    assert sweep.returncode == 2 and "has a path that is not UTF-8 text" in errors and "Traceback" not in errors
    assert not bad.exists()
    run = bad / "run"
    run.mkdir(parents=True)
    (run / "config.toml").write_text('recipe = "dcgan"\n')
    writer = SummaryWriter(str(tmp_path / "written"))  # (TensorBoard's writer cannot name the folder itself)
    writer.add_scalar("metrics/swd/mean", 12.5, 100)
    writer.close()
    for events in (tmp_path / "written").iterdir():
        events.rename(run / events.name)
    compare = subprocess.run([sys.executable, "-m", "gan", "compare", str(run), "--out", str(tmp_path / "cmp")],
                             capture_output=True, timeout=300)
    errors = compare.stderr.decode("utf-8", "replace")
    assert compare.returncode == 0 and "Traceback" not in errors, errors
    assert "| all runs | 1 | 12.5 (one seed) |" in (tmp_path / "cmp" / "compare.md").read_text()


@pytest.mark.parametrize("option", ["--help", "--version"])
def test_the_groups_own_output_that_stdout_cannot_take_is_one_line(option):
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "gan", option], stdout=full, stderr=subprocess.PIPE, text=True,
                                timeout=120)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: '<standard output>': No space left on device"], result.stderr


def _train_in_process(*args: str):
    sets = [*TINY, "metrics.every=0", "train.keep_best=''"]
    return CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"),
                                     *[arg for item in sets for arg in ("--set", item)], *args])


def test_a_file_system_that_refuses_locks_trains_unguarded_with_a_warning(tmp_path, monkeypatch):
    # flock's ENOLCK (some network file systems) ended the run in "error: '<standard output>': No locks available"
    import errno
    import fcntl

    def refused(*args):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refused)
    _trains_unguarded_saying(tmp_path, r"\.run-numbers\.lock': its file system refuses locks \(No locks available\)")
    with pytest.warns(UserWarning) as once:  # (a failed start took the lock again to remove it, saying it twice)
        junk = tmp_path / "junk"
        junk.mkdir()
        (junk / "a.png").write_text("no image")
        failed = _train_in_process("--set", "data.dataset=folder", "--set", f"data.root={junk}",
                                   "--run-dir", str(tmp_path / "failed"))
    assert failed.exit_code == 2 and not (tmp_path / "failed").exists(), failed.output
    assert len([warning for warning in once if "refuses locks" in str(warning.message)]) == 1


def test_a_system_without_flock_trains_unguarded_with_a_warning(tmp_path, monkeypatch):
    # Windows has no fcntl: a second writer of a run directory went through in silence
    import gan.core.files as files_module
    import gan.training.run_dir as run_dir_module

    monkeypatch.setattr(files_module, "fcntl", None)
    monkeypatch.setattr(run_dir_module, "fcntl", None)
    _trains_unguarded_saying(tmp_path, r"\.lock': its file system refuses locks \(this system has no flock\)")


def _trains_unguarded_saying(tmp_path, warned: str) -> None:
    """A run trains to its end, warned of (`warned`, a pattern) that its run directory is unguarded."""
    with pytest.warns(UserWarning, match=warned + ", so nothing keeps a second gan command from writing") as said:
        result = _train_in_process("--out", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    assert any(str(warning.message).startswith(f"'{only_run(tmp_path / 'runs') / '.lock'}'") for warning in said)
    assert list_checkpoints(only_run(tmp_path / "runs"))


def test_an_os_error_naming_no_file_is_said_as_it_is_not_blamed_on_the_standard_output(tmp_path, monkeypatch):
    import errno

    import gan.training.run_dir as run_dir_module

    def failing(*args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(run_dir_module, "create_run_dir", failing)
    result = _train_in_process("--out", str(tmp_path / "runs"))
    assert result.exit_code == 2 and "error: [Errno 5] Input/output error" in result.output, result.output
    assert "standard output" not in result.output


def test_a_failed_start_into_a_new_run_dir_leaves_none_of_the_folders_it_made(tmp_path):
    # train.steps=-1 said so, and left tmp_path/new/a/b behind: made to remove the lock it never took
    result = _train_in_process("--set", "train.steps=-1", "--run-dir", str(tmp_path / "new" / "a" / "b" / "run"))
    assert result.exit_code == 2 and "train.steps must be >= 1" in result.output, result.output
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()  # a folder that was there stays, the folders made below it go
    failed = _train_in_process("--set", "train.steps=-1", "--run-dir", str(tmp_path / "kept" / "a" / "run"))
    assert failed.exit_code == 2 and list(tmp_path.iterdir()) == [tmp_path / "kept"]
    assert list((tmp_path / "kept").iterdir()) == []
    junk = tmp_path / "junk"  # (a start that failed after making the folders and taking the lock)
    junk.mkdir()
    (junk / "a.png").write_text("no image")
    for run_dir in (tmp_path / "kept" / "a" / "run", tmp_path / "kept" / "x" / ".." / "y" / "run"):
        late = _train_in_process("--set", "data.dataset=folder", "--set", f"data.root={junk}", "--run-dir", str(run_dir))
        assert late.exit_code == 2 and "could be read" in late.output, late.output
        assert list((tmp_path / "kept").iterdir()) == []


def test_a_refused_start_into_a_new_out_leaves_none_of_the_folders_it_made(tmp_path):
    """Refused for its --out path (not UTF-8, or too long for the run's files under it), a start left that
    folder, and those it made above it, holding a .run-numbers.lock alone; one into a folder that was
    there left the lock in it."""
    not_utf8 = Path(os.fsdecode(os.fsencode(tmp_path) + b"/a/b\xff/out"))
    deep = tmp_path / "L"
    while len(os.fsencode(deep)) < 4070 - 251:
        deep /= "p" * 250
    deep /= "q" * (4070 - len(os.fsencode(deep)) - 1)  # (the run directory fits in a path; its files do not)
    junk = tmp_path / "junk"  # (data refused once the run was numbered)
    junk.mkdir()
    (junk / "a.png").write_text("no image")
    (tmp_path / "kept").mkdir()
    for out, said, sets in ((not_utf8, "is not UTF-8 text", []), (deep, "File name too long", []),
                            (tmp_path / "kept", "could be read", ["data.dataset=folder", f"data.root={junk}"])):
        result = _train_in_process(*[arg for item in sets for arg in ("--set", item)], "--out", str(out))
        assert result.exit_code == 2 and said in result.output, result.output
        assert sorted(tmp_path.iterdir()) == [junk, tmp_path / "kept"] and not any((tmp_path / "kept").iterdir())


def test_a_start_waiting_to_number_a_run_while_a_failed_one_removes_the_folder_makes_it_again(tmp_path):
    # (the lock it waited on was the removed file's, and the folder it numbers in was gone)
    import fcntl
    import threading

    from gan.core.files import open_lock_file
    from gan.training.run_dir import create_run_dir

    out = tmp_path / "runs"
    out.mkdir()
    made = []
    with open_lock_file(out / ".run-numbers.lock") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        waiting = threading.Thread(target=lambda: made.append(create_run_dir(out, "demo")))
        waiting.start()
        time.sleep(0.5)  # (it waits for the lock)
        (out / ".run-numbers.lock").unlink()  # what a failed start's cleanup does, holding it
        out.rmdir()
    waiting.join(timeout=30)
    assert made == [out / "00000-demo"] and made[0].is_dir() and (out / ".run-numbers.lock").is_file()


@pytest.mark.parametrize("new_only", [False, True])
def test_a_pair_written_over_a_folder_is_refused_and_the_folder_left_in_place(tmp_path, new_only):
    # the folder was renamed aside under a temp name (and its contents with it), the file put in
    # its place, and the write reported done
    from gan.core.files import WriteError, write_together

    (tmp_path / "b.json").mkdir()
    (tmp_path / "b.json" / "inside.txt").write_text("kept")
    with pytest.raises(WriteError, match=r"could not write '.*b\.json'.*Is a directory"):
        write_together({tmp_path / "a.csv": lambda temp: temp.write_text("a"),
                        tmp_path / "b.json": lambda temp: temp.write_text("b")}, new_only=new_only)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["b.json"]
    assert (tmp_path / "b.json" / "inside.txt").read_text() == "kept"


@pytest.mark.parametrize("clock", ["set back a day", "the same second"])
def test_a_resumes_event_file_sorts_after_the_runs_others_so_its_purge_holds(tmp_path, monkeypatch, clock):
    """TensorBoard reads a run's event files in name order, named by the second each opened: resumed on
    a clock set back (NTP, another machine), or opened again within one second (a counter 10 sorting
    before 9), the resume's file came first, and the steps it trained again came back from the older
    file beside its own (two points a step for gan compare; the abandoned ones alone for TensorBoard)."""
    import time as time_module

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.summary.writer import event_file_writer

    from gan.training.loop import train

    run = tmp_path / "run"
    common = ("log.every=1", "train.checkpoint_every=2", "train.keep_best=", "log.image_every=100")
    monkeypatch.setattr(event_file_writer._global_uid, "_value", 9)  # (the first file's counter 9, the next 10)
    train(tiny_config(*common, "train.steps=4"), run, torch.device("cpu"))
    (run / "checkpoint-00000004.pt").unlink()  # as if killed after step 4's events, before its checkpoint
    (first,) = run.glob("events.out.tfevents.*")
    second = int(first.name.split(".")[3])

    class Clock:  # the writer's clock alone: a day behind, or still in the first file's second
        @staticmethod
        def time():
            return second - 86400.0 if clock == "set back a day" else second + 0.5

        def __getattr__(self, name):
            return getattr(time_module, name)

    monkeypatch.setattr(event_file_writer, "time", Clock())
    train(tiny_config(*common, "train.steps=4", "train.g_lr=1e-5"), run, torch.device("cpu"), resume=True)
    monkeypatch.undo()
    files = sorted(run.glob("events.out.tfevents.*"))
    assert len(files) == 2 and files[0] == first, files  # (the resume's sorts last)
    for size_guidance in ({"scalars": 0}, None):  # (gan compare reads every point; TensorBoard keeps a sample)
        events = EventAccumulator(str(run), size_guidance=size_guidance) if size_guidance else EventAccumulator(str(run))
        events.Reload()
        rates = [(event.step, event.value) for event in events.Scalars("lr/generator")]
        assert [step for step, _ in rates] == [1, 2, 3, 4], rates
        assert [round(value, 8) for _, value in rates[2:]] == [1e-5, 1e-5], rates
