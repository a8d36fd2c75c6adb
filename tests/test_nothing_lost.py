"""Issue 27: the cache, eval and compare commands touch only what is theirs, leave no file's
scores to another file, and end in one clear line rather than a traceback or a table of dashes."""

import csv
import json
import math
import os
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_one_error_line, invoke, random_rgb, tiny_recipe_config, write_recipe_data
from torch.utils.tensorboard import SummaryWriter

import gan.data.cache as cache_module
from gan.core.config import DataConfig
from gan.data import build_dataset, training_batches
from gan.training.loop import train

CPU = torch.device("cpu")
DAY = 86400


def age(path: Path, days: float) -> None:
    stamp = time.time() - days * DAY
    os.utime(path, (stamp, stamp))


# ----------------------------------------------------------------------------- gan cache


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    """A cache folder with one complete cache built by training code."""
    images = tmp_path / "images"
    images.mkdir()
    for index in range(6):
        random_rgb((30 + index, 24), seed=index).save(images / f"{index}.png")
    config = DataConfig(dataset="folder", root=str(images), resolution=8, num_workers=0, cache="mmap",
                        cache_dir=str(tmp_path / "cache"))
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    return tmp_path / "cache"


def dead_pid() -> int:
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid  # names no process now


def write_foreign_files(folder: Path) -> dict[Path, bytes]:
    """Files a user or another tool keeps in the same folder, some named or shaped like gan's; their bytes."""
    before = set(folder.iterdir())
    np.save(folder / "results.npy", np.arange(5.0))
    np.save(folder / "0123456789abcdef0123.npy", np.arange(5.0))  # a cache-like name, not an image array
    np.save(folder / "abcdefabcdefabcdefab.npy", np.zeros((1, 3, 8, 8), np.uint8))  # beside a header not gan's
    (folder / "abcdefabcdefabcdefab.json").write_text(json.dumps({"version": 2, "files": "x", "count": 1,
                                                                  "resolution": 8}))
    (folder / "settings.json").write_text(json.dumps({"files": ["a.png"], "count": "many"}))
    (folder / "list.json").write_text("[1, 2]")
    (folder / "notes.tmp").write_text("a draft")
    (folder / f"report.npy.{dead_pid()}.tmp").write_text("someone else's temp file")
    return {path: path.read_bytes() for path in set(folder.iterdir()) - before}


def assert_untouched(files: dict[Path, bytes]) -> None:
    for path, content in files.items():
        assert path.is_file() and path.read_bytes() == content, path


def test_clear_older_than_removes_nothing_young_and_nothing_not_gans(cache_dir):
    (cache,) = cache_module.list_caches(cache_dir)
    foreign = write_foreign_files(cache_dir)
    result = invoke("cache", "clear", "--older-than", "30", "--dir", cache_dir)
    assert result.exit_code == 0, result.output
    assert "removed 0 cache(s)" in result.output and "0.0 MiB freed" in result.output
    assert cache.array_path.is_file() and cache.header_path.is_file()
    assert_untouched(foreign)
    assert "left alone 8 file(s)" in result.output  # said, not silently skipped


def test_clear_removes_gans_files_only_and_says_what_it_removed(cache_dir):
    (cache,) = cache_module.list_caches(cache_dir)
    orphan = cache_dir / "fedcba9876543210fedc.npy"  # an array whose header was lost: gan's, never read again
    shutil.copy(cache.array_path, orphan)
    abandoned = cache_dir / f"{cache.name}.npy.{dead_pid()}.tmp"
    building = cache_dir / f"{cache.name}.npy.{os.getppid()}.tmp"  # its writer is alive: a build under way
    for temp in (abandoned, building):
        temp.write_bytes(b"partial")
    for path in (orphan, abandoned):
        age(path, 1)  # written recently, either could be a build on another machine sharing the folder
    foreign = write_foreign_files(cache_dir)
    result = invoke("cache", "clear", "--dir", cache_dir)
    assert result.exit_code == 0, result.output
    assert "removed 1 cache(s) and 2 leftover file(s)" in result.output
    assert not cache.array_path.exists() and not cache.header_path.exists()
    assert not orphan.exists() and not abandoned.exists() and building.exists()
    assert "1 file(s) that a build may still be writing" in result.output
    assert_untouched(foreign)
    recent = cache_dir / "0123456789abcdef0123.npy"  # an array just written, its header still to come
    np.save(recent, np.zeros((1, 3, 4, 4), np.uint8))
    result = invoke("cache", "clear", "--dir", cache_dir)
    assert recent.exists() and "(temp files, or arrays still without their header;" in result.output, result.output


def test_leftovers_of_broken_builds_obey_older_than(cache_dir):
    (cache,) = cache_module.list_caches(cache_dir)
    orphan = cache_dir / "fedcba9876543210fedc.npy"
    shutil.copy(cache.array_path, orphan)
    abandoned = cache_dir / f"{cache.name}.npy.{dead_pid()}.tmp"
    abandoned.write_bytes(b"partial")
    for path in (orphan, abandoned):
        age(path, 3)
    age(abandoned, 0.5)  # its builder died half a day ago
    kept = invoke("cache", "clear", "--older-than", "1", "--dir", cache_dir)
    assert "removed 0 cache(s) and 1 leftover file(s)" in kept.output, kept.output
    assert not orphan.exists() and abandoned.exists() and cache.array_path.exists()
    age(abandoned, 2)
    removed = invoke("cache", "clear", "--older-than", "1", "--dir", cache_dir)
    assert "removed 0 cache(s) and 1 leftover file(s)" in removed.output and not abandoned.exists()


def test_verify_and_list_leave_foreign_json_alone(cache_dir):
    foreign = write_foreign_files(cache_dir)
    verified = invoke("cache", "verify", "--dir", cache_dir)
    assert verified.exit_code == 0, verified.output
    assert verified.output.count("ok ") == 1 and "cannot tell are its own caches" in verified.output
    listed = invoke("cache", "list", "--dir", cache_dir)
    assert listed.exit_code == 0 and ": 1 cache(s)" in listed.output and "leftover" not in listed.output
    assert_untouched(foreign)


# ----------------------------------------------------------------------------- gan eval


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny SR, pix2pix and CycleGAN runs (2-4 CPU steps each) and the folders they trained on."""
    root = tmp_path_factory.mktemp("eval")
    data = write_recipe_data(root / "data")
    made = {"data": data}
    for recipe in ("srresnet", "pix2pix", "cyclegan"):
        config = tiny_recipe_config(recipe, data, "log.eval_every=0")
        made[recipe] = train(config, root / recipe, CPU, progress_stream=open(os.devnull, "w")).run_dir
    return made


def cut_short(source: Path, target: Path) -> None:
    """A file whose header reads but whose pixels do not: it passes a header scan and fails to decode."""
    target.write_bytes(source.read_bytes()[:200])


def read_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(open(path)))


def assert_mean_of_rows(rows: list[dict], column: str) -> None:
    scored = [float(row[column]) for row in rows if row["image"] != "mean"]
    assert float(rows[-1][column]) == pytest.approx(sum(scored) / len(scored), abs=1e-5)


def test_paired_eval_gives_an_unreadable_pair_no_row_and_no_share_of_the_mean(runs, tmp_path):
    folder = tmp_path / "val"
    shutil.copytree(runs["data"]["paired"] / "val", folder)
    cut_short(folder / "1.png", folder / "2.png")
    (folder / "3.jpg").write_text("not an image")
    result = invoke("eval", runs["pix2pix"], "--data", folder, "--csv", tmp_path / "e.csv")
    assert result.exit_code == 0, result.output
    rows = read_rows(tmp_path / "e.csv")
    assert [row["image"] for row in rows] == ["0.png", "1.png", "mean"]
    assert_mean_of_rows(rows, "psnr")
    assert "2 image(s) skipped" in result.output and "2.png" in result.output and "3.jpg" in result.output
    scores = json.loads((tmp_path / "e.json").read_text())
    assert scores["images"] == {"translations": 2, "targets": 2} and sorted(scores["skipped_images"]) == ["2.png", "3.jpg"]


def test_eval_names_a_skipped_file_of_odd_bytes_on_one_line_and_in_its_json_as_its_csv_would(runs, tmp_path):
    """A skipped `bad_\\xff\\nname\\x1b[31m.png` split its two lines (a real line break, and a raw terminal
    escape), and the JSON record held a lone surrogate (`\\udcff`, read as U+FFFD), where the CSV writes
    `\\xff`: two records of one evaluation named the file differently."""
    folder = tmp_path / "val"
    shutil.copytree(runs["data"]["paired"] / "val", folder)
    cut_short(folder / "1.png", folder / os.fsdecode(b"bad_\xff\nname\x1b[31m.png"))
    result = invoke("eval", runs["pix2pix"], "--data", folder, "--csv", tmp_path / "e.csv")
    assert result.exit_code == 0, result.output
    shown = "bad_\\xff\\nname\\x1b[31m.png"
    assert f"skipped {shown}: " in result.output and f"1 image(s) skipped, in no row and no mean: {shown}" in \
        result.output and "\x1b" not in result.output, result.output
    scores = json.loads((tmp_path / "e.json").read_text())
    assert list(scores["skipped_images"]) == ["bad_\\xff\nname\x1b[31m.png"]  # (the CSV's form of a file name)


def test_sr_eval_skips_unreadable_and_too_small_images(runs, tmp_path):
    folder = tmp_path / "hr"
    shutil.copytree(runs["data"]["hr"], folder)
    (folder / "text.jpg").write_text("not an image")
    cut_short(folder / "0.png", folder / "cut.png")
    random_rgb((1, 1), 7).save(folder / "dot.png")
    random_rgb((19, 40), 8).save(folder / "narrow.png")  # 16 px wide at x4: 8 left after shaving, SSIM needs 11
    random_rgb((20, 20), 9).save(folder / "edge.png")  # the smallest that is scored at x4
    result = invoke("eval", runs["srresnet"], "--data", folder, "--csv", tmp_path / "e.csv")
    assert result.exit_code == 0, result.output
    rows = read_rows(tmp_path / "e.csv")
    assert [row["image"] for row in rows] == ["0.png", "1.png", "2.png", "edge.png", "mean"]
    for column in ("psnr", "ssim", "bicubic_psnr"):
        assert_mean_of_rows(rows, column)
    assert "4 image(s) skipped" in result.output
    assert all(name in result.output for name in ("text.jpg", "cut.png", "dot.png", "narrow.png"))
    assert "at least 20x20" in result.output


def test_cycle_eval_skips_an_unreadable_image(runs, tmp_path):
    folder = tmp_path / "unpaired"
    shutil.copytree(runs["data"]["unpaired"], folder)
    (folder / "testA" / "9.png").write_text("not an image")
    cut_short(folder / "testB" / "0.png", folder / "testB" / "8.png")
    result = invoke("eval", runs["cyclegan"], "--data", folder, "--csv", tmp_path / "c.csv")
    assert result.exit_code == 0, result.output
    rows = read_rows(tmp_path / "c.csv")
    assert [row["image"] for row in rows] == ["A/0.png", "A/1.png", "B/0.png", "B/1.png", "mean"]
    assert_mean_of_rows(rows, "cycle_l1")
    assert "2 image(s) skipped" in result.output and "A/9.png" in result.output and "B/8.png" in result.output
    assert json.loads((tmp_path / "c.json").read_text())["images"] == {"AtoB": {"translations": 2, "targets": 2},
                                                                 "BtoA": {"translations": 2, "targets": 2}}


@pytest.mark.parametrize("contents", ["one_pixel", "not_images", "empty"])
def test_sr_eval_with_nothing_to_score_ends_in_one_line_naming_the_folder(runs, tmp_path, contents):
    folder = tmp_path / "data"
    folder.mkdir()
    if contents == "one_pixel":
        for index in range(2):
            random_rgb((1, 1), index).save(folder / f"{index}.png")
    elif contents == "not_images":
        (folder / "a.png").write_text("text")
        (folder / "b.jpg").write_bytes(b"\0" * 64)
        (folder / "notes.txt").write_text("text")
    result = invoke("eval", runs["srresnet"], "--data", folder, "--csv", tmp_path / "e.csv")
    assert_one_error_line(result, str(folder))
    assert not (tmp_path / "e.csv").exists()


def test_save_images_never_writes_over_the_images_it_measures(runs, tmp_path):
    folder = tmp_path / "hr"
    shutil.copytree(runs["data"]["hr"], folder)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    for target in (folder, folder / "strips"):
        result = invoke("eval", runs["srresnet"], "--data", folder, "--save-images", target, "--csv",
                        tmp_path / "e.csv")
        assert_one_error_line(result, "--save-images", str(folder))
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    random_rgb((40, 40), 5).convert("RGB").save(folder / "0.jpg")  # its strip would be 0.png, as 0.png's is
    result = invoke("eval", runs["srresnet"], "--data", folder, "--save-images", tmp_path / "strips", "--csv",
                    tmp_path / "e.csv")
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (tmp_path / "strips").iterdir()) == ["0.jpg.png", "0.png.png", "1.png",
                                                                             "2.png"]
    # 0.png.jpg's strip would be 0.png.png, as 0.png's now is: refused as "written twice", names the user never gave
    random_rgb((40, 40), 6).convert("RGB").save(folder / "0.png.jpg")
    result = invoke("eval", runs["srresnet"], "--data", folder, "--save-images", tmp_path / "strips2", "--csv",
                    tmp_path / "e2.csv")
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (tmp_path / "strips2").iterdir()) == ["0.jpg.png", "0.png.jpg.png", "0.png.png",
                                                                              "1.png", "2.png"]
    # another data set's strips into that folder: two evaluations in one, without a word
    (tmp_path / "other").mkdir()
    random_rgb((40, 40), 7).convert("RGB").save(tmp_path / "other" / "x.png")
    with pytest.warns(UserWarning, match=r"--save-images '.*strips2' holds 5 PNG\(s\) this evaluation writes no strip "
                                         r"over \(the first: 0.jpg.png\): its strips join them"):
        result = invoke("eval", runs["srresnet"], "--data", tmp_path / "other", "--save-images", tmp_path / "strips2",
                        "--csv", tmp_path / "e3.csv")
    assert result.exit_code == 0, result.output


def test_strips_of_long_names_alike_fit_a_file_name_and_all_are_written(runs, tmp_path):
    """Two images of one 251-byte stem (.jpg, .bmp) took the whole-name strips `<name>.png`, 259 bytes:
    4 strips were written, then 'File name too long', and no CSV or JSON."""
    folder = tmp_path / "hr"
    shutil.copytree(runs["data"]["hr"], folder)
    stem = "é" * 125 + "s"
    for suffix in (".jpg", ".bmp"):
        random_rgb((40, 40), len(suffix)).convert("RGB").save(folder / f"{stem}{suffix}")
    result = invoke("eval", runs["srresnet"], "--data", folder, "--save-images", tmp_path / "strips", "--csv",
                    tmp_path / "e.csv")
    assert result.exit_code == 0, result.output
    strips = sorted(os.fsencode(path.name) for path in (tmp_path / "strips").iterdir())
    assert len(strips) == len(list(folder.iterdir())) and all(len(name) <= 255 for name in strips)
    assert len([name for name in strips if name.decode("utf-8").startswith(stem[:100])]) == 2
    assert len(read_rows(tmp_path / "e.csv")) == len(strips) + 1  # (and the mean)


def test_strip_names_that_differ_only_in_case_are_one_name(tmp_path):
    """`Img.jpg` and `img.png` gave strips `Img.png` and `img.png`: one file on macOS's and Windows' disks,
    where the second strip replaced the first (gan translate takes such names as one)."""
    from gan.inference.scoring import _strip_names

    names = _strip_names([tmp_path / "Img.jpg", tmp_path / "img.png", tmp_path / "other.jpg"], tmp_path)
    assert [name.as_posix() for name in names.values()] == ["Img.jpg.png", "img.png.png", "other.png"]


def test_save_images_never_writes_over_the_runs_own_training_images_even_with_overwrite(runs, tmp_path):
    # Only the --data folder's images were protected: strips of a copy of the training folder,
    # saved into that folder with --overwrite, replaced the training images.
    training = Path(runs["data"]["hr"])
    copy = tmp_path / "copy"
    shutil.copytree(training, copy)
    before = {path.name: path.read_bytes() for path in training.iterdir()}
    result = invoke("eval", runs["srresnet"], "--data", copy, "--save-images", training, "--csv", tmp_path / "e.csv",
                    "--overwrite")
    assert_one_error_line(result, str(training))
    assert {path.name: path.read_bytes() for path in training.iterdir()} == before
    assert not (tmp_path / "e.csv").exists()


def test_eval_and_translate_never_write_among_a_runs_data_from_another_working_folder(tmp_path, monkeypatch):
    """The run's data folders were read as its config.toml typed them, relative: run from another
    folder they named nothing, and `gan eval --save-images DATA --overwrite` replaced a training
    image with its strip. Nor may a strip or a translation join the run's data (a resume trained on
    them; a 2048 px output joined the validation images as ground truth)."""
    work = tmp_path / "work"
    data = write_recipe_data(work / "data")
    (work / "val").mkdir()
    shutil.copy(data["hr"] / "0.png", work / "val" / "0.png")
    monkeypatch.chdir(work)
    config = tiny_recipe_config("srresnet", data, "data.root=data/hr", "data.val_root=val", "log.eval_every=0")
    run = train(config, data["hr"] / "run", CPU, progress_stream=open(os.devnull, "w")).run_dir  # (inside its data)
    monkeypatch.chdir(tmp_path)  # (where data/hr is no folder)
    copy = Path(shutil.copytree(data["hr"], tmp_path / "copy"))
    before = {path: path.read_bytes() for folder in (data["hr"], work / "val") for path in folder.glob("*.png")}
    for target, said in ((data["hr"], "would overwrite the input"), (data["hr"] / "strips", "which its run reads"),
                         (work / "val", "would overwrite the input"), (work / "val" / "more", "which its run reads")):
        result = invoke("eval", run, "--data", copy, "--save-images", target, "--csv", tmp_path / "e.csv", "--overwrite")
        assert_one_error_line(result, said)
    for output in (data["hr"] / "0.png", work / "val" / "more" / "x.png"):
        result = invoke("translate", run, copy / "0.png", output, "--overwrite")
        assert_one_error_line(result, "which its run reads")
    assert {path: path.read_bytes() for folder in (data["hr"], work / "val") for path in folder.glob("*.png")} == before
    assert not (data["hr"] / "strips").exists() and not (work / "val" / "more").exists()
    assert not (tmp_path / "e.csv").exists()
    # a run directory inside the data (left out of it) may hold them
    result = invoke("translate", run, copy / "0.png", run / "translations" / "0.png")
    assert result.exit_code == 0, result.output


def test_eval_lists_the_data_folders_images_only_where_an_output_lies_in_it(runs, tmp_path, monkeypatch):
    """Every image of --data was listed and its path resolved to guard outputs that lay elsewhere:
    20 s of CelebA's 202,599 before anything was scored. An output in the folder is still guarded."""
    import gan.commands.eval

    listed = []
    original = gan.commands.eval._images_under
    monkeypatch.setattr(gan.commands.eval, "_images_under", lambda folder: listed.append(folder) or original(folder))
    copy = Path(shutil.copytree(runs["data"]["hr"], tmp_path / "hr"))
    result = invoke("eval", runs["srresnet"], "--data", copy, "--csv", tmp_path / "e.csv")
    assert result.exit_code == 0, result.output
    assert listed == []
    image = sorted(copy.iterdir())[0]
    before = image.read_bytes()
    assert_one_error_line(invoke("eval", runs["srresnet"], "--data", copy, "--csv", image, "--overwrite"), str(image))
    assert listed == [copy] and image.read_bytes() == before
    # a hard link of one of its images outside it is one of them too
    (tmp_path / "strips").mkdir()
    os.link(image, tmp_path / "strips" / image.with_suffix(".png").name)
    assert_one_error_line(invoke("eval", runs["srresnet"], "--data", copy, "--save-images", tmp_path / "strips",
                                 "--csv", tmp_path / "e2.csv", "--overwrite"), "would overwrite the input")
    assert image.read_bytes() == before and image.stat().st_nlink == 2


def test_eval_of_a_synthetic_run_compares_with_the_data_folder_it_is_given(tiny_demo_run, tmp_path):
    folder = tmp_path / "real"
    folder.mkdir()
    for index in range(4):
        random_rgb((32, 32), index).save(folder / f"{index}.png")
    result = invoke("eval", tiny_demo_run, "--metrics", "swd", "--n", "4", "--data", folder,
                    "--cache-dir", tmp_path / "statistics", "--json", tmp_path / "scores.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "scores.json").read_text())["reference"] == str(folder.resolve())


# ----------------------------------------------------------------------------- gan compare


def write_run(folder: Path, seed: int, scalars: dict[str, list[float]], train: str = "") -> Path:
    """A run directory: a config (with `train`'s lines in its [train] table) and one event file with
    each scalar at steps 100, 200, ..."""
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(f'recipe = "dcgan"\n\n[train]\nseed = {seed}\nsteps = 300\n{train}')
    writer = SummaryWriter(str(folder))
    for tag, values in scalars.items():
        for index, value in enumerate(values):
            writer.add_scalar(tag, value, 100 * (index + 1))
    writer.close()
    return folder


SCALARS = {"metrics/swd/mean": [30.0, 10.0, 20.0], "loss/d": [1.0, 0.9, 0.8], "loss/g": [2.0, 2.1, 2.2]}


@pytest.fixture
def sweep(tmp_path) -> Path:
    for seed in range(3):
        write_run(tmp_path / "sweep" / f"{seed:05d}-seed={seed}", seed, SCALARS)
    return tmp_path / "sweep"


def test_compare_refuses_a_metric_no_run_has_and_names_the_closest(sweep, tmp_path):
    result = invoke("compare", sweep, "--metric", "swd/maen", "--out", tmp_path / "out")
    assert_one_error_line(result, "swd/maen", "did you mean 'swd/mean'", "loss/d")
    assert not (tmp_path / "out").exists()


def test_compare_warns_of_a_damaged_event_file_and_goes_on_with_the_others(sweep, tmp_path):
    (garbage,) = (sweep / "00001-seed=1").glob("events.out.tfevents.*")
    garbage.write_bytes(b"not an event file" * 40)
    (flipped,) = (sweep / "00002-seed=2").glob("events.out.tfevents.*")
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a bit flipped mid-file: the reader stops there
    flipped.write_bytes(bytes(data))
    with pytest.warns(UserWarning) as caught:
        result = invoke("compare", sweep, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    warnings = [str(warning.message) for warning in caught]
    assert any(str(garbage) in line for line in warnings) and any(str(flipped) in line for line in warnings)
    assert any("00001-seed=1" in line and "left out" in line for line in warnings)
    assert "| all runs | 2 |" in result.output  # seeds 0 and 2; seed 1 has nothing readable
    for run in ("00000-seed=0", "00002-seed=2"):
        for path in (sweep / run).glob("events.out.tfevents.*"):
            path.write_bytes(b"\0" * 64)
    with pytest.warns(UserWarning):
        assert_one_error_line(invoke("compare", sweep, "--out", tmp_path / "out2"), "no run", str(sweep))


def test_compare_never_writes_inside_a_run_directory(sweep, tmp_path):
    run = sweep / "00000-seed=0"
    before = sorted(path.name for path in run.iterdir())
    for out in (run, run / "comparison", run / "deeper" / "still"):
        assert_one_error_line(invoke("compare", sweep, "--out", out), str(run), "run directory")
    assert sorted(path.name for path in run.iterdir()) == before


def test_compare_says_which_runs_lack_the_metric_and_ranks_known_metrics_their_way(tmp_path):
    write_run(tmp_path / "runs" / "a", 0, {**SCALARS, "metrics/precision": [0.2, 0.6, 0.4]})
    write_run(tmp_path / "runs" / "b", 1, {**SCALARS, "metrics/precision": [0.3, 0.5, 0.1]})
    write_run(tmp_path / "runs" / "c", 2, {"loss/d": [1.0], "loss/g": [1.0], "metrics/precision": [math.nan] * 2})
    with pytest.warns(UserWarning) as caught:
        result = invoke("compare", tmp_path / "runs", "--metric", "metrics/precision", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "(higher is better)" in result.output and "| 0.55 ± 0.071 |" in result.output
    (warning,) = [str(warning.message) for warning in caught if "no value" in str(warning.message)]
    assert "1 of 3 runs have no value of metrics/precision" in warning and str(tmp_path / "runs" / "c") in warning
    assert "over their other seeds" in warning  # (a, b and c differ only in their seeds)


def test_a_group_without_the_metric_is_said_to_have_none_not_to_be_over_other_seeds(tmp_path):
    write_run(tmp_path / "runs" / "a", 0, {**SCALARS, "metrics/precision": [0.2, 0.6, 0.4]})
    write_run(tmp_path / "runs" / "b", 0, SCALARS, train="g_lr = 0.001\n")  # a group of its own
    with pytest.warns(UserWarning) as caught:
        result = invoke("compare", tmp_path / "runs", "--metric", "metrics/precision", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    (warning,) = [str(warning.message) for warning in caught if "no value" in str(warning.message)]
    assert "1 of 2 runs have no value" in warning and "other seeds" not in warning
    assert "has none (shown as -)" in warning


def test_images_replaced_before_a_cached_runs_first_checkpoint_are_said_at_its_resume(tmp_path, monkeypatch):
    """The record of the images trained on was taken at the first checkpoint: a cache decoded at the
    start, images replaced before that checkpoint, and a resume (which rebuilt the cache from the new
    images) said nothing."""
    from conftest import random_rgb, tiny_config

    from gan.training import loop
    from gan.training.loop import train

    faces = tmp_path / "faces"
    faces.mkdir()
    for index in range(8):
        random_rgb((20, 20), index).save(faces / f"{index}.png")
    data = ("data.dataset=folder", f"data.root={faces}", "data.cache=mmap", f"data.cache_dir={tmp_path / 'cache'}")
    batches = loop.training_batches

    def replaced_after_the_first_batch(*args, **kwargs):
        stream = batches(*args, **kwargs)
        yield next(stream)
        for index in range(8):  # (another version of the data set, under the same names)
            random_rgb((24, 20), 100 + index).save(faces / f"{index}.png")
        yield from stream

    monkeypatch.setattr(loop, "training_batches", replaced_after_the_first_batch)
    run_dir = train(tiny_config(*data, "train.steps=4", "train.checkpoint_every=4"), tmp_path / "run",
                    torch.device("cpu")).run_dir
    monkeypatch.setattr(loop, "training_batches", batches)
    with pytest.warns(UserWarning, match=r"trained on \(other images under the same names: their file sizes differ\)"):
        train(tiny_config(*data, "train.steps=6"), run_dir, torch.device("cpu"), resume=True)


def test_an_image_moved_from_one_cyclegan_domain_to_the_other_is_said_at_the_resume(tmp_path):
    """A's last image moved to B, where it sorts first, changed no name, size or count of the record."""
    from conftest import random_rgb, tiny_recipe_config, write_recipe_data

    from gan.training.loop import train

    data = write_recipe_data(tmp_path / "data")
    root = data["unpaired"]
    for folder in ("trainA", "trainB"):
        for path in (root / folder).iterdir():
            path.unlink()
    for index in range(4):
        random_rgb((24, 24), index).save(root / "trainA" / f"{index}.png")
    for index in range(4, 7):
        random_rgb((24, 24), index).save(root / "trainB" / f"{index}.png")
    run_dir = train(tiny_recipe_config("cyclegan", data, "train.steps=2"), tmp_path / "run",
                    torch.device("cpu")).run_dir
    (root / "trainA" / "3.png").rename(root / "trainB" / "3.png")
    with pytest.warns(UserWarning, match=r"trained on \(domain A: 4 images then, 3 now; domain B: 3 then, 4 now, or "
                                         r"files renamed\)"):
        train(tiny_recipe_config("cyclegan", data, "train.steps=4"), run_dir, torch.device("cpu"), resume=True)


def test_a_resume_on_changed_data_says_it_no_longer_matches_an_uninterrupted_run(tmp_path):
    """Images added to the folder between a stop and its resume change the sample order from the
    checkpoint's place on: the resume used to say nothing of it."""
    from conftest import random_rgb, tiny_config

    from gan.training.loop import train

    faces = tmp_path / "faces"
    faces.mkdir()
    for index in range(8):
        random_rgb((20, 20), index).save(faces / f"{index}.png")
    data = ("data.dataset=folder", f"data.root={faces}")
    run_dir = train(tiny_config(*data, "train.steps=2"), tmp_path / "run", torch.device("cpu")).run_dir
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(tiny_config(*data, "train.steps=3"), run_dir, torch.device("cpu"), resume=True)
    assert not [one for one in caught if "training data differ" in str(one.message)]  # the same data: no word
    random_rgb((20, 20), 9).save(faces / "9.png")
    with pytest.warns(UserWarning, match=r"the training data differ from those .* trained on \(8 images then, 9 "
                                         r"now, or files renamed\)"):
        train(tiny_config(*data, "train.steps=4"), run_dir, torch.device("cpu"), resume=True)
    # other images under the same names (a folder replaced by another version of the data set) went unsaid
    for index in (*range(8), 9):
        random_rgb((24, 20), 100 + index).save(faces / f"{index}.png")
    with pytest.warns(UserWarning, match=r"trained on \(other images under the same names: their file sizes differ\)"):
        train(tiny_config(*data, "train.steps=5"), run_dir, torch.device("cpu"), resume=True)
    # the same images moved elsewhere are the same data: no word
    faces.rename(tmp_path / "moved")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(tiny_config("data.dataset=folder", f"data.root={tmp_path / 'moved'}", "train.steps=6"), run_dir,
              torch.device("cpu"), resume=True)
    assert not [one for one in caught if "training data differ" in str(one.message)]


def test_compare_takes_non_finite_values_out_of_a_group_with_a_warning_instead_of_a_traceback(tmp_path):
    """An infinite metric (PSNR of a perfect reconstruction) or a NaN (a diverged run) ended gan compare
    in a traceback from statistics.stdev."""
    write_run(tmp_path / "runs" / "a", 0, {**SCALARS, "metrics/swd/mean": [30.0, 10.0, 20.0]})
    write_run(tmp_path / "runs" / "b", 1, {**SCALARS, "metrics/swd/mean": [40.0, 12.0, math.inf]})
    write_run(tmp_path / "runs" / "c", 2, {**SCALARS, "metrics/swd/mean": [math.nan, 14.0, 24.0]})
    with pytest.warns(UserWarning) as caught:
        result = invoke("compare", tmp_path / "runs", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    (warning,) = [str(warning.message) for warning in caught if "no finite number" in str(warning.message)]
    assert "2 run(s)" in warning and f"{tmp_path / 'runs' / 'b'} (inf at step 300)" in warning
    assert f"{tmp_path / 'runs' / 'c'} (nan at step 100)" in warning
    # bests 10, 12, 14 -> 12 ± 2; finals 20, 12 (b's last finite), 24 -> 18.67 ± 6.1
    assert "| all runs | 3 | 12 ± 2 | 200 | 18.67 ± 6.1 |" in result.output, result.output


def test_compare_counts_a_run_named_twice_once_and_warns_of_runs_of_the_same_seed(tmp_path, monkeypatch):
    """A run given as `runs/a` and as `./runs/a` was counted as two seeds; two runs of one seed (a rerun,
    a copy) passed for two seeds, so the ± understated the spread."""
    write_run(tmp_path / "runs" / "a", 0, SCALARS)
    write_run(tmp_path / "runs" / "b", 1, {**SCALARS, "metrics/swd/mean": [30.0, 14.0, 24.0]})
    monkeypatch.chdir(tmp_path)
    twice = invoke("compare", "runs/a", "./runs/a", str(tmp_path / "runs" / "b"), "--out", tmp_path / "out")
    assert twice.exit_code == 0 and "| all runs | 2 | 12 ± 2.8 |" in twice.output, twice.output
    write_run(tmp_path / "runs" / "rerun", 0, SCALARS)
    with pytest.warns(UserWarning, match=r"group 'all runs' has runs of the same seed: .*runs/a.*runs/rerun "
                                         r"\(train.seed 0\); they count as 3 seeds"):
        invoke("compare", tmp_path / "runs", "--out", tmp_path / "out2")


def test_the_temp_files_a_killed_command_left_beside_its_outputs_go_at_the_next_write_there(tiny_demo_run,
                                                                                             tmp_path):
    # A kill -9 of gan sample --separate, translate or export left <name>.<pid>.<hex>.tmp files that
    # no later command removed (only run directories were cleaned).
    from gan.core.files import host_tag

    each = tmp_path / "each"
    each.mkdir()
    stale, live = (each / f"00003.png.{dead_pid()}.{host_tag()}.0badcafe.tmp",
                   each / f"00004.png.{os.getpid()}.{host_tag()}.0badcafe.tmp")
    # a person's own, one in the form of an earlier gan's temps (no machine named): a date is 8 hex digits
    own = [each / "notes.tmp", each / "budget.2023.20231231.tmp", each / f"scan.{dead_pid()}.0badf00d.tmp"]
    for path in (stale, live, *own):
        path.write_bytes(b"partial")
    result = invoke("sample", tiny_demo_run, "--n", "2", "--separate", each)
    assert result.exit_code == 0, result.output
    assert not stale.exists() and live.exists()  # (a live writer's stays)
    assert all(path.exists() for path in own), sorted(path.name for path in each.iterdir())
