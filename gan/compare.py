"""`gan compare`: runs side by side, seeds pooled. Scalars come from the runs' TensorBoard event
files, read with TensorBoard's own reader. Runs whose configs differ only in `train.seed` form
one group. Per group: the best and final value of a metric as mean ± std over seeds, the step
of the best, the final losses and images/s; a figure of the curves (mean line, min-max band
over seeds; losses smoothed as TensorBoard smooths them).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gan.config import BEST_METRICS, config_from_dict, config_to_dict, flatten_config
from gan.files import write_atomically, write_text_atomically
from gan.registry import ConfigError
from gan.resolve import resolve_names

IMAGE_TO_IMAGE = ("pix2pix", "srresnet", "srgan")  # recipes that validate: val/psnr by default
SMOOTHING = 0.6  # TensorBoard's default smoothing weight
LOSSES = ("loss/d", "loss/g")

Curve = tuple[np.ndarray, np.ndarray]  # steps, values


class CompareError(ValueError):
    """Nothing to compare, or a run that cannot be read; the message names it."""


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories (with a config.toml) named directly or found one level inside a folder (a sweep)."""
    runs = []
    for path in paths:
        if (path / "config.toml").is_file():
            runs.append(path)
        elif path.is_dir():
            inside = sorted(child for child in path.iterdir() if (child / "config.toml").is_file())
            if not inside:
                raise CompareError(f"'{path}' is neither a run directory (no config.toml) nor a folder of runs")
            runs += inside
        else:
            raise CompareError(f"'{path}' does not exist")
    return list(dict.fromkeys(runs))


def read_scalars(run_dir: Path) -> dict[str, Curve]:
    """Every scalar tag of the run's event files as (steps, values), in step order."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={SCALARS: 0})  # 0: keep every point
    accumulator.Reload()
    curves = {}
    for tag in accumulator.Tags()["scalars"]:
        events = sorted(accumulator.Scalars(tag), key=lambda event: event.step)
        curves[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events], dtype=np.float64))
    return curves


def read_configs(runs: list[Path]) -> dict[Path, dict[str, object]]:
    """Each run's config.toml with every default filled in (dataclass keys and network arguments),
    flattened to dotted keys: a run written before a key existed then agrees with one that spells
    out its default. A config this version cannot read whole (a key since removed) is taken as written."""
    configs = {}
    for run in runs:
        path = run / "config.toml"
        try:
            written = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise CompareError(f"cannot read '{path}': {error}") from error
        try:
            configs[run] = flatten_config(config_to_dict(resolve_names(config_from_dict(written))))
        except ConfigError:
            configs[run] = flatten_config(written)
    return configs


def _as_written(value: object) -> str:
    """A config value as a label shows it: as in TOML for booleans and the empty string."""
    if isinstance(value, bool):
        return str(value).lower()
    return '""' if value == "" else str(value)


def group_runs(configs: dict[Path, dict[str, object]]) -> dict[str, list[Path]]:
    """Runs (`read_configs`) grouped by their configs without `train.seed`; each group named by the
    keys that set it apart from the others (`adversarial=hinge`), or "all runs" when all agree."""
    keys = sorted({key for config in configs.values() for key in config} - {"train.seed"})
    differing = [key for key in keys if len({repr(config.get(key)) for config in configs.values()}) > 1]
    short = {key: key.rsplit(".", 1)[-1] for key in differing}
    short = {key: name if list(short.values()).count(name) == 1 else key for key, name in short.items()}
    groups: dict[str, list[Path]] = {}
    for run, config in configs.items():
        label = " ".join(f"{short[key]}={_as_written(config.get(key))}" for key in differing) or "all runs"
        groups.setdefault(label, []).append(run)
    return groups


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


@dataclass
class GroupSummary:
    label: str
    seeds: int
    best: tuple[float, float | None] | None  # mean, std (None for one seed) over seeds of each seed's best
    best_step: float | None  # mean over seeds of the step of each seed's best
    final: tuple[float, float | None] | None
    final_losses: dict[str, float]  # mean over seeds of the last logged value
    images_per_s: float | None  # mean over seeds of each run's mean


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample std; no std for one seed (it is undefined, not 0)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def summarise(label: str, runs: dict[Path, dict[str, Curve]], metric: str, lower: bool) -> GroupSummary:
    bests, best_steps, finals = [], [], []
    for curves in runs.values():
        tag = metric_tag(curves, metric)
        if tag is None or not len(curves[tag][1]):
            continue
        steps, values = curves[tag]
        index = int(np.nanargmin(values) if lower else np.nanargmax(values))
        bests.append(float(values[index]))
        best_steps.append(float(steps[index]))
        finals.append(float(values[-1]))
    losses = {}
    for name in LOSSES:
        last = [float(curves[name][1][-1]) for curves in runs.values() if name in curves and len(curves[name][1])]
        if last:
            losses[name] = statistics.fmean(last)
    speeds = [float(np.mean(curves["perf/images_per_s"][1])) for curves in runs.values()
              if "perf/images_per_s" in curves and len(curves["perf/images_per_s"][1])]
    return GroupSummary(label, len(runs), _mean_std(bests) if bests else None,
                        statistics.fmean(best_steps) if best_steps else None, _mean_std(finals) if finals else None,
                        losses, statistics.fmean(speeds) if speeds else None)


def _pm(value: tuple[float, float | None] | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if value[1] is None:
        return f"{value[0]:.{digits}g} (one seed)"
    return f"{value[0]:.{digits}g} ± {value[1]:.2g}"


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def table_rows(summaries: list[GroupSummary]) -> list[list[str]]:
    return [[s.label, str(s.seeds), _pm(s.best), "-" if s.best_step is None else str(round(s.best_step)), _pm(s.final),
             _number(s.final_losses.get("loss/d")), _number(s.final_losses.get("loss/g")),
             _number(s.images_per_s, 3)] for s in summaries]


def markdown_table(summaries: list[GroupSummary], metric: str, lower: bool) -> str:
    header = ["group", "seeds", f"best {metric} ({'lower' if lower else 'higher'} is better)", "step of best (mean)",
              f"final {metric}", "final loss/d", "final loss/g", "images/s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(summaries)]
    return "\n".join(lines) + "\n"


def csv_text(summaries: list[GroupSummary], metric: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["group", "seeds", f"best_{metric}_mean", f"best_{metric}_std", "best_step",
                     f"final_{metric}_mean", f"final_{metric}_std", "final_loss_d", "final_loss_g", "images_per_s"])
    for s in summaries:
        best, final = s.best or (None, None), s.final or (None, None)
        writer.writerow([s.label, s.seeds, *best, s.best_step, *final, s.final_losses.get("loss/d"),
                         s.final_losses.get("loss/g"), s.images_per_s])
    return buffer.getvalue()


def smooth(values: np.ndarray, weight: float = SMOOTHING) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average, debiased for its start."""
    smoothed, last = np.empty_like(values), 0.0
    for index, value in enumerate(values):
        last = last * weight + (1 - weight) * value
        smoothed[index] = last / (1 - weight ** (index + 1))
    return smoothed


def band(curves: list[Curve], smoothed: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, min, max) of the (smoothed) curves over seeds, on the steps all of them reach."""
    last_common = min(steps[-1] for steps, _ in curves)
    steps = curves[0][0][curves[0][0] <= last_common]
    stacked = np.stack([np.interp(steps, s, smooth(v) if smoothed else v) for s, v in curves])
    return steps, stacked.mean(0), stacked.min(0), stacked.max(0)


def plot(groups: dict[str, dict[Path, dict[str, Curve]]], metric: str, path: Path) -> dict[str, list[str]]:
    """One PNG: a panel per loss and one for the metric; per group a mean line and a min-max band
    over seeds. Returns each panel's title with the labels of its lines."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    panels = [tag for tag in (*LOSSES, metric)
              if any(metric_tag(curves, tag) for runs in groups.values() for curves in runs.values())]
    figure, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.5 * max(1, len(panels)), 4.2), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn: dict[str, list[str]] = {}
    for axis, panel in zip(axes[0], panels):
        for index, (label, runs) in enumerate(groups.items()):
            curves = [curves[tag] for curves in runs.values() if (tag := metric_tag(curves, panel))
                      and len(curves[tag][0])]
            if not curves:
                continue
            steps, mean, low, high = band(curves, smoothed=panel != metric)  # a few evaluations: as they are
            colour = colours[index % len(colours)]
            axis.plot(steps, mean, color=colour, label=f"{label} (n={len(curves)})",
                      marker="o" if panel == metric else None, markersize=3)
            drawn.setdefault(panel, []).append(f"{label} (n={len(curves)})")
            if len(curves) > 1:
                axis.fill_between(steps, low, high, color=colour, alpha=0.2, linewidth=0)
        axis.set_title(panel)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    if panels:
        axes[0][0].legend(fontsize=8)
    figure.suptitle(f"losses smoothed {SMOOTHING} as TensorBoard does, {metric} as evaluated; lines: mean over "
                    f"seeds, bands: min-max", fontsize=9)
    figure.tight_layout()
    write_atomically(path, lambda temp: figure.savefig(temp, format="png", dpi=110))
    plt.close(figure)
    return drawn


def compare(paths: list[Path], metric: str | None, out: Path) -> tuple[str, list[GroupSummary]]:
    """Read, group, summarise; write compare.md, compare.csv and compare.png into `out`.
    Returns the Markdown table and the summaries."""
    configs = read_configs(find_runs(paths))
    metric = metric or default_metric(configs)
    lower = BEST_METRICS.get(metric, "lower") == "lower"
    grouped = {label: {run: read_scalars(run) for run in members} for label, members in group_runs(configs).items()}
    summaries = [summarise(label, members, metric, lower) for label, members in grouped.items()]
    table = markdown_table(summaries, metric, lower)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out / "compare.md", table)
    write_text_atomically(out / "compare.csv", csv_text(summaries, metric))
    plot(grouped, metric, out / "compare.png")
    return table, summaries
