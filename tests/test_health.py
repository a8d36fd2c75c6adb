"""The training-health watch: each finding fires once on a constructed case, and a healthy demo
run stays quiet while logging gradient norms."""

import warnings

import pytest
import torch
from conftest import tiny_config

from gan.core.config import DataConfig
from gan.data import build_dataset
from gan.training.health import DIVERSITY_FRACTION, FLAT_FRACTION, HealthWatch, diversity, sample_spread, structure
from gan.training.health import EXPLOSION_SPAN as SPAN
from gan.training.loop import train


def findings(action, *args) -> list[str]:
    """The warnings of action(*args)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        action(*args)
    return [str(w.message) for w in caught]


def test_a_saturated_discriminator_is_reported_once_for_probability_scores():
    watch = HealthWatch(saturation_scores=True)
    saturated = {"d/real": 0.999, "d/fake": 0.002, "loss/d": 0.01}
    found = findings(lambda: watch.window(120, saturated, SPAN))
    assert len(found) == 1 and "step 120: the discriminator is saturated" in found[0] and "Try:" in found[0]
    assert findings(lambda: watch.window(140, saturated, SPAN)) == []  # once per kind
    assert findings(lambda: HealthWatch(True).window(1, {"d/real": 0.9, "d/fake": 0.1}, SPAN)) == []
    # one-sided smoothing 0.1: a D that wins outright settles at its target 0.9, not near 1
    smoothed = findings(lambda: HealthWatch(True, real_target=0.9).window(7, {"d/real": 0.9001, "d/fake": 0.0003}, SPAN))
    assert len(smoothed) == 1 and "D(x) = 0.9001 (its target, smoothed: 0.9)" in smoothed[0]
    # hinge and WGAN scores are raw: no probability to saturate
    assert findings(lambda: HealthWatch(False).window(1, saturated, SPAN)) == []
    # LSGAN's raw scores overshoot their targets as a run diverges (its D loss 1.3e5): no D that wins outright
    for diverging in ({"d/real": 1.5594, "d/fake": -72.56}, {"d/real": 0.995, "d/fake": -1.78}):
        assert findings(lambda scores=diverging: HealthWatch(True).window(15, scores, SPAN)) == []


def test_one_of_cyclegans_two_discriminators_winning_outright_is_reported():
    # CycleGAN's d/real and d/fake are its two discriminators' mean: D_B at 0.997 / 0.0036 beside a D_A
    # that still learned read 0.952 / 0.059, and was never warned of.
    scores = {"d_A/real": 0.907, "d_A/fake": 0.114, "d_B/real": 0.997, "d_B/fake": 0.0036}
    means = {**scores, "d/real": 0.952, "d/fake": 0.059}
    scalars = {}
    found = findings(lambda: scalars.update(HealthWatch(True, unconditional=False).window(70, means, SPAN)))
    assert len(found) == 1 and "step 70: the discriminator of domain B is saturated: D(x) = 0.9970 and " \
        "D(G(z)) = 0.0036" in found[0], found
    assert scalars["health/d_saturated"] == 1.0
    both_learning = {**means, "d_B/real": 0.93, "d_B/fake": 0.05}
    assert findings(lambda: HealthWatch(True, unconditional=False).window(70, both_learning, SPAN)) == []


def test_saturation_advice_leaves_out_the_regularisers_the_run_has_on():
    # A run with label smoothing and instance noise on was told to add them (and that G got no gradient,
    # which the non-saturating vanilla and LSGAN generator losses keep).
    saturated = {"d/real": 0.899, "d/fake": 0.002}
    said = findings(lambda: HealthWatch(True, True, 0.9, ("loss.label_smoothing", "loss.instance_noise"))
                    .window(10, saturated, SPAN))
    assert len(said) == 1 and "lower train.d_lr (loss.label_smoothing and loss.instance_noise are on already), " \
        "or try loss.preset" in said[0], said
    assert "add " not in said[0]
    assert "gets no gradient" not in said[0]
    one = findings(lambda: HealthWatch(True, False, 1.0, ("loss.diffaugment",)).window(10, saturated | {"d/real": 0.999},
                                                                                       SPAN))
    assert "lower train.d_lr (loss.diffaugment is on already), add loss.label_smoothing or loss.r1_gamma, or try " \
        "loss.adversarial" in one[0], one


def test_a_conditional_recipes_saturation_advice_names_only_keys_it_reads():
    """pix2pix, CycleGAN and SRGAN read neither loss.instance_noise nor wgan-gp (refused outside dcgan)."""
    import re

    from gan.training.resolve import recipe_reads

    saturated = {"d/real": 0.999, "d/fake": 0.002}
    advice = {unconditional: findings(lambda flag=unconditional: HealthWatch(True, flag).window(5, saturated, SPAN))[0]
              for unconditional in (True, False)}
    assert "loss.instance_noise" in advice[True] and "wgan-gp" in advice[True]
    named = set(re.findall(r"\b(?:loss|train)\.[a-z_0-9]+", advice[False]))
    assert named and not [key for key in named if not recipe_reads("pix2pix", key)], named
    assert "wgan-gp" not in advice[False]
    # the settings it names are ones such a recipe takes (it advised loss.preset = "hinge", which is dcgan's)
    from conftest import REPO

    from gan.training.resolve import load_config

    settings = [f"{key}={value.strip(chr(34))}" for key, value in
                re.findall(r"\b((?:loss|train|model)\.[a-z_.0-9]+) = (\"[^\"]*\"|true|false|[0-9.e-]+)", advice[False])]
    assert settings, advice[False]
    load_config(REPO / "experiments" / "pix2pix_facades.toml", settings)


def test_an_exploding_loss_is_reported_against_its_own_history():
    watch = HealthWatch(saturation_scores=False)
    for step, value in enumerate([1.0, 1.2, 0.9, 1.1, 1.0, 1.3, 0.8]):
        assert findings(watch.window, step, {"loss/g": value, "grad/generator": 5.0}, SPAN) == []
    found = findings(lambda: watch.window(8, {"loss/g": 40.0, "grad/generator": 5.0}, SPAN))
    assert len(found) == 1 and "loss/g is exploding: 40" in found[0] and "step 8" in found[0]
    quiet = HealthWatch(saturation_scores=False)  # large but steady (WGAN critics): no finding
    assert all(findings(quiet.window, step, {"loss/d": -50.0 - step}, SPAN) == [] for step in range(12))


def test_a_loss_is_judged_over_spans_of_steps_whatever_log_every_is():
    # Judged window by window, a healthy run logged at every step was warned of a three-step spike that
    # the same run logged every 10 steps averaged away (the same training, two verdicts).
    spike = {188: 34.6, 189: 70.5, 190: 125.0, 191: 22.3}
    losses = [spike.get(step, 4.5) for step in range(1, 401)]
    for every in (1, 10, 50):
        watch, found = HealthWatch(saturation_scores=False), []
        for end in range(every, 401, every):
            window = losses[end - every:end]
            found += findings(watch.window, end, {"grad/discriminator": sum(window) / len(window)}, every)
        assert found == [], (every, found)
    sustained = HealthWatch(saturation_scores=False)  # a real explosion, at log.every = 1, is still found
    said = [message for step in range(1, 401) for message in
            findings(sustained.window, step, {"loss/g": 1.0 if step <= 300 else 60.0}, 1)]
    assert len(said) == 1 and "step 350: loss/g is exploding: 60 over the last 50 steps" in said[0], said
    resumed = HealthWatch(saturation_scores=False)  # a span half filled goes on after a resume
    halfway = HealthWatch(saturation_scores=False)
    for step in range(1, 276):
        halfway.window(step, {"loss/g": 1.0}, 1)
    resumed.load_state_dict(halfway.state_dict())
    assert resumed.span == halfway.span and resumed.span["loss/g"][1] == 25


def test_a_loss_whose_median_is_zero_still_has_its_explosion_found():
    """A saturated D's loss/d read 0 in most windows: growth was 0 whatever came, and the check was off."""
    watch = HealthWatch(saturation_scores=False)
    for step in range(8):
        assert findings(watch.window, step, {"loss/d": 0.0}, SPAN) == []
    scalars = {}
    found = findings(lambda: scalars.update(watch.window(8, {"loss/d": 500.0}, SPAN)))
    assert len(found) == 1 and "loss/d is exploding: 500 over the last 50 steps, past its median" in found[0]
    assert "health/growth/loss/d" not in scalars  # (no infinite point in TensorBoard)
    assert findings(lambda: watch.window(9, {"loss/d": 0.0}, SPAN)) == []


def test_non_finite_samples_are_not_measured_as_a_collapse():
    """NaN previews (a diverged run, before the check that stops it) warned of a partial mode collapse."""
    real = torch.rand(16, 3, 8, 8) * 2 - 1
    watch = HealthWatch(saturation_scores=True)
    assert findings(lambda: watch.samples(1, torch.full((16, 3, 8, 8), float("nan")), real)) == []
    assert watch.samples(1, torch.full((16, 3, 8, 8), float("nan")), real) == {}


def test_a_loss_is_measured_against_its_last_windows_so_a_long_run_pays_no_more_per_log_point():
    # The median over every window so far cost 76 ms per log point at 100k windows, and each
    # checkpoint held them all.
    from gan.training.health import MAX_HISTORY

    watch = HealthWatch(saturation_scores=False)
    for step in range(MAX_HISTORY + 500):
        watch.window(step, {"loss/g": 100.0 if step < 500 else 1.0}, SPAN)
    assert len(watch.history["loss/g"]) == MAX_HISTORY
    found = findings(lambda: watch.window(MAX_HISTORY + 500, {"loss/g": 20.0}, SPAN))  # 20x the last windows' 1.0
    assert len(found) == 1 and "20x its median over the spans before (1)" in found[0]
    resumed = HealthWatch(saturation_scores=False)
    resumed.load_state_dict({**watch.state_dict(), "history": {"loss/g": [1.0] * (3 * MAX_HISTORY)}})
    assert len(resumed.history["loss/g"]) == MAX_HISTORY


def test_mode_collapse_is_a_fall_of_the_samples_spread():
    torch.manual_seed(0)
    real = torch.rand(16, 3, 8, 8) * 2 - 1
    watch = HealthWatch(saturation_scores=True)
    start = 0.05 * real  # a new generator's outputs: varied, but faint
    assert findings(lambda: watch.samples(1, start, real)) == []  # a new generator starts low: no fall yet
    assert findings(lambda: watch.samples(2, torch.rand(16, 3, 8, 8) * 2 - 1, real)) == []  # diverse
    collapsed = real[:1].repeat(16, 1, 1, 1) + 0.001 * torch.randn(16, 3, 8, 8)
    scalars = {}
    found = findings(lambda: scalars.update(watch.samples(3, collapsed, real)))
    assert len(found) == 1 and "step 3: mode collapse" in found[0]
    assert scalars["health/sample_std_ratio"] < 0.05 and scalars["health/data_std"] == pytest.approx(
        float(real.std(0).mean()))
    # one sample (log.num_samples = 1) has no spread: it logged 0 against 0, a ratio of 1.0, "healthy"
    assert HealthWatch(True).samples(4, real[:1], real[:1]) == {}


def test_a_healthy_demo_run_stays_quiet_and_logs_gradient_norms(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny_config("train.steps=30", "log.every=5", "log.image_every=5", "train.keep_best=", "log.num_samples=8")
    found = findings(lambda: train(config, tmp_path / "run", torch.device("cpu")))
    assert [message for message in found if "Try:" in message] == []
    events = EventAccumulator(str(tmp_path / "run"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"grad/generator", "grad/discriminator", "health/sample_std_ratio", "health/d_saturated",
            "health/diversity", "health/diversity_ratio", "health/structure_ratio"} <= set(tags)
    # The tiny generator starts flat (its early previews count as one image, and are no collapse);
    # once its samples have structure, they are as diverse as real images.
    structured = {event.step for event in events.Scalars("health/structure_ratio") if event.value >= FLAT_FRACTION}
    assert structured and all(event.value > DIVERSITY_FRACTION for event in events.Scalars("health/diversity_ratio")
                              if event.step in structured)
    assert all(event.value > 0 for event in events.Scalars("grad/discriminator"))


def constructed_batches(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """From 128 real images: the other 64, and collapses of them (with a little noise, as a
    generator's copies are never exact), most diverse first."""
    generator = torch.Generator().manual_seed(0)
    others = images[64:128]

    def noisy(batch):
        return (batch + 0.05 * torch.randn(batch.shape, generator=generator)).clamp(-1, 1)

    recoloured = others[:1] * (0.5 + torch.rand(64, 3, 1, 1, generator=generator)) + 0.3 * (
        torch.rand(64, 3, 1, 1, generator=generator) - 0.5)
    return {"real": others, "16 images, each 4 times": noisy(others[:16].repeat(4, 1, 1, 1)),
            "4 images, each 16 times": noisy(others[:4].repeat(16, 1, 1, 1)),
            "one image": noisy(others[:1].repeat(64, 1, 1, 1)), "one image recoloured": recoloured.clamp(-1, 1)}


def check_diversity_orders_and_flags(images: torch.Tensor) -> None:
    reference, batches = images[:64], constructed_batches(images)
    scores = {name: diversity(batch) for name, batch in batches.items()}
    ordered = ["real", "16 images, each 4 times", "4 images, each 16 times", "one image"]
    assert [scores[name] for name in ordered] == sorted((scores[name] for name in ordered), reverse=True), scores
    assert 3 < scores["4 images, each 16 times"] < 8  # it counts distinct images (noise adds a little)
    assert scores["one image recoloured"] < 0.1 * scores["real"]  # colour is not structure
    for name, batch in batches.items():
        found = findings(HealthWatch(saturation_scores=True).samples, 250, batch, reference)
        collapsed = [message for message in found if "partial mode collapse" in message]
        if name == "real":
            assert found == []
        else:
            assert len(collapsed) == 1 and "step 250" in collapsed[0] and "Try:" in collapsed[0], (name, found)


def test_diversity_orders_synthetic_faces_and_flags_only_collapsed_batches():
    faces = build_dataset(DataConfig(dataset="synthetic", resolution=32, hflip=False, num_workers=0), train=True)
    check_diversity_orders_and_flags(torch.stack([faces[index]["image"] for index in range(128)]))


def test_a_partial_collapse_warned_of_early_is_warned_of_again_after_the_samples_recovered():
    # Early previews dip and recover (a WGAN-GP run 0.48x at step 100, 1.11x by 200): warned once, that dip
    # silenced a later real collapse. A recovery re-arms the warning; a dip that stays low says it once.
    faces = build_dataset(DataConfig(dataset="synthetic", resolution=32, hflip=False, num_workers=0), train=True)
    images = torch.stack([faces[index]["image"] for index in range(128)])
    batches, reference = constructed_batches(images), images[:64]
    watch = HealthWatch(saturation_scores=True)
    said = [(step, message) for step, name in ((100, "16 images, each 4 times"), (150, "4 images, each 16 times"),
                                               (200, "real"), (300, "4 images, each 16 times"))
            for message in findings(watch.samples, step, batches[name], reference)]
    assert [step for step, message in said if "partial mode collapse" in message] == [100, 300], said


def test_diversity_orders_celeba_faces_and_flags_only_collapsed_batches(shared_data):
    root = shared_data / "faces"
    faces = build_dataset(DataConfig(dataset="celeba", root=str(root), resolution=64, hflip=False, num_workers=0,
                                     max_images=128), train=True)
    check_diversity_orders_and_flags(torch.stack([faces[index]["image"] for index in range(128)]))


@pytest.mark.parametrize("noise", [1e-3, 5e-3])  # (5e-3: below a grey level, which read as many distinct images)
def test_flat_samples_count_as_one_image_however_they_are_coloured(noise):
    """A generator collapsed to flat images, each its own colour: a high per-pixel std, and faint
    variation that, scaled to unit length, would read as 64 distinct structures."""
    generator = torch.Generator().manual_seed(0)
    real = build_dataset(DataConfig(dataset="synthetic", resolution=32, hflip=False, num_workers=0), train=True)
    reference = torch.stack([real[index]["image"] for index in range(64)])
    colours = torch.rand(64, 3, 1, 1, generator=generator) * 1.6 - 0.8
    flat = (colours + noise * torch.randn(64, 3, 32, 32, generator=generator)).expand(64, 3, 32, 32)
    assert sample_spread(flat) > 0.5 * sample_spread(reference)  # what the whole-collapse check reads as healthy
    assert structure(flat) < FLAT_FRACTION * structure(reference)
    assert diversity(flat, flat_below=FLAT_FRACTION * structure(reference)) == pytest.approx(1.0)
    watch = HealthWatch(saturation_scores=True)
    assert findings(watch.samples, 200, reference.flip(0), reference) == []
    healthy_state = watch.state_dict()
    found = findings(watch.samples, 300, flat, reference)
    assert len(found) == 1 and "step 300: partial mode collapse: 1." in found[0], found
    # A checkpoint from before peak_structure was kept: its run had previews, so it counts as structured.
    state = healthy_state
    del state["peak_structure"]
    resumed = HealthWatch(saturation_scores=True)
    resumed.load_state_dict(state)
    assert len(findings(resumed.samples, 400, flat, reference)) == 1
    # A new generator whose samples are still flat has not collapsed: nothing to say yet.
    new = HealthWatch(saturation_scores=True)
    assert findings(new.samples, 1, flat, reference) == [] and new.samples(1, flat, reference)[
        "health/structure_ratio"] < FLAT_FRACTION


def test_samples_near_the_flat_floor_are_a_new_generator_not_a_partial_collapse():
    """A DCGAN-64 on CelebA at step 10: structure 0.010 of real faces', half its images below the
    floor (one image together), so 12 of 64 distinct: warned of a partial collapse it never had."""
    generator = torch.Generator().manual_seed(0)
    real = build_dataset(DataConfig(dataset="synthetic", resolution=32, hflip=False, num_workers=0), train=True)
    reference = torch.stack([real[index]["image"] for index in range(64)])
    floor = FLAT_FRACTION * structure(reference)
    faint = torch.randn(64, 3, 32, 32, generator=generator)
    faint = faint / torch.tensor([structure(image[None]) for image in faint])[:, None, None, None]
    early = faint * floor * torch.tensor([0.9, 1.3]).repeat(32)[:, None, None, None]  # around the floor
    watch = HealthWatch(saturation_scores=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scalars = watch.samples(10, early, reference)
    assert scalars["health/diversity_ratio"] < DIVERSITY_FRACTION and scalars["health/structure_ratio"] < 0.02
    assert [str(warning.message) for warning in caught] == []


def test_a_whole_collapse_is_reported_once_not_twice():
    torch.manual_seed(0)
    real = torch.rand(16, 3, 8, 8) * 2 - 1
    watch = HealthWatch(saturation_scores=True)
    watch.samples(1, real.flip(0), real)
    found = findings(lambda: watch.samples(2, real[:1].repeat(16, 1, 1, 1), real))
    assert len(found) == 1 and "step 2: mode collapse" in found[0]


def test_the_replay_reads_a_runs_previews_as_the_watch_saw_them(tmp_path):
    """benchmarks/diversity_replay.py: it reads back the very images of each saved preview grid,
    and replays every preview the watch logged."""
    import importlib.util

    from conftest import REPO
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gan.core.images import save_image_grid

    spec = importlib.util.spec_from_file_location("diversity_replay", REPO / "benchmarks" / "diversity_replay.py")
    replay = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(replay)
    images = torch.rand(10, 3, 24, 24) * 2 - 1
    save_image_grid(images, tmp_path / "grid.png")
    assert torch.allclose(replay.grid_images(tmp_path / "grid.png", 10, 24), images, atol=1 / 127.5)

    config = tiny_config("train.steps=4", "log.image_every=2", "log.num_samples=9", "train.keep_best=")
    train(config, tmp_path / "run", torch.device("cpu"))
    events = EventAccumulator(str(tmp_path / "run"))
    events.Reload()
    logged = {event.step: event.value for event in events.Scalars("health/structure_ratio")}
    data_std = {event.step: event.value for event in events.Scalars("health/data_std")}
    rows = replay.replay(tmp_path / "run", real_count=None)
    assert [row["step"] for row in rows] == sorted(logged) == [2, 4]
    for row in rows:
        # 8 bits keep a pixel to 1/127.5: this new generator's faint images gain a little structure
        assert row["health/structure_ratio"] == pytest.approx(logged[row["step"]], abs=0.01)
        assert row["health/data_std"] == pytest.approx(data_std[row["step"]], rel=1e-6)  # the watch's real images


@pytest.mark.parametrize("every, span, steps, stop, growth_steps", [(1, 1, 10, 4, [6, 7, 8, 9, 10]),
                                                                     (2, 2, 12, 4, [12]),
                                                                     (1, 3, 18, 4, [18])])  # (stopped mid-span)
def test_a_resumed_run_logs_the_health_of_an_uninterrupted_one(tmp_path, monkeypatch, every, span, steps, stop,
                                                               growth_steps):
    """The watch's history and its real images survive a resume: growth ratios go on at once (they
    need 5 spans of history, a span half filled goes on), the data's own measures do not jump, and the
    resume's first step adds no window of its own between log points."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import gan.training.health as health

    monkeypatch.setattr(health, "EXPLOSION_SPAN", span)  # (steps, not 50: spans that fill in a tiny run)
    common = (f"log.every={every}", "log.image_every=2", f"train.checkpoint_every={stop}", "train.keep_best=",
              "log.num_samples=8")
    train(tiny_config(*common, f"train.steps={steps}"), tmp_path / "whole", torch.device("cpu"))
    train(tiny_config(*common, f"train.steps={stop}"), tmp_path / "split", torch.device("cpu"))
    train(tiny_config(*common, f"train.steps={steps}"), tmp_path / "split", torch.device("cpu"), resume=True)

    def logged(run) -> dict[str, list[tuple[int, float]]]:
        events = EventAccumulator(str(run), size_guidance={"scalars": 0})
        events.Reload()
        return {tag: [(event.step, round(event.value, 4)) for event in events.Scalars(tag)]
                for tag in events.Tags()["scalars"] if tag.startswith(("health/", "loss/", "d/"))}

    whole, split = logged(tmp_path / "whole"), logged(tmp_path / "split")
    assert [step for step, _ in whole["health/growth/loss/d"]] == growth_steps
    assert {"health/data_std", "health/data_diversity", "loss/d"} <= set(whole)
    assert split == whole


@pytest.mark.parametrize("damage", ["a string", torch.zeros(3), {"history": {"loss/d": 3.0}}])
def test_a_malformed_health_state_in_a_checkpoint_warns_and_the_watch_starts_afresh(tmp_path, damage):
    common = ("log.every=1", "train.keep_best=", "log.num_samples=8", "train.checkpoint_every=2")
    train(tiny_config(*common, "train.steps=2"), tmp_path / "run", torch.device("cpu"))
    checkpoint = tmp_path / "run" / "checkpoint-00000002.pt"
    state = torch.load(checkpoint, weights_only=True)
    state["health"] = damage
    torch.save(state, checkpoint)
    found = findings(lambda: train(tiny_config(*common, "train.steps=3"), tmp_path / "run", torch.device("cpu"),
                                   resume=True))
    assert any("health-watch state is malformed" in message and "starts afresh" in message for message in found)


def test_a_value_just_beyond_the_divergence_bound_reads_as_beyond_it():
    # "reached 1e+06 ..., beyond train.divergence_bound (1e+06)" read as a contradiction.
    from gan.training.errors import NonFiniteLossError

    said = str(NonFiniteLossError(1, "weights of discriminator", None, 1000043.5, 1e6))
    assert "reached 1.00004e+06 at step 1, beyond train.divergence_bound (1e+06)" in said, said
    assert "reached 2.5e+07 at step 1" in str(NonFiniteLossError(1, "loss/g", None, 2.5e7, 1e6))
    assert "reached -1.00004e+06" in str(NonFiniteLossError(1, "loss/g", None, -1000043.5, 1e6))
