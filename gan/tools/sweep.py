"""`gan sweep`: a grid of config overrides times seeds, trained as runs inside one folder.

Each run is a `gan train CONFIG --set ... --run-dir DIR/<name>` process, named by its
overrides (`00003-adversarial=hinge-seed=1`). `DIR/sweep.toml` records what was asked; the
same command again skips finished runs and resumes interrupted ones (`--run-dir` starts or
resumes, and the run-directory lock keeps two sweeps from writing one run). `--jobs J` runs
J at once, each on its own GPU where there are several; `--print-commands` prints the
`gan train` lines instead, for a cluster's job array.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

import torch

import gan
from gan.core.checkpoint import checkpoints_by_content, holds_a_run, list_checkpoints, stored_step, trained_config
from gan.core.config import (
    Config,
    check_config_file,
    config_to_dict,
    flatten_config,
    key_annotation,
    parse_value,
    read_config,
    toml_value,
)
from gan.core.files import (
    MAX_NAME_BYTES,
    SWEEP_LOCK_NAME,
    RunDirectoryBusy,
    SweepLock,
    check_utf8_path,
    name_cut,
    write_text_atomically,
)
from gan.core.inert import how_it_runs, inert_settings
from gan.core.processes import STOP_SIGNALS, leave_the_terminal_on_hangup, stop_with_parent, usable_cpus
from gan.core.progress import format_duration
from gan.core.registry import ConfigError
from gan.core.typecheck import SHOWN_CHARACTERS, coerce, shown
from gan.core.wording import counted, first_few, printable, undecoded
from gan.data import check_data_folders
from gan.recipes import RECIPES
from gan.training.loop import side_tasks_left
from gan.training.resolve import check_networks, ignored_keys, load_config
from gan.training.run_dir import rollback_halvings, run_name_within

MANIFEST = "sweep.toml"
# A grid of more runs than this is more likely typed wrong (ten keys of four values is a million
# runs) than meant: refused unless --max-runs allows it (docs/comparing-runs.md).
MAX_RUNS = 1000
# A grid value's label in its runs' names is cut to this many characters (names must fit in 255 bytes).
LABEL_CHARACTERS = 40
SWEEP_RUN_NAME = re.compile(r"\d{5}-[A-Za-z0-9._+=-]{1,249}")  # what `expand` names a run: its number, then labels
# Set in each run's environment to the sweep's pid: the run asks to be stopped when the sweep dies.
SWEEP_PID_VARIABLE = "GAN_SWEEP_PID"


@dataclass(frozen=True)
class SweepRun:
    name: str  # the run directory's name: number, then the overrides that differ
    overrides: tuple[str, ...]  # KEY=VALUE, after the sweep's own --set ones


def parse_grid(option: str) -> tuple[str, list[str]]:
    """`KEY=V1,V2,...` -> (KEY, [V1, V2, ...]). A value in double quotes may hold commas or be
    empty: `loss.diffaugment="","color,translation,cutout"`; an unquoted empty value is a typo."""
    key, separator, values = option.partition("=")
    listed = _split_values(values)
    usage = f"--grid expects KEY=V1,V2,... (for example loss.adversarial=hinge,lsgan), got '{option}'"
    if listed is None or not separator or not key.strip() or not all(value or quoted for value, quoted in listed):
        raise ConfigError(usage)
    key, listed = key.strip(), [value for value, _ in listed]
    if len(set(listed)) != len(listed):
        raise ConfigError(f"--grid {key}: a value is listed twice in '{values}'")
    _refuse_equal_values(key, listed)
    return key, listed


def _refuse_equal_values(key: str, listed: list[str]) -> None:
    """Two values spelled differently that the config reads as one (`1e-4` and `0.0001`) would
    make two identical runs. Each is read as the key's type first, so a value of the wrong type
    (`train.steps=2.0`) is refused as such, not as the same as another."""
    annotation = key_annotation(key)
    if dataclasses.is_dataclass(annotation):  # (a whole section: its keys are what a grid varies)
        example = dataclasses.fields(annotation)[0].name
        raise ConfigError(f"--grid {key}: '{key}' is a section; grid one of its keys, e.g. --grid {key}.{example}=...")
    cut = [value for value in listed if value.startswith("[") != value.endswith("]")]
    if cut and typing.get_origin(annotation) is list:  # (`[1,2],[3]`: the comma inside a list split it too)
        raise ConfigError(f"--grid {key}: '{cut[0]}' is part of a list, as --grid splits its values at every comma "
                          f"outside quotes; quote each list whole in double quotes, its strings in single ones: "
                          f"--grid \"{key}={_lists_quoted(annotation)}\"")
    try:
        parsed = [parse_value(key, value, "--grid") for value in listed]
    except ConfigError as error:  # (a type error names the key alone: it read as the config file's)
        message = str(error) if str(error).startswith("--grid") else f"--grid {error}"
        if typing.get_origin(annotation) is list and "; " in message:  # (--set's spelling: --grid's quotes differ)
            message = (f"{message.split('; ')[0]}; --grid takes off a value's double quotes: quote each list whole in "
                       f"double quotes, its strings in single ones: --grid \"{key}={_lists_quoted(annotation)}\"")
        raise ConfigError(message) from None
    if annotation is not None:
        parsed = [coerce(value, annotation, f"--grid {key}") for value in parsed]
    for later, value in enumerate(parsed):
        for earlier in range(later):
            if parsed[earlier] == value and isinstance(parsed[earlier], bool) == isinstance(value, bool):
                raise ConfigError(f"--grid {key}: {listed[earlier]} and {listed[later]} are the same value "
                                  f"({value!r}), which would make two identical runs")


def _lists_quoted(annotation: object) -> str:
    """An example of two lists of the key's kind for a --grid in a shell's double quotes: each list in
    escaped double quotes, strings in single ones (`\\"['a']\\",\\"['a', 'b']\\"`)."""
    strings = typing.get_args(annotation) == (str,)
    lists = ["['a']", "['a', 'b']"] if strings else ["[1, 2]", "[3]"]
    return ",".join(f'\\"{text}\\"' for text in lists)


def check_sets(sets: list[str], grid: list[tuple[str, list[str]]], seeds: int) -> None:
    """A `--set` of a key the grid varies (or of train.seed with --seeds) would be overridden in
    every run, silently: refused, naming the key."""
    varied = {key: f"--grid {key}" for key, _ in grid}
    if seeds > 1:
        varied["train.seed"] = f"--seeds {seeds}"
    for assignment in sets:
        key = assignment.partition("=")[0].strip()
        if key in varied:
            raise ConfigError(f"--set {assignment} and {varied[key]} both set {key}: each run takes the "
                              f"{varied[key].split()[0]} value, so the --set would change nothing; drop one")


def sweep_shape(grid: list[tuple[str, list[str]]], seeds: int) -> str:
    """The size of a sweep in words: `2 values of loss.adversarial x 3 seeds`."""
    parts = [f"{len(values)} values of {key}" for key, values in grid] + ([f"{seeds} seeds"] if seeds > 1 else [])
    return " x ".join(parts) or "no grid"


def check_size(grid: list[tuple[str, list[str]]], seeds: int, max_runs: int = MAX_RUNS) -> int:
    """The number of runs the sweep makes; ConfigError above `max_runs`, before any is listed."""
    count = math.prod(len(values) for _, values in grid) * seeds
    if count > max_runs:
        raise ConfigError(f"this sweep is {count} runs ({sweep_shape(grid, seeds)}), more than --max-runs "
                          f"{max_runs}: check the grid, or pass --max-runs {count} to run them all")
    return count


def _split_values(text: str) -> list[tuple[str, bool]] | None:
    """Comma-separated (value, was quoted) pairs, commas inside double quotes kept; None for an unclosed quote."""
    values, current, quoted, was_quoted = [], "", False, False
    for char in text + ",":
        if char == '"':
            quoted, was_quoted = not quoted, True
        elif char == "," and not quoted:
            values.append((current.strip(), was_quoted))
            current, was_quoted = "", False
        else:
            current += char
    return None if quoted else values


def _label(value: str, limit: int | None = LABEL_CHARACTERS) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", value)[:limit] if value else "none"


def _labels(values: list[str]) -> dict[str, str]:
    """Each of a grid key's values -> its label in the runs' names, `_label`'s where that tells it from the
    key's other values. Values cut alike (paths that differ past their 40th character, as one run's
    checkpoints do: their runs' names differed in their number alone) are labelled by their ends
    instead (`..` and the last 38 characters), and those whose ends are alike too by their start and 8 hex
    digits of the value. (A label that tells its value apart is kept: a sweep begun with it goes on.)"""
    labels = {value: _label(value) for value in values}
    for value in _alike(labels):
        if len(_label(value, None)) > LABEL_CHARACTERS:
            labels[value] = ".." + _label(value, None)[2 - LABEL_CHARACTERS:]
    for value in _alike(labels):
        labels[value] = f"{_label(value, LABEL_CHARACTERS - 9)}-{hashlib.sha256(os.fsencode(value)).hexdigest()[:8]}"
    return labels


def _alike(labels: dict[str, str]) -> list[str]:
    """The values whose label another value's label equals."""
    counts = collections.Counter(labels.values())
    return [value for value, label in labels.items() if counts[label] > 1]


def expand(grid: list[tuple[str, list[str]]], seeds: int, max_runs: int = MAX_RUNS) -> list[SweepRun]:
    """Every combination of the grid's values (the first key varies slowest), each with seeds
    0..seeds-1 (`train.seed`; left to the config when `seeds` is 1); at most `max_runs` of them."""
    check_size(grid, seeds, max_runs)
    keys = [key for key, _ in grid]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"--grid names a key twice: {', '.join(sorted(k for k in keys if keys.count(k) > 1))}")
    if "train.seed" in keys and seeds > 1:
        raise ConfigError("--grid train.seed and --seeds both set the seed: use one")
    short = {key: key.rsplit(".", 1)[-1] for key in keys}  # the full key where two would read alike
    short = {key: name if list(short.values()).count(name) == 1 else key for key, name in short.items()}
    value_labels = {key: _labels(values) for key, values in grid}
    runs = []
    for values in itertools.product(*(values for _, values in grid)):
        for seed in range(seeds):
            overrides = [f"{key}={value}" for key, value in zip(keys, values)]
            labels = [f"{short[key]}={value_labels[key][value]}" for key, value in zip(keys, values)]
            if seeds > 1:
                overrides.append(f"train.seed={seed}")
                labels.append(f"seed={seed}")
            runs.append(SweepRun(run_name_within(f"{len(runs):05d}-{'-'.join(labels) or 'run'}"), tuple(overrides)))
    return runs


def named_as_begun(out: Path, runs: list[SweepRun]) -> list[SweepRun]:
    """`runs` under the names `out`'s sweep.toml gave them, where it lists the same runs (the same overrides, in
    the same order) under other names: a sweep begun by a gan that named values cut alike otherwise
    (`_labels`) goes on in its runs' folders. `runs` as they are otherwise (no sweep.toml, another sweep:
    `write_manifest` says which)."""
    try:
        stored = tomllib.loads((out / MANIFEST).read_text(encoding="utf-8")).get("runs")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return runs
    if not isinstance(stored, dict) or list(stored.values()) != [list(run.overrides) for run in runs]:
        return runs
    # (each name its run's number and what `expand` names runs of: a manifest edited by hand places no run elsewhere,
    # nor names one a folder cannot have, a NUL's traceback)
    if not all(name.startswith(f"{index:05d}-") and SWEEP_RUN_NAME.fullmatch(name) for index, name in enumerate(stored)):
        return runs
    return [SweepRun(name, run.overrides) for name, run in zip(stored, runs)]


def manifest_text(config: Path, sets: list[str], grid: list[tuple[str, list[str]]], seeds: int,
                  runs: list[SweepRun]) -> str:
    """sweep.toml: what was asked, and the runs it expanded to, in TOML's own strings (JSON's, written
    before, held a config path's byte that is no UTF-8 as a lone surrogate escape, which TOML forbids:
    the same command again found no manifest it could read)."""
    check_config_path(config)
    lines = ["# gan sweep: the same command again skips finished runs and resumes the others",
             f"config = {toml_value(str(config.resolve()))}",
             f"config_settings_sha256 = {toml_value(config_settings_digest(config))}",
             f"sets = {toml_value(sets)}", f"seeds = {seeds}",
             f"grid = {toml_value([[key, *values] for key, values in grid])}", "", "[runs]"]
    lines += [f"{toml_value(run.name)} = {toml_value(list(run.overrides))}" for run in runs]
    return "\n".join(lines) + "\n"


def check_config_path(config: Path) -> None:
    """ConfigError when the config file's path (made absolute) is not UTF-8 text, which sweep.toml (TOML
    is UTF-8) cannot record: said before any run is checked or trained."""
    try:
        str(config.resolve()).encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"config file '{undecoded(config.resolve())}' has a path that is not UTF-8 text (bytes of "
                          "another encoding), which sweep.toml cannot record: copy the config to a path that "
                          "is") from None


def config_settings_digest(config: Path) -> str:
    """What the config file sets, as a digest: edited between two starts of a sweep, it would mix two
    experiments. Its settings, not its text: a comment edited (in a shipped config by an upgrade of
    gan, say) changes nothing any run trains with."""
    check_config_file(config)
    text = config.read_bytes()
    try:
        text = json.dumps(tomllib.loads(text.decode("utf-8")), sort_keys=True, default=str).encode()
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):  # (refused where the runs read it)
        pass
    return hashlib.sha256(text).hexdigest()


@contextlib.contextmanager
def claimed_sweep_folder(out: Path, text: str) -> Iterator[None]:
    """Hold `out`'s sweep lock, and within it write DIR/sweep.toml (`text`) or check that the one there
    asks for the same sweep: two sweeps started into one new folder at once must not both write
    their manifests. What this made is removed again when that fails (a full disk, a refusal)."""
    check_utf8_path(out, "--out")  # (each run would be refused so, after sweep.toml was written)
    created, lock_made = not out.exists(), not (out / SWEEP_LOCK_NAME).exists()
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(SweepLock(out))  # (made here when new)
            write_manifest(out, text)
        except RunDirectoryBusy:  # the lock file is the other sweep's
            raise
        except BaseException:  # the lock or the manifest could not be written, or the folder is refused
            with contextlib.suppress(OSError):
                if lock_made:
                    (out / SWEEP_LOCK_NAME).unlink()
                if created:
                    out.rmdir()
            raise
        yield


# What each entry of sweep.toml records, for the message that names those a command differs in.
MANIFEST_PARTS = {"config": "the config file", "config_settings_sha256": "the config file's settings (edited since the "
                  "sweep began: its runs so far trained with the earlier ones)", "config_sha256": "the config "
                  "file's text (edited since the sweep began, if only in a comment)", "sets": "the --set values",
                  "seeds": "--seeds", "grid": "--grid", "runs": "the runs"}
# What every sweep.toml records, since the first
MANIFEST_KEYS = ("config", "sets", "seeds", "grid", "runs")
# What to do about a config file edited since its sweep began
EDITED_CONFIG_ADVICE = ("; to go on with this sweep, put the config file's text back as it was (or, where the edit "
                        "changes no setting, go on with `gan train --resume` of each unfinished run)")


def _set_values(sets: list) -> dict[str, str]:
    """--set assignments as key -> the value each run gets (the last one given for a key)."""
    values = {}
    for assignment in sets:
        key, _, value = str(assignment).partition("=")
        values[key.strip()] = value.strip()
    return values


def _set_differences(stored: list, asked: list) -> list[str]:
    """`key old -> new` for each --set key whose value a sweep's manifest (`stored`) and a command
    (`asked`) differ in, values as a config reads them (`(unset)` for one not given)."""
    before, now = _set_values(stored), _set_values(asked)
    return [f"{key} {_set_shown(key, before.get(key))} -> {_set_shown(key, now.get(key))}"
            for key in sorted(set(before) | set(now)) if before.get(key) != now.get(key)]


def _set_shown(key: str, value: str | None) -> str:
    if value is None:
        return "(unset)"
    try:
        return shown(parse_value(key, value))
    except ConfigError:  # (a value of a manifest gan no longer reads: as written, cut)
        return printable(value, SHOWN_CHARACTERS)


def longer_runs(stored: list, asked: list, config: Path) -> tuple[int, int] | None:
    """(train.steps before, after) when a command's --set values (`asked`) differ from its sweep's
    (`stored`) only in a larger train.steps (the value `config` sets where one gives none): the same
    sweep trained longer, each run resumed, as its `--run-dir` line allows. None otherwise."""
    before, now = _set_values(stored), _set_values(asked)
    if {**before, "train.steps": None} != {**now, "train.steps": None}:
        return None
    try:
        steps = [parse_value("train.steps", values["train.steps"]) if "train.steps" in values
                 else read_config(config).train.steps for values in (before, now)]
    except ConfigError:
        return None
    if not all(isinstance(count, int) for count in steps) or steps[1] <= steps[0]:
        return None
    return steps[0], steps[1]


def write_manifest(out: Path, text: str) -> None:
    """Write DIR/sweep.toml, or check that the one there asks for the same sweep."""
    path = out / MANIFEST
    if os.path.lexists(path) and not path.is_file():
        raise ConfigError(f"'{path}' is not a sweep manifest (it is not a file): use another --out (each run in "
                          f"'{out}' goes on with `gan train --resume`)")
    if path.is_file():
        try:
            stored, asked = tomllib.loads(path.read_text(encoding="utf-8")), tomllib.loads(text)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as error:
            raise ConfigError(f"'{path}' is not a sweep manifest ({error}); use another "
                              "--out") from error
        missing = [key for key in MANIFEST_KEYS if key not in stored]
        if missing:  # (an emptied file, say: not "another sweep", which every key would differ in)
            raise ConfigError(f"'{path}' is not a sweep manifest (it records no {', '.join(missing)}): use another "
                              f"--out (each run in '{out}' goes on with `gan train --resume`)")
        earlier = "config_settings_sha256" not in stored  # (begun before its settings were recorded: by its text, or not at all)
        settings = asked["config_settings_sha256"]
        if earlier:
            asked.pop("config_settings_sha256")
            if "config_sha256" in stored:
                asked["config_sha256"] = hashlib.sha256(Path(asked["config"]).read_bytes()).hexdigest()
        if isinstance(stored.get("sets"), list) and _set_values(stored["sets"]) == _set_values(asked["sets"]):
            stored["sets"] = asked["sets"]  # the same --set values in another order
        differ = [key for key in asked if stored.get(key) != asked[key]]
        kept = _settings_kept(stored, asked, settings, out) if earlier and differ and set(differ) <= {"config", "config_sha256"} \
            else None
        if kept:  # (an upgrade of gan edited a shipped config's comments, or another checkout holds the config)
            print(f"sweep '{out}': begun by an earlier gan, whose sweep.toml records no digest of its config's "
                  f"settings; {kept}: it goes on (sweep.toml now records them)", file=sys.stderr)
            write_text_atomically(path, text)
            return
        if differ == ["config"] and {"config_settings_sha256", "config_sha256"} & asked.keys():
            # (the project moved, or another checkout on a cluster: the same settings are the same sweep,
            # its manifest now naming the config where it is, as this command's does)
            print(f"sweep '{out}': its config is now '{asked['config']}' (it began with '{stored['config']}', whose "
                  "settings are the same)", file=sys.stderr)
            write_text_atomically(path, text)
            return
        longer = longer_runs(stored["sets"], asked["sets"], Path(asked["config"])) if differ == ["sets"] else None
        if longer:  # (each run's --run-dir line goes on to the new length, as the same line may)
            print(f"sweep '{out}': train.steps {longer[0]} -> {longer[1]}: its runs go on to step {longer[1]}, each "
                  "from its newest checkpoint (sweep.toml records the new length)", file=sys.stderr)
            write_text_atomically(path, text)
            return
        if "config" in differ:  # (another file's settings differ as a matter of course: not an edit)
            differ = [key for key in differ if key not in ("config_settings_sha256", "config_sha256")]
        if differ:
            edited = {"config_settings_sha256", "config_sha256"} & set(differ) and "config" not in differ
            parts = [MANIFEST_PARTS.get(key, key) for key in differ]
            if "sets" in differ and isinstance(stored.get("sets"), list):  # (which, with both values)
                changes = _set_differences(stored["sets"], asked["sets"])
                parts[differ.index("sets")] += f" ({first_few(changes, 3, '; ')})" if changes else ""
            begun = f" (it began with '{stored['config']}')" if "config" in differ else ""
            raise ConfigError(f"'{out}' holds another sweep ({path} differs in {', '.join(parts)}{begun}): use another "
                              f"--out, or the command that made it{EDITED_CONFIG_ADVICE if edited else ''}")
        return
    # Runs no sweep made would count as this one's (one under a run's name as that run, finished)
    # and join its comparison.
    foreign = sorted(child.name for child in out.iterdir() if child.is_dir() and holds_a_run(child)) \
        if out.is_dir() else []
    if foreign:
        raise ConfigError(f"'{out}' holds {len(foreign)} run(s) that no sweep made there "
                          f"({first_few([repr(name) for name in foreign], 3)}): use another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, text)


def _settings_kept(stored: dict, asked: dict, settings: str, out: Path) -> str | None:
    """For a sweep.toml of an earlier gan (no digest of its config's settings), whose config differs in
    path or text alone from this command's (whose `settings` digest is this): why its runs train the
    same (said), or None. The config it began with still there with this one's settings, or each run
    it started trained with the settings this command gives it (none started: nothing trained with
    other settings)."""
    config, begun_with = Path(asked["config"]), Path(stored["config"])
    same_text = "config_sha256" not in stored or (
        begun_with.is_file() and hashlib.sha256(begun_with.read_bytes()).hexdigest() == stored["config_sha256"])
    with contextlib.suppress(ConfigError, OSError):
        if begun_with != config and same_text and config_settings_digest(begun_with) == settings:
            return f"the config it began with, '{begun_with}', sets what '{config}' sets"
    runs = stored.get("runs") if isinstance(stored.get("runs"), dict) else {}
    if not all(isinstance(overrides, list) for overrides in runs.values()):  # (a manifest edited by hand)
        return None
    started = [name for name in runs if (out / name).exists()]
    for name in started:  # (its settings read as its resume reads them: what config.toml lacks, from its checkpoint)
        written, checkpoint = out / name / "config.toml", trained_config(out / name)
        if not written.is_file() and checkpoint is None:  # (a folder of no run: nothing vouches for it)
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trained = load_config(written if written.is_file() else None, trained=checkpoint)
                given = load_config(config, [*asked["sets"], *runs[name]])
        except ConfigError:
            return None
        halved = 0.5 ** rollback_halvings(out / name)  # (the rates --on-nan rollback halved, as config.toml notes)
        given.train.g_lr, given.train.d_lr = given.train.g_lr * halved, given.train.d_lr * halved
        if _what_it_trains(trained) != _what_it_trains(given):
            return None
    return (f"the {counted(len(started), 'run')} it started trained with the settings this command gives them"
            if started else "none of its runs has started")


def _what_it_trains(config: Config) -> dict[str, object]:
    """`config`'s settings but those of how a run is carried out (`how_it_runs`: logging, ...), its length
    kept (a run that ends elsewhere is not the sweep's)."""
    return {key: value for key, value in flatten_config(config_to_dict(config)).items()
            if key == "train.steps" or not how_it_runs(key)}


def finished(run_dir: Path, steps: int) -> bool:
    """Whether the run has a checkpoint of its last step (or later) that loads (one cut short was
    counted finished, and the run never trained again) and leaves none of that step's side tasks
    (previews, metrics, best.pt) to a resume. (Its bytes' checksums are not read: a sweep run again
    would read every run's gigabytes twice before it said a word; its readers check them.)"""
    checkpoints = checkpoints_by_content(run_dir) if run_dir.is_dir() else []
    if not checkpoints or checkpoints[-1][0] < steps:
        return False
    newest = checkpoints[-1][1]
    return stored_step(newest) is not None and not side_tasks_left(newest)


def refuse_runs_it_cannot_resume(runs: list[SweepRun], out: Path) -> None:
    """ConfigError naming a run of the sweep whose checkpoints are there but none loads (its only one
    cut short, as a sweep of train.steps below train.checkpoint_every keeps one): its resume failed at
    each start of the sweep, advising "another --out", a new sweep."""
    for run in runs:
        run_dir = out / run.name
        checkpoints = list_checkpoints(run_dir) if run_dir.is_dir() else []
        if checkpoints and all(stored_step(path) is None for path in checkpoints):
            raise ConfigError(f"run {run.name} holds {counted(len(checkpoints), 'checkpoint')} and none loads (the "
                              f"newest: '{checkpoints[-1]}', cut short or damaged), so the sweep cannot resume it: "
                              f"restore a copy of it, or move '{run_dir}' out of '{out}' for the sweep to train that "
                              "run again")


def train_command(config: Path, sets: list[str], run: SweepRun, run_dir: Path, device: str | None,
                  program: list[str]) -> list[str]:
    """The `gan train` command line of one run (`program`: how gan is invoked)."""
    command = [*program, "train", str(config)]
    for assignment in (*sets, *run.overrides):
        command += ["--set", assignment]
    command += ["--run-dir", str(run_dir)]
    return command + (["--device", device] if device else [])


@dataclass
class _Running:
    run: SweepRun
    process: subprocess.Popen
    started: float
    log: IO[str] | None


def planned_steps(config: Path, sets: list[str], runs: list[SweepRun], on_cpu: bool = False,
                  here: bool = True, out: Path | None = None) -> dict[str, int]:
    """Each run's `train.steps`, from its whole config: every grid point is checked (keys, types,
    ranges, names, the networks' arguments against the data, and, for runs that train `here`,
    their data folders; not of runs already started in `out`, which read theirs when they started),
    so a sweep that cannot run says so before it writes anything. Two runs
    that would train the same (a grid value that changes nothing there, or on the CPU when every
    run trains there: `on_cpu`) are refused. The settings' warnings are said once all runs pass: a
    sweep that cannot run says its error alone, not below warnings that would bury it."""
    with warnings.catch_warnings(record=True) as said:
        try:
            steps = _checked_steps(config, sets, runs, on_cpu, here, out)
        except ConfigError:
            said.clear()
            raise
    for warning in said:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return steps


def _checked_steps(config: Path, sets: list[str], runs: list[SweepRun], on_cpu: bool, here: bool,
                   out: Path | None) -> dict[str, int]:
    """`planned_steps`, its warnings said as they come."""
    steps, trained_by, resolved_runs = {}, {}, []
    for run in runs:
        with _named_run(run):
            resolved = load_config(config, [*sets, *run.overrides])
            check_networks(resolved)
        resolved_runs.append((run, resolved))
        steps[run.name] = resolved.train.steps
        settings, values, why = _what_trains(resolved, on_cpu)
        if settings in trained_by:
            first, first_values, first_why = trained_by[settings]
            differ = [key for key in {**first_values, **values} if values.get(key) != first_values.get(key)]
            # (another network's arguments differ with its name: said by the name, model.discriminator, alone)
            differ = [key for key in differ if "_args." not in key or key.partition("_args.")[0] not in differ]
            reasons = ("; ".join(dict.fromkeys(why.get(key) or first_why[key] for key in differ))
                       or "their configs are the same once read")
            same = f"runs {first.name} and {run.name} would train the same ({reasons})"
            if out is not None and (out / MANIFEST).is_file():  # (a sweep begun before gan refused such runs)
                warnings.warn(f"{same}: this sweep began before such runs were refused, so it goes on as begun",
                              stacklevel=2)
            else:
                raise ConfigError(f"{same}: drop the value that changes nothing from --grid, or sweep those settings "
                                  "separately")
        trained_by[settings] = (run, values, why)
    for run, resolved in resolved_runs if here else ():  # (printed commands may train elsewhere, on its folders)
        if out is not None and (out / run.name).exists():  # (finished, or resumed: its data may have moved since)
            continue
        with _named_run(run):
            check_data_folders(resolved.data, resolved.metrics.root if resolved.metrics.every else "")
    return steps


@contextlib.contextmanager
def _named_run(run: SweepRun):
    """A ConfigError met checking `run`, said as that run's, with the grid's keys named as --grid."""
    try:
        yield
    except ConfigError as error:
        message = str(error)
        for key in (override.partition("=")[0].strip() for override in run.overrides):
            message = message.replace(f"--set {key}", f"--grid {key}")  # (the grid's values go in as --set)
        raise ConfigError(f"run {run.name} ({' '.join(run.overrides) or 'no overrides'}): {message}") from None


# Speed switches that act on CUDA alone, and those whose 'auto' means on for CUDA, off elsewhere.
CUDA_ONLY = {"train.amp": "bf16 autocast", "train.cudnn_benchmark": "cuDNN's autotuning",
             "train.cuda_graph": "a CUDA graph"}
AUTO_FOR_CUDA = ("train.channels_last", "train.compile")


def _as_on_cpu(values: dict, defaults: dict) -> tuple[dict, dict[str, str]]:
    """`values` as a run on the CPU trains them (the CUDA-only switches at their defaults, 'auto'
    as 'off'), and key -> why for each key that this changes."""
    where = "on the CPU, where every run of this sweep trains"
    trained = {**values, **{key: defaults[key] for key in CUDA_ONLY}}
    why = {key: f"{key} = {shown(values[key])} changes nothing {where}: {what} acts on CUDA only"
           for key, what in CUDA_ONLY.items() if values[key] != defaults[key]}
    for key in AUTO_FOR_CUDA:
        if values[key] in ("auto", "off"):
            trained[key] = "off"
            why[key] = f"{key} 'auto' is 'off' {where}"
    return trained, why


def _what_trains(resolved: Config, on_cpu: bool = False) -> tuple[str, dict, dict[str, str]]:
    """The settings a run trains with as one string (each key that changes nothing at its default),
    its config's values by key, and key -> why, for the keys that change nothing."""
    ignored = ignored_keys(resolved) | RECIPES.get(resolved.recipe).inert_keys(resolved)
    defaults, values = flatten_config(config_to_dict(Config())), flatten_config(config_to_dict(resolved))
    # each at its default; left out where there is none (a network's own arguments: a discriminator never
    # trained has none to compare, whatever its name)
    settings = {key: defaults[key] if key in ignored else value for key, value in values.items()
                if key not in ignored or key in defaults}
    why = {key: f"recipe '{resolved.recipe}' ignores {text}" for key, text in ignored.items()}
    for inert in inert_settings(resolved):
        settings |= dict(inert.trains_as)
        why |= {key: inert.message for key, _ in inert.trains_as}
    if on_cpu:
        settings, on_cpu_why = _as_on_cpu(settings, defaults)
        why |= on_cpu_why
    return json.dumps(settings, sort_keys=True, default=str), values, why


def trains_on_cpu(devices: list[str]) -> bool:
    """Whether every run trains on the CPU: `devices` (one per job slot) are all "cpu", or are none
    (each run's default) on a machine without CUDA."""
    return all(device == "cpu" for device in devices) if devices else not torch.cuda.is_available()


def run_sweep(config: Path, sets: list[str], runs: list[SweepRun], out: Path, jobs: int, devices: list[str],
              say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)) -> list[str]:
    """Train the runs that are not finished, `jobs` at a time; returns the names of those that
    failed. With one job the run's own progress shows in the terminal; with more, each writes
    to DIR/logs/<name>.log. `devices`: one per job slot in turn (GPUs), or empty (the default).
    The caller holds the folder (`claimed_sweep_folder`): one sweep per folder, as a second would
    start the same runs again."""
    steps = planned_steps(config, sets, runs, trains_on_cpu(devices), out=out)
    return _train_runs(config, sets, runs, steps, out, jobs, devices, say)


def _train_runs(config: Path, sets: list[str], runs: list[SweepRun], steps: dict[str, int], out: Path, jobs: int,
                devices: list[str], say: Callable[[str], None]) -> list[str]:
    to_do = [run for run in runs if not finished(out / run.name, steps[run.name])]
    say(f"sweep '{out}': {len(runs)} runs, {len(runs) - len(to_do)} finished, {len(to_do)} to do"
        + (f", {jobs} at a time" if jobs > 1 else ""))
    threads = max(1, usable_cpus() // jobs)  # (the CPUs it may use: taskset, a job's cpuset or quota)
    program = [sys.executable, "-P", "-m", "gan"]  # -P: see same_gan
    environment = {}
    running: dict[int, _Running] = {}
    failed, durations, done = [], [], len(runs) - len(to_do)
    queue = list(to_do)
    status_at = time.monotonic() + STATUS_EVERY_S
    # SIGTERM, SIGHUP (the terminal closed), SIGUSR1 and SIGUSR2 (a scheduler's warning before its time
    # limit) stop the sweep as Ctrl-C does; what was there before is restored at the end, SIGINT's
    # included, which is ignored while the runs stop. (From another thread,
    # a notebook's or a CliRunner's, Python allows no handler: none, and a stop is the caller's own exception.)
    previous_handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} if _handles_signals() else {}
    for signum in previous_handlers:
        if signum != signal.SIGINT and previous_handlers[signum] is not signal.SIG_IGN:
            signal.signal(signum, _stop_on_sigterm)
    try:
        environment = same_gan(dict(os.environ)) if to_do else {}  # (in the try: a Ctrl-C meanwhile is said)
        while queue or running:
            for slot in range(jobs):
                if slot in running or not queue:
                    continue
                run = queue.pop(0)
                device = devices[slot % len(devices)] if devices else None
                running[slot] = _start_run(train_command(config, sets, run, out / run.name, device, program), run,
                                           device, threads, out / "logs" if jobs > 1 else None, environment)
                say(f"sweep: run {run.name} started{f' on {device}' if device else ''} "
                    f"({done} done, {len(queue) + len(running)} to go)")
            time.sleep(0.2)
            if jobs > 1 and running and time.monotonic() >= status_at:  # (one at a time: its own lines show)
                status_at = time.monotonic() + STATUS_EVERY_S
                say(f"sweep: {'; '.join(run_status(job) for job in running.values())}"
                    + (f"; {len(queue)} waiting" if queue else ""))
            for slot, job in list(running.items()):
                code = job.process.poll()
                if code is None:
                    continue
                del running[slot]
                if job.log:
                    job.log.close()
                took = time.monotonic() - job.started
                if code == 0 and not finished(out / job.run.name, steps[job.run.name]):
                    failed.append(job.run.name)  # (whatever it ran, it did not train this run to its end)
                    say(f"sweep: run {job.run.name} exited 0 without a checkpoint of its step "
                        f"{steps[job.run.name]}: counted as failed; the same command starts it again")
                elif code == 0:
                    done += 1
                    durations.append(took)
                    left = len(queue) + len(running)
                    now = time.monotonic()
                    eta = sweep_eta(sum(durations) / len(durations), [now - other.started for other in running.values()],
                                    len(queue), jobs)
                    say(f"sweep: run {job.run.name} finished in {format_duration(took)} ({done}/{len(runs)} done"
                        + (f", about {format_duration(eta)} to go)" if left else ")"))
                else:
                    failed.append(job.run.name)
                    where = f"; its log: {run_log(out / 'logs', job.run)}" if job.log else ""
                    say(f"sweep: run {job.run.name} {_how_it_ended(code, out / job.run.name)}{where}")
    except BaseException as error:  # the runs checkpoint on SIGTERM; the same command resumes them
        # (whatever ended the sweep: a caller's own exception, say a notebook's timeout, too)
        _stop_runs(running.values())
        say("sweep: interrupted; the same command resumes it" if isinstance(error, KeyboardInterrupt) else
            f"sweep: stopped its runs, as it ended on {type(error).__name__}; the same command resumes it")
        raise
    finally:
        for signum, handler in previous_handlers.items():
            if handler is not None:  # (None: one set outside Python, which cannot be put back)
                signal.signal(signum, handler)
    return failed


def sweep_eta(mean: float, running_for: list[float], queued: int, jobs: int) -> float:
    """Seconds until a sweep is done, its runs taking `mean` seconds each: each running run's rest of
    that (it has run `running_for`), then the queued ones, each on the slot that frees first. (A whole
    run for each running one said "about 10h to go" a minute before the end.)"""
    slots = sorted([max(mean - elapsed, 0.0) for elapsed in running_for] + [0.0] * max(jobs - len(running_for), 0))
    for _ in range(queued):
        slots[0] += mean
        slots.sort()
    return max(slots, default=0.0)


# Seconds between the lines that say where the runs of a sweep of several at a time stand: their own
# output goes to OUT/logs, and a sweep of long runs was otherwise silent from their start to their end.
STATUS_EVERY_S = 120.0
PROGRESS_LINE = re.compile(rb"step (\d+)/(\d+)")


def run_status(job: _Running) -> str:
    """`00001-...: step 120/300` from its log's last progress line (or how long it has run)."""
    found = None
    if job.log is not None:
        with contextlib.suppress(OSError), open(job.log.name, "rb") as log:
            log.seek(max(log.seek(0, os.SEEK_END) - 8192, 0))
            found = ([*PROGRESS_LINE.finditer(log.read())] or [None])[-1]
    where = f"step {int(found[1])}/{int(found[2])}" if found else "starting"
    return f"{job.run.name}: {where} ({format_duration(time.monotonic() - job.started)})"


def _start_run(command: list[str], run: SweepRun, device: str | None, threads: int, logs: Path | None,
               environment: dict[str, str]) -> _Running:
    """Start one run's `gan train` in `environment`, its output into `logs`/<name>.log where given
    (several at a time)."""
    environment = {**environment, SWEEP_PID_VARIABLE: str(os.getpid())}
    if device in (None, "cpu") and "OMP_NUM_THREADS" not in os.environ:  # the runs share the cores
        environment["OMP_NUM_THREADS"] = str(threads)  # (a user's own setting stands)
    log = None
    if logs is not None:
        logs.mkdir(exist_ok=True)
        log = open(run_log(logs, run), "a")  # noqa: SIM115 - closed when the run ends
    process = subprocess.Popen(command, env=environment, stdout=log, stderr=log)
    return _Running(run, process, time.monotonic(), log)


def run_log(logs: Path, run: SweepRun) -> Path:
    """The file in `logs` a run's output goes to, `<name>.log`: a legal name of 252 to 255 bytes is cut
    to make room for `.log` (the number it begins with keeps the logs of runs cut alike apart)."""
    return logs / f"{name_cut(run.name, MAX_NAME_BYTES - len('.log'))}.log"


def same_gan(environment: dict[str, str]) -> dict[str, str]:
    """`environment` for a run that imports the gan this sweep runs. Runs start with `python -P`, so that
    a `gan.py` or another gan checkout in the working directory (which `-m` would put first) cannot
    stand in for it; where that leaves this gan out of reach (a checkout the sweep found through the
    working directory), the folder holding it goes first on PYTHONPATH. Asked of Python itself, once a sweep:
    put there always, an installed gan's site-packages would have come before the user's PYTHONPATH
    and the standard library in every run."""
    ours = Path(gan.__file__).resolve()
    found = subprocess.run([sys.executable, "-P", "-c", "import gan; print(gan.__file__)"], env=environment,
                           capture_output=True)  # (bytes: a folder's name need not be UTF-8)
    if found.returncode == 0 and Path(os.fsdecode(found.stdout.strip())).resolve() == ours:
        return environment
    root = str(ours.parent.parent)
    return {**environment, "PYTHONPATH": os.pathsep.join(filter(None, [root, environment.get("PYTHONPATH")]))}


def _stop_runs(running: Iterable[_Running]) -> None:
    """Stop the runs in progress, each checkpointing as it stops (the same sweep command resumes them)."""
    running = list(running)
    # (a second signal, `timeout` sends two, has been passed on; from another thread, none is the sweep's to set)
    for signum in STOP_SIGNALS if _handles_signals() else ():
        signal.signal(signum, signal.SIG_IGN)
    # SIGTERM, whatever stopped the sweep: a terminal's Ctrl-C reaches the runs too (one process
    # group), and a second SIGINT would make them abort without saving; after a SIGINT, a
    # SIGTERM is the same stop.
    for job in running:
        job.process.send_signal(signal.SIGTERM)
    for job in running:
        job.process.wait()


def _handles_signals() -> bool:
    """Whether this is the main thread, the only one Python lets set a signal handler (a sweep started
    from another raised "signal only works in main thread" after its first line)."""
    return threading.current_thread() is threading.main_thread()


def _how_it_ended(code: int, run_dir: Path) -> str:
    """Words for a run's non-zero exit `code` (-N: killed by signal N)."""
    again = ("resumes it from its newest checkpoint" if run_dir.is_dir() and list_checkpoints(run_dir)
             else "starts it again")
    if -code in STOP_SIGNALS or code - 128 in STOP_SIGNALS:  # (-N: killed by signal N; 128 + N: stopped)
        return f"was stopped by a signal (exit {code}); the same command {again}"
    # (kill -9 by a person, or the kernel's out-of-memory killer; Windows has no SIGKILL, nor negative codes)
    if code == -getattr(signal, "SIGKILL", 9):
        return (f"was killed (SIGKILL: by hand, or by the kernel when the system ran out of memory); the same "
                f"command {again}")
    if code < 0:
        return f"crashed ({signal.Signals(-code).name if -code in signal.valid_signals() else f'signal {-code}'})"
    return f"failed (exit {code})"


class SweepStopped(KeyboardInterrupt):
    """SIGTERM (`kill`, a scheduler ending the job), SIGHUP (its terminal closed), SIGUSR1 or SIGUSR2
    (a scheduler's warning before its time limit), handled as Ctrl-C is: passed on to the runs, which
    checkpoint and stop, rather than killing the sweep and leaving them running alone."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


def _stop_on_sigterm(signum: int, frame: object) -> None:
    leave_the_terminal_on_hangup(signum)
    raise SweepStopped(signum)


def stop_with_the_sweep() -> None:
    """In a run a sweep started: stopped with a checkpoint when the sweep dies, kill -9 included, so
    that it does not train on alone, holding its lock against the sweep run again."""
    sweep_pid = os.environ.pop(SWEEP_PID_VARIABLE, "")
    if sweep_pid.isdigit():
        stop_with_parent(int(sweep_pid))
