"""`gan` called as a library in one long-lived process (a notebook, a sweep script): a call leaves
the user's modules and the process's state as it found them."""

import torch

from gan.inference.tiling import translate_tensor
from gan.nets import network_spec
from gan.nets.running import generate, random_latents


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in module.state_dict().items()}


def _assert_same_state(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = module.state_dict()
    assert after.keys() == before.keys()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert not changed, f"the call changed {changed}"


def test_generate_runs_a_generator_left_in_train_mode_in_eval_mode_and_leaves_it_as_it_was():
    generator = network_spec("generator", "dcgan", {"channels": 8}, "g", resolution=32).build().train()
    before = _state(generator)
    latents = random_latents(8, generator.latent_dim, seed=0)
    batch = generate(generator, latents)
    alone = generate(generator, latents[:1])
    # (equal up to the rounding of batched kernels; a batch's statistics would change it throughout)
    torch.testing.assert_close(batch[:1], alone, rtol=1e-4, atol=1e-9, msg="image 0 depends on its batch")
    assert generator.training
    _assert_same_state(generator, before)  # (BatchNorm's running statistics and its count unmoved)
    assert torch.equal(batch, generate(generator.eval(), latents))
    assert not generator.training


def test_translate_tensor_runs_a_translator_left_in_train_mode_in_eval_mode_and_leaves_it_as_it_was():
    unet = network_spec("generator", "unet", {"num_downs": 6, "channels": 8}, "g").build().train()
    before = _state(unet)
    image = torch.rand(1, 3, 64, 64) * 2 - 1  # (one decoder block with dropout)
    first, second = translate_tensor(unet, image), translate_tensor(unet, image)
    assert torch.equal(first, second), "dropout ran in the translation"
    assert unet.training
    _assert_same_state(unet, before)
