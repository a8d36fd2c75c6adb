"""`gan compare`: runs grouped by config (seeds pooled), the table's mean ± std against values
computed by hand from synthetic event files, and the figure."""

import csv
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from gan.commands.main import main
from gan.tools.compare import CompareError, compare, find_runs, group_runs, plot, read_configs, read_scalars, smooth

# swd/mean at steps 100, 200, 300 for each (loss, seed): the best is the lowest.
SWD = {("hinge", 0): [30.0, 10.0, 20.0], ("hinge", 1): [30.0, 12.0, 22.0], ("hinge", 2): [14.0, 40.0, 24.0],
       ("lsgan", 0): [50.0, 45.0, 40.0], ("lsgan", 1): [52.0, 47.0, 44.0]}


def make_run(folder, name, loss, seed, swd, recipe="dcgan"):
    run = folder / name
    run.mkdir(parents=True)
    (run / "config.toml").write_text(f'recipe = "{recipe}"\n\n[loss]\nadversarial = "{loss}"\n\n'
                                     f"[train]\nseed = {seed}\nsteps = 300\n")
    writer = SummaryWriter(str(run))
    for index, value in enumerate(swd):
        step = 100 * (index + 1)
        writer.add_scalar("metrics/swd/mean", value, step)
        writer.add_scalar("loss/d", 1.0 + seed + index, step)
        writer.add_scalar("loss/g", 2.0 * (index + 1), step)
        writer.add_scalar("perf/images_per_s", 100.0 + 10 * index, step)
    writer.close()
    return run


@pytest.fixture
def sweep(tmp_path):
    folder = tmp_path / "sweep"
    for index, ((loss, seed), swd) in enumerate(SWD.items()):
        make_run(folder, f"{index:05d}-adversarial={loss}-seed={seed}", loss, seed, swd)
    return folder


def test_runs_that_differ_only_by_seed_form_one_group(sweep):
    runs = find_runs([sweep])
    assert len(runs) == 5
    groups = group_runs(read_configs(runs))
    # labels name the full key (issue 28): `every=500` alone could be any section's
    assert {label: len(members) for label, members in groups.items()} == {"loss.adversarial=hinge": 3,
                                                                          "loss.adversarial=lsgan": 2}
    assert read_scalars(runs[0])["metrics/swd/mean"][1].tolist() == [30.0, 10.0, 20.0]


def test_a_seed_resumed_with_another_setting_of_how_it_runs_stays_a_seed_of_its_group(tmp_path):
    # A seed resumed with another checkpoint_every (or loader workers, logging) formed a one-seed group of its
    # own, labelled as if that were the experiment's factor: mean ± std over fewer seeds. Runs started apart
    # in such a key (a sweep of loader workers, timed) stay apart.
    runs = [make_run(tmp_path / "runs", f"0000{seed}-seed={seed}", "hinge", seed, [20.0 + seed]) for seed in range(3)]
    resumed = runs[1] / "config.toml"
    resumed.write_text("# resumed at step 200 with train.checkpoint_every 1000 -> 10\n"
                       "# resumed at step 250 with data.num_workers 4 -> 7\n"
                       + resumed.read_text() + "checkpoint_every = 10\n\n[data]\nnum_workers = 7\n")
    assert group_runs(read_configs(runs), {runs[1]: {"train.checkpoint_every", "data.num_workers"}}) == \
        {"all runs": runs}
    table, _ = compare([tmp_path / "runs"], None, tmp_path / "cmp")
    assert "| all runs | 3 |" in table, table
    swept = [make_run(tmp_path / "sweep", f"0000{index}-num_workers={workers}-seed=0", "hinge", 0, [20.0])
             for index, workers in enumerate((0, 2))]
    for run, workers in zip(swept, (0, 2)):
        (run / "config.toml").write_text((run / "config.toml").read_text() + f"\n[data]\nnum_workers = {workers}\n")
    assert set(group_runs(read_configs(swept))) == {"data.num_workers=0", "data.num_workers=2"}
    longer = make_run(tmp_path / "more", "00003-seed=3", "hinge", 3, [30.0])  # (a length its curve shows: apart)
    (longer / "config.toml").write_text("# resumed at step 300 with train.steps 300 -> 600\n"
                                        + (longer / "config.toml").read_text().replace("steps = 300", "steps = 600"))
    assert group_runs(read_configs([*runs, longer]), {runs[1]: {"train.checkpoint_every", "data.num_workers"},
                                                      longer: {"train.steps"}}) == \
        {"train.steps=300": runs, "train.steps=600": [longer]}


def test_seeds_that_keep_their_caches_in_other_places_are_one_group(tmp_path):
    """Seeds of one experiment run on two machines, caches in two places: one group each, labelled by
    data.cache_dir, with no mean or spread."""
    runs = [make_run(tmp_path / "runs", f"0000{seed}-seed={seed}", "hinge", seed, [20.0 + seed]) for seed in range(3)]
    for run, place in zip(runs[1:], ("/scratch/cache", "/mnt/fast")):
        (run / "config.toml").write_text((run / "config.toml").read_text()
                                         + f'\n[data]\ncache_dir = "{place}"\n\n[metrics]\ncache_dir = "{place}"\n')
    assert group_runs(read_configs(runs)) == {"all runs": runs}


def test_a_run_written_before_a_key_existed_groups_with_one_that_spells_out_its_default(tmp_path):
    old = make_run(tmp_path / "runs", "00000-seed=0", "hinge", 0, [20.0])
    new = make_run(tmp_path / "runs", "00001-seed=1", "hinge", 1, [22.0])
    new_config = (new / "config.toml").read_text().replace(
        '[loss]\n', '[loss]\ndiffaugment = ""\nr1_gamma = 0.0\n') + "\n[model.discriminator_args]\nspectral_norm = false\n"
    (new / "config.toml").write_text(new_config)
    groups = group_runs(read_configs([old, new]))
    assert groups == {"all runs": [old, new]}
    table, summaries = compare([old], None, tmp_path / "one")
    assert "20 (one seed)" in table and "±" not in table.split("\n")[2]  # no std from one seed
    different = make_run(tmp_path / "runs", "00002-seed=0", "hinge", 0, [30.0])
    (different / "config.toml").write_text(new_config.replace("spectral_norm = false", "spectral_norm = true"))
    assert set(group_runs(read_configs([old, new, different]))) == {"model.discriminator_args.spectral_norm=false",
                                                                    "model.discriminator_args.spectral_norm=true"}


def test_a_config_that_is_not_utf8_is_named_in_one_line(tmp_path):
    run = make_run(tmp_path / "runs", "00000-seed=0", "hinge", 0, [20.0])
    (run / "config.toml").write_bytes((run / "config.toml").read_bytes() + b"# caf\xe9\n")  # Latin-1
    result = CliRunner().invoke(main, ["compare", str(run), "--out", str(tmp_path / "table")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"cannot read the settings of run '{run}': {run / 'config.toml'}: not UTF-8 text" in result.output


def test_runs_of_two_recipes_are_named_by_their_folders_not_by_dozens_of_keys(tmp_path):
    runs = tmp_path / "runs"
    dcgan = [make_run(runs, f"0000{seed}-dcgan_demo", "hinge", seed, [20.0], "dcgan") for seed in (0, 1)]
    pix2pix = make_run(runs, "00002-pix2pix_facades", "vanilla", 0, [20.0], "pix2pix")
    groups = group_runs(read_configs([*dcgan, pix2pix]))
    assert groups == {"00000-dcgan_demo": dcgan, "00002-pix2pix_facades": [pix2pix]}  # seeds still group
    # the same folder names under two sweeps: the parent tells them apart
    other = make_run(tmp_path / "other", "00002-pix2pix_facades", "lsgan", 0, [20.0], "pix2pix")
    assert set(group_runs(read_configs([*dcgan, pix2pix, other]))) == {
        "runs/00000-dcgan_demo", "runs/00002-pix2pix_facades", "other/00002-pix2pix_facades"}
    # ... or as many parents as it takes: no group may hide another
    deep = [make_run(tmp_path / side / "runs", "x", "hinge", 0, [20.0], recipe)
            for side, recipe in (("a", "dcgan"), ("b", "cyclegan"))]
    assert set(group_runs(read_configs(deep))) == {"a/runs/x", "b/runs/x"}
    # one recipe, but five keys apart: also named by folder
    tuned = make_run(runs, "00003-tuned", "hinge", 0, [20.0], "dcgan")
    (tuned / "config.toml").write_text((tuned / "config.toml").read_text().replace(
        "steps = 300\n", "steps = 300\ng_lr = 1e-3\nd_lr = 1e-3\nbeta1 = 0.0\nbeta2 = 0.9\nbatch_size = 32\n"))
    assert set(group_runs(read_configs([dcgan[0], tuned]))) == {"00000-dcgan_demo", "00003-tuned"}
    # a seeds sweep beside a one-seed sweep of the same names: without the seed they read alike, so the
    # parents tell them apart (a group of two seeds was named after one seed's run)
    seeds = [make_run(tmp_path / "s1", f"00000-preset=vanilla-seed={seed}", "hinge", seed, [20.0]) for seed in (0, 1)]
    single = make_run(tmp_path / "si", "00000-preset=vanilla", "vanilla", 0, [20.0], "pix2pix")
    assert group_runs(read_configs([*seeds, single])) == {"s1/00000-preset=vanilla": seeds,
                                                          "si/00000-preset=vanilla": [single]}
    # ... and where only the seed tells two groups' folders apart, it stays (a group was lost)
    apart = [make_run(tmp_path / "x", f"a-seed={seed}", "hinge", seed, [20.0], recipe)
             for seed, recipe in ((0, "dcgan"), (1, "pix2pix"))]
    assert group_runs(read_configs(apart)) == {"a-seed=0": [apart[0]], "a-seed=1": [apart[1]]}


def test_a_group_whose_others_are_unreadable_keeps_the_label_that_sets_it_apart(sweep, tmp_path):
    # it read "all runs", after warnings that the other group's runs were left out
    for run in sweep.glob("*lsgan*"):
        for events in run.glob("events.out.tfevents.*"):
            events.write_bytes(b"")
    table, _ = compare([sweep], None, tmp_path / "out")
    assert "loss.adversarial=hinge" in table and "all runs" not in table, table


def test_the_legend_names_every_group_also_one_without_the_first_panel(tmp_path):
    """The legend used to be drawn on the first panel alone, so a group without loss/d (another
    recipe's losses) was in the figure but not named."""
    steps = np.arange(1, 4) * 100.0
    grouped = {"dcgan": {tmp_path / "a": {"loss/d": (steps, steps), "metrics/swd/mean": (steps, steps)}},
               "other": {tmp_path / "b": {"metrics/swd/mean": (steps, steps)},
                         tmp_path / "c": {"metrics/swd/mean": (steps, steps + 1)}}}
    drawn = plot(grouped, "swd/mean", tmp_path / "curves.png")
    assert drawn["loss/d"] == ["dcgan (n=1)"] and drawn["legend"] == ["dcgan (n=1)", "other (n=2)"]


def test_a_runs_speed_is_its_images_over_its_training_time():
    """The mean of the windows' rates overstated it (11% where they swung 184..976 img/s), and a
    short last window (train.steps not a multiple of log.every) counted as a whole one."""
    from gan.tools.compare import training_speed

    # windows of 50 steps at 100 and 200 img/s, then 10 steps at 400: 110 units of steps in
    # 50/100 + 50/200 + 10/400 units of time
    steps, rates = np.array([50, 100, 110]), np.array([100.0, 200.0, 400.0])
    assert training_speed(steps, rates) == pytest.approx(110 / (50 / 100 + 50 / 200 + 10 / 400))
    # a start's and a resume's first step is timed on its own (perf/first_step_s, logged at it): the
    # window after it counts from it; a resume with another log.every keeps each window's own steps
    # (capped at the usual gap, 20 steps at 420 img/s weighed as 2: 238 img/s for 368)
    steps, rates = np.array([50, 100, 200, 250]), np.array([100.0, 100.0, 200.0, 100.0])
    resumed = training_speed(steps, rates, first_steps=[1, 151])
    assert resumed == pytest.approx(198 / (49 / 100 + 50 / 100 + 49 / 200 + 50 / 100))
    steps = np.array([*range(2, 62, 2), *range(80, 620, 20)])
    rates = np.array([170.0] * 30 + [420.0] * 27)
    speed = training_speed(steps, rates, first_steps=[1, 61])
    assert speed == pytest.approx((59 + 539) / (59 / 170 + 539 / 420))
    assert training_speed(np.array([50]), np.array([120.0])) == 120.0


def test_the_table_gives_mean_and_std_over_seeds(sweep, tmp_path):
    table, summaries = compare([sweep], None, tmp_path / "out")
    hinge, lsgan = summaries
    # hinge bests 10 (step 200), 12 (200), 14 (100): mean 12, sample std 2; finals 20, 22, 24
    assert hinge.seeds == 3 and hinge.best == pytest.approx((12.0, 2.0)) and hinge.best_step == pytest.approx(500 / 3)
    assert hinge.final == pytest.approx((22.0, 2.0))
    # final loss/d per seed 3, 4, 5 -> 4; loss/g 6; images/s: each run's windows of 100, 110, 120 img/s
    # hold as many images each, 3 of them in 1/100 + 1/110 + 1/120 s a unit: 109.4 (not their mean, 110)
    assert hinge.final_losses == pytest.approx({"loss/d": 4.0, "loss/g": 6.0})
    assert hinge.images_per_s == pytest.approx(3 / (1 / 100 + 1 / 110 + 1 / 120))
    # lsgan bests 40 and 44 (both at step 300): mean 42, std 2.828...
    assert lsgan.best == pytest.approx((42.0, 2.8284271), rel=1e-6) and lsgan.best_step == 300
    assert "| loss.adversarial=hinge | 3 | 12 ± 2 | 166.7 | 22 ± 2 |" in table  # (not rounded to a step)
    assert "best swd/mean (lower is better)" in table
    rows = list(csv.DictReader((tmp_path / "out" / "compare.csv").open()))
    assert [row["group"] for row in rows] == ["loss.adversarial=hinge", "loss.adversarial=lsgan"]
    assert float(rows[1]["best_swd/mean_std"]) == pytest.approx(2.8284271, rel=1e-6)
    assert (tmp_path / "out" / "compare.md").read_text() == table


def test_a_group_label_holding_a_pipe_keeps_each_value_under_its_column(tmp_path):
    """A data.root named 'd|ata' made its row 8 cells under a 7-column header: each value of the row
    under the next column's name."""
    folder = tmp_path / "sweep"
    for index, root in enumerate(["d|ata", "data"]):
        run = make_run(folder, f"{index:05d}", "hinge", 0, [10.0 + index])
        with open(run / "config.toml", "a") as config:
            config.write(f'\n[data]\nroot = "{root}"\n')
    table, _ = compare([folder], None, tmp_path / "out")
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert len({len(re.findall(r"(?<!\\)\|", row)) for row in rows}) == 1, table  # (an unescaped | ends a cell)
    assert "| data.root=d\\|ata | 1 | 10 (one seed) | 100 |" in table, table


def test_the_legend_of_a_big_sweep_stays_inside_the_figure(tmp_path):
    """Nine groups of a 3x3 grid, labels of ~50 characters, at two a panel: the legend's first and
    last columns ran past both edges of the image, and groups went unnamed."""
    steps = np.arange(1, 4) * 100.0
    grouped = {f"loss.adversarial={loss} train.g_lr={lr} train.d_lr={lr}": {
        tmp_path / f"{loss}{lr}": {"loss/d": (steps, steps), "loss/g": (steps, steps), "metrics/swd/mean": (steps, steps)}}
        for loss in ("vanilla", "hinge", "lsgan") for lr in ("0.0001", "0.0002", "0.0004")}
    drawn = plot(grouped, "swd/mean", tmp_path / "curves.png")
    assert len(drawn["legend"]) == 9
    with Image.open(tmp_path / "curves.png") as image:
        pixels = np.asarray(image.convert("L"))
    legend = pixels[int(0.8 * len(pixels)):]  # (the band below the panels)
    assert legend.min() < 128  # (its text is there)
    assert legend[:, :3].min() == 255 and legend[:, -3:].min() == 255  # (and none of it at the edges)
    # a label longer than the panels are wide (a data.root of 200 characters, two panels): the figure widens
    grouped = {f"data.root=/data/{'faces_' * 30}{index}": {tmp_path / f"r{index}": {"loss/d": (steps, steps)}}
               for index in range(2)}
    plot(grouped, "loss/d", tmp_path / "long.png")
    with Image.open(tmp_path / "long.png") as image:
        pixels = np.asarray(image.convert("L"))
    legend = pixels[int(0.8 * len(pixels)):]
    assert legend.min() < 128 and legend[:, :3].min() == 255 and legend[:, -3:].min() == 255


def test_the_figure_has_one_line_per_group_in_each_panel(sweep, tmp_path):
    grouped = {label: {run: read_scalars(run) for run in members}
               for label, members in group_runs(read_configs(find_runs([sweep]))).items()}
    drawn = plot(grouped, "swd/mean", tmp_path / "curves.png")
    assert drawn == {panel: ["loss.adversarial=hinge (n=3)", "loss.adversarial=lsgan (n=2)"]
                     for panel in ("loss/d", "loss/g", "swd/mean", "legend")}
    with Image.open(tmp_path / "curves.png") as image:
        assert image.format == "PNG" and image.width > 1000 and image.height > 300


def test_compare_leaves_the_process_matplotlib_backend_as_it_was(sweep, tmp_path):
    """compare called matplotlib.use("Agg"): a notebook's inline backend was switched for the whole
    process, and its figures shown after a compare showed nothing."""
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")  # (not Agg: a switch to Agg would show)
    try:
        compare([sweep], None, tmp_path / "out")
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
    with Image.open(tmp_path / "out" / "compare.png") as image:
        assert image.format == "PNG" and image.width > 1000 and image.height > 300


def test_a_matplotlib_config_folder_that_cannot_be_written_is_one_line_of_gans(sweep, tmp_path):
    """Under HOME=/ (unwritable) compare printed matplotlib's "mkdir -p failed ..." and a paragraph on
    MPLCONFIGDIR among its own one-line warnings."""
    import os
    import subprocess
    import sys

    (tmp_path / "a-file").write_text("")  # (no folder can be made under it, whoever runs this)
    env = {name: value for name, value in os.environ.items() if name != "MPLCONFIGDIR"}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "a-file"), XDG_CACHE_HOME=str(tmp_path / "a-file"))
    result = subprocess.run([sys.executable, "-m", "gan", "compare", str(sweep), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "mkdir -p failed" in line or "MPLCONFIGDIR" in line]
    assert len(said) == 1 and said[0].startswith("warning: matplotlib may not write its config folder (mkdir -p "
                                                 "failed for path"), result.stderr
    assert said[0].endswith("set MPLCONFIGDIR to a folder you may write to keep them")


def test_smoothing_is_tensorboards_debiased_average():

    values = np.array([1.0, 3.0, 2.0])
    # by hand with weight 0.6: 0.4*1/0.4 = 1; (0.24+1.2)/0.64 = 2.25; (0.864+0.8)/0.784
    assert smooth(values).tolist() == pytest.approx([1.0, 2.25, 1.664 / 0.784])


def test_image_to_image_runs_rank_by_validation_psnr(tmp_path):
    for index, seed in enumerate((0, 1)):
        run = make_run(tmp_path / "sr", f"{index:05d}-seed={seed}", "vanilla", seed, [], recipe="srgan")
        writer = SummaryWriter(str(run))
        for step, psnr in ((500, 28.0 + seed), (1000, 27.0 + seed)):
            writer.add_scalar("val/psnr", psnr, step)
        writer.close()
    table, (summary,) = compare([tmp_path / "sr"], None, tmp_path / "out")
    assert summary.label == "all runs" and summary.best == pytest.approx((28.5, 0.70710678))
    assert summary.best_step == 500 and "best val/psnr (higher is better)" in table


def test_cyclegan_runs_rank_by_cycle_l1(tmp_path):
    for index, seed in enumerate((0, 1)):
        run = make_run(tmp_path / "cg", f"{index:05d}-seed={seed}", "lsgan", seed, [], recipe="cyclegan")
        writer = SummaryWriter(str(run))
        for step, error in ((500, 0.12 + seed / 100), (1000, 0.10 + seed / 100)):
            writer.add_scalar("val/cycle_l1", error, step)
        writer.close()
    table, (summary,) = compare([tmp_path / "cg"], None, tmp_path / "out")
    assert summary.best == pytest.approx((0.105, 0.0070710678)) and summary.best_step == 1000
    assert "best val/cycle_l1 (lower is better)" in table


def test_the_command_writes_into_the_sweep_folder_and_names_bad_paths(sweep, tmp_path):
    result = CliRunner().invoke(main, ["compare", str(sweep)])
    assert result.exit_code == 0, result.output
    assert "loss.adversarial=hinge" in result.output
    assert all((sweep / name).is_file() for name in ("compare.md", "compare.csv", "compare.png"))
    one_run = sweep / "00000-adversarial=hinge-seed=0"
    result = CliRunner().invoke(main, ["compare", str(one_run)])
    assert result.exit_code != 0 and "--out" in result.output  # never written into a run directory
    (tmp_path / "empty").mkdir()
    with pytest.raises(CompareError, match="neither a run directory"):
        find_runs([tmp_path / "empty"])


def test_stdout_carries_the_table_alone_and_the_files_written_are_said_on_stderr(sweep):
    """`gan compare SWEEP > table.md` put its "wrote ..." line under the table, which a reader of the rows read as one."""
    result = CliRunner().invoke(main, ["compare", str(sweep)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (sweep / "compare.md").read_text()
    assert result.stderr == f"wrote {sweep / 'compare.md'}, compare.csv and compare.png\n"


def test_an_out_named_like_a_file_is_refused_before_a_folder_of_that_name_is_made(sweep, tmp_path):
    result = CliRunner().invoke(main, ["compare", str(sweep), "--out", str(tmp_path / "cmp.png")])
    assert result.exit_code == 2 and "looks like a file name" in result.output, result.output
    assert not (tmp_path / "cmp.png").exists()


def test_a_sweep_run_that_never_started_is_named_under_the_table(tmp_path):
    folder = tmp_path / "sweep"
    make_run(folder, "00000-adversarial=hinge", "hinge", 0, [20.0])
    (folder / "sweep.toml").write_text('config = "demo.toml"\nsets = []\nseeds = 1\n'
                                       'grid = [["loss.adversarial", "hinge", "lsgan"]]\n\n[runs]\n'
                                       '"00000-adversarial=hinge" = ["loss.adversarial=hinge"]\n'
                                       '"00001-adversarial=lsgan" = ["loss.adversarial=lsgan"]\n')
    table, summaries = compare([folder], None, tmp_path / "out")
    assert len(summaries) == 1
    assert ("Not compared: 1 run(s) that sweep.toml lists have no run directory (never started, or failed before their "
            "first checkpoint, which removes it): sweep/00001-adversarial=lsgan.") in table
    assert (tmp_path / "out" / "compare.md").read_text() == table
    for runs in ("3", '"ab"'):  # a traceback ('int' object is not iterable); runs 'sweep/a', 'sweep/b' made up
        (folder / "sweep.toml").write_text(f"runs = {runs}\n")
        table, _ = compare([folder], None, tmp_path / f"out-{len(runs)}")
        assert "Not compared" not in table, table


def test_compare_never_replaces_files_it_did_not_write_with_or_without_out(tmp_path):
    """`gan compare FOLDER` writes into FOLDER: a user's own compare.md there used to be replaced."""
    from click.testing import CliRunner

    from gan.commands.main import main

    (tmp_path / "compare.md").write_text("my notes\n")
    result = CliRunner().invoke(main, ["compare", str(tmp_path)])
    assert result.exit_code == 2 and "was not written by gan compare" in result.output, result.output
    assert (tmp_path / "compare.md").read_text() == "my notes\n"
    (tmp_path / "compare.md").unlink()
    (tmp_path / "compare.png").write_bytes(b"a picture of mine")
    result = CliRunner().invoke(main, ["compare", str(tmp_path)])
    assert result.exit_code == 2 and "compare.png' was not written by gan compare" in result.output, result.output
    # nor with --out: naming the folder, or another that holds such files, replaced them without a word
    (tmp_path / "compare.png").unlink()
    (tmp_path / "compare.csv").write_text("a,b\n")
    for out in (tmp_path, tmp_path / "."):
        result = CliRunner().invoke(main, ["compare", str(tmp_path), str(tmp_path) + "/", "--out", str(out)])
        assert result.exit_code == 2 and "compare.csv' was not written by gan compare, and it would be replaced: " \
            "give another --out folder" in result.output, result.output
    assert (tmp_path / "compare.csv").read_text() == "a,b\n"


def test_an_out_folder_that_cannot_be_made_is_one_line_with_the_way_round_it(sweep, tmp_path):
    from click.testing import CliRunner

    from gan.commands.main import main

    (tmp_path / "afile").write_text("")
    result = CliRunner().invoke(main, ["compare", str(sweep), "--out", str(tmp_path / "afile" / "sub")])
    assert result.exit_code == 2, result.output
    assert "[Errno" not in result.output and "a part of the path is a file, not a folder" in result.output, \
        result.output


def test_groups_past_the_colour_cycle_get_lines_of_their_own():
    """The 11th group reused the first one's colour and line: two curves that could not be told apart."""
    from gan.tools.compare import LINE_STYLES, line_style

    colours = [f"C{index}" for index in range(10)]
    styles = [line_style(index, colours) for index in range(len(colours) * len(LINE_STYLES))]
    assert len(set(styles)) == len(styles) and styles[10] == ("C0", "--")


def test_a_preset_sweep_is_named_by_its_presets_not_by_a_seeds_folder():
    """A preset sets more keys than a label holds, so groups of a --grid loss.preset sweep were named by
    their first run's folder, `00000-preset=vanilla-seed=0`, as if one seed's run."""
    from gan.core.config import Config, config_to_dict, flatten_config
    from gan.core.presets import LOSS_PRESETS

    defaults = flatten_config(config_to_dict(Config()))
    configs = {}
    for index, (preset, seed) in enumerate([("hinge", 0), ("hinge", 1), ("lsgan", 0), ("lsgan", 1)]):
        configs[Path(f"{index:05d}-preset={preset}-seed={seed}")] = {
            **defaults, **LOSS_PRESETS[preset].values, "loss.preset": preset, "train.seed": seed}
    assert len({key for key in LOSS_PRESETS["hinge"].values if LOSS_PRESETS["hinge"].values[key] !=
                LOSS_PRESETS["lsgan"].values.get(key)}) > 4  # more than a label names
    groups = group_runs(configs)
    assert list(groups) == ["loss.preset=hinge", "loss.preset=lsgan"]
    assert [len(members) for members in groups.values()] == [2, 2]


def test_a_run_whose_config_toml_is_gone_is_compared_by_its_checkpoints_config(tiny_demo_run, tmp_path):
    """It was listed as a run that never started, though it had trained and kept checkpoints."""
    import shutil

    run = Path(shutil.copytree(tiny_demo_run, tmp_path / "sweep" / "00000-demo"))
    config = (run / "config.toml").read_text()
    (run / "config.toml").unlink()
    with pytest.warns(UserWarning, match=r"00000-demo' has no config.toml: its settings are read from '.*checkpoint-"):
        configs = read_configs(find_runs([tmp_path / "sweep"]))
    (run / "config.toml").write_text(config)
    assert configs == read_configs([run])


@pytest.mark.parametrize("cut", ["twelve lines", "emptied", "mid-line"])
def test_a_config_toml_cut_short_is_completed_from_the_checkpoint_as_a_resume_does(tiny_demo_run, tmp_path, cut):
    # Read alone, every setting it lacked was its default: grouped apart from its twin, "step 4 of 10000"
    # (and cut mid-line, the whole comparison was refused), though its checkpoint holds the whole config
    import shutil

    whole = Path(shutil.copytree(tiny_demo_run, tmp_path / "runs" / "00000-a"))
    damaged = Path(shutil.copytree(tiny_demo_run, tmp_path / "runs" / "00001-b"))
    text = (whole / "config.toml").read_text()
    kept = {"twelve lines": "".join(text.splitlines(keepends=True)[:12]), "emptied": "", "mid-line": text[:400]}[cut]
    (damaged / "config.toml").write_text(kept)
    with pytest.warns(UserWarning, match=r"00001-b/config.toml' lacks \d+ of the run's settings .* taken from "
                                         r"'.*checkpoint-00000004.pt', the config the run trained with"):
        configs = read_configs([whole, damaged])
    assert configs[damaged] == configs[whole]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table, summaries = compare([tmp_path / "runs"], "loss/g", tmp_path / "table")
    assert [(summary.seeds, summary.unfinished) for summary in summaries] == [(2, [])], table


def test_a_group_named_by_folder_is_named_by_a_run_it_compares(tmp_path):
    # The group of two dcgan seeds was named after the first, whose events were gone and which was left out
    # with a warning: its row showed the other seed's figures under the name of the run left out
    runs = tmp_path / "runs"
    unread = make_run(runs, "a-dcgan", "hinge", 0, [20.0], "dcgan")
    make_run(runs, "b-dcgan", "hinge", 1, [30.0], "dcgan")
    make_run(runs, "c-pix2pix", "vanilla", 0, [40.0], "pix2pix")
    for events in unread.glob("events.*"):
        events.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, summaries = compare([runs], "swd/mean", tmp_path / "table")
    assert {summary.label: summary.final[0] for summary in summaries} == {"b-dcgan": 30.0, "c-pix2pix": 40.0}


def test_a_config_this_gan_cannot_read_whole_is_warned_of_not_grouped_apart_silently(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "00000-seed=0", "hinge", 0, [20.0])
    odd = make_run(runs, "00001-seed=1", "hinge", 1, [21.0])
    (odd / "config.toml").write_text((odd / "config.toml").read_text() + "removed_key = 3\n")  # a key since removed
    with pytest.warns(UserWarning, match=r"00001-seed=1/config.toml' is not a config this gan reads whole .*unknown "
                                         r"config key 'train.removed_key'.* compared as written"):
        configs = read_configs(find_runs([runs]))
    assert len(group_runs(configs)) == 2


def test_starts_a_rerun_sweep_set_aside_are_no_runs_of_the_comparison(sweep, tmp_path):
    # A rerun sweep sets a run's dead start aside as `<name>.abandoned-0`: compare counted it as
    # one more seed of its group, its curves in the mean.
    from gan.core.checkpoint import set_aside_path

    make_run(sweep, set_aside_path(Path("00000-adversarial=hinge-seed=0"), 0).name, "hinge", 0, [900.0])
    with pytest.warns(UserWarning, match=r"leaving out 1 start\(s\) in .* set aside before their first checkpoint"):
        runs = find_runs([sweep])
    assert len(runs) == 5 and not any("abandoned" in run.name for run in runs)
    alone = sweep / set_aside_path(Path("00000-adversarial=hinge-seed=0"), 0).name
    assert find_runs([alone]) == [alone]  # named, it is compared


def test_a_figure_the_disk_refuses_leaves_the_last_comparisons_table_and_csv(sweep, tmp_path, monkeypatch):
    # compare.md and compare.csv of the new runs were written, then the figure failed: a table of
    # these runs beside the figure of the last comparison.
    from gan.core.files import WriteError
    from gan.tools import compare as compare_module

    out = tmp_path / "out"
    compare([sweep / "00000-adversarial=hinge-seed=0"], None, out)
    before = {name: (out / name).read_bytes() for name in ("compare.md", "compare.csv", "compare.png")}

    def refuse(path, write):
        raise WriteError(f"could not write '{path}' (0.0 MiB free)")

    monkeypatch.setattr(compare_module, "write_atomically", refuse)
    with pytest.raises(WriteError, match="compare.png"):
        compare([sweep], None, out)
    assert {name: (out / name).read_bytes() for name in before} == before
    # A new folder the disk refused every file of is not left behind, empty (its parents it made neither).
    with pytest.raises(WriteError, match="compare.png"):
        compare([sweep], None, tmp_path / "new" / "out")
    assert not (tmp_path / "new").exists()


def test_a_run_whose_event_file_claims_a_huge_record_is_left_out_not_the_comparison(sweep, tmp_path, monkeypatch):
    # a record header claiming 2**62 bytes (with a valid checksum) made TensorBoard's reader raise
    # MemoryError: the whole comparison ended "out of memory", naming no file
    from gan.tools import compare as compare_module

    damaged, read_scalars = sweep / "00000-adversarial=hinge-seed=0", compare_module.read_scalars

    def reader(run):
        if run == damaged:
            raise MemoryError
        return read_scalars(run)

    monkeypatch.setattr(compare_module, "read_scalars", reader)
    with pytest.warns(compare_module.CompareWarning, match=f"cannot read the event files of '{damaged}' \\(reading "
                                                           "them ran out of memory: a damaged record"):
        table, _ = compare([sweep], None, tmp_path / "out")
    assert "hinge" in table


def test_macos_dot_underscore_companions_of_event_files_are_no_damaged_event_files(sweep, tmp_path):
    """Copied by a Mac to exFAT or a share, each file of a run has a `._` companion (4 KB of metadata):
    compare warned of each `._events.out.tfevents.*` as a damaged event file."""
    for run in sweep.iterdir():
        for event_file in list(run.glob("events.out.tfevents.*")):
            (run / f"._{event_file.name}").write_bytes(b"\x00\x05\x16\x07" + bytes(4092))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table, _ = compare([sweep], None, tmp_path / "out")
    assert "hinge" in table


def test_read_scalars_checks_no_preview_grid_bytes_yet_reads_what_tensorboard_shows(tmp_path, monkeypatch):
    """A run's preview grids are in its event file beside the scalars, and TensorBoard's reader
    checked the CRC32C of every byte of them in pure Python: 95% of compare's time (3.9 s for a
    run of 10,000 steps, 0.2 s without its grids; 113 s for a 200k-step DCGAN-128 run). The scalars
    read are still those TensorBoard shows, a resume's purge and a damaged scalar's record too."""
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow

    run = tmp_path / "run"
    for name, steps, purge_step in (("events.out.tfevents.1.a", range(1, 7), None),
                                    ("events.out.tfevents.2.b", range(4, 9), 4)):  # (a resume from step 3)
        writer = SummaryWriter(str(tmp_path / "writing"), purge_step=purge_step)
        for step in steps:
            writer.add_scalar("loss/d", 1.0 / step + (purge_step or 0), step)
            writer.add_image("samples/generator", torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8), step)
            writer.add_scalar("loss/g", float(step), step)
        writer.close()
        run.mkdir(exist_ok=True)
        (events,) = (tmp_path / "writing").iterdir()
        events.rename(run / name)

    def shown_by_tensorboard() -> dict[str, tuple[list[int], list[float]]]:
        events = EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload()
        return {tag: ([event.step for event in events.Scalars(tag)], [event.value for event in events.Scalars(tag)])
                for tag in events.Tags()["scalars"]}

    def read() -> dict[str, tuple[list[int], list[float]]]:
        return {tag: (steps.tolist(), values.tolist()) for tag, (steps, values) in read_scalars(run).items()}

    shown = shown_by_tensorboard()
    assert shown["loss/g"] == ([1, 2, 3, 4, 5, 6, 7, 8], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    assert shown["loss/d"][1][2:4] == pytest.approx([1 / 3, 1 / 4 + 4])  # (steps 4 to 6 of the first file: purged)
    checked = []
    masked_crc32c = pywrap_tensorflow.masked_crc32c
    monkeypatch.setattr(pywrap_tensorflow, "masked_crc32c", lambda data: checked.append(bytes(data))
                        or masked_crc32c(data))
    assert read() == shown
    assert not [data for data in checked if b"PNG" in data]  # the grids' records: not checksummed
    assert len([data for data in checked if b"loss/" in data]) == 2 * (6 + 5)  # each scalar's record: checked
    # A damaged scalar's record still ends its file's scalars, with a warning, as TensorBoard reads it.
    first = run / "events.out.tfevents.1.a"
    data = bytearray(first.read_bytes())
    data[data.index(b"loss/g") + 3] ^= 0x01
    first.write_bytes(bytes(data))
    shown = shown_by_tensorboard()
    assert shown["loss/g"][0] == [4, 5, 6, 7, 8]  # (step 1's loss/g and what followed in its file: not read)
    with pytest.warns(UserWarning, match=f"the event file '{first}' is damaged \\(failed event crc32 check\\)"):
        assert read() == shown


def test_reading_many_runs_shows_its_progress(sweep, tmp_path, monkeypatch, capsys):
    # 30 runs of 4,000 logged steps: a minute and a half in TensorBoard's reader, in silence
    import functools

    from gan.core.progress import DelayedProgress
    from gan.tools import compare as compare_module

    monkeypatch.setattr(compare_module, "DelayedProgress", functools.partial(DelayedProgress, after_s=0))  # (as if slow)
    compare([sweep], None, tmp_path / "out")
    runs = len(list(sweep.iterdir()))
    assert f"run {runs}/{runs} (100%)" in capsys.readouterr().err


def test_a_stop_while_the_three_files_are_written_ends_nothing_once_they_are_in_place(sweep, tmp_path, monkeypatch):
    # held back until all three were written, it then ended the command "stopped by Ctrl-C" (exit 130)
    # over a whole comparison, whose table was never printed
    import os
    import signal

    from gan.tools import compare as compare_module

    write_atomically = compare_module.write_atomically

    def stopped_after_the_figure(path, write):
        write_atomically(path, write)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(compare_module, "write_atomically", stopped_after_the_figure)
    with pytest.warns(UserWarning, match="SIGINT came while the comparison was written, and was held back until "
                                         "every file was in place: nothing is missing"):
        table, _ = compare([sweep], None, tmp_path / "out")
    assert "hinge" in table and all((tmp_path / "out" / name).stat().st_size > 0
                                    for name in ("compare.md", "compare.csv", "compare.png"))


def test_folders_of_runs_one_level_further_down_are_named_not_dropped_in_silence(sweep, tmp_path):
    # A folder holding a loose run and a sweep folder was compared as the loose run alone, without a
    # word of the sweep's runs; one holding only sweep folders was "neither a run nor a folder of runs".
    folder = tmp_path / "studies"
    make_run(folder, "00000-loose", "hinge", 0, [30.0])
    sweep.rename(folder / "sweep")
    with pytest.warns(UserWarning, match=r"leaving out the runs of 1 folder\(s\) inside .*studies' \(.*studies/sweep\), "
                                         r"which hold runs of their own: name them too .*gan compare .*studies "
                                         r".*studies/sweep\)"):
        assert find_runs([folder]) == [folder / "00000-loose"]
    (folder / "00000-loose" / "config.toml").unlink()  # (no run any more: only the sweep folder inside)
    with pytest.raises(CompareError, match=r"nor a folder of runs; the folders of runs inside it are named one by "
                                           r"one: gan compare .*studies/sweep$"):
        find_runs([folder])
    assert len(find_runs([folder / "sweep"])) == 5


def test_a_group_is_drawn_to_the_end_of_its_longest_seed_over_the_seeds_there():
    # The figure cut every line of a group at its shortest seed: a finished seed's best steps were not drawn
    from gan.tools.compare import band

    short = (np.array([100.0, 200.0]), np.array([10.0, 20.0]))
    finished = (np.array([100.0, 200.0, 300.0, 400.0]), np.array([30.0, 40.0, 50.0, 60.0]))
    steps, mean, low, high = band([short, finished], smoothed=False)
    assert steps.tolist() == [100, 200, 300, 400]
    assert mean.tolist() == [20.0, 30.0, 50.0, 60.0] and low.tolist() == [10.0, 20.0, 50.0, 60.0]
    assert high.tolist() == [30.0, 40.0, 50.0, 60.0]


def test_a_nan_leaves_a_gap_where_it_is_not_the_rest_of_the_curve():
    # TensorBoard's smoothing leaves a non-finite value out; ours carried it on to every later point,
    # and one seed's NaN made its group's mean NaN
    from gan.tools.compare import band

    values = np.array([1.0, np.nan, 3.0, 5.0])
    smoothed = smooth(values, 0.5)
    assert smoothed[0] == 1.0 and np.isnan(smoothed[1]) and smoothed[2:].tolist() == pytest.approx(
        [(0.25 * 1 + 0.5 * 3) / 0.75, (0.125 * 1 + 0.25 * 3 + 0.5 * 5) / 0.875])
    steps = np.array([1.0, 2.0, 3.0])
    _, mean, _, _ = band([(steps, np.array([1.0, np.nan, 3.0])), (steps, np.array([5.0, 6.0, np.nan]))],
                         smoothed=False)
    assert mean.tolist() == [3.0, 6.0, 3.0]
    _, mean, _, _ = band([(steps, np.array([np.nan, 2.0, 3.0]))], smoothed=False)
    assert np.isnan(mean[0]) and mean[1:].tolist() == [2.0, 3.0]


def test_a_folder_compare_cannot_write_is_refused_before_any_run_is_read(sweep, monkeypatch):
    # On a read-only sweep folder it read every run, then failed at compare.png with no way round it
    import errno

    import gan.tools.compare
    from gan.commands.main import main

    write_bytes = Path.write_bytes

    def read_only(path, data):
        if path.parent == sweep:
            raise OSError(errno.EROFS, "Read-only file system")
        return write_bytes(path, data)

    def compared(*args, **kwargs):
        raise AssertionError("the runs were read")

    monkeypatch.setattr(Path, "write_bytes", read_only)
    monkeypatch.setattr(gan.tools.compare, "compare", compared)
    result = CliRunner().invoke(main, ["compare", str(sweep)])
    assert result.exit_code == 2 and f"error: '{sweep}' cannot be written (Read-only file system): give --out DIR " \
        "for the comparison's files" in result.output, result.output


def test_a_seeds_nan_is_a_gap_also_at_the_steps_of_seeds_that_log_elsewhere():
    # Seed A's NaN at step 10 was bridged at seed B's steps 5 and 15 (interpolated over it)
    from gan.tools.compare import band

    a = (np.array([0.0, 10.0, 20.0, 30.0]), np.array([1.0, np.nan, 3.0, np.inf]))
    b = (np.array([5.0, 15.0, 25.0]), np.array([10.0, 20.0, 30.0]))
    steps, mean, _, _ = band([a, b], smoothed=False)
    assert steps.tolist() == [0, 5, 10, 15, 20, 25, 30]
    assert mean.tolist()[:4] == [1.0, 10.0, 15.0, 20.0]  # (B alone next to A's NaN)
    assert mean[4] == (3.0 + 25.0) / 2
    assert mean[5] == 30.0 and np.isnan(mean[6])  # (A's inf is no value: B's reach ends at 25)


def test_a_compare_into_a_folder_another_is_writing_is_refused_leaving_that_ones_files(sweep, tmp_path):
    # two compares into one --out renamed their three files in turn: a figure of one set of runs could
    # sit beside a table of another
    import subprocess
    import sys

    out = tmp_path / "out"
    compare([sweep], None, out)
    written = {name: (out / name).read_bytes() for name in ("compare.md", "compare.csv", "compare.png")}
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from gan.core.files import OutputsLock\n"
                               "with OutputsLock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
                               str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CompareError, match=rf"'{out}' is being written by another gan process \(pid "
                                               rf"{holder.pid}\): wait for it to end, or give another --out"):
            compare([sweep / "00000-adversarial=hinge-seed=0"], None, out)
    finally:
        holder.kill()
        holder.wait()
    assert {name: (out / name).read_bytes() for name in written} == written


def test_a_run_that_trained_part_of_the_way_at_higher_rates_than_its_label_is_named(sweep, tmp_path):
    """An --on-nan rollback leaves halved rates in config.toml, and the run was labelled with them
    though it trained most of its steps at the rates before, without a word."""
    rolled_back = next(sweep.iterdir())
    (rolled_back / "config.toml").write_text((rolled_back / "config.toml").read_text()
                                             + "g_lr = 5e-05\nd_lr = 5e-05\n")
    writer = SummaryWriter(str(rolled_back))
    for step, rate in ((100, 2e-4), (200, 1e-4), (300, 5e-5)):
        writer.add_scalar("lr/generator", rate, step)
        writer.add_scalar("lr/discriminator", rate, step)
    writer.close()
    others = [run for run in sweep.iterdir() if run != rolled_back]
    for run in others:  # (the others trained at their config's rates, lowered by a schedule)
        writer = SummaryWriter(str(run))
        for step, rate in ((100, 2e-4), (200, 1e-4)):
            writer.add_scalar("lr/generator", rate, step)
        writer.close()
    with pytest.warns(UserWarning, match=r"1 run\(s\) trained part of the way at higher learning rates than those "
                                         rf"they are labelled with .*'{rolled_back}': lr/generator up to 0.0002 until "
                                         r"step 200, train.g_lr = 5e-05 now; lr/discriminator up to 0.0002 until "
                                         r"step 200, train.d_lr = 5e-05 now"):
        table, _ = compare([sweep], None, tmp_path / "out")
    assert (f"Trained part of the way at higher learning rates than their label's (an --on-nan rollback halves "
            f"them): {rolled_back.name} (lr/generator up to 0.0002") in table


def test_a_loss_as_the_metric_is_one_panel_smoothed_as_the_losses(sweep, tmp_path):
    grouped = {label: {run: read_scalars(run) for run in members}
               for label, members in group_runs(read_configs(find_runs([sweep]))).items()}
    drawn = plot(grouped, "loss/d", tmp_path / "loss.png")
    assert list(drawn) == ["loss/d", "loss/g", "legend"]
    plot(grouped, "swd/mean", tmp_path / "swd.png")  # (three panels)
    with Image.open(tmp_path / "loss.png") as two, Image.open(tmp_path / "swd.png") as three:
        assert two.width / three.width == pytest.approx(2 / 3, abs=0.02), "loss/d drawn twice"


def test_a_scalar_of_unknown_direction_says_so_and_better_sets_it(sweep, tmp_path):
    with pytest.warns(UserWarning, match=r"gan does not know whether a higher or lower loss/d is better; the best "
                                         r"is taken as the lowest \(--better higher ranks by the highest\)"):
        table, _ = compare([sweep], "loss/d", tmp_path / "lowest")
    assert "best loss/d (the lowest taken as the best)" in table
    table, (hinge, _) = compare([sweep], "loss/d", tmp_path / "highest", better="higher")
    assert "best loss/d (higher is better)" in table
    assert hinge.best == pytest.approx((4.0, 1.0))  # (each seed's highest: 3, 4 and 5, at step 300)
    table, (hinge, _) = compare([sweep], "perf/images_per_s", tmp_path / "speed")  # (gan's word: higher)
    assert "best perf/images_per_s (higher is better)" in table and hinge.best == pytest.approx((120.0, 0.0))


def test_runs_of_several_image_to_image_recipes_rank_by_the_metric_most_of_them_logged(tmp_path):
    """The default for a mix was swd/mean, which none of them logs: a table of '-'."""
    for index, (recipe, tag) in enumerate((("pix2pix", "val/psnr"), ("srgan", "val/psnr"),
                                           ("cyclegan", "val/cycle_l1"))):
        run = make_run(tmp_path / "mix", f"{index:05d}-{recipe}", "lsgan", 0, [], recipe=recipe)
        writer = SummaryWriter(str(run))
        writer.add_scalar(tag, 20.0 + index, 100)
        writer.close()
    with pytest.warns(UserWarning, match=r"1 of 3 runs have no value of val/psnr"):
        table, _ = compare([tmp_path / "mix"], None, tmp_path / "out")
    assert "best val/psnr (higher is better)" in table


def test_better_against_gans_word_for_a_metric_is_warned_of(sweep, tmp_path):
    with pytest.warns(UserWarning, match=r"--better higher ranks swd/mean the other way round from gan's word for it "
                                         r"\(lower is better\)"):
        compare([sweep], None, tmp_path / "out", better="higher")


def test_a_run_resumed_with_other_settings_says_so_in_its_config_and_compare_names_it(tmp_path):
    """config.toml held the settings a run ended with alone: a run trained 4 steps vanilla then 4
    hinge was compared as a seed of hinge, without a word, and nothing in it said otherwise."""
    from conftest import REPO, TINY, invoke

    config = REPO / "experiments" / "dcgan_demo.toml"
    tiny = [arg for item in TINY for arg in ("--set", item)]
    for seed, loss, steps, compile_ in ((0, "hinge", 8, "off"), (1, "vanilla", 4, "auto")):
        made = invoke("train", config, *tiny, "--set", f"train.seed={seed}", "--set", f"loss.adversarial={loss}",
                      "--set", f"train.steps={steps}", "--set", "train.keep_checkpoints=9", "--set",
                      f"train.compile={compile_}", "--out", tmp_path / "runs")
        assert made.exit_code == 0, made.output
    switched = tmp_path / "runs" / "00001-dcgan_demo"
    resumed = invoke("train", "--resume", switched, "--set", "loss.adversarial=hinge", "--set", "train.steps=6")
    assert resumed.exit_code == 0, resumed.output
    note = "# resumed at step 4 with loss.adversarial 'vanilla' -> 'hinge'\n# resumed at step 4 with train.steps 4 -> 6\n"
    assert (switched / "config.toml").read_text().startswith(note)
    again = invoke("train", "--resume", switched, "--set", "train.steps=8", "--set", "train.compile=off")
    assert again.exit_code == 0, again.output
    later = "# resumed at step 6 with train.compile 'auto' -> 'off'\n# resumed at step 6 with train.steps 6 -> 8\n"
    assert (switched / "config.toml").read_text().startswith(note + later)
    with pytest.warns(UserWarning, match=rf"1 run\(s\) were resumed with other settings than they trained with "
                                         rf"before, and are grouped by the settings they ended with: '{switched}' "
                                         r"from step 5: loss.adversarial 'vanilla' -> 'hinge'$"):
        table, summaries = compare([tmp_path / "runs"], "loss/d", tmp_path / "out")
    assert [summary.seeds for summary in summaries] == [2]  # (still grouped by its settings: said, not hidden)
    assert "00001-dcgan_demo (from step 5: loss.adversarial 'vanilla' -> 'hinge')" in table
    # checkpoints keep the notes: a config.toml emptied (rebuilt from the checkpoint on resume) gets them back
    (switched / "config.toml").write_text("")
    back = invoke("train", "--resume", switched, "--set", "train.steps=10")
    assert back.exit_code == 0, back.output
    assert (switched / "config.toml").read_text().startswith(
        note + later + "# resumed at step 8 with train.steps 8 -> 10\nrecipe = ")
    # a resume from before a noted one trains its steps again: those notes go (one at its step is its own)
    for late in ("checkpoint-00000006.pt", "checkpoint-00000008.pt", "checkpoint-00000010.pt"):
        (switched / late).unlink()
    back = invoke("train", "--resume", switched, "--set", "train.steps=8")
    assert back.exit_code == 0, back.output
    assert (switched / "config.toml").read_text().startswith(
        "# resumed at step 4 with loss.adversarial 'vanilla' -> 'hinge'\n# resumed at step 4 with train.compile "
        "'auto' -> 'off'\n# resumed at step 4 with train.steps 4 -> 8\nrecipe = ")


def test_a_pipe_named_like_compares_files_is_refused_not_read(sweep, tmp_path):
    """A FIFO at OUT/compare.md: compare read it to see whether it was its own, and waited for ever."""
    import os

    (tmp_path / "out").mkdir()
    os.mkfifo(tmp_path / "out" / "compare.md")
    result = CliRunner().invoke(main, ["compare", str(sweep), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "compare.md' was not written by gan compare" in result.output, result.output


def test_a_sweep_folder_whose_runs_are_starting_is_named_as_such(tmp_path):
    """It was "neither a run directory (no config.toml) nor a folder of runs", though it held sweep.toml."""
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "sweep.toml").write_text('config = "c.toml"\n')
    (tmp_path / "sweep" / "00000-seed=0").mkdir()  # (made, its config.toml not yet written)
    result = CliRunner().invoke(main, ["compare", str(tmp_path / "sweep"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "is a sweep folder none of whose runs has written its config.toml yet" in \
        result.output, result.output
