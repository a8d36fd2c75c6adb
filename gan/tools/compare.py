"""`gan compare`: runs side by side, seeds pooled. Scalars come from the runs' TensorBoard event
files, read as TensorBoard reads them (gan/tools/event_scalars.py). Runs whose configs differ
only in `train.seed` form one group. Per group: the best and final value of a metric as mean ±
std over seeds, the step of the best, the final losses and images/s; a figure of the curves
(mean line, min-max band over seeds; losses smoothed as TensorBoard smooths them).

Nothing is left out silently: a damaged event file, a run with no scalars, runs without the
metric, a metric whose direction gan does not know are each warned of; a metric no run has
is refused with the names the runs do have; a run that has not reached its train.steps is
marked in the table. Outputs never go into a run directory.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import io
import json
import math
import re
import shlex
import statistics
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Sequence

import numpy as np

from gan.core.checkpoint import holds_a_run, is_set_aside, trained_config
from gan.core.config import BEST_METRICS, config_from_dict, config_to_dict, flatten_config, read_run_config
from gan.core.files import OutputsLock, RunDirectoryBusy, run_order, write_atomically, write_text_atomically
from gan.core.inert import how_it_runs
from gan.core.processes import stops_held_to_the_end
from gan.core.progress import DelayedProgress
from gan.core.registry import ConfigError
from gan.core.wording import first_few, one_line, undecoded
from gan.inference.outputs import resolved
from gan.tools.event_scalars import run_scalars
from gan.training.resolve import resolve_names
from gan.training.run_dir import settings_changed_at

IMAGE_TO_IMAGE = ("pix2pix", "srresnet", "srgan")  # recipes that validate: val/psnr by default
SMOOTHING = 0.6  # TensorBoard's default smoothing weight
LOSSES = ("loss/d", "loss/g")

Curve = tuple[np.ndarray, np.ndarray]  # steps, values


class CompareError(ValueError):
    """Nothing to compare, or a run that cannot be read; the message names it."""


class CompareWarning(UserWarning):
    """Something compare reads is missing or damaged; the comparison goes on without it."""


MAX_NAMED = 5  # runs named in a warning; the rest are counted


def check_output_folder(out: Path) -> None:
    """Refuse an output folder that is a run directory (it holds config.toml) or lies inside one:
    a run's folder belongs to its training, and compare's files would mix with the run's."""
    for folder in (resolved(out), *resolved(out).parents):  # (a looping link: as far as it goes)
        if (folder / "config.toml").is_file():
            raise CompareError(f"--out '{out}' is in the run directory '{folder}' (it holds config.toml), whose "
                               "files belong to its training; give a folder outside any run")


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories (`holds_a_run`) named directly or found one level inside a folder (a sweep),
    there less the dead starts `gan train --run-dir` set aside (a rerun sweep's), which are no
    runs, let alone more seeds: named in a warning. Folders of runs one level further down (sweeps
    in a folder of sweeps) are named, not read: runs of other sweeps are not more seeds of these."""
    runs = []
    for path in paths:
        if holds_a_run(path):
            runs.append(path)
        elif path.is_dir():
            children = sorted((child for child in path.iterdir() if child.is_dir()), key=run_order)
            inside = [child for child in children if holds_a_run(child)]
            nested = [child for child in children if child not in inside and any(map(holds_a_run, _folders(child)))]
            set_aside = [child for child in inside if is_set_aside(child)]
            if set_aside:
                warnings.warn(f"leaving out {len(set_aside)} start(s) in '{path}' set aside before their first "
                              f"checkpoint ({_named(set_aside)}); name one to compare it", CompareWarning,
                              stacklevel=2)
            inside = [child for child in inside if child not in set_aside]
            together = " ".join(shlex.quote(str(folder)) for folder in [*([path] if inside else []), *nested])
            from gan.tools.sweep import MANIFEST

            if not inside and (path / MANIFEST).is_file() and not nested:  # (a sweep whose first runs are starting)
                raise CompareError(f"'{path}' is a sweep folder none of whose runs has written its config.toml yet "
                                   "(they do as their first step begins): compare it once they have started")
            if not inside:
                raise CompareError(f"'{path}' is neither a run directory (no config.toml) nor a folder of runs"
                                   + (" (only starts set aside)" if set_aside else "")
                                   + (f"; the folders of runs inside it are named one by one: gan compare {together}"
                                      if nested else ""))
            if nested:
                warnings.warn(f"leaving out the runs of {len(nested)} folder(s) inside '{path}' ({_named(nested)}), "
                              f"which hold runs of their own: name them too to compare them with these (gan compare "
                              f"{together})", CompareWarning, stacklevel=2)
            runs += inside
        else:
            raise CompareError(f"'{path}' does not exist")
    unique: dict[Path, Path] = {}  # by the folder itself: a run named twice (`runs/a`, `./runs/a`, a link) is one run
    for run in runs:
        unique.setdefault(run.resolve(), run)
    return list(unique.values())


def _folders(path: Path) -> list[Path]:
    try:
        return [child for child in path.iterdir() if child.is_dir()]
    except OSError:  # (unreadable: not one to name)
        return []


def sweep_runs_not_started(paths: list[Path]) -> list[str]:
    """The runs that a sweep folder's sweep.toml lists but that have no run directory there yet."""
    from gan.tools.sweep import MANIFEST

    missing = []
    for path in paths:
        try:
            listed = tomllib.loads((path / MANIFEST).read_text(encoding="utf-8")).get("runs", {})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):  # no sweep folder, or not one gan can read
            continue
        if not isinstance(listed, dict):  # (`runs = 3`: no manifest gan wrote, nor the names of any runs)
            continue
        missing += [f"{path.name}/{name}" for name in listed if not holds_a_run(path / name)]
    return missing


def read_scalars(run_dir: Path) -> dict[str, Curve]:
    """Every scalar tag of the run's event files as (steps, values), in step order, as TensorBoard
    shows them (`run_scalars`). Event files that are damaged mid-way (TensorBoard stops reading
    there without a word) are warned of, by name."""
    points, damaged = run_scalars(run_dir)
    for path, problem in damaged.items():
        warnings.warn(f"the event file '{path}' is damaged ({problem}); its scalars from there on are left out",
                      CompareWarning, stacklevel=2)
    curves = {}
    for tag, tagged in points.items():
        tagged = sorted(tagged, key=lambda point: point[0])  # (stable: a step logged twice keeps its order)
        curves[tag] = (np.array([step for step, _ in tagged]),
                       np.array([value for _, value in tagged], dtype=np.float64))
    return curves


def read_runs_scalars(runs: list[Path]) -> dict[Path, dict[str, Curve]]:
    """`read_scalars` of each run; a run with no readable scalars is left out with a warning. A progress
    line of runs read once it takes over 2 s: an event file holds the run's preview grids too, read
    through though not checksummed (a 200k-step DCGAN-128 run's, about 700 MB)."""
    scalars = {}
    progress = DelayedProgress(len(runs), "run", "run")
    for done, run in enumerate(runs):
        progress.update(done)
        try:
            curves = read_scalars(run)
        except (OSError, MemoryError) as error:
            why = ("reading them ran out of memory: a damaged record that claims a huge size, most often"
                   if isinstance(error, MemoryError) else str(error))
            warnings.warn(f"cannot read the event files of '{undecoded(run)}' ({why}); the run is left out", CompareWarning,
                          stacklevel=2)
            continue
        if not curves:
            warnings.warn(f"'{run}' has no readable scalars (no event file, or none that could be read); the run is "
                          "left out", CompareWarning, stacklevel=2)
            continue
        scalars[run] = curves
    progress.update(len(runs))
    progress.close()
    return scalars


def read_configs(runs: list[Path]) -> dict[Path, dict[str, object]]:
    """Each run's config.toml with every default filled in (dataclass keys and network arguments),
    flattened to dotted keys: a run written before a key existed then agrees with one that spells
    out its default. A config this version cannot read whole (a key since removed) is taken as written."""
    configs = {}
    for run in runs:
        path, trained = run / "config.toml", trained_config(run)
        if trained is not None and not path.is_file():  # (gone: the resume that rebuilds it has not run yet)
            warnings.warn(f"'{run}' has no config.toml: its settings are read from '{trained[0]}'", stacklevel=2)
            written = trained[1]
        else:  # (cut short or emptied, read alone it was every default: the run grouped apart, "step 30 of 10000")
            try:
                written = read_run_config(path, trained)
            except ConfigError as error:
                raise CompareError(f"cannot read the settings of run '{run}': {error}") from None
        try:
            configs[run] = flatten_config(config_to_dict(resolve_names(config_from_dict(written))))
        except ConfigError as error:  # (filled, it would differ from the others only in the keys it spells out)
            warnings.warn(f"'{path}' is not a config this gan reads whole ({error}): it is compared as written, so "
                          "it may form a group apart from runs of the same settings", stacklevel=2)
            configs[run] = flatten_config(written)
    return configs


MAX_LABEL_KEYS = 4  # a label of more differing keys is unreadable


def _as_written(value: object) -> str:
    """A config value as a label shows it: as in TOML for booleans and the empty string."""
    if isinstance(value, bool):
        return str(value).lower()
    return '""' if value == "" else str(value)


# Keys that never set runs apart: the seed, and where caches are kept (no study; seeds of one experiment
# on two machines keep them in two places)
NEVER_APART = ("train.seed", "data.cache_dir", "metrics.cache_dir")


def group_runs(configs: dict[Path, dict[str, object]], resumed: dict[Path, set[str]] | None = None,
               compared: Collection[Path] | None = None) -> dict[str, list[Path]]:
    """Runs (`read_configs`) grouped by their configs without `NEVER_APART`'s keys, nor a key of how a run is
    carried out or recorded (`how_it_runs`, but train.steps) that only resumes changed (`resumed`: run ->
    the keys its resumes changed), where the runs that kept theirs agree: a seed resumed with another
    checkpoint interval is one of its experiment's (a sweep of loader workers still sets them apart); each group named by the
    keys that set it apart from the others, in full (`loss.adversarial=hinge`: a last part alone,
    `every=500`, could be any section's), or "all runs" when all agree. Runs of several recipes, or
    groups that differ in more than `MAX_LABEL_KEYS` keys, are named by each group's first run's
    folder instead (`distinct_names`): such labels would run to dozens of keys; its first of `compared`
    where given (the runs with scalars: one left out named another's figures)."""
    resumed = resumed or {}

    def changed_by_resumes_alone(key: str) -> bool:
        kept = {repr(config.get(key)) for run, config in configs.items() if key not in resumed.get(run, ())}
        return key != "train.steps" and how_it_runs(key) and len(kept) <= 1
    keys = sorted({key for config in configs.values() for key in config
                   if key not in NEVER_APART and not changed_by_resumes_alone(key)})
    differing = [key for key in keys if len({repr(config.get(key)) for config in configs.values()}) > 1]
    by_config: dict[str, list[Path]] = {}
    for run, config in configs.items():
        by_config.setdefault(json.dumps([repr(config.get(key)) for key in differing]), []).append(run)
    naming = _naming_keys([configs[members[0]] for members in by_config.values()], differing)
    if len(naming) <= MAX_LABEL_KEYS and "recipe" not in differing:
        return {" ".join(f"{key}={_as_written(configs[members[0]].get(key))}" for key in naming) or "all runs": members
                for members in by_config.values()}
    # (a group's first run's folder, without the seed that would read as that one run's)
    named_by = [next((run for run in members if compared is None or run in compared), members[0])
                for members in by_config.values()]
    return dict(zip(distinct_names(named_by), by_config.values()))


def _naming_keys(group_configs: list[dict[str, object]], differing: list[str]) -> list[str]:
    """The keys a group's label names: all of `differing`, but for the keys a differing loss.preset
    sets, which the preset's name says at once, when the rest still tell the groups apart."""
    from gan.core.presets import LOSS_PRESETS

    if "loss.preset" not in differing:
        return differing
    by_preset = {key for preset in LOSS_PRESETS.values() for key in preset.values}
    naming = [key for key in differing if key not in by_preset]
    told_apart = len({tuple(repr(config.get(key)) for key in naming) for config in group_configs})
    return naming if told_apart == len(group_configs) else differing


def distinct_names(runs: list[Path]) -> list[str]:
    """The runs' folder names less a last `-seed=N` (they name groups of seeds), with as many parent
    folders as it takes to tell them all apart; with the seed where only it tells two apart."""
    paths = [run.resolve() for run in runs]
    deepest = max(len(path.parts) for path in paths)
    for strip in (r"-seed=\d+$", r"(?!)"):  # (the second strips nothing)
        for depth in range(1, deepest + 1):
            names = [Path(*path.parts[-depth:-1], re.sub(strip, "", path.name)).as_posix() for path in paths]
            if len(set(names)) == len(names):
                return names
    return [path.as_posix() for path in paths]  # (the same run twice: no name could tell them apart)


def default_metric(configs: dict[Path, dict[str, object]]) -> str:
    """val/psnr for paired image-to-image runs, val/cycle_l1 for CycleGAN runs, else swd/mean."""
    recipes = {config.get("recipe") for config in configs.values()}
    if recipes == {"cyclegan"}:
        return "val/cycle_l1"
    return "val/psnr" if recipes and recipes <= set(IMAGE_TO_IMAGE) else "swd/mean"


def metric_tag(curves: dict[str, Curve], metric: str) -> str | None:
    """The event-file tag of `metric`: itself (val/psnr) or under metrics/ (swd/mean, fid)."""
    for tag in (metric, f"metrics/{metric}"):
        if tag in curves:
            return tag
    return None


def metric_name(tag: str) -> str:
    """A tag as --metric and BEST_METRICS name it: without the metrics/ prefix."""
    return tag.removeprefix("metrics/")


def _measured(curves: dict[str, Curve], metric: str) -> bool:
    """Whether a run logged `metric` with at least one value that is a number (not NaN)."""
    tag = metric_tag(curves, metric)
    return tag is not None and bool(np.any(~np.isnan(curves[tag][1])))


def _named(runs: list[Path]) -> str:
    return first_few([str(run) for run in runs], MAX_NAMED)


# Which way each scalar gan logs is better, beyond the metrics a run keeps its best by
DIRECTIONS = {**BEST_METRICS, "perf/images_per_s": "higher"}


def check_metric(metric: str | None, default: str, scalars: dict[Path, dict[str, Curve]],
                 better: str | None = None) -> str:
    """The metric to rank by: `metric` when some run logged it, else an error naming the closest
    scalar and all the runs have; when none is given, `default`, or where no run logged that, the
    metric of known direction that most runs logged. No run with it is warned of (and some runs
    without it, by `warn_of_runs_without`); so is a direction gan does not know and `better` does not say."""
    if metric is None and not any(_measured(curves, default) for curves in scalars.values()):
        logged = {name: sum(_measured(curves, name) for curves in scalars.values()) for name in BEST_METRICS}
        most = max(logged.values())
        default = next((name for name, count in logged.items() if count == most), default) if most else default
    available = sorted({metric_name(tag) for curves in scalars.values() for tag in curves})
    if metric is not None and not any(metric_tag(curves, metric) for curves in scalars.values()):
        wanted = metric_name(metric)  # a part of a tag's name (swd of swd/mean) comes before spelling
        # (swd: its mean over scales, swd/mean, before any one scale)
        closest = (sorted((name for name in available if wanted in name.split("/")),
                          key=lambda name: not name.endswith("/mean"))
                   or difflib.get_close_matches(wanted, available, n=1))
        guess = f" (did you mean '{closest[0]}'?)" if closest else ""
        raise CompareError(f"no run has the scalar '{metric}'{guess}; the runs have: {', '.join(available)}")
    chosen = "" if metric else " (the default metric)"
    metric = metric or default
    missing = [run for run, curves in scalars.items() if not _measured(curves, metric)]
    if len(missing) == len(scalars):
        warnings.warn(f"no run has a value of {metric}{chosen}; give --metric, one of: {', '.join(available)}",
                      CompareWarning, stacklevel=2)
    known = DIRECTIONS.get(metric_name(metric))
    if known is None and better is None:
        warnings.warn(f"gan does not know whether a higher or lower {metric} is better; the best is taken as the "
                      "lowest (--better higher ranks by the highest)", CompareWarning, stacklevel=2)
    elif known is not None and better is not None and better != known:
        warnings.warn(f"--better {better} ranks {metric} the other way round from gan's word for it ({known} is "
                      "better): the 'best' values are its worst", CompareWarning, stacklevel=2)
    return metric


@dataclass
class GroupSummary:
    label: str
    seeds: int
    best: tuple[float, float | None] | None  # mean, std (None for one seed) over seeds of each seed's best
    best_step: float | None  # mean over seeds of the step of each seed's best
    final: tuple[float, float | None] | None
    final_losses: dict[str, float]  # mean over seeds of the last logged value
    images_per_s: float | None  # mean over seeds of each run's mean
    unfinished: list[tuple[int, int]] = field(default_factory=list)  # (last logged step, train.steps) of each run
    # that stopped short: its "final" values are where it stands, not where it ends


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample std; no std for one seed (it is undefined, not 0)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def last_step(curves: dict[str, Curve]) -> int | None:
    """The last step a run logged any scalar at (the loop logs at its last step)."""
    return max((int(steps[-1]) for steps, _ in curves.values() if len(steps)), default=None)


def scores_at_its_end(config: dict[str, object], metric: str) -> bool:
    """Whether a run of `config` (flattened) logs `metric` at its last step, as the loop does each
    scalar of a side task switched on: validation's `val/*` with log.eval_every, generative metrics
    with metrics.every (a resume may switch either off); the losses and the rest at every log but
    `perf/first_step_s` (each start's first step), `health/growth/*` (at the end of a span of windows)
    and lazy R1's `loss/r1` (in the windows that hold an R1 step)."""
    if metric in ("perf/first_step_s", "loss/r1") or metric.startswith("health/growth/"):
        return False
    if metric.startswith("val/"):
        return bool(config.get("log.eval_every", 1))
    if metric_name(metric) in BEST_METRICS:  # (swd/mean, fid, kid, precision, recall)
        return bool(config.get("metrics.every", 1))
    return True


def unfinished_runs(runs: dict[Path, dict[str, Curve]], planned: dict[Path, int], metric: str,
                    scored: dict[Path, bool] | None = None) -> list[tuple[int, int]]:
    """(last logged step, train.steps) of each run that logged nothing at its planned last step: still
    training, or stopped. The loop logs every scalar there, so a run whose other scalars reached it
    and whose `metric` did not (an event file cut short, a run stopped in its last evaluation) is one
    too, at the metric's last step, and warned of: its final value is not of the run's end."""
    found = []
    for run, curves in runs.items():
        last, steps = last_step(curves), planned.get(run)
        if last is None or not isinstance(steps, int):
            continue
        measured = (int(curves[metric_tag(curves, metric)][0][-1])
                    if _measured(curves, metric) and (scored or {}).get(run, True) else last)
        if last >= steps > measured:
            warnings.warn(f"'{run}' logged {metric} up to step {measured}, its other scalars up to its last step "
                          f"{last}: its event file may be cut short, or the run stopped in its last evaluation; its "
                          f"final {metric} is step {measured}'s", CompareWarning, stacklevel=3)
            found.append((measured, steps))
        elif last < steps:
            found.append((last, steps))
    return found


def summarise(label: str, runs: dict[Path, dict[str, Curve]], metric: str, lower: bool,
              planned: dict[Path, int] | None = None, seeds: dict[Path, object] | None = None,
              scored: dict[Path, bool] | None = None) -> GroupSummary:
    """The group's figures; `planned`: each run's train.steps, to mark runs that have not reached it;
    `seeds`: each run's train.seed, to warn of runs that repeat one (their spread is no seed's)."""
    bests, best_steps, finals, not_finite = [], [], [], []
    for run, curves in runs.items():
        if not _measured(curves, metric):
            continue
        steps, values = curves[metric_tag(curves, metric)]
        finite = np.isfinite(values)
        if not finite.all():  # a diverged run's NaN, a perfect reconstruction's infinite PSNR
            first = int(np.argmin(finite))
            not_finite.append(f"{run} ({values[first]} at step {int(steps[first])})")
        if not finite.any():
            continue
        index = int(np.argmin(np.where(finite, values, np.inf)) if lower else np.argmax(np.where(finite, values, -np.inf)))
        bests.append(float(values[index]))
        best_steps.append(float(steps[index]))
        finals.append(float(values[np.flatnonzero(finite)[-1]]))
    if not_finite:
        warnings.warn(f"{len(not_finite)} run(s) of group '{label}' logged {metric} values that are no finite number: "
                      f"{', '.join(not_finite[:MAX_NAMED])}; the group's best and final {metric} are of its finite "
                      "values", CompareWarning, stacklevel=2)
    losses = {}
    for name in LOSSES:
        last = [float(curves[name][1][-1]) for curves in runs.values() if name in curves and len(curves[name][1])]
        if last:
            losses[name] = statistics.fmean(last)
    speeds = [training_speed(*curves["perf/images_per_s"],
                             curves["perf/first_step_s"][0] if "perf/first_step_s" in curves else ())
              for curves in runs.values()
              if "perf/images_per_s" in curves and len(curves["perf/images_per_s"][1])]
    _warn_of_repeated_seeds(label, runs, seeds or {})
    return GroupSummary(label, len(runs), _mean_std(bests) if bests else None,
                        statistics.fmean(best_steps) if best_steps else None, _mean_std(finals) if finals else None,
                        losses, statistics.fmean(speeds) if speeds else None, unfinished_runs(runs, planned or {}, metric, scored))


def training_speed(steps: np.ndarray, rates: np.ndarray, first_steps: Sequence[float] = ()) -> float:
    """A run's images/s from its windows' `perf/images_per_s`: images over training time, each window's
    rate weighted by its steps, the gap to the point before. A window that holds a start's or a resume's
    first step (`first_steps`, where `perf/first_step_s` is logged: that step is timed on its own) counts
    from it. The plain mean overstated a run's speed by 11% where the windows' rates swung 184..976 img/s,
    and a short last window's counted as a whole one."""
    steps = np.asarray(steps, dtype=np.float64)
    weights = np.clip(np.diff(steps, prepend=0.0), 0.0, None)
    for first in np.asarray(first_steps, dtype=np.float64):
        after = int(np.searchsorted(steps, first, side="right"))  # (the window that closes after it)
        if after < len(steps):
            weights[after] = min(weights[after], steps[after] - first)
    if not weights.sum() > 0:  # (steps that tell nothing)
        weights = np.ones(len(steps))
    with np.errstate(divide="ignore"):  # (a window of 0 img/s: the run's speed is 0)
        return float(weights.sum() / (weights / np.asarray(rates, dtype=np.float64)).sum())


def _warn_of_repeated_seeds(label: str, runs: dict[Path, dict[str, Curve]], seeds: dict[Path, object]) -> None:
    """Runs of one group with the same train.seed are reruns or copies of one run, not other seeds:
    their ± says nothing of how results vary with the seed."""
    by_seed: dict[str, list[Path]] = {}
    for run in runs:
        if run in seeds:
            by_seed.setdefault(repr(seeds[run]), []).append(run)
    repeated = [members for members in by_seed.values() if len(members) > 1]
    if repeated:
        named = "; ".join(f"{_named(members)} (train.seed {seeds[members[0]]})" for members in repeated[:MAX_NAMED])
        warnings.warn(f"group '{label}' has runs of the same seed: {named}; they count as {len(runs)} seeds in its "
                      "mean ± std, which then understates how results vary from seed to seed", CompareWarning,
                      stacklevel=2)


def _pm(value: tuple[float, float | None] | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if value[1] is None:
        return f"{value[0]:.{digits}g} (one seed)"
    return f"{value[0]:.{digits}g} ± {value[1]:.2g}"


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def unfinished_note(summary: GroupSummary) -> str:
    """'(step 250 of 400)' for a group's one run that has not reached train.steps; for several, how
    many and where; '' when every run finished."""
    if not summary.unfinished:
        return ""
    if summary.seeds == 1:
        return "(step {} of {})".format(*summary.unfinished[0])
    steps = ", ".join(str(last) for last, _ in summary.unfinished)
    return f"({len(summary.unfinished)} of {summary.seeds} runs unfinished: steps {steps} of {summary.unfinished[0][1]})"


def other_losses(metric: str) -> list[str]:
    """The final losses the table shows beside `metric` (not `metric` itself a second time)."""
    return [name for name in LOSSES if name != metric]


def _mean_step(step: float | None) -> str:
    """A mean over seeds of their best steps: 4.5 as 4.5, not rounded half to even to 4."""
    return "-" if step is None else f"{step:.0f}" if step.is_integer() else f"{step:.1f}"


def table_rows(summaries: list[GroupSummary], metric: str) -> list[list[str]]:
    return [[s.label, str(s.seeds), _pm(s.best), _mean_step(s.best_step),
             " ".join(filter(None, [_pm(s.final), unfinished_note(s)])),
             *(_number(s.final_losses.get(name)) for name in other_losses(metric)),
             _number(s.images_per_s, 3)] for s in summaries]


def markdown_table(summaries: list[GroupSummary], metric: str, lower: bool, known: bool = True) -> str:
    """`known`: whether the direction is known (gan's, or --better's); else the lowest is taken as the best."""
    direction = f"{'lower' if lower else 'higher'} is better" if known else "the lowest taken as the best"
    header = ["group", "seeds", f"best {metric} ({direction})", "step of best (mean)",
              f"final {metric}", *(f"final {name}" for name in other_losses(metric)), "images/s"]
    lines = [markdown_row(header), "|" + "---|" * len(header)]
    lines += [markdown_row(row) for row in table_rows(summaries, metric)]
    return "\n".join(lines) + "\n"


# What a Markdown table's cell holds only escaped: `|` ends the cell, `\` escapes, `*` emphasises. (Not
# `_`, in most config keys: inside a word it emphasises nothing.)
MARKDOWN_SPECIAL = re.compile(r"([\\|*])")


def markdown_row(cells: list[str]) -> str:
    """`| a | b |`, each cell on one line and escaped: a group label with a `|` (a data.root of 'd|ata')
    put each value of its row under the next column."""
    return "| " + " | ".join(MARKDOWN_SPECIAL.sub(r"\\\1", one_line(cell)) for cell in cells) + " |"


def csv_text(summaries: list[GroupSummary], metric: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    losses = other_losses(metric)
    writer.writerow(["group", "seeds", f"best_{metric}_mean", f"best_{metric}_std", "best_step",
                     f"final_{metric}_mean", f"final_{metric}_std",
                     *(f"final_{name.replace('/', '_')}" for name in losses), "images_per_s", "unfinished"])
    for s in summaries:
        best, final = s.best or (None, None), s.final or (None, None)
        writer.writerow([s.label, s.seeds, *best, s.best_step, *final, *(s.final_losses.get(name) for name in losses),
                         s.images_per_s, unfinished_note(s).strip("()")])
    return buffer.getvalue()


def smooth(values: np.ndarray, weight: float = SMOOTHING) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average, debiased for its start. As there, a
    non-finite value stays as it is and is left out of the average (one NaN carried on to every
    later point, and the figure's line stopped there)."""
    smoothed, last, finite = np.empty_like(values), 0.0, 0
    for index, value in enumerate(values):
        if not math.isfinite(value):
            smoothed[index] = value
            continue
        last, finite = last * weight + (1 - weight) * value, finite + 1
        smoothed[index] = last / (1 - weight ** finite)
    return smoothed


def warn_of_runs_without(metric: str, groups: dict[str, dict[Path, dict[str, Curve]]]) -> None:
    """Name the runs that have no value of `metric` when others do, and say what that does to their
    groups' rows: taken over the group's other seeds, or left empty when no seed has one."""
    runs = [run for members in groups.values() for run in members]
    missing = [run for members in groups.values() for run, curves in members.items() if not _measured(curves, metric)]
    if not missing or len(missing) == len(runs):  # (none at all: check_metric said so)
        return
    empty = [label for label, members in groups.items() if all(run in missing for run in members)]
    partial = [label for label, members in groups.items() if label not in empty and any(run in missing for run in members)]
    effects = ([f"the best and final {metric} of {_listed(partial)} are over their other seeds"] if partial else []) + (
        [f"{_listed(empty)} {'has' if len(empty) == 1 else 'have'} none (shown as -)"] if empty else [])
    warnings.warn(f"{len(missing)} of {len(runs)} runs have no value of {metric}: {_named(missing)}; "
                  + "; ".join(effects), CompareWarning, stacklevel=2)


# The logged rate of each optimizer, and the key of its configured rate: schedules only lower a rate
# from it (a warm-up rises to it), so a logged rate above it was trained with before the config changed.
RATE_KEYS = {"lr/generator": "train.g_lr", "lr/discriminator": "train.d_lr"}


def trained_at_higher_rates(configs: dict[Path, dict[str, object]],
                            scalars: dict[Path, dict[str, Curve]]) -> dict[Path, str]:
    """Runs that trained part of the way at learning rates above those of their config.toml, by
    which they are labelled (an --on-nan rollback halves them; a resume with --set may lower them):
    run -> what it logged, in words."""
    found = {}
    for run, curves in scalars.items():
        notes = []
        for tag, key in RATE_KEYS.items():
            rate = configs.get(run, {}).get(key)
            if tag not in curves or not isinstance(rate, (int, float)) or isinstance(rate, bool):
                continue
            steps, values = curves[tag]
            above = values > rate * (1 + 1e-5)  # (the event file holds float32)
            if above.any():
                notes.append(f"{tag} up to {float(values.max()):.3g} until step {int(steps[above][-1])}, "
                             f"{key} = {rate:.3g} now")
        if notes:
            found[run] = "; ".join(notes)
    return found


def changed_by_resumes(notes: dict[Path, list[tuple[int, str]]], rates_noted: dict[Path, str]) -> dict[Path, str]:
    """Runs a resume continued with other settings (`notes`: each run's `settings_changed_at`), by which they
    are labelled though their earlier steps trained otherwise: run -> the changes, in words. Changes
    of HOW_IT_RUNS alone are none; nor are those of the learning rates of a run `rates_noted` names."""
    found = {}
    for run, changes in notes.items():
        by_step: dict[int, list[str]] = {}
        for step, change in changes:
            if not how_it_runs(change.split(" ", 1)[0]) and not (run in rates_noted
                                                            and change.startswith(tuple(RATE_KEYS.values()))):
                by_step.setdefault(step, []).append(change)
        if by_step:
            found[run] = "; ".join(f"from step {step + 1}: {'; '.join(changes)}" for step, changes in by_step.items())
    return found


def _listed(labels: list[str]) -> str:
    """Group labels in a sentence: `group 'a'`, or `groups 'a', 'b' and 2 more`."""
    quoted = [f"'{label}'" for label in labels]
    return f"group{'s' if len(labels) > 1 else ''} {first_few(quoted, MAX_NAMED)}"


def band(curves: list[Curve], smoothed: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, min, max) of the (smoothed) curves over seeds, at every step any logged: over
    the seeds that reach it with a finite value (a group's curves stopped at its shortest seed, and
    one seed's NaN made the group's mean NaN there); NaN where none does, a gap in the line."""
    steps = np.unique(np.concatenate([seed_steps for seed_steps, _ in curves]))
    stacked = np.full((len(curves), len(steps)), np.nan)
    for row, (seed_steps, values) in zip(stacked, curves):
        values = smooth(values) if smoothed else values
        values = np.where(np.isfinite(values), values, np.nan)
        reached = (steps >= seed_steps[0]) & (steps <= seed_steps[-1])
        # (between its own points; NaN next to a non-finite one: a gap at other seeds' steps there too)
        row[reached] = np.interp(steps[reached], seed_steps, values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (steps no seed has a finite value at: NaN, a gap)
        return steps, np.nanmean(stacked, 0), np.nanmin(stacked, 0), np.nanmax(stacked, 0)


LINE_STYLES = ("-", "--", ":", "-.")


def line_style(index: int, colours: list[str]) -> tuple[str, str]:
    """(colour, line style) of group `index`: the colours in turn, then again dashed, dotted, ...: a
    sweep of more groups than colours (4 presets x 3 rates) never draws two alike."""
    return colours[index % len(colours)], LINE_STYLES[index // len(colours) % len(LINE_STYLES)]


# matplotlib's own lines (its logger's) when it may not write its config folder (HOME unwritable)
MATPLOTLIB_FOLDER_LINES = ("mkdir -p failed", "%s is not a writable directory", "Matplotlib created a temporary")


@contextlib.contextmanager
def _config_folder_said_in_one_line():
    """matplotlib imported in the block, its lines on a config folder it may not write ("mkdir -p failed
    for path /.config/matplotlib", then a paragraph on a temporary folder, under HOME=/) held back and
    said as one warning of gan's."""
    import logging

    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        if str(record.msg).startswith(MATPLOTLIB_FOLDER_LINES):
            held.append(record)
            return False
        return True

    logger = logging.getLogger("matplotlib")
    logger.addFilter(hold)
    try:
        yield
    finally:
        logger.removeFilter(hold)
    if held:
        warnings.warn(f"matplotlib may not write its config folder ({one_line(held[0].getMessage())}), so it keeps its "
                      "settings and font cache in a temporary folder for this command: set MPLCONFIGDIR to a folder "
                      "you may write to keep them", stacklevel=3)


def legend_column_width(labels: list[str]) -> float:
    """Inches a legend column of these labels takes in 8-pt text: a line's handle and gap, ~0.075 a character."""
    return 0.6 + 0.075 * max(map(len, labels), default=1)


def legend_columns(labels: list[str], width: float) -> int:
    """How many columns of `labels` a legend fits across `width` inches: a sweep's labels
    (`loss.adversarial=vanilla train.g_lr=0.0001 (n=3)`) ran past both edges of the figure at two a
    panel, and whole columns of groups went unnamed."""
    return max(1, min(len(labels), int(0.95 * width / legend_column_width(labels))))


def plot(groups: dict[str, dict[Path, dict[str, Curve]]], metric: str, path: Path) -> dict[str, list[str]]:
    """One PNG: a panel per loss and one for the metric; per group a mean line and a min-max band
    over seeds, in one colour in every panel, named once in a legend below them all (a group may
    lack a panel's scalar). Returns each panel's title with the labels of its lines, and under
    "legend" the legend's."""
    # (a Figure on its own Agg canvas, not pyplot: matplotlib.use("Agg") switched the whole process's
    # backend, and a notebook's inline figures drawn after a compare showed nothing)
    with _config_folder_said_in_one_line():
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

    panels = [tag for tag in dict.fromkeys((*LOSSES, metric))  # (a loss as the metric: its panel once)
              if any(metric_tag(curves, tag) for runs in groups.values() for curves in runs.values())]
    labels = [f"{label} (n={len(runs)})" for label, runs in groups.items()]
    # inches: a panel's each, or wider for a label longer than the panels (a data.root of 200 characters)
    width = max(5.5 * max(1, len(panels)), legend_column_width(labels) / 0.95)
    columns = legend_columns(labels, width)
    rows = -(-len(groups) // columns)
    figure = Figure(figsize=(width, 4.2 + 0.2 * rows))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, max(1, len(panels)), squeeze=False)
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn: dict[str, list[str]] = {}
    legend: dict[str, Any] = {}  # a group's label (with its run count): its first line
    for axis, panel in zip(axes[0], panels):
        for index, (label, runs) in enumerate(groups.items()):
            curves = [curves[tag] for curves in runs.values() if (tag := metric_tag(curves, panel))
                      and len(curves[tag][0])]
            if not curves:
                continue
            evaluations = panel not in LOSSES  # (a few points: as they are, marked)
            steps, mean, low, high = band(curves, smoothed=not evaluations)
            colour, dashes = line_style(index, colours)
            (line,) = axis.plot(steps, mean, color=colour, linestyle=dashes, marker="o" if evaluations else None,
                                markersize=3)
            drawn.setdefault(panel, []).append(f"{label} (n={len(curves)})")
            legend.setdefault(f"{label} (n={len(runs)})", line)
            if len(curves) > 1:
                axis.fill_between(steps, low, high, color=colour, alpha=0.2, linewidth=0)
        axis.set_title(panel)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    below = 0.0
    if legend:
        figure.legend(list(legend.values()), list(legend), loc="lower center", ncol=columns, fontsize=8,
                      frameon=False)
        below = (0.22 + 0.2 * rows) / figure.get_figheight()  # the legend's share of the height
    evaluated = "" if metric in LOSSES else f", {metric} as evaluated"
    figure.suptitle(f"losses smoothed {SMOOTHING} as TensorBoard does{evaluated}; lines: mean over seeds, bands: "
                    "min-max", fontsize=9)
    figure.tight_layout(rect=(0, below, 1, 1))
    drawn["legend"] = list(legend)
    write_atomically(path, lambda temp: figure.savefig(temp, format="png", dpi=110))
    return drawn


def compare(paths: list[Path], metric: str | None, out: Path,
            better: str | None = None) -> tuple[str, list[GroupSummary]]:
    """Read, group, summarise; write compare.md, compare.csv and compare.png into `out`. `better`:
    "lower" or "higher", for a metric whose direction gan does not know (or to rank the other way).
    Returns the Markdown table and the summaries."""
    check_output_folder(out)
    configs = read_configs(find_runs(paths))
    scalars = read_runs_scalars(list(configs))
    if not scalars:
        raise CompareError(f"no run in {', '.join(repr(str(path)) for path in paths)} has readable scalars to compare")
    # Labelled among all the runs found: a group left alone when the others' runs are unreadable still
    # says what sets it apart, not "all runs".
    notes = {run: settings_changed_at(run) for run in configs}  # (each resume's changes, atop config.toml)
    labelled = group_runs(configs, {run: {change.split(" ", 1)[0] for _, change in changes}
                                    for run, changes in notes.items()}, compared=scalars)
    configs = {run: config for run, config in configs.items() if run in scalars}
    metric = check_metric(metric, default_metric(configs), scalars, better)
    lower = (better or DIRECTIONS.get(metric_name(metric), "lower")) == "lower"
    grouped = {label: {run: scalars[run] for run in members if run in scalars} for label, members in labelled.items()
               if any(run in scalars for run in members)}
    warn_of_runs_without(metric, grouped)
    planned = {run: config.get("train.steps") for run, config in configs.items()}
    seeds = {run: config.get("train.seed", 0) for run, config in configs.items()}  # (0: the default)
    scored = {run: scores_at_its_end(config, metric) for run, config in configs.items()}  # (else switched off)
    summaries = [summarise(label, members, metric, lower, planned, seeds, scored) for label, members in grouped.items()]
    table = markdown_table(summaries, metric, lower, known=better is not None or metric_name(metric) in DIRECTIONS)
    changed = trained_at_higher_rates(configs, scalars)
    if changed:
        said = "; ".join(f"'{run}': {notes}" for run, notes in list(changed.items())[:MAX_NAMED])
        more = f"; and {len(changed) - MAX_NAMED} more" if len(changed) > MAX_NAMED else ""
        warnings.warn(f"{len(changed)} run(s) trained part of the way at higher learning rates than those they are "
                      f"labelled with (an --on-nan rollback halves them; a resume with --set changes them): "
                      f"{said}{more}", CompareWarning, stacklevel=2)
        table += ("\nTrained part of the way at higher learning rates than their label's (an --on-nan rollback "
                  "halves them): " + "; ".join(f"{run.name} ({notes})" for run, notes in changed.items()) + ".\n")
    resumed = changed_by_resumes({run: notes[run] for run in configs}, changed)
    if resumed:
        said = "; ".join(f"'{run}' {notes}" for run, notes in list(resumed.items())[:MAX_NAMED])
        more = f"; and {len(resumed) - MAX_NAMED} more" if len(resumed) > MAX_NAMED else ""
        warnings.warn(f"{len(resumed)} run(s) were resumed with other settings than they trained with before, and are "
                      f"grouped by the settings they ended with: {said}{more}", CompareWarning, stacklevel=2)
        table += ("\nResumed with other settings, so labelled by those they ended with (earlier steps trained with "
                  "the others): " + "; ".join(f"{run.name} ({notes})" for run, notes in resumed.items()) + ".\n")
    not_started = sweep_runs_not_started(paths)
    if not_started:
        table += (f"\nNot compared: {len(not_started)} run(s) that sweep.toml lists have no run directory (never "
                  f"started, or failed before their first checkpoint, which removes it): "
                  f"{first_few(not_started, MAX_NAMED)}.\n")
    created = [folder for folder in (out, *out.parents) if not folder.exists()]
    out.mkdir(parents=True, exist_ok=True)
    try:
        # The figure first, the largest file: a disk that refuses it leaves the three of the last
        # comparison, not a table of these runs beside a figure of others.
        # (a stop between the three, or another compare into --out, left a figure and table of other runs
        # beside these)
        with OutputsLock(out), stops_held_to_the_end("the comparison"):
            plot(grouped, metric, out / "compare.png")
            write_text_atomically(out / "compare.csv", csv_text(summaries, metric))
            write_text_atomically(out / "compare.md", table)
    except RunDirectoryBusy as error:
        raise CompareError(str(error)) from None
    except BaseException:  # (a full disk, a stop: no empty folder of its own left behind)
        for folder in created:  # innermost first
            (folder / OutputsLock.lock_name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return table, summaries
