"""Generative metrics of translations (SWD, FID, KID of outputs against target images): on
constructed sets, in the training loop of pix2pix and CycleGAN, and in `gan eval`."""

import json
import random
import sys
import warnings

import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_recipe_config, write_recipe_data
from PIL import ImageFilter
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_generative_metrics import random_inception_weights, to_uint8  # noqa: F401 (a fixture)

from gan.commands.main import main
from gan.core.checkpoint import list_checkpoints, load_checkpoint
from gan.data.synthetic import draw_face
from gan.metrics.inception import InceptionWeightsNotFoundError
from gan.metrics.translation import TranslationMetrics, fixed_subset
from gan.training.loop import train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def faces():
    return [draw_face(64, random.Random(index)) for index in range(96)]


def _blurred(faces, radius):
    return to_uint8([face.filter(ImageFilter.GaussianBlur(radius)) for face in faces])


def test_identical_sets_give_swd_near_its_floor_and_blurred_outputs_score_worse(faces, tmp_path):
    with pytest.warns(UserWarning, match="skipping fid, kid of translations"):
        metrics = TranslationMetrics(CPU, str(tmp_path / "absent.pth"))
    targets = to_uint8(faces)
    statistics = metrics.targets(targets, len(targets))
    same = metrics.score(targets, statistics)
    assert set(same) == {"swd"}  # no Inception weights here: FID and KID skipped, named
    assert set(metrics.skipped) == {"fid", "kid"}
    blurred = [metrics.score(_blurred(faces, radius), statistics)["swd"] for radius in (1, 2, 3)]
    # (measured: 16.7 for the same images at other random patches; 40, 85, 122 blurred)
    assert same["swd"] < 0.5 * blurred[0] and blurred[0] < blurred[1] < blurred[2]
    assert same["swd"] < 0.2 * blurred[2]
    # unequal sets: 60 outputs against the 96 targets (cut to a fixed 60 of them)
    fewer = metrics.targets(targets, 60)
    assert fewer.count == 60
    assert metrics.score(targets[:60], fewer)["swd"] < 0.5 * metrics.score(_blurred(faces[:60], 2), fewer)["swd"]
    with pytest.raises(ValueError, match="statistics are for 60 outputs, got 10"):
        metrics.score(targets[:10], fewer)
    with pytest.raises(TypeError, match="uint8 images"):
        metrics.score(targets.float(), statistics)


def test_fixed_subset_is_a_fixed_choice():
    images = torch.arange(10)
    assert torch.equal(fixed_subset(images, 20), images)
    chosen = fixed_subset(images, 4, seed=3)
    assert torch.equal(chosen, fixed_subset(images, 4, seed=3)) and len(set(chosen.tolist())) == 4
    assert chosen.tolist() == sorted(chosen.tolist())


def test_fid_and_kid_of_translations_with_inception_weights(faces, random_inception_weights):  # noqa: F811
    # Randomly initialised Inception features barely vary between images (the real weights cannot be
    # downloaded here), so this checks the path, not the ranking: the ranking is SWD's test above.
    metrics = TranslationMetrics(CPU, str(random_inception_weights), require_weights=True)
    targets = to_uint8(faces[:12])
    statistics = metrics.targets(targets, 8)
    assert statistics.features.shape == (12, 2048) and statistics.count == 8
    same = metrics.score(targets, statistics)
    assert set(same) == {"swd", "fid", "kid"} and not metrics.skipped
    assert same["fid"] == pytest.approx(0, abs=1e-6) and abs(same["kid"]) < 1e-6


def test_asked_for_weights_that_are_absent_are_an_error(tmp_path):
    with pytest.raises(InceptionWeightsNotFoundError):
        TranslationMetrics(CPU, str(tmp_path / "absent.pth"), require_weights=True)


# ----------------------------------------------------------------------------- in training and gan eval


@pytest.fixture(scope="module")
def recipe_data(tmp_path_factory):
    return write_recipe_data(tmp_path_factory.mktemp("data"))


def _scalars(run_dir, tag):
    return [event.value for event in EventAccumulator(str(run_dir)).Reload().Scalars(tag)]


@pytest.mark.parametrize("recipe,tags", [
    ("pix2pix", ["val/psnr", "val/swd"]),
    ("cyclegan", ["val/cycle_l1", "val/swd_AtoB", "val/swd_BtoA", "val/swd"]),
])
def test_validation_logs_translation_metrics_and_changes_no_training(recipe, tags, recipe_data, tmp_path):
    size = ("data.resolution=32", "data.load_size=36", "train.steps=4")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fid, kid skipped: no Inception weights here
        validated = train(tiny_recipe_config(recipe, recipe_data, *size, "log.eval_every=2"), tmp_path / "on", CPU,
                          progress_stream=sys.stdout)
        plain = train(tiny_recipe_config(recipe, recipe_data, *size, "log.eval_every=0"), tmp_path / "off", CPU,
                      progress_stream=sys.stdout)
    for tag in tags:
        values = _scalars(validated.run_dir, tag)
        assert len(values) == 2 and all(value > 0 for value in values), tag
    if recipe == "cyclegan":  # val/swd: the mean of both directions, as one figure to compare and keep a best by
        by_direction = zip(*(_scalars(validated.run_dir, f"val/swd_{way}") for way in ("AtoB", "BtoA")), strict=True)
        assert _scalars(validated.run_dir, "val/swd") == pytest.approx([sum(pair) / 2 for pair in by_direction])
    on, off = (load_checkpoint(list_checkpoints(run)[-1]) for run in (validated.run_dir, plain.run_dir))
    for name, weights in off["networks"].items():
        assert all(torch.equal(value, on["networks"][name][key]) for key, value in weights.items()), name


def test_keep_best_can_follow_the_translations_swd(recipe_data, tmp_path):
    best = tiny_recipe_config("pix2pix", recipe_data, "log.eval_every=2", "train.keep_best=val/swd",
                              "train.steps=4")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = train(best, tmp_path / "run", CPU, progress_stream=sys.stdout)
    kept = json.loads((run.run_dir / "best.json").read_text())
    assert kept["metric"] == "val/swd" and kept["value"] == pytest.approx(min(_scalars(run.run_dir, "val/swd")))


def test_metrics_names_choose_what_validation_scores_translations_by(recipe_data, random_inception_weights,  # noqa: F811
                                                                     tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # where the weights would be by default: absent
    size = ("data.resolution=32", "data.load_size=36", "train.steps=2", "log.eval_every=2")
    # no weights: FID, KID skipped, and the warning says how not to ask for them, which then quiets it
    with pytest.warns(UserWarning, match="skipping fid, kid of translations(.|\n)*\n  not to ask for them: "
                                         "gan train --set 'metrics.names=\\[\"swd\"\\]'$"):
        train(tiny_recipe_config("pix2pix", recipe_data, *size), tmp_path / "default", CPU, progress_stream=sys.stdout)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        swd_only = train(tiny_recipe_config("pix2pix", recipe_data, *size, "metrics.names=['swd']"), tmp_path / "swd",
                         CPU, progress_stream=sys.stdout)
    assert [str(warning.message) for warning in caught] == []
    tags = EventAccumulator(str(swd_only.run_dir)).Reload().Tags()["scalars"]
    assert "val/swd" in tags and not {"val/fid", "val/kid"} & set(tags)
    # with weights, what the list names and no more: KID alone, no SWD pass
    kid_only = train(tiny_recipe_config("pix2pix", recipe_data, *size, "metrics.names=['kid']",
                                        f"metrics.inception_weights='{random_inception_weights}'"),
                     tmp_path / "kid", CPU, progress_stream=sys.stdout)
    tags = EventAccumulator(str(kid_only.run_dir)).Reload().Tags()["scalars"]
    assert "val/kid" in tags and not {"val/swd", "val/fid"} & set(tags)
    # a best.pt by a metric the list leaves out would never be kept: said at the start
    with pytest.warns(UserWarning, match="train.keep_best = 'val/swd': no best.pt is kept: validation scores "
                                         "translations by the metrics of metrics.names, and \\['kid'\\] leaves out 'swd'"):
        train(tiny_recipe_config("pix2pix", recipe_data, *size, "metrics.names=['kid']", "train.keep_best=val/swd",
                                 f"metrics.inception_weights='{random_inception_weights}'"),
              tmp_path / "best", CPU, progress_stream=sys.stdout)


@pytest.mark.parametrize("recipe,keys", [("pix2pix", {"swd"}), ("cyclegan", {"swd_AtoB", "swd_BtoA", "swd"})])
def test_gan_eval_scores_translations_as_distributions(recipe, keys, recipe_data, tmp_path):
    size = ("data.resolution=32", "data.load_size=36")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = train(tiny_recipe_config(recipe, recipe_data, *size, "log.eval_every=0"), tmp_path / "run", CPU,
                    progress_stream=sys.stdout)
    folder = recipe_data["paired"] / "val" if recipe == "pix2pix" else recipe_data["unpaired"]
    result = CliRunner().invoke(main, ["eval", str(run.run_dir), "--data", str(folder), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    (json_path,) = run.run_dir.glob("eval-*.json")
    scores = json.loads(json_path.read_text())
    assert keys <= set(scores) and all(scores[key] > 0 for key in keys)
    assert set(scores["skipped"]) == {"fid", "kid"}
    if recipe == "cyclegan":  # 2 testA images against the 2 testB images, and back
        assert scores["swd"] == pytest.approx((scores["swd_AtoB"] + scores["swd_BtoA"]) / 2)
        assert scores["images"] == {"AtoB": {"translations": 2, "targets": 2},
                                    "BtoA": {"translations": 2, "targets": 2}}
    else:  # the outputs of the 2 validation pairs against their 2 targets
        assert scores["images"] == {"translations": 2, "targets": 2}
    for key in keys:
        assert f"{key} " in result.output
    # Weights asked for and absent: refused before any image is scored (after the whole table and its
    # CSV, which then stood without its record, and refused the rerun)
    csv = tmp_path / "named.csv"
    result = CliRunner().invoke(main, ["eval", str(run.run_dir), "--data", str(folder), "--device", "cpu", "--csv",
                                       str(csv), "--inception-weights", str(tmp_path / "absent.pth")])
    assert result.exit_code == 2 and "absent.pth" in result.output and "mean" not in result.output, result.output
    assert not csv.exists()


def test_gan_eval_shows_the_inception_passes_of_translations(recipe_data, tmp_path, random_inception_weights):  # noqa: F811
    # minutes on a CPU without a line, where the DCGAN evaluation shows them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = train(tiny_recipe_config("pix2pix", recipe_data, "data.resolution=32", "data.load_size=36",
                                       "log.eval_every=0"), tmp_path / "run", CPU, progress_stream=sys.stdout)
    result = CliRunner().invoke(main, ["eval", str(run.run_dir), "--data", str(recipe_data["paired"] / "val"),
                                       "--device", "cpu", "--inception-weights", str(random_inception_weights)])
    assert result.exit_code == 0, result.output
    assert "target through Inception 2/2" in result.output and "translation through Inception 2/2" in result.output


def test_a_set_too_small_for_a_distribution_is_said_in_eval_and_in_validation(recipe_data, tmp_path):
    """SWD of a single pair used to vanish without a word: no score, no reason among the skipped."""
    import shutil

    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(sorted((recipe_data["paired"] / "val").iterdir())[0], one)
    with pytest.warns(UserWarning, match=r"val/swd \(and FID, KID\) not computed: the validation set gives 1 "
                                         r"translation\(s\) against 1 target image\(s\), and a distribution needs "
                                         r"at least 2 of each"):
        run = train(tiny_recipe_config("pix2pix", recipe_data, f"data.root={tmp_path}", "data.split=one",
                                       "data.val_split=one", "train.steps=2"), tmp_path / "run", CPU)
    with pytest.warns(UserWarning, match="swd not computed: 1 translation"):
        result = CliRunner().invoke(main, ["eval", str(run.run_dir), "--data", str(one), "--csv",
                                           str(tmp_path / "e.csv")])
    assert result.exit_code == 0, result.output
    assert "\n\n" not in result.output and not result.output.startswith("\n"), result.output  # (no empty score line)
    skipped = json.loads((tmp_path / "e.json").read_text())["skipped"]
    assert skipped["swd"] == "1 translation(s) against 1 real image(s): a distribution needs at least 2 of each"


def test_a_cyclegan_test_folder_of_one_image_skips_its_direction_and_trains_on(recipe_data, tmp_path):
    # Two testA images translated against one testB image: the target set's size was never
    # checked, and the first validation stopped training in a TypeError.
    import shutil

    data = tmp_path / "unpaired"
    shutil.copytree(recipe_data["unpaired"], data)
    for extra in sorted((data / "testB").iterdir())[1:]:
        extra.unlink()
    with pytest.warns(UserWarning, match=r"val/swd_AtoB \(and FID, KID\) not computed: the validation set gives 2 "
                                         r"translation\(s\) against 1 target image\(s\)"):
        run = train(tiny_recipe_config("cyclegan", recipe_data, f"data.root={data}", "log.eval_every=2"),
                    tmp_path / "run", CPU)
    assert run.step == 4
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set(EventAccumulator(str(run.run_dir)).Reload().Tags()["scalars"])
    # (and B -> A translates the one testB image: too few translations that way)
    assert "val/cycle_l1" in tags and not {"val/swd_AtoB", "val/swd_BtoA", "val/swd"} & tags, tags


def test_translations_too_small_for_swd_train_and_evaluate_without_it_said(recipe_data, tmp_path):
    """A CycleGAN of 12 px crops stopped at its first validation (SWD needs 16 px), and the advice,
    log.eval_every=0, lost val/cycle_l1 too; gan eval left its CSV without the JSON."""
    with pytest.warns(UserWarning, match="skipping swd of translations: SWD needs images of at least 16 px, these "
                                         "are 12 px"):
        run = train(tiny_recipe_config("cyclegan", recipe_data, "data.resolution=12", "data.load_size=14",
                                       "log.eval_every=2"), tmp_path / "run", CPU)
    tags = set(EventAccumulator(str(run.run_dir)).Reload().Tags()["scalars"])
    assert run.step == 4 and "val/cycle_l1" in tags and not any(tag.startswith("val/swd") for tag in tags)
    with pytest.warns(UserWarning, match="skipping swd of translations"):
        result = CliRunner().invoke(main, ["eval", str(run.run_dir), "--data", str(recipe_data["unpaired"]),
                                           "--csv", str(tmp_path / "e.csv")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "e.json").read_text())["skipped"]["swd"].startswith("SWD needs images of at least")


def test_cyclegan_eval_scores_each_direction_against_the_real_images_of_its_target_domain(tmp_path):
    # A->B translations against testB, B->A against testA: swapped, every distribution score of both
    # directions was against the wrong domain, and the cycle rows showed nothing wrong
    from PIL import Image

    from gan.inference.scoring import evaluate_cycle
    from gan.inference.tiling import Translator

    for domain, level in (("testA", 40), ("testB", 200)):
        (tmp_path / domain).mkdir()
        for index in range(3):
            Image.new("RGB", (16, 16), (level + index,) * 3).save(tmp_path / domain / f"{index}.png")
    same = Translator(torch.nn.Identity(), torch.device("cpu"))  # (each output its input: the levels tell them)
    image_sets = {}
    rows = list(evaluate_cycle(same, same, tmp_path / "testA", tmp_path / "testB", 16, image_sets))
    assert len(rows) == 6 and sorted(image_sets) == ["_AtoB", "_BtoA"]
    levels = {name: [sorted({int(image.float().mean().round()) for image in images}) for images in pair]
              for name, pair in image_sets.items()}
    assert levels["_AtoB"] == [[40, 41, 42], [200, 201, 202]]  # (outputs: A's translated; targets: testB)
    assert levels["_BtoA"] == [[200, 201, 202], [40, 41, 42]]
