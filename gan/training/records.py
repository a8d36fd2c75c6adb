"""What a run keeps beside its checkpoints, and how a resume treats it: metrics.jsonl (the
generative metrics' rows), best.pt (`train.keep_best`), and gan eval's results and the preview
grids of steps a resume trains again, set aside."""

from __future__ import annotations

import glob
import json
import os
import re
import tomllib
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from gan.core.checkpoint import BEST_NAME, COUNTED, MEASURED_THROUGH, METRICS_RECORD, BestCheckpoint
from gan.core.config import BEST_METRICS, Config, config_to_dict, flatten_config, toml_text
from gan.core.files import WriteError, write_atomically
from gan.core.inert import TRANSLATION_METRICS
from gan.core.progress import print_above
from gan.core.registry import ConfigError
from gan.core.typecheck import shown
from gan.core.wording import first_few
from gan.data import evaluation_signature, reference_data
from gan.metrics.generative import GenerativeEvaluator, score_generator
from gan.metrics.inception import (
    NOT_IN_TRAINING,
    InceptionWeightsDamaged,
    damaged_weights_advice,
    weights_file_digest,
    weights_setting,
)
from gan.recipes.base import Recipe
from gan.training.state import training_state


def best_checkpoint_to_keep(config: Config, recipe: Recipe, evaluator: GenerativeEvaluator | None,
                     run_dir: Path) -> BestCheckpoint | None:
    """What `train.keep_best` follows, checked against what the run computes: a metric it does not
    compute (metrics switched off for a smoke run, say) is warned about once, and no best.pt kept."""
    metric = config.train.keep_best
    if not metric:
        return None
    if metric.startswith("val/"):
        missing = None if config.log.eval_every and hasattr(recipe, "validation_metrics") else (
            f"it follows validation, which needs log.eval_every > 0 (now {config.log.eval_every}) and a recipe "
            f"that validates (pix2pix, srresnet, srgan, cyclegan; this is {config.recipe})")
        family = re.sub(r"_(AtoB|BtoA)$", "", metric.removeprefix("val/"))
        if not missing and family in TRANSLATION_METRICS and family not in config.metrics.names:
            missing = (f"validation scores translations by the metrics of metrics.names, and "
                       f"{shown(config.metrics.names)} leaves out '{family}'")
    else:
        family = {"precision": "pr", "recall": "pr", "swd/mean": "swd"}.get(metric, metric)
        computed = evaluator.names if evaluator else []
        if family in computed:
            missing = None
        elif not hasattr(recipe, "evaluation_generator"):  # ([metrics] is for unconditional recipes)
            missing = (f"'{metric}' is a generative metric of unconditional (dcgan) runs; a {config.recipe} run "
                       "keeps its best by a metric of its validation (train.keep_best = val/swd, val/psnr, "
                       "val/cycle_l1, ...) with log.eval_every > 0")
        else:
            missing = (f"it needs [metrics] to compute '{family}' (metrics.every > 0 and '{family}' in metrics.names" +
                       ("" if family == "swd" else ", with the Inception weights") +
                       f"); this run computes {', '.join(computed) or 'no generative metrics'}")
    if missing:
        warnings.warn(f"train.keep_best = '{metric}': no best.pt is kept: {missing}", stacklevel=3)
        return None
    return BestCheckpoint(run_dir, metric, BEST_METRICS[metric],
                          specs={name: spec.to_dict() for name, spec in recipe.specs.items()})


def drop_set_aside_copies(path: Path) -> None:
    """Remove the `<name>.discarded[-N]` copies beside `path` that hold its very bytes: a resume after a
    kill -9 sets a step's grids aside, then, exact, writes them again (each kill added a copy).
    Copies that differ (the branch an --on-nan rollback left) are kept."""
    copies = [copy for copy in path.parent.glob(f"{glob.escape(path.stem)}.discarded*{path.suffix}")
              if re.fullmatch(rf"{re.escape(path.stem)}\.discarded(-\d+)?{re.escape(path.suffix)}", copy.name)]
    if copies:
        written = path.read_bytes()
        for copy in copies:
            if copy.stat().st_size == len(written) and copy.read_bytes() == written:
                copy.unlink(missing_ok=True)


def drop_identical_discarded_best(run_dir: Path, step: int, kept: dict) -> None:
    """Remove the best-discarded-<step>[-N] checkpoints (and their .json) whose weights and score are
    those of `kept`, the best.pt state just saved at `step`: what an exact resume after a kill -9
    keeps again."""
    from gan.core.checkpoint import CheckpointError, load_checkpoint

    for copy in sorted(run_dir.glob(f"best-discarded-{step:08d}*.pt")):
        try:
            aside = load_checkpoint(copy)
        except CheckpointError:
            continue
        networks = aside.get("networks", {})
        if aside.get("best") == kept.get("best") and networks.keys() == kept["networks"].keys() and all(
                weights.keys() == kept["networks"][name].keys()
                and all(torch.equal(weights[key], kept["networks"][name][key]) for key in weights)
                for name, weights in networks.items()):
            copy.unlink(missing_ok=True)
            copy.with_suffix(".json").unlink(missing_ok=True)


def save_best(best: BestCheckpoint, recipe: Recipe, config: Config, step: int, samples_seen: int,
              value: float, evaluated_on: str | None = None) -> None:
    """best.pt for a new best value, measured on the images of signature `evaluated_on`; a write that
    fails (disk full) is warned about, training goes on."""
    state = training_state(recipe, config, step, samples_seen)
    try:
        best.save(state, step, value, evaluated_on)
        drop_identical_discarded_best(best.run_dir, step, {**state, "best": best.record(value, evaluated_on)})
    except WriteError as error:
        kept = ("best.pt holds this new best, best.json still the one before" if best.step == step
                else "best.pt stays at its previous best" if best.value is not None else "no best.pt is kept")
        warnings.warn(f"step {step}: {error}; {kept}; training goes on", stacklevel=2)
        return
    print_above(f"step {step}: new best {best.metric} {value:.4g}, kept as '{best.run_dir / BEST_NAME}'")


def generative_evaluator(config: Config, device: torch.device) -> GenerativeEvaluator | None:
    """The evaluator `[metrics]` asks for, or None when off (or when no metric it names can run here)."""
    metrics = config.metrics
    if not metrics.every:
        return None
    reference = reference_data(config.data, metrics.root) if metrics.root else config.data
    try:
        # weights the config names must be there; without a name, FID/KID are skipped with a warning
        evaluator = GenerativeEvaluator(reference, metrics.names, metrics.num_samples, device,
                                        metrics.inception_weights, metrics.cache_dir,
                                        require_weights=bool(metrics.inception_weights),
                                        root_key="metrics.root" if metrics.root else "data.root",
                                        leave_out=NOT_IN_TRAINING)
    except ConfigError:  # (of the reference statistics' cache folder: no home folder, say) as it is
        raise
    except (ValueError, FileNotFoundError) as error:  # a weights file missing, a folder, damaged, another's
        advice = (f"; {damaged_weights_advice(metrics.inception_weights)}" if isinstance(error, InceptionWeightsDamaged)
                  else "")
        raise ConfigError(f"{weights_setting(metrics.inception_weights)}: {error}{advice}") from None
    return evaluator if evaluator.names else None


def drop_metrics_after(path: Path, step: int, say: Callable[[str], None]) -> None:
    """Drop the rows of steps after `step` from metrics.jsonl: a resume from `step` scores them anew.
    A line that is not a row is kept as it is; a last one cut short (no newline: a write a stop cut,
    or an edit) is said, as what follows it is this resume's."""
    if not path.is_file():
        return
    kept, dropped, torn = [], 0, False
    lines = path.read_bytes().splitlines(keepends=True)  # bytes: a damaged line is kept as it is
    for index, line in enumerate(lines):
        try:
            row = json.loads(line)
            row_step = row.get("step")
        except (ValueError, AttributeError, RecursionError):  # (UnicodeDecodeError is a ValueError; nested deep)
            row, row_step = None, None
        if isinstance(row_step, (int, float)) and not isinstance(row_step, bool) and row_step > step:
            dropped += 1
        else:
            torn = torn or (row is None and index == len(lines) - 1 and not line.endswith(b"\n"))
            kept.append(line)
    if dropped:
        write_atomically(path, lambda temp: temp.write_bytes(b"".join(kept)))
        say(f"{path.name}: dropped {dropped} row(s) past step {step}, the steps this resume trains again")
    if torn:
        say(f"{path.name}: its last line is cut short before its end ({lines[-1][:40]!r}...): it is kept as it "
            "is, and this resume's rows go on the lines after it")


# gan eval's default results in a run directory, and the preview grids in samples/, by the step
# of the checkpoint they score or show (8 digits, more past step 99,999,999)
EVALUATION_FILE = re.compile(r"(?:metrics-(\d{8,})(?:-live)?\.json|eval-.+-(\d{8,})\.(?:csv|json))")
PREVIEW_FILE = re.compile(r"(\d{8,})-[^.]+\.png")


# The metrics best.pt may be kept by that are measured through Inception-v3 (val/fid_A and the like too).
THROUGH_INCEPTION = re.compile(r"(val/)?(fid|kid|precision|recall)(?![a-z])")


def evaluation_images(best: BestCheckpoint, config: Config, recipe: Recipe,
                      evaluator: GenerativeEvaluator | None) -> tuple[str, str]:
    """The signature of what best.pt's metric is measured on (the run's evaluation set for a val/
    metric, the metrics' real images for the others; and, for a metric measured through Inception-v3,
    the weights' digest after MEASURED_THROUGH), and what names the images in a message."""
    if best.metric.startswith("val/"):
        validated_on = getattr(recipe, "evaluation_images", None)  # (optional: a recipe of one's own may not say)
        signature = evaluation_signature(validated_on.get()) if validated_on is not None else ""
        images = "the evaluation images"
    else:
        assert evaluator is not None  # (a generative metric's best.pt is kept only with an evaluator)
        signature = f"{evaluation_signature(evaluator.dataset())}{COUNTED}{evaluator.reference_size}"
        images = f"the real images of {'metrics.root' if config.metrics.root else 'data.root'}"
    if THROUGH_INCEPTION.match(best.metric):
        digest = (evaluator.inception_digest if evaluator is not None and not best.metric.startswith("val/")
                  else "") or weights_file_digest(config.metrics.inception_weights)
        signature += f"{MEASURED_THROUGH}{digest}"
    return signature, images


def lacks_settings(path: Path, config: Config) -> bool:
    """Whether the run's config.toml at `path` is gone, or lacks some of `config`'s settings (cut short:
    the resume read them from its checkpoint)."""
    try:
        written = flatten_config(toml_text(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True
    return not set(flatten_config(config_to_dict(config))) <= set(written)


def set_aside_records_after(run_dir: Path, step: int, say: Callable[[str], None]) -> None:
    """Rename gan eval's results of checkpoints past `step`, and the preview grids of steps past it,
    to `<name>.discarded[-N]<suffix>`: this resume trains those steps again, and a file left under
    its name would claim to score or show the new run at its step."""
    for folder, pattern, what in ((run_dir, EVALUATION_FILE, "gan eval results"),
                                  (run_dir / "samples", PREVIEW_FILE, "preview grids")):
        stale = []
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            found = pattern.fullmatch(path.name)
            if found and int(next(group for group in found.groups() if group)) > step and path.is_file():
                aside, taken = path.with_name(f"{path.stem}.discarded{path.suffix}"), 0
                while aside.exists():  # an earlier resume may have set aside a file of the same name
                    taken += 1
                    aside = path.with_name(f"{path.stem}.discarded-{taken}{path.suffix}")
                os.replace(path, aside)
                stale.append(path.name)
        if stale:
            say(f"{what} of steps past {step}, which this resume trains again, set aside as <name>.discarded: "
                f"{first_few(stale, 4)}")


def log_generative_metrics(evaluator: GenerativeEvaluator, recipe: Recipe, writer: Any, run_dir: Path,
                            step: int) -> dict[str, float]:
    """Scores of the (EMA) generator to metrics.jsonl, TensorBoard (`metrics/...`) and the terminal."""
    scores = score_generator(evaluator, recipe.evaluation_generator())
    path = run_dir / METRICS_RECORD  # rewritten whole, atomically: never a torn line
    line = json.dumps({"step": step, "num_images": evaluator.reference_size, **scores}) + "\n"
    try:
        before = path.read_bytes() if path.exists() else b""
        if before and not before.endswith(b"\n"):  # a last line cut short (an edit): keep the new row on its own
            before += b"\n"
        write_atomically(path, lambda temp: temp.write_bytes(before + line.encode()))
    except WriteError as error:  # (the step in it: each failure is said, not only the first of its words)
        # (an event log that failed too keeps them until the disk has room: they are not in it yet)
        where = ("the event log and the line below" if getattr(writer, "alive", True) else
                 "the line below, and kept for the event log until the disk has room")
        warnings.warn(f"step {step}: {error}; its scores are in {where}, not in {METRICS_RECORD}; training goes on",
                      stacklevel=2)
    for name, value in scores.items():  # (last: a failure above wrote no event for the resume to repeat)
        writer.add_scalar(f"metrics/{name}", value, step)
    fewer = (f"  ({evaluator.reference_size} images: {evaluator.why_fewer()}, "
             f"not the {evaluator.count} of metrics.num_samples)" if evaluator.reference_size < evaluator.count else "")
    print_above(f"step {step}: " + "  ".join(f"{name} {value:.4g}" for name, value in scores.items()) + fewer)
    return scores
