"""The training-health watch: each finding fires once on a constructed case, and a healthy demo
run stays quiet while logging gradient norms."""

import warnings

import pytest
import torch
from conftest import tiny_config

from gan.health import HealthWatch
from gan.train import train


def findings(action, *args) -> list[str]:
    """The warnings of action(*args)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        action(*args)
    return [str(w.message) for w in caught]


def test_a_saturated_discriminator_is_reported_once_for_probability_scores():
    watch = HealthWatch(saturation_scores=True)
    saturated = {"d/real": 0.999, "d/fake": 0.002, "loss/d": 0.01}
    found = findings(lambda: watch.window(120, saturated))
    assert len(found) == 1 and "step 120: the discriminator is saturated" in found[0] and "Try:" in found[0]
    assert findings(lambda: watch.window(140, saturated)) == []  # once per kind
    assert findings(lambda: HealthWatch(True).window(1, {"d/real": 0.9, "d/fake": 0.1})) == []
    # hinge and WGAN scores are raw: no probability to saturate
    assert findings(lambda: HealthWatch(False).window(1, saturated)) == []


def test_an_exploding_loss_is_reported_against_its_own_history():
    watch = HealthWatch(saturation_scores=False)
    for step, value in enumerate([1.0, 1.2, 0.9, 1.1, 1.0, 1.3, 0.8]):
        assert findings(watch.window, step, {"loss/g": value, "grad/generator": 5.0}) == []
    found = findings(lambda: watch.window(8, {"loss/g": 40.0, "grad/generator": 5.0}))
    assert len(found) == 1 and "loss/g is exploding: 40" in found[0] and "step 8" in found[0]
    quiet = HealthWatch(saturation_scores=False)  # large but steady (WGAN critics): no finding
    assert all(findings(quiet.window, step, {"loss/d": -50.0 - step}) == [] for step in range(12))


def test_mode_collapse_is_a_fall_of_the_samples_spread():
    torch.manual_seed(0)
    real = torch.rand(16, 3, 8, 8) * 2 - 1
    watch = HealthWatch(saturation_scores=True)
    start = real.mean(0, keepdim=True).repeat(16, 1, 1, 1) + 0.01 * torch.randn(16, 3, 8, 8)
    assert findings(lambda: watch.samples(1, start, real)) == []  # a new generator starts low: no fall yet
    assert findings(lambda: watch.samples(2, torch.rand(16, 3, 8, 8) * 2 - 1, real)) == []  # diverse
    collapsed = real[:1].repeat(16, 1, 1, 1) + 0.001 * torch.randn(16, 3, 8, 8)
    scalars = {}
    found = findings(lambda: scalars.update(watch.samples(3, collapsed, real)))
    assert len(found) == 1 and "step 3: mode collapse" in found[0]
    assert scalars["health/sample_std_ratio"] < 0.05 and scalars["health/data_std"] == pytest.approx(
        float(real.std(0).mean()))


def test_a_healthy_demo_run_stays_quiet_and_logs_gradient_norms(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny_config("train.steps=30", "log.every=5", "log.image_every=5", "train.keep_best=")
    found = findings(lambda: train(config, tmp_path / "run", torch.device("cpu")))
    assert [message for message in found if "Try:" in message] == []
    events = EventAccumulator(str(tmp_path / "run"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"grad/generator", "grad/discriminator", "health/sample_std_ratio", "health/d_saturated"} <= set(tags)
    assert all(event.value > 0 for event in events.Scalars("grad/discriminator"))
