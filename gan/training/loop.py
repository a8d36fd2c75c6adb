"""The one training loop every recipe plugs into.

It owns device and precision, seeding, data iteration, the learning-rate schedule,
checkpoints (atomic, resumable bit-exactly), TensorBoard scalars and image grids,
PNG sample grids, the progress line, SIGINT/SIGTERM and non-finite losses. What a
training step does is the recipe's business (gan/recipes/base.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import Dataset

from gan.core.checkpoint import (
    BEST_NAME,
    BEST_RECORD,
    METRICS_RECORD,
    BestCheckpoint,
    checkpoint_path,
    discard_untracked_best_after,
    list_checkpoints,
    prune_checkpoints,
    save_checkpoint,
    stored_entry,
    stored_step,
)
from gan.core.compilation import uncompiled
from gan.core.config import Config, TrainConfig, checked_config, config_to_dict, dump_config, flatten_config
from gan.core.devices import select_device
from gan.core.distributed import (
    SINGLE_PROCESS,
    ProcessGroup,
    StopVote,
    any_rank,
    average_gradients_before_steps,
    broadcast_object,
    gather_objects,
    mean_over_ranks,
    synchronise_weights,
    union_over_ranks,
    use_sync_batchnorm,
)
from gan.core.files import (
    LOCK_NAME,
    RunDirectoryBusy,
    RunLock,
    WriteError,
    missing_folders,
    remove_empty_folders,
    remove_lock_file,
    remove_stale_temps,
    write_atomically,
    write_text_atomically,
)
from gan.core.images import encode_image, image_grid, save_encoded_image, signed_to_pil
from gan.core.presets import LOSS_PRESETS
from gan.core.processes import gan_launcher, usable_cpus
from gan.core.progress import PassStopped, Progress, format_duration, print_above
from gan.core.registry import ConfigError
from gan.core.run_folders import refuse_folder_in_a_run
from gan.core.wording import counted, first_few
from gan.data import data_signature, training_batches, training_folders
from gan.data.sampling import end_batches, first_samples, loader_shortage
from gan.metrics.generative import GenerativeEvaluator
from gan.metrics.inception import weights_setting
from gan.nets import network_defaults
from gan.recipes import RECIPES
from gan.recipes.base import Recipe
from gan.recipes.losses import penalties_through_batchnorm
from gan.recipes.schedules import adversarial_on, lr_factor
from gan.training import records
from gan.training.cuda_graphs import GraphedStep, StepFunction, set_learning_rates
from gan.training.device import make_autocast, seed_everything
from gan.training.divergence import non_finite_buffer, raise_if_weights_diverged
from gan.training.errors import OUTPUT_TASKS, NonFiniteLossError, SideTaskError
from gan.training.event_log import EventLog
from gan.training.health import HealthWatch, regularisers_on
from gan.training.metric_watch import MetricWatch
from gan.training.preflight import (
    check_batch_fits,
    check_pools_fit,
    check_run_can_finish,
    check_scores_per_image,
    check_validation_fits,
    refuse_other_data,
    warn_if_validation_reads_training_data,
)
from gan.training.process_state import process_state_kept
from gan.training.resolve import resolve_names
from gan.training.run_dir import (
    dead_start_files,
    discard_start,
    notes_continued,
    notes_in,
    notes_of,
    resume_notes,
    rollback_halvings,
    rollback_note,
    rollback_note_kept,
    start_outputs,
)
from gan.training.speed import Speed, accelerate, to_device, training_step
from gan.training.state import (
    changes_since,
    keeps_its_start,
    newest_loadable_checkpoint,
    refuse_other_checkpoints,
    restore_training_state,
    started_from_one_file,
    training_state,
)
from gan.training.stop import StopRequest


@dataclass
class CommandStart:
    """The step a `gan train` command began at and when its first step started (None until known):
    its closing line's figures, which an --on-nan rollback, training again from an earlier
    checkpoint, must not reset."""
    first_step: int | None = None
    started_at: float | None = None


@dataclass
class TrainResult:
    run_dir: Path
    step: int  # steps completed
    checkpoint: Path | None  # the last checkpoint written
    interrupted_by: str | None  # signal name when stopped early


# Told the config and step of the checkpoint a resume continues, once it is loaded (gan train reports
# the settings the resume changes from it).
ResumeReport = Callable[[dict[str, Any], int], None]


# ----------------------------------------------------------------------------- the loop


def train(config: Config, run_dir: Path | str, device: torch.device | str, resume: bool = False,
          progress_stream: Any = None, group: ProcessGroup = SINGLE_PROCESS,
          on_resume: ResumeReport | None = None, command: CommandStart | None = None) -> TrainResult:
    """Train `config` in `run_dir` (made if missing); with `resume`, continue its newest checkpoint.
    Without it, a `run_dir` is refused (ConfigError), untouched, as `gan train --run-dir` refuses it,
    when it holds checkpoints, lies inside a run, or holds files gan did not write or what a start
    that stopped left. `config` is checked as `load_config` checks a file, and `device` (text too:
    "cpu", "cuda:1") as `gan train --device` is (DeviceUnavailable), before anything is written.

    The run directory has one writer: this process holds its lock (gan/core/files.py) for the
    whole run, and another writer stops at once with RunDirectoryBusy. With a `group` of
    several processes (torchrun), each trains on its share of every global batch with
    gradients averaged over all (gan/core/distributed.py); only rank 0 writes, and locks.
    The process's random streams, grad mode and default dtype are as they were after it
    (gan/training/process_state.py); one run trains at a time in a process.
    """
    config = _checked_as_loaded(config)
    # (absolute: a notebook's `%cd` while a run trained in a thread sent its checkpoints to another folder;
    # `..` kept, as the folders made for it were: those of a start that fails are removed by that path. The
    # device as `gan train --device` checks it: "meta" set up a run that failed at step 1, "cuda" without a
    # GPU raised torch's driver error)
    run_dir, device = Path(run_dir).absolute(), select_device(str(device), given_as="device=")
    left = [] if resume else _left_by_a_start(run_dir)  # (before the lock: a folder refused gains no lock file)
    lock = RunLock(run_dir) if group.is_main else None
    # (a new run that fails leaves neither the folders it made nor a lock file it made, as gan train's does not)
    made = missing_folders([run_dir]) if lock is not None and not resume else []
    lock_made = lock is not None and not resume and not (run_dir / LOCK_NAME).exists()
    try:
        return _train_holding_the_lock(config, run_dir, device, resume, progress_stream, group, on_resume, command,
                                       lock, left)
    except BaseException as error:
        if lock_made and not isinstance(error, RunDirectoryBusy) and not list_checkpoints(run_dir):
            remove_lock_file(run_dir)
            remove_empty_folders(made)
        raise


def _train_holding_the_lock(config: Config, run_dir: Path, device: torch.device, resume: bool, progress_stream: Any,
                            group: ProcessGroup, on_resume: ResumeReport | None, command: CommandStart | None,
                            lock: RunLock | None, left: list[str]) -> TrainResult:
    """`train` from the lock on: a new run's folder refused if it holds a run or a stopped start."""
    with process_state_kept(device), lock or contextlib.nullcontext():
        if not resume and list_checkpoints(run_dir):  # (a new run would replace them)
            raise ConfigError(f"'{run_dir}' holds a run with checkpoints (newest '{list_checkpoints(run_dir)[-1].name}')"
                              ": train(..., resume=True) continues it, and a new run needs a new folder; nothing "
                              "was changed")
        if left:  # (said under the lock: a run training there now is busy, not a start that stopped)
            # (its event file, TensorBoard would show as one run with the new one's; its config.toml, it would replace)
            events = [name for name in left if name.startswith("events.out.tfevents.")]
            what = f"its event file '{events[0]}'" if events else f"its {first_few(left, 3)}"
            raise ConfigError(f"'{run_dir}' holds a start that stopped before its first checkpoint ({what}): "
                              "gan.training.run_dir.start_or_resume(run_dir) sets it aside, as gan train --run-dir "
                              "does, or give a new folder; nothing was changed")
        config = config if resume else started_from_one_file(config)
        return _train(config, run_dir, device, resume, progress_stream, group, on_resume, command or CommandStart(),
                      sole_writer=lock is not None and lock.held)


def _checked_as_loaded(config: Config) -> Config:
    """`config` checked whole, as `load_config` checks a file's (keys, types, ranges, then names), with
    the same ConfigError: one edited in Python since (`config.log.every = 0`) divided by zero once the
    run was set up. Its warnings were load_config's to give, once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return resolve_names(checked_config(config))


def _left_by_a_start(run_dir: Path) -> list[str]:
    """What a start that died before its first checkpoint left in `run_dir`, a new run's folder (none
    where it is missing or holds checkpoints, which are refused apart). ConfigError, nothing touched,
    for a folder `gan train --run-dir` refuses too: one inside a run, or one holding files gan did not
    write (a person's config.toml was replaced by the run's, or deleted by a start that failed)."""
    refuse_folder_in_a_run(Path(os.path.abspath(run_dir)).parent, "run_dir's parent")  # (`..` resolved)
    if not run_dir.is_dir() or list_checkpoints(run_dir):
        return []
    return dead_start_files(run_dir, option="run_dir")


# What only gan train, holding the run directory's lock, writes there (and anything in samples/): a temp
# of one of these is an earlier holder's, gone, whatever machine it names (`gan eval`'s metrics-*.json
# and eval-* results, written without the lock, are left to `is_stale_temp`'s rule)
LOCK_HOLDERS_FILES = ("checkpoint-*.pt", BEST_NAME, BEST_RECORD, METRICS_RECORD, "config.toml")


@dataclass
class _Run:
    """What the phases of one training run share: made by `_set_up`, advanced by the others."""

    config: Config
    run_dir: Path
    device: torch.device
    group: ProcessGroup
    recipe: Recipe
    dataset: Dataset
    speed: Speed
    evaluator: GenerativeEvaluator | None  # rank 0 only, like everything that writes
    best: BestCheckpoint | None
    health: HealthWatch | None
    unconditional: bool  # the recipe has an evaluation generator (dcgan)
    stop_vote: StopVote  # (made first, by every process: one that rank 0 fails before would wait for it)
    start_step: int = 0
    step: int = 0
    samples_seen: int = 0
    saved_step: int = 0  # the step of the newest checkpoint this process wrote or resumed
    last_checkpoint: Path | None = None
    real_images: torch.Tensor | None = None  # the stream's first real images, for the collapse checks
    config_found: bytes | None = None  # a resume's config.toml as it was, put back when no step trains
    settings_changed: list[str] | None = None  # what a resume changes of its checkpoint's settings
    trained_notes: list[tuple[int, str]] | None = None  # the resume notes its checkpoint holds (None: none kept)
    notes: list[tuple[int, str]] | None = None  # (step, change) of each resume's changes: config.toml's and checkpoints'
    side_tasks_due: dict | None = None  # the side tasks of the checkpoint's step that failed, to finish first
    given_up: dict | None = None  # this step's side tasks a stop cut short (PassStopped), for its checkpoint to record
    per_process: tuple[int, list] | None = None  # (step, each process's own state) under torchrun, for checkpoints
    command: CommandStart | None = None  # where and when the command began (the first of --on-nan's attempts)
    # What `_start_logging` adds, once there is something to train:
    writer: Any = None
    data: Iterator | None = None
    watch: MetricWatch | None = None
    progress: Progress | None = None
    run_step: StepFunction | None = None
    timer_start: float = 0.0  # since the last log point, for images/s
    timer_step: int = 0
    window_closed_at: int = 0  # the step of the last log point whose window of losses was logged
    paused: float = 0.0  # seconds of writing grids and checkpoints since then, left out of images/s
    paused_in_all: float = 0.0  # since this start or resume, left out of the time the ETA gives a step
    stop: StopRequest | None = None  # while steps run: its count of SIGCONTs tells of a stopped process
    continued_in_window: int = 0  # that count when the logging window began, and when the ETA's pace did
    continued_in_pace: int = 0
    images_per_second: float | None = None  # the last window's pace, which the progress line shows for one stopped
    side_task_seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # each one's last time, for the ETA
    unloadable_said: set[Path] = dataclasses.field(default_factory=set)  # files in the run named so: once a run
    data_record: dict | None = None  # what the checkpoints record of the training images (`take_data_record`)
    initial_generator: dict | None = None  # the file model.init_generator's weights came from, its step and SHA-256
    found_at_start: set[Path] = dataclasses.field(default_factory=set)  # a new run's `start_outputs` before it wrote any

    @property
    def main(self) -> bool:
        return self.group.is_main

    def take_data_record(self) -> dict:
        """`data_record` taken once for every checkpoint of the run, as its images are first read
        (a decoded-image cache's snapshot then: images replaced before the first checkpoint were
        recorded as the ones trained on, and a resume on them said nothing)."""
        if self.data_record is None:
            self.data_record = self._data_record()
        return self.data_record

    def _data_record(self) -> dict:
        """The data set's `data_signature`, and the folders it was read from (absolute: a relative
        data.root reads another folder from another working folder, which a resume names)."""
        data, metrics = self.config.data, self.config.metrics
        folders = training_folders(data)
        # (the real images the metrics measure: gan eval compares with the same folder, wherever it runs)
        measured = {"metrics_root": str(Path(metrics.root).expanduser().resolve())} if metrics.every and metrics.root else {}
        # (the validation images, that gan eval and translate write no output among them, wherever they run)
        validated = {"val_root": str(Path(data.val_root).expanduser().resolve())} if data.val_root else {}
        # (CycleGAN's two domains counted apart: an image moved from one to the other changes no name or size)
        domains = {"domains": [len(self.dataset.a_paths), len(self.dataset.b_paths)]} \
            if hasattr(self.dataset, "a_paths") else {}
        return {**data_signature(self.dataset), "folders": folders, **measured, **validated, **domains}

    @property
    def evaluation_images(self) -> tuple[str, str]:
        """`records.evaluation_images` of best.pt's metric: of a val/ metric's images at each
        validation, which reads them again (files replaced mid-run were scored, and compared with a
        best.pt of the old ones, without a word); of the metrics' real images once, as their
        statistics are computed once a run."""
        assert self.best is not None
        if self.best.metric.startswith("val/"):
            return records.evaluation_images(self.best, self.config, self.recipe, self.evaluator)
        return self._reference_images

    @functools.cached_property
    def _reference_images(self) -> tuple[str, str]:
        assert self.best is not None
        return records.evaluation_images(self.best, self.config, self.recipe, self.evaluator)

    def say(self, message: str) -> None:
        if self.main:
            print_above(message)


def _train(config: Config, run_dir: Path, device: torch.device, resume: bool, progress_stream: Any,
           group: ProcessGroup, on_resume: ResumeReport | None, command: CommandStart,
           sole_writer: bool = False) -> TrainResult:
    """The run in phases: set up, restore, then one step and its periodic work until the end or a
    signal, a checkpoint whenever one is due, and the closing report. `sole_writer`: this process holds
    the run directory's lock."""
    run = _set_up(config, run_dir, device, group, resume, sole_writer)
    run.command, run.initial_generator = command, run.recipe.initial_generator  # (a resume's: its checkpoint's)
    run.found_at_start = set() if resume else start_outputs(run_dir)  # (not the start's to discard if it fails)
    if resume:
        _restore(run, on_resume)
        if run.main:
            run.best = records.best_checkpoint_to_keep(config, run.recipe, run.evaluator, run_dir)
    if command.first_step is None:  # (an --on-nan rollback trains again from a later start: the command's is kept)
        command.first_step = run.start_step
    if run.step >= config.train.steps and not run.side_tasks_due:  # (config.toml stays, unless gone or cut short)
        if run.main and records.lacks_settings(run_dir / "config.toml", run.config):
            write_text_atomically(run_dir / "config.toml",
                                  resume_notes(run.trained_notes or []) + dump_config(run.config))
        run.say(f"nothing to do: the run is at step {run.step} and train.steps is {config.train.steps}")
        return TrainResult(run_dir, run.step, run.last_checkpoint, None)
    failed_before_a_step = False
    # a signal while the event file closes and the run is summed up, after its last checkpoint: the run
    # is done, and a scheduler's stop then (or a Ctrl-C) is said as such, not as a stop without a checkpoint
    late_stop = StopRequest(announce=False)
    try:
        _start_logging(run, resume, progress_stream)  # (it reads the first images: --strict may fail there)
        if run.side_tasks_due:
            _finish_side_tasks(run, run.side_tasks_due)
        with StopRequest(announce=run.main) as stop:
            interrupted_by = _steps_until_done(run, stop)
    except BaseException as error:  # (a second Ctrl-C too)
        # no step completed, or the first one failed (a divergence stop at step 1), and no checkpoint
        # was written on the way out (a data error after step 1 saves it): nothing to keep. (A resume's
        # divergence is --on-nan rollback's to record: config.toml keeps the rates it halved.)
        failed_before_a_step = (run.step <= run.start_step + 1 and run.saved_step == run.start_step and run.main
                                and not (resume and isinstance(error, NonFiniteLossError)))
        raise
    finally:
        with late_stop:
            _close(run, resume, failed_before_a_step)
    with late_stop:
        if late_stop.signal_name and not interrupted_by:
            run.say(f"{late_stop.signal_name} came after the last checkpoint, as the run's files were closed: "
                    "it cut nothing short")
        return _finish(run, interrupted_by)


def _close(run: _Run, resume: bool, failed_before_a_step: bool) -> None:
    """The progress line, event file and loader workers closed; what a start that trained no step
    wrote undone: a new run's files discarded, a resume's config.toml put back as it was."""
    for opened in (run.progress, run.writer):
        if opened is not None:
            opened.close()
    end_batches(run.data)  # (a data error's traceback, kept to the exit, holds them: ended now, not then)
    run.data = None
    trained_no_step = failed_before_a_step or run.step == run.start_step  # (a second Ctrl-C at the start, say)
    if failed_before_a_step and not resume:
        try:
            discard_start(run.run_dir, run.found_at_start)
        except OSError as error:  # (the failure is the error to say: one out of open files failed this too)
            warnings.warn(f"what the failed start wrote in '{run.run_dir}' could not be removed ({error})",
                          stacklevel=3)
    elif trained_no_step and run.config_found is not None:  # its settings trained no step: not the run's
        found = run.config_found
        try:
            write_atomically(run.run_dir / "config.toml", lambda temp: temp.write_bytes(found))
        except WriteError as error:
            warnings.warn(f"{error}: config.toml keeps the settings of this resume, which trained no step",
                          stacklevel=3)


def _steps_until_done(run: _Run, stop: StopRequest) -> str | None:
    """Steps, each with its periodic work and the checkpoints due, until train.steps or a stop; a stop
    saves the step it ends at. The signal that stopped the run, or None when it is done."""
    config, group, run_dir = run.config, run.group, run.run_dir
    vote = run.stop_vote
    run.stop = stop
    stopping = False  # agreed by all processes: they stop at the same step
    while run.step < config.train.steps and not stopping:
        if not _one_step(run, stop):
            break  # stopped by a signal while waiting for data
        last = run.step == config.train.steps
        # a signal here, or under torchrun one that reached any process by the step before
        stopping = vote.cast(stop.signal_name is not None)
        io_start = _periodic_work(run, last, stopping)
        due = run.step % config.train.checkpoint_every == 0 or last or stopping
        if due and group.distributed:  # (all ranks take part)
            _raise_if_non_finite(run)  # (before rank 0 alone checks again as it saves)
        if due and group.distributed and hasattr(run.recipe, "per_process_state"):
            run.per_process = (run.step, gather_objects(run.recipe.per_process_state(), group))
        if io_start is None:  # processes other than rank 0 write nothing, but know rank 0's checkpoints
            if due:  # (--on-nan rollback: every process rolls back, or none)
                run.last_checkpoint = checkpoint_path(run_dir, run.step)
            continue
        if due:
            saving_start, continued = time.perf_counter(), stop.continued
            run.last_checkpoint = _save(run, run.step, final=last or stopping, side_tasks_due=run.given_up)
            if stop.continued == continued:  # (else stopped meanwhile: its time is not the checkpoint's)
                run.side_task_seconds["checkpoint"] = time.perf_counter() - saving_start
        run.paused += time.perf_counter() - io_start
        run.paused_in_all += time.perf_counter() - io_start
        # a stop during this step's side tasks or checkpoint trains no further step (under torchrun
        # the next step's vote agrees on it, so the processes stop at the same step)
        stopping = stopping or (not group.distributed and stop.signal_name is not None)
    vote.close()
    interrupted_by = stop.signal_name or ("a signal to another process" if stopping else None)
    if interrupted_by and not group.distributed and run.window_closed_at < run.step:
        # a stop after the step (during its side tasks or checkpoint, or while waiting for the
        # next batch) logs the last, shorter window that a stop during the step logs
        _log_scalars(run, dict.fromkeys(OUTPUT_TASKS[:3], False))
    if interrupted_by and run.step >= config.train.steps and run.given_up is None:  # it came as the last step saved
        run.say(f"{interrupted_by} came after the last step, while its outputs and checkpoint were "
                "written: the run is complete, so it cut nothing short")
        interrupted_by = None
    if interrupted_by and run.saved_step != run.step and run.main:  # stopped in the side tasks, or waiting for data
        run.last_checkpoint = _save(run, run.step, final=True, side_tasks_due=run.given_up)
    return interrupted_by


def _warn_of_penalties_through_batchnorm(config: Config, recipe: Recipe) -> None:
    """The per-image gradient penalties this config asks for, warned of when D's BatchNorm mixes images."""
    loss = config.loss
    penalties = ([f"loss.adversarial = 'wgan-gp' (loss.gp_weight = {loss.gp_weight:g})"]
                 if loss.adversarial == "wgan-gp" and loss.gp_weight > 0 else [])
    penalties += [f"loss.r1_gamma = {loss.r1_gamma:g}"] if loss.r1_gamma > 0 else []
    message = penalties_through_batchnorm(penalties, recipe.networks,
                                          "norm" in network_defaults("discriminator", config.model.discriminator))
    if message:
        warnings.warn(message, stacklevel=3)


def _set_up(config: Config, run_dir: Path, device: torch.device, group: ProcessGroup, resume: bool,
            sole_writer: bool = False) -> _Run:
    """Seed, build the recipe and its data, check that the run can finish, and apply the speed
    switches: everything before the first checkpoint is read or written (`sole_writer`: under the run
    directory's lock, which this process holds)."""
    train_config = config.train
    # (a collective: before anything rank 0 alone does, which may fail)
    stop_vote = StopVote(group, train_config.dist_timeout_s)
    seed_everything(train_config.seed)
    # A resume takes every weight from its checkpoint: the run that model.init_generator names need
    # not be there any more (nor at the same relative path).
    built_from = (dataclasses.replace(config, model=dataclasses.replace(config.model, init_generator="none",
                                                                        init_discriminator=False))
                  if resume and config.model.init_generator else config)
    try:
        recipe: Recipe = RECIPES.get(config.recipe)(built_from, device, make_autocast(device, train_config.amp))
        dataset = recipe.build_dataset()
    except ValueError as error:  # a value the constructors of networks or data sets reject
        raise ConfigError(str(error)) from error
    refuse_other_data(config, dataset, group)
    _warn_of_penalties_through_batchnorm(config, recipe)
    for optimizer in recipe.optimizers.values():
        for param_group in optimizer.param_groups:
            param_group.setdefault("base_lr", param_group["lr"])
    main = group.is_main
    evaluator = records.generative_evaluator(config, device) if main else None
    # (a resume's best.pt is read once its checkpoint has loaded: one that this resume's changed networks
    # refuse is the config's error, not a best.pt of other networks to warn of)
    best = records.best_checkpoint_to_keep(config, recipe, evaluator, run_dir) if main and not resume else None
    unconditional = hasattr(recipe, "evaluation_generator")
    loss = config.loss
    health = HealthWatch(loss.adversarial in ("vanilla", "lsgan"), unconditional, 1.0 - loss.label_smoothing,
                         regularisers_on(loss)) if main else None
    # Every path still to be read, now; the preview images are decoded once here and kept.
    check_run_can_finish(config, run_dir, None if unconditional else recipe.preview_batch, dataset, writes=main,
                         reference=evaluator.dataset if evaluator is not None else None,
                         statistics_cached=evaluator.statistics_cached if evaluator is not None else None)
    check_pools_fit(getattr(recipe, "pools", {}), config, device)
    if evaluator is not None:  # (SWD's descriptors: a pass killed unsaid before its step's checkpoint)
        evaluator.check_memory_fits("metrics.num_samples")
    check_batch_fits(recipe.networks, config, device)  # else the kernel kills an oversized run without a word
    check_scores_per_image(recipe, config, device)
    check_validation_fits(recipe, config, device)  # (the same, for SR validation's whole images)
    if main and config.log.eval_every and hasattr(recipe, "validation_metrics"):
        warn_if_validation_reads_training_data(config)
    if group.distributed:
        _prepare_data_parallel(recipe, config, device, group)
    elif config.train.sync_batchnorm and main:
        warnings.warn("train.sync_batchnorm = true changes nothing in a single process: it shares BatchNorm "
                      "statistics between the processes of a torchrun run", stacklevel=2)
    speed = accelerate(recipe, train_config, device)
    if main:  # under the lock, every temp file is one a writer that died (kill -9, a crash) left
        remove_stale_temps(run_dir, locked_for=LOCK_HOLDERS_FILES if sole_writer else ())
        remove_stale_temps(run_dir / "samples", locked_for=("*",) if sole_writer else ())
    return _Run(config, run_dir, device, group, recipe, dataset, speed, evaluator, best, health, unconditional,
                stop_vote)


def _restore(run: _Run, on_resume: ResumeReport | None) -> None:
    """Continue from the newest checkpoint that loads, with the config's learning rates and betas (a
    resume with --set may change them), not the checkpoint's. `on_resume` (rank 0) is then given that
    checkpoint's config and step: what this resume changes is measured against them."""
    recipe = run.recipe
    # (under the config's rates and betas; a file whose optimizer or recipe state fails falls back as a damaged one)
    run.last_checkpoint, state = newest_loadable_checkpoint(
        run.run_dir, lambda state, path: restore_training_state(recipe, state, run.config, path))
    refuse_other_checkpoints(run.last_checkpoint, state["step"], run.group)  # (each machine found its own)
    if on_resume is not None and run.main:
        on_resume(state["config"], state["step"])
    model = state["config"].get("model")  # (the file its generator started from, not the folder it was found in)
    run.config = keeps_its_start(run.config, model.get("init_generator") if isinstance(model, dict) else None)
    started = state.get("initial_generator")
    run.initial_generator = started if isinstance(started, dict) else None
    run.settings_changed = changes_since(state["config"], run.config)  # (a rollback's halved rates too)
    run.trained_notes = notes_of(state.get("resume_notes"))
    timed = state.get("side_task_seconds")  # (each side task's last time: the ETA counts them before they run again)
    if isinstance(timed, dict):
        run.side_task_seconds.update({task: float(seconds) for task, seconds in timed.items() if isinstance(task, str)
                                      and isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0})
    _restore_per_process(run, state)
    _warn_of_other_thread_count(run, state.get("cpu_threads"))
    run.start_step = run.step = run.saved_step = state["step"]
    run.samples_seen = state["samples_seen"]
    run.side_tasks_due = _side_tasks_due(state)
    trained_on, now = state.get("data"), run.take_data_record()
    # (the folders may move: the same images elsewhere are the same data; sizes and domains: not in checkpoints
    # before them)
    differ = [key for key in ("images", "names", "sizes", "domains") if isinstance(trained_on, dict)
              and (key in trained_on or key in ("images", "names")) and trained_on.get(key) != now.get(key)]
    if differ and run.main:
        then = trained_on.get("domains")
        counts = (f"domain A: {then[0]} images then, {now['domains'][0]} now; domain B: {then[1]} then, "
                  f"{now['domains'][1]} now" if "domains" in differ and isinstance(then, list) and len(then) == 2
                  else f"{trained_on.get('images')} images then, {now['images']} now")
        how = ("other images under the same names: their file sizes differ" if differ == ["sizes"] else
               f"{counts}, or files renamed")
        warnings.warn(f"the training data differ from those '{run.last_checkpoint}' trained on ({how})"
                      f"{_moved_folders(trained_on, now, run.config)}: the run goes on from its place in the stream "
                      "of the data as they are now, so it no longer matches an uninterrupted run", stacklevel=2)
    if run.health and "health" in state:
        try:
            run.health.load_state_dict(state["health"])
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as error:
            warnings.warn(f"'{run.last_checkpoint}': its health-watch state is malformed ({error!r}); the watch "
                          "starts afresh", stacklevel=2)
            run.health = HealthWatch(run.health.saturation_scores, run.health.unconditional, run.health.real_target,
                                     run.health.regularising)
    run.say(f"resuming from '{run.last_checkpoint}' at step {run.start_step}")


def _moved_folders(trained_on: dict, now: dict, config: Config) -> str:
    """'; it read data.root '/a/imgs', and now reads '/b/imgs' (...)' for each training folder that
    resolves elsewhere than when the checkpoint was written: a relative one, read from another
    working folder, most often."""
    before = trained_on.get("folders") if isinstance(trained_on.get("folders"), dict) else {}
    moved = [(key, before[key], folder) for key, folder in now["folders"].items()
             if key in before and before[key] != folder]
    said = []
    for key, then, here in moved:
        value = getattr(config.data, key.split(".", 1)[1])
        relative = (f" ({key} = '{value}' is relative, read from the folder gan runs in: resume from the one the "
                    "run started in, or give an absolute path)" if not Path(value).expanduser().is_absolute() else "")
        said.append(f"; it read {key} '{then}', and now reads '{here}'{relative}")
    return "".join(said)


def _warn_of_other_thread_count(run: _Run, trained_with: object) -> None:
    """On the CPU, the thread count decides how torch splits its sums: a resume with another
    (OMP_NUM_THREADS, a sweep of another --jobs) no longer matches the run uninterrupted bit for bit."""
    threads = torch.get_num_threads()
    if run.device.type == "cpu" and isinstance(trained_with, int) and trained_with != threads and run.main:
        warnings.warn(f"'{run.last_checkpoint}' was trained with {trained_with} CPU thread(s) and this resume has "
                      f"{threads}: torch sums in another order, so the run no longer matches an uninterrupted one bit "
                      f"for bit (OMP_NUM_THREADS={trained_with} resumes it as it ran)", stacklevel=3)


def _restore_per_process(run: _Run, state: dict) -> None:
    """Each process's own state (CycleGAN's image pools) from a checkpoint of a torchrun run with as
    many processes; otherwise every process keeps rank 0's, which `restore_training_state` loaded."""
    saved = state.get("per_process")
    processes = state.get("processes")  # (optional: checkpoints written before it have none)
    if not hasattr(run.recipe, "load_per_process_state"):
        differs = _per_process_parts(run.recipe, run.config.train.sync_batchnorm)
        if isinstance(processes, int) and processes != run.group.world_size and run.main and differs:
            as_it_ran = f"torchrun --nproc_per_node={processes}" if processes > 1 else "a plain gan train --resume"
            warnings.warn(f"'{run.last_checkpoint}' was written by a run of {processes} process(es), and this resume "
                          f"runs {run.group.world_size}: each process {' and '.join(differs)}, so the run no longer "
                          f"matches an uninterrupted one exactly ({as_it_ran} resumes it as it ran)", stacklevel=3)
        return
    if not isinstance(saved, list):
        if run.group.distributed and run.main:  # (rank 0 alone saves on a stop while waiting for data)
            warnings.warn(f"'{run.last_checkpoint}' holds the image pools of one process (a single-process run's, "
                          "or rank 0's alone, written as a torchrun run stopped while reading data or on a failed "
                          f"side task): each of the {run.group.world_size} processes starts from them, so the run no "
                          "longer matches an uninterrupted one exactly", stacklevel=3)
        return
    if len(saved) == run.group.world_size:
        run.recipe.load_per_process_state(saved[run.group.rank])
    elif run.main:
        warnings.warn(f"'{run.last_checkpoint}' holds the image pools of {len(saved)} processes, and this resume "
                      f"runs {run.group.world_size}: each process starts from rank 0's pools, so the run no longer "
                      "matches an uninterrupted one exactly", stacklevel=3)


def _per_process_parts(recipe: Recipe, sync_batchnorm: bool) -> list[str]:
    """What each process computes from its own share of the batch: what another number of processes
    changes (every other draw is made for the global batch)."""
    modules = [module for network in recipe.networks.values() for module in network.modules()]
    parts = []
    if not sync_batchnorm and any(isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in modules):
        parts.append("normalises its own share of the batch (BatchNorm's statistics)")
    if any(isinstance(module, torch.nn.modules.dropout._DropoutNd) and module.p > 0 for module in modules):
        parts.append("draws its own dropout masks")
    return parts


def _start_logging(run: _Run, resume: bool, progress_stream: Any) -> None:
    """The data from where the run left off, config.toml, the event log, the loss watch and the
    progress line."""
    from torch.utils.tensorboard import SummaryWriter  # slow import: only when training

    config, group, train_config = run.config, run.group, run.config.train
    if run.main:
        run.take_data_record()
    run.data = training_batches(config.data, run.dataset, train_config.batch_size, train_config.seed,
                                run.samples_seen, run.device, group)
    if run.main:  # once the data is ready (a decoded-image cache may take minutes to build first)
        run.run_dir.mkdir(parents=True, exist_ok=True)
        found = (run.run_dir / "config.toml").read_bytes() if resume and (run.run_dir / "config.toml").is_file() \
            else None
        # (the checkpoint's notes: a config.toml emptied or gone, rebuilt from the checkpoint, kept none)
        earlier = run.trained_notes if run.trained_notes is not None else notes_in(found)
        run.notes = notes_continued(earlier, run.start_step, run.settings_changed or [])
        write_text_atomically(run.run_dir / "config.toml",
                              rollback_note_kept(found, config) + resume_notes(run.notes) + dump_config(config))
        run.config_found = found  # (to put back only once replaced: a write that failed left it as it was)
    run.writer = (EventLog(lambda purge: SummaryWriter(str(run.run_dir), purge_step=purge), run.run_dir,
                           purge_step=_purge_from(run) if resume else None) if run.main else _NullWriter())
    if resume and run.main:  # TensorBoard purges the steps to train again; so do the run's other records
        records.drop_metrics_after(run.run_dir / METRICS_RECORD, run.start_step, run.say)
        records.set_aside_records_after(run.run_dir, run.start_step, run.say)
        if run.best:  # (a rewind's score to beat: of rows scored on as many images as the run now scores)
            rewinds = run.best.step is not None and run.best.step > run.start_step  # (the count is then read)
            count = run.evaluator.reference_size if run.evaluator is not None and rewinds else None
            said = [run.best.set_aside_other_metric(), run.best.discard_after(run.start_step, count)]
        else:
            said = [discard_untracked_best_after(run.run_dir, run.start_step)]
        for message in filter(None, said):
            run.say(message)
    run.watch = MetricWatch(run.device, train_config.divergence_bound)
    if run.health and run.unconditional:  # the collapse checks' real images: the same after a resume
        run.real_images = first_samples(run.dataset, config.log.num_samples, train_config.seed)["image"]
    run.progress = Progress(train_config.steps, run.start_step, progress_stream if run.main else io.StringIO())
    if run.command.started_at is None:
        run.command.started_at = run.progress.started_at
    if run.evaluator is not None:  # its slow parts (generating, Inception, the SWD sort) show progress as gan eval's
        run.evaluator.progress_stream = run.progress.stream
        run.evaluator.stop_noted = functools.partial(_gives_up_for_a_stop, run)
    # (validation: seconds of pairs, at 256 px minutes; DCGAN's EMA BatchNorm passes, 37 s at batch 64 on a CPU,
    # which showed no line when only recipes with validation were given the stream)
    if run.main:
        run.recipe.validation_progress = run.progress.stream
        run.recipe.validation_stop = functools.partial(_gives_up_for_a_stop, run)
    per_process = (f" ({train_config.batch_size // group.world_size} per process x {group.world_size} processes)"
                   if group.distributed else "")
    # (an unpaired data set is as long as its larger domain: the smaller one repeats first)
    sizes = ({"domain A": len(run.dataset.a_paths), "domain B": len(run.dataset.b_paths)}
             if hasattr(run.dataset, "a_paths") else {"the data set": len(run.dataset)})
    for where, size in sizes.items():
        if size < train_config.batch_size:
            warnings.warn(f"{where} has {counted(size, 'training image')}, fewer than train.batch_size = "
                          f"{train_config.batch_size}: every batch holds some images more than once", stacklevel=2)
    on_cpu, thread_count = run.device.type == "cpu", torch.get_num_threads()
    threads = f", {counted(thread_count, 'thread')}" if on_cpu else ""
    run.say(f"run directory: {run.run_dir}\n{counted(len(run.dataset), 'training image')}, batch "
            f"{train_config.batch_size}{per_process}, device {run.device}{threads} ({run.speed.describe()}), "
            f"{counted(train_config.steps - run.start_step, 'step')} to go")
    started = run.recipe.initial_generator  # (None on a resume: its weights are the checkpoint's)
    if started is not None:
        networks = "generator and discriminator" if "discriminator" in started else "generator"
        run.say(f"{networks} from '{started['checkpoint']}' (step {started['step']})")
    cpus = usable_cpus() if on_cpu and run.main else thread_count  # (read once: cgroup files)
    if cpus < thread_count:
        warnings.warn(f"torch computes with {counted(thread_count, 'thread')} and this process may use "
                      f"{counted(cpus, 'CPU')} (its CPU affinity or its container's CPU quota): the threads "
                      f"take turns, which slows every step; OMP_NUM_THREADS={cpus} (set before gan starts) "
                      "gives it one thread a CPU", stacklevel=2)
    if config.loss.preset:
        values = flatten_config(config_to_dict(config))
        refined = [f"{key} {value!r} -> {values[key]!r}" for key, value in LOSS_PRESETS[config.loss.preset].values.items()
                   if values[key] != value]  # (the file's or --set's own keys refine the preset)
        run.say(f"loss preset '{config.loss.preset}': {LOSS_PRESETS[config.loss.preset].source}"
                + (f"; this run refines it: {', '.join(refined)}" if refined else ""))
    run.run_step = training_step(run.recipe, run.speed, run.device)
    run.timer_start, run.timer_step, run.paused = time.perf_counter(), run.start_step, 0.0
    run.window_closed_at = run.start_step


def _purge_from(run: _Run) -> int:
    """The first step whose earlier events a resume drops: those it trains again, and the step it
    resumes at, too, when that step's logging window failed and the resume writes it whole."""
    return run.start_step + (0 if run.side_tasks_due and run.side_tasks_due.get("scalars") else 1)


def _one_step(run: _Run, stop: StopRequest) -> bool:
    """Train one step on the next batch; False when a signal stopped the data first."""
    train_config, device = run.config.train, run.device
    steady = run.step - run.start_step >= 2  # the first steps compile and autotune; after them no step waits
    with _host_syncs_forbidden(train_config.sync_debug and steady and device.type == "cuda"):
        try:
            batch = next(run.data)
        except Exception as error:
            if stop.signal_name:  # (a worker killed with the job after the stop): the state is consistent
                return False
            # (--strict and a file that fails to decode, a worker that died): keep the steps trained, and log
            # the last, shorter window as a stop does, so that the curves reach the checkpoint
            if not run.group.distributed and run.window_closed_at < run.step:
                _log_scalars(run, dict.fromkeys(OUTPUT_TASKS[:3], False))
            raise _side_task_failed(run, "reading the training data", error,
                                    explained=loader_shortage(error, run.config.data.num_workers)) from error
        run.step += 1
        set_learning_rates(run.recipe.optimizers, lr_factor(run.step, train_config))
        run.recipe.before_step(run.step)
        metrics = run.run_step(to_device(batch, device, run.speed), run.step)
        run.samples_seen += train_config.batch_size
        run.watch.add(run.step, metrics, run.recipe.idle_metrics(run.step))
    if run.speed.compile_report and run.step == run.start_step + 1:
        run.speed.compile_report.end_warm_up()
    if device.type == "cpu":  # reading back is free here: stop at the very step
        _raise_if_non_finite(run)
    return True


def _periodic_work(run: _Run, last: bool, stopping: bool = False) -> float | None:
    """The side tasks due at this step: scalars and the health watch, previews, validation,
    generative metrics and best.pt. A failure in any stops the run with SideTaskError, after a
    checkpoint of this step that records the tasks left undone, for the resume to finish first.
    Returns when the writing began (None on processes other than rank 0). A step that stops the
    run early (`stopping`) logs its last, shorter window of scalars, so that the curves reach the
    checkpoint; the slower side tasks keep their schedule."""
    step, log_config = run.step, run.config.log
    due = {"previews": step % log_config.image_every == 0 or last,
           "validation": bool(log_config.eval_every) and (step % log_config.eval_every == 0 or last),
           "generative metrics": run.evaluator is not None and (step % run.config.metrics.every == 0 or last)}
    regular = step % log_config.every == 0 or last or stopping or step == 1
    if regular or step == run.start_step + 1:  # (and a resume's first step shows it is under way)
        _log_scalars(run, due, closes_window=regular)
    else:
        _redraw_progress(run)
    if any(due.values()) and not regular:  # (a log point has checked): a diverged run stops as such, rolled
        # back under --on-nan rollback, not as a side task that failed on its NaN weights (on a GPU the
        # losses are read back at log points alone)
        _raise_if_non_finite(run)
        raise_if_weights_diverged(run.recipe.networks, step, run.config.train.divergence_bound, run.last_checkpoint)
    io_start = time.perf_counter()
    if not run.main:
        return None
    _step_outputs(run, due, OUTPUT_TASKS[0])
    return io_start



def _log_scalars(run: _Run, due: dict[str, bool], closes_window: bool = True) -> None:
    """`_log_window`, whose failure stops the run with SideTaskError after a checkpoint of this step
    recording the window's scalars and the output tasks `due`, for the resume to write."""
    scalars: dict[str, float] = {}  # this window's, once computed: a failure to write them leaves them to the resume
    try:
        _log_window(run, scalars, closes_window)
    except NonFiniteLossError:
        raise
    except Exception as error:  # noqa: BLE001 - a side task must not cost the steps trained
        undone = {"step": run.step, "due": due, "from": OUTPUT_TASKS[0], "scalars": scalars}
        raise _side_task_failed(run, "logging", error, undone) from error


def _step_outputs(run: _Run, due: dict[str, bool], start: str, scores: dict[str, float] | None = None) -> None:
    """Rank 0's side tasks of this step that are `due`, from task `start` on (`scores`: those the
    tasks before it gave). A failure stops the run with SideTaskError, recording the tasks left."""
    step, recipe, writer = run.step, run.recipe, run.writer
    scores = dict(scores or {})
    task = start
    try:
        # other batch sizes, eval mode, no_grad: never the training graphs, nor training's random draws
        with uncompiled(), apart_from_training(run.device):
            for task in OUTPUT_TASKS[OUTPUT_TASKS.index(start):]:
                task_start, continued = time.perf_counter(), run.stop.continued if run.stop else 0
                if task == "previews" and (due["previews"] or due["generative metrics"]):
                    _prepare_outputs(recipe, step, run.device)
                if task == "previews" and due["previews"]:
                    grids, pngs = _write_previews(recipe, run.run_dir, step)
                    health = (run.health.samples(step, grids["generator"], run.real_images) if run.health and
                              run.unconditional and "generator" in grids and run.real_images is not None else {})
                    # (events last, here and in each task: one that failed wrote none for its resume to repeat)
                    for name, (png, height, width) in pngs.items():
                        # (the samples/ PNG's bytes: add_image encoded each grid again, 0.6 s at 128 px)
                        writer.add_png(f"samples/{name}", png, height, width, step)
                    for name, value in health.items():
                        writer.add_scalar(name, value, step)
                elif task == "validation" and due["validation"]:
                    scores.update(_log_validation(recipe, writer, step))
                elif task == "generative metrics" and due["generative metrics"]:
                    _prepare_outputs(recipe, step, run.device)
                    scores.update(records.log_generative_metrics(run.evaluator, recipe, writer, run.run_dir, step))
                elif task == "the best checkpoint":
                    _keep_best(run, due["validation"], scores)
                if due.get(task) and continued == (run.stop.continued if run.stop else 0):  # (not if stopped meanwhile)
                    run.side_task_seconds[task] = time.perf_counter() - task_start
    except PassStopped:  # (a scheduler kills 30 s after its SIGTERM: the pass is the resume's, as a failed one is)
        run.given_up = {"step": step, "due": due, "from": task, "scores": scores}
        run.say(f"step {step}: {task} given up for {run.stop.signal_name}: the checkpoint records it as left undone, "
                "and the resume does it first")
    except NonFiniteLossError:
        raise
    except Exception as error:  # noqa: BLE001 - a side task must not cost the steps trained
        raise _side_task_failed(run, task, error, {"step": step, "due": due, "from": task, "scores": scores}) from error


def _gives_up_for_a_stop(run: _Run) -> bool:
    """Whether a metrics pass or validation under way gives up (PassStopped) for the step's checkpoint:
    once a stop is noted, in one process. (Under torchrun the other processes wait for rank 0's side
    tasks in a collective, and stop by their vote a step later: the pass runs to its end.)"""
    return run.stop is not None and run.stop.signal_name is not None and not run.group.distributed


def _keep_best(run: _Run, validated: bool, scores: dict[str, float]) -> None:
    """best.pt, when this step's scores improve on the metric it follows."""
    best = run.best
    if best and validated and best.metric.startswith("val/") and best.metric not in scores:
        run.best = None  # said once: this recipe's validation never gives the metric
        warnings.warn(f"train.keep_best = '{best.metric}': no best.pt is kept: this run's validation gives "
                      f"{', '.join(sorted(scores)) or 'no scores'}", stacklevel=3)
    elif best and best.metric in scores:
        evaluated_on, images = run.evaluation_images
        set_aside = best.set_aside_measured_elsewhere(evaluated_on, images,
                                                      weights_setting(run.config.metrics.inception_weights))
        if set_aside:
            run.say(set_aside)
        if best.improves(scores[best.metric]):
            records.save_best(best, run.recipe, run.config, run.step, run.samples_seen, scores[best.metric],
                              evaluated_on)


def _side_tasks_due(state: dict) -> dict | None:
    """The side tasks a checkpoint records as left undone at its step (a resume finishes them
    first), or None; a malformed record is none, as a checkpoint of an earlier version has none."""
    due = state.get("side_tasks_due")
    valid = (isinstance(due, dict) and due.get("step") == state["step"] and due.get("from") in OUTPUT_TASKS
             and isinstance(due.get("due"), dict) and set(due["due"]) == set(OUTPUT_TASKS[:3])
             and all(isinstance(due.get(record, {}), dict) for record in ("scores", "scalars")))
    return due if valid else None


def side_tasks_left(checkpoint: Path) -> bool:
    """Whether `checkpoint` records side tasks of its step left undone, which a resume finishes."""
    return _side_tasks_due({"step": stored_step(checkpoint),
                            "side_tasks_due": stored_entry(checkpoint, "side_tasks_due")}) is not None


def _finish_side_tasks(run: _Run, due: dict) -> None:
    """A resume first does the side tasks its checkpoint's step left undone (a full disk at the
    metrics, say), as that step would have, then writes the checkpoint again without the record.
    A failed logging window's scalars come first: the event log opened with the step's events
    purged (`_purge_from`), so none that the failure let through is written twice."""
    if run.main:  # (less what this resume switched off: metrics.every = 0, as the stop's message offers)
        for name, value in due.get("scalars", {}).items():
            run.writer.add_scalar(str(name), float(value), run.step)
        still_on = {"previews": True, "validation": bool(run.config.log.eval_every),
                    "generative metrics": run.evaluator is not None}
        _step_outputs(run, {task: bool(value) and still_on[task] for task, value in due["due"].items()}, due["from"],
                      {str(name): float(value) for name, value in due.get("scores", {}).items()})
        run.last_checkpoint = _save(run, run.step, final=True)
        run.config_found = None  # config.toml stays as written: the settings of the checkpoint just written
        run.say(f"step {run.step}: the side tasks left undone when the run stopped ({due['from']} on) are done")
    run.side_tasks_due = None


def _log_window(run: _Run, scalars: dict[str, float], closes_window: bool = True) -> None:
    """At a log point: stop on a diverged run, else the window's means, images/s and the health
    watch to TensorBoard and the progress line. A resume's first step between log points shows
    only its time and the progress line: its window goes on to the next log point, as in a run
    that never stopped, so a resumed run logs what an uninterrupted one does. `scalars` is filled
    with the window's values before any is written, for a resume to write should writing fail."""
    step, train_config = run.step, run.config.train
    now = time.perf_counter()
    busy = max(now - run.timer_start - run.paused, 1e-9)  # leaves out writing grids and checkpoints
    # (a window the process was stopped in, SIGSTOP or Ctrl-Z, has no pace to log: 15 img/s among 420s)
    stopped = _continued_since(run, "continued_in_window")
    images_per_second = None if stopped else (step - run.timer_step) * train_config.batch_size / busy
    run.images_per_second = images_per_second or run.images_per_second
    run.timer_start, run.timer_step, run.paused = now, step, 0.0
    # The first step of a start or resume carries its start-up (workers, compilation, autotuning):
    # its time is logged as such, not as a throughput that would pull down every mean of images/s.
    first_step = step == run.start_step + 1
    if first_step and not stopped:
        scalars["perf/first_step_s"] = busy
    means = {}
    if closes_window:
        window_steps = step - run.window_closed_at
        run.window_closed_at = step
        _raise_if_non_finite(run)
        raise_if_weights_diverged(run.recipe.networks, step, train_config.divergence_bound, run.last_checkpoint)
        means = mean_over_ranks(run.watch.means(), run.group, run.device)  # (the global batch's, under torchrun)
        scalars.update(_window_scalars(step, means, run.recipe, None if first_step else images_per_second,
                                       train_config))
        if run.health:
            scalars.update(run.health.window(step, means, window_steps))
        if run.device.type == "cuda":  # the allocator's own count: no sync
            scalars["perf/peak_memory_mib"] = torch.cuda.max_memory_allocated(run.device) / 2**20
    for name, value in scalars.items():
        run.writer.add_scalar(name, value, step)
    ahead, untimed = _side_tasks_ahead(run)
    if _continued_since(run, "continued_in_pace"):
        run.progress.restart_pace(step)
    run.progress.update(step, means or None, run.images_per_second if stopped else images_per_second,
                        start_up=busy if first_step and not stopped else None, paused=run.paused_in_all, ahead=ahead,
                        untimed=untimed)


def _continued_since(run: _Run, mark: str) -> bool:
    """Whether the process was stopped and continued (SIGCONT) since `run.<mark>` was taken; takes it anew."""
    count = run.stop.continued if run.stop is not None else 0
    if count == getattr(run, mark):
        return False
    setattr(run, mark, count)
    return True


def _redraw_progress(run: _Run) -> None:
    """Between log points, a terminal's progress line moves on (`Progress.redraw`): images/s over the
    window so far, counted on the host, which reads nothing back from the device."""
    if not run.progress.interactive:  # (a log gets its lines at log points alone)
        return
    busy = time.perf_counter() - run.timer_start - run.paused
    steps = run.step - run.timer_step
    stopped = run.stop is not None and run.stop.continued != run.continued_in_window  # (the window's pace: none)
    rate = run.images_per_second if stopped else steps * run.config.train.batch_size / busy if steps and busy > 0 \
        else None
    if _continued_since(run, "continued_in_pace"):
        run.progress.restart_pace(run.step)
    ahead, untimed = _side_tasks_ahead(run)
    run.progress.redraw(run.step, rate, paused=run.paused_in_all, ahead=ahead, untimed=untimed)


def _side_tasks_ahead(run: _Run) -> tuple[float, tuple[str, ...]]:
    """Seconds the side tasks still to come will take (this step's included: they follow its log
    point), each timed as it last ran: the ETA of a run that measures SWD every 1,000 steps counts
    those passes, the one after the last step too. And the long ones to come that have not run yet,
    whose time the ETA cannot count (a first run's SWD passes, minutes each on a CPU): named."""
    step, total, config = run.step, run.config.train.steps, run.config
    every = {"previews": config.log.image_every, "validation": config.log.eval_every,
             "generative metrics": config.metrics.every, "checkpoint": config.train.checkpoint_every}
    seconds, untimed = 0.0, []
    for task, interval in every.items():
        if not interval:
            continue
        times = total // interval - (step - 1) // interval + (total % interval != 0)  # (multiples, and the last)
        if task in run.side_task_seconds:
            seconds += run.side_task_seconds[task] * times
        elif times and task in ("validation", "generative metrics"):  # (previews, checkpoints: seconds at most)
            untimed.append(task)
    return seconds, tuple(untimed)


def _save(run: _Run, at_step: int, final: bool, side_tasks_due: dict | None = None) -> Path | None:
    """Write a checkpoint (with the side tasks of its step left undone, when a side task failed).
    A failed write (disk full, say) mid-run is reported and training goes on in memory, to retry at
    the next checkpoint; only a failed final write stops."""
    train_config = run.config.train
    _raise_if_non_finite(run, agree=False)  # never save a diverged state (rank 0 alone saves: agreed before)
    raise_if_weights_diverged(run.recipe.networks, at_step, train_config.divergence_bound, run.last_checkpoint)
    _prepare_outputs(run.recipe, at_step, run.device)
    path = checkpoint_path(run.run_dir, at_step)
    try:
        state = training_state(run.recipe, run.config, at_step, run.samples_seen)
        if run.health:  # optional in a checkpoint: those written before it had none resume too
            state["health"] = run.health.state_dict()
        state["data"] = run.take_data_record()  # (optional too)
        state["processes"] = run.group.world_size  # (optional too: a resume with another number is warned of)
        state["resume_notes"] = [list(note) for note in run.notes or []]  # (optional too)
        state["side_task_seconds"] = dict(run.side_task_seconds)  # (optional too: a resume's first ETAs count them)
        if run.initial_generator is not None:  # (optional too: what model.init_generator's file held, and when)
            state["initial_generator"] = run.initial_generator
        if run.device.type == "cpu":  # (optional too: the thread count sets the CPU's sums, so a run's bits)
            state["cpu_threads"] = torch.get_num_threads()
        if side_tasks_due is not None:  # (optional too)
            state["side_tasks_due"] = side_tasks_due
        if run.per_process and run.per_process[0] == at_step:  # (optional too: torchrun, gathered at due steps)
            state["per_process"] = run.per_process[1]
        save_checkpoint(state, path)
    except WriteError as error:
        kept = f"'{run.last_checkpoint}' is kept" if run.last_checkpoint else "no checkpoint was written yet"
        if final:  # what the failure costs, and where to go on from
            lost = (f"steps {run.saved_step + 1}-{at_step} are" if at_step > run.saved_step + 1 else
                    f"step {at_step} is")
            go_on = (f"; make room, then continue from step {run.saved_step} with: "
                     f"{gan_launcher(run.group.world_size)} train --resume {run.run_dir}") if run.last_checkpoint else ""
            raise WriteError(f"{error}; {lost} lost ({kept}){go_on}") from error
        warnings.warn(f"step {at_step}: {error}; training goes on and retries at the next checkpoint ({kept})",
                      stacklevel=2)
        return run.last_checkpoint
    prune_checkpoints(run.run_dir, train_config.keep_checkpoints, path, run.unloadable_said)
    run.saved_step = at_step
    return path


def _skipped_over_processes(run: _Run) -> int:
    """The unreadable files the run skipped. Under torchrun each process decodes its own share of
    the batches, so the files each met are joined (a collective: every process ends here), a file
    met by two counted once."""
    dataset = run.dataset
    if not run.group.distributed:
        return getattr(dataset, "num_skipped", 0)
    found = getattr(dataset, "skip_unreadable", None)
    skips = list(found.values()) if isinstance(found, dict) else [found] if found is not None else []
    if not skips:
        return 0
    failed = union_over_ranks(torch.cat([skip.failed_anywhere for skip in skips]), run.group, run.device)
    return sum(skip.skipped_at_scan for skip in skips) + int(failed.sum())


def _finish(run: _Run, interrupted_by: str | None) -> TrainResult:
    """What the run did, said once at the end."""
    if run.speed.compile_report:
        run.say(run.speed.compile_report.describe())
    if isinstance(run.run_step, GraphedStep):
        run.say(run.run_step.describe())
    skipped = _skipped_over_processes(run)
    if skipped:
        run.say(f"warning: {skipped} unreadable image file(s) of the training set were skipped (named in the warnings "
                "above)")
    elapsed = format_duration(time.perf_counter() - run.command.started_at)
    if interrupted_by:
        run.say(f"stopped by {interrupted_by} at step {run.step} after {elapsed}; checkpoint "
                f"'{run.last_checkpoint}'. Continue with: {gan_launcher(run.group.world_size)} train --resume "
                f"{run.run_dir}")
    else:
        first = run.command.first_step  # (a resume's share; after a rollback, all this command trained)
        this_time = f" ({run.step - first} of them now)" if first else ""
        run.say(f"done: {counted(run.step, 'step')}{this_time} in {elapsed}; checkpoint '{run.last_checkpoint}', samples in "
                f"'{run.run_dir / 'samples'}'")
    return TrainResult(run.run_dir, run.step, run.last_checkpoint, interrupted_by)


def _side_task_failed(run: _Run, task: str, error: Exception, undone: dict | None = None,
                      explained: tuple[str, str] | None = None) -> SideTaskError:
    """The error to stop with when side task `task` failed at this step, after a checkpoint of the
    step (rank 0 only: the other processes write nothing) that records the side tasks `undone`,
    which the resume finishes first. `explained`: SideTaskError's."""
    if not run.main:
        return SideTaskError(task, run.step, error, None, run.run_dir, main=False, explained=explained)
    processes = run.group.world_size
    if run.saved_step == run.step and undone is None:  # (written before: reading the data for the next step)
        return SideTaskError(task, run.step, error, run.last_checkpoint, run.run_dir, processes=processes,
                             explained=explained)
    # (and written again by a resume whose finishing of the side tasks failed: with those still undone)
    try:
        return SideTaskError(task, run.step, error, _save(run, run.step, True, undone), run.run_dir,
                             processes=processes, explained=explained)
    except Exception as save_error:  # noqa: BLE001 - (the side task may have broken what saving needs too)
        # (no diverged state is saved: alone, the run stops or rolls back as diverged; under torchrun the
        # others, which no check told, are in the next step's collectives, so it stops as the task failed)
        if isinstance(save_error, NonFiniteLossError) and not run.group.distributed:
            raise
        return SideTaskError(task, run.step, error, run.last_checkpoint, run.run_dir, save_error, processes=processes,
                             explained=explained)


@contextlib.contextmanager
def _host_syncs_forbidden(active: bool) -> Iterator[None]:
    """With `active`, any CUDA operation that makes the host wait for the GPU raises (`train.sync_debug`)."""
    if not active:
        yield
        return
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


class _NullWriter:
    """What processes other than rank 0 log to: nothing."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _prepare_data_parallel(recipe: Recipe, config: Config, device: torch.device, group: ProcessGroup) -> None:
    """Same starting weights everywhere, gradients averaged before each step, per-step random
    inputs drawn for the global batch (recipes with `process_shard`), optional SyncBatchNorm."""
    if config.train.batch_size % group.world_size:
        raise ConfigError(f"train.batch_size {config.train.batch_size} is the global batch and must divide by "
                          f"the {group.world_size} processes")
    if config.train.sync_batchnorm:
        if device.type != "cuda":
            raise ConfigError("train.sync_batchnorm needs CUDA (PyTorch's SyncBatchNorm has no CPU kernel)")
        # Not the EMA copy: it is not trained, and its statistics are recomputed by rank 0 alone.
        use_sync_batchnorm({name: net for name, net in recipe.networks.items() if not name.endswith("_ema")})
    if hasattr(recipe, "process_shard"):
        recipe.process_shard = (group.rank, group.world_size)
    if getattr(recipe, "augment", None) is not None:  # (DiffAugment's draws too: each process its share)
        recipe.augment.shard = (group.rank, group.world_size)
    synchronise_weights(recipe.networks, group)
    average_gradients_before_steps(recipe.optimizers, group)


def train_rolling_back(config: Config, run_dir: Path, device: torch.device, resume: bool = False,
                       progress_stream: Any = None, group: ProcessGroup = SINGLE_PROCESS,
                       on_resume: ResumeReport | None = None,
                       max_rollbacks: int = 3) -> TrainResult:
    """`train`, but a NaN/Inf resumes the last good checkpoint with every learning rate halved
    (`gan train --on-nan rollback`), up to `max_rollbacks` times; the halved rates are the
    run's config from then on (config.toml)."""
    rollbacks, command = 0, CommandStart()
    config = config if resume else started_from_one_file(config)  # (its rollbacks' config.toml records the file)
    while True:
        try:
            return train(config, run_dir, device, resume, progress_stream, group, on_resume, command)
        except NonFiniteLossError as error:
            # (all processes stop at the same step; the others know rank 0's checkpoints as due, not
            # whether its write succeeded: rank 0 decides whether there is one to roll back to)
            if rollbacks == max_rollbacks or not broadcast_object(error.checkpoint is not None, group):
                if rollbacks and group.is_main:  # what a resume of this run would continue with
                    print_above(f"'{run_dir / 'config.toml'}' keeps the learning rates the rollbacks halved: g "
                                f"{config.train.g_lr:g}, d {config.train.d_lr:g} (1/{2 ** rollback_halvings(run_dir)} of those "
                                "given), which --resume and the same --run-dir line continue with; "
                                f"--resume {run_dir} --set train.g_lr=... --set train.d_lr=... sets others")
                raise
            rollbacks += 1
            rates = dataclasses.replace(config.train, g_lr=config.train.g_lr / 2, d_lr=config.train.d_lr / 2)
            config, resume, on_resume = dataclasses.replace(config, train=rates), True, None  # (the halving is said)
            if group.is_main:  # recorded first: a kill -9 before the resume's set-up writes it would lose the halving
                halvings = rollback_halvings(run_dir) + 1  # (with those of earlier commands: the rates given were theirs)
                found = (run_dir / "config.toml").read_bytes() if (run_dir / "config.toml").is_file() else None
                write_text_atomically(run_dir / "config.toml",
                                      rollback_note(halvings) + resume_notes(notes_in(found)) + dump_config(config))
                print_above(f"warning: {error.what}; rolling back to '{error.checkpoint}' with learning rates halved to "
                            f"g {rates.g_lr:g}, d {rates.d_lr:g} (rollback {rollbacks} of {max_rollbacks})")


def _prepare_outputs(recipe: Recipe, step: int, device: torch.device) -> None:
    """The recipe's preparation for previews, metrics and checkpoints (gan/recipes/base.py)."""
    if hasattr(recipe, "prepare_outputs"):
        with uncompiled(), apart_from_training(device):
            recipe.prepare_outputs(step)


def apart_from_training(device: torch.device) -> contextlib.AbstractContextManager:
    """Side tasks' own random stream, training's restored after them: a network that draws from the
    global generators in eval mode (StyleGAN-like noise inputs) would otherwise make the weights depend
    on when previews, metrics and checkpoints ran, and a run with metrics on train otherwise."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def _window_scalars(step: int, means: dict[str, float], recipe: Recipe, images_per_second: float | None,
                    train_config: TrainConfig) -> dict[str, float]:
    """A log window's scalars: the loss means, learning rates, schedule and images/s."""
    scalars = dict(means)
    for name, optimizer in recipe.optimizers.items():
        scalars[f"lr/{name}"] = float(optimizer.param_groups[0]["lr"])
    if train_config.adversarial_start:
        scalars["schedule/adversarial_on"] = float(adversarial_on(step, train_config))
    if images_per_second is not None:
        scalars["perf/images_per_s"] = images_per_second
    return scalars


def _raise_if_non_finite(run: _Run, agree: bool = True) -> None:
    """Raises on the earliest non-finite or out-of-bound value seen, or a non-finite buffer. Under
    torchrun the processes `agree` first (every one must call): each watches its own share of the
    batch (its losses, its gradients' norms before they are averaged) and keeps BatchNorm statistics
    of its own, and one stopping alone would leave the others waiting for it."""
    found = run.watch.first_non_finite() or non_finite_buffer(run.recipe.networks, run.step)
    if agree and run.group.distributed and any_rank(found is not None, run.group, run.device):
        found = min(report for report in gather_objects(found, run.group) if report is not None)
    if found:
        raise NonFiniteLossError(*found[:2], run.last_checkpoint, found[2], run.watch.bound)


def _write_previews(recipe: Recipe, run_dir: Path, step: int
                    ) -> tuple[dict[str, torch.Tensor], dict[str, tuple[bytes, int, int]]]:
    """The recipe's preview grids as PNGs; a PNG that cannot be written (disk full) is warned about.
    Returns the previewed image batches, and each grid's PNG as (bytes, height, width) for TensorBoard,
    encoded once for both."""
    grids, pngs = recipe.preview(), {}
    for name, images in grids.items():
        grid = signed_to_pil(image_grid(images))
        pngs[name] = (encode_image(grid), grid.height, grid.width)
        try:
            save_encoded_image(pngs[name][0], run_dir / "samples" / f"{step:08d}-{name}.png")
            records.drop_set_aside_copies(run_dir / "samples" / f"{step:08d}-{name}.png")
        except WriteError as error:  # (the step in it: a disk full for a while fails every write alike)
            warnings.warn(f"step {step}: {error}; training goes on", stacklevel=2)
    return grids, pngs


def _log_validation(recipe: Recipe, writer: Any, step: int) -> dict[str, float]:
    """The recipe's validation metrics (if it has any) to TensorBoard and the terminal."""
    if not hasattr(recipe, "validation_metrics"):
        return {}
    scores = recipe.validation_metrics()
    for name, value in scores.items():
        writer.add_scalar(name, value, step)
    print_above(f"step {step}: " + "  ".join(f"{name} {value:.4f}" for name, value in scores.items()))
    return scores
