"""`gan export`: generator weights as safetensors or a plain torch file, read back by sample and translate."""

import json
import math
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_config
from safetensors.torch import load_file, safe_open

import gan
from gan.commands.main import main
from gan.core.checkpoint import CheckpointError, list_checkpoints
from gan.inference.exported import read_export
from gan.inference.generators import load_generator
from gan.nets.running import generate, random_latents
from gan.training.loop import train

CPU = torch.device("cpu")


@pytest.fixture
def run(tiny_demo_run):
    return tiny_demo_run


def samples(source, seed=3) -> torch.Tensor:
    generator = load_generator(source, CPU).generator
    return generate(generator, random_latents(6, generator.latent_dim, seed))


@pytest.mark.parametrize("export_format,suffix", [("safetensors", ".safetensors"), ("pt", ".pt")])
def test_export_round_trip_gives_identical_samples(run, tmp_path, export_format, suffix):
    out = tmp_path / f"generator{suffix}"
    result = CliRunner().invoke(main, ["export", str(run), "--format", export_format, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert torch.equal(samples(run), samples(out))
    loaded = load_generator(out, CPU)
    assert loaded.used_ema and loaded.step == 4 and loaded.config["recipe"] == "dcgan"
    sidecar = json.loads((tmp_path / f"generator{suffix}.json").read_text())
    assert sidecar["network"] == "generator_ema" and sidecar["specs"]["generator"]["name"] == "dcgan"
    # the versions that trained and exported it, so that numbers compared across versions can be traced
    versions = {"gan": gan.__version__, "torch": torch.__version__}
    assert sidecar["written_by"] == versions and sidecar["trained_by"] == versions
    assert torch.load(list_checkpoints(run)[-1], weights_only=True)["written_by"] == versions
    result = CliRunner().invoke(main, ["sample", str(out), "--n", "4", "--out", str(tmp_path / "grid.png")])
    assert result.exit_code == 0 and (tmp_path / "grid.png").is_file()


def strict_json(text: str):
    """`text` read as JavaScript's JSON.parse and serde_json read it: Infinity and NaN are no JSON."""
    def refuse(constant):
        raise ValueError(f"{constant} is not standard JSON")

    return json.loads(text, parse_constant=refuse)


def test_an_infinite_config_value_is_exported_as_standard_json_and_read_back(tmp_path):
    """train.divergence_bound = inf (the check off) was written as Infinity into the JSON beside the
    export and its "gan" metadata, which strict readers refuse."""
    run_dir = train(tiny_config("train.divergence_bound=inf", "train.steps=2", "train.keep_best="), tmp_path / "runs",
                    CPU).run_dir
    out = tmp_path / "g.safetensors"
    result = CliRunner().invoke(main, ["export", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with safe_open(str(out), framework="pt") as handle:
        stored = handle.metadata()["gan"]
    for text in (stored, (tmp_path / "g.safetensors.json").read_text()):
        assert strict_json(text)["config"]["train"]["divergence_bound"] == "inf"
    assert load_generator(out, CPU).config["train"]["divergence_bound"] == math.inf


def test_an_export_records_its_source_by_an_absolute_path(run, tmp_path, monkeypatch):
    """A source given relative to the working folder was recorded so: meaningless once the export moved."""
    monkeypatch.chdir(run.parent)
    result = CliRunner().invoke(main, ["export", run.name, "--out", str(tmp_path / "g.safetensors")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "g.safetensors.json").read_text())["source"] == str(list_checkpoints(run)[-1])


def test_the_safetensors_file_is_the_plain_state_dict_of_the_ema_generator(run, tmp_path):
    out = tmp_path / "g.safetensors"
    CliRunner().invoke(main, ["export", str(run), "--out", str(out)])
    checkpoint = torch.load(list_checkpoints(run)[-1], weights_only=True)
    weights = load_file(str(out))
    assert weights.keys() == checkpoint["networks"]["generator_ema"].keys()
    for key, value in weights.items():
        assert torch.equal(value, checkpoint["networks"]["generator_ema"][key])


def test_safetensors_weights_from_elsewhere_are_said_to_be_no_export_without_advice_that_cannot_work(tmp_path):
    """Weights converted to safetensors elsewhere (BasicSR's, a paper's) were told "write it with `gan
    export`", which reads only gan's own checkpoints."""
    from safetensors.torch import save_file

    for name, metadata in (("basicsr.safetensors", None), ("tagged.safetensors", {"gan": '{"note": "mine"}'})):
        save_file({"conv_first.weight": torch.zeros(2)}, str(tmp_path / name), metadata=metadata)
        with pytest.raises(CheckpointError) as caught:
            read_export(tmp_path / name)
        held = 'no "gan" metadata entry' if metadata is None else 'a "gan" metadata entry that is not an export\'s'
        assert str(caught.value) == (f"'{tmp_path / name}' is not a gan export (a safetensors file with {held}): gan "
                                     "sample and translate read only the run directories, checkpoints and exports gan "
                                     "wrote, which rebuild the generator they hold")


def test_bad_exports_are_clear_errors(run, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="broken.safetensors' is not a readable safetensors file"):
        read_export(broken)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="is not a gan export"):
        read_export(foreign)
    pickled = tmp_path / "code.pt"
    torch.save({"format": "gan.export/1", "payload": Path("x")}, pickled)  # an arbitrary object
    with pytest.raises(CheckpointError, match="corrupt or not a gan checkpoint"):
        load_generator(pickled, CPU)
    result = CliRunner().invoke(main, ["export", str(run), "--direction", "BtoA", "--out", str(tmp_path / "x.pt")])
    assert result.exit_code == 2 and "has one generator and no directions; --direction is for CycleGAN" in result.output


def test_a_flipped_bit_in_a_safetensors_export_is_refused_not_loaded_as_wrong_weights(run, tmp_path):
    # safetensors keeps no checksum: a flipped sign bit of a running variance sampled black images
    import struct

    out = tmp_path / "g.safetensors"
    assert CliRunner().invoke(main, ["export", str(run), "--out", str(out)]).exit_code == 0
    data = bytearray(out.read_bytes())
    header_size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + header_size])
    name = next(key for key in sorted(header) if key.endswith("running_var"))
    data[8 + header_size + header[name]["data_offsets"][0] + 3] ^= 0x80
    out.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"g.safetensors' is damaged or edited: its weights differ from the "
                                              "SHA-256 digest written with them"):
        load_generator(out, CPU)
    result = CliRunner().invoke(main, ["sample", str(out), "--n", "2", "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 2 and not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("change,message", [
    ({"channels": 200000, "max_channels": 200000}, r"would have [\d,]+ parameters .* more than the 2,000,000,000 gan builds"),
    ({"latent_dim": 2**63 - 1}, r"would have more parameters than torch can count, more than the 2,000,000,000"),
    # past 2^63 itself: a TypeError deep in torch, with its C++ frames ("Overflow when unpacking long long")
    ({"latent_dim": 2**63}, r"would have more parameters than torch can count, more than the 2,000,000,000"),
    ({"wings": 2}, r"generator 'dcgan' takes no argument 'wings'"),
    ({"latent_dim": 0}, r"latent_dim must be at least 1, got 0"),
])
def test_an_export_whose_spec_asks_for_too_much_or_the_unknown_is_refused_before_allocating(run, tmp_path, change,
                                                                                          message):
    from safetensors.torch import save_file

    out = tmp_path / "g.safetensors"
    CliRunner().invoke(main, ["export", str(run), "--out", str(out)])
    metadata = json.loads((tmp_path / "g.safetensors.json").read_text())
    metadata["specs"]["generator"]["kwargs"].update(change)
    save_file(load_file(str(out)), str(out), metadata={"gan": json.dumps(metadata)})
    with pytest.raises(CheckpointError, match=message):
        load_generator(out, CPU)


def test_metadata_nested_thousands_deep_is_damaged_not_a_traceback(run, tmp_path):
    from safetensors.torch import save_file

    out = tmp_path / "g.safetensors"
    CliRunner().invoke(main, ["export", str(run), "--out", str(out)])
    save_file(load_file(str(out)), str(out), metadata={"gan": "[" * 100_000 + "]" * 100_000})
    with pytest.raises(CheckpointError, match='its "gan" metadata entry is not valid JSON'):
        load_generator(out, CPU)


def test_values_of_a_strangers_file_reach_the_terminal_printable_and_bounded(run, tmp_path):
    # a spec's name or norm, or an export's "source", went out verbatim: a clear-screen escape, a line break
    # that split the one-line error, and a norm a megabyte long made a megabyte of error line
    from safetensors.torch import save_file

    from gan.core.checkpoint import CheckpointError as Error
    from gan.core.checkpoint import export_source

    out = tmp_path / "g.safetensors"
    CliRunner().invoke(main, ["export", str(run), "--out", str(out)])
    metadata = json.loads((tmp_path / "g.safetensors.json").read_text())
    hostile = "b\x1b[2J\x1b]0;owned\x07\nfake line\r" + "x" * 10**6
    for field, value in (("norm", hostile), ("name", hostile)):
        edited = json.loads(json.dumps(metadata))
        if field == "name":
            edited["specs"]["generator"]["name"] = value
        else:
            edited["specs"]["generator"]["kwargs"]["norm"] = value
        save_file(load_file(str(out)), str(out), metadata={"gan": json.dumps(edited)})
        with pytest.raises(Error) as caught:
            load_generator(out, CPU)
        said = str(caught.value)
        assert "\x1b" not in said and "\n" not in said and "\r" not in said and len(said) < 3000, said[:300]
    (tmp_path / "g.safetensors.json").write_text(json.dumps({**metadata, "source": hostile}))
    assert export_source(out).startswith("b\\x1b[2J\\x1b]0;owned\\x07\\nfake line\\rxxx") and len(export_source(out)) < 400


def test_a_spec_that_counts_too_many_layers_is_refused_before_building(tmp_path):
    # num_downs = 10**9 never finished building (the parameter count builds the network on the meta
    # device), and 10**5 residual blocks took two minutes and 3 GB before a refusal
    import time

    from gan.nets import NetworkSpec

    for name, kwargs, said in (("unet_256", {"num_downs": 10**9}, "num_downs must be at most 16, got 1000000000"),
                               ("resnet_9blocks", {"num_blocks": 10**5}, "num_blocks must be at most 1000, got 100000"),
                               ("patchgan", {"in_channels": 6, "n_layers": 10**6}, "n_layers must be at most 64, got 1000000")):
        started = time.monotonic()
        with pytest.raises(ValueError, match=f"{said}: it counts layers"):
            NetworkSpec("generator" if name != "patchgan" else "discriminator", name, kwargs).check()
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("dtype, refused", [(torch.int32, True), (torch.bool, True), (torch.float16, False)])
def test_weights_edited_to_another_kind_of_number_are_refused_naming_the_parameter(run, tmp_path, dtype, refused):
    """Loading int or bool weights into float parameters would cast them (to zeros, ones) without a word."""
    from safetensors.torch import save_file

    out = tmp_path / "g.safetensors"
    CliRunner().invoke(main, ["export", str(run), "--out", str(out)])
    metadata = json.loads((tmp_path / "g.safetensors.json").read_text())
    del metadata["weights_sha256"]  # an edit on purpose
    weights = load_file(str(out))
    name = next(key for key, value in weights.items() if value.is_floating_point())
    weights[name] = weights[name].to(dtype)
    save_file(weights, str(out), metadata={"gan": json.dumps(metadata)})
    if refused:
        with pytest.raises(CheckpointError, match=rf"parameter '{name}' is {dtype} in the file and torch.float32 in "
                                                  "the network"):
            load_generator(out, CPU)
    else:  # a half-precision copy is the same weights, rounded
        assert load_generator(out, CPU).generator is not None


def test_eval_names_an_export_as_one_and_the_onnx_message_names_what_reads_it(run, tmp_path):
    out = tmp_path / "g.safetensors"
    CliRunner().invoke(main, ["export", str(run), "--out", str(out)])
    result = CliRunner().invoke(main, ["eval", str(out), "--metrics", "swd", "--n", "8"])
    assert result.exit_code == 2 and "g.safetensors' is an export of '" in result.output and "one generator's " \
        "weights, for gan sample and translate; this command takes the run directory or checkpoint it was exported " \
        "from" in result.output, result.output
    (tmp_path / "g.onnx").write_bytes(b"onnx")
    onnx = CliRunner().invoke(main, ["sample", str(tmp_path / "g.onnx"), "--out", str(tmp_path / "s.png")])
    assert onnx.exit_code == 2 and "gan sample and translate read run directories" in onnx.output, onnx.output


@pytest.mark.parametrize("name", ["g.onnx", "g.pt", "generator"])
def test_a_safetensors_export_under_another_extension_is_read_by_its_contents(run, tmp_path, name):
    # an earlier gan's `export --out g.onnx` wrote safetensors whatever the extension: read as an ONNX
    # export, it was refused with advice that led away from the fix
    CliRunner().invoke(main, ["export", str(run), "--out", str(tmp_path / "g.safetensors")])
    os.replace(tmp_path / "g.safetensors", tmp_path / name)
    assert torch.equal(samples(tmp_path / name), samples(run))
    result = CliRunner().invoke(main, ["sample", str(tmp_path / name), "--n", "2", "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 0, result.output
    # gan eval takes runs and checkpoints: told what the file is, not that it is an ONNX graph
    evaluated = CliRunner().invoke(main, ["eval", str(tmp_path / name), "--metrics", "swd", "--n", "4"])
    assert evaluated.exit_code == 2 and "ONNX" not in evaluated.output and (
        "one generator's weights, for gan sample and translate" in evaluated.output
        or "gan sample and translate read one as an export, whatever its name" in evaluated.output), evaluated.output


def test_generator_live_exports_the_trained_weights(run, tmp_path):
    out = tmp_path / "live.safetensors"
    result = CliRunner().invoke(main, ["export", str(run), "--generator", "live", "--out", str(out)])
    assert result.exit_code == 0, result.output
    checkpoint = torch.load(list_checkpoints(run)[-1], weights_only=True)
    weights = load_file(str(out))
    assert all(torch.equal(value, checkpoint["networks"]["generator"][key]) for key, value in weights.items())
    assert json.loads((tmp_path / "live.safetensors.json").read_text())["network"] == "generator"
    assert not load_generator(out, CPU).used_ema


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_exports_follow_the_umask_like_every_other_file(run, tmp_path, suffix, umask, mode):
    out = tmp_path / f"g{suffix}"
    previous = os.umask(umask)
    try:
        result = CliRunner().invoke(main, ["export", str(run), "--out", str(out)])
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    assert {path.name: oct(path.stat().st_mode & 0o777) for path in (out, tmp_path / f"g{suffix}.json")} == \
           {out.name: oct(mode), f"g{suffix}.json": oct(mode)}


def test_a_stop_while_exporting_waits_until_the_weights_and_their_description_are_both_written(run, tmp_path,
                                                                                                monkeypatch):
    """SIGTERM between the two files of an --overwrite left the new weights beside the old description.
    Held back until both are in place, it ends nothing: the command said "stopped by SIGTERM" (exit 143)
    over a whole export, and a retry was refused for its files."""
    import signal

    from gan.inference import exported

    out = tmp_path / "g.safetensors"
    assert CliRunner().invoke(main, ["export", str(run), "--generator", "live", "--out", str(out)]).exit_code == 0
    following_umask = exported.following_umask

    def stopped_after_the_weights(write):
        def written_then_stopped(path):
            following_umask(write)(path)
            if path.name.startswith(out.name + "."):  # (the weights' temp, not the description's)
                os.kill(os.getpid(), signal.SIGTERM)
        return written_then_stopped

    monkeypatch.setattr(exported, "following_umask", stopped_after_the_weights)
    with pytest.warns(UserWarning, match="SIGTERM came while the export was written, and was held back until every "
                                         "file was in place: nothing is missing"):
        result = CliRunner().invoke(main, ["export", str(run), "--out", str(out), "--overwrite"])  # the EMA one
    assert result.exit_code == 0 and "stopped by" not in result.output, result.output
    assert json.loads((tmp_path / "g.safetensors.json").read_text())["network"] == "generator_ema"
    assert load_generator(out, CPU).used_ema  # the weights and their description agree


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_a_stop_once_the_export_is_in_place_ends_nothing_and_the_handlers_are_given_back(run, tmp_path, monkeypatch,
                                                                                        stop):
    """A stop that came once the files were in place (a driver that stops the command as it reads its `wrote`
    line) ended it as stopped, 143 or 130, over a whole export: a scheduler marked the job failed, and its retry
    was refused for the files."""
    import signal

    import click

    from gan.core.processes import STOP_SIGNALS

    echo = click.echo

    def stopped_as_it_says_so(message=None, *args, **kwargs):
        echo(message, *args, **kwargs)
        if str(message).startswith("wrote"):
            signal.raise_signal(getattr(signal, stop))

    monkeypatch.setattr(click, "echo", stopped_as_it_says_so)
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    result = CliRunner().invoke(main, ["export", str(run), "--out", str(tmp_path / "g.safetensors")])
    assert result.exit_code == 0 and "wrote" in result.output and "stopped" not in result.output, result.output
    assert {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} == before  # (a process that goes on)


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_a_stop_as_the_process_ends_after_its_export_ends_nothing(run, tmp_path, stop):
    """After the command, as the process tears down (seconds for an ONNX program), SIGTERM's default action
    killed it (143, no words) and SIGINT raised in an atexit callback (a traceback): the stops the command
    ignored once its files were in place are ignored to the process's exit."""
    import subprocess
    import sys

    out = tmp_path / "g.safetensors"
    script = ("import atexit, os, signal, sys, time\n"
              "def stopped_as_it_ends():  # (the last callback to run; the sleep runs the handler, as teardown would)\n"
              f"    os.kill(os.getpid(), signal.{stop})\n"
              "    time.sleep(0.1)\n"
              "atexit.register(stopped_as_it_ends)\n"
              "from gan.commands.main import main\n"
              f"sys.argv = ['gan', 'export', {str(run)!r}, '--out', {str(out)!r}]\n"
              "main()\n")
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert finished.returncode == 0 and "Traceback" not in finished.stderr, (finished.returncode, finished.stderr)
    assert finished.stderr.startswith("wrote ") and out.is_file()


def test_an_overwrite_whose_description_cannot_be_written_keeps_the_earlier_export_whole(run, tmp_path,
                                                                                        monkeypatch):
    """The new weights replaced the old, the description failed (a full disk), and the new weights
    were then deleted: the user's earlier export was gone, its description left describing nothing."""
    import errno

    from gan.inference import exported

    out = tmp_path / "g.safetensors"
    assert CliRunner().invoke(main, ["export", str(run), "--generator", "live", "--out", str(out)]).exit_code == 0
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    following_umask = exported.following_umask

    def description_on_a_full_disk(write):
        def written(path):
            if path.name.startswith(out.name + ".json"):
                raise OSError(errno.ENOSPC, "No space left on device")
            following_umask(write)(path)
        return written

    monkeypatch.setattr(exported, "following_umask", description_on_a_full_disk)
    result = CliRunner().invoke(main, ["export", str(run), "--out", str(out), "--overwrite"])
    assert result.exit_code == 2 and "could not write" in result.output and "g.safetensors.json" in result.output
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before  # no temp left either


def test_overwrite_never_replaces_a_training_checkpoint_kept_under_a_name_of_its_own(run, tmp_path):
    """`--overwrite` turned a user's full checkpoint, copied out as other.pt, into a 258 KB export that
    could no longer be resumed: only the names checkpoint-*.pt and best.pt were protected."""
    kept = tmp_path / "celeba_final.pt"
    kept.write_bytes(list_checkpoints(run)[-1].read_bytes())
    before = kept.read_bytes()
    result = CliRunner().invoke(main, ["export", str(run), "--out", str(kept), "--overwrite"])
    assert result.exit_code == 2 and "is a checkpoint written by gan train" in result.output, result.output
    assert kept.read_bytes() == before
    exported = tmp_path / "generator.pt"  # an export, a plain state dict, is replaced as before
    for _ in range(2):
        assert CliRunner().invoke(main, ["export", str(run), "--out", str(exported), "--overwrite"]).exit_code == 0


def test_exporting_a_run_that_prunes_its_newest_checkpoint_meanwhile_takes_the_next(run, tmp_path, monkeypatch):
    """A run training on pruned the checkpoint export had chosen before reading it (1 export in 231
    failed: "is neither a checkpoint file nor a run directory"); sample and translate retried."""
    import gan.inference.exported as exported_module

    training = tmp_path / "run"
    training.mkdir()
    for checkpoint in list_checkpoints(run):
        (training / checkpoint.name).write_bytes(checkpoint.read_bytes())
    (training / "config.toml").write_bytes((run / "config.toml").read_bytes())
    newest, earlier = list_checkpoints(training)[-1], list_checkpoints(training)[-2]
    load, pruned = exported_module.load_checkpoint, []

    def pruned_before_its_read(path, **options):
        if not pruned:
            pruned.append(path)
            path.unlink()  # (and the run writes the next... here only the one before remains)
        return load(path, **options)

    monkeypatch.setattr(exported_module, "load_checkpoint", pruned_before_its_read)
    result = CliRunner().invoke(main, ["export", str(training), "--out", str(tmp_path / "g.safetensors")])
    assert result.exit_code == 0, result.output
    assert pruned == [newest] and f"from {earlier}" in result.output


def test_exporting_a_run_whose_newest_checkpoint_is_damaged_names_the_one_before(run, tmp_path):
    damaged = tmp_path / "run"
    damaged.mkdir()
    for checkpoint in list_checkpoints(run):
        (damaged / checkpoint.name).write_bytes(checkpoint.read_bytes())
    newest, earlier = list_checkpoints(damaged)[-1], list_checkpoints(damaged)[-2]
    newest.write_bytes(newest.read_bytes()[:5000])
    result = CliRunner().invoke(main, ["export", str(damaged), "--out", str(tmp_path / "g.safetensors")])
    assert result.exit_code == 2 and f"give an earlier checkpoint of the run instead, e.g. '{earlier}'" in result.output
