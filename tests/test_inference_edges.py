"""The inference commands (gan sample, export, eval, translate) at their edges: eval's outputs follow
the rules of the others, paired eval refuses images that are no A|B pairs, and edited, damaged or
diverged checkpoints and exports end in one line naming the file."""

import json
import os
import pickle
import re
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from conftest import assert_one_error_line, invoke, random_rgb, save_torchscript, tiny_recipe_config, write_recipe_data
from safetensors.torch import load_file, save_file

from gan.core.checkpoint import CheckpointError, list_checkpoints, load_checkpoint
from gan.core.files import WriteError
from gan.training.loop import train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny DCGAN and pix2pix runs (2-4 CPU steps each) and the folders pix2pix trained on."""
    root = tmp_path_factory.mktemp("inference")
    data = write_recipe_data(root / "data")
    made = {"data": data}
    for recipe in ("dcgan", "pix2pix"):
        config = tiny_recipe_config(recipe, data, "log.eval_every=0")
        made[recipe] = train(config, root / recipe, CPU, progress_stream=open(os.devnull, "w")).run_dir
    return made


@pytest.fixture
def dcgan_run(runs, tmp_path) -> Path:
    """A copy of the DCGAN run, for tests that write into it or could."""
    return Path(shutil.copytree(runs["dcgan"], tmp_path / "dcgan_run"))


def newest_state(run: Path) -> dict:
    return torch.load(list_checkpoints(run)[-1], weights_only=True)


def edited_checkpoint(run: Path, folder: Path, edit) -> Path:
    """The run's newest checkpoint after `edit(state)`, saved as folder/edited.pt."""
    state = newest_state(run)
    edit(state)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "edited.pt"
    torch.save(state, path)
    return path


def edited_export(run: Path, folder: Path, edit_metadata=None, edit_weights=None) -> Path:
    """A safetensors export of the run whose metadata and weights have been changed in place."""
    out = folder / "edited.safetensors"
    assert invoke("export", run, "--out", out).exit_code == 0
    metadata, weights = json.loads((folder / "edited.safetensors.json").read_text()), load_file(str(out))
    for edit, value in ((edit_metadata, metadata), (edit_weights, weights)):
        if edit is not None:
            edit(value)
    if edit_weights is not None:  # weights edited on purpose: past their digest, to the checks behind it
        metadata.pop("weights_sha256")
    save_file(weights, str(out), metadata={"gan": json.dumps(metadata)})
    return out


def swd_eval(run, *args):
    return invoke("eval", run, "--metrics", "swd", "--n", "8", "--device", "cpu", *args)


# ----------------------------------------------------------------------------- 1: eval's outputs


@pytest.mark.parametrize("target", ["checkpoint-00000002.pt", "checkpoint-00000004.pt", "config.toml",
                                    "metrics.jsonl", "best.pt"])
@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_eval_never_writes_its_json_over_a_checkpoint_or_a_file_of_the_run(dcgan_run, tmp_path, target, flags):
    (dcgan_run / "metrics.jsonl").write_text('{"step": 2}\n')  # as a run with [metrics] has
    before = {path.name: path.read_bytes() for path in dcgan_run.iterdir() if path.is_file()}
    result = swd_eval(dcgan_run, "--cache-dir", tmp_path / "cache", "--json", dcgan_run / target, *flags)
    assert_one_error_line(result, target)
    assert {path.name: path.read_bytes() for path in dcgan_run.iterdir() if path.is_file()} == before


def test_eval_never_writes_over_the_checkpoint_it_reads(dcgan_run, tmp_path):
    source = tmp_path / "copy.pt"
    shutil.copy(list_checkpoints(dcgan_run)[-1], source)
    result = swd_eval(source, "--cache-dir", tmp_path / "cache", "--json", source, "--overwrite")
    assert_one_error_line(result, "would overwrite the input")
    assert load_checkpoint(source)["step"] == 4


def test_eval_replaces_another_existing_file_only_with_overwrite(dcgan_run, tmp_path):
    out = tmp_path / "scores.json"
    out.write_text("mine\n")
    result = swd_eval(dcgan_run, "--cache-dir", tmp_path / "cache", "--json", out)
    assert_one_error_line(result, "already exist", str(out), "--overwrite")
    assert out.read_text() == "mine\n"
    result = swd_eval(dcgan_run, "--cache-dir", tmp_path / "cache", "--json", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["step"] == 4


def test_eval_replaces_its_own_default_results_in_the_run_directory(dcgan_run, tmp_path):
    for _ in range(2):  # evaluating the same step again replaces metrics-<step>.json
        result = swd_eval(dcgan_run, "--cache-dir", tmp_path / "cache")
        assert result.exit_code == 0, result.output
    assert json.loads((dcgan_run / "metrics-00000004.json").read_text())["step"] == 4



@pytest.mark.parametrize("recipe", ["dcgan", "pix2pix"])
def test_eval_writes_no_record_of_a_checkpoint_its_run_replaced_while_it_was_scored(runs, tmp_path, monkeypatch,
                                                                                     recipe):
    """A resume that trained the step again (best.pt set aside, its checkpoint rewritten) while an eval
    scored it: the eval wrote metrics-00000004.json under its live name, claiming the new checkpoint."""
    import os

    import gan.inference.scoring as scoring

    run = Path(shutil.copytree(runs[recipe], tmp_path / "run"))
    newest = list_checkpoints(run)[-1]
    other = tmp_path / "retrained.pt"
    shutil.copyfile(newest, other)
    name = "evaluate_generative" if recipe == "dcgan" else "evaluate_paired"
    original = getattr(scoring, name)

    def replaced_meanwhile(*args, **kwargs):
        os.replace(other, newest)  # (as the resume's checkpoint of the step, renamed into place)
        return original(*args, **kwargs)

    monkeypatch.setattr(scoring, name, replaced_meanwhile)
    args = ["--metrics", "swd", "--n", "8"] if recipe == "dcgan" else ["--data", runs["data"]["paired"] / "val"]
    result = invoke("eval", run, "--device", "cpu", *args)
    assert result.exit_code == 2 and f"'{newest}' is another file now: its run replaced or set it aside while it " \
        "was scored" in result.output, result.output
    assert "swd" in result.output.split("error:")[0]  # the scores are said before
    assert not list(run.glob("metrics-*.json")) and not list(run.glob("eval-*"))

@pytest.mark.parametrize("recipe", ["dcgan", "pix2pix"])
def test_eval_of_a_checkpoint_its_live_run_pruned_meanwhile_keeps_its_scores(runs, tmp_path, monkeypatch, recipe):
    """train.keep_checkpoints removed the newest checkpoint while a long eval scored it: the scores were
    said, no record or CSV written ("a resume training its step again", which none was), exit 2."""
    import gan.inference.scoring as scoring

    run = Path(shutil.copytree(runs[recipe], tmp_path / "run"))
    newest = list_checkpoints(run)[-1]
    name = "evaluate_generative" if recipe == "dcgan" else "evaluate_paired"
    original = getattr(scoring, name)

    def pruned_meanwhile(*args, **kwargs):
        shutil.copyfile(newest, newest.with_name("checkpoint-00000099.pt"))  # (the run trained on,)
        for older in list_checkpoints(run)[:-1]:  # (and its rotation removed the oldest, the one scored last)
            older.unlink()
        return original(*args, **kwargs)

    monkeypatch.setattr(scoring, name, pruned_meanwhile)
    args = ["--metrics", "swd", "--n", "8"] if recipe == "dcgan" else ["--data", runs["data"]["paired"] / "val"]
    step = load_checkpoint(newest)["step"]
    saved = ["--json", tmp_path / "scores.json"] if recipe == "dcgan" else ["--csv", tmp_path / "scores.csv"]
    with pytest.warns(UserWarning, match=rf"'{re.escape(str(newest))}' was removed while it was scored .* the scores "
                                         r"are of the weights it held, and are written as its step's record"):
        result = invoke("eval", run, "--device", "cpu", *args, *saved)
    assert result.exit_code == 0, result.output
    assert json.loads(saved[1].with_suffix(".json").read_text())["step"] == step
    # removed with no later checkpoint left (a person going back to an earlier one), or with config.toml
    # rewritten (a resume, which may train its step again): no record
    run = Path(shutil.copytree(runs[recipe], tmp_path / "again"))
    newest = list_checkpoints(run)[-1]

    def removed_to_go_back(*args, **kwargs):
        newest.unlink()
        return original(*args, **kwargs)

    monkeypatch.setattr(scoring, name, removed_to_go_back)
    result = invoke("eval", run, "--device", "cpu", *args)
    assert result.exit_code == 2 and f"'{newest}' is gone: its run replaced or set it aside" in result.output
    assert not list(run.glob("metrics-*.json")) and not list(run.glob("eval-*"))


def test_paired_eval_never_writes_its_csv_or_json_over_a_run_file(runs, tmp_path):
    run = Path(shutil.copytree(runs["pix2pix"], tmp_path / "run"))
    val = runs["data"]["paired"] / "val"
    config = (run / "config.toml").read_bytes()
    assert_one_error_line(invoke("eval", run, "--data", val, "--csv", run / "config.toml", "--overwrite"),
                          "config.toml")
    # the scores of the translations go beside the CSV as JSON: best.csv would write best.json
    assert_one_error_line(invoke("eval", run, "--data", val, "--csv", tmp_path / "best.csv"), "best.json")
    assert (run / "config.toml").read_bytes() == config and not (tmp_path / "best.json").exists()
    same = invoke("eval", run, "--data", val, "--csv", tmp_path / "same.json")  # its record would be itself
    assert same.exit_code == 2 and "the CSV's record is written beside it under its name with .json" in \
        same.output and f"such as '{tmp_path / 'same.csv'}'" in same.output, same.output
    for _ in range(2):  # the default CSV and JSON are eval's own: a new evaluation replaces them
        result = invoke("eval", run, "--data", val)
        assert result.exit_code == 0, result.output
    assert (run / "eval-val-00000002.csv").is_file() and (run / "eval-val-00000002.json").is_file()
    # a tiled evaluation (which may score otherwise than the whole-image val/ metrics) keeps a record of its
    # own, saying so: it replaced the run's record under the same name, and nothing in it named the tiles
    assert json.loads((run / "eval-val-00000002.json").read_text())["tile"] == 0
    tiled = invoke("eval", run, "--data", val, "--tile", "96")
    assert tiled.exit_code == 0, tiled.output
    assert json.loads((run / "eval-val-tile96-00000002.json").read_text())["tile"] == 96
    assert json.loads((run / "eval-val-00000002.json").read_text())["tile"] == 0


@pytest.mark.parametrize("hard_links", [True, False])
def test_an_eval_whose_record_cannot_be_written_keeps_the_earlier_csv_and_record_together(runs, tmp_path,
                                                                                         monkeypatch, hard_links):
    # The new CSV replaced the old, the JSON failed (a full disk): the pair disagreed on the step scored.
    # (Where the file system has no hard links, the CSV replaced is renamed aside instead.)
    import errno

    import gan.core.files

    if not hard_links:
        monkeypatch.setattr(gan.core.files.os, "link", lambda *args: (_ for _ in ()).throw(
            OSError(errno.EPERM, "Operation not permitted")))

    run, val = runs["pix2pix"], runs["data"]["paired"] / "val"
    assert invoke("eval", run, "--data", val, "--csv", tmp_path / "r.csv").exit_code == 0
    (tmp_path / "r.csv").write_text("the earlier evaluation\n")  # (told apart from the one about to fail)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    replace, failed = gan.core.files.os.replace, []

    def full_disk_at_the_record(source, target):
        if str(target).endswith(".json") and not failed:  # (the new record's rename, once)
            failed.append(target)
            raise OSError(errno.ENOSPC, "No space left on device")
        return replace(source, target)

    monkeypatch.setattr(gan.core.files.os, "replace", full_disk_at_the_record)
    result = invoke("eval", run, "--data", val, "--csv", tmp_path / "r.csv", "--overwrite")
    assert result.exit_code == 2 and "could not write" in result.output and "r.json" in result.output
    # (the JSON's rename failed after the CSV's: the CSV it replaced is put back, and no temp is left)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_eval_with_damaged_weights_at_the_default_place_says_where_and_what_to_do(runs, tmp_path, monkeypatch):
    # "error: '...pth' is not a plain PyTorch state dict ...": no word that it was the default place
    from gan.metrics.inception import WEIGHTS_FILE

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    damaged = tmp_path / "torch-home" / "hub" / "checkpoints" / WEIGHTS_FILE
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not the weights")
    assert_one_error_line(invoke("eval", runs["pix2pix"], "--data", runs["data"]["paired"] / "val", "--csv",
                                 tmp_path / "e.csv"),
                          f"the Inception-v3 weights at their default place: '{damaged}' is not a plain PyTorch",
                          "or remove it (FID and KID are then skipped, as without weights)")
    assert not (tmp_path / "e.csv").exists()


def test_the_default_csv_takes_the_name_of_the_data_folder_as_typed(runs, tmp_path):
    # `--data datasets/facades`, a link to the data, wrote eval-paired-val-...: the name of the link's target
    run = Path(shutil.copytree(runs["pix2pix"], tmp_path / "run"))
    (tmp_path / "facades").symlink_to(runs["data"]["paired"], target_is_directory=True)
    result = invoke("eval", run, "--data", tmp_path / "facades")
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in run.glob("eval-*")) == ["eval-facades-val-00000002.csv",
                                                                "eval-facades-val-00000002.json"]


# ----------------------------------------------------------------------------- 2: paired eval on no pairs


def test_paired_eval_refuses_a_folder_of_single_photos(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # (no Inception weights)
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        random_rgb((40, 40), index).save(folder / f"{index}.png")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        result = invoke("eval", runs["pix2pix"], "--data", folder, "--csv", tmp_path / "e.csv")
    assert_one_error_line(result, str(folder), "3 of its 3 images are narrower than 2:1", "'0.png', 40x40",
                          "2.00:1")
    assert not (tmp_path / "e.csv").exists()
    # (the error came after two lines of "skipping fid, kid ... Inception-v3 weights not found")
    assert not [warning for warning in said if "Inception" in str(warning.message)]


def test_damaged_default_inception_weights_stop_a_translation_eval_before_its_images_are_scored(runs, tmp_path,
                                                                                                monkeypatch):
    # read once every image was scored (and all that work lost, nothing written) since their check moved after
    from gan.metrics.inception import WEIGHTS_FILE

    weights = tmp_path / "torch" / "hub" / "checkpoints" / WEIGHTS_FILE
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"PK not weights")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    scored = []
    import gan.inference.scoring as scoring

    original = scoring.evaluate_paired

    def counted(*args, **kwargs):
        for row in original(*args, **kwargs):
            scored.append(row)
            yield row

    monkeypatch.setattr(scoring, "evaluate_paired", counted)  # (eval imports it as it runs)
    result = invoke("eval", runs["pix2pix"], "--data", runs["data"]["paired"] / "val", "--csv", tmp_path / "e.csv")
    assert_one_error_line(result, str(weights), "is not a plain PyTorch state dict")
    assert scored == [] and not (tmp_path / "e.csv").exists()
    weights.unlink()
    weights.mkdir()  # (a folder in its place)
    folder = invoke("eval", runs["pix2pix"], "--data", runs["data"]["paired"] / "val", "--csv", tmp_path / "f.csv")
    assert_one_error_line(folder, "is a folder")
    assert scored == [] and not (tmp_path / "f.csv").exists()
    missing = invoke("eval", runs["pix2pix"], "--data", runs["data"]["paired"] / "val", "--csv", tmp_path / "m.csv",
                     "--inception-weights", tmp_path / "absent.pth")
    assert missing.exit_code == 2 and not (tmp_path / "m.csv").exists(), missing.output


def test_paired_eval_refuses_an_unpaired_data_set(runs, tmp_path):
    result = invoke("eval", runs["pix2pix"], "--data", runs["data"]["unpaired"], "--csv", tmp_path / "e.csv")
    assert_one_error_line(result, "is not a folder of A|B pairs", "narrower than 2:1")


def test_a_model_of_portrait_pairs_is_evaluated_where_its_training_images_are_not(tmp_path):
    pairs = tmp_path / "portrait"
    for split, count in (("train", 4), ("val", 2)):
        (pairs / split).mkdir(parents=True)
        for index in range(count):
            random_rgb((40, 40), index).save(pairs / split / f"{index}.png")  # A|B of 20x40 portrait halves
    config = tiny_recipe_config("pix2pix", {"paired": pairs, "unpaired": None, "hr": None}, "log.eval_every=0")
    run = train(config, tmp_path / "run", CPU, progress_stream=open(os.devnull, "w")).run_dir
    moved = Path(shutil.move(pairs, tmp_path / "elsewhere"))  # data.root no longer finds them
    with pytest.warns(UserWarning, match="not here to tell whether it trained on such pairs"):
        result = invoke("eval", run, "--data", moved, "--csv", tmp_path / "e.csv")
    assert result.exit_code == 0 and "2 pairs" in result.output, result.output


def test_paired_eval_skips_and_names_a_few_photos_among_pairs(runs, tmp_path):
    folder = Path(shutil.copytree(runs["data"]["paired"] / "train", tmp_path / "pairs"))
    random_rgb((40, 40), 9).save(folder / "photo.png")
    result = invoke("eval", runs["pix2pix"], "--data", folder, "--csv", tmp_path / "e.csv")
    assert result.exit_code == 0, result.output
    assert "skipped photo.png: is 40x40, narrower than the 2:1 of an A|B pair" in result.output
    assert "4 pairs in" in result.output and "1 image(s) skipped, in no row and no mean: photo.png" in result.output
    assert "photo.png" not in (tmp_path / "e.csv").read_text()


def test_paired_eval_scores_every_real_validation_pair_of_any_width(runs, shared_data, tmp_path):
    folder = shared_data / "paired" / "val"  # A|B images from 2:1 to 3.26:1
    result = invoke("eval", runs["pix2pix"], "--data", folder, "--csv", tmp_path / "e.csv")
    assert result.exit_code == 0, result.output
    assert f"{len(list(folder.glob('*.jpg')))} pairs in" in result.output and "skipped" not in result.output


# ----------------------------------------------------------------------------- 3: export checks the spec


@pytest.mark.parametrize("edit,message", [
    (lambda spec: spec["kwargs"].update(channels=512), "do not fit generator 'dcgan'"),
    (lambda spec: spec["kwargs"].update(channels=10**6), "channels (1000000) is more than max_channels (1024)"),
    (lambda spec: spec["kwargs"].update(channels="x"), "specs.generator.kwargs.channels: expected int, got 'x'"),
    (lambda spec: spec.update(name="unet"), "generator 'unet' takes no argument"),
])
def test_export_refuses_a_spec_that_does_not_build_the_generator_of_its_weights(runs, tmp_path, edit, message):
    source = edited_checkpoint(runs["dcgan"], tmp_path, lambda state: edit(state["specs"]["generator"]))
    out = tmp_path / "g.safetensors"
    assert_one_error_line(invoke("export", source, "--out", out), str(source), message)
    assert not out.exists() and not (tmp_path / "g.safetensors.json").exists()


@pytest.mark.parametrize("recipe, arg, command", [("dcgan", "image_channels", "sample"),
                                                  ("pix2pix", "in_channels", "translate")])
def test_a_generator_of_other_than_rgb_images_is_refused_in_one_line(runs, tmp_path, recipe, arg, command):
    # Edited with weights that fit it: translate ran into a traceback, sample wrote a grid of wrong colours.
    from gan.nets import NetworkSpec

    def one_channel(state):
        state["specs"]["generator"]["kwargs"][arg] = 1
        weights = NetworkSpec.from_dict(state["specs"]["generator"]).build().state_dict()
        state["networks"] = {name: weights for name in state["networks"] if name.startswith("generator")}

    source = edited_checkpoint(runs[recipe], tmp_path, one_channel)
    image = tmp_path / "in.png"
    random_rgb((40, 40), 1).save(image)
    args = ["--n", "4", "--out", tmp_path / "s.png"] if command == "sample" else [image, tmp_path / "s.png"]
    assert_one_error_line(invoke(command, source, *args), str(source),
                          f"specs.generator.kwargs.{arg} = 1 does not fit the data: its images are RGB (3 channels)")
    assert not (tmp_path / "s.png").exists()


# ----------------------------------------------------------------------------- 4: non-finite weights


def poison(weights: dict, value=float("nan")) -> None:
    key = next(key for key, tensor in weights.items() if tensor.is_floating_point())
    weights[key] = torch.full_like(weights[key], value)


def test_every_command_refuses_a_generator_with_nan_weights(runs, tmp_path):
    source = edited_checkpoint(runs["dcgan"], tmp_path, lambda state: poison(state["networks"]["generator_ema"]))
    expected = ("generator_ema parameter", "is not finite", "the run diverged", "best.pt")
    assert_one_error_line(invoke("sample", source, "--n", "4", "--out", tmp_path / "s.png"), str(source), *expected)
    assert_one_error_line(invoke("export", source, "--out", tmp_path / "g.safetensors"), *expected)
    assert_one_error_line(swd_eval(source, "--cache-dir", tmp_path / "cache", "--json", tmp_path / "m.json"),
                          *expected)
    assert not [path.name for path in tmp_path.iterdir() if path.suffix in (".png", ".safetensors", ".json")]
    live = invoke("sample", source, "--n", "4", "--out", tmp_path / "s.png", "--generator", "live")
    assert live.exit_code == 0, live.output  # the trained weights are finite


def test_an_export_with_infinite_weights_is_refused(runs, tmp_path):
    export = edited_export(runs["dcgan"], tmp_path, edit_weights=lambda weights: poison(weights, float("inf")))
    assert_one_error_line(invoke("sample", export, "--n", "4", "--out", tmp_path / "s.png"), str(export),
                          "is not finite")


def test_an_export_where_a_checkpoint_is_needed_is_named_with_the_checkpoint_it_came_from(runs, tmp_path):
    run = runs["dcgan"]
    for name in ("g.safetensors", "g.pt", "G.SAFETENSORS"):
        export = tmp_path / name
        assert invoke("export", run, "--out", export).exit_code == 0
        origin = f"is an export of '{list_checkpoints(run)[-1].resolve()}' written by `gan export`"
        assert_one_error_line(swd_eval(export, "--cache-dir", tmp_path / "cache"), str(export), origin,
                              "takes the run directory or checkpoint it was exported from")
        assert_one_error_line(invoke("export", export, "--out", tmp_path / "again.safetensors"), origin)
        # (it was "a file outside any" run, where the docs promise it is named as an export)
        assert_one_error_line(invoke("train", "--resume", export), "--resume takes a run directory", origin,
                              f"give the run it came from: --resume {run.resolve()}")
        assert_one_error_line(invoke("sample", export, "--best", "--out", tmp_path / "s.png"),
                              "is a file: drop --best to use it")
        # sample takes an export whatever the case of its extension
        assert invoke("sample", export, "--n", "2", "--out", tmp_path / f"{name}.png").exit_code == 0


def test_an_onnx_export_where_a_checkpoint_is_needed_is_not_sent_to_gan_sample(tmp_path):
    # eval and export said "for gan sample and translate", which then refused it as an ONNX graph
    export = tmp_path / "g.onnx"
    export.write_bytes(b"\x08\x07")  # (refused by its name, before it is read)
    (tmp_path / "g.onnx.json").write_text(json.dumps({"source": "/runs/00000-dcgan/checkpoint-00000004.pt"}))
    for result in (invoke("eval", export), invoke("export", export, "--out", tmp_path / "again.pt")):
        assert_one_error_line(result, "g.onnx' is an export of '/runs/00000-dcgan/checkpoint-00000004.pt' written by "
                              "`gan export`: an ONNX graph of one generator, for ONNX Runtime",
                              "takes the run directory or checkpoint it was exported from")
        assert "gan sample" not in result.output


def test_an_export_copied_into_a_run_under_a_checkpoint_name_is_refused_there(dcgan_run, tmp_path):
    export = tmp_path / "g.pt"
    assert invoke("export", dcgan_run, "--out", export).exit_code == 0
    shutil.copy(export, dcgan_run / "checkpoint-00000099.pt")  # a later name than the run's own
    for result in (invoke("sample", dcgan_run, "--n", "2", "--out", tmp_path / "s.png"),
                   swd_eval(dcgan_run, "--cache-dir", tmp_path / "cache", "--json", tmp_path / "m.json")):
        assert_one_error_line(result, "checkpoint-00000099.pt' is named as a checkpoint, but is an export of",
                              "move it out of the run directory")
    assert not (tmp_path / "s.png").exists()


def test_translate_says_when_checkpoint_and_input_are_swapped(runs, tmp_path):
    run, images = runs["pix2pix"], runs["data"]["paired"] / "val"
    image = next(images.iterdir())
    assert_one_error_line(invoke("translate", images, run, tmp_path / "out"), f"'{images}' is no model and '{run}' is "
                          f"one: CHECKPOINT comes first, then INPUT: gan translate {run} {images} {tmp_path / 'out'}")
    assert_one_error_line(invoke("translate", image, list_checkpoints(run)[-1], tmp_path / "o.png"),
                          "CHECKPOINT comes first")
    spaced = tmp_path / "my images"  # the command given is one to paste: quoted where a path needs it
    shutil.copytree(images, spaced)
    assert_one_error_line(invoke("translate", spaced, run, tmp_path / "out"),
                          f"CHECKPOINT comes first, then INPUT: gan translate {run} '{spaced}' {tmp_path / 'out'}")
    assert_one_error_line(invoke("translate", images, images, tmp_path / "out"), f"'{images}' is no run directory: it "
                          "holds no checkpoint-*.pt and no config.toml")
    assert not (tmp_path / "out").exists()


def test_sample_warns_that_a_gif_grid_keeps_256_colours(runs, tmp_path):
    with pytest.warns(UserWarning, match=r"'.*grid.gif' is a GIF: GIF keeps 256 colours"):
        assert invoke("sample", runs["dcgan"], "--n", "4", "--out", tmp_path / "grid.gif").exit_code == 0
    assert (tmp_path / "grid.gif").is_file()


def overflow(weights: dict) -> None:
    """Finite weights whose sums overflow float32: +-3e38 in turn, so that inf meets -inf (NaN)."""
    key = next(key for key, tensor in weights.items() if tensor.is_floating_point())
    signs = torch.ones_like(weights[key])
    signs.view(-1)[::2] = -1
    weights[key] = signs * 3e38


def test_outputs_that_overflow_are_refused_rather_than_written_black(runs, tmp_path):
    dcgan = edited_checkpoint(runs["dcgan"], tmp_path / "dcgan",
                              lambda state: overflow(state["networks"]["generator_ema"]))
    assert_one_error_line(invoke("sample", dcgan, "--n", "4", "--out", tmp_path / "s.png", "--separate",
                                 tmp_path / "each"), str(dcgan), "NaN or infinite", "none is written")
    assert_one_error_line(swd_eval(dcgan, "--cache-dir", tmp_path / "cache", "--json", tmp_path / "m.json"),
                          str(dcgan), "NaN or infinite")
    pix2pix = edited_checkpoint(runs["pix2pix"], tmp_path / "pix2pix",
                                lambda state: overflow(state["networks"]["generator"]))
    image, large = tmp_path / "pix2pix" / "in.png", tmp_path / "pix2pix" / "large.png"
    random_rgb((40, 40), 0).save(image)
    assert_one_error_line(invoke("translate", pix2pix, image, tmp_path / "out.png"), str(image), str(pix2pix),
                          "NaN or infinite")
    random_rgb((96, 96), 1).save(large)
    assert_one_error_line(invoke("translate", pix2pix, large, tmp_path / "out.png", "--tile", "48", "--overlap",
                                 "8"), str(large), "NaN or infinite")
    assert_one_error_line(invoke("eval", pix2pix, "--data", runs["data"]["paired"] / "val", "--csv",
                                 tmp_path / "e.csv"), str(pix2pix), "NaN or infinite")
    assert not [path.name for path in tmp_path.iterdir() if path.suffix in (".png", ".csv", ".json")]
    assert not (tmp_path / "each").exists()


def test_translate_and_eval_refuse_an_image_to_image_generator_with_nan_weights(runs, tmp_path):
    source = edited_checkpoint(runs["pix2pix"], tmp_path, lambda state: poison(state["networks"]["generator"]))
    image = tmp_path / "in.png"
    random_rgb((40, 40), 0).save(image)
    assert_one_error_line(invoke("translate", source, image, tmp_path / "out.png"), "is not finite")
    assert_one_error_line(invoke("eval", source, "--data", runs["data"]["paired"] / "val", "--csv",
                                 tmp_path / "e.csv"), "is not finite")
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "e.csv").exists()


# ----------------------------------------------------------------------------- 5: edited checkpoints, exports


@pytest.mark.parametrize("edit,message", [
    (lambda state: state.pop("networks"), 'no "networks" entry'),
    (lambda state: state.update(networks=list(state["networks"].values())), '"networks" entry (the weights by '
                                                                             'network) is a list'),
    (lambda state: state.pop("config"), 'no "config" entry'),
    (lambda state: state.pop("specs"), 'no "specs" entry'),
    (lambda state: state["specs"]["generator"]["kwargs"].update(latent_dim="100"),
     "specs.generator.kwargs.latent_dim: expected int, got '100'"),
    # a traceback (TypeError, AttributeError) for these two
    (lambda state: state["specs"]["generator"]["kwargs"].pop("resolution"),
     "specs.generator: generator 'dcgan' needs 'resolution', which it lacks"),
    (lambda state: state["specs"]["generator"].update(kwargs=[]), "specs.generator: its kwargs are list [], not a "
                                                                  "table of arguments"),
    (lambda state: state.update(step="ten"), '"step" entry is \'ten\''),
    (lambda state: state["config"].pop("data"), "config.data.dataset"),
    (lambda state: state["config"].update(recipe="no_such_recipe"),
     "recipe 'no_such_recipe' is not one gan has (known: "),
    (lambda state: state["config"]["data"].update(resolution=64),  # (eval used to fail on the pyramid levels)
     "its generator spec makes 32 px images, but its config's data.resolution is 64"),
    (lambda state: state["networks"].pop("generator_ema"),  # the trained weights used to stand in, unsaid
     "its config keeps an EMA of its generator (train.ema_decay = 0.995) but it holds no generator_ema weights"),
])
@pytest.mark.parametrize("command", ["sample", "export"])
def test_an_edited_checkpoint_is_one_line_naming_it(runs, tmp_path, edit, message, command):
    source = edited_checkpoint(runs["dcgan"], tmp_path, edit)
    out = ["--n", "4", "--out", tmp_path / "s.png"] if command == "sample" else ["--out", tmp_path / "g.pt"]
    assert_one_error_line(invoke(command, source, *out), f"'{source}' is damaged or edited", message)


@pytest.mark.parametrize("command", ["sample", "export", "eval"])
def test_a_checkpoint_of_another_gan_version_is_named_as_such_not_as_a_foreign_file(runs, tmp_path, command):
    source = edited_checkpoint(runs["dcgan"], tmp_path, lambda state: state.update(format="gan.checkpoint/2"))
    out = {"sample": ["--n", "4", "--out", tmp_path / "s.png"], "export": ["--out", tmp_path / "g.pt"],
           "eval": ["--metrics", "swd", "--n", "4", "--json", tmp_path / "m.json"]}[command]
    assert_one_error_line(invoke(command, source, *out), f"'{source}' was written by another version of gan (format "
                                                         "'gan.checkpoint/2'; this one reads gan.checkpoint/1)")


@pytest.mark.parametrize("edit,message", [
    (lambda metadata: metadata.pop("config"), 'no "config" entry'),
    (lambda metadata: metadata.update(network="discriminator"), "no weights for its generator spec"),
    (lambda metadata: metadata["specs"]["generator"]["kwargs"].update(channels="eight"),
     "specs.generator.kwargs.channels: expected int, got 'eight'"),
    (lambda metadata: metadata.pop("network"), 'no "network" entry'),
    (lambda metadata: metadata["specs"]["generator"]["kwargs"].pop("resolution"), "needs 'resolution', which it lacks"),
    (lambda metadata: metadata["specs"]["generator"].update(kwargs=[]), "its kwargs are list [], not a table"),
    (lambda metadata: metadata.update(format="gan.export/2"),  # used to read "has no gan export metadata"
     "was written by another version of gan (format 'gan.export/2'; this one reads gan.export/1)"),
])
def test_sample_of_an_edited_export_is_one_line_naming_it(runs, tmp_path, edit, message):
    export = edited_export(runs["dcgan"], tmp_path, edit_metadata=edit)
    assert_one_error_line(invoke("sample", export, "--n", "4", "--out", tmp_path / "s.png"), str(export), message)


def test_translate_of_an_export_without_its_data_section_is_one_line(runs, tmp_path):
    export = edited_export(runs["pix2pix"], tmp_path, edit_metadata=lambda metadata: metadata["config"].pop("data"))
    image = tmp_path / "in.png"
    random_rgb((40, 40), 0).save(image)
    assert_one_error_line(invoke("translate", export, image, tmp_path / "out.png"), str(export),
                          "config.data.dataset")


def test_generator_live_of_an_export_of_the_ema_weights_says_so(runs, tmp_path):
    export = edited_export(runs["dcgan"], tmp_path)
    result = invoke("sample", export, "--n", "4", "--out", tmp_path / "s.png", "--generator", "live")
    assert_one_error_line(result, "holds only the EMA weights", "--generator live")


# ----------------------------------------------------------------------------- 6: foreign files, plainly


def test_a_raw_pickle_is_refused_without_torchs_pickle_protocol_warning(tmp_path):
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"format": "gan.checkpoint/1"}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="not a torch file"):
            load_checkpoint(raw)
    assert not [str(warning.message) for warning in caught], [str(warning.message) for warning in caught]


def test_a_torchscript_archive_is_named_as_one_not_as_a_damaged_file(runs, tmp_path):
    """A traced generator given to gan sample, or clean-fid's TorchScript Inception given to gan eval, was "a
    damaged or truncated torch file" after torch's warning that it looks like a TorchScript archive: the
    same file fetched again met the same error."""
    archive = save_torchscript(tmp_path / "traced.pt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampled = invoke("sample", archive, "--n", "4", "--out", tmp_path / "s.png")
        evaluated = invoke("eval", runs["dcgan"], "--metrics", "fid", "--n", "16", "--inception-weights", archive)
    assert_one_error_line(sampled, f"'{archive}' is a TorchScript archive (compiled code, which gan does not load), "
                                   "not a gan checkpoint: expected a checkpoint written by `gan train`",
                          "or an export written by `gan export`")
    assert_one_error_line(evaluated, f"'{archive}' is not a plain PyTorch state dict of Inception-v3 weights",
                          "a TorchScript archive (compiled code, which gan does not load); give the plain state dict")
    for result in (sampled, evaluated):
        assert "damaged" not in result.output and "torch.jit.load" not in result.output, result.output
    assert not [str(warning.message) for warning in caught if "TorchScript" in str(warning.message)]


def test_safetensors_metadata_that_is_not_json_is_named_as_such(runs, tmp_path):
    export = edited_export(runs["dcgan"], tmp_path)
    save_file(load_file(str(export)), str(export), metadata={"gan": "{not json"})
    assert_one_error_line(invoke("sample", export, "--n", "4", "--out", tmp_path / "s.png"), str(export),
                          "\"gan\" metadata entry is not valid JSON")


# ----------------------------------------------------------------------------- 7: a failed sample leaves nothing


def test_a_flush_that_fails_names_the_file_and_the_free_space(runs, tmp_path, monkeypatch):
    # The staged PNGs are flushed together at the end: a quota or a thin disk found there said only
    # "[Errno 28] No space left on device", where a write's failure names the file and the free space.
    import errno

    fsync, calls = os.fsync, []

    def full_at_the_third(descriptor):
        calls.append(descriptor)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return fsync(descriptor)

    monkeypatch.setattr(os, "fsync", full_at_the_third)
    result = invoke("sample", runs["dcgan"], "--n", "5", "--separate", tmp_path / "set")
    monkeypatch.undo()
    line = assert_one_error_line(result, "No space left on device", "MiB free")
    assert f"could not write '{tmp_path / 'set' / '00002.png'}'" in line, line  # (named as the file it becomes)
    assert not (tmp_path / "set").exists() and os.listdir(tmp_path) == []


def test_sample_on_a_full_disk_removes_the_folders_it_made(runs, tmp_path, monkeypatch):
    import gan.core.images as images_module

    def full_disk(writes, **options):
        raise WriteError(f"could not write '{next(iter(writes))}' (0 MiB free): [Errno 28] No space left on device")

    monkeypatch.setattr(images_module, "write_together", full_disk)
    separate = tmp_path / "new" / "samples"
    result = invoke("sample", runs["dcgan"], "--n", "4", "--separate", separate, "--out", tmp_path / "grid" / "g.png")
    assert_one_error_line(result, "No space left")
    assert sorted(path.name for path in tmp_path.iterdir()) == []
    (tmp_path / "mine").mkdir()  # a folder that was there before stays
    result = invoke("sample", runs["dcgan"], "--n", "4", "--separate", tmp_path / "mine")
    assert result.exit_code == 2 and (tmp_path / "mine").is_dir()


def test_a_run_record_name_is_refused_even_before_training_writes_it(tmp_path):
    from gan.inference.outputs import OutputRefused, check_outputs

    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "config.toml").write_text("recipe = \"dcgan\"\n")
    (run / "checkpoint-00000002.pt").write_bytes(b"state")
    for name in ("metrics.jsonl", "events.out.tfevents.1.host.2.0", "samples/00000004.png"):
        with pytest.raises(OutputRefused, match="keeps for its training's own records"):
            check_outputs([run / name], overwrite=True)
    check_outputs([run / "faces.png"])  # any other new name in a run directory is fine


def test_eval_keeps_a_default_result_that_the_new_evaluation_would_lose_metrics_or_images_of(dcgan_run, tmp_path,
                                                                                            monkeypatch):
    # a quick "--metrics swd --n 8" replaced the same step's 10,000-image FID record in silence
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # (no Inception weights: the default drops fid, kid)
    cache = ["--cache-dir", tmp_path / "c"]
    assert invoke("eval", dcgan_run, "--metrics", "swd", "--n", "8", *cache).exit_code == 0
    (record,) = dcgan_run.glob("metrics-*.json")
    fewer = invoke("eval", dcgan_run, "--metrics", "swd", "--n", "4", *cache)
    assert_one_error_line(fewer, f"'{record}' holds swd of 8 images, which this evaluation (swd of 4) would not keep",
                          "pass --json PATH to keep both, or --overwrite")
    more = invoke("eval", dcgan_run, "--metrics", "swd", "--n", "16", *cache)
    assert more.exit_code == 0, more.output  # (all it held, on more images: replaced)
    # fid asked for by name without the weights: that blocker first (it came after the record's refusal)
    assert_one_error_line(invoke("eval", dcgan_run, "--metrics", "fid", "--n", "8", *cache),
                          "Inception-v3 weights not found")
    record.write_text(json.dumps({**json.loads(record.read_text()), "fid": 12.5, "kid": 0.01}))
    kept = record.read_text()
    for args in (["--metrics", "swd", "--n", "16"], ["--n", "16"]):  # (by default without the weights: swd alone)
        assert_one_error_line(invoke("eval", dcgan_run, *args, *cache), "holds fid, kid, swd of 16 images",
                              "(swd of 16) would not keep")
    assert record.read_text() == kept
    assert invoke("eval", dcgan_run, "--metrics", "swd", "--n", "4", "--overwrite", *cache).exit_code == 0
    assert json.loads(record.read_text())["num_images"] == 4


def test_a_translation_eval_keeps_a_record_holding_fid_that_it_would_not_score(runs, tmp_path, monkeypatch):
    # without the weights the evaluation again rewrote eval-<data>-<step>.json without fid and kid
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    run = Path(shutil.copytree(runs["pix2pix"], tmp_path / "run"))
    data = runs["data"]["paired"] / "val"
    assert invoke("eval", run, "--data", data).exit_code == 0
    (record,) = run.glob("eval-*.json")
    record.write_text(json.dumps({**json.loads(record.read_text()), "fid": 80.5, "kid": 0.05}))
    kept = record.read_text()
    refused = invoke("eval", run, "--data", data)
    assert_one_error_line(refused, f"'{record}' holds fid, kid, swd, which this evaluation (swd) "
                                   "would not keep", "pass --csv PATH to keep both, or --overwrite")
    assert record.read_text() == kept
    assert invoke("eval", run, "--data", data, "--overwrite").exit_code == 0 and "fid" not in json.loads(
        record.read_text())


def test_eval_keeps_a_default_result_of_another_data_set_or_checkpoint(dcgan_run, tmp_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    for index in range(4):
        random_rgb((32, 32), index).save(faces / f"{index}.png")
    first = invoke("eval", dcgan_run, "--metrics", "swd", "--n", "4", "--cache-dir", tmp_path / "c")
    assert first.exit_code == 0, first.output
    (result,) = dcgan_run.glob("metrics-*.json")
    recorded = result.read_text()
    again = invoke("eval", dcgan_run, "--metrics", "swd", "--n", "4", "--cache-dir", tmp_path / "c")
    assert again.exit_code == 0, again.output  # the same evaluation again: its own file, replaced
    other = invoke("eval", dcgan_run, "--metrics", "swd", "--n", "4", "--data", faces, "--cache-dir", tmp_path / "c")
    assert_one_error_line(other, "holds an evaluation of", f"not of {list_checkpoints(dcgan_run)[-1].name} on "
                                                           f"{faces.resolve()}", "pass --json PATH", "--overwrite")
    assert result.read_text() == recorded
    shutil.copy(list_checkpoints(dcgan_run)[-1], dcgan_run / "best.pt")  # the run's best: that step's weights
    best = invoke("eval", dcgan_run / "best.pt", "--metrics", "swd", "--n", "4", "--cache-dir", tmp_path / "c")
    assert best.exit_code == 0, best.output  # the same evaluation, which used to be refused
    shutil.copy(dcgan_run / "best.pt", dcgan_run / "mine.pt")  # a loose checkpoint: another evaluation
    loose = invoke("eval", dcgan_run / "mine.pt", "--metrics", "swd", "--n", "4", "--cache-dir", tmp_path / "c")
    assert_one_error_line(loose, "holds an evaluation of best.pt on synthetic, not of mine.pt on synthetic")
    (dcgan_run / "best.pt").unlink(), (dcgan_run / "mine.pt").unlink()
    assert invoke("eval", dcgan_run, "--metrics", "swd", "--n", "4", "--cache-dir", tmp_path / "c").exit_code == 0
    forced = invoke("eval", dcgan_run, "--metrics", "swd", "--n", "4", "--data", faces, "--cache-dir", tmp_path / "c",
                    "--overwrite")
    assert forced.exit_code == 0 and str(faces.resolve()) in result.read_text()
    # the folder holding other images now: its record was replaced in silence
    recorded = result.read_text()
    random_rgb((32, 32), 9).save(faces / "4.png")
    changed = invoke("eval", dcgan_run, "--metrics", "swd", "--n", "4", "--data", faces, "--cache-dir", tmp_path / "c")
    assert_one_error_line(changed, f"holds an evaluation of {list_checkpoints(dcgan_run)[-1].name} on "
                                   f"{faces.resolve()} as its images were then", "pass --json PATH", "--overwrite")
    assert result.read_text() == recorded


def test_eval_scores_swd_against_one_real_image_as_training_does(dcgan_run, tmp_path):
    # gan eval refused it ("scores between distributions need at least 2") where training scores it:
    # SWD compares patches, of which one image has many
    one = tmp_path / "one"
    one.mkdir()
    random_rgb((32, 32), 0).save(one / "0.png")
    result = invoke("eval", dcgan_run, "--metrics", "swd", "--n", "8", "--data", one, "--cache-dir", tmp_path / "c",
                    "--json", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text())["num_images"] == 1
    assert "(1 generated vs 1 real image from" in result.output


def test_eval_of_a_run_whose_data_root_moved_says_so_and_offers_data(dcgan_run, tmp_path):
    # "error: image folder '...' does not exist", with no word of the run's data.root or of --data
    def on_a_folder_since_moved(state):
        state["config"]["data"].update(dataset="folder", root=str(tmp_path / "moved"))

    edited = edited_checkpoint(dcgan_run, tmp_path / "edited", on_a_folder_since_moved)
    assert_one_error_line(invoke("eval", edited, "--metrics", "swd", "--n", "8", "--cache-dir", tmp_path / "c"),
                          f"the run's data.root '{tmp_path / 'moved'}' is not there (moved since it trained?): give "
                          "its real images with --data FOLDER")


def test_eval_of_a_moved_project_reads_its_relative_folders_from_here_as_a_resume_does(tmp_path, monkeypatch):
    """Trained in proj1 on relative folders, the project renamed proj2: `gan train --resume` read them from
    here, and `gan eval` only where the checkpoint recorded them, "is not there (moved since it trained?)"."""
    import shutil

    from conftest import tiny_config

    from gan.training.loop import train

    project = tmp_path / "proj1"
    for folder, count in (("faces", 8), ("held_out", 4)):
        (project / folder).mkdir(parents=True)
        for index in range(count):
            random_rgb((40, 40), index).save(project / folder / f"{index}.png")
    monkeypatch.chdir(project)
    config = tiny_config("data.dataset=folder", "data.root=faces", "train.steps=2")
    run = train(config, project / "run", "cpu").run_dir
    measured = train(tiny_config("data.dataset=folder", "data.root=faces", "metrics.root=held_out", "metrics.every=2",
                                 "metrics.num_samples=4", 'metrics.names=["swd"]', "train.steps=2"),
                     project / "measured", "cpu").run_dir
    shutil.move(project, tmp_path / "proj2")
    monkeypatch.chdir(tmp_path / "proj2")
    for source, key in ((run, "data.root"), (measured, "metrics.root")):
        with pytest.warns(UserWarning, match=f"the run's {key} '{project}/.*' is gone: its '.*' is read from here "
                                             f"\\('{tmp_path / 'proj2'}/.*'\\), as a resume from here reads it"):
            result = invoke("eval", tmp_path / "proj2" / source.name, "--metrics", "swd", "--n", "4", "--cache-dir",
                            tmp_path / "c", "--json", tmp_path / f"{source.name}.json")
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize("unwritable", ["under_a_file", "write_fails"])
def test_a_reference_cache_that_cannot_be_written_slows_eval_and_never_fails_it(dcgan_run, tmp_path, monkeypatch,
                                                                               unwritable):
    # The statistics were computed, then the store failed (a read-only --cache-dir: a WriteError,
    # or mkdir's OSError) and eval ended in an error with no scores.
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder would be")
    cache = {"under_a_file": blocker / "sub", "write_fails": tmp_path / "cache"}[unwritable]
    if unwritable == "write_fails":
        from gan.core.files import WriteError
        from gan.metrics import generative

        def refuse(state, path):
            raise WriteError(f"could not write '{path}': Read-only file system")

        monkeypatch.setattr(generative, "save_checkpoint", refuse)
    with pytest.warns(UserWarning, match="could not cache reference statistics in .*; they are computed again"):
        result = swd_eval(dcgan_run, "--cache-dir", cache, "--json", tmp_path / "scores.json")
    assert result.exit_code == 0, result.output
    assert "swd/mean" in json.loads((tmp_path / "scores.json").read_text())


def test_eval_shows_progress_while_it_reads_the_real_images_and_generates(dcgan_run, tmp_path):
    # Reading the real images and generating as many took a minute or more in silence at --n 10000.
    result = swd_eval(dcgan_run, "--cache-dir", tmp_path / "cache", "--json", tmp_path / "scores.json")
    assert result.exit_code == 0, result.output
    said = result.output
    assert "real image 8/8 (100%)" in said and "generated image 8/8 (100%)" in said, said
    assert said.index("real image 8/8") < said.index("generated image 8/8") < said.index("SWD direction 1024/1024")


def test_generated_images_are_the_same_told_of_progress_or_not(runs):
    from gan.inference.generators import generator_from_checkpoint
    from gan.metrics.generative import generated_images

    generator = generator_from_checkpoint(newest_state(runs["dcgan"]), list_checkpoints(runs["dcgan"])[-1],
                                          torch.device("cpu")).generator
    told = []
    with_progress = generated_images(generator, 10, seed=3, batch_size=4, advance=told.append)
    assert told == [4, 4, 2] and torch.equal(with_progress, generated_images(generator, 10, seed=3, batch_size=64))


def test_a_reader_chooses_the_newest_again_while_the_run_prunes_as_it_reads(runs, tmp_path, monkeypatch):
    """keep_checkpoints=1 and a checkpoint every step, read slowly: every try of three lost the race
    (each checkpoint pruned between its choice and its read), and the error called the pruned file
    corrupt."""
    import gan.inference.exported as exported

    run = Path(shutil.copytree(runs["dcgan"], tmp_path / "run"))
    for older in list_checkpoints(run)[:-1]:
        older.unlink()
    real_resolve, pruned = exported.resolve_checkpoint, []

    def pruned_once_chosen(source, unconditional=None):
        path = real_resolve(source, unconditional)
        if len(pruned) < 6:  # the run writes the next step's checkpoint and prunes this one
            step = int(path.stem.split("-")[1])
            shutil.copyfile(path, path.with_name(f"checkpoint-{step + 1:08d}.pt"))
            path.unlink()
            pruned.append(path.name)
        return path

    monkeypatch.setattr(exported, "resolve_checkpoint", pruned_once_chosen)
    path, state = exported.read_checkpoint(run)
    assert len(pruned) == 6 and path == list_checkpoints(run)[-1] and "networks" in state
    # read as a file given by name and removed as it is opened, it is said to be, not called corrupt
    import gan.core.checkpoint as checkpoint_module

    def removed_meanwhile(path, mode="r", *args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", str(path))

    monkeypatch.setattr(checkpoint_module, "open", removed_meanwhile, raising=False)
    with pytest.raises(CheckpointError, match=r"was removed as it was read \(a run training on prunes its older "
                                              r"checkpoints, and a resume sets best.pt aside\): run the command again"):
        exported.read_checkpoint(list_checkpoints(run)[-1])


def test_a_checkpoint_replaced_as_it_is_read_is_checked_as_the_file_loaded(runs, tmp_path, monkeypatch):
    # the checksums were read from the path again: a best.pt renamed over it meanwhile was checked in its place
    import gan.core.checkpoint as checkpoint_module

    run = Path(shutil.copytree(runs["dcgan"], tmp_path / "run"))
    first, newest = list_checkpoints(run)[0], list_checkpoints(run)[-1]
    import zipfile

    data = bytearray(newest.read_bytes())  # a bit flipped in its largest tensor: its checksum fails
    with zipfile.ZipFile(newest) as archive:
        record = max(archive.infolist(), key=lambda info: info.file_size)
    data[record.header_offset + 30 + len(record.orig_filename.encode()) + len(record.extra) + record.file_size // 2] ^= 1
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(data))
    real_load = checkpoint_module.quiet_torch_load

    def replaced_after_the_load(handle, **options):
        state = real_load(handle, **options)
        os.replace(damaged, first)  # the file at the path is another now
        return state

    monkeypatch.setattr(checkpoint_module, "quiet_torch_load", replaced_after_the_load)
    assert load_checkpoint(first)["step"] == 2  # the file loaded, checked whole


def test_a_folder_gone_mid_command_ends_eval_and_translate_at_once(tmp_path, monkeypatch):
    # each of its images was skipped in turn, a mean of those before written as the result, exit 0
    import gan.inference.scoring as scoring
    from gan.commands.translate import _translate_one
    from gan.data.decode import ImageFolderGone
    from gan.data.super_resolution import Degradation

    folder = tmp_path / "hr"
    folder.mkdir()
    for index in range(3):
        random_rgb((48, 48), index).save(folder / f"{index}.png")
    original = scoring.read_rgb

    def moved_first(path):
        if folder.is_dir():
            folder.rename(tmp_path / "moved")  # (after the listing, before the first read)
        return original(path)

    monkeypatch.setattr(scoring, "read_rgb", moved_first)
    with pytest.raises(ImageFolderGone, match=f"its folder '{folder}' is gone"):
        next(scoring.evaluate_super_resolution(None, folder, Degradation(4)))
    with pytest.raises(SystemExit) as stopped:  # (one line, as an input alone)
        _translate_one(None, folder / "0.png", tmp_path / "out.png", False, None, "0 of 3", alone=False, new_only=True)
    assert stopped.value.code == 2


def test_best_set_aside_by_a_resume_is_said_as_such(dcgan_run):
    # --best during a resume from before best.pt's step said "the run kept none"
    from gan.core.checkpoint import best_checkpoint, set_aside_best

    checkpoint = list_checkpoints(dcgan_run)[-1]
    shutil.copyfile(checkpoint, dcgan_run / "best.pt")
    set_aside_best(dcgan_run, "best-discarded-00000004")
    with pytest.raises(CheckpointError, match=r"no best.pt in run directory '.*' now: a resume set the last one aside "
                                              r"as 'best-discarded-00000004.pt' \(it came from steps it trained again\)"):
        best_checkpoint(dcgan_run)
    # one measured on images since changed: said as such, not as "the run kept none"
    for name in ("best-discarded-00000004.pt", "best-discarded-00000004.json"):
        (dcgan_run / name).unlink(missing_ok=True)
    shutil.copyfile(checkpoint, dcgan_run / "best.pt")
    set_aside_best(dcgan_run, "best-other-images-00000004")
    with pytest.raises(CheckpointError, match=r"as 'best-other-images-00000004.pt' \(it was measured on images since "
                                              r"changed\)"):
        best_checkpoint(dcgan_run)
    for name in ("best-other-images-00000004.pt", "best-other-images-00000004.json"):
        (dcgan_run / name).unlink(missing_ok=True)


def test_an_n_larger_than_the_real_images_is_warned_of_by_name(dcgan_run, tmp_path):
    # --n 1000000000000 scored 64 against 64 with no word but the count in the last line
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = invoke("eval", dcgan_run, "--metrics", "swd", "--n", "100000", "--device", "cpu",
                        "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    assert any(str(one.message).startswith("--n 100000 is more than the 64 real images of 'synthetic' (all the data "
                                           "set holds): 64 generated images are scored against them")
               for one in caught), [str(one.message) for one in caught]


def test_a_checkpoint_named_safetensors_is_read_by_its_contents(runs, tmp_path):
    # a whole checkpoint copied to ckpt.safetensors was called "an export written by `gan export`" (gan eval,
    # export, train --resume), and gan sample gave safetensors' own "header too large"
    named = tmp_path / "ckpt.safetensors"
    shutil.copy(list_checkpoints(runs["dcgan"])[-1], named)
    sampled = invoke("sample", named, "--n", "2", "--out", tmp_path / "grid.png")
    assert sampled.exit_code == 0 and (tmp_path / "grid.png").is_file(), sampled.output
    exported = invoke("export", named, "--out", tmp_path / "generator.safetensors")
    assert exported.exit_code == 0, exported.output
    resumed = invoke("train", "--resume", named)
    line = assert_one_error_line(resumed, f"'{named}' is a file outside any")
    assert "export" not in line


def test_a_newest_checkpoint_that_is_a_broken_link_is_said_so_with_an_earlier_one(dcgan_run, tmp_path):
    # `ls` showed the file, and the message said it "does not exist", naming no checkpoint to use instead
    earlier = list_checkpoints(dcgan_run)[-1]
    broken = dcgan_run / "checkpoint-99999999.pt"
    broken.symlink_to(tmp_path / "moved" / "checkpoint.pt")
    for command in (("sample", dcgan_run, "--n", "2", "--out", tmp_path / "grid.png"),
                    ("eval", dcgan_run, "--metrics", "swd", "--n", "2")):
        result = invoke(*command)
        assert_one_error_line(result, f"checkpoint '{broken}' is a link to '{tmp_path / 'moved' / 'checkpoint.pt'}', "
                                      f"which does not exist", f"give an earlier checkpoint of the run instead, e.g. "
                                      f"'{earlier}'")
