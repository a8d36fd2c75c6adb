import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, TINY, only_run, poison_dcgan_step_once, tiny_config

from gan.core.checkpoint import list_checkpoints, load_checkpoint
from gan.core.devices import DeviceUnavailable, select_device
from gan.core.registry import ConfigError
from gan.recipes.dcgan import DCGANRecipe
from gan.recipes.schedules import lr_scale
from gan.training.errors import NonFiniteLossError, SideTaskError
from gan.training.loop import train, train_rolling_back
from gan.training.metric_watch import MetricWatch
from gan.training.run_dir import create_run_dir

CPU = torch.device("cpu")


def _weights(run_dir):
    state = load_checkpoint(list_checkpoints(run_dir)[-1])
    return state["step"], state["networks"], state["optimizers"]


def _assert_identical(left, right):
    if isinstance(left, torch.Tensor):
        assert torch.equal(left, right)
    elif isinstance(left, dict):
        assert left.keys() == right.keys()
        for key in left:
            _assert_identical(left[key], right[key])
    elif isinstance(left, (list, tuple)):
        assert len(left) == len(right)
        for a, b in zip(left, right):
            _assert_identical(a, b)
    else:
        assert left == right


@pytest.mark.parametrize("workers", [0, 1])
def test_resume_is_bit_identical_to_a_straight_run(tmp_path, workers, capsys):
    """4 straight steps == 2 steps, resume, 2 steps: weights, optimizer moments, EMA."""
    # instance noise and label smoothing exercise the RNG and the step-dependent schedule
    extra = [f"data.num_workers={workers}", "loss.instance_noise=0.1", "loss.instance_noise_steps=4",
             "loss.label_smoothing=0.1", "data.hflip=true"]
    straight = train(tiny_config(*extra), tmp_path / "straight", CPU, progress_stream=sys.stdout)
    split_dir = tmp_path / "split"
    first = train(tiny_config(*extra, "train.steps=2"), split_dir, CPU, progress_stream=sys.stdout)
    assert first.step == 2
    capsys.readouterr()
    second = train(tiny_config(*extra), split_dir, CPU, resume=True, progress_stream=sys.stdout)
    assert straight.step == second.step == 4
    assert "done: 4 steps (2 of them now) in" in capsys.readouterr().err  # the time is this process's
    step_a, networks_a, optimizers_a = _weights(straight.run_dir)
    step_b, networks_b, optimizers_b = _weights(split_dir)
    assert step_a == step_b == 4
    assert set(networks_a) == {"generator", "discriminator", "generator_ema"}
    _assert_identical(networks_a, networks_b)
    _assert_identical(optimizers_a, optimizers_b)
    # and the run really trained: weights moved away from their initialisation
    initial = DCGANRecipe(tiny_config(*extra), CPU, lambda: torch.no_grad()).generator.state_dict()
    assert not torch.equal(initial["net.0.weight"], networks_a["generator"]["net.0.weight"])


def test_previews_metrics_and_checkpoints_leave_trainings_random_draws_alone(tmp_path, monkeypatch):
    # a researcher's generator with StyleGAN-like noise inputs draws from the global generator in eval
    # mode too: when the side tasks ran (and whether metrics were on) changed the weights trained
    from gan.nets.dcgan import DCGANGenerator

    plain_forward = DCGANGenerator.forward

    def noisy_forward(self, latents):
        images = plain_forward(self, latents)
        return images + 1e-3 * torch.randn_like(images)

    monkeypatch.setattr(DCGANGenerator, "forward", noisy_forward)
    common = ("loss.instance_noise=0.1", "loss.instance_noise_steps=4", "train.ema_bn_batches=2")
    quiet = train(tiny_config(*common, "log.image_every=4", "train.checkpoint_every=4"), tmp_path / "quiet", CPU,
                  progress_stream=sys.stdout)
    busy = train(tiny_config(*common, "log.image_every=1", "train.checkpoint_every=1", "metrics.every=2",
                             "metrics.num_samples=16", "metrics.names=['swd']"), tmp_path / "busy", CPU,
                 progress_stream=sys.stdout)
    (_, networks_quiet, optimizers_quiet), (_, networks_busy, optimizers_busy) = (
        _weights(run.run_dir) for run in (quiet, busy))
    _assert_identical(networks_quiet, networks_busy)
    _assert_identical(optimizers_quiet, optimizers_busy)


def test_run_directory_contents(tmp_path):
    result = train(tiny_config(), create_run_dir(tmp_path, "demo"), CPU, progress_stream=sys.stdout)
    names = {p.name for p in result.run_dir.iterdir()}
    assert "config.toml" in names and any(n.startswith("events.out.tfevents") for n in names)
    assert [p.name for p in list_checkpoints(result.run_dir)] == ["checkpoint-00000002.pt", "checkpoint-00000004.pt"]
    samples = sorted(p.name for p in (result.run_dir / "samples").iterdir())
    assert samples == ["00000002-generator.png", "00000002-generator_ema.png",
                       "00000004-generator.png", "00000004-generator_ema.png"]
    assert result.run_dir.name == "00000-demo"
    assert create_run_dir(tmp_path, "other").name == "00001-other"  # numbers are unique across names
    assert create_run_dir(tmp_path / "new", "x") == tmp_path / "new" / "00000-x"
    # a file named like the next run took its number, and past 99999 the numbers were used again
    (tmp_path / "new" / "00001-x").write_text("a file of the user's")
    assert create_run_dir(tmp_path / "new", "x").name == "00002-x"
    (tmp_path / "new" / "99999-x").mkdir()
    assert [create_run_dir(tmp_path / "new", "x").name for _ in range(2)] == ["100000-x", "100001-x"]


def test_a_data_set_smaller_than_a_batch_is_warned_of(tmp_path):
    with pytest.warns(UserWarning, match=r"the data set has 4 training images, fewer than train.batch_size = 8: "
                                         "every batch holds some images more than once"):
        train(tiny_config("data.synthetic_size=4", "train.steps=1"), tmp_path / "run", CPU, progress_stream=sys.stdout)


def test_the_start_line_counts_one_image_and_one_step_in_the_singular(tmp_path, capsys):
    with pytest.warns(UserWarning, match=r"the data set has 1 training image, fewer than"):
        train(tiny_config("data.synthetic_size=1", "train.steps=1"), tmp_path / "run", CPU)
    said = capsys.readouterr().err
    assert re.search(r"^1 training image, batch 8, .*, 1 step to go$", said, re.M)
    assert "done: 1 step in" in said, said  # (and the closing line: it said "1 steps")


def test_an_unpaired_domain_smaller_than_a_batch_is_warned_of(tmp_path):
    """An unpaired data set is as long as its larger domain: 3 A and 5 B images at batch 4 used to
    pass unwarned, though every batch repeats an A image."""
    from conftest import tiny_recipe_config, write_recipe_data

    config = tiny_recipe_config("cyclegan", write_recipe_data(tmp_path / "data"), "train.batch_size=4",
                                "train.steps=1")
    with pytest.warns(UserWarning, match=r"domain A has 3 training images, fewer than train.batch_size = 4"):
        train(config, tmp_path / "run", CPU, progress_stream=sys.stdout)


def test_tensorboard_gets_every_term(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(tiny_config(), create_run_dir(tmp_path, "tb"), CPU, progress_stream=sys.stdout)
    events = EventAccumulator(str(result.run_dir)).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"loss/d", "loss/g", "d/real", "d/fake", "lr/generator", "lr/discriminator",
            "perf/images_per_s"} <= scalars
    assert [event.step for event in events.Scalars("loss/g")] == [1, 2, 3, 4]
    assert {"samples/generator", "samples/generator_ema"} <= set(events.Tags()["images"])
    # step 1 carries the start-up: its time is logged as such, never as a speed that means would average in
    assert [event.step for event in events.Scalars("perf/images_per_s")] == [2, 3, 4]
    assert [event.step for event in events.Scalars("perf/first_step_s")] == [1]


def test_nan_loss_stops_naming_step_and_term_and_keeps_the_good_checkpoint(tmp_path, monkeypatch):
    original = DCGANRecipe.step

    def poisoned(self, batch, step):
        metrics = original(self, batch, step)
        if step == 3:
            metrics["loss/g"] = torch.tensor(float("nan"))
        return metrics

    monkeypatch.setattr(DCGANRecipe, "step", poisoned)
    run_dir = create_run_dir(tmp_path, "nan")
    with pytest.raises(NonFiniteLossError, match="'loss/g' became NaN or infinite at step 3.*checkpoint-00000002.pt"):
        train(tiny_config(), run_dir, CPU, progress_stream=sys.stdout)
    assert [load_checkpoint(p)["step"] for p in list_checkpoints(run_dir)] == [2]


def test_metric_watch_finds_the_first_bad_step_without_per_step_reads():
    watch = MetricWatch(CPU)
    watch.add(1, {"a": torch.tensor(1.0), "b": torch.tensor(2.0)})
    watch.add(2, {"a": torch.tensor(3.0), "b": torch.tensor(float("inf"))})
    watch.add(3, {"a": torch.tensor(float("nan")), "b": torch.tensor(float("nan"))})
    assert watch.first_non_finite() == (2, "b", float("inf"))
    bounded = MetricWatch(CPU, bound=10.0)
    bounded.add(1, {"a": torch.tensor(-9.0)})
    bounded.add(2, {"a": torch.tensor(-11.0)})  # a magnitude beyond the bound, though finite
    assert bounded.first_non_finite() == (2, "a", -11.0)
    fresh = MetricWatch(CPU)
    fresh.add(1, {"a": torch.tensor(1.0)})
    fresh.add(2, {"a": torch.tensor(3.0)})
    assert fresh.means() == {"a": 2.0} and fresh.first_non_finite() is None


def test_learning_rate_schedule_is_constant_then_linear_to_zero():
    assert [lr_scale(s, 10, 0) for s in (1, 10)] == [1.0, 1.0]
    scales = [lr_scale(s, 10, 4) for s in range(1, 11)]
    assert scales[:6] == [1.0] * 6
    assert scales[6:] == pytest.approx([0.8, 0.6, 0.4, 0.2])
    assert lr_scale(1, 4, 1000) == pytest.approx(0.8)  # a decay longer than the run spans the run


def test_learning_rates_follow_the_schedule_in_training(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(tiny_config("train.lr_decay_steps=2", "train.g_lr=0.003"), create_run_dir(tmp_path, "lr"),
                   CPU, progress_stream=sys.stdout)
    events = EventAccumulator(str(result.run_dir)).Reload()
    lrs = [event.value for event in events.Scalars("lr/generator")]
    assert lrs == pytest.approx([0.003, 0.003, 0.002, 0.001])


def test_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(DeviceUnavailable, match="sees no CUDA GPU"):
        select_device("cuda")
    with pytest.raises(DeviceUnavailable, match="unknown device 'tpu'"):
        select_device("tpu")
    for name in ("xpu", "meta", "mps:0"):  # devices torch knows, that gan does not run on
        with pytest.raises(DeviceUnavailable, match=f"gan runs on CUDA GPUs and the CPU, not on '{name}'.*; use auto"):
            select_device(name)
    with pytest.raises(DeviceUnavailable, match="not on 'mps' \\(Apple's GPU\\); use auto, cpu, cuda or cuda:N"):
        select_device("mps")  # ("unknown" was untrue of a device torch knows)
    with pytest.raises(DeviceUnavailable, match="unknown device 'cpu:7'; use auto, cpu, cuda or cuda:N"):
        select_device("cpu:7")
    assert select_device("cpu") == CPU
    assert select_device("auto") == CPU


# A scheduler's warning before its time limit (SLURM's --signal=USR1@120) killed the run: exit 138, no checkpoint.
_WARNING = getattr(signal, "SIGUSR1", None)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130),
                                          pytest.param(_WARNING, 128 + (_WARNING or 0), id="SIGUSR1",
                                                       marks=pytest.mark.skipif(_WARNING is None, reason="POSIX"))])
def test_signal_saves_a_checkpoint_and_resume_finishes(tmp_path, signum, code):
    overrides = [arg for item in TINY if not item.startswith("train.steps") for arg in ("--set", item)]
    command = [sys.executable, "-m", "gan", "train", str(REPO / "experiments" / "dcgan_demo.toml"), *overrides,
               "--set", "train.steps=100000", "--set", "train.checkpoint_every=100000", "--out", str(tmp_path)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    for line in process.stderr:  # wait until training steps are running
        if line.startswith("step 3/") or time.time() > deadline:
            break
    process.send_signal(signum)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == code, rest
    run_dir = only_run(tmp_path)
    (checkpoint,) = list_checkpoints(run_dir)
    stopped_at = load_checkpoint(checkpoint)["step"]
    assert stopped_at >= 3 and f"stopped by {signal.Signals(signum).name} at step {stopped_at}" in rest
    finish = subprocess.run([sys.executable, "-m", "gan", "train", "--resume", str(run_dir),
                             "--set", f"train.steps={stopped_at + 2}"], capture_output=True, text=True, timeout=120)
    assert finish.returncode == 0, finish.stderr
    assert load_checkpoint(list_checkpoints(run_dir)[-1])["step"] == stopped_at + 2


def test_a_stop_between_log_points_logs_its_last_shorter_window(tmp_path, monkeypatch):
    """The curves used to end at the log point before a stop, so the steps after it (up to the
    checkpoint the stop writes) were in no curve, even after a resume."""
    from gan.tools.compare import read_scalars
    from gan.training import loop

    one_step = loop._one_step

    def stopped_at_step_7(run, stop):
        trained = one_step(run, stop)
        if run.step == 7:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C, between the log points 5 and 10
        return trained

    monkeypatch.setattr(loop, "_one_step", stopped_at_step_7)
    result = train(tiny_config("train.steps=100", "log.every=5", "train.checkpoint_every=100"), tmp_path / "run", CPU)
    assert result.interrupted_by == "SIGINT" and result.step == 7
    steps, _ = read_scalars(tmp_path / "run")["loss/d"]
    assert steps.tolist() == [1, 5, 7]


@pytest.mark.parametrize("when", ["side tasks", "waiting for data", "a data error"])
def test_a_stop_after_the_step_logs_its_last_shorter_window_too(tmp_path, monkeypatch, when):
    """A stop that came during step 7's side tasks (or while the next batch was read, or as reading it
    failed: a cache cut short under the run) ended the run at step 7 with its checkpoint, but the
    losses of steps 6 and 7 were in no curve."""
    from gan.tools.compare import read_scalars
    from gan.training import loop
    from gan.training.loop import SideTaskError

    one_step, periodic_work = loop._one_step, loop._periodic_work

    def stopped_waiting_for_step_8(run, stop):
        if run.step == 7:
            signal.raise_signal(signal.SIGINT)
            return False  # (what a loader whose workers died of the Ctrl-C gives)
        return one_step(run, stop)

    def stopped_during_side_tasks_of_step_7(run, last, stopping=False):
        io_start = periodic_work(run, last, stopping)
        if run.step == 7:
            signal.raise_signal(signal.SIGINT)
        return io_start

    def data_failing_at_step_8(run, stop):
        if run.step == 7:
            run.data = iter(())  # (StopIteration, as any error of the loader)
        return one_step(run, stop)

    if when == "side tasks":
        monkeypatch.setattr(loop, "_periodic_work", stopped_during_side_tasks_of_step_7)
    else:
        monkeypatch.setattr(loop, "_one_step", stopped_waiting_for_step_8 if when == "waiting for data"
                            else data_failing_at_step_8)
    config = tiny_config("train.steps=100", "log.every=5", "train.checkpoint_every=100")
    if when == "a data error":
        with pytest.raises(SideTaskError, match="reading the training data failed at step 7"):
            train(config, tmp_path / "run", CPU)
    else:
        result = train(config, tmp_path / "run", CPU)
        assert result.interrupted_by == "SIGINT" and result.step == 7
    assert [load_checkpoint(path)["step"] for path in list_checkpoints(tmp_path / "run")] == [7]
    steps, _ = read_scalars(tmp_path / "run")["loss/d"]
    assert steps.tolist() == [1, 5, 7]


def _in_a_terminal_of_its_own(command: list[str]) -> tuple[subprocess.Popen, int]:
    """`command` started as a login shell starts a job: in a session of its own whose controlling
    terminal is a new pseudo-terminal, its output going there. Returns it and the terminal's
    master side, whose closing hangs the terminal up (what an ssh session that drops does)."""
    import fcntl
    import termios

    master, terminal = os.openpty()

    def take_the_terminal():
        os.setsid()
        fcntl.ioctl(1, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(command, stdin=terminal, stdout=terminal, stderr=terminal,
                               preexec_fn=take_the_terminal)
    os.close(terminal)
    return process, master


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="terminals and SIGHUP are POSIX")
def test_closing_the_terminal_stops_the_run_with_a_checkpoint(tmp_path):
    """The terminal closing sends SIGHUP, which used to kill the run outright: every step since the last
    checkpoint was lost. It now stops as SIGTERM does, and the output to the dead terminal (a write
    there fails) is dropped rather than ending the run in a traceback."""
    overrides = [arg for item in TINY if not item.startswith("train.steps") for arg in ("--set", item)]
    command = [sys.executable, "-m", "gan", "train", str(REPO / "experiments" / "dcgan_demo.toml"), *overrides,
               "--set", "train.steps=100000", "--set", "train.checkpoint_every=100000", "--out", str(tmp_path)]
    process, master = _in_a_terminal_of_its_own(command)
    seen, deadline = b"", time.time() + 120
    while b"step 3/" not in seen and time.time() < deadline:
        seen += os.read(master, 4096)
    assert b"step 3/" in seen, seen.decode(errors="replace")
    os.close(master)  # the terminal hangs up: its session leader, the run, gets SIGHUP
    assert process.wait(timeout=120) == 129  # 128 + SIGHUP, as 130 and 143 after SIGINT and SIGTERM
    run_dir = only_run(tmp_path)
    (checkpoint,) = list_checkpoints(run_dir)
    stopped_at = load_checkpoint(checkpoint)["step"]
    assert stopped_at >= 3
    finish = subprocess.run([sys.executable, "-m", "gan", "train", "--resume", str(run_dir),
                             "--set", f"train.steps={stopped_at + 1}"], capture_output=True, text=True, timeout=120)
    assert finish.returncode == 0, finish.stderr


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_to_the_whole_process_group_with_loader_workers_saves_a_checkpoint(tmp_path, signum, code):
    """Ctrl-C in a terminal, or a scheduler's SIGTERM, reaches the loader workers too: they leave
    stopping to the trainer, which finishes its step and saves."""
    overrides = [arg for item in TINY if not item.startswith("train.steps") for arg in ("--set", item)]
    command = [sys.executable, "-m", "gan", "train", str(REPO / "experiments" / "dcgan_demo.toml"), *overrides,
               "--set", "train.steps=100000", "--set", "train.checkpoint_every=100000",
               "--set", "data.num_workers=2", "--set", "metrics.every=2",
               "--set", "metrics.names=[\"swd\"]", "--set", "metrics.num_samples=64", "--out", str(tmp_path)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    for line in process.stderr:
        if line.startswith("step 3/") or time.time() > deadline:
            break
    os.killpg(process.pid, signum)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == code, rest
    (checkpoint,) = list_checkpoints(only_run(tmp_path))
    assert f"stopped by {signal.Signals(signum).name} at step {load_checkpoint(checkpoint)['step']}" in rest


def _children(pid: int) -> list[int]:
    """The processes `pid` started (from Linux's /proc: a trainer's loader workers)."""
    listed = " ".join(path.read_text() for path in Path(f"/proc/{pid}/task").glob("*/children"))
    return [int(child) for child in listed.split()]


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
                    reason="finds the loader workers in Linux's /proc")
def test_sigterm_to_every_process_of_the_job_saves_a_checkpoint(tmp_path):
    """SLURM ends a job with SIGTERM to each of its processes, the loader workers too (no process group,
    which the workers leave). They died of it, and the run ended as a dead worker (exit 1), in 5 of 6
    tries, some without a checkpoint. They now ignore every stop signal: the trainer stops as asked."""
    overrides = [arg for item in TINY if not item.startswith("train.steps") for arg in ("--set", item)]
    command = [sys.executable, "-m", "gan", "train", str(REPO / "experiments" / "dcgan_demo.toml"), *overrides,
               "--set", "train.steps=100000", "--set", "train.checkpoint_every=100000",
               "--set", "data.num_workers=2", "--out", str(tmp_path)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    for line in process.stderr:
        if line.startswith("step 3/") or time.time() > deadline:
            break
    workers = _children(process.pid)
    assert len(workers) >= 2, workers
    for pid in [*workers, process.pid]:  # (in the order of the job's processes: the workers first)
        os.kill(pid, signal.SIGTERM)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 143, rest
    (checkpoint,) = list_checkpoints(only_run(tmp_path))
    assert f"stopped by SIGTERM at step {load_checkpoint(checkpoint)['step']}" in rest


def test_a_resume_takes_the_learning_rates_of_its_config(tmp_path):
    """`gan train --resume RUN --set train.g_lr=...` changes the rate; the checkpoint's does not win."""
    train(tiny_config("train.steps=2"), tmp_path, CPU, progress_stream=sys.stdout)
    result = train(tiny_config("train.g_lr=1e-3"), tmp_path, CPU, resume=True, progress_stream=sys.stdout)
    groups = load_checkpoint(result.checkpoint)["optimizers"]
    assert groups["generator"]["param_groups"][0]["base_lr"] == 1e-3
    assert groups["generator"]["param_groups"][0]["lr"] == 1e-3  # no decay configured
    assert groups["discriminator"]["param_groups"][0]["base_lr"] == 2e-4


def test_a_resume_takes_the_betas_and_optimizer_kernel_of_its_config(tmp_path):
    # the resume announced train.beta1 0.5 -> 0.9, and Adam went on with 0.5 from the checkpoint
    train(tiny_config("train.steps=2"), tmp_path / "run", CPU, progress_stream=sys.stdout)
    result = train(tiny_config("train.beta1=0.9", "train.beta2=0.95", "train.optimizer_kernel=loop"), tmp_path / "run",
                   CPU, resume=True, progress_stream=sys.stdout)
    for name in ("generator", "discriminator"):
        (group,) = load_checkpoint(result.checkpoint)["optimizers"][name]["param_groups"]
        assert tuple(group["betas"]) == (0.9, 0.95) and group["foreach"] is False, (name, group)
    # the moments go on from the checkpoint: the same as a run given those betas from its step 2
    straight = train(tiny_config("train.steps=2"), tmp_path / "straight", CPU, progress_stream=sys.stdout)
    assert load_checkpoint(straight.checkpoint)["optimizers"]["generator"]["state"][0]["step"] == 2
    assert load_checkpoint(result.checkpoint)["optimizers"]["generator"]["state"][0]["step"] == 4


def test_on_nan_rollback_resumes_the_last_checkpoint_with_halved_rates(tmp_path, monkeypatch, capsys):
    original = DCGANRecipe.step
    poisoned_once = poison_dcgan_step_once(monkeypatch, 3, lambda recipe, metrics: metrics.update(
        {"loss/d": torch.tensor(float("inf"))}))
    result = train_rolling_back(tiny_config(), tmp_path / "run", CPU, progress_stream=sys.stdout)
    assert result.step == 4 and poisoned_once == [3]
    said = capsys.readouterr().err
    # the closing line counts the whole command's steps and time, not those after the rollback ("2 of them now")
    assert "rolling back to" in said and "done: 4 steps in" in said and "of them now" not in said
    # a rollback goes on: its line is a warning, without the "stopping" of the error that stops a run
    assert "warning: 'loss/d' became NaN or infinite at step 3; rolling back to" in said and "stopping" not in said
    saved = load_checkpoint(result.checkpoint)
    assert saved["config"]["train"]["g_lr"] == 1e-4 and saved["config"]["train"]["d_lr"] == 1e-4
    assert "g_lr = 0.0001" in (tmp_path / "run" / "config.toml").read_text()

    def always_nan(self, batch, step):
        metrics = original(self, batch, step)
        metrics["loss/g"] = torch.tensor(float("nan")) if step >= 3 else metrics["loss/g"]
        return metrics

    monkeypatch.setattr(DCGANRecipe, "step", always_nan)
    with pytest.raises(NonFiniteLossError, match="at step 3"):  # three rollbacks, then the error
        train_rolling_back(tiny_config("train.steps=6"), tmp_path / "again", CPU, progress_stream=sys.stdout)
    said = capsys.readouterr().err
    assert said.count("rolling back to") == 3
    # config.toml keeps 1/8 of the rates given, which a resume continues with: said when giving up
    assert "config.toml' keeps the learning rates the rollbacks halved: g 2.5e-05, d 2.5e-05 (1/8" in said
    assert "g_lr = 2.5e-05" in (tmp_path / "again" / "config.toml").read_text()
    # a resume names the rollback as what changed the rates, not a hand edit or a lost checkpoint
    from conftest import invoke

    resumed = invoke("train", "--resume", tmp_path / "again", "--device", "cpu")
    assert "train.d_lr, train.g_lr: from its config.toml, at 1/8 of this checkpoint's, as an --on-nan rollback " \
        "leaves them (or edited by hand), not from --set" in resumed.output, resumed.output


@pytest.mark.parametrize("rolling_back", [True, False])
def test_weights_gone_nan_between_log_points_stop_as_a_divergence_before_the_metrics_read_them(
        tmp_path, monkeypatch, rolling_back):
    # The metrics of step 3 (no log point) ran on the NaN generator: "generative metrics failed", exit 2,
    # advice to switch the metrics off, and no rollback. (On a GPU the losses are read back at log points
    # alone, so a NaN backward reaches the side tasks so; here the losses stay finite.)
    def weights_gone_nan(recipe, metrics):
        with torch.no_grad():
            for network in recipe.networks.values():
                next(network.parameters()).fill_(float("nan"))

    poisoned_once = poison_dcgan_step_once(monkeypatch, 3, weights_gone_nan)
    config = tiny_config("log.every=5", "log.image_every=5", "metrics.every=3", "metrics.names=['swd']",
                         "metrics.num_samples=16", "train.steps=4")
    if rolling_back:
        result = train_rolling_back(config, tmp_path, CPU, progress_stream=sys.stdout)
        assert result.step == 4 and poisoned_once == [3]
        assert load_checkpoint(result.checkpoint)["config"]["train"]["g_lr"] == config.train.g_lr / 2
    else:
        with pytest.raises(NonFiniteLossError, match="weights of generator.* at step 3"):
            train(config, tmp_path, CPU)
        assert [checkpoint.name for checkpoint in list_checkpoints(tmp_path)] == ["checkpoint-00000002.pt"]


def test_a_rollback_records_its_halved_rates_before_it_trains_again(tmp_path, monkeypatch):
    """A kill -9 after "rolling back to ..." and before the resumed run's set-up wrote config.toml
    left the rates given there: a --resume trained on at them, with no word of the rollback."""
    import gan.training.loop as loop_module

    original_step, original_train = DCGANRecipe.step, loop_module.train

    def poisoned(self, batch, step):
        metrics = original_step(self, batch, step)
        if step == 3:
            metrics["loss/d"] = torch.tensor(float("nan"))
        return metrics

    def killed_at_the_second_start(config, run_dir, *args, **kwargs):
        if kwargs.get("resume") or (len(args) > 1 and args[1]):
            raise KeyboardInterrupt  # (as a kill -9 at the start of the rolled-back run)
        return original_train(config, run_dir, *args, **kwargs)

    monkeypatch.setattr(DCGANRecipe, "step", poisoned)
    monkeypatch.setattr(loop_module, "train", killed_at_the_second_start)
    with pytest.raises(KeyboardInterrupt):
        train_rolling_back(tiny_config(), tmp_path, CPU, progress_stream=sys.stdout)
    assert "g_lr = 0.0001" in (tmp_path / "config.toml").read_text()

def test_a_non_finite_buffer_stops_the_run_before_a_checkpoint_keeps_it(tmp_path, monkeypatch):
    """A NaN in BatchNorm's running statistics went into best.pt and every later checkpoint (training
    reads a batch's own statistics, so no loss showed it) while `gan sample` refused those files."""
    original = DCGANRecipe.step

    def poisoned(self, batch, step):
        metrics = original(self, batch, step)
        if step == 3:
            self.generator.net[1].running_mean.fill_(float("nan"))
        return metrics

    monkeypatch.setattr(DCGANRecipe, "step", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"'generator's buffer net.1.running_mean' became NaN or infinite at "
                                                 r"step 3; stopping \(the last good checkpoint is '.*checkpoint-00000002"):
        train(tiny_config(), tmp_path / "run", CPU, progress_stream=sys.stdout)
    assert [path.name for path in list_checkpoints(tmp_path / "run")] == ["checkpoint-00000002.pt"]


def test_a_resume_with_another_log_num_samples_previews_that_many_keeping_the_first_samples_latents():
    # The checkpoint's latents replaced the new count's: the resume said "log.num_samples 4 -> 9",
    # and every grid after it still showed 4 samples.
    import torch

    from gan.recipes.dcgan import DCGANRecipe

    before = DCGANRecipe(tiny_config("log.num_samples=4"), torch.device("cpu"), lambda: torch.no_grad())
    for count in (9, 2):
        after = DCGANRecipe(tiny_config(f"log.num_samples={count}", "train.seed=5"), torch.device("cpu"),
                            lambda: torch.no_grad())
        drawn = after.fixed_latents.clone()
        after.load_state_dict(before.state_dict())
        kept = min(count, 4)
        assert after.fixed_latents.shape == (count, after.latent_dim)
        assert torch.equal(after.fixed_latents[:kept], before.fixed_latents[:kept])
        assert torch.equal(after.fixed_latents[kept:], drawn[kept:])


@pytest.mark.parametrize("recipe, batch_size", [("dcgan", 3), ("pix2pix", 1), ("cyclegan", 1), ("srresnet", 1)])
def test_previews_run_a_training_batch_at_a_time_and_show_what_one_pass_shows(recipe, batch_size, tmp_path):
    """Previews ran all log.num_samples inputs through the generator in one pass, whatever
    train.batch_size: 1,024 samples at 256 px took ~17 GiB of activations, which check_batch_fits does
    not count. In chunks, in eval mode, the images are one pass's (to float rounding)."""
    from conftest import tiny_recipe_config, write_recipe_data

    from gan.recipes import RECIPES

    config = tiny_recipe_config(recipe, write_recipe_data(tmp_path / "data"), f"train.batch_size={batch_size}")
    recipe_object = RECIPES.get(recipe)(config, CPU, lambda: torch.no_grad())
    passes = []
    for name, network in recipe_object.networks.items():
        if "generator" in name:
            network.register_forward_pre_hook(lambda module, inputs: passes.append(len(inputs[0])))
    chunked = recipe_object.preview()
    assert passes and max(passes) <= batch_size, passes
    config.train.batch_size, passes[:] = 1024, []
    whole = recipe_object.preview()
    assert max(passes) > batch_size  # (one pass, to compare with)
    for name, images in chunked.items():
        torch.testing.assert_close(images, whole[name], rtol=0, atol=1e-5)


@pytest.mark.parametrize("recipe", ["pix2pix", "cyclegan"])
def test_a_preview_grid_smaller_than_log_num_samples_is_said(recipe, tmp_path):
    """log.num_samples = 50 over a few evaluation images showed a few strips, unsaid."""
    import io

    from conftest import tiny_recipe_config, write_recipe_data

    from gan.training.loop import train

    config = tiny_recipe_config(recipe, write_recipe_data(tmp_path / "data"), "log.num_samples=50", "train.steps=2", "log.eval_every=0")
    with pytest.warns(UserWarning, match=r"log.num_samples = 50: the evaluation images (of domain A )?hold \d+ readable "
                                         r"(item|image)\(s\), so (each|its) preview grid shows \d+"):
        train(config, tmp_path / "run", CPU, progress_stream=io.StringIO())


def test_train_refuses_a_folder_holding_a_run_unless_it_resumes_it(tmp_path):
    # train(config, run_dir) a second time trained from step 0 over the first run's checkpoints and config.toml
    first = train(tiny_config(), tmp_path / "run", CPU, progress_stream=sys.stdout)
    kept = {path.name: path.read_bytes() for path in first.run_dir.iterdir() if path.is_file()}
    with pytest.raises(ConfigError, match=r"'.*run' holds a run with checkpoints \(newest 'checkpoint-00000004.pt'\): "
                                          r"train\(\.\.\., resume=True\) continues it, and a new run needs a new "
                                          r"folder; nothing was changed"):
        train(tiny_config("train.seed=2"), tmp_path / "run", CPU, progress_stream=sys.stdout)
    assert {path.name: path.read_bytes() for path in first.run_dir.iterdir() if path.is_file()} == kept
    assert train(tiny_config("train.steps=6"), tmp_path / "run", CPU, resume=True, progress_stream=sys.stdout).step == 6


@pytest.mark.parametrize("distributed", [False, True])
def test_a_divergence_found_saving_after_a_side_task_failed_is_a_divergence_alone_and_the_task_under_torchrun(
        tmp_path, monkeypatch, distributed):
    # Alone: the NaN stops (or rolls back) the run as diverged. Under torchrun rank 0 alone found it, while
    # the others, told nothing, waited in the next step's all-reduce and rank 0 in the rollback's broadcast:
    # a hang of train.dist_timeout_s (an hour by default)
    from types import SimpleNamespace

    from gan.training import loop

    def diverged(run, at_step, final, side_tasks_due=None):
        raise NonFiniteLossError(at_step, "weights of generator", tmp_path / "checkpoint-00000002.pt")

    monkeypatch.setattr(loop, "_save", diverged)
    run = SimpleNamespace(main=True, group=SimpleNamespace(world_size=2 if distributed else 1, distributed=distributed),
                          saved_step=2, step=3, last_checkpoint=tmp_path / "checkpoint-00000002.pt", run_dir=tmp_path)
    failure = OSError("the next batch could not be read")
    if distributed:
        error = loop._side_task_failed(run, "reading the training data", failure)
        assert isinstance(error, SideTaskError) and "became NaN" in str(error)
    else:
        with pytest.raises(NonFiniteLossError, match="weights of generator"):
            loop._side_task_failed(run, "reading the training data", failure)


def test_a_cpu_resume_with_another_thread_count_is_warned_of(tmp_path):
    """On the CPU the thread count sets the bits (a sweep of other --jobs sets another): a resume with
    another count silently stopped matching the uninterrupted run, and nothing recorded the count."""
    import warnings

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        train(tiny_config(), tmp_path, CPU, progress_stream=sys.stdout)
        assert load_checkpoint(list_checkpoints(tmp_path)[-1])["cpu_threads"] == 1
        torch.set_num_threads(2)
        with pytest.warns(UserWarning, match=r"checkpoint-00000004.pt' was trained with 1 CPU thread\(s\) and this "
                                             r"resume has 2: .* \(OMP_NUM_THREADS=1 resumes it as it ran\)"):
            train(tiny_config("train.steps=6"), tmp_path, CPU, resume=True, progress_stream=sys.stdout)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train(tiny_config("train.steps=8"), tmp_path, CPU, resume=True, progress_stream=sys.stdout)
        assert not [warning for warning in caught if "CPU thread" in str(warning.message)]
    finally:
        torch.set_num_threads(threads)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux's")
def test_the_start_line_says_the_cpu_threads_and_more_threads_than_cpus_are_warned_of(tmp_path, monkeypatch,
                                                                                     capsys):
    """A Kubernetes pod allowed 2 CPUs of a 64-core host: torch takes 64 threads, which take turns on the 2,
    and the start line ("device cpu (channels_last off, ...)") said nothing of threads. A cgroup's CPU
    quota (v2's cpu.max here, played by a file) limits the CPUs as the affinity does."""
    from gan.core import processes

    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")  # (1.5 CPUs' time: 2 CPUs, rounded up)
    monkeypatch.setattr(processes, "CGROUP_CPU_MAX", quota)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        with pytest.warns(UserWarning, match=r"torch computes with 3 threads and this process may use (1 CPU|2 CPUs) "
                                             r"\(its CPU affinity or its container's CPU quota\): .*OMP_NUM_THREADS="):
            train(tiny_config(), tmp_path / "run", CPU)
    finally:
        torch.set_num_threads(threads)
    assert ", device cpu, 3 threads (" in capsys.readouterr().err
    assert processes.usable_cpus() == min(2, len(os.sched_getaffinity(0)))
    quota.write_text("max 100000\n")  # (no quota)
    assert processes.usable_cpus() == len(os.sched_getaffinity(0))


def test_a_divergence_points_at_the_loss_weights_as_well_as_the_rates():
    """`loss.r1_gamma = 1e6` stopped a run at step 1 with advice to lower the learning rates alone."""
    said = str(NonFiniteLossError(1, "grad/discriminator", None, 1.03e7, 1e6))
    assert "Lower the learning rates (or a loss weight or penalty set far above its default: loss.*_weight, " \
           "loss.r1_gamma), or check the data." in said
    # a NaN under a bound set low is no fault of the bound: the usual advice
    nan = str(NonFiniteLossError(7, "loss/d", None, float("nan"), 5.0))
    assert "Lower the learning rates" in nan and "raise it" not in nan


def test_a_resume_counts_the_side_tasks_in_its_eta_from_the_start(tmp_path, monkeypatch):
    """Side tasks' times were kept per process: the first ETAs after each resume left out the metrics
    passes and checkpoints still to come (`ETA 0m00s` with 8 s to go)."""
    from gan.training import loop

    train(tiny_config(), tmp_path, CPU, progress_stream=sys.stdout)
    saved = load_checkpoint(list_checkpoints(tmp_path)[-1])["side_task_seconds"]
    assert {"previews", "checkpoint"} <= set(saved)
    seen, ahead = [], loop._side_tasks_ahead
    monkeypatch.setattr(loop, "_side_tasks_ahead", lambda run: seen.append(dict(run.side_task_seconds)) or ahead(run))
    train(tiny_config("train.steps=6"), tmp_path, CPU, resume=True, progress_stream=sys.stdout)
    assert seen and {"previews", "checkpoint"} <= set(seen[0])


def test_ema_bn_batches_for_a_generator_without_batchnorm_is_warned_of(tmp_path):
    """model.generator_args.norm = 'none' with train.ema_bn_batches = 64: every weight the same as at
    32, and no word (the inert-key warnings covered only ema_decay = 0)."""
    with pytest.warns(UserWarning, match=r"train.ema_bn_batches = 64 changes nothing: .* this generator has no "
                                         r"BatchNorm \(model.generator_args.norm = 'none'\)"):
        train(tiny_config("model.generator_args.norm=none", "train.ema_bn_batches=64", "train.steps=1"),
              tmp_path / "no_bn", CPU, progress_stream=sys.stdout)
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # (with BatchNorm it is read: no word)
        warnings.simplefilter("always")
        train(tiny_config("train.ema_bn_batches=64", "train.steps=1"), tmp_path / "bn", CPU, progress_stream=sys.stdout)
    assert not [warning for warning in caught if "ema_bn_batches" in str(warning.message)]


def test_the_last_step_writes_its_previews_when_it_is_no_multiple_of_image_every(tmp_path):
    # (guards a mutation probe found open: a run of 5 steps at image_every 2 ended without grids of its weights)
    result = train(tiny_config("train.steps=5", "log.image_every=2"), create_run_dir(tmp_path, "demo"), CPU)
    steps = sorted({p.name.split("-")[0] for p in (result.run_dir / "samples").iterdir()})
    assert steps == ["00000002", "00000004", "00000005"]
