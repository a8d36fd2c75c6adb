"""What stops a run: a diverged loss or weight, or a side task that failed after training began.

Both are raised after the loop has kept what it can (the last good checkpoint, or one of the step),
and say what was kept and how to go on.
"""

from __future__ import annotations

import math
from pathlib import Path

from gan.core.processes import gan_launcher

# The side tasks that write a step's outputs, in the order they run (each may use the scores before it).
OUTPUT_TASKS = ("previews", "validation", "generative metrics", "the best checkpoint")
# The periodic side tasks of the loop, and the setting that switches each off (logging and previews have none).
SIDE_TASKS = {"logging": None, "previews": None, "validation": "log.eval_every=0",
              "generative metrics": "metrics.every=0", "the best checkpoint": 'train.keep_best=""',
              "reading the training data": None}


LOWEST_HEALTHY_BOUND = 10  # a train.divergence_bound below it stops healthy runs (a D probability is 0..1)


class NonFiniteLossError(RuntimeError):
    """A logged value or a weight became NaN or infinite, or its magnitude passed
    `train.divergence_bound`; the run stops (or rolls back), keeping the last good checkpoint."""

    def __init__(self, step: int, term: str, checkpoint: Path | None, value: float = float("nan"),
                 bound: float = float("inf")):
        kept = f"the last good checkpoint is '{checkpoint}'" if checkpoint else "no checkpoint was written yet"
        if math.isfinite(value):
            what = (f"reached {_beyond(value, bound)} at step {step}, beyond train.divergence_bound ({bound:g}): the "
                    "run diverged")
        else:
            what = f"became NaN or infinite at step {step}"
        advice = ("Lower the learning rates (or a loss weight or penalty set far above its default: loss.*_weight, "
                  "loss.r1_gamma), or check the data.")
        if bound < LOWEST_HEALTHY_BOUND and math.isfinite(value):  # (a typo: no run trains under it; a NaN is not its)
            advice = (f"train.divergence_bound {bound:g} is below what healthy runs log (D's probabilities up to 1, "
                      "losses from about 1): raise it (its default is 1e6).")
        super().__init__(f"'{term}' {what}; stopping ({kept}). {advice}")
        self.step, self.term, self.checkpoint = step, term, checkpoint
        self.what = f"'{term}' {what}"  # (without what follows: a rollback goes on)


def first_line_of(error: Exception) -> str:
    """The line that says what went wrong: the first, or for an error re-raised from a DataLoader
    worker ("Caught ImageReadError in DataLoader worker process 1. Original Traceback ...") the
    worker's own message, its last line without the exception's class name."""
    lines = str(error).strip().splitlines() or [""]
    if lines[0].startswith("Caught ") and "Original Traceback" in str(error):
        _, separator, message = lines[-1].partition(": ")
        return message if separator else lines[-1]
    return lines[0]


class SideTaskError(RuntimeError):
    """A periodic side task (previews, validation, metrics, best.pt, TensorBoard logging) failed
    after training began; the loop wrote a checkpoint of the step first, so nothing is lost.
    `explained`: (what went wrong, what to do), said instead of the error's own words and "Fix the
    cause" where the loop knows better (a system limit the data loader ran into)."""

    def __init__(self, task: str, step: int, error: Exception, checkpoint: Path | None, run_dir: Path,
                 save_error: Exception | None = None, main: bool = True, processes: int = 1,
                 explained: tuple[str, str] | None = None):
        cause, fix = explained or (f"{type(error).__name__}: {first_line_of(error)[:300]}", "Fix the cause")
        if not main:  # another rank of a torchrun run: rank 0 alone writes checkpoints, and says which is kept
            super().__init__(f"{task} failed at step {step} in this process ({cause}); "
                             f"the run's checkpoints are rank 0's to write, and its own line says which is kept. "
                             f"{fix}, then resume '{run_dir}' as that line says")
            return
        if save_error is None and checkpoint is None:  # at step 0: nothing trained, nothing to keep
            kept = f"training stopped at step {step}, before any checkpoint, with nothing trained to keep"
        elif save_error is None:
            kept = f"training stopped with a checkpoint of step {step} ('{checkpoint}'), so nothing is lost" + (
                f" (the resume first does {task if task.startswith('the ') else 'the ' + task} of step {step}, and "
                "what follows it)" if task in OUTPUT_TASKS
                else "")
        elif checkpoint is not None:
            kept = f"no checkpoint could be written ({save_error}); '{checkpoint}' is kept"
        else:
            kept = f"no checkpoint could be written ({save_error}), and none was written before"
        launcher = gan_launcher(processes)  # (a plain `gan train --resume` would go on in one process)
        then = (f"{launcher} train --resume {run_dir}" if checkpoint is not None
                else f"start the run again with {launcher} train CONFIG")
        switch = f" (or switch it off: {SIDE_TASKS[task]})" if SIDE_TASKS[task] else ""
        super().__init__(f"{task} failed at step {step} ({cause}); {kept}. {fix}{switch}, then: {then}")


def _beyond(value: float, bound: float) -> str:
    """`value` with the digits it takes to read as beyond `bound` (1.00004e+06, not 1e+06)."""
    digits = 3
    while digits < 17 and float(f"{abs(value):.{digits}g}") <= bound:
        digits += 1
    return f"{value:.{digits}g}"
