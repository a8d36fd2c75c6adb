"""A grid of runs of one config: `gan sweep`."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import click

from gan.commands.common import UserPath, another_torchrun_process, fail
from gan.core.run_folders import refuse_folder_in_a_run


@click.command()
@click.argument("config", type=UserPath(dir_okay=False, exists=True, path_type=Path))
@click.option("--grid", "grids", multiple=True, metavar="KEY=V1,V2,...",
              help="Values to sweep for one config key (repeatable: every combination is run). A value in "
                   "double quotes may hold commas or be empty: 'loss.diffaugment=\"\",\"color,cutout\"'.")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(1),
              help="Runs per combination, with train.seed = 0, 1, ... (groups that gan compare averages).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a config value in every run (repeatable).")
@click.option("--out", type=UserPath(file_okay=False, path_type=Path), required=True,
              help="The sweep's folder: one run directory per combination, and sweep.toml.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1),
              help="Runs trained at once: each on its own GPU in turn where there are several; on a CPU "
                   "they share the cores (each log in OUT/logs/).")
@click.option("--device", default="auto", show_default=True, help="auto (every GPU there is, else cpu), cpu or cuda.")
# 1000 is gan.tools.sweep.MAX_RUNS, spelled here as importing it would load torch for --help
@click.option("--max-runs", default=1000, show_default=True, type=click.IntRange(1),
              help="Refuse a sweep of more runs than this (a grid typed wrong can be thousands).")
@click.option("--print-commands", is_flag=True,
              help="Print one `gan train` line per run instead of training (for a cluster's job array).")
def sweep(config: Path, grids: tuple[str, ...], seeds: int, sets: tuple[str, ...], out: Path, jobs: int,
          device: str, max_runs: int, print_commands: bool) -> None:
    """Train CONFIG once for every combination of the --grid values (times --seeds) in OUT.

    Each run is named by its overrides (OUT/00003-adversarial=hinge-seed=1). The same
    command again skips finished runs and resumes interrupted ones; OUT/sweep.toml records
    what was asked. Compare the runs with `gan compare OUT`.

    \b
    Examples:
      gan sweep experiments/dcgan_demo.toml --grid loss.adversarial=vanilla,lsgan,hinge --seeds 3 --out sweeps/adversarial
      gan sweep experiments/dcgan_demo.toml --grid train.g_lr=1e-4,2e-4 --grid train.d_lr=1e-4,4e-4 --out sweeps/lr
      gan sweep experiments/dcgan_celeba64.toml --grid loss.adversarial=hinge,lsgan --set loss.label_smoothing=0 \\
          --out sweeps/c64 --print-commands
    """
    import shlex
    import signal

    from gan.core.checkpoint import CheckpointError
    from gan.core.devices import DeviceUnavailable, select_device
    from gan.core.files import RunDirectoryBusy, WriteError
    from gan.core.registry import ConfigError
    from gan.tools.sweep import (
        check_config_path,
        check_sets,
        claimed_sweep_folder,
        expand,
        manifest_text,
        named_as_begun,
        parse_grid,
        planned_steps,
        refuse_runs_it_cannot_resume,
        run_sweep,
        sweep_shape,
        train_command,
        trains_on_cpu,
    )

    if os.environ.get("WORLD_SIZE", "1").strip() not in ("", "1"):  # started by torchrun: one sweep per process
        if another_torchrun_process():
            sys.exit(2)  # (rank 0 says why, and each other machine's first process)
        fail("gan sweep starts its runs as processes of its own (--jobs, one GPU each), so torchrun would start "
             "one sweep per process, and each run would read torchrun's variables as its own: run gan sweep "
             "without torchrun, or give --print-commands and start each printed `gan train` under torchrun")
    try:
        refuse_folder_in_a_run(out, "--out")
        check_config_path(config)
        grid = [parse_grid(option) for option in grids]
        check_sets(list(sets), grid, seeds)
        runs = named_as_begun(out, expand(grid, seeds, max_runs))
        if not print_commands:  # (its output is the commands alone, which may be for another machine)
            click.echo(f"sweep: {len(runs)} runs ({sweep_shape(grid, seeds)}); checking their configs", err=True)
            select_device(device)  # a device this machine lacks fails here once, not in every run
        devices = _devices(device)
        # every grid point valid before sweep.toml is written (for the CPU here, unless the commands are printed)
        steps = planned_steps(config, list(sets), runs, not print_commands and trains_on_cpu(devices),
                              here=not print_commands, out=out)
        text = manifest_text(config, list(sets), grid, seeds, runs)
        # first: a folder of another sweep, or one another sweep runs in, is refused before any line is printed
        with claimed_sweep_folder(out, text):
            if print_commands:
                for run in runs:
                    click.echo(shlex.join(train_command(config, list(sets), run, out / run.name,
                                                        None if device == "auto" else device, ["gan"])))
                return
            refuse_runs_finished_otherwise(config, list(sets), runs, out, steps)
            refuse_runs_it_cannot_resume(runs, out)
            failed = run_sweep(config, list(sets), runs, out, jobs, devices)
    except (ConfigError, CheckpointError, WriteError, RunDirectoryBusy, DeviceUnavailable) as error:
        fail(error)  # (CheckpointError: a finished run's checkpoint read to compare its settings)
    except KeyboardInterrupt as stop:  # Ctrl-C (130) or SIGTERM (143), passed on to the runs
        sys.exit(128 + getattr(stop, "signum", signal.SIGINT))
    if failed:
        # (stopped by a signal, killed or failed: each said above, with whether the same command goes on)
        click.echo(f"error: {len(failed)} run(s) did not finish: {', '.join(failed)}", err=True)
        sys.exit(1)


def refuse_runs_finished_otherwise(config: Path, sets: list[str], runs: list, out: Path, steps: dict[str, int]) -> None:
    """ConfigError for a finished run of the sweep whose settings are not those the sweep gives it
    (resumed by hand with a --set): it was counted as the grid's run, and gan compare labelled it
    with settings it trained only part of the way with. Settings of how it ran alone (`how_it_runs`:
    its checkpoint interval, say) leave it the grid's run. (An unfinished one is refused by its
    `gan train --run-dir`, as the sweep resumes it.)"""
    from gan.commands.train import other_settings, written_config
    from gan.core.inert import how_it_runs
    from gan.core.registry import ConfigError
    from gan.tools.sweep import finished
    from gan.training.resolve import load_config
    from gan.training.run_dir import rollback_halvings

    for run in runs:
        run_dir = out / run.name
        if not finished(run_dir, steps[run.name]):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (said when the sweep's configs were checked)
            changes, _, _ = other_settings(written_config(run_dir), load_config(config, [*sets, *run.overrides]),
                                           rollback_halvings(run_dir))
        changes = [change for change in changes if not how_it_runs(change.split(" ", 1)[0])]
        if changes:
            raise ConfigError(f"run {run.name} finished with settings other than this sweep gives it "
                              f"({'; '.join(changes)}: '{config}' edited since, or the run resumed with --set by "
                              f"hand), so it is not the grid's run: put the config back as it was, or move "
                              f"'{run_dir}' out of '{out}' for the sweep to train that run again")


def _devices(device: str) -> list[str]:
    """One device per job slot in turn: every GPU for "auto" (none on a CPU machine)."""
    if device != "auto":
        return [device]
    import torch

    return [f"cuda:{index}" for index in range(torch.cuda.device_count())]
