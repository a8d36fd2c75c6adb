import math
import warnings

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from gan.metrics import psnr, rgb_to_y, signed_to_255, ssim

# ---- a plain numpy float64 reference, written from the BasicSR / MATLAB definitions ----


def reference_y(image: np.ndarray) -> np.ndarray:
    """(3, H, W) in [0, 255] -> (1, H, W) BT.601 luma."""
    red, green, blue = image
    return (16.0 + (65.481 * red + 128.553 * green + 24.966 * blue) / 255.0)[None]


def shave(image: np.ndarray, crop_border: int) -> np.ndarray:
    return image[:, crop_border:image.shape[1] - crop_border, crop_border:image.shape[2] - crop_border]


def reference_psnr(image: np.ndarray, reference: np.ndarray) -> float:
    mse = np.mean((image - reference) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def reference_ssim(image: np.ndarray, reference: np.ndarray) -> float:
    """Mean over channels of the mean 'valid' SSIM map, 11x11 Gaussian window, sigma 1.5."""
    offsets = np.arange(11, dtype=np.float64) - 5
    line = np.exp(-(offsets**2) / (2 * 1.5**2))
    line /= line.sum()
    window = np.outer(line, line)

    def filter_valid(channel: np.ndarray) -> np.ndarray:
        return np.einsum("ijkl,kl->ij", sliding_window_view(channel, (11, 11)), window)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    scores = []
    for first, second in zip(image, reference):
        mu1, mu2 = filter_valid(first), filter_valid(second)
        sigma1 = filter_valid(first**2) - mu1**2
        sigma2 = filter_valid(second**2) - mu2**2
        sigma12 = filter_valid(first * second) - mu1 * mu2
        ssim_map = ((2 * mu1 * mu2 + c1) * (2 * sigma12 + c2)) / ((mu1**2 + mu2**2 + c1) * (sigma1 + sigma2 + c2))
        scores.append(ssim_map.mean())
    return float(np.mean(scores))


def noisy_pair(seed: int, height: int = 40, width: int = 37) -> tuple[np.ndarray, np.ndarray]:
    """A reference in [0, 255] (whole numbers) and a noisy 8-bit copy of it, both (3, H, W) float64."""
    rng = np.random.default_rng(seed)
    reference = rng.integers(0, 256, (3, height, width)).astype(np.float64)
    image = np.clip(np.round(reference + rng.normal(0, 20, reference.shape)), 0, 255)
    return image, reference


def tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array.copy())


# ---- tests ----


def test_identical_images_give_infinite_psnr_and_unit_ssim():
    image = torch.rand(2, 3, 24, 20, dtype=torch.float64) * 255
    for y_channel in (False, True):
        assert psnr(image, image.clone(), y_channel=y_channel) == math.inf
        assert ssim(image, image.clone(), y_channel=y_channel) == pytest.approx(1.0, abs=1e-12)
    assert psnr(image[0], image[0].clone()) == math.inf


def test_constant_difference_gives_hand_computed_psnr():
    rng = np.random.default_rng(0)
    reference = rng.integers(10, 240, (3, 16, 16)).astype(np.float64)
    image = reference + 5.0
    expected = 10 * math.log10(255.0**2 / 25.0)  # MSE = 5^2
    assert psnr(tensor(image), tensor(reference)) == pytest.approx(expected, abs=1e-10)
    assert psnr(tensor(image), tensor(reference), crop_border=3) == pytest.approx(expected, abs=1e-10)
    # On luma a grey-level shift of 5 in R, G and B moves Y by 5 * 219 / 255.
    y_difference = 5.0 * (65.481 + 128.553 + 24.966) / 255.0
    expected_y = 10 * math.log10(255.0**2 / y_difference**2)
    assert psnr(tensor(image), tensor(reference), y_channel=True) == pytest.approx(expected_y, abs=1e-10)
    assert psnr(tensor(image), tensor(reference), crop_border=2, y_channel=True) == pytest.approx(expected_y,
                                                                                                 abs=1e-10)


def test_crop_border_shaves_every_side():
    reference = torch.full((3, 20, 20), 100.0)
    image = reference.clone()
    image[:, :3, :] += 40  # top
    image[:, -1, :] -= 40  # bottom
    image[:, :, :2] += 7  # left
    image[:, :, -3:] -= 7  # right
    assert math.isfinite(psnr(image, reference))
    assert math.isfinite(psnr(image, reference, crop_border=2))
    assert psnr(image, reference, crop_border=3) == math.inf
    assert psnr(image, reference, crop_border=3, y_channel=True) == math.inf
    assert ssim(image, reference) < 1.0
    assert ssim(image, reference, crop_border=3) == pytest.approx(1.0, abs=1e-12)


def test_interior_difference_survives_the_crop():
    reference = torch.full((3, 20, 20), 100.0)
    image = reference.clone()
    image[:, 2:-2, 2:-2] += 5
    image[:, :2, :] += 50  # only in the border: shaved away
    assert psnr(image, reference, crop_border=2) == pytest.approx(10 * math.log10(255.0**2 / 25.0), abs=1e-10)


@pytest.mark.parametrize("y_channel", [False, True])
@pytest.mark.parametrize("crop_border", [0, 4])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_agrees_with_numpy_reference(seed, crop_border, y_channel):
    image, reference = noisy_pair(seed)
    expected_image, expected_reference = shave(image, crop_border), shave(reference, crop_border)
    if y_channel:
        expected_image, expected_reference = reference_y(expected_image), reference_y(expected_reference)
    got_psnr = psnr(tensor(image), tensor(reference), crop_border=crop_border, y_channel=y_channel)
    got_ssim = ssim(tensor(image), tensor(reference), crop_border=crop_border, y_channel=y_channel)
    assert got_psnr == pytest.approx(reference_psnr(expected_image, expected_reference), abs=1e-6)
    assert got_ssim == pytest.approx(reference_ssim(expected_image, expected_reference), abs=1e-6)
    # A noisy copy is far from perfect: the comparison is not of two trivial values.
    assert 15 < got_psnr < 35 and 0.3 < got_ssim < 0.99


def test_float32_input_is_measured_in_float64():
    image, reference = noisy_pair(4)
    got = ssim(tensor(image).float(), tensor(reference).float(), y_channel=True)
    assert got == pytest.approx(reference_ssim(reference_y(image), reference_y(reference)), abs=1e-6)


def test_batch_is_the_mean_of_per_image_scores():
    pairs = [noisy_pair(seed) for seed in (5, 6, 7)]
    images = torch.stack([tensor(image) for image, _ in pairs])
    references = torch.stack([tensor(reference) for _, reference in pairs])
    expected_psnr = np.mean([reference_psnr(image, reference) for image, reference in pairs])
    expected_ssim = np.mean([reference_ssim(image, reference) for image, reference in pairs])
    assert psnr(images, references) == pytest.approx(expected_psnr, abs=1e-6)
    assert ssim(images, references) == pytest.approx(expected_ssim, abs=1e-6)
    # Per image, then mean: not the PSNR of the pooled MSE.
    pooled = reference_psnr(images.numpy(), references.numpy())
    assert psnr(images, references) != pytest.approx(pooled, abs=1e-6)


def test_rgb_to_y_spans_16_to_235():
    white = torch.full((2, 3, 4, 5), 255.0, dtype=torch.float64)
    black = torch.zeros(3, 4, 5, dtype=torch.float64)
    assert rgb_to_y(white).shape == (2, 1, 4, 5)
    assert rgb_to_y(black).shape == (1, 4, 5)
    assert torch.allclose(rgb_to_y(white), torch.tensor(235.0, dtype=torch.float64), atol=1e-9, rtol=0)
    assert torch.allclose(rgb_to_y(black), torch.tensor(16.0, dtype=torch.float64), atol=1e-9, rtol=0)
    red = torch.zeros(3, 1, 1, dtype=torch.float64)
    red[0] = 255
    assert rgb_to_y(red).item() == pytest.approx(16 + 65.481, abs=1e-9)


def test_rgb_to_y_rejects_non_rgb():
    with pytest.raises(ValueError, match="3, H, W"):
        rgb_to_y(torch.zeros(1, 8, 8))


def test_signed_to_255_rounds_like_an_8_bit_png():
    values = torch.tensor([-1.0, -1.5, 1.0, 1.5, 0.0, 0.01, -0.99])
    converted = signed_to_255(values)
    assert converted.dtype == torch.float64
    assert converted.tolist() == [0.0, 0.0, 255.0, 255.0, 128.0, 129.0, 1.0]
    assert torch.equal(converted, converted.round())


def test_mismatched_shapes_name_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 20, 20\).*\(3, 20, 21\)"):
        psnr(torch.zeros(3, 20, 20), torch.zeros(3, 20, 21))
    with pytest.raises(ValueError, match=r"\(2, 3, 20, 20\).*\(3, 20, 20\)"):
        ssim(torch.zeros(2, 3, 20, 20), torch.zeros(3, 20, 20))


def test_images_outside_0_to_255_are_refused_naming_their_range_and_the_mapping():
    """gan's [-1, 1] images were scored as 8-bit values without a word: 59.6 dB where their 8-bit
    values score 17.5."""
    image, reference = noisy_pair(8)
    signed = tensor(image) / 127.5 - 1
    for metric in (psnr, ssim):
        with pytest.raises(ValueError, match=r"the image holds values in \[-1, 1\].*\[0, 255\].*\(x \+ 1\) \* 127.5"):
            metric(signed, tensor(reference))
        with pytest.raises(ValueError, match=r"the reference holds values in \[1, 256\]"):
            metric(tensor(image), tensor(reference + 1))
        with pytest.raises(ValueError, match=r"the image holds values in \[-3, 0\]"):
            metric(torch.full((3, 16, 16), -3, dtype=torch.int16).index_fill_(0, torch.tensor([0]), 0),
                   torch.zeros(3, 16, 16, dtype=torch.int16))


def test_float_images_within_0_to_1_are_warned_of_and_8_bit_ones_are_not():
    """[0, 1] images scored 65.6 dB without a word; a dark 8-bit image can lie within [0, 1] too,
    so they are warned of, not refused."""
    image, reference = noisy_pair(9)
    for metric in (psnr, ssim):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            metric(tensor(image) / 255, tensor(reference) / 255)
            metric(tensor(image), tensor(reference))
            metric(torch.zeros(3, 16, 16), torch.zeros(3, 16, 16))
            metric(torch.ones(3, 16, 16, dtype=torch.uint8), torch.zeros(3, 16, 16, dtype=torch.uint8))
        assert [str(warning.message) for warning in caught] == [
            f"{metric.__name__}: the values of the image and the reference lie within [0, 1] only, as [0, 1] images "
            "do (or very dark 8-bit ones): it takes 8-bit values in [0, 255], so scale [0, 1] images by 255"]
        assert caught[0].filename == __file__


def test_values_gan_made_8_bit_itself_are_not_warned_of_when_dark_and_still_refused_outside_0_to_255():
    """gan's own evaluation (validation, gan eval) passes values it rounded to 8 bits itself: a dark image
    (pixels 0 or 1) was warned of, in words naming no image that its user could do nothing about."""
    from torch import nn

    from gan.core.config import DataConfig
    from gan.core.images import uint8_to_signed
    from gan.recipes.image_to_image import pair_scores

    draws = torch.Generator().manual_seed(0)
    dark, other = (torch.randint(0, 2, (3, 32, 32), generator=draws, dtype=torch.uint8) for _ in range(2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for metric in (psnr, ssim):
            metric(dark.double(), other.double(), eight_bit=True)
        pair_scores(nn.Identity(), [{"input": uint8_to_signed(dark), "target": uint8_to_signed(other)}],
                    DataConfig(dataset="paired", resolution=32), torch.device("cpu"), 1)
    assert [str(warning.message) for warning in caught] == []
    for metric in (psnr, ssim):
        with pytest.raises(ValueError, match=r"the image holds values in \[-1, 0\]"):
            metric(dark.double() - 1, other.double(), eight_bit=True)


def test_too_small_images_are_refused():
    with pytest.raises(ValueError, match="11x11"):
        ssim(torch.zeros(3, 10, 30), torch.zeros(3, 10, 30))
    with pytest.raises(ValueError, match="crop_border=5"):
        ssim(torch.zeros(3, 20, 20), torch.zeros(3, 20, 20), crop_border=5)  # leaves 10x10
    assert ssim(torch.zeros(3, 21, 21), torch.zeros(3, 21, 21), crop_border=5) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="crop_border=4"):
        psnr(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8), crop_border=4)  # nothing left
    with pytest.raises(ValueError, match="crop_border"):
        psnr(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8), crop_border=-1)


def test_ssim_of_a_large_image_is_computed_in_bands_with_the_same_score_and_bounded_memory(monkeypatch):
    # a 25-megapixel SR image took 10 GB beyond its network pass in float64 SSIM maps: `gan eval` and
    # training's validation were killed by the kernel without a word
    import subprocess
    import sys

    from gan.metrics import image_quality

    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, 300, 200), generator=generator).double()
    reference = (image + torch.randn(image.shape, generator=generator, dtype=torch.float64) * 20).clamp(0, 255)
    whole = ssim(image, reference, crop_border=4, y_channel=False)
    monkeypatch.setattr(image_quality, "SSIM_BAND_PIXELS", 3 * 190 * 7)  # bands of 7 map rows, the last shorter
    assert ssim(image, reference, crop_border=4) == pytest.approx(whole, rel=1e-12, abs=0)
    measured = subprocess.run([sys.executable, "-c", (
        "import resource, torch\n"
        "from gan.metrics import ssim\n"
        "image = torch.zeros(3, 2500, 2500, dtype=torch.uint8)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "ssim(image, image, crop_border=4)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)\n")],
        capture_output=True, text=True, check=True)
    # (the two float64 copies of the 6.25-megapixel RGB images alone are 300 MB, the bands about as much again)
    assert int(measured.stdout) < 1200 * 2**20, measured.stdout  # (3.1 GB when computed whole)
