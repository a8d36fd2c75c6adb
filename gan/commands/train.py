"""Training a recipe from its config: `gan train`."""

from __future__ import annotations

import dataclasses
import errno
import functools
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from gan.commands.common import (
    UserPath,
    fail,
    file_error,
    missing_on_this_machine,
    on_several_machines,
)
from gan.core.processes import Terminated, gan_launcher, interrupt_on_sigterm
from gan.core.run_folders import refuse_folder_in_a_run


def leave_the_talking_to_rank_0() -> None:
    """In a torchrun process other than rank 0. Every process reads the same config and scans the
    same files while setting up, so their warnings would print once per process: rank 0 gives them.
    Kept are the warnings of files this process alone decodes while training (its share of each
    batch)."""
    from gan.data.decode import (
        ClippedHighlightsWarning,
        ColourKeyWarning,
        ColourProfileWarning,
        LargeImageWarning,
        TransparentImageWarning,
        UnreadableImageWarning,
    )

    warnings.filterwarnings("ignore")
    for category in (UnreadableImageWarning, LargeImageWarning, ColourProfileWarning, ColourKeyWarning,
                     TransparentImageWarning, ClippedHighlightsWarning):
        warnings.filterwarnings("default", category=category)
    # (the scan's own, by header, and the listing's folders and files left out, are the same in every process)
    warnings.filterwarnings("ignore", message="skipping unreadable image", category=UnreadableImageWarning)
    warnings.filterwarnings("ignore", message="left out ", category=UnreadableImageWarning)
    warnings.filterwarnings("ignore", message=r"\d+ image file\(s\) could not be decoded when the cache",
                            category=UnreadableImageWarning)  # (a reused cache's record, the same in each)


# gloo's words for a collective that waited past the process group's timeout, and NCCL's watchdog's
COLLECTIVE_TIMEOUTS = ("Timed out waiting", "Application timeout caused pair closure",
                       "Watchdog caught collective operation timeout", "wait timeout after")  # (the last: the store's)

def machine_local_keys() -> tuple[str, ...]:
    """Settings each machine of a torchrun run may give its own way: its paths (a home folder, a local
    disk) and how it loads the data, which changes no result."""
    from gan.core.config import PATH_KEYS

    return (*PATH_KEYS, "data.num_workers", "data.cache")


def refuse_other_settings(config, group, command: dict[str, str] | None = None) -> None:
    """ConfigError on every process of a torchrun run whose processes were given other settings (another
    command line or config file on one machine): their gradients were averaged in silence, and the
    run recorded rank 0's."""
    from gan.core.config import config_to_dict, flatten_config
    from gan.core.distributed import gather_objects
    from gan.core.registry import ConfigError
    from gan.core.wording import first_few

    if not group.distributed:
        return
    settings = {key: repr(value) for key, value in flatten_config(config_to_dict(config)).items()
                if key not in machine_local_keys()}
    settings.update({option: repr(value) for option, value in (command or {}).items()})  # (--resume on one: a hang)
    every = gather_objects(settings, group)
    differing = [f"{key} = {every[0].get(key, '(unset)')} on rank 0 but {other.get(key, '(unset)')} on rank {rank}"
                 for rank, other in enumerate(every) for key in sorted(set(every[0]) | set(other))
                 if other.get(key) != every[0].get(key)]
    if differing:
        raise ConfigError(f"the processes of this torchrun run were given other settings: {first_few(differing, 3)}; "
                          "start every machine with the same command and config (paths, data.num_workers and "
                          "data.cache may differ)")


def lost_process(error: BaseException, distributed: bool, timeout_s: int | None = None) -> str | None:
    """One line for a process that this one depended on and that died or stalled (another rank of a
    torchrun run, a data-loading worker), or None for any other error: those keep their traceback.
    `timeout_s` is train.dist_timeout_s, which a collective's wait ran past."""
    if not isinstance(error, RuntimeError):
        return None
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if "DataLoader worker" in first_line and ("killed by signal" in first_line or "exited unexpectedly" in first_line):
        if first_line.rstrip(". ").endswith("Bus error"):  # (its shared memory ran out: the loop's error says so)
            return None
        # SIGKILL is what the kernel's out-of-memory killer sends; any other signal came from someone
        cause = ("the system may have run out of memory: fewer data.num_workers, or data.cache, need less"
                 if "killed by signal" not in first_line or first_line.rstrip(". ").endswith("Killed")
                 else "a signal sent to it")
        return f"a data-loading worker process died ({first_line.rstrip('. ')}; {cause})"
    import torch.distributed

    if distributed and any(word in first_line for word in COLLECTIVE_TIMEOUTS):
        limit = f"train.dist_timeout_s = {timeout_s} s" if timeout_s else "train.dist_timeout_s"
        return (f"a collective of this torchrun run waited longer than {limit}: another process stalled or stopped "
                "(its own output says if it failed), or rank 0 took longer than that to write a checkpoint, score "
                "metrics or build the data cache, which a larger train.dist_timeout_s allows "
                f"(here: {_shortened(first_line, 160)})")
    broken_link = any(word in first_line for word in ("Connection reset", "Connection closed", "Broken pipe",
                                                      "Socket Timeout", "NCCL communicator was aborted"))
    if distributed and (isinstance(error, torch.distributed.DistError) or broken_link):
        return ("another process of this torchrun run stopped or lost its connection (its own output says why; "
                f"here: {_shortened(first_line, 200)})")
    return None


def _shortened(text: str, limit: int) -> str:
    """`text` cut at a word boundary to at most about `limit` characters, marked as cut."""
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def resume_advice(run_dir: Path | None, processes: int) -> str:
    """How to continue a run that stopped on an error: its command, when it has a checkpoint."""
    from gan.core.checkpoint import list_checkpoints

    if run_dir is None or not run_dir.is_dir() or not list_checkpoints(run_dir):
        return ""
    return f"; checkpoints written before are kept: resume with `{gan_launcher(processes)} train --resume {run_dir}`"


def written_config(run_dir: Path):
    """The run's own config.toml, read to compare with the config it resumes with: quietly, as the
    warnings it would give are the resumed config's to give, with its values (once, not twice)."""
    from gan.training.resolve import load_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_config, trained = run_config_and_trained(run_dir)
        return load_config(run_config, trained=trained)


def run_config_and_trained(run_dir: Path):
    """(config.toml, (checkpoint, its config)) to resume `run_dir` from: config.toml is None when it is
    gone, and the checkpoint's config fills what the file lacks (`fill_from_trained`)."""
    from gan.core.checkpoint import trained_config
    from gan.core.registry import ConfigError

    if on_several_machines() and not run_dir.is_dir():  # (rank 0's machine found it: this one reads its own disks)
        raise ConfigError(missing_on_this_machine(run_dir))
    path, trained = run_dir / "config.toml", trained_config(run_dir)
    if trained is None and not path.exists():  # (read as nothing, it would be every default)
        raise ConfigError(f"'{run_dir}' has no config.toml, and none of its checkpoints loads to give the run's "
                          "settings: it cannot be resumed")
    return (path if path.exists() else None), trained


def unwritable_run(error: BaseException, run_dir: Path | None) -> str | None:
    """For a resume that cannot write into its run directory (a read-only disk, a folder of another
    user), the line that says so and what to do: the run cannot go elsewhere, as a new one could."""
    if (not isinstance(error, OSError) or error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM)
            or not error.filename or run_dir is None
            or not Path(os.path.abspath(error.filename)).is_relative_to(Path(os.path.abspath(run_dir)))):
        return None
    from gan.core.files import other_owner

    owner = other_owner(run_dir) if error.errno != errno.EROFS else None
    if owner is not None:  # (chmod is its owner's alone)
        return (f"'{error.filename}': {error.strerror}: a resume writes into its run directory, which belongs to "
                f"another user ({owner}); copy it (cp -r {run_dir} COPY) and resume the copy: gan train --resume "
                "COPY, or ask its owner to resume it")
    fix = "remount its disk writable" if error.errno == errno.EROFS else f"make it writable (chmod -R u+w {run_dir})"
    return (f"'{error.filename}': {error.strerror}: a resume writes into its run directory; {fix}, or copy the run "
            "directory to a disk you may write to and resume the copy: gan train --resume COPY")


def check_resumable(run_dir: Path) -> None:
    """ConfigError saying what `run_dir` is when it is not a run `--resume` can continue."""
    from gan.core.checkpoint import (
        EXPORT_SUFFIXES,
        export_source,
        holds_a_run,
        is_torch_file,
        list_checkpoints,
        made_by_gan_train,
    )
    from gan.core.files import LOCK_NAME, RunLock, is_stale_temp, run_order
    from gan.core.registry import ConfigError

    if not run_dir.is_dir():  # a checkpoint or config.toml given for its run
        source = export_source(run_dir)
        if source is not None or (run_dir.suffix.lower() in EXPORT_SUFFIXES and not is_torch_file(run_dir)):
            # (one generator's weights: no run to continue, wherever the file lies)
            then = (f"give the run it came from: --resume {Path(source).parent}" if source
                    else "give the run directory it was exported from")
            raise ConfigError(f"--resume takes a run directory, and '{run_dir}' is an export"
                              f"{f' of {source!r}' if source else ''} written by `gan export`: one generator's "
                              f"weights, without the other networks and training state a resume needs; {then}")
        parent = run_dir.parent
        if not holds_a_run(parent):  # (an export, say)
            raise ConfigError(f"--resume takes a run directory, the one holding the run's config.toml and "
                              f"checkpoint-*.pt, and '{run_dir}' is a file outside any")
        raise ConfigError(f"--resume takes a run directory, and '{run_dir}' is a file: give --resume "
                          f"{parent}, which continues from the newest checkpoint there")
    if (run_dir / "config.toml").exists() and not (run_dir / "config.toml").is_file():
        raise ConfigError(f"--resume '{run_dir}': its config.toml is a folder, not the run's config file (the run's "
                          "settings are also in each checkpoint's 'config')")
    if list_checkpoints(run_dir):  # (a config.toml gone or cut short is rebuilt from the checkpoint's config)
        return
    processes = os.environ.get("WORLD_SIZE", "1").strip()  # (under torchrun: started again as it was)
    launcher = gan_launcher(int(processes) if processes.isdigit() else 1)
    runs = [path.name for path in sorted(run_dir.iterdir(), key=run_order) if made_by_gan_train(path)]
    if runs and not (run_dir / "config.toml").exists():
        raise ConfigError(f"--resume '{run_dir}' is a folder of runs, not a run: give one of them, e.g. "
                          f"--resume {run_dir / runs[-1]}")
    if not (run_dir / "config.toml").is_file():
        if any(is_stale_temp(path) for path in run_dir.glob("config.toml.*.tmp")):  # (its start killed as it wrote it)
            if (run_dir / LOCK_NAME).is_file():
                with RunLock(run_dir):  # (a start writing its config now: it says whose)
                    pass
            raise ConfigError(f"--resume '{run_dir}' holds a start of gan train that stopped before it wrote its "
                              f"config.toml: there is nothing to resume; start it again with {launcher} train CONFIG "
                              f"--run-dir {run_dir}, which sets this one aside")
        raise ConfigError(f"--resume '{run_dir}' has no config.toml and no checkpoint: it is not a run directory "
                          "gan made")
    if (run_dir / LOCK_NAME).is_file():  # a run training now, before its first checkpoint: it says whose
        with RunLock(run_dir):
            pass
    best = " (its best.pt is the best checkpoint kept, not a point to resume from)" if (
        run_dir / "best.pt").is_file() else ""
    raise ConfigError(f"--resume '{run_dir}' has no checkpoint-*.pt to resume from{best}: the run stopped before "
                      f"its first checkpoint, or they were deleted; start it again with {launcher} train CONFIG")


def schedule_jumps(trained: dict, step: int, resolved) -> list[str]:
    """What a resume at `step` with `resolved` restarts of the schedules tied to the run's length
    (a longer train.steps moves a linear decay's start and stretches dcgan's noise anneal), one
    sentence each: `the learning rates rise from 0.2x to 0.8x of their base (...)`."""
    from gan.core.config import config_from_dict
    from gan.recipes.losses import instance_noise_std
    from gan.recipes.schedules import lr_factor

    if step >= resolved.train.steps:  # nothing left to train: no schedule moves
        return []
    try:
        before = config_from_dict(trained)
    except Exception:  # noqa: BLE001 - a checkpoint of another gan version: nothing to compare
        return []
    jumps = []
    old_rate, new_rate = lr_factor(step, before.train), lr_factor(step + 1, resolved.train)
    # A longer run raises the rates; a shorter one drops them below where the run's own schedule goes
    # next (at its end, where it trained last: past it, its schedule reads 0 and hid every fall).
    next_rate = lr_factor(step + 1, before.train) if step < before.train.steps else old_rate
    # (where the new schedule had been at `step` too, its next rate is its own course, not a jump: a
    # cosine whose warm-up filled the first leg falls after it, as a run that long from the start does)
    moved = abs(lr_factor(step, resolved.train) - old_rate) > 1e-9
    if moved and (new_rate > old_rate + 0.05 or new_rate < next_rate - 0.05):
        old_train, new_train = before.train, resolved.train
        if new_train.warmup_steps != old_train.warmup_steps:
            cause = f"train.warmup_steps = {new_train.warmup_steps} warms up from 0 again, after {old_train.warmup_steps}"
        elif new_train.lr_schedule == "step" and (new_train.lr_milestones, new_train.lr_gamma) != (
                old_train.lr_milestones, old_train.lr_gamma):  # (a step schedule does not follow train.steps)
            cause = (f"train.lr_milestones = {new_train.lr_milestones} and train.lr_gamma = {new_train.lr_gamma:g} "
                     f"now, after {old_train.lr_milestones} and {old_train.lr_gamma:g}")
        else:
            cause = f"train.lr_schedule = '{new_train.lr_schedule}' ends at the new train.steps"
        jumps.append(f"the learning rates {'rise' if new_rate > old_rate else 'fall'} from {old_rate:.3g}x to "
                     f"{new_rate:.3g}x of their base ({cause})")
    if resolved.recipe == "dcgan":
        old_noise, new_noise = instance_noise_std(before, step), instance_noise_std(resolved, step + 1)
        if new_noise > old_noise + 0.05 * resolved.loss.instance_noise:
            jumps.append(f"the instance noise rises from {old_noise:.3g} to {new_noise:.3g} "
                         f"({noise_rise_causes(before, resolved, step, old_noise)})")
    return jumps


def noise_rise_causes(before, resolved, step: int, old_noise: float) -> str:
    """Which change raised dcgan's instance noise at a resume's first step: a stronger
    loss.instance_noise (asked for: no advice to undo it), or a longer anneal (a new train.steps, for
    which loss.instance_noise_steps keeps the old one, or a new instance_noise_steps)."""
    import dataclasses

    from gan.recipes.losses import instance_noise_std

    old_loss, new_loss = before.loss, resolved.loss
    causes = []
    if new_loss.instance_noise > old_loss.instance_noise:
        causes.append(f"loss.instance_noise = {new_loss.instance_noise:g} now, after {old_loss.instance_noise:g}")
    # the old strength over the new anneal: what the new length alone does
    longer = dataclasses.replace(resolved, loss=dataclasses.replace(new_loss, instance_noise=old_loss.instance_noise))
    if instance_noise_std(longer, step + 1) > old_noise + 0.05 * old_loss.instance_noise:
        if new_loss.instance_noise_steps != old_loss.instance_noise_steps:
            causes.append(f"annealed over loss.instance_noise_steps = {new_loss.instance_noise_steps or 'train.steps'} "
                          "now")
        else:
            causes.append(f"annealed over the new train.steps; --set loss.instance_noise_steps={before.train.steps} "
                          "keeps its anneal")
    return "; ".join(causes) or "the changed settings together"


# What the same --run-dir line may change: the length of the run, how strictly files are read, and how long
# torchrun's processes wait in a collective (their group is formed with the line's before config.toml is read).
SAME_RUN_KEYS = ("train.steps", "data.strict", "train.dist_timeout_s")


def other_settings(written, resolved, halvings: int = 0) -> tuple[list[str], object, bool]:
    """What a run's config.toml (`written`) holds other than the `resolved` config of a `--run-dir`
    line for it (`key old -> new`, past what the same line may change: its length), the config the
    line continues with, and whether that keeps the rates the run's `--on-nan rollback` halved
    `halvings` times (as its config.toml records: a line with both rates doubled is another experiment)."""
    import dataclasses

    from gan.training.state import changed_keys, keeps_its_start

    resolved = keeps_its_start(resolved, written.model.init_generator)  # (the file a directory given was read from)
    train, factor = resolved.train, 0.5 ** halvings
    halved = bool(halvings) and written.train.g_lr == train.g_lr * factor and written.train.d_lr == train.d_lr * factor
    if halved:
        resolved = dataclasses.replace(resolved, train=dataclasses.replace(train, g_lr=written.train.g_lr,
                                                                           d_lr=written.train.d_lr))
    changes = [change for change in changed_keys(written, resolved)
               if not change.startswith(tuple(f"{key} " for key in SAME_RUN_KEYS))]
    return changes, resolved, halved


def settings_to_continue(run_dir: Path, written, resolved, say: bool = True):
    """The config a `--run-dir` line continues its run with: the line's own (train.steps may grow),
    with the learning rates the run's `--on-nan rollback` halved kept as config.toml records them.
    Another line there would mix two experiments in one run: refused, naming each difference. The
    settings of the machine it runs on (`machine_local_keys`: its paths, how it loads the data) are
    the line's: a requeued job's node has a scratch disk of its own, and each machine of a torchrun run
    its own (config.toml holds rank 0's; the processes compare theirs in `refuse_other_settings`)."""
    import dataclasses

    from gan.core.inert import how_it_runs
    from gan.core.registry import ConfigError
    from gan.training.run_dir import rollback_halvings

    changes, resolved, halved = other_settings(written, resolved, rollback_halvings(run_dir))
    local = [change for change in changes if change.split(" ")[0] in machine_local_keys()]
    # How the run is carried out or recorded (its checkpoint interval, say, which a resume by hand may have
    # changed): the run's own values go on, as the same experiment (a sweep's line was refused for good)
    kept = [change for change in changes if change not in local and how_it_runs(change.split(" ")[0])]
    changes = [change for change in changes if change not in local and change not in kept]
    if changes:
        raise ConfigError(f"--run-dir '{run_dir}' holds a run with other settings ({'; '.join(changes)}): "
                          f"give another --run-dir for a new run, or continue this one with different settings by "
                          f"gan train --resume {run_dir} --set KEY=VALUE")
    for change in kept:
        section, name = change.split(" ")[0].split(".", 1)
        resolved = dataclasses.replace(resolved, **{section: dataclasses.replace(
            getattr(resolved, section), **{name: getattr(getattr(written, section), name)})})
    if kept and say:
        click.echo(f"continuing '{run_dir}' with the settings of how it runs that its config.toml holds, not this "
                   f"line's ({'; '.join(kept)}: the first goes on)", err=True)
    if local and say:  # (under torchrun, rank 0 says its own)
        click.echo(f"continuing '{run_dir}' with this line's settings of the machine it runs on (paths, data "
                   f"loading), not those its config.toml holds ({'; '.join(local)}: the second goes on)", err=True)
    if halved:
        if say:  # (under torchrun, rank 0 says it for every process)
            click.echo(f"continuing '{run_dir}' with the learning rates its --on-nan rollback halved: g "
                       f"{written.train.g_lr:g}, d {written.train.d_lr:g}", err=True)
    return resolved


def _halvings(keys: list[str], recorded: dict, resolved) -> int | None:
    """2**k when `keys` are learning rates, each `resolved` at the `recorded` one halved k >= 1 times,
    as `gan train --on-nan rollback` leaves them in config.toml; else None."""
    if not keys or not set(keys) <= {"train.g_lr", "train.d_lr"}:
        return None
    ratios = set()
    for key in keys:
        now = getattr(resolved.train, key.split(".")[1])
        if not now:
            return None
        ratios.add(float(recorded[key]) / now)
    ratio = ratios.pop() if len(ratios) == 1 else 0.0
    return int(ratio) if ratio >= 2 and ratio.is_integer() and int(ratio).bit_count() == 1 else None


# The keys whose 0 builds no network that another value trains (in the recipes that read the key:
# `gan.training.resolve.recipe_reads`): a resume setting one to 0 drops that network from the checkpoints
# it writes. key -> (what is dropped, what is kept, what stays only in the earlier checkpoints, what a
# later resume cannot do).
DROPPED_AT_ZERO = {
    "train.ema_decay": ("the EMA generator, the one gan sample, eval and export use", "the trained generator",
                        "the EMA weights", "turn the EMA on again"),
    "loss.adversarial_weight": ("the discriminator", "the generator", "the discriminator's weights and optimiser "
                                "state", "turn the adversarial loss on again"),
}


def report_changes(run_dir: Path, resolved, overrides: tuple[str, ...], trained: dict, step: int) -> None:
    """Say which settings a resume changes from those the checkpoint it continues (`trained` at
    `step`, the newest that loads) trained with: by --set, or from config.toml (named as such);
    warn of a changed seed and of schedules that jump."""
    from gan.core.config import flatten_config
    from gan.core.presets import LOSS_PRESETS, LossPreset
    from gan.core.registry import ConfigError
    from gan.training.resolve import recipe_reads
    from gan.training.state import changes_since, keeps_its_start

    recorded = flatten_config(trained)
    started_from = recorded.get("model.init_generator")
    # (the file it started from, as config.toml records it, or the run directory it was the newest of)
    resolved = keeps_its_start(resolved, started_from)
    if isinstance(started_from, str) and started_from != resolved.model.init_generator:
        raise ConfigError(f"model.init_generator cannot change on a resume: the run started from "
                          f"'{started_from or 'random weights'}', and a resume takes every weight from its checkpoint "
                          f"(config.toml would record a start the weights never came from); start a new run to begin "
                          f"from '{resolved.model.init_generator or 'random weights'}'")
    took_discriminator = recorded.get("model.init_discriminator", False)  # (a checkpoint before the key: False)
    if took_discriminator != resolved.model.init_discriminator:
        raise ConfigError(f"model.init_discriminator cannot change on a resume: the run's discriminator started "
                          f"{'from its source run' if took_discriminator else 'fresh'}, and a resume takes every weight "
                          "from its checkpoint (config.toml would record a start the weights never came from); start a "
                          "new run to begin otherwise")
    changes = changes_since(trained, resolved)
    given = {override.partition("=")[0].strip() for override in overrides}
    if "loss.preset" in given:  # a preset named by --set sets its keys too
        given |= set(LOSS_PRESETS.get(resolved.loss.preset, LossPreset("", {})).values)
    edited = [change.split(" ", 1)[0] for change in changes if change.split(" ", 1)[0] not in given]
    if changes:
        halved = _halvings(edited, recorded, resolved)
        why = (f"at 1/{halved} of this checkpoint's, as an --on-nan rollback leaves them (or edited by hand)" if halved
               else "edited by hand, written by an earlier command stopped before its first checkpoint (kill -9), "
               "or left by a later checkpoint now lost")
        by_hand = f" ({', '.join(edited)}: from its config.toml, {why}, not from --set)" if edited else ""
        click.echo(f"resuming '{run_dir}' with changed settings: {'; '.join(changes)}{by_hand}", err=True)
    warn_of_schedule_jumps(resolved, trained, step)
    for key, (dropped, kept, its, again) in DROPPED_AT_ZERO.items():
        section, name = key.split(".")
        if recipe_reads(resolved.recipe, key) and recorded.get(key, 0) and not getattr(getattr(resolved, section), name):
            warnings.warn(f"{key} = 0 on this resume drops {dropped}: checkpoints from here on keep {kept} alone, and "
                          f"{its} stay only in the checkpoints of step {step} and before, until they are pruned (a "
                          f"later resume cannot {again})", stacklevel=2)
    if "train.seed" in recorded and recorded["train.seed"] != resolved.train.seed:
        warnings.warn("train.seed changed on resume: the networks, optimiser and random state (the training "
                      "latents, noise and DiffAugment's draws) come from the checkpoint, while the new seed draws the "
                      "data order and flips from here on, so this is a run of neither seed (start a new run for the "
                      "new seed)",
                      stacklevel=2)


def warn_of_schedule_jumps(resolved, trained: dict, step: int, run_dir: Path | None = None) -> None:
    """Warn when continuing the checkpoint of `trained` at `step` with `resolved` (a longer or shorter
    train.steps, by --resume or by the same --run-dir line with another length, `run_dir`) moves a
    schedule."""
    jumps = schedule_jumps(trained, step, resolved)
    # (a --run-dir line may change train.steps alone: the keys the warning names, by --resume)
    instead = (f" (the same --run-dir line changes no other key: to set those named, stop and continue with "
               f"gan train --resume {run_dir} --set KEY=VALUE)" if run_dir is not None else "")
    if jumps:
        warnings.warn(f"resuming at step {step} with these settings moves schedules tied to the run's length: at "
                      f"step {step + 1}, {'; and '.join(jumps)}{instead}", stacklevel=3)


@dataclasses.dataclass
class _Start:
    """How far a `gan train` start has come, for the report of an error that stops it."""
    run_dir: Path | None  # --run-dir's or --resume's; a new run's once numbered
    named_dir: bool  # --run-dir
    resuming: bool
    group: Any  # torchrun's processes, or just this one (a ProcessGroup)
    existed: bool = dataclasses.field(init=False)  # a failed start removes only a folder it made
    missing: list[Path] = dataclasses.field(init=False)  # the run directory and the folders made for it
    dist_timeout_s: int | None = None  # train.dist_timeout_s, once the config is read
    # (--out's .run-numbers.lock and folders, where numbering a new run made them: a failed start removes them)
    numbering_made: list[Path] = dataclasses.field(default_factory=list)
    begun: bool = False  # training began (else a process was lost while rank 0 looked at the run directory)

    def __post_init__(self) -> None:
        from gan.core.files import missing_folders

        self.existed = self.run_dir is not None and self.run_dir.exists()
        self.missing = missing_folders([self.run_dir]) if self.run_dir is not None else []


def _check_arguments(config: Path | None, resume: Path | None, run_dir: Path | None, out_given: bool) -> None:
    """A UsageError for options that do not go together."""
    if config is None and resume is None:
        raise click.UsageError("give a CONFIG file, or --resume RUN_DIR")
    if config is not None and resume is not None:
        raise click.UsageError(f"--resume continues '{resume}' with its own config.toml; give CONFIG or --resume, "
                               "not both (--set KEY=VALUE changes a setting on resume)")
    if out_given and (resume is not None or run_dir is not None):  # (it was passed over in silence)
        copy = " (to continue a copy of a run, copy its directory and resume the copy)" if resume else ""
        raise click.UsageError(f"--out is the folder a new run is numbered in; {'--resume' if resume else '--run-dir'} "
                               f"names the run directory itself, so --out does not go with it{copy}")
    if run_dir is not None and (resume is not None or config is None):
        raise click.UsageError("--run-dir trains CONFIG in that directory (resuming it when it has a checkpoint); "
                               "it does not go with --resume")


def _set_up_and_train(start: _Start, config: Path | None, resume: Path | None, overrides: tuple[str, ...],
                      out: Path, device: str, on_nan: str):
    """Read the config, find or make the run directory, and train: the loop's TrainResult."""
    import torch

    from gan.core.checkpoint import stored_step
    from gan.core.devices import select_device
    from gan.core.distributed import broadcast_object, from_environment, initialise
    from gan.core.processes import stop_with_parent
    from gan.core.registry import ConfigError
    from gan.data import check_data_folders
    from gan.tools.sweep import stop_with_the_sweep
    from gan.training.loop import train as run_training
    from gan.training.loop import train_rolling_back
    from gan.training.resolve import check_networks, load_config
    from gan.training.run_dir import create_run_dir, made_by_numbering, start_or_resume

    stop_with_the_sweep()  # (when a sweep started this run)
    start.group = group = from_environment()  # torchrun's processes, or just this one
    if group.distributed:  # a kill -9 of torchrun's launcher stops its processes too
        stop_with_parent(os.getppid())
    if not group.is_main:
        leave_the_talking_to_rank_0()
    if resume is not None:
        check_resumable(resume)
    if config is not None:
        with warnings.catch_warnings(record=True) as said:
            resolved = load_config(config, list(overrides))
            try:  # (what a start would refuse without reading an image: networks that do not fit, folders)
                check_networks(resolved)
                check_data_folders(resolved.data, resolved.metrics.root if resolved.metrics.every else "")
            except ConfigError:  # (a run that cannot start: its settings' warnings would bury its error, said below)
                said.clear()
        for warning in said:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    else:
        run_config, trained = run_config_and_trained(resume)
        # (a run already at train.steps has nothing to do: the EMA warm-up of "this run's N" steps is none of it)
        at_step = (stored_step(trained[0]) or 0) if trained is not None else 0
        resolved = load_config(run_config, list(overrides), trained, at_step)
    torch_device = select_device(device)
    if group.distributed and torch_device.type == "cuda":
        torch_device = torch.device("cuda", group.local_rank)  # one GPU per process
        torch.cuda.set_device(torch_device)
    start.dist_timeout_s = resolved.train.dist_timeout_s
    refuse_restarts_into_new_runs(start, resume)
    initialise(group, torch_device, start.dist_timeout_s)
    form = "--resume" if resume is not None else "--run-dir" if start.named_dir else "--out"
    refuse_other_settings(resolved, group, {"the run directory's option": form, "--on-nan": on_nan})
    if start.named_dir:  # rank 0 looks; the others learn whether it resumes
        refuse_folder_in_a_run(Path(os.path.abspath(start.run_dir)).parent, "--run-dir's parent")  # (`.` too)
        start.resuming = broadcast_object(start_or_resume(start.run_dir, config) if group.is_main else None, group)
        if start.resuming:
            resolved = settings_to_continue(start.run_dir, written_config(start.run_dir), resolved, say=group.is_main)
    elif not start.resuming:  # rank 0 numbers the run; the others learn its directory
        refuse_folder_in_a_run(out, "--out")
        start.numbering_made = made_by_numbering(out) if group.is_main else []
        start.run_dir = broadcast_object(create_run_dir(out, config.stem) if group.is_main else None, group)
        start.missing = [start.run_dir]  # (made by numbering, as --out's folders are)
    run = train_rolling_back if on_nan == "rollback" else run_training
    # (--run-dir continues its run unchanged but for the length, settings_to_continue checked: a
    # longer or shorter run can still move a schedule)
    report = (functools.partial(report_changes, start.run_dir, resolved, overrides) if resume is not None
              else functools.partial(warn_of_schedule_jumps, resolved, run_dir=start.run_dir) if start.resuming
              else None)
    start.begun = True
    return run(resolved, start.run_dir, torch_device, resume=start.resuming, group=group, on_resume=report)


def say_stop_on_another_machine(group, result) -> None:
    """On a machine other than rank 0's, the stop said by its first process: only torchrun's traceback of
    its exit code 143 showed there, while rank 0's machine said the checkpoint and how to resume."""
    from gan.core.checkpoint import checkpoint_path

    # (a stop the processes agreed on: rank 0 saves that step; one while this process waited for data, none)
    saved = result.checkpoint == checkpoint_path(result.run_dir, result.step)
    if group.rank != 0 and group.local_rank == 0 and saved:
        click.echo(f"stopped by {result.interrupted_by} at step {result.step}, with a checkpoint of that step "
                   f"({result.checkpoint.name}), which rank 0 writes on its machine: its output there says how to "
                   "resume", err=True)  # (the name alone: rank 0's path to the run may differ from this machine's)


def refuse_restarts_into_new_runs(start: _Start, resume: Path | None) -> None:
    """torchrun --max-restarts runs the same command again after a failure, and SLURM a requeued job's
    script (SLURM_RESTART_COUNT above 0): under --out each time a new numbered run from step 0, the
    steps trained before left behind without a word."""
    if resume is not None or start.named_dir:
        return
    from gan.core.registry import ConfigError

    restarts = os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")
    if restarts.isdigit() and int(restarts) > 0:
        raise ConfigError(f"torchrun --max-restarts={restarts} runs this command again after a failure, and "
                          "under --out each run starts a new numbered run from step 0: give --run-dir DIR "
                          "instead, which a restart resumes")
    requeues = os.environ.get("SLURM_RESTART_COUNT", "0").strip()
    if requeues.isdigit() and int(requeues) > 0:
        raise ConfigError(f"this SLURM job was requeued (SLURM_RESTART_COUNT={requeues}) and runs this command "
                          "again, and under --out each run starts a new numbered run from step 0: give --run-dir "
                          "DIR instead, which a requeue resumes (continue the run an earlier start of this job "
                          "made with gan train --resume RUN_DIR)")


def _report_failure(start: _Start, error: BaseException) -> None:
    """Say in one line why the start stopped, and exit, for the errors that have such a line; return
    for any other (its traceback follows). A start that failed leaves no run directory it made."""
    from gan.core.files import RunDirectoryBusy, WriteError, remove_empty_folders, remove_lock_file
    from gan.core.registry import ConfigError

    group, run_dir = start.group, start.run_dir
    # (Another process's directory, RunDirectoryBusy, is not this start's to clean.)
    if (not start.resuming and run_dir is not None and not start.existed and group.is_main
            and not isinstance(error, RunDirectoryBusy)):
        remove_lock_file(run_dir)  # a start that failed leaves no empty run directory, nor the folders made for it
        remove_empty_folders(start.missing)  # (any content stays, another writer's lock among it)
    if start.numbering_made and not isinstance(error, RunDirectoryBusy):  # (rank 0's alone)
        from gan.training.run_dir import discard_numbering  # (loaded: it listed them)

        discard_numbering(start.numbering_made)
    if isinstance(error, KeyboardInterrupt):  # while setting up (importing torch, say), or a second Ctrl-C
        signum = error.signum if isinstance(error, Terminated) else signal.SIGINT
        signal_name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if group.is_main:  # (torchrun passes a stop to every process: rank 0 says it)
            # (by file name, importing nothing more: a stop in torch's import leaves modules that fail when
            # imported again)
            kept = ("none was written before" if run_dir is None or not any(run_dir.glob("checkpoint-*.pt"))
                    else f"continue from the newest kept with: {gan_launcher(group.world_size)} train --resume "
                         f"{run_dir}")
            click.echo(f"error: stopped by {signal_name} without saving a checkpoint ({kept})", err=True)
        sys.exit(128 + signum)
    from gan.core.checkpoint import CheckpointError, list_checkpoints
    from gan.core.devices import DeviceUnavailable
    from gan.data.decode import ImageReadError
    from gan.training.errors import NonFiniteLossError, SideTaskError

    if isinstance(error, NonFiniteLossError):
        if group.is_main:  # (under torchrun every process meets it alike: rank 0 says it once)
            click.echo(f"error: {error}", err=True)
        sys.exit(1)
    # a worker that died while reading data: the loop saved the steps trained (SideTaskError) first
    lost = lost_process(error.__cause__ if isinstance(error, SideTaskError) else error, group.distributed,
                        start.dist_timeout_s)
    if lost:
        click.echo(f"error: {lost}{resume_advice(run_dir, group.world_size) if start.begun else ''}", err=True)
        sys.exit(1)
    beside_rank_0 = group.rank == group.local_rank  # (on rank 0's machine: the same files, the same devices)
    # Met alike by every process setting up on one machine (the config, the files, the scan of the data;
    # a file that fails to decode in this process's share while training is a SideTaskError): on rank 0's
    # machine rank 0 says it, on another (whose config and files may differ) its first process does.
    from gan.core.distributed import GroupJoinError

    alike = (ConfigError, CheckpointError, ImageReadError, FileNotFoundError, NotADirectoryError)
    if isinstance(error, GroupJoinError):  # (this process's own: whichever it is says it)
        fail(error)
    if not group.is_main and (isinstance(error, alike) and (beside_rank_0 or group.local_rank != 0)
                              or beside_rank_0 and isinstance(error, DeviceUnavailable)):
        sys.exit(2)
    # (a --run-dir with checkpoints is a resume, also when the look at it was what failed)
    resuming = start.resuming or (start.named_dir and run_dir is not None and bool(list_checkpoints(run_dir)))
    unwritable = unwritable_run(error, run_dir) if resuming else None
    if unwritable:
        fail(unwritable)
    if isinstance(error, (FileNotFoundError, NotADirectoryError)) and error.filename:  # the system's own
        fail(file_error(error))
    if isinstance(error, (ConfigError, CheckpointError, ImageReadError, FileNotFoundError, NotADirectoryError,
                          DeviceUnavailable, WriteError, RunDirectoryBusy, SideTaskError)):
        fail(error)


class ResumedRunPath(UserPath):
    """--resume's run directory: on a machine of a torchrun run over several that lacks it, said as such
    (click's "does not exist" read as a mistyped path, while rank 0's machine had found it)."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.strip() and on_several_machines() \
                and not os.path.lexists(os.path.expanduser(value)):
            self.fail(missing_on_this_machine(value), param, ctx)
        return super().convert(value, param, ctx)


@click.command()
@click.argument("config", required=False, type=UserPath(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set train.steps=2000 (repeatable).")
@click.option("--out", type=UserPath(file_okay=False, path_type=Path), default=Path("runs"), show_default=True,
              help="Folder in which a new numbered run directory is made.")
@click.option("--resume", type=ResumedRunPath(exists=True, path_type=Path),  # (a file is refused with advice)
              help="Continue the run in this directory from its newest checkpoint.")
@click.option("--run-dir", type=UserPath(file_okay=False, path_type=Path),
              help="Train in exactly this directory instead of a new numbered one: a new run, or the run "
                   "resumed when it has a checkpoint (the same line again is safe; gan sweep uses it).")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA if present), cpu, cuda or cuda:N.")
@click.option("--strict", is_flag=True, help="Unreadable image files are errors instead of skipped with a warning.")
@click.option("--on-nan", type=click.Choice(["stop", "rollback"]), default="stop", show_default=True,
              help="When a loss becomes NaN/Inf: stop, or resume the last checkpoint with the learning rates "
                   "halved (up to 3 times).")
def train(config: Path | None, overrides: tuple[str, ...], out: Path, resume: Path | None, run_dir: Path | None,
          device: str, strict: bool, on_nan: str) -> None:
    """Train the recipe described by CONFIG (a TOML file).

    Makes a run directory inside --out with config.toml (the resolved config),
    checkpoint-*.pt, TensorBoard event files and samples/*.png.

    \b
    Examples:
      gan train experiments/dcgan_demo.toml
      gan train experiments/dcgan_celeba128.toml --set data.root=/data/celeba/img_align_celeba
      gan train experiments/dcgan_celeba64.toml --set train.steps=500 --set train.batch_size=32 --out runs
      gan train --resume runs/00003-dcgan_celeba128            # continue after a stop
      gan train --resume runs/00003-dcgan_celeba128 --set train.steps=80000   # train longer
      gan train experiments/dcgan_demo.toml --run-dir runs/demo-hinge --set loss.adversarial=hinge
    """
    overrides = (*overrides, "data.strict=true") if strict else overrides
    out_given = click.get_current_context().get_parameter_source("out") != click.core.ParameterSource.DEFAULT
    _check_arguments(config, resume, run_dir, out_given)
    from gan.core.distributed import SINGLE_PROCESS, shutdown

    named_dir = run_dir is not None
    start = _Start(run_dir=run_dir if named_dir else resume, named_dir=named_dir, resuming=resume is not None,
                   group=SINGLE_PROCESS)  # (until torchrun's environment is read and checked)
    # Until the loop takes over, SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 while setting up stop as Ctrl-C does;
    # the handlers found are restored at the end (this may run inside a caller).
    found_handlers = interrupt_on_sigterm()
    try:
        result = _set_up_and_train(start, config, resume, overrides, out, device, on_nan)
    except BaseException as error:
        # A SIGTERM now (torchrun ending the survivors of a dead process) must not cut this report short.
        for signum in found_handlers:
            signal.signal(signum, signal.SIG_IGN)
        _report_failure(start, error)
        raise
    finally:
        shutdown(start.group)
        for signum, handler in found_handlers.items():
            if handler is not None:  # (None: one set outside Python, which cannot be put back)
                signal.signal(signum, handler)
    if result.interrupted_by:  # its name, or another process's stop (torchrun), which is SIGTERM's
        say_stop_on_another_machine(start.group, result)
        sys.exit(128 + getattr(signal, result.interrupted_by, signal.SIGTERM))
