"""Long work shows progress: the line's rate and ETA count only the work done since the start
(a resumed run's earlier steps are not in its speed), and slow metrics show a line too."""

import io
import os

import pytest
from click.testing import CliRunner
from PIL import Image

from gan.commands.main import main
from gan.core import progress as progress_module
from gan.core.progress import Progress, print_above


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "perf_counter", clock)
    return clock


def test_rate_and_eta_count_only_what_was_done_since_the_start(clock):
    stream = io.StringIO()
    progress = Progress(100, start=50, stream=stream, unit="image")
    clock.now += 10
    progress.update(60)  # 10 images in 10 s, 40 to go
    assert stream.getvalue() == "image 60/100 (60%)  1.0 img/s  elapsed 0m10s  ETA 0m40s\n"


def test_the_eta_leaves_out_the_start_up_of_the_first_step(clock):
    """A compiled run's first step took 26 s and the next 49 took 1 s: the ETA at step 50 was 1h20m-
    like, 40x the 3 s left, and step 1 showed its start-up as 0.2 img/s."""
    stream = io.StringIO()
    progress = Progress(200, stream=stream)
    clock.now += 26
    progress.update(1, rate=0.2, start_up=26.0)
    clock.now += 1
    progress.update(50, rate=3136.0)
    first, later = stream.getvalue().splitlines()
    assert first == "step 1/200 (0%)  start-up 26.0s  elapsed 0m26s  ETA ?"
    assert later.endswith("3136.0 img/s  elapsed 0m27s  ETA 0m03s")  # 150 steps at 49 per second


def test_a_log_gets_a_line_per_interval_and_always_the_last(clock):
    stream = io.StringIO()
    progress = Progress(10, stream=stream, unit="SWD direction", rate_unit="direction", log_interval=5.0)
    for done in range(1, 11):
        clock.now += 1
        progress.update(done)
    lines = stream.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["1/10", "6/10", "10/10"], lines
    assert all("direction/s" in line for line in lines)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return 2


@pytest.fixture(autouse=True)
def a_terminal_that_redraws(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")  # (whatever the TERM of the machine running the tests)


def test_a_dumb_terminal_gets_lines_without_control_codes(clock, monkeypatch):
    # TERM=dumb (Emacs' shell, some notebook consoles) showed every redraw's ^M^[[K
    monkeypatch.setenv("TERM", "dumb")
    stream = Terminal()
    progress = Progress(2, stream=stream)
    for step in (1, 2):
        clock.now += 1
        progress.update(step, {"g": 0.5}, rate=64.0)
    print_above("step 2: val/psnr 21.5", stream)
    assert "\033" not in stream.getvalue() and "\r" not in stream.getvalue()
    assert stream.getvalue().splitlines()[1:] == ["step 2/2 (100%)  64.0 img/s  elapsed 0m02s  ETA 0m00s  g 0.5",
                                                  "step 2: val/psnr 21.5"]


def test_a_terminal_gets_every_update_on_one_redrawn_line(clock, monkeypatch):
    monkeypatch.setattr(progress_module.os, "get_terminal_size", lambda fd: os.terminal_size((200, 24)))
    stream = Terminal()
    progress = Progress(3, stream=stream, log_interval=60.0)
    for step in range(1, 4):
        clock.now += 1
        progress.update(step, {"g": 0.5}, rate=64.0)
    progress.close()
    assert stream.getvalue().count("\r\033[K") == 3 and stream.getvalue().endswith("g 0.5\n")
    assert "step 3/3 (100%)  64.0 img/s  elapsed 0m03s  ETA 0m00s  g 0.5" in stream.getvalue()


def test_a_training_terminal_line_moves_between_log_points_and_a_log_gets_none(monkeypatch, tmp_path):
    """The line was drawn at log points alone: the shipped DCGAN-64 config on a CPU showed 'step 1/52
    ... ETA ?' for 87 s, CycleGAN's for minutes."""
    import torch
    from conftest import tiny_config

    from gan.training.loop import train

    monkeypatch.setattr(progress_module, "REDRAW_S", 0.0)
    monkeypatch.setattr(progress_module.os, "get_terminal_size", lambda fd: os.terminal_size((300, 24)))
    for stream, between in ((Terminal(), True), (io.StringIO(), False)):
        train(tiny_config("train.steps=5", "log.every=100"), tmp_path / f"run-{between}", torch.device("cpu"),
              progress_stream=stream)
        drawn = stream.getvalue()
        assert "step 1/5" in drawn and "step 5/5" in drawn, drawn
        for step in (2, 3, 4):  # (the losses of step 1's log point kept: the window's are not read back yet)
            assert (f"step {step}/5" in drawn) == between, drawn
        if between:
            line = drawn.split("step 3/5")[1].split("\r")[0]
            assert "img/s" in line and "ETA" in line and "loss/" in line, line


def test_the_line_is_cut_to_the_terminal_width_after_its_pace_and_eta(clock, monkeypatch):
    """A line wider than the terminal wraps, and erasing the last row would leave the others behind.
    The losses come last: a DCGAN line is 160 columns, and one cut at 100 showed no images/s or ETA."""
    monkeypatch.setattr(progress_module.os, "get_terminal_size", lambda fd: os.terminal_size((80, 24)))
    stream = Terminal()
    progress = Progress(100, stream=stream)
    clock.now += 1
    progress.update(1, {f"loss/term_{index}": 0.5 for index in range(10)}, rate=64.0)
    assert stream.getvalue() == "\r\033[K" + (  # 79 columns
        "step 1/100 (1%)  64.0 img/s  elapsed 0m01s  ETA 1m39s  loss/term_0 0.5  loss/te")


def test_the_eta_counts_the_pauses_to_come_not_those_past(clock):
    """With SWD every 20 of 60 steps, the ETA at step 20 said 6 s and 56 s were left: the passes to
    come were not in it. Nor should a pass already made count as steps' time."""
    stream = io.StringIO()
    progress = Progress(60, stream=stream)
    clock.now += 1
    progress.update(1, rate=10.0, start_up=1.0)
    clock.now += 19 + 15  # 19 steps of a second, then a 15 s pass
    progress.update(20, rate=10.0, paused=15.0, ahead=30.0)  # two more passes: at 40 and after step 60
    assert stream.getvalue().splitlines()[-1].endswith("ETA 1m10s")  # 40 steps + 30 s


def test_the_eta_after_a_stop_the_process_did_not_work_through_keeps_its_pace(clock):
    """Stopped 20 s (SIGSTOP, Ctrl-Z) at step 80 of 300 steps of 0.05 s: the ETA said 50 s where 9 s
    were left, and stayed too high to the end (an 8-hour suspension: hours too long)."""
    stream = io.StringIO()
    progress = Progress(300, stream=stream)
    clock.now += 1
    progress.update(1, rate=10.0, start_up=1.0)
    clock.now += 79 * 0.0625
    progress.update(80)
    clock.now += 20 + 20 * 0.0625  # stopped 20 s within the next window
    progress.restart_pace(100)  # (the loop: a SIGCONT came)
    progress.update(100)
    eta = progress_module.format_duration
    assert stream.getvalue().splitlines()[-1].endswith(f"ETA {eta(200 * 0.0625)}")  # at the pace before
    clock.now += 100 * 0.125  # slower now: measured afresh since step 100, the stop left out
    progress.update(200)
    assert stream.getvalue().splitlines()[-1].endswith(f"ETA {eta(100 * 0.125)}")


def test_a_training_window_the_process_was_stopped_in_logs_no_pace(tmp_path, monkeypatch):
    """Stopped within a window, the run logged perf/images_per_s 15.2 among points of about 420 (gan
    compare's images/s column is their mean), and its side tasks' times carried the stop into the ETA."""
    import signal
    import time

    import torch
    from conftest import tiny_config
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import gan.training.loop as loop

    one_step = loop._one_step

    def stopped_at_step_5(run, stop):
        done = one_step(run, stop)
        if run.step == 5:
            time.sleep(1.0)  # (the time a SIGSTOP would hold it)
            os.kill(os.getpid(), signal.SIGCONT)
        return done

    monkeypatch.setattr(loop, "_one_step", stopped_at_step_5)
    loop.train(tiny_config("train.steps=8", "log.every=2", "train.keep_best="), tmp_path / "run", torch.device("cpu"))
    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"scalars": 0})
    events.Reload()
    assert [event.step for event in events.Scalars("perf/images_per_s")] == [2, 4, 8]  # (not the stopped window's 6)


def test_messages_between_updates_take_the_progress_lines_place_on_a_terminal_only():
    terminal, log = Terminal(), io.StringIO()
    for stream in (terminal, log):
        print_above("step 4: val/psnr 21.5", stream)
    assert terminal.getvalue() == "\r\033[Kstep 4: val/psnr 21.5\n"
    assert log.getvalue() == "step 4: val/psnr 21.5\n"  # no empty line in a log


def test_a_warning_on_a_terminal_clears_the_progress_line_first(monkeypatch):
    from gan.commands import main as main_module

    monkeypatch.setattr(main_module.sys, "stderr", Terminal())
    assert main_module._format_warning("slow disk", UserWarning, "x.py", 1) == "\r\033[Kwarning: slow disk\n"
    monkeypatch.setattr(main_module.sys, "stderr", io.StringIO())
    assert main_module._format_warning("slow disk", UserWarning, "x.py", 1) == "warning: slow disk\n"


def test_eval_shows_the_progress_of_the_slow_swd_sort(tiny_demo_run, tmp_path):
    result = CliRunner().invoke(main, ["eval", str(tiny_demo_run), "--metrics", "swd", "--n", "16",
                                       "--cache-dir", str(tmp_path), "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    # 32 px images: two pyramid levels of 4 x 128 directions each
    assert "SWD direction 1024/1024 (100%)" in result.output and "direction/s" in result.output, result.output
    # (and taking the images apart into patches: 10,000 images took 20 s without a word, for each set)
    for images in ("real", "generated"):
        assert f"{images} image into SWD patches 16/16 (100%)" in result.output, result.output


def test_the_training_eta_foresees_each_side_task_at_its_schedule_and_after_the_last_step():
    from types import SimpleNamespace

    from conftest import tiny_config

    from gan.training.loop import _side_tasks_ahead

    config = tiny_config("train.steps=60", "metrics.every=20", "train.checkpoint_every=25", "log.image_every=10",
                         "log.eval_every=0")
    run = SimpleNamespace(config=config, step=20, side_task_seconds={
        "generative metrics": 3.0, "checkpoint": 1.0, "previews": 0.5, "validation": 7.0})
    # metrics at 20, 40, 60; checkpoints at 25, 50, 60; previews at 20..60; no validation
    assert _side_tasks_ahead(run) == (3 * 3.0 + 3 * 1.0 + 5 * 0.5, ())
    run.step = 21
    assert _side_tasks_ahead(run) == (2 * 3.0 + 3 * 1.0 + 4 * 0.5, ())
    run.step = 60
    assert _side_tasks_ahead(run) == (3.0 + 1.0 + 0.5, ())
    # before its first pass, a metric's time is unknown: named, where the ETA left it out unsaid (a
    # first run's SWD passes, minutes each on a CPU, after an ETA of seconds)
    run.step, run.side_task_seconds = 5, {"checkpoint": 1.0}
    assert _side_tasks_ahead(run) == (3 * 1.0, ("generative metrics",))


def test_an_eta_names_the_long_work_to_come_it_cannot_count_yet(clock):
    stream = io.StringIO()
    progress = Progress(100, stream=stream, unit="step")
    clock.now += 10
    progress.update(60, ahead=5.0, untimed=("generative metrics",))
    assert "ETA 0m11s + generative metrics" in stream.getvalue()  # (40 steps at 6 a second, and 5 s)


@pytest.mark.parametrize("recipe, images", [("pix2pix", 2), ("cyclegan", 4), ("srresnet", 3)])
def test_validation_shows_a_progress_line_of_its_images(tmp_path, recipe, images):
    """pix2pix's validation over 155 pairs ran 10 s without a word between the step line and its
    scores (minutes at 256 px), where the generative metrics showed progress."""
    import torch
    from conftest import tiny_recipe_config, write_recipe_data

    from gan.training.loop import train

    data = write_recipe_data(tmp_path / "data")
    shown = io.StringIO()
    train(tiny_recipe_config(recipe, data, "log.eval_every=2"), tmp_path / "run", torch.device("cpu"),
          progress_stream=shown)
    assert f"validation image {images}/{images} (100%)" in shown.getvalue(), shown.getvalue()


def test_a_delayed_progress_line_shows_only_work_that_takes_long_and_not_in_other_torchrun_processes(monkeypatch):
    from gan.core.progress import DelayedProgress

    quick, slow = io.StringIO(), io.StringIO()
    for stream, after_s in ((quick, 60.0), (slow, 0.0)):
        progress = DelayedProgress(4, "reading image headers", "file", after_s=after_s, stream=stream)
        for done in range(5):
            progress.update(done)
        progress.close()
    assert quick.getvalue() == ""
    assert slow.getvalue().splitlines()[-1].startswith("reading image headers 4/4 (100%)")
    monkeypatch.setenv("RANK", "1")
    other = io.StringIO()
    progress = DelayedProgress(4, "reading image headers", "file", after_s=0.0, stream=other)
    progress.update(4)
    assert other.getvalue() == ""


@pytest.mark.parametrize("files, limit, last_line", [(3, 0, "reading image headers 3/3 (100%)"),
                                                     (6, 2, "reading image headers 2/2 (100%)")])
def test_reading_a_large_folders_headers_shows_progress(tmp_path, monkeypatch, files, limit, last_line):
    """At CelebA's 202,599 images the header scan took 20 s without a word. With a limit
    (data.max_images), the line counts to the images it reads."""
    import functools

    import gan.data.decode

    for index in range(files):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{index}.png")
    stream = io.StringIO()
    monkeypatch.setattr(gan.data.decode, "DelayedProgress",
                        functools.partial(progress_module.DelayedProgress, after_s=0.0, stream=stream))
    readable, _ = gan.data.decode.readable_images(sorted(tmp_path.glob("*.png")), strict=False, limit=limit)
    assert len(readable) == (limit or files) and stream.getvalue().splitlines()[-1].startswith(last_line)


def test_a_pace_below_one_a_second_is_shown_as_seconds_each(clock):
    # the shipped 256-px CycleGAN on a CPU, 30 s a step at batch 1, showed "0.0 img/s" at every step
    stream = io.StringIO()
    progress = Progress(6, stream=stream, unit="step", rate_unit="img")
    clock.now += 60
    progress.update(2, rate=1 / 30)
    assert stream.getvalue().startswith("step 2/6 (33%)  30.0 s/img  elapsed 1m00s")
