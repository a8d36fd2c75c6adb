"""Training speed against a plain baseline, and the data path: `gan bench`."""

from __future__ import annotations

from pathlib import Path

import click

from gan.commands.common import UserPath, fail


@click.command()
@click.option("--model", "models", multiple=True, help="Repeatable; default: all of dcgan64, dcgan128, pix2pix256, "
              "cyclegan256, srresnet4x, srgan4x.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--json", "json_path", type=UserPath(dir_okay=False, path_type=Path),
              help="Also write results here (a name ending in .json).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --json file (never the --baseline file).")
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(1), help="Alternating rounds of ours and the baseline.")
@click.option("--iters", default=0, show_default=True, type=click.IntRange(0),
              help="Training iterations per side per round; 0 = as many as take about 2 seconds.")
@click.option("--warmup", default=5, show_default=True, type=click.IntRange(0),
              help="Untimed iterations per side first (compilation, then the capture of the CUDA graph at the 4th).")
@click.option("--eager", is_flag=True, help="Turn our speed switches off (compile, CUDA graph, channels_last, bf16).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Config override for our side, e.g. train.compile=off (repeatable; after --eager).")
@click.option("--baseline", "baseline_path", type=UserPath(dir_okay=False, path_type=Path),
              help="The plain implementation to compare with (a Python file of the canonical models); without "
                   "it the baseline columns stay empty.")
@click.option("--data-root", type=UserPath(file_okay=False, path_type=Path),
              help="Folder of images (with subfolders) for the data-path benchmark; without it (or 'none') that "
                   "part is skipped.")
@click.option("--data-workers", default=2, show_default=True, type=click.IntRange(0), help="Loader workers for the uncached data path.")
@click.option("--threads", type=click.IntRange(1), help="torch.set_num_threads for the run.")
def bench(models: tuple[str, ...], device: str, json_path: Path | None, overwrite: bool, rounds: int, iters: int,
          warmup: int, eager: bool, overrides: tuple[str, ...], baseline_path: Path | None, data_root: Path | None,
          data_workers: int, threads: int | None) -> None:
    """Training images/s of each recipe's canonical configuration, against the plain baseline.

    Both run in this process on random tensors, in alternating rounds; the table gives
    images/s, the ratio ours / baseline, peak CUDA memory and achieved TFLOP/s (FLOPs of
    one step counted by torch.utils.flop_counter). Then the data path: the decoded-image
    cache against torchvision ImageFolder + transforms at 128x128. An existing --json file is
    replaced only with --overwrite; the --baseline file never.

    \b
    Examples:
      gan bench --baseline baseline.py            # everything, on CUDA if present
      gan bench --model dcgan64 --model dcgan128 --device cuda --json bench.json
      gan bench --data-root datasets/celeba                    # also the data path (a folder of image folders)
      gan bench --model pix2pix256 --rounds 2 --data-root none
      gan bench --model dcgan128 --set train.compile=off --device cuda   # one switch's share
    """
    from gan.core.registry import suggest
    from gan.tools.benchmark import CASES

    unknown = [f"{name!r}{suggest(name, list(CASES))}" for name in models if name not in CASES]
    if unknown:
        raise click.BadParameter(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(CASES)}",
                                 param_hint="--model")
    check_json_name(json_path)
    models = tuple(dict.fromkeys(models)) or tuple(CASES)  # (a model given twice is timed once: one row per model)
    data_root = None if data_root is not None and str(data_root) == "none" else data_root
    torch_device, baseline, batch_size, overrides = _checked(models, device, json_path, overwrite, overrides,
                                                             baseline_path, data_root)
    if baseline is None:
        click.echo("no --baseline given: the baseline columns stay empty", err=True)
    results = ResultsFile(json_path) if json_path else None  # (as checked: new, or the file --overwrite replaces)
    rows, data_rows, failures, settings = _measured(models, torch_device, results, rounds, iters, warmup, eager,
                                                    overrides, baseline, batch_size, data_root, data_workers,
                                                    threads)
    _report(rows, data_rows, failures, settings, baseline, results)


def check_json_name(json_path: Path | None) -> None:
    """A usage error for a --json path whose extension is not .json, before anything is measured: with
    --overwrite, the results replaced whatever file was named (a photo, `--json photos/000001.jpg`)."""
    if json_path is None or json_path.suffix.lower() == ".json":
        return
    extension = f"the extension '{json_path.suffix}'" if json_path.suffix else "no extension"
    hidden = (f" ('{json_path.name}' alone is a hidden file's name: give it a name before the extension)"
              if json_path.name.lower() == ".json" else "")
    raise click.BadParameter(f"'{json_path}' has {extension}, where the results, JSON, need .json; name it "
                             f"NAME.json, e.g. bench.json{hidden}", param_hint="--json")


def _checked(models: tuple[str, ...], device: str, json_path: Path | None, overwrite: bool,
             overrides: tuple[str, ...], baseline_path: Path | None, data_root: Path | None):
    """(device, baseline or None, --set's batch size or None, the other --set overrides), once every
    input is checked: a bad --set, a missing file or an existing --json stop here, not after minutes
    of measuring."""
    from gan.core.devices import DeviceUnavailable, select_device
    from gan.core.registry import ConfigError
    from gan.inference.outputs import OutputRefused, check_outputs
    from gan.tools.benchmark import (
        CASES,
        BaselineError,
        DataRootError,
        batch_override,
        check_data_root,
        load_baseline,
        unmeasured_overrides,
        workload_overrides,
    )
    from gan.training.resolve import check_networks, load_config

    try:
        torch_device = select_device(device)
        for name in models:  # a bad --set, or networks it does not fit, stop here, not after other models
            try:
                check_networks(load_config(None, [*CASES[name].overrides, *overrides]))
            except ConfigError as error:
                raise ConfigError(f"{name}: {error}") from None
        unmeasured = unmeasured_overrides(overrides)
        if unmeasured:
            click.echo(f"warning: --set {', '.join(unmeasured)} changes nothing gan bench measures (one training "
                       "step on a synthetic batch: no data files, logging, metrics or checkpoints)", err=True)
        batch_size, overrides = batch_override(overrides)  # (both sides: the baseline's batch too)
        ours_alone = workload_overrides(overrides)
        needed = [CASES[name].baseline for name in models if CASES[name].baseline]
        if ours_alone and baseline_path and needed:  # (a model with no baseline has no ratio to mislead)
            click.echo(f"warning: --set {', '.join(ours_alone)} changes the work of gan's step alone; the baseline "
                       "runs its canonical model, so the ratio compares two different workloads", err=True)
        baseline = load_baseline(baseline_path, needed) if baseline_path else None
        if data_root is not None:
            check_data_root(data_root)
        if json_path:  # a read-only folder or an existing file is refused now, not after minutes of measuring
            check_outputs([json_path], inputs=[baseline_path] if baseline_path else [], overwrite=overwrite)
    except (DeviceUnavailable, ConfigError, FileNotFoundError, BaselineError, DataRootError, OutputRefused) as error:
        fail(error)
    return torch_device, baseline, batch_size, overrides


def _measured(models: tuple[str, ...], torch_device, results: ResultsFile | None, rounds: int, iters: int, warmup: int,
              eager: bool, overrides: tuple[str, ...], baseline, batch_size: int | None, data_root: Path | None,
              data_workers: int, threads: int | None):
    """(model rows, data path rows, {what failed: why}, the settings measured under). One model's
    failure is said and recorded, and the others measured; --json is rewritten after each model."""
    import tempfile
    import traceback

    import torch

    from gan.core.registry import ConfigError
    from gan.tools.benchmark import DATA_BATCH, BaselineError, DataRootError, bench_data, bench_model
    from gan.tools.benchmark import threads as thread_count

    rows, data_rows, failures = [], [], {}
    with thread_count(threads):
        from gan import __version__

        # (what reproduces the figures; `measured` says which of `models` a run cut short got to)
        settings = {"device": str(torch_device), "torch": str(torch.__version__), "gan": __version__,
                    "threads": torch.get_num_threads(), "models": list(models), "rounds": rounds, "iters": iters,
                    "warmup": warmup, "eager": eager, "overrides": list(overrides), "batch_size": batch_size,
                    "baseline": getattr(baseline, "__file__", None),
                    "data_root": str(data_root) if data_root is not None else None, "measured": []}
        for name in models:
            try:
                rows.append(bench_model(name, torch_device, baseline, rounds, iters, warmup, fast=not eager,
                                        flops=True, overrides=overrides, batch_size=batch_size))
            except KeyboardInterrupt:
                _say_stopped(results, settings)
                raise
            except (ConfigError, BaselineError) as error:  # a --set this model's recipe refuses, a baseline build
                # that returns the wrong thing: its message says it all
                click.echo(f"error: {name}: {error}", err=True)
                failures[name] = f"{type(error).__name__}: {error}"
            except Exception as error:  # one model's failure must not cost the others' figures
                traceback.print_exc()
                failures[name] = f"{type(error).__name__}: {error}"
            settings["measured"].append(name)
            if results:  # after every model: a run cut short keeps what it measured
                results.write(rows, data_rows, settings, failures)  # (a refusal: the last write reports it)
        if data_root is not None:
            with tempfile.TemporaryDirectory() as cache_dir:
                try:
                    data_rows.append(bench_data(data_root, 128, DATA_BATCH, 40, data_workers, Path(cache_dir)))
                except DataRootError as error:  # (an undecodable image): said after the models' table, once
                    failures["data path"] = f"DataRootError: {error}"
                except KeyboardInterrupt:  # ("measured" without "data path": a file cut short there says so)
                    _say_stopped(results, settings)
                    raise
            settings["measured"].append("data path")
    return rows, data_rows, failures, settings


def _say_stopped(results: ResultsFile | None, settings: dict) -> None:
    """A stop's line for a --json written so far (a retry is refused for that file: said to be this bench's)."""
    if results and settings["measured"]:
        click.echo(f"stopped: '{results.path}' holds what was measured before the stop ({', '.join(settings['measured'])}"
                   ": its \"measured\" list); pass --overwrite to measure again into it", err=True)


def _report(rows: list, data_rows: list, failures: dict[str, str], settings: dict, baseline,
            results: ResultsFile | None) -> None:
    """The table, the data path's line, the final --json write, and what failed."""
    from gan.tools.benchmark import CASES, format_table

    if rows:  # (every model failed: no empty table)
        click.echo(format_table(rows))
        # (notes on stderr: stdout carries the figures alone, for a script that reads them)
        if baseline is None:
            click.echo("(baseline columns empty: no --baseline file was given)", err=True)
        else:
            unmatched = [row.model for row in rows if CASES[row.model].baseline is None]
            if unmatched:
                click.echo(f"(baseline columns empty for {', '.join(unmatched)}: the baseline has no such model)",
                           err=True)
    for row in data_rows:
        click.echo(f"\ndata path at {row['resolution']}px, batch {row['batch_size']}, {row['images']} images: cached "
                   f"{row['cached_images_per_s']:.0f} img/s vs ImageFolder+transforms "
                   f"{row['imagefolder_images_per_s']:.0f} img/s with {row['workers']} workers: "
                   f"{row['ratio']:.1f}x (cache built once in {row['cache_build_s']:.1f} s)")
    if results:
        json_error = results.write(rows, data_rows, settings, failures)
        if json_error:  # (a full disk, another writer): the figures are on the terminal above
            fail(f"{json_error}; the figures are in the table above")
        click.echo(f"wrote {results.path}", err=True)
    if failures:  # (each model's error was said as it failed; the data path's was not)
        fail("failed: " + "; ".join(f"{name} ({'said above' if name != 'data path' else error})"
                                    for name, error in failures.items()))

class ResultsFile:
    """--json, rewritten after every model by this bench alone: a file another command wrote there
    since (a second `gan bench` given the same --json, both started without it) is not replaced; each
    kept the other's results, and a last write left one bench's figures under both benches' words."""

    def __init__(self, path: Path):
        from gan.inference.outputs import file_stamp

        self.path, self.stamp = path, file_stamp(path)

    def write(self, *results) -> str | None:
        """Write the results so far; why not, when the disk refuses or another command wrote the file
        since (replaced or rewritten in place), so that a refusal costs neither the models still to
        measure nor the table. A file removed meanwhile is written anew: nothing is lost."""
        from gan.core.files import WriteError
        from gan.inference.outputs import file_stamp
        from gan.tools.benchmark import write_json

        now = file_stamp(self.path)
        if now is not None and now != self.stamp:
            return (f"'{self.path}' was written by another command since this bench began (another gan bench "
                    "with the same --json?): not replaced")
        try:
            write_json(self.path, *results)
        except (WriteError, OSError) as error:
            return str(error)
        self.stamp = file_stamp(self.path)
        return None
