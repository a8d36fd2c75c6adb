"""The `gan` command: train, sample, translate, eval, export, bench."""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from pathlib import Path

import click
from PIL import Image

from gan import __version__


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings on the command line read as one plain line, without source locations."""
    return f"warning: {message}\n"


DEFAULT_EVAL_METRICS = "fid,kid,swd"


def _format_row(row: dict) -> str:
    return "  ".join(f"{key} {value:.4f}" if isinstance(value, float) else str(value) for key, value in row.items())


def _fail(error: Exception) -> None:
    click.echo(f"error: {error}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gan")
def main() -> None:
    """GANs on one zoo of networks and one training loop.

    \b
    gan train experiments/dcgan_demo.toml            # no download needed
    gan sample runs/00000-dcgan_demo --n 64 --out faces.png
    gan translate runs/00001-pix2pix_facades photos/ translated/
    gan eval runs/00002-sr_pix2pix_x4 --data datasets/sr/Set5
    gan eval runs/00000-dcgan_demo --metrics swd --n 2000
    gan export runs/00000-dcgan_demo --out faces.safetensors
    gan bench --baseline baseline.py                 # speed against a plain baseline
    torchrun --nproc_per_node=4 -m gan train experiments/dcgan_celeba128.toml
    tensorboard --logdir runs                        # compare runs
    """
    warnings.formatwarning = _format_warning


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set train.steps=2000 (repeatable).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), show_default=True,
              help="Folder in which a new numbered run directory is made.")
@click.option("--resume", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Continue the run in this directory from its newest checkpoint.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA if present), cpu, cuda or cuda:N.")
@click.option("--strict", is_flag=True, help="Unreadable image files are errors instead of skipped with a warning.")
@click.option("--on-nan", type=click.Choice(["stop", "rollback"]), default="stop", show_default=True,
              help="When a loss becomes NaN/Inf: stop, or resume the last checkpoint with the learning rates "
                   "halved (up to 3 times).")
def train(config: Path | None, overrides: tuple[str, ...], out: Path, resume: Path | None, device: str,
          strict: bool, on_nan: str) -> None:
    """Train the recipe described by CONFIG (a TOML file).

    Makes a run directory inside --out with config.toml (the resolved config),
    checkpoint-*.pt, TensorBoard event files and samples/*.png.

    \b
    Examples:
      gan train experiments/dcgan_demo.toml
      gan train experiments/dcgan_celeba128.toml --set data.root=/data/celeba/img_align_celeba
      gan train experiments/dcgan_celeba64.toml --set train.steps=500 --set train.batch_size=32 --out runs
      gan train --resume runs/00003-dcgan_celeba128            # continue after a stop
      gan train --resume runs/00003-dcgan_celeba128 --set train.steps=80000   # train longer
    """
    import torch

    from gan.checkpoint import CheckpointError
    from gan.config import load_config
    from gan.data.decode import ImageReadError
    from gan.distributed import broadcast_object, from_environment, initialise, shutdown
    from gan.files import LOCK_NAME, RunDirectoryBusy, WriteError
    from gan.registry import ConfigError
    from gan.train import DeviceUnavailable, NonFiniteLossError, create_run_dir, select_device, train_rolling_back
    from gan.train import train as run_training

    if config is None and resume is None:
        raise click.UsageError("give a CONFIG file, or --resume RUN_DIR")
    overrides = (*overrides, "data.strict=true") if strict else overrides
    run_dir = resume
    group = from_environment()  # torchrun's processes, or just this one
    try:
        resolved = load_config(config if config is not None else resume / "config.toml", list(overrides))
        torch_device = select_device(device)
        if group.distributed and torch_device.type == "cuda":
            torch_device = torch.device("cuda", group.local_rank)  # one GPU per process
            torch.cuda.set_device(torch_device)
        initialise(group, torch_device, resolved.train.dist_timeout_s)
        if resume is None:  # rank 0 numbers the run; the others learn its directory
            run_dir = broadcast_object(create_run_dir(out, config.stem) if group.is_main else None, group)
        run = train_rolling_back if on_nan == "rollback" else run_training
        result = run(resolved, run_dir, torch_device, resume=resume is not None, group=group)
    except Exception as error:
        if resume is None and run_dir is not None and group.is_main:
            with contextlib.suppress(OSError):  # a start that failed leaves no empty run directory
                (run_dir / LOCK_NAME).unlink(missing_ok=True)
                run_dir.rmdir()  # (rmdir keeps any content)
        if isinstance(error, NonFiniteLossError):
            click.echo(f"error: {error}", err=True)
            sys.exit(1)
        if isinstance(error, (ConfigError, CheckpointError, ImageReadError, FileNotFoundError, NotADirectoryError,
                              DeviceUnavailable, WriteError, RunDirectoryBusy)):
            _fail(error)
        raise
    finally:
        shutdown(group)
    if result.interrupted_by:
        sys.exit(130 if result.interrupted_by == "SIGINT" else 143)


@main.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--n", "count", default=64, show_default=True, help="Number of samples (rows with --interpolate).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="PNG file for the grid.")
@click.option("--separate", type=click.Path(file_okay=False, path_type=Path),
              help="Also write one PNG per sample into this folder.")
@click.option("--seed", default=0, show_default=True, help="Latent seed: the same seed gives the same images.")
@click.option("--interpolate", "steps", type=int, default=0,
              help="Write a latent interpolation instead: --n rows of this many steps each.")
@click.option("--generator", "which", type=click.Choice(["ema", "live"]), default="ema", show_default=True,
              help="The EMA weights (when the checkpoint has them) or the trained ones.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def sample(source: Path, count: int, out: Path | None, separate: Path | None, seed: int, steps: int,
           which: str, device: str) -> None:
    """Generate images from SOURCE: a run directory (newest checkpoint), checkpoint file or export.

    Uses the EMA generator when the checkpoint has one (--generator live for the trained weights).

    \b
    Examples:
      gan sample runs/00000-dcgan_demo --n 64 --out faces.png
      gan sample runs/00000-dcgan_demo/checkpoint-00002000.pt --n 16 --seed 7 --out seven.png
      gan sample runs/00000-dcgan_demo --n 100 --separate faces/      # one PNG per sample
      gan sample runs/00000-dcgan_demo --interpolate 10 --n 6 --out walk.png
    """
    from gan.checkpoint import CheckpointError
    from gan.files import WriteError
    from gan.images import image_format_of, save_image, save_image_grid, signed_to_pil
    from gan.inference import generate, random_latents
    from gan.sample import interpolation_latents, load_generator
    from gan.train import DeviceUnavailable, select_device

    if out is None and separate is None:
        raise click.UsageError("give --out FILE.png and/or --separate DIR")
    if count < 1 or steps < 0 or steps == 1:
        raise click.UsageError("--n must be >= 1 and --interpolate >= 2")
    if out is not None:
        try:
            image_format_of(out)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--out") from None
    try:
        loaded = load_generator(source, select_device(device), which)
        generator, path, used_ema = loaded.generator, loaded.checkpoint, loaded.used_ema
    except (CheckpointError, DeviceUnavailable) as error:
        _fail(error)
    if steps:
        latents = interpolation_latents(count, steps, generator.latent_dim, seed)
    else:
        latents = random_latents(count, generator.latent_dim, seed)
    images = generate(generator, latents)
    written: list[Path] = []
    try:
        if out is not None:
            written.append(save_image_grid(images, out, num_columns=steps or None))
            click.echo(f"wrote {out} ({len(images)} images)")
        if separate is not None:
            for index, image in enumerate(images):
                written.append(save_image(signed_to_pil(image), separate / f"{index:05d}.png"))
            click.echo(f"wrote {len(images)} PNGs to {separate}")
    except WriteError as error:
        for written_path in written:  # a failed command leaves none of its files
            written_path.unlink(missing_ok=True)
        _fail(error)
    click.echo(f"from {path} ({'EMA generator' if used_ema else 'generator'}, seed {seed})", err=True)


@main.command()
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.argument("source", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--side-by-side", is_flag=True, help="Write input | output strips instead of outputs alone.")
@click.option("--tile", default=512, show_default=True, help="Process larger images in tiles of this many pixels.")
@click.option("--overlap", default=32, show_default=True, help="Overlap between tiles, blended linearly.")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]),
              help="Which generator of a CycleGAN checkpoint to run [default: AtoB].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def translate(checkpoint: Path, source: Path, output: Path, side_by_side: bool, tile: int, overlap: int,
              direction: str | None, device: str) -> None:
    """Run an image-to-image generator on INPUT (an image, or a folder searched
    recursively) and write OUTPUT (an image, or a folder with the same relative names).

    CHECKPOINT is a run directory (newest checkpoint), a checkpoint file or an export. Any image
    size works: inputs are padded to the network's multiple and cropped back.

    \b
    Examples:
      gan translate runs/00001-pix2pix_facades contour.jpg photo.png
      gan translate runs/00001-pix2pix_facades drawings/ photos/ --side-by-side
      gan translate runs/00002-sr_pix2pix_x4 small.png large.png --tile 256
      gan translate runs/00003-cyclegan_horse2zebra zebras/ horses/ --direction BtoA
    """
    from gan.checkpoint import CheckpointError
    from gan.data.decode import ImageReadError, find_images, read_rgb
    from gan.files import WriteError
    from gan.images import image_format_of, save_image
    from gan.progress import Progress
    from gan.train import DeviceUnavailable, select_device
    from gan.translate import load_translator

    try:
        translator = load_translator(checkpoint, select_device(device), tile, overlap, direction)
        if source.is_dir():
            inputs = [(image, output / image.relative_to(source)) for image in find_images(source)]
        else:
            image_format_of(output)
            inputs = [(source, output)]
    except (CheckpointError, FileNotFoundError, NotADirectoryError, DeviceUnavailable, ValueError) as error:
        _fail(error)
    progress = Progress(len(inputs), unit="image")
    written = 0
    for done, (image_path, output_path) in enumerate(inputs, 1):
        try:
            image = read_rgb(image_path)
        except ImageReadError as error:
            warnings.warn(f"skipping {error}", stacklevel=1)
            continue
        result = translator(image)
        if side_by_side:
            shown = translator.prepare(image).resize(result.size)
            strip = Image.new("RGB", (result.width * 2, result.height))
            strip.paste(shown, (0, 0))
            strip.paste(result, (result.width, 0))
            result = strip
        try:
            save_image(result, output_path)
        except WriteError as error:
            progress.close()
            _fail(f"{error}; {written} of {len(inputs)} image(s) were written before it, each complete")
        written += 1
        progress.update(done, {}, done / max(time.perf_counter() - progress.started_at, 1e-9))
    progress.close()
    click.echo(f"wrote {len(inputs)} image(s) to {output} with {translator.checkpoint}", err=True)


@main.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write, e.g. generator.safetensors.")
@click.option("--format", "export_format", type=click.Choice(["safetensors", "pt"]), default="safetensors",
              show_default=True, help="safetensors (tensors only) or a plain torch file.")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), help="CycleGAN: which generator.")
def export(source: Path, out: Path, export_format: str, direction: str | None) -> None:
    """Write the generator of SOURCE (run directory or checkpoint) for sampling and translating.

    The EMA weights when the run has them; the network spec, config and step go into the
    file's metadata and a JSON beside it. `gan sample` and `gan translate` take the file.

    \b
    Examples:
      gan export runs/00000-dcgan_celeba64 --out faces.safetensors
      gan sample faces.safetensors --n 64 --out faces.png
      gan export runs/00003-cyclegan_horse2zebra --direction BtoA --out zebra2horse.safetensors
    """
    from gan.checkpoint import CheckpointError
    from gan.export import export_generator

    try:
        metadata = export_generator(source, out, export_format, direction)
    except (CheckpointError, OSError) as error:
        _fail(error)
    click.echo(f"wrote {out} ({metadata['network']}, step {metadata['step']}) and {out.name}.json from "
               f"{metadata['source']}")


@main.command()
@click.option("--model", "models", multiple=True, help="Repeatable; default: all of dcgan64, dcgan128, pix2pix256, "
              "cyclegan256, srresnet4x, srgan4x.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write results here.")
@click.option("--rounds", default=5, show_default=True, help="Alternating rounds of ours and the baseline.")
@click.option("--iters", default=0, show_default=True,
              help="Training iterations per side per round; 0 = as many as take about 2 seconds.")
@click.option("--warmup", default=3, show_default=True, help="Untimed iterations per side first (compilation).")
@click.option("--eager", is_flag=True, help="Turn our speed switches off (compile, channels_last, bf16).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Config override for our side, e.g. train.compile=off (repeatable; after --eager).")
@click.option("--baseline", "baseline_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The plain implementation to compare with (a Python file of the canonical models); without "
                   "it the baseline columns stay empty.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of images (with subfolders) for the data-path benchmark; without it (or 'none') that "
                   "part is skipped.")
@click.option("--data-workers", default=2, show_default=True, help="Loader workers for the uncached data path.")
@click.option("--threads", type=int, help="torch.set_num_threads for the run.")
def bench(models: tuple[str, ...], device: str, json_path: Path | None, rounds: int, iters: int, warmup: int,
          eager: bool, overrides: tuple[str, ...], baseline_path: Path | None, data_root: Path | None,
          data_workers: int, threads: int | None) -> None:
    """Training images/s of each recipe's canonical configuration, against the plain baseline.

    Both run in this process on random tensors, in alternating rounds; the table gives
    images/s, the ratio ours / baseline, peak CUDA memory and achieved TFLOP/s (FLOPs of
    one step counted by torch.utils.flop_counter). Then the data path: the decoded-image
    cache against torchvision ImageFolder + transforms at 128x128.

    \b
    Examples:
      gan bench --baseline baseline.py            # everything, on CUDA if present
      gan bench --model dcgan64 --model dcgan128 --device cuda --json bench.json
      gan bench --data-root datasets/celeba/img_align_celeba   # also the data path
      gan bench --model pix2pix256 --rounds 2 --data-root none
      gan bench --model dcgan128 --set train.compile=off --device cuda   # one switch's share
    """
    import tempfile
    import traceback

    import torch

    from gan.bench import CASES, bench_data, bench_model, format_table, load_baseline, write_json
    from gan.bench import threads as thread_count
    from gan.config import load_config
    from gan.registry import ConfigError
    from gan.train import DeviceUnavailable, select_device

    unknown = [name for name in models if name not in CASES]
    if unknown:
        raise click.BadParameter(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(CASES)}",
                                 param_hint="--model")
    try:
        torch_device = select_device(device)
        for name in models or CASES:  # a bad --set stops here, not inside every model's run
            load_config(None, [*CASES[name].overrides, *overrides])
        baseline = load_baseline(baseline_path) if baseline_path else None
    except (DeviceUnavailable, ConfigError, FileNotFoundError) as error:
        _fail(error)
    if baseline is None:
        click.echo("no --baseline given: the baseline columns stay empty", err=True)
    rows, data_rows, failures = [], [], {}
    with thread_count(threads):
        settings = {"device": str(torch_device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "rounds": rounds, "iters": iters, "eager": eager, "overrides": list(overrides)}
        for name in models or CASES:
            try:
                rows.append(bench_model(name, torch_device, baseline, rounds, iters, warmup, fast=not eager,
                                        flops=True, overrides=overrides))
            except Exception as error:  # one model's failure must not cost the others' figures
                traceback.print_exc()
                failures[name] = f"{type(error).__name__}: {error}"
            if json_path:  # after every model: a run cut short keeps what it measured
                write_json(json_path, rows, data_rows, settings, failures)
        if data_root is not None and str(data_root) != "none":
            with tempfile.TemporaryDirectory() as cache_dir:
                data_rows.append(bench_data(data_root, 128, 64, 40, data_workers, Path(cache_dir)))
    click.echo(format_table(rows))
    if baseline is None:
        click.echo("(baseline columns empty: no --baseline file was given)")
    for row in data_rows:
        click.echo(f"\ndata path at {row['resolution']}px, batch {row['batch_size']}, {row['images']} images: cached "
                   f"{row['cached_images_per_s']:.0f} img/s vs ImageFolder+transforms "
                   f"{row['imagefolder_images_per_s']:.0f} img/s with {row['workers']} workers: "
                   f"{row['ratio']:.1f}x (cache built once in {row['cache_build_s']:.1f} s)")
    if json_path:
        write_json(json_path, rows, data_rows, settings, failures)
        click.echo(f"wrote {json_path}", err=True)
    if failures:
        _fail(RuntimeError("failed: " + "; ".join(f"{name} ({error})" for name, error in failures.items())))


@main.command(name="eval")
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.option("--data", "folder", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Super-resolution: a folder of HR images. Paired: a folder of pairs. Unconditional: "
                   "the real images to compare with [default: the run's data.root].")
@click.option("--metrics", "metric_names",
              help="Unconditional checkpoints: comma-separated, of fid, kid, swd, pr (precision/recall) "
                   "[default: fid,kid,swd, skipping (with a warning) those whose weights are not on this machine].")
@click.option("--n", "count", default=10000, show_default=True,
              help="Unconditional checkpoints: generated images, and real images in the reference set.")
@click.option("--inception-weights", type=click.Path(dir_okay=False, path_type=Path),
              help="Inception-v3 weights file for fid/kid/pr [default: torch-fidelity's cache folder].")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where reference statistics are cached [default: ~/.cache/gan/reference-statistics].")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Unconditional checkpoints: where to write the results "
                   "[default: metrics-<step>.json in the run directory].")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Image-to-image checkpoints: where to write per-image results "
                   "[default: eval-<data>-<step>.csv in the run directory].")
@click.option("--tile", default=512, show_default=True, help="Process larger images in tiles of this many pixels.")
@click.option("--generator", "which", type=click.Choice(["ema", "live"]), default="ema", show_default=True,
              help="Unconditional checkpoints: score the EMA weights (when present) or the trained ones.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def evaluate(checkpoint: Path, folder: Path | None, metric_names: str | None, count: int, inception_weights: Path | None,
             cache_dir: Path | None, json_path: Path | None, csv_path: Path | None, tile: int, which: str,
             device: str) -> None:
    """Measure a checkpoint (CHECKPOINT: a run directory or a checkpoint file).

    Unconditional (DCGAN) checkpoints: FID, KID, SWD and precision/recall of --n images
    from the EMA generator (--generator live: the trained one) against --n real images of
    the run's data set, printed and written as JSON. FID/KID need the Inception-v3
    weights (README, "Metrics"); SWD needs nothing. Real-image statistics are cached, so
    later evaluations only generate.

    Image-to-image checkpoints: PSNR and SSIM on a --data folder, per image and mean.
    Super-resolution checkpoints are measured as papers report them: the LR input is
    the bicubic downsampling of each HR image, PSNR/SSIM are on the Y channel with
    `scale` pixels shaved, and plain bicubic upsampling is shown beside the model.
    CycleGAN checkpoints: --data holds testA/ and testB/; each image goes to the
    other domain and back, and the cycle-reconstruction L1 and PSNR are reported.

    \b
    Examples:
      gan eval runs/00000-dcgan_celeba64 --metrics fid,kid,swd --n 10000
      gan eval runs/00000-dcgan_celeba64 --metrics swd --n 2000 --json swd.json
      gan eval runs/00002-sr_pix2pix_x4 --data datasets/sr/Set5
      gan eval runs/00001-pix2pix_facades --data datasets/facades/val --csv val.csv
      gan eval runs/00003-cyclegan_horse2zebra --data datasets/horse2zebra
    """
    from gan.checkpoint import CheckpointError, load_checkpoint, resolve_checkpoint
    from gan.train import DeviceUnavailable, select_device

    try:
        path = resolve_checkpoint(checkpoint)
        state = load_checkpoint(path)
        if state["config"]["recipe"] == "dcgan":
            _evaluate_generative(state, path, folder, metric_names, count, inception_weights, cache_dir,
                                 json_path, which, select_device(device))
        else:
            if folder is None:
                raise click.UsageError("image-to-image checkpoints need --data FOLDER")
            _evaluate_image_to_image(path, folder, csv_path, tile, select_device(device))
    except (CheckpointError, FileNotFoundError, NotADirectoryError, DeviceUnavailable, ValueError) as error:
        _fail(error)


def _evaluate_generative(state: dict, path: Path, folder: Path | None, metric_names: str | None, count: int,
                         inception_weights: Path | None, cache_dir: Path | None, json_path: Path | None,
                         which: str, device) -> None:
    import json

    from gan.evaluate import evaluate_generative
    from gan.files import write_text_atomically
    from gan.metrics.generative import check_metric_names
    from gan.registry import ConfigError
    from gan.sample import generator_from_checkpoint

    try:
        names = check_metric_names((metric_names or DEFAULT_EVAL_METRICS).split(","), "--metrics")
    except ConfigError as error:
        raise click.BadParameter(str(error)) from None
    if count < 2:
        raise click.BadParameter("--n must be at least 2")
    loaded = generator_from_checkpoint(state, path, device, which)
    # Asked for by name, a metric that cannot run is an error; by default it is skipped, saying why.
    result = evaluate_generative(loaded, names, count, device, folder, inception_weights, cache_dir,
                                 require_weights=metric_names is not None)
    suffix = "" if loaded.used_ema or "generator_ema" not in state["networks"] else "-live"
    json_path = json_path or path.parent / f"metrics-{loaded.step:08d}{suffix}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(json_path, json.dumps(result, indent=2) + "\n")
    scores = {key: value for key, value in result.items() if isinstance(value, float)}
    click.echo(f"step {result['step']}  " + "  ".join(f"{key} {value:.4f}" for key, value in scores.items()))
    if result["skipped"]:
        click.echo(f"skipped {', '.join(result['skipped'])}: {next(iter(result['skipped'].values()))}", err=True)
    click.echo(f"wrote {json_path} ({result['num_images']} generated vs {result['num_images']} real images "
               f"from {result['reference']}; {path})", err=True)


def _evaluate_image_to_image(path: Path, folder: Path, csv_path: Path | None, tile: int, device) -> None:
    from gan.evaluate import evaluate_cycle, evaluate_paired, evaluate_super_resolution, mean_row, write_csv
    from gan.translate import load_translator

    translator = load_translator(path, device, tile)
    data = translator.config["data"]
    if translator.config["recipe"] == "cyclegan":
        backward = load_translator(path, translator.device, tile, direction="BtoA")
        rows_iterator = evaluate_cycle(translator, backward, folder, data["resolution"])
    elif data["dataset"] == "sr_pairs":
        rows_iterator = evaluate_super_resolution(translator, folder, data["scale"])
    else:
        rows_iterator = evaluate_paired(translator, folder, data)
    rows = []
    for row in rows_iterator:
        rows.append(row)
        click.echo(_format_row(row), err=True)
    if not rows:
        raise FileNotFoundError(f"nothing to evaluate in '{folder}'")
    rows.append(mean_row(rows))
    csv_path = csv_path or translator.checkpoint.parent / f"eval-{folder.name}-{translator.step:08d}.csv"
    write_csv(rows, csv_path)
    click.echo(_format_row(rows[-1]))
    click.echo(f"wrote {csv_path} ({len(rows) - 1} images, {translator.checkpoint})", err=True)


def _cache_dir_option(command):
    return click.option("--dir", "cache_dir", type=click.Path(file_okay=False, path_type=Path),
                        help="Cache folder (data.cache_dir) [default: $XDG_CACHE_HOME/gan/decoded or "
                             "~/.cache/gan/decoded].")(command)


def _resolve_cache_dir(cache_dir: Path | None) -> Path:
    from gan.data.cache import user_cache_dir

    return cache_dir or user_cache_dir("decoded")


@main.group()
def cache() -> None:
    """The decoded-image caches that data.cache builds: list, verify and clear them.

    \b
    Examples:
      gan cache list
      gan cache verify                     # every checksum of every cache
      gan cache clear --older-than 30      # caches no run used for 30 days
    """


@cache.command(name="list")
@_cache_dir_option
def cache_list(cache_dir: Path | None) -> None:
    """Show each cache: size, images, resolution, last use and the folder it was decoded from."""
    import datetime

    from gan.data.cache import list_caches, orphan_files

    folder = _resolve_cache_dir(cache_dir)
    entries, orphans = list_caches(folder), orphan_files(folder)
    click.echo(f"{folder}: {len(entries)} cache(s)")
    for entry in entries:
        used = datetime.datetime.fromtimestamp(entry.last_used).strftime("%Y-%m-%d %H:%M")
        header = entry.header
        click.echo(f"  {entry.name}  {entry.size_bytes / 2**20:9.1f} MiB  {header.get('count', '?'):>7} images  "
                   f"{header.get('resolution', '?')} px  used {used}  {header.get('root', header.get('dataset', ''))}")
    orphan_bytes = sum(path.stat().st_size for path in orphans)
    if orphans:
        click.echo(f"  {len(orphans)} leftover file(s) of broken or abandoned builds, {orphan_bytes / 2**20:.1f} MiB "
                   "(gan cache clear removes them)")
    total = sum(entry.size_bytes for entry in entries) + orphan_bytes
    click.echo(f"total {total / 2**20:.1f} MiB")


@cache.command(name="verify")
@_cache_dir_option
def cache_verify(cache_dir: Path | None) -> None:
    """Check every cache against its header: size, shape and every checksum. A damaged cache is
    removed (the next run that needs it rebuilds it); exits with 1 when any was damaged."""
    from gan.data.cache import cache_damage, list_caches

    damaged = 0
    for entry in list_caches(_resolve_cache_dir(cache_dir)):
        _, damage = cache_damage(entry.array_path, entry.header, verify_all=True)
        if damage is None:
            click.echo(f"ok       {entry.name}  {entry.header.get('root', '')}")
        else:
            damaged += 1
            entry.remove()
            click.echo(f"damaged  {entry.name}  {entry.header.get('root', '')}: {damage}; removed, the next run "
                       "that uses it rebuilds it")
    if damaged:
        sys.exit(1)


@cache.command(name="clear")
@_cache_dir_option
@click.option("--older-than", "days", type=click.FloatRange(min=0), help="Only caches no run used for this many days.")
def cache_clear(cache_dir: Path | None, days: float | None) -> None:
    """Remove caches (all, or those unused for --older-than DAYS) and leftovers of broken builds."""
    from gan.data.cache import list_caches, orphan_files

    folder = _resolve_cache_dir(cache_dir)
    cutoff = time.time() - days * 86400 if days is not None else float("inf")
    freed = removed = 0
    for entry in list_caches(folder):
        if entry.last_used < cutoff:
            freed += entry.size_bytes
            removed += 1
            entry.remove()
    for path in orphan_files(folder):
        freed += path.stat().st_size
        path.unlink(missing_ok=True)
    click.echo(f"removed {removed} cache(s) from {folder}, {freed / 2**20:.1f} MiB freed")
