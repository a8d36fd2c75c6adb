"""`train.keep_best`: best.pt follows the metric through a run and its resume, and the commands
take it with --best."""

import json
import math
import warnings

import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_config, tiny_recipe_config, write_recipe_data

from gan.commands.main import main
from gan.core.checkpoint import BEST_NAME, BEST_RECORD, FORMAT, BestCheckpoint, load_checkpoint, save_checkpoint
from gan.core.files import WriteError
from gan.core.registry import ConfigError
from gan.recipes.pix2pix import Pix2PixRecipe
from gan.training.loop import train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def recipe_data(tmp_path_factory):
    return write_recipe_data(tmp_path_factory.mktemp("data"))


def scripted_psnr(monkeypatch, values):
    """pix2pix's validation reports `values` in turn, one per validation."""
    remaining = list(values)
    monkeypatch.setattr(Pix2PixRecipe, "validation_metrics", lambda self: {"val/psnr": remaining.pop(0),
                                                                           "val/ssim": 0.5})


def recorded_best(run_dir) -> dict:
    """best.json less the signature of the evaluation images."""
    record = json.loads((run_dir / BEST_RECORD).read_text())
    record.pop("evaluated_on", None)
    return record


def test_best_pt_follows_the_metric_through_a_run_and_its_resume(recipe_data, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    common = ("train.keep_best=val/psnr", "log.eval_every=1", "train.checkpoint_every=1")
    scripted_psnr(monkeypatch, [20.0, 25.0, 22.0])  # improves, improves, worsens
    train(tiny_recipe_config("pix2pix", recipe_data, *common, "train.steps=3"), run_dir, CPU)
    record = json.loads((run_dir / BEST_RECORD).read_text())
    evaluated_on = record.pop("evaluated_on")  # (the signature of the evaluation images)
    assert record == {"metric": "val/psnr", "value": 25.0, "step": 2} and len(evaluated_on) == 16
    best = load_checkpoint(run_dir / BEST_NAME)
    assert best["step"] == 2 and best["best"] == {"metric": "val/psnr", "value": 25.0, "evaluated_on": evaluated_on}
    step_two = load_checkpoint(run_dir / "checkpoint-00000002.pt")
    for key, value in step_two["networks"]["generator"].items():
        assert torch.equal(best["networks"]["generator"][key], value), key
    # The resumed run carries the best value on: 24 is no better than 25; 27 is.
    scripted_psnr(monkeypatch, [24.0, 27.0])
    train(tiny_recipe_config("pix2pix", recipe_data, *common, "train.steps=4"), run_dir, CPU, resume=True)
    assert json.loads((run_dir / BEST_RECORD).read_text())["step"] == 2
    train(tiny_recipe_config("pix2pix", recipe_data, *common, "train.steps=5"), run_dir, CPU, resume=True)
    assert json.loads((run_dir / BEST_RECORD).read_text()) == {"metric": "val/psnr", "value": 27.0, "step": 5,
                                                                "evaluated_on": evaluated_on}
    assert load_checkpoint(run_dir / BEST_NAME)["step"] == 5

    out = tmp_path / "exported.safetensors"
    result = CliRunner().invoke(main, ["export", str(run_dir), "--best", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "step 5" in result.output and "best.pt" in result.output


def test_a_resume_measuring_on_changed_evaluation_images_sets_the_old_best_aside(recipe_data, tmp_path, monkeypatch,
                                                                                 capsys):
    # 3 of 6 validation pairs gone between the stop and the resume: scores of the other set were
    # compared with best.pt's, which kept its step though the new set scored better
    import shutil

    data = {**recipe_data, "paired": tmp_path / "paired"}
    shutil.copytree(recipe_data["paired"], data["paired"])
    run_dir = tmp_path / "run"
    common = ("train.keep_best=val/psnr", "log.eval_every=1", "train.checkpoint_every=1")
    scripted_psnr(monkeypatch, [25.0, 20.0, 21.0])
    train(tiny_recipe_config("pix2pix", data, *common, "train.steps=2"), run_dir, CPU)
    train(tiny_recipe_config("pix2pix", data, *common, "train.steps=3"), run_dir, CPU, resume=True)
    assert "set aside" not in capsys.readouterr().err  # the same images: compared with best.pt
    assert json.loads((run_dir / BEST_RECORD).read_text())["step"] == 1
    (data["paired"] / "val" / "1.png").unlink()
    scripted_psnr(monkeypatch, [10.0])
    train(tiny_recipe_config("pix2pix", data, *common, "train.steps=4"), run_dir, CPU, resume=True)
    assert "best.pt (val/psnr 25 at step 1) was measured on other images than the evaluation images hold now (files " \
           "added, removed or changed since): set aside as best-other-images-00000001.pt" in capsys.readouterr().err
    assert json.loads((run_dir / BEST_RECORD).read_text())["step"] == 4
    assert load_checkpoint(run_dir / "best-other-images-00000001.pt")["step"] == 1


def test_evaluation_images_replaced_during_a_run_set_the_old_best_aside_at_the_next_validation(
        recipe_data, tmp_path, monkeypatch, capsys):
    """The images' signature was taken at the first validation only: files replaced mid-run were
    scored at each later validation and compared with a best.pt of the old ones, without a word."""
    import shutil

    from conftest import random_rgb

    data = {**recipe_data, "paired": tmp_path / "paired"}
    shutil.copytree(recipe_data["paired"], data["paired"])
    remaining = [25.0, 20.0, 21.0]

    def replaced_after_the_first(self):
        if len(remaining) == 2:  # (another version of the validation pairs, under the same names, mid-run)
            for path in (data["paired"] / "val").iterdir():
                random_rgb((96, 48), 7).save(path)
        return {"val/psnr": remaining.pop(0), "val/ssim": 0.5}

    monkeypatch.setattr(Pix2PixRecipe, "validation_metrics", replaced_after_the_first)
    run_dir = tmp_path / "run"
    train(tiny_recipe_config("pix2pix", data, "train.keep_best=val/psnr", "log.eval_every=1", "train.steps=3"),
          run_dir, CPU)
    assert "best.pt (val/psnr 25 at step 1) was measured on other images than the evaluation images hold now" \
        in capsys.readouterr().err
    assert recorded_best(run_dir) == {"metric": "val/psnr", "value": 21.0, "step": 3}  # (20 at step 2, then 21)


@pytest.mark.parametrize("recorded,lacks", [
    (None, "its images and count and Inception-v3 weights"),  # (gan before 2026-12-05: no record at all)
    ("0123456789abcdef", "its count and Inception-v3 weights"),  # (before 2026-12-06: the images' digest alone)
    ("0123456789abcdef/count-16", "its Inception-v3 weights"),
])
def test_a_best_record_of_an_earlier_gan_that_does_not_say_what_it_measured_is_set_aside(tmp_path, recorded, lacks):
    # taken as the same, an old best.pt scored on 16 images stood against scores of 48, unsaid
    _kept_best(tmp_path, 12.0, 2, recorded)
    best = BestCheckpoint(tmp_path, "swd/mean", "lower")
    said = best.set_aside_measured_elsewhere("0123456789abcdef/count-48/inception-fedcba9876543210", "the real images")
    assert said.startswith(f"best.pt (swd/mean 12 at step 2) was measured on what its record, written by an earlier gan, "
                           f"does not name ({lacks}): it may not be comparable with this run's scores: set aside as "
                           "best-other-unrecorded-00000002.pt")
    assert best.improves(999.0) and (tmp_path / "best-other-unrecorded-00000002.pt").is_file()
    # what the run cannot say itself (a recipe of one's own without `evaluation_images`) sets nothing aside
    _kept_best(tmp_path, 12.0, 2, recorded)
    assert BestCheckpoint(tmp_path, "swd/mean", "lower").set_aside_measured_elsewhere("", "the evaluation images") is None


@pytest.mark.parametrize("damage", ["truncated", "flipped bit", "empty"])
def test_a_damaged_best_pt_is_warned_of_on_resume_and_replaced_by_the_next_evaluation(recipe_data, tmp_path,
                                                                                     monkeypatch, damage):
    run_dir = tmp_path / "run"
    common = ("train.keep_best=val/psnr", "log.eval_every=1", "train.checkpoint_every=1")
    scripted_psnr(monkeypatch, [25.0, 20.0])
    train(tiny_recipe_config("pix2pix", recipe_data, *common, "train.steps=2"), run_dir, CPU)
    data = (run_dir / BEST_NAME).read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "empty": b"",
               "flipped bit": data[:-2000] + bytes([data[-2000] ^ 1]) + data[-1999:]}[damage]
    (run_dir / BEST_NAME).write_bytes(damaged)
    scripted_psnr(monkeypatch, [21.0])  # worse than the 25 best.json records, but best.pt is lost
    with pytest.warns(UserWarning, match=r"best.pt' is corrupt.*its record is dropped, so the next evaluation keeps "
                                         "best.pt anew"):
        train(tiny_recipe_config("pix2pix", recipe_data, *common, "train.steps=3"), run_dir, CPU, resume=True)
    assert recorded_best(run_dir) == {"metric": "val/psnr", "value": 21.0, "step": 3}
    assert load_checkpoint(run_dir / BEST_NAME)["step"] == 3


def test_a_best_pt_that_is_a_folder_or_another_runs_is_named_and_not_taken_as_this_runs_best(recipe_data, tmp_path,
                                                                                             monkeypatch):
    common = ("train.keep_best=val/psnr", "log.eval_every=1", "train.checkpoint_every=1")
    scripted_psnr(monkeypatch, [30.0])
    other = tmp_path / "other"  # another run, of other networks, whose best is hard to beat
    train(tiny_recipe_config("pix2pix", recipe_data, *common, "train.steps=1", "model.generator_args.channels=8"),
          other, CPU)
    run_dir = tmp_path / "run"
    scripted_psnr(monkeypatch, [25.0, 20.0])
    train(tiny_recipe_config("pix2pix", recipe_data, *common, "train.steps=2"), run_dir, CPU)
    (run_dir / BEST_NAME).unlink()
    (run_dir / BEST_NAME).symlink_to(other / BEST_NAME)
    scripted_psnr(monkeypatch, [21.0])
    with pytest.warns(UserWarning, match=r"best.pt' \(a link to '.*other/best.pt'\) holds other networks than this "
                                         "run's: its record is dropped"):
        train(tiny_recipe_config("pix2pix", recipe_data, *common, "train.steps=3"), run_dir, CPU, resume=True)
    assert not (run_dir / BEST_NAME).is_symlink() and load_checkpoint(run_dir / BEST_NAME)["step"] == 3
    assert load_checkpoint(other / BEST_NAME)["step"] == 1  # the other run's file is left as it was
    (run_dir / BEST_NAME).unlink()
    (run_dir / BEST_NAME).mkdir()
    scripted_psnr(monkeypatch, [22.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(tiny_recipe_config("pix2pix", recipe_data, *common, "train.steps=4"), run_dir, CPU, resume=True)
    said = [str(warning.message) for warning in caught]
    assert any("best.pt' is a folder, not a checkpoint: no best.pt can be kept until it is moved" in line
               for line in said), said
    assert any("no best.pt is kept; training goes on" in line for line in said), said


def test_a_resume_sets_aside_a_best_pt_kept_at_a_step_it_trains_again(recipe_data, tmp_path, monkeypatch, capsys):
    """Killed after step 4 before its checkpoint: the resume trains steps 3 and 4 again, so step 3's
    best.pt (30 dB there) is no longer this run's history (TensorBoard purges those steps too)."""
    run_dir = tmp_path / "run"
    common = ("train.keep_best=val/psnr", "log.eval_every=1", "train.checkpoint_every=2")
    scripted_psnr(monkeypatch, [20.0, 21.0, 30.0, 22.0])
    train(tiny_recipe_config("pix2pix", recipe_data, *common, "train.steps=4"), run_dir, CPU)
    assert json.loads((run_dir / BEST_RECORD).read_text())["step"] == 3
    (run_dir / "checkpoint-00000004.pt").unlink()  # as a kill -9 before it was written
    (run_dir / BEST_RECORD).write_text('{"metric": "val/psnr", "value": 30.0}')  # as written before records had steps
    scripted_psnr(monkeypatch, [23.0, 24.0])
    train(tiny_recipe_config("pix2pix", recipe_data, *common, "train.steps=4"), run_dir, CPU, resume=True)
    assert "best.pt (val/psnr 30 at step 3) came from steps this resume from step 2 trains again" in (
        capsys.readouterr().err)
    assert recorded_best(run_dir) == {"metric": "val/psnr", "value": 24.0, "step": 4}
    assert load_checkpoint(run_dir / BEST_NAME)["step"] == 4
    assert json.loads((run_dir / "best-discarded-00000003.json").read_text())["value"] == 30.0  # kept aside
    assert load_checkpoint(run_dir / "best-discarded-00000003.pt")["step"] == 3
    # discarded at the same step again (a second kill -9): the first set-aside copy stays
    record = BestCheckpoint(run_dir, "val/psnr", "higher")
    record.step = 3  # as if step 3's best had been kept again
    assert "set aside as best-discarded-00000003-1.pt" in record.discard_after(2)
    assert json.loads((run_dir / "best-discarded-00000003.json").read_text())["value"] == 30.0
    assert (run_dir / "best-discarded-00000003-1.pt").is_file() and not (run_dir / BEST_NAME).exists()
    # a best.pt kept at the resume's own step is history the resume keeps: left where it is
    (run_dir / "best-discarded-00000003-1.pt").rename(run_dir / BEST_NAME)
    record.step, record.value = 3, 30.0
    assert record.discard_after(3) is None and (run_dir / BEST_NAME).is_file()
    assert (record.step, record.value) == (3, 30.0) and not list(run_dir.glob("best-discarded-*-2.pt"))


def test_a_resume_that_keeps_no_best_still_sets_aside_a_best_pt_of_the_steps_it_trains_again(recipe_data, tmp_path,
                                                                                             monkeypatch, capsys):
    # With train.keep_best off on the resume, step 3's best.pt stayed, and `gan sample --best` took it.
    run_dir = tmp_path / "run"
    common = ("log.eval_every=1", "train.checkpoint_every=2", "train.steps=4")
    scripted_psnr(monkeypatch, [20.0, 21.0, 30.0, 22.0])
    train(tiny_recipe_config("pix2pix", recipe_data, "train.keep_best=val/psnr", *common), run_dir, CPU)
    (run_dir / "checkpoint-00000004.pt").unlink()
    scripted_psnr(monkeypatch, [23.0, 24.0])
    train(tiny_recipe_config("pix2pix", recipe_data, "train.keep_best=", *common), run_dir, CPU, resume=True)
    assert "best.pt (of step 3) came from steps this resume from step 2 trains again: set aside as " \
           "best-discarded-00000003.pt; this run keeps no best.pt" in capsys.readouterr().err
    assert not (run_dir / BEST_NAME).exists() and load_checkpoint(run_dir / "best-discarded-00000003.pt")["step"] == 3


def test_a_resume_that_keeps_best_by_another_metric_sets_the_old_best_pt_aside(recipe_data, tmp_path, monkeypatch,
                                                                                capsys):
    # The next evaluation by val/ssim replaced the best.pt kept by val/psnr without a word.
    run_dir = tmp_path / "run"
    common = ("log.eval_every=1", "train.checkpoint_every=2")
    scripted_psnr(monkeypatch, [20.0, 25.0])
    train(tiny_recipe_config("pix2pix", recipe_data, "train.keep_best=val/psnr", "train.steps=2", *common), run_dir,
          CPU)
    scripted_psnr(monkeypatch, [26.0, 27.0])
    train(tiny_recipe_config("pix2pix", recipe_data, "train.keep_best=val/ssim", "train.steps=4", *common), run_dir,
          CPU, resume=True)
    assert "best.pt was kept by val/psnr (25 at step 2): set aside as best-by-val-psnr-00000002.pt, as this run now " \
           "keeps best.pt by val/ssim" in capsys.readouterr().err
    assert json.loads((run_dir / "best-by-val-psnr-00000002.json").read_text())["value"] == 25.0
    assert load_checkpoint(run_dir / "best-by-val-psnr-00000002.pt")["best"]["metric"] == "val/psnr"
    assert json.loads((run_dir / BEST_RECORD).read_text())["metric"] == "val/ssim"
    # back to val/psnr: a worse score was kept as "new best", its own best of 25 left aside
    scripted_psnr(monkeypatch, [10.0])
    train(tiny_recipe_config("pix2pix", recipe_data, "train.keep_best=val/psnr", "train.steps=5", *common), run_dir,
          CPU, resume=True)
    assert "its own best by val/psnr (25 at step 2), set aside as best-by-val-psnr-00000002.pt when the run kept it " \
           "by another metric, is best.pt again" in capsys.readouterr().err
    assert recorded_best(run_dir) == {"metric": "val/psnr", "value": 25.0, "step": 2}
    assert load_checkpoint(run_dir / BEST_NAME)["step"] == 2 and not (run_dir / "best-by-val-psnr-00000002.pt").exists()
    (by_ssim,) = run_dir.glob("best-by-val-ssim-*.pt")
    assert load_checkpoint(by_ssim)["best"]["metric"] == "val/ssim"


def test_a_best_pt_kept_again_by_an_exact_resume_drops_its_set_aside_copy(tmp_path):
    # each kill -9 and exact resume set best.pt aside, then kept the same one again: another
    # checkpoint-sized copy every time; a copy of another branch (a rollback's) is kept
    from gan.training.records import drop_identical_discarded_best

    weights = {"generator": {"w": torch.arange(4.0)}}
    state = {"format": FORMAT, "step": 4, "networks": weights, "best": {"metric": "swd/mean", "value": 3.0}}
    save_checkpoint(state, tmp_path / BEST_NAME)
    save_checkpoint(state, tmp_path / "best-discarded-00000004.pt")
    (tmp_path / "best-discarded-00000004.json").write_text("{}")
    other = {**state, "networks": {"generator": {"w": torch.arange(4.0) + 1}}}
    save_checkpoint(other, tmp_path / "best-discarded-00000004-1.pt")
    save_checkpoint(state, tmp_path / "best-discarded-00000006.pt")  # (of another step: not this one's)
    drop_identical_discarded_best(tmp_path, 4, state)  # (the state best.pt was just saved with)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "best-discarded-00000004-1.pt", "best-discarded-00000006.pt", "best.pt"]


def test_a_resume_drops_the_metrics_rows_of_the_steps_it_trains_again(tmp_path):
    settings = ("metrics.every=2", "metrics.num_samples=16", "metrics.names=['swd']", "train.checkpoint_every=2",
                f"metrics.cache_dir='{tmp_path / 'cache'}'", "train.steps=4")
    result = train(tiny_config(*settings), tmp_path / "run", CPU)
    record = result.run_dir / "metrics.jsonl"
    first = [json.loads(line) for line in record.read_text().splitlines()]
    (result.run_dir / "checkpoint-00000004.pt").unlink()
    train(tiny_config(*settings), result.run_dir, CPU, resume=True)
    again = [json.loads(line) for line in record.read_text().splitlines()]
    assert [row["step"] for row in again] == [2, 4]  # not 2, 4, 4
    assert again == first  # the resume is exact: step 4 scores as it did
    # a line damaged by hand (a byte that is no UTF-8) is kept as it is, by the resume and the next row
    damaged = b'{"note": "\xff"}\n'
    record.write_bytes(record.read_bytes() + damaged)
    (result.run_dir / "checkpoint-00000004.pt").unlink()
    train(tiny_config(*settings), result.run_dir, CPU, resume=True)
    lines = record.read_bytes().splitlines(keepends=True)
    assert lines[1] == damaged and [json.loads(line)["step"] for line in (lines[0], *lines[2:])] == [2, 4]
    # a last line cut short by an edit (no newline) keeps the next row on a line of its own
    record.write_bytes(lines[0] + b'{"step": 3, "swd/mean"')
    (result.run_dir / "checkpoint-00000004.pt").unlink()
    train(tiny_config(*settings), result.run_dir, CPU, resume=True)
    assert record.read_bytes().splitlines()[1] == b'{"step": 3, "swd/mean"'
    assert json.loads(record.read_bytes().splitlines()[2])["step"] == 4


def test_lower_is_better_for_distances_and_a_bad_value_never_wins(tmp_path):
    best = BestCheckpoint(tmp_path, "swd/mean", "lower")
    assert best.improves(30.0)
    best.value = 30.0
    assert best.improves(29.0) and not best.improves(31.0) and not best.improves(math.nan)
    (tmp_path / BEST_RECORD).write_text('{"metric": "fid", "value": 3.0, "step": 7}')
    save_checkpoint({"format": FORMAT, "step": 7, "best": {"metric": "fid", "value": 3.0}}, tmp_path / BEST_NAME)
    assert BestCheckpoint(tmp_path, "swd/mean", "lower").value is None  # another metric's record
    assert BestCheckpoint(tmp_path, "fid", "lower").value == 3.0
    # best.pt deleted by hand: its record would never be beaten, and no best.pt kept again
    (tmp_path / BEST_NAME).unlink()
    with pytest.warns(UserWarning, match=r"best.json' records fid 3 of step 7, but best.pt is gone: the record is "
                                         "dropped, so the next evaluation keeps best.pt anew"):
        assert BestCheckpoint(tmp_path, "fid", "lower").value is None
    (tmp_path / BEST_RECORD).write_text('{"metric": "fid", "val')  # damaged: a new best is written
    with pytest.warns(UserWarning, match="best.json' is malformed"):  # the fault's own warning, not the summary's
        assert BestCheckpoint(tmp_path, "fid", "lower").value is None


def test_a_metric_the_run_does_not_compute_is_warned_about(tmp_path):
    config = tiny_config("train.keep_best=swd/mean", "train.steps=2")  # TINY has metrics.every = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(config, tmp_path / "run", CPU)
    assert any("train.keep_best = 'swd/mean': no best.pt is kept" in str(w.message) and "metrics.every" in
               str(w.message) for w in caught)
    assert not (tmp_path / "run" / BEST_NAME).exists()
    result = CliRunner().invoke(main, ["sample", str(tmp_path / "run"), "--best", "--out", str(tmp_path / "a.png")])
    assert result.exit_code != 0 and "no best.pt in run directory" in result.output
    # and why: it blamed train.keep_best, which was set, where [metrics] (or validation) was off
    assert "train.keep_best = 'swd/mean' follows [metrics], and metrics.every = 0 switched them off" in result.output
    pix2pix = tiny_recipe_config("pix2pix", write_recipe_data(tmp_path / "data"), "train.keep_best=val/psnr",
                                 "log.eval_every=0", "train.steps=1")
    train(pix2pix, tmp_path / "p2p", CPU)
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "p2p"), "--best", "--data", str(tmp_path / "data")])
    assert "train.keep_best = 'val/psnr' follows validation, and log.eval_every = 0 switched it off" in result.output
    with pytest.raises(ConfigError, match="train.keep_best must be one of"):
        tiny_config("train.keep_best=psnr")


def test_a_generative_metric_asked_of_an_image_to_image_run_points_to_its_validation(tmp_path):
    """The advice was [metrics] with metrics.every > 0, which an image-to-image run then refuses."""
    config = tiny_recipe_config("pix2pix", write_recipe_data(tmp_path / "data"), "train.keep_best=swd/mean")
    with pytest.warns(UserWarning, match=r"'swd/mean' is a generative metric of unconditional \(dcgan\) runs; a "
                                         r"pix2pix run keeps its best by a metric of its validation \(train.keep_best "
                                         r"= val/swd, val/psnr"):
        train(config, tmp_path / "run", CPU)


def test_dcgan_keeps_its_best_by_swd(tmp_path):
    config = tiny_config("train.keep_best=swd/mean", "metrics.every=2", "metrics.names=[\"swd\"]",
                         "metrics.num_samples=64", "train.steps=4")
    train(config, tmp_path / "run", CPU)
    record = json.loads((tmp_path / "run" / BEST_RECORD).read_text())
    assert record["metric"] == "swd/mean" and record["step"] in (2, 4) and record["value"] > 0
    result = CliRunner().invoke(main, ["sample", str(tmp_path / "run"), "--best", "--n", "4",
                                       "--out", str(tmp_path / "best.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "best.png").is_file()


def test_a_validation_metric_the_recipe_never_gives_is_said_once(recipe_data, tmp_path):
    """CycleGAN's validation gives val/cycle_l1 and val/swd_AtoB, never val/psnr: no best.pt, said once."""
    config = tiny_recipe_config("cyclegan", recipe_data, "train.keep_best=val/psnr", "log.eval_every=1",
                                "train.steps=3")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(config, tmp_path / "run", CPU)
    said = [str(w.message) for w in caught if "train.keep_best = 'val/psnr'" in str(w.message)]
    assert len(said) == 1 and "val/cycle_l1" in said[0], said
    assert not (tmp_path / "run" / BEST_NAME).exists()


def test_best_pt_written_and_best_json_refused_is_still_the_best_and_a_resume_reads_it(tmp_path, monkeypatch):
    """best.pt is written first; a full disk then refusing best.json must not let a worse value
    replace best.pt later, nor a resume believe the older best.json."""
    import gan.core.checkpoint as checkpoint_module

    best = BestCheckpoint(tmp_path, "swd/mean", "lower")
    best.save({"format": FORMAT, "step": 2}, 2, 30.0)

    def disk_full(path, text):
        raise WriteError(f"could not write '{path}': No space left on device")

    monkeypatch.setattr(checkpoint_module, "write_text_atomically", disk_full)
    with pytest.raises(WriteError):
        best.save({"format": FORMAT, "step": 4}, 4, 20.0)
    assert (best.value, best.step) == (20.0, 4) and not best.improves(25.0)  # 25 is worse than best.pt's 20
    monkeypatch.undo()
    with pytest.warns(UserWarning, match=r"disagrees with best.pt, which holds swd/mean 20 of step 4"):
        resumed = BestCheckpoint(tmp_path, "swd/mean", "lower")
    assert (resumed.value, resumed.step) == (20.0, 4)


def _kept_best(run_dir, value: float, step: int, evaluated_on: str | None = None) -> None:
    save_checkpoint({"format": FORMAT, "step": step}, run_dir / BEST_NAME)
    (run_dir / BEST_RECORD).write_text(json.dumps({"metric": "swd/mean", "value": value, "step": step,
                                                   **({"evaluated_on": evaluated_on} if evaluated_on else {})}))


def test_a_rewind_keeps_the_best_score_recorded_up_to_its_step_as_the_one_to_beat(tmp_path):
    """A resume from step 10 after best.pt was kept at 16 cleared the bar: its first evaluation, 225
    against 184 recorded at step 10 and before, was announced "new best" and kept as best.pt."""
    rows = ((2, 184.9), (4, 184.6), (10, 184.2), (14, 190.0))
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": step, "num_images": 64, "swd/mean": value})
                                                    + "\n" for step, value in rows))
    _kept_best(tmp_path, 183.0, 16)
    best = BestCheckpoint(tmp_path, "swd/mean", "lower")
    said = best.discard_after(10, count=64)
    assert ("set aside as best-discarded-00000016.pt; best.pt is kept anew by the first evaluation that beats 184.2, "
            "step 10's (the best of metrics.jsonl up to step 10") in said
    assert not best.improves(225.3) and best.improves(184.1)
    # the bar is this run's own score, not a record of an earlier gan's to set aside (every score after a
    # rewind became best.pt, worse than the rows kept)
    assert best.set_aside_measured_elsewhere("abc/count-64", "the real images of data.root") is None
    assert not best.improves(225.3) and not list(tmp_path.glob("best-other-*"))
    # rows of another count of images are no rivals (metrics.num_samples changed by the same resume)
    _kept_best(tmp_path, 183.0, 16)
    best = BestCheckpoint(tmp_path, "swd/mean", "lower")
    assert best.discard_after(10, count=16).endswith("the next evaluation keeps best.pt anew") and best.improves(999.0)
    _kept_best(tmp_path, 150.0, 16)  # (no rows to go by: any score keeps best.pt anew, as before)
    (tmp_path / "metrics.jsonl").unlink()
    best = BestCheckpoint(tmp_path, "swd/mean", "lower")
    assert best.discard_after(10, count=64).endswith("the next evaluation keeps best.pt anew") and best.improves(999.0)


def test_a_best_scored_on_another_count_of_images_is_no_rival(tmp_path):
    """metrics.num_samples 16 -> 64 on a resume: SWD's bias fell with the count, and 160 at 64 images
    "beat" 172 at 16, though step 56's weights were the better (159.7 at 64)."""
    _kept_best(tmp_path, 172.2, 56, "abc/count-16")
    best = BestCheckpoint(tmp_path, "swd/mean", "lower")
    said = best.set_aside_measured_elsewhere("abc/count-64", "the real images of data.root")
    assert said.startswith("best.pt (swd/mean 172.2 at step 56) was measured on 16 images, where this run now "
                           "scores 64 (metrics.num_samples)") and "best-other-count-00000056.pt" in said
    assert best.improves(500.0) and (tmp_path / "best-other-count-00000056.pt").is_file()
    _kept_best(tmp_path, 172.2, 56, "abc/count-64")  # (the same count: no rival to set aside)
    assert BestCheckpoint(tmp_path, "swd/mean", "lower").set_aside_measured_elsewhere("abc/count-64", "x") is None


def test_a_rewind_that_also_changes_the_image_count_keeps_a_best_pt(tmp_path):
    """Rewound past best.pt with metrics.num_samples 16 -> 64: the bar came from a 16-image row, which
    64-image scores never beat, and the run ended without best.pt though it scored three times."""
    metrics = ("metrics.every=2", 'metrics.names=["swd"]', "train.keep_checkpoints=10", "train.steps=8")
    train(tiny_config(*metrics, "metrics.num_samples=16"), tmp_path, CPU)
    kept = json.loads((tmp_path / BEST_RECORD).read_text())["step"]
    for later in range(kept, 9, 2):  # (back to before best.pt's step)
        (tmp_path / f"checkpoint-{later:08d}.pt").unlink(missing_ok=True)
    train(tiny_config(*metrics, "metrics.num_samples=64"), tmp_path, CPU, resume=True)
    assert (tmp_path / BEST_NAME).is_file() and json.loads((tmp_path / BEST_RECORD).read_text())["step"] >= kept


def test_every_metric_a_best_checkpoint_follows_is_kept_in_its_own_direction():
    # a similarity or coverage (PSNR, SSIM, precision, recall) is better higher, a distance or error
    # lower: val/ssim or recall the wrong way round kept the worst checkpoint as best.pt, unsaid
    from gan.core.config import BEST_METRICS

    higher_is_better = ("psnr", "ssim", "precision", "recall")
    for metric, direction in BEST_METRICS.items():
        family = metric.removeprefix("val/").split("/")[0].split("_")[0]
        assert direction == ("higher" if family in higher_is_better else "lower"), metric
    assert {"val/ssim", "recall", "val/psnr", "precision", "fid", "val/cycle_l1", "val/swd_AtoB"} <= set(BEST_METRICS)


def test_the_last_step_is_validated_when_it_is_no_multiple_of_eval_every(recipe_data, tmp_path, monkeypatch):
    # (guards a mutation probe found open: a run of 3 steps at eval_every 2 ended without its final
    # scores, best.pt chosen from step 2's)
    steps = []
    monkeypatch.setattr(Pix2PixRecipe, "validation_metrics",
                        lambda self: steps.append(len(steps)) or {"val/psnr": 20.0 + len(steps), "val/ssim": 0.5})
    run_dir = tmp_path / "run"
    train(tiny_recipe_config("pix2pix", recipe_data, "train.steps=3", "log.eval_every=2",
                             "train.keep_best=val/psnr"), run_dir, CPU)
    assert len(steps) == 2 and recorded_best(run_dir)["step"] == 3
