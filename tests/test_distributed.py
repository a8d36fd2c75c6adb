"""torchrun data parallelism on the CPU (gloo): two processes train what one does with the global batch."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, TINY, only_run, tiny_config, wait_for_no_writer
from PIL import Image

from gan.core.checkpoint import list_checkpoints
from gan.core.distributed import ProcessGroup, ShardedSampler
from gan.data.sampling import ResumableSampler
from gan.training.loop import train

CPU = torch.device("cpu")
# No BatchNorm (its statistics are per process without SyncBatchNorm, which needs CUDA), and
# the augmentations on, to check they follow the sample rather than the process.
EXACT = ["model.generator_args.norm=none", "model.discriminator_args.norm=none", "data.hflip=true",
         "train.batch_size=8", "train.steps=4", "train.checkpoint_every=2"]


def test_shards_of_a_stream_interleave_back_to_it():
    stream = ResumableSampler(10, seed=3, start=16)
    whole = [next(iter_) for iter_ in [iter(stream)] for _ in range(24)]
    shards = [ShardedSampler(ResumableSampler(10, seed=3, start=16), 8, ProcessGroup(rank, 2, rank))
              for rank in range(2)]
    parts = [iter(shard) for shard in shards]
    rebuilt = []
    for _ in range(3):  # three global batches: 4 from rank 0, then 4 from rank 1
        for part in parts:
            rebuilt += [next(part) for _ in range(4)]
    assert rebuilt == whole
    with pytest.raises(ValueError, match="train.batch_size 9 must divide by the 2 processes"):
        ShardedSampler(stream, 9, ProcessGroup(0, 2, 0))


# Random draws besides the latents (instance noise, DiffAugment's, WGAN-GP's mixing points) were the
# same in every process: each shard of the global batch got the same noise, and 2 processes differed
# from one by 2% after 4 steps. Each now draws for the global batch and keeps its share.
RANDOM_DRAWS = ("loss.instance_noise=0.1", "loss.diffaugment=color,translation,cutout", "loss.augment_p=0.5",
                "loss.preset=wgan-gp")


@pytest.mark.slow
@pytest.mark.parametrize("draws", [(), RANDOM_DRAWS], ids=["latents", "noise-diffaugment-wgan-gp"])
def test_two_gloo_processes_give_the_weights_of_one_with_the_global_batch(tmp_path, draws):
    single = train(tiny_config(*EXACT, *draws), tmp_path / "single", CPU, progress_stream=sys.stdout)
    out = tmp_path / "runs"
    sets = [arg for item in [*TINY, *EXACT, *draws] for arg in ("--set", item)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gan", "train",
         str(REPO / "experiments" / "dcgan_demo.toml"), *sets, "--out", str(out), "--device", "cpu"],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "batch 8 (4 per process x 2 processes)" in result.stderr
    assert result.stderr.count("run directory:") == 1  # rank 0 alone talks ...
    run_dir = only_run(out)  # ... and writes: one run directory, one event file
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    assert [path.name for path in list_checkpoints(run_dir)] == ["checkpoint-00000002.pt", "checkpoint-00000004.pt"]
    assert not list(run_dir.glob("*.tmp"))

    one = torch.load(single.checkpoint, weights_only=True)["networks"]
    two = torch.load(list_checkpoints(run_dir)[-1], weights_only=True)["networks"]
    assert set(one) == set(two) == {"generator", "discriminator", "generator_ema"}
    for name in one:
        for key, value in one[name].items():
            # The sums over the batch round differently in two processes, and Adam turns a rounding
            # difference in a gradient near zero into a whole step of lr (its sign): a few elements may
            # differ by that, the tensor as a whole may not (a shard-wise draw differed by 2%).
            close = torch.isclose(two[name][key], value, rtol=1e-4, atol=1e-5)
            assert close.float().mean() >= 0.97, f"{name}.{key}: {int((~close).sum())} of {close.numel()} differ"
            assert (two[name][key] - value).float().norm() <= 5e-3 * value.float().norm() + 1e-6, f"{name}.{key}"
    assert not torch.equal(one["generator"]["net.0.weight"], tiny_generator_init())
    # and log what one process does: the window means are the global batch's, not rank 0's share's
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logged = [EventAccumulator(str(folder)).Reload() for folder in (single.run_dir, run_dir)]
    for tag in ("loss/d", "loss/g", "d/real", "d/fake", "grad/generator", "grad/discriminator"):
        alone, together = ([event.value for event in events.Scalars(tag)] for events in logged)
        # (as close as the weights above, which those few elements move; abs: a mean near zero, as
        # WGAN's G loss crosses it, differs by its rounding alone)
        assert len(alone) == 4 and together == pytest.approx(alone, rel=1e-3, abs=1e-6), tag


def tiny_generator_init() -> torch.Tensor:
    from gan.recipes.dcgan import DCGANRecipe
    from gan.training.device import seed_everything

    seed_everything(0)
    return DCGANRecipe(tiny_config(*EXACT), CPU, lambda: torch.no_grad()).generator.state_dict()["net.0.weight"]


@pytest.mark.slow
def test_two_gloo_processes_build_the_data_cache_once_and_train(tmp_path, shared_data):
    """One builder per machine: the other process waits at a barrier, then maps what it built."""
    cache_dir, out = tmp_path / "cache", tmp_path / "runs"
    sets = [arg for item in [*TINY, "data.dataset=celeba", f"data.root={shared_data / 'faces'}", "data.max_images=256",
                             "data.cache=mmap", f"data.cache_dir={cache_dir}", "train.steps=3"]
            for arg in ("--set", item)]
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gan", "train",
         str(REPO / "experiments" / "dcgan_demo.toml"), *sets, "--out", str(out), "--device", "cpu"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("decoding 256 images once into the cache") == 1
    assert len(list(cache_dir.glob("*.npy"))) == len(list(cache_dir.glob("*.json"))) == 1
    assert not list(cache_dir.glob("*.tmp"))
    assert "256 training images" in result.stderr and "done: 3 steps" in result.stderr


def test_a_process_other_than_rank_0_says_only_what_its_own_share_of_the_files_did(tmp_path):
    """What the listing left out (system folders, other formats, folders it could not list) printed
    once per process; the files a process decodes, it names itself."""
    import warnings

    from gan.commands.train import leave_the_talking_to_rank_0
    from gan.data.decode import UnreadableImageWarning, find_images
    from gan.data.image_files import image_folder_dataset

    faces = tmp_path / "faces"
    (faces / "@eaDir").mkdir(parents=True)
    for index in range(2):
        Image.new("RGB", (16, 16), (index, 0, 0)).save(faces / f"{index}.png")
    (faces / "photo.heic").write_bytes(b"\0")
    dataset = image_folder_dataset(faces, resolution=8)
    (faces / "0.png").unlink()
    with warnings.catch_warnings(record=True) as said:
        leave_the_talking_to_rank_0()
        find_images(faces)
        dataset[0]
    assert [str(warning.message).split(":")[0] for warning in said] == ["skipping an unreadable file"]
    with warnings.catch_warnings(record=True) as said:
        leave_the_talking_to_rank_0()
        warnings.warn("6 image file(s) could not be decoded when the cache 'c.npy' was built and are left out",
                      UnreadableImageWarning, stacklevel=1)  # (a reused cache's record, as each process says it)
    assert not said


def test_the_process_group_waits_as_long_as_train_dist_timeout_s(monkeypatch):
    from datetime import timedelta

    import gan.core.distributed as distributed

    joined = {}
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend, **kwargs: joined.update(
        backend=backend, **kwargs))
    config = tiny_config("train.dist_timeout_s=5400")
    distributed.initialise(ProcessGroup(1, 2, 1), CPU, config.train.dist_timeout_s)
    assert joined == {"backend": "gloo", "timeout": timedelta(seconds=5400), "device_id": None}
    assert tiny_config().train.dist_timeout_s == 3600  # longer than a rank-0 checkpoint + metrics pass


def test_the_stop_votes_group_waits_as_long_as_train_dist_timeout_s(tmp_path, monkeypatch):
    """The stop vote's group was made with torch's default of 30 minutes: a process whose peer on another
    machine failed before making it (model.init_generator missing there) waited that long, not 20 s."""
    from datetime import timedelta

    import gan.core.distributed as distributed
    import gan.training.loop as loop

    made = {}
    monkeypatch.setattr(distributed.dist, "new_group", lambda **kwargs: made.update(kwargs))
    distributed.StopVote(ProcessGroup(1, 2, 1), 20)
    assert made == {"backend": "gloo", "timeout": timedelta(seconds=20)}
    taken = []

    class Made(Exception):
        """The vote's group made, as the loop makes it: far enough."""

    def vote(group, timeout_s=3600):
        taken.append(timeout_s)
        raise Made

    monkeypatch.setattr(loop, "StopVote", vote)
    with pytest.raises(Made):
        train(tiny_config("train.dist_timeout_s=20"), tmp_path / "run", CPU)
    assert taken == [20]


def test_a_process_that_cannot_join_the_group_says_so_in_one_line(monkeypatch):
    # GLOO_SOCKET_IFNAME=eth9 on one machine: a traceback there, ending in gloo's enforce message
    from gan.core import distributed
    from gan.core.distributed import GroupJoinError

    def refused(backend, **kwargs):
        raise RuntimeError("[enforce fail at ../gloo/transport/tcp/device.cc:83] ifa != nullptr. Unable to find "
                           "address for: eth9\nException raised from ...")

    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", refused)
    monkeypatch.setenv("MASTER_ADDR", "host0")
    monkeypatch.setenv("MASTER_PORT", "29500")
    with pytest.raises(GroupJoinError, match=r"rank 1 could not join the gloo process group at host0:29500 \(\[enforce "
                                          r".*Unable to find address for: eth9\): check this machine's network "
                                          r"settings \(GLOO_SOCKET_IFNAME"):
        distributed.initialise(ProcessGroup(1, 2, 0), CPU, 60)
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")  # (gloo's mesh failing to form again: not the network)
    with pytest.raises(GroupJoinError, match=r"could not join the gloo process group again after torchrun's restart 1 "
                                          r".*: start the same command again, which resumes the --run-dir"):
        distributed.initialise(ProcessGroup(1, 2, 0), CPU, 60)
    # the same mesh, said as "timed out connecting", there and as the stop vote's group forms: a traceback
    mesh = "Gloo connectFullMesh failed with [../gloo/transport/tcp/pair.cc:152] timed out connecting: SO_ERROR: " \
           "Connection refused, remote=[127.0.0.1]:45603"

    def no_mesh(*args, **kwargs):
        raise RuntimeError(mesh)

    monkeypatch.setattr(distributed.dist, "init_process_group", no_mesh)
    monkeypatch.setattr(distributed.dist, "new_group", no_mesh)
    for join in (lambda: distributed.initialise(ProcessGroup(1, 2, 0), CPU, 60),
                 lambda: distributed.StopVote(ProcessGroup(1, 2, 0))):
        with pytest.raises(GroupJoinError, match=r"again after torchrun's restart 1 \(Gloo connectFullMesh failed"):
            join()


DIES_AT_STEP_3 = """
import os
import sys

from gan.training import loop

if os.environ["RANK"] == "1":
    one_step = loop._one_step

    def dying(run, stop):
        if run.step == 3:
            os._exit(9)  # as a process killed mid-run: no message, no goodbye to the group
        return one_step(run, stop)

    loop._one_step = dying

from gan.commands.main import main

main(sys.argv[1:])
"""


@pytest.mark.slow
def test_a_process_that_dies_leaves_the_others_one_line_that_says_how_to_resume(tmp_path):
    script = tmp_path / "dies.py"
    script.write_text(DIES_AT_STEP_3)
    sets = [arg for item in [*TINY, *EXACT, "train.steps=50", "data.num_workers=0"] for arg in ("--set", item)]
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), "train",
         str(REPO / "experiments" / "dcgan_demo.toml"), *sets, "--out", str(tmp_path / "runs"), "--device", "cpu"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode != 0
    # (torchrun's own agent then prints its ChildFailedError traceback: not ours to change)
    ours = [line for line in result.stderr.splitlines() if line.startswith(("[rank0]", "error:", "Exception ignored"))]
    run_dir = only_run(tmp_path / "runs")
    # torchrun's SIGTERM to the survivor may come before gloo's broken connection does: one line either way
    assert len(ours) == 1, result.stderr[-3000:]
    if "stopped by SIGTERM" not in ours[0]:
        assert "another process of this torchrun run stopped" in ours[0], ours
        assert f"torchrun --nproc_per_node=2 ... -m gan train --resume {run_dir}" in ours[0]
    assert [path.name for path in list_checkpoints(run_dir)] == ["checkpoint-00000002.pt"]  # kept


def test_only_a_lost_process_is_told_in_one_line_other_errors_keep_their_traceback():
    from gan.commands.train import lost_process

    worker = lost_process(RuntimeError("DataLoader worker (pid 497) is killed by signal: Killed. "), False)
    assert "data-loading worker process died (DataLoader worker (pid 497) is killed by signal: Killed;" in worker
    assert "data.num_workers" in worker
    # PyTorch words it so too, when the loader notices the pipe before the signal
    terminated = lost_process(RuntimeError("DataLoader worker (pid 498) is killed by signal: Terminated. "), False)
    assert "a signal sent to it" in terminated and "memory" not in terminated
    assert "worker process died" in lost_process(RuntimeError("DataLoader worker (pid(s) 7800) exited unexpectedly"),
                                                 False)
    peer = RuntimeError("[../gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:8582: Connection reset by peer.")
    assert "another process of this torchrun run" in lost_process(peer, True)
    assert lost_process(peer, False) is None  # one process alone has no peer to lose
    assert lost_process(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), True) is None
    assert lost_process(ValueError("Connection reset by peer"), True) is None


def test_a_loader_worker_killed_by_sigbus_is_said_as_shared_memory_run_out_not_as_a_signal_sent_to_it():
    """A worker writes its batch into /dev/shm; a full one (Docker's 64 MB) kills it with SIGBUS: "a
    data-loading worker process died (...: Bus error; a signal sent to it)" sent the user looking for
    who had signalled it. It is the loop's error to say, with the shared memory's size and what to do."""
    from gan.commands.train import lost_process
    from gan.data.sampling import loader_shortage

    bus_error = RuntimeError("DataLoader worker (pid 4023) is killed by signal: Bus error. ")
    assert lost_process(bus_error, False) is None
    cause, fix = loader_shortage(bus_error, 4)
    assert cause.startswith("the shared memory that the 4 loader workers hand their batches over in is too small: "
                            "/dev/shm") and "--shm-size" in fix
    assert loader_shortage(RuntimeError("DataLoader worker (pid 4024) is killed by signal: Killed. "), 4) is None


def test_a_lost_process_line_offers_resume_only_where_a_checkpoint_is(tmp_path):
    """A run that lost a peer before its first checkpoint has a config.toml but nothing to resume:
    the line used to offer `--resume`, which then refused the run."""
    from gan.commands.train import lost_process, resume_advice

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.toml").write_text("recipe = 'dcgan'\n")
    assert resume_advice(run_dir, 2) == "" and resume_advice(None, 2) == ""
    (run_dir / "checkpoint-00000002.pt").write_bytes(b"")
    assert resume_advice(run_dir, 2).endswith(f"resume with `torchrun --nproc_per_node=2 ... -m gan train --resume {run_dir}`")
    assert resume_advice(run_dir, 1).endswith(f"resume with `gan train --resume {run_dir}`")
    # gloo's text is cut at a word, not mid-word
    long = RuntimeError("[../gloo/transport/tcp/pair.cc:545] Connection closed by peer " + "word " * 60)
    line = lost_process(long, True)
    assert line.endswith("word ...)"), line


@pytest.mark.slow
def test_rank_0_alone_gives_the_warnings_and_errors_every_process_meets(tmp_path):
    """Every process reads the same config: its warnings and its errors used to print once per
    process. Rank 0 gives them; the others stay quiet about what rank 0 says."""
    sets = [arg for item in [*TINY, *EXACT, "train.steps=2", "data.root=nowhere"] for arg in ("--set", item)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gan",
               "train", str(REPO / "experiments" / "dcgan_demo.toml"), *sets, "--out", str(tmp_path / "runs"),
               "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("warning: data.root = 'nowhere' changes nothing") == 1, result.stderr[-3000:]
    refused = subprocess.run([*command, "--set", "train.nokey=1"], capture_output=True, text=True, env=env,
                             timeout=300)
    assert refused.returncode != 0
    assert refused.stderr.count("error: unknown config key 'train.nokey'") == 1, refused.stderr[-3000:]
    misspelt = subprocess.run([*command, "--stirct"], capture_output=True, text=True, env=env, timeout=300)
    assert misspelt.returncode != 0  # a usage error, which click printed in every process
    assert [line.startswith("error: No such option") and "--stirct" in line
            for line in misspelt.stderr.splitlines()].count(True) == 1, misspelt.stderr[-3000:]
    # the data every process scans alike: a missing folder was said once per process
    missing = subprocess.run([*command, "--set", "data.dataset=folder", "--set", f"data.root={tmp_path / 'none'}"],
                             capture_output=True, text=True, env=env, timeout=300)
    assert missing.returncode != 0 and missing.stderr.count("does not exist") == 1, missing.stderr[-3000:]


def test_only_the_writing_process_probes_the_run_directory(tmp_path):
    """Rank 1's write probe recreated a run directory that rank 0 had removed on a failed start."""
    from gan.core.registry import ConfigError
    from gan.training.preflight import check_run_can_finish

    check_run_can_finish(tiny_config(), tmp_path / "run", None, writes=False)
    assert not (tmp_path / "run").exists()
    check_run_can_finish(tiny_config(), tmp_path / "run", None)
    assert not (tmp_path / "run").exists()  # (the writing process's probe removes the folders it made)
    (tmp_path / "run").write_text("a file")  # (so the probe is seen where it runs: it refuses the file)
    check_run_can_finish(tiny_config(), tmp_path / "run", None, writes=False)
    with pytest.raises(ConfigError, match="the run directory '.*run' is a file, not a folder"):
        check_run_can_finish(tiny_config(), tmp_path / "run", None)


@pytest.mark.slow
def test_killing_torchrun_outright_stops_its_processes_with_a_checkpoint(tmp_path):
    """torchrun starts its processes in a session of their own: after a kill -9 of the launcher they
    used to train on alone, holding the run directory's lock against a restart."""
    import time


    run_dir = tmp_path / "run"
    # (the processes agree to stop at a log point)
    sets = [arg for item in [*TINY, *EXACT, "train.steps=100000", "train.checkpoint_every=100000", "log.every=5",
                             "log.image_every=100000", "data.num_workers=0"] for arg in ("--set", item)]
    launcher = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gan", "train",
         str(REPO / "experiments" / "dcgan_demo.toml"), *sets, "--run-dir", str(run_dir), "--device", "cpu"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not list(run_dir.glob("events.out.tfevents.*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)
    launcher.kill()
    launcher.wait()
    if not wait_for_no_writer(run_dir):
        pytest.fail("the torchrun processes kept training after their launcher was killed")
    (checkpoint,) = list_checkpoints(run_dir)  # written on the way out
    assert 0 < int(checkpoint.stem.split("-")[1]) < 100000


def test_sync_batchnorm_in_a_single_process_is_warned_of(tmp_path):
    with pytest.warns(UserWarning, match="train.sync_batchnorm = true changes nothing in a single process"):
        train(tiny_config("train.sync_batchnorm=true", "train.steps=1"), tmp_path / "run", CPU)


@pytest.mark.slow
def test_on_nan_rollback_rolls_every_process_back_together_and_rank_0_says_it_once(tmp_path):
    # Rank 1 never wrote a checkpoint, so it took the divergence for one before any and stopped while
    # rank 0 rolled back: rank 0 then lost its peer, and both printed the divergence.
    sets = [arg for item in [*TINY, *EXACT, "train.steps=60", "train.d_lr=0.5", "train.g_lr=0.5", "train.keep_best="]
            for arg in ("--set", item)]
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gan", "train",
         str(REPO / "experiments" / "dcgan_demo.toml"), *sets, "--out", str(tmp_path / "runs"), "--device", "cpu",
         "--on-nan", "rollback"], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300)
    said = result.stderr
    assert result.returncode != 0 and "another process of this torchrun run" not in said, said[-3000:]
    assert [said.count(f"(rollback {index} of 3)") for index in (1, 2, 3)] == [1, 1, 1], said[-3000:]
    assert said.count("error: 'grad/discriminator' reached") + said.count("error: 'loss/") == 1, said[-3000:]


@pytest.mark.slow
def test_a_two_process_cyclegan_resumes_exactly_with_each_process_own_image_pools(tmp_path):
    # The checkpoint held rank 0's pools alone, and every process resumed with them: rank 1's
    # discriminators then saw other fakes than an uninterrupted run's.
    from conftest import TINY_CYCLEGAN, write_recipe_data

    data = write_recipe_data(tmp_path / "data")
    sets = [arg for item in [*TINY_CYCLEGAN, f"data.root={data['unpaired']}", "train.batch_size=4",
                             "loss.pool_size=2", "log.eval_every=0", "train.keep_best="]
            for arg in ("--set", item)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gan",
                "train"]
    config = str(REPO / "experiments" / "cyclegan_horse2zebra.toml")

    def run(*args: str) -> None:
        result = subprocess.run([*torchrun, *args, "--device", "cpu"], capture_output=True, text=True, env=env,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]

    run(config, *sets, "--set", "train.steps=6", "--run-dir", str(tmp_path / "whole"))
    run(config, *sets, "--set", "train.steps=4", "--run-dir", str(tmp_path / "parted"))
    run("--resume", str(tmp_path / "parted"), "--set", "train.steps=6")
    whole, parted = (torch.load(list_checkpoints(tmp_path / name)[-1], weights_only=True)
                     for name in ("whole", "parted"))
    assert whole["step"] == parted["step"] == 6 and len(parted["per_process"]) == 2
    assert not torch.equal(parted["per_process"][0]["pool_A"]["images"], parted["per_process"][1]["pool_A"]["images"])
    for name, weights in whole["networks"].items():
        for key, value in weights.items():
            assert torch.equal(parted["networks"][name][key], value), f"{name}.{key}"


def stopped_torchrun(run_dir, extra_sets: list[str], settle_s: float) -> tuple[subprocess.Popen, str, float]:
    """A 2-process demo run in `run_dir` that trains on, sent SIGTERM `settle_s` after its event file
    appears: (torchrun, what it said, seconds from the signal to its end)."""
    import signal
    import time

    sets = [arg for item in [*TINY, *EXACT, "train.steps=100000", "train.checkpoint_every=100000", *extra_sets]
            for arg in ("--set", item)]
    launcher = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gan", "train",
         str(REPO / "experiments" / "dcgan_demo.toml"), *sets, "--run-dir", str(run_dir), "--device", "cpu"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not list(run_dir.glob("events.out.tfevents.*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(settle_s)
    signalled = time.monotonic()
    launcher.send_signal(signal.SIGTERM)
    _, said = launcher.communicate(timeout=120)
    return launcher, said, time.monotonic() - signalled


@pytest.mark.slow
def test_a_stopped_torchrun_run_says_to_resume_it_with_torchrun(tmp_path):
    # It said `gan train --resume`, which resumes in one process (and a BatchNorm run then changes).
    run_dir = tmp_path / "run"
    _, said, _ = stopped_torchrun(run_dir, [], settle_s=1)
    assert f"Continue with: torchrun --nproc_per_node=2 ... -m gan train --resume {run_dir}" in said, said[-3000:]
    assert list_checkpoints(run_dir)


def test_another_machines_first_process_says_the_stop_that_rank_0_saves(tmp_path, capsys):
    """A SIGTERM to the first machine's torchrun stopped every process at one step, with a checkpoint, but
    the second machine showed only torchrun's traceback of its exit code 143."""
    from gan.commands.train import say_stop_on_another_machine
    from gan.core.checkpoint import checkpoint_path
    from gan.training.loop import TrainResult

    stopped = TrainResult(tmp_path, 222, checkpoint_path(tmp_path, 222), "a signal to another process")
    line = ("stopped by a signal to another process at step 222, with a checkpoint of that step "
            "(checkpoint-00000222.pt), which rank 0 writes on its machine: its output there says how to resume\n")
    for rank, local_rank, said in ((2, 0, True), (3, 1, False), (1, 1, False), (0, 0, False)):  # (2 machines of 2)
        say_stop_on_another_machine(ProcessGroup(rank, 4, local_rank), stopped)
        assert (capsys.readouterr().err == line) == said, (rank, local_rank)
    waited = TrainResult(tmp_path, 223, checkpoint_path(tmp_path, 222), "SIGTERM")  # (stopped waiting for data)
    say_stop_on_another_machine(ProcessGroup(2, 4, 0), waited)
    assert capsys.readouterr().err == ""  # (no checkpoint of its step to speak of)


def train_two_processes_with(tmp_path, injected_code: str, *options: str) -> str:
    """stderr of a 2-process tiny DCGAN run of 6 steps whose processes first run `injected_code`
    (a sitecustomize module: it may read RANK to act in one process alone)."""
    injected = tmp_path / "injected"
    injected.mkdir()
    (injected / "sitecustomize.py").write_text(injected_code)
    sets = [arg for item in [*TINY, *EXACT, "train.steps=6", "train.dist_timeout_s=60"] for arg in ("--set", item)]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(injected), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gan", "train",
         str(REPO / "experiments" / "dcgan_demo.toml"), *sets, "--out", str(tmp_path / "runs"), "--device", "cpu",
         *options], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    return result.stderr


LOSS_D_NAN_AT_STEP_3 = (
    "    from gan.recipes.dcgan import DCGANRecipe\n"
    "    original = DCGANRecipe.step\n"
    "    def step(self, batch, step):\n"
    "        metrics = original(self, batch, step)\n"
    "        if step == 3:\n"
    "            metrics['loss/d'] = metrics['loss/d'] * float('nan')\n"
    "        return metrics\n"
    "    DCGANRecipe.step = step\n")


@pytest.mark.slow
def test_a_divergence_one_process_alone_sees_stops_every_process_at_its_step(tmp_path):
    # Each process watches its own share of the batch (its losses, its gradient norms before they
    # are averaged): rank 1 stopped alone and rank 0 waited for it, then reported a lost process.
    said = train_two_processes_with(tmp_path, "import os\nif os.environ.get('RANK') == '1':\n" + LOSS_D_NAN_AT_STEP_3)
    assert said.count("error: 'loss/d' became NaN or infinite at step 3") == 1, said[-3000:]
    assert "another process" not in said and "lost" not in said, said[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_non_finite_buffer_one_process_alone_holds_stops_every_process_at_its_step(tmp_path, rank):
    # BatchNorm's running statistics are each process's own (without train.sync_batchnorm): a NaN in one
    # process's alone stopped that process, and the other waited for it
    said = train_two_processes_with(tmp_path, (
        f"import os\nif os.environ.get('RANK') == '{rank}':\n"
        "    from gan.recipes.dcgan import DCGANRecipe\n"
        "    original = DCGANRecipe.step\n"
        "    def step(self, batch, step):\n"
        "        metrics = original(self, batch, step)\n"
        "        if step == 3:\n"
        "            self.generator.net[1].running_mean.fill_(float('nan'))\n"
        "        return metrics\n"
        "    DCGANRecipe.step = step\n"), "--set", "model.generator_args.norm=batch")
    assert said.count("error: 'generator's buffer net.1.running_mean' became NaN or infinite at step") == 1, \
        said[-3000:]
    assert "another process" not in said and "lost" not in said, said[-3000:]


@pytest.mark.slow
def test_rollback_follows_rank_0s_checkpoints_when_its_write_failed(tmp_path):
    # The other processes take rank 0's checkpoint at each due step as written. When its write
    # failed (a full disk) there is none to roll back to: rank 1 rolled back alone.
    said = train_two_processes_with(
        tmp_path,
        "import os\n"
        "if os.environ.get('RANK') == '0':\n"
        "    import gan.training.loop as loop\n"
        "    def refuse(state, path):\n"
        "        raise loop.WriteError(f'cannot write {path}: no space left')\n"
        "    loop.save_checkpoint = refuse\n"
        "if os.environ.get('RANK') is not None:\n" + LOSS_D_NAN_AT_STEP_3,
        "--set", "train.checkpoint_every=2", "--on-nan", "rollback")
    assert said.count("stopping (no checkpoint was written yet)") == 1 and "rolling back" not in said, said[-3000:]
    assert "another process" not in said and "lost" not in said, said[-3000:]


def test_image_pools_of_another_number_of_processes_are_warned_of_on_resume(tmp_path):
    # A checkpoint rank 0 wrote alone (a stop while reading data) holds its pools only: every
    # process resumed with them in silence.
    import warnings
    from types import SimpleNamespace

    from gan.training.loop import _restore_per_process

    loaded = []
    recipe = SimpleNamespace(load_per_process_state=loaded.append)

    def run(rank: int) -> SimpleNamespace:
        return SimpleNamespace(recipe=recipe, group=ProcessGroup(rank, 2, rank), main=rank == 0,
                               last_checkpoint=tmp_path / "checkpoint-00000006.pt")

    with pytest.warns(UserWarning, match="holds the image pools of one process .* each of the 2 processes starts"):
        _restore_per_process(run(0), {})
    with pytest.warns(UserWarning, match="holds the image pools of 3 processes, and this resume runs 2"):
        _restore_per_process(run(0), {"per_process": [{"rank": 0}, {"rank": 1}, {"rank": 2}]})
    assert loaded == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _restore_per_process(run(1), {"per_process": [{"rank": 0}, {"rank": 1}]})
    assert loaded == [{"rank": 1}]


@pytest.mark.slow
def test_a_collective_that_waits_past_dist_timeout_s_is_said_in_one_line(tmp_path):
    # gloo's "Timed out waiting 3000ms for send operation" came out as a traceback, naming no setting.
    said = train_two_processes_with(
        tmp_path,
        "import os\n"
        "if os.environ.get('RANK') == '0':\n"
        "    import time\n"
        "    from gan.recipes.dcgan import DCGANRecipe\n"
        "    original = DCGANRecipe.step\n"
        "    def step(self, batch, step):\n"
        "        if step == 3:\n"
        "            time.sleep(12)\n"
        "        return original(self, batch, step)\n"
        "    DCGANRecipe.step = step\n",
        "--set", "train.dist_timeout_s=3")
    assert "waited longer than train.dist_timeout_s = 3 s" in said, said[-3000:]
    ours = [line for line in said.splitlines() if line.startswith(("[rank0]", "[rank1]", "error:"))]
    assert len(ours) <= 2 and not any("Traceback" in line for line in ours), said[-3000:]  # (a line a process)


def test_a_collective_timeout_is_told_apart_from_a_lost_process():
    from gan.commands.train import lost_process

    gloo = RuntimeError("[../gloo/transport/tcp/unbound_buffer.cc:129] Timed out waiting 3000ms for send operation")
    line = lost_process(gloo, True, 900)
    assert "waited longer than train.dist_timeout_s = 900 s" in line and "Timed out waiting 3000ms" in line
    assert "another process of this torchrun run stopped" in lost_process(
        RuntimeError("Connection closed by peer [127.0.0.1]:41377"), True, 900)
    assert lost_process(gloo, False, 900) is None  # one process has no collective to wait in
    store = RuntimeError("wait timeout after 20000ms, keys: /default_pg/0//cpu//0/1")  # (was a traceback)
    assert "waited longer than train.dist_timeout_s = 20 s" in lost_process(store, True, 20)


def test_the_resume_line_of_a_run_over_several_machines_gives_the_processes_of_each(monkeypatch):
    # --nproc_per_node=16 for two machines of 8: 16 processes on one, or 32 on both
    from gan.core.processes import gan_launcher

    monkeypatch.setenv("GROUP_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert gan_launcher(16) == "torchrun --nnodes=2 --nproc_per_node=8 ... -m gan"
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")  # (machines of 1 and 2 processes: --nnodes=3 was said)
    assert gan_launcher(3) == "torchrun --nnodes=2 --nproc_per_node=<each machine's as before> ... -m gan"
    monkeypatch.setenv("GROUP_WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert gan_launcher(16) == "torchrun --nproc_per_node=16 ... -m gan"
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    monkeypatch.delenv("GROUP_WORLD_SIZE")
    assert gan_launcher(16) == "torchrun --nproc_per_node=16 ... -m gan" and gan_launcher(1) == "gan"


def test_torchrun_restarts_under_out_are_refused_as_each_would_start_a_new_run(tmp_path, monkeypatch):
    # torchrun --max-restarts ran the same line again: a new numbered run from step 0, the old one left
    from conftest import invoke

    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "2")
    sets = [arg for item in TINY for arg in ("--set", item)]
    refused = invoke("train", REPO / "experiments" / "dcgan_demo.toml", *sets, "--out", tmp_path / "runs")
    assert refused.exit_code == 2 and "torchrun --max-restarts=2 runs this command again after a failure" in \
        refused.output and "give --run-dir DIR instead" in refused.output, refused.output
    assert not (tmp_path / "runs").exists() or not [path for path in (tmp_path / "runs").iterdir() if path.is_dir()]
    assert invoke("train", REPO / "experiments" / "dcgan_demo.toml", *sets, "--run-dir", tmp_path / "run").exit_code == 0
    assert invoke("train", "--resume", tmp_path / "run", "--set", "train.steps=6").exit_code == 0


def test_a_requeued_slurm_job_under_out_is_refused_as_it_would_start_a_new_run(tmp_path, monkeypatch):
    # A SLURM requeue (SLURM_RESTART_COUNT=1) ran the job's line again: "run directory: runs/00001-..." from
    # step 0, without a word, and 00000 left unfinished
    from conftest import invoke

    sets = [arg for item in TINY for arg in ("--set", item)]
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")  # (the job's first start)
    assert invoke("train", REPO / "experiments" / "dcgan_demo.toml", *sets, "--out", tmp_path / "runs").exit_code == 0
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    refused = invoke("train", REPO / "experiments" / "dcgan_demo.toml", *sets, "--out", tmp_path / "runs")
    assert refused.exit_code == 2 and "this SLURM job was requeued (SLURM_RESTART_COUNT=1)" in refused.output \
        and "give --run-dir DIR instead" in refused.output, refused.output
    assert [path.name for path in (tmp_path / "runs").iterdir() if path.is_dir()] == ["00000-dcgan_demo"]


def test_a_side_task_failure_under_torchrun_says_to_resume_with_torchrun(tmp_path):
    from gan.training.errors import SideTaskError

    checkpoint = tmp_path / "run" / "checkpoint-00000004.pt"
    alone = SideTaskError("previews", 4, RuntimeError("broke"), checkpoint, tmp_path / "run")
    assert str(alone).endswith(f"then: gan train --resume {tmp_path / 'run'}")
    torchrun = SideTaskError("previews", 4, RuntimeError("broke"), checkpoint, tmp_path / "run", processes=2)
    assert str(torchrun).endswith(f"then: torchrun --nproc_per_node=2 ... -m gan train --resume {tmp_path / 'run'}")


def test_train_dist_timeout_s_is_bounded_where_the_config_is_read():
    from gan.core.registry import ConfigError

    assert tiny_config("train.dist_timeout_s=604800").train.dist_timeout_s == 604800
    with pytest.raises(ConfigError, match=r"train.dist_timeout_s must be in \[1, 604800\], got 10000000000"):
        tiny_config("train.dist_timeout_s=10000000000")


@pytest.mark.slow
def test_the_closing_count_of_unreadable_files_joins_every_process(tmp_path):
    # Each process decodes its own share of the batches: rank 0's closing line counted only the
    # files it met itself. Here rank 1 alone meets one (as if its decode failed), rank 0 none.
    from conftest import random_rgb

    images = tmp_path / "images"
    images.mkdir()
    for index in range(16):
        random_rgb((32, 32), index).save(images / f"{index:02d}.png")
    injected = tmp_path / "injected"
    injected.mkdir()
    (injected / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('RANK') == '1':\n"
        "    from gan.data import image_files\n"
        "    call = image_files.SkipUnreadable.__call__\n"
        "    def failing(self, load, index, size):\n"
        "        self.failed_anywhere[3] = True\n"
        "        return call(self, load, index, size)\n"
        "    image_files.SkipUnreadable.__call__ = failing\n")
    sets = [arg for item in [*TINY, *EXACT, "data.dataset=folder", f"data.root={images}", "data.num_workers=0"]
            for arg in ("--set", item)]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(injected), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gan", "train",
         str(REPO / "experiments" / "dcgan_demo.toml"), *sets, "--out", str(tmp_path / "runs"), "--device", "cpu"],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning: 1 unreadable image file(s) of the training set were skipped" in result.stderr, result.stderr[-3000:]


@pytest.mark.slow
def test_a_torchrun_stop_far_from_a_log_point_saves_its_checkpoint_within_torchruns_grace(tmp_path):
    """The processes agreed on a stop at log points alone: with the next 50 steps taking over 30 s,
    torchrun's grace ran out, it sent SIGKILL, and every step since the last checkpoint was lost."""
    import signal

    run_dir = tmp_path / "run"
    launcher, said, seconds = stopped_torchrun(run_dir, ["log.every=100000", "log.image_every=100000",
                                                         "data.num_workers=0"], settle_s=2)
    assert seconds < 25 and launcher.returncode != -signal.SIGKILL, said[-3000:]
    (checkpoint,) = list_checkpoints(run_dir)
    assert 1 < int(checkpoint.stem.split("-")[1]) < 100000 and "Continue with: torchrun" in said, said[-3000:]


def test_a_resume_with_another_number_of_processes_is_warned_of(tmp_path):
    """A 2-process run resumed in one process (the stop line says `--resume`, not how many) went on
    without a word, its BatchNorm statistics now over the whole batch: 4-25% apart after 36 steps."""
    import warnings

    first = train(tiny_config("train.steps=2"), tmp_path / "run", CPU)
    state = torch.load(first.checkpoint, weights_only=True)
    assert state["processes"] == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(tiny_config("train.steps=3"), tmp_path / "run", CPU, resume=True)
    assert not [w for w in caught if "process(es)" in str(w.message)]
    torch.save({**torch.load(list_checkpoints(tmp_path / "run")[-1], weights_only=True), "processes": 2},
               tmp_path / "run" / "checkpoint-00000003.pt")
    with pytest.warns(UserWarning, match=r"checkpoint-00000003.pt' was written by a run of 2 process\(es\), and this "
                                         r"resume runs 1: .*BatchNorm.*torchrun --nproc_per_node=2 resumes it as it ran"):
        train(tiny_config("train.steps=4"), tmp_path / "run", CPU, resume=True)
    # networks with no BatchNorm and no dropout compute the same in any number of processes: no warning
    plain = [*EXACT, "train.steps=2"]
    train(tiny_config(*plain), tmp_path / "plain", CPU)
    torch.save({**torch.load(list_checkpoints(tmp_path / "plain")[-1], weights_only=True), "processes": 2},
               tmp_path / "plain" / "checkpoint-00000002.pt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(tiny_config(*EXACT, "train.steps=3"), tmp_path / "plain", CPU, resume=True)
    assert not [w for w in caught if "process(es)" in str(w.message)]


def torchrun_injected(tmp_path, code: str, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """A 2-process run whose processes first run `code` (a sitecustomize: what one process alone
    meets); (the result, seconds it took)."""
    import textwrap
    import time

    inject = tmp_path / "inject"
    inject.mkdir(exist_ok=True)
    (inject / "sitecustomize.py").write_text(textwrap.dedent(code))
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(inject), str(REPO), os.environ.get("PYTHONPATH", "")])}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "gan", "train", *args, "--device", "cpu"], capture_output=True, text=True,
                            env=env, timeout=300, cwd=tmp_path)
    return result, time.monotonic() - started


@pytest.mark.slow
def test_a_failure_of_rank_0_alone_before_the_loop_ends_every_process_promptly(tmp_path):
    """The stop vote's group was made after rank 0's own start-up work: when that failed, rank 1
    waited in the group's making, ignored torchrun's SIGTERM, and was killed 30 s later."""
    sets = [arg for item in [*TINY, *EXACT] for arg in ("--set", item)]
    result, seconds = torchrun_injected(tmp_path, """
        import os
        if os.environ.get("RANK") == "0":
            import gan.training.loop as loop
            from gan.core.files import WriteError
            start = loop._start_logging
            def failing(*args, **kwargs):
                start(*args, **kwargs)
                raise WriteError("could not write the event file (injected)")
            loop._start_logging = failing
        """, str(REPO / "experiments" / "dcgan_demo.toml"), *sets, "--run-dir", str(tmp_path / "run"))
    assert result.returncode != 0 and "(injected)" in result.stderr, result.stderr[-3000:]
    assert seconds < 25 and "forcefully exiting" not in result.stderr, result.stderr[-3000:]


@pytest.mark.slow
def test_a_setup_error_met_on_another_machine_is_said_by_the_process_that_met_it(tmp_path):
    """A data folder missing on the second machine alone was said by no process: the others were
    silenced as if every process met it alike."""
    (tmp_path / "faces").mkdir()
    for index in range(8):
        Image.new("RGB", (32, 32), (index * 30, 0, 0)).save(tmp_path / "faces" / f"{index}.png")
    sets = [arg for item in [*TINY, *EXACT, "data.dataset=folder", "data.root=faces", "data.cache=off"]
            for arg in ("--set", item)]
    result, _ = torchrun_injected(tmp_path, """
        import os
        if os.environ.get("RANK") == "1":  # as on a second machine, where the relative folder is missing
            os.environ["LOCAL_RANK"] = "0"
            os.chdir("/")
        """, str(REPO / "experiments" / "dcgan_demo.toml"), *sets, "--run-dir", str(tmp_path / "run"))
    assert result.returncode != 0 and "image folder 'faces' does not exist" in result.stderr, result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("copy", ["one renamed", "one missing"])
def test_machines_whose_copies_of_the_data_differ_are_refused_before_step_1(tmp_path, copy):
    """Each machine lists its own data.root: a copy with one file renamed trained in silence, each
    index a different image on each machine; one with a file missing drew some images twice and others
    never, and failed a collective after the last checkpoint with a C++ abort."""
    for folder in (tmp_path / "faces", tmp_path / "second" / "faces"):
        folder.mkdir(parents=True)
        for index in range(8):
            Image.new("RGB", (32, 32), (index * 30, 0, 0)).save(folder / f"{index}.png")
    second = tmp_path / "second" / "faces"
    if copy == "one renamed":
        (second / "7.png").rename(second / "7b.png")
    else:
        (second / "7.png").unlink()
    sets = [arg for item in [*TINY, *EXACT, "data.dataset=folder", "data.root=faces", "data.cache=off"]
            for arg in ("--set", item)]
    result, _ = torchrun_injected(tmp_path, f"""
        import os
        if os.environ.get("RANK") == "1":  # as on a second machine, with its own copy of the relative folder
            os.environ["LOCAL_RANK"] = "0"
            os.chdir({str(tmp_path / "second")!r})
        """, str(REPO / "experiments" / "dcgan_demo.toml"), *sets, "--run-dir", str(tmp_path / "run"))
    what = "the file names differ" if copy == "one renamed" else "the counts differ"
    expected = (f"the processes of this torchrun run read other training images (rank 0: 8 images in data.root "
                f"'{tmp_path / 'faces'}'; rank 1: {8 if copy == 'one renamed' else 7} images in data.root '{second}': "
                f"{what}): each process draws its share")
    assert result.returncode != 0 and expected in result.stderr, result.stderr[-3000:]
    assert result.stderr.count(f"error: {expected}") == 2, result.stderr[-3000:]  # (each machine says it)
    assert not list((tmp_path / "run").glob("checkpoint-*.pt"))


def test_processes_that_resumed_other_checkpoints_are_refused_naming_each_machines(tmp_path, monkeypatch):
    """Each machine resumed the newest checkpoint its own copy of the run held: one that lacked the newest
    trained on from an older step in silence, its gradients averaged into rank 0's."""
    import socket

    import gan.training.state as state
    from gan.core.registry import ConfigError

    newest = tmp_path / "run" / "checkpoint-00000020.pt"
    newest.parent.mkdir()
    newest.write_bytes(b"0" * 100)
    older = {"host": "node1", "file": "/local/run/checkpoint-00000010.pt", "step": 10, "size": 100}
    # ranks 2 and 3 on a second machine, with its older copy: named once
    monkeypatch.setattr(state, "gather_objects", lambda value, group: [value, value, older, older])
    with pytest.raises(ConfigError) as refused:
        state.refuse_other_checkpoints(newest, 20, ProcessGroup(0, 4, 0))
    assert str(refused.value).startswith(
        f"the processes of this torchrun run resumed other checkpoints (rank 0 on {socket.gethostname()}: '{newest}' "
        "of step 20; rank 2 on node1: '/local/run/checkpoint-00000010.pt' of step 10): every machine must read the "
        "same run directory, on a file system they share"), refused.value
    assert "rank 3" not in str(refused.value) and "nothing was trained" in str(refused.value)
    other_copy = {**older, "file": "/local/run/checkpoint-00000020.pt", "step": 20, "size": 90}
    monkeypatch.setattr(state, "gather_objects", lambda value, group: [value, other_copy])
    with pytest.raises(ConfigError, match=r"of step 20, 100 bytes; rank 1 on node1: .* of step 20, 90 bytes\)"):
        state.refuse_other_checkpoints(newest, 20, ProcessGroup(0, 2, 0))  # (the sizes alone tell them apart)
    monkeypatch.setattr(state, "gather_objects", lambda value, group: [value, {**value, "host": "node1"}])
    state.refuse_other_checkpoints(newest, 20, ProcessGroup(0, 2, 0))  # (the same file on both machines)


@pytest.mark.slow
def test_machines_whose_copies_of_the_run_differ_resume_no_step(tmp_path):
    """With the run directory on each machine's own disk, the second machine's copy lacked the newest
    checkpoint: rank 0 resumed step 4 and rank 1 step 2, and rank 0 saved the mix as step 6."""
    import shutil
    import socket

    train(tiny_config(*EXACT), tmp_path / "run", CPU)  # (checkpoints of steps 2 and 4)
    second = tmp_path / "second" / "run"
    shutil.copytree(tmp_path / "run", second)
    (second / "checkpoint-00000004.pt").unlink()
    result, _ = torchrun_injected(tmp_path, f"""
        import os
        if os.environ.get("RANK") == "1":  # as on a second machine, with its own copy of the run directory
            os.environ["LOCAL_RANK"] = "0"
            os.chdir({str(second.parent)!r})
        """, "--resume", "run", "--set", "train.steps=6")
    host = socket.gethostname()
    expected = (f"resumed other checkpoints (rank 0 on {host}: '{tmp_path / 'run' / 'checkpoint-00000004.pt'}' of step "
                f"4; rank 1 on {host}: '{second / 'checkpoint-00000002.pt'}' of step 2)")
    assert result.returncode != 0 and result.stderr.count(expected) == 2, result.stderr[-3000:]  # (each machine)
    assert not (tmp_path / "run" / "checkpoint-00000006.pt").exists()


@pytest.mark.slow
def test_processes_given_other_settings_are_refused_naming_them_on_each_machine(tmp_path):
    """Another command line on the second machine trained in silence, its gradients averaged into rank
    0's, and the run recorded rank 0's settings."""
    sets = [arg for item in [*TINY, *EXACT] for arg in ("--set", item)]
    result, _ = torchrun_injected(tmp_path, """
        import os
        if os.environ.get("RANK") == "1":  # as on a second machine, given --set train.g_lr=0.01
            os.environ["LOCAL_RANK"] = "0"
            import gan.training.resolve as resolve
            read = resolve.load_config
            def load_config(*args, **kwargs):
                config = read(*args, **kwargs)
                config.train.g_lr = 0.01
                return config
            resolve.load_config = load_config
        """, str(REPO / "experiments" / "dcgan_demo.toml"), *sets, "--out", str(tmp_path / "runs"))
    said = "train.g_lr = 0.0002 on rank 0 but 0.01 on rank 1"
    assert result.returncode != 0 and result.stderr.count(said) == 2, result.stderr[-3000:]  # (each machine says it)
    assert not (tmp_path / "runs").exists()  # (refused before the run is numbered)


@pytest.mark.slow
def test_machines_started_with_other_run_directory_options_are_refused_not_hung(tmp_path):
    """--run-dir on one machine and --out on another: a traceback ('bool' has no attribute 'glob') or,
    with --resume against --out, a wait in a broadcast the other never made."""
    sets = [arg for item in [*TINY, *EXACT] for arg in ("--set", item)]
    result, seconds = torchrun_injected(tmp_path, """
        import os, sys
        if os.environ.get("RANK") == "1":  # as on a second machine, started with --out
            os.environ["LOCAL_RANK"] = "0"
            sys.argv = [("--out" if arg == "--run-dir" else arg) for arg in sys.argv]
        """, str(REPO / "experiments" / "dcgan_demo.toml"), *sets, "--run-dir", str(tmp_path / "run"))
    said = "the run directory's option = '--run-dir' on rank 0 but '--out' on rank 1"
    assert result.returncode != 0 and result.stderr.count(said) == 2, result.stderr[-3000:]
    assert seconds < 60 and "AttributeError" not in result.stderr, result.stderr[-3000:]  # (torchrun's own follows)


def test_a_run_directory_missing_on_another_machine_is_said_as_such(tmp_path, monkeypatch):
    """With the run on each machine's own disk, a machine without it said click's "Path 'runs/exp' does not
    exist" to --resume, as if mistyped, and "'runs/exp' has no config.toml ... cannot be resumed" to a
    repeated --run-dir line, while rank 0's machine had found it."""
    import re
    import socket

    from click.testing import CliRunner

    from gan.commands.main import main
    from gan.commands.train import written_config
    from gan.core.registry import ConfigError

    for name, value in (("WORLD_SIZE", "2"), ("LOCAL_WORLD_SIZE", "1"), ("RANK", "1"), ("LOCAL_RANK", "0"),
                        ("MASTER_ADDR", "localhost"), ("MASTER_PORT", "29500")):
        monkeypatch.setenv(name, value)
    run_dir = tmp_path / "runs" / "exp"
    said = (f"'{run_dir}' does not exist on this machine ({socket.gethostname()}): resuming under torchrun needs the "
            "run directory on a file system every machine reads")
    resumed = CliRunner().invoke(main, ["train", "--resume", str(run_dir)])
    assert resumed.exit_code == 2 and said in resumed.output, resumed.output
    with pytest.raises(ConfigError, match=re.escape(said)):
        written_config(run_dir)  # (what a repeated --run-dir line reads, once rank 0 found the run to resume)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # (one machine: click's own words)
    alone = CliRunner().invoke(main, ["train", "--resume", str(run_dir)])
    assert alone.exit_code == 2 and "does not exist" in alone.output and "machine" not in alone.output, alone.output


@pytest.mark.slow
def test_a_run_dir_line_repeated_on_machines_with_their_own_data_paths_continues(tmp_path):
    # each machine compared its own data.root with rank 0's config.toml: every start after the first refused
    import shutil

    (tmp_path / "here").mkdir()
    for index in range(8):
        Image.new("RGB", (32, 32), (index * 30, 0, 0)).save(tmp_path / "here" / f"{index}.png")
    shutil.copytree(tmp_path / "here", tmp_path / "there")
    code = """
        import os, sys
        if os.environ.get("RANK") == "1":  # as on a second machine, whose copy of the data is elsewhere
            os.environ["LOCAL_RANK"] = "0"
            sys.argv = [arg.replace("data.root=here", "data.root=there") for arg in sys.argv]
        """
    for steps in (2, 4):
        sets = [arg for item in [*TINY, *EXACT, "data.dataset=folder", "data.root=here", "data.cache=off",
                                 f"train.steps={steps}"] for arg in ("--set", item)]
        result, _ = torchrun_injected(tmp_path, code, str(REPO / "experiments" / "dcgan_demo.toml"), *sets,
                                      "--run-dir", str(tmp_path / "run"))
        assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoint-00000004.pt").is_file()
