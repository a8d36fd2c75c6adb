"""FID, KID and precision/recall against independent references (numpy formulas and torch-fidelity's own)."""

import numpy as np
import pytest
import torch
from torch_fidelity.metric_fid import fid_statistics_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import calculate_precision_recall_full

from gan.metrics.feature_distances import (
    GaussianStatistics,
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
)


def random_features(count: int, dim: int, seed: int, shift: float = 0.0, scale: float = 1.0,
                    mix_seed: int = 0) -> np.ndarray:
    """Samples of a correlated Gaussian (a random linear mix fixed by `mix_seed`, so covariances are
    far from diagonal); `seed` draws the samples."""
    mix = np.random.default_rng(mix_seed).normal(size=(dim, dim)) / np.sqrt(dim)
    return (np.random.default_rng(seed).normal(size=(count, dim)) @ mix) * scale + shift


def reference_fid_eigvals(first: np.ndarray, second: np.ndarray) -> float:
    """The pytorch-fid / torch-fidelity formula: eigenvalues of the non-symmetric product S1 S2."""
    mean1, mean2 = first.mean(0), second.mean(0)
    cov1, cov2 = np.cov(first, rowvar=False), np.cov(second, rowvar=False)
    trace_root = np.sqrt(np.linalg.eigvals(cov1 @ cov2).astype(complex)).real.sum()
    return float(((mean1 - mean2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * trace_root)


@pytest.mark.parametrize("count,dim", [(500, 32), (60, 128)])  # the second is rank-deficient
def test_fid_of_a_set_with_itself_is_zero(count, dim):
    features = random_features(count, dim, seed=1)
    statistics = GaussianStatistics.of(features)
    assert frechet_distance(statistics, statistics) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("shift,scale,mix_seed", [(0.0, 1.0, 0), (0.3, 1.0, 0), (0.0, 1.5, 0), (1.0, 0.5, 1)])
def test_fid_matches_an_eigenvalue_reference_and_torch_fidelity(shift, scale, mix_seed):
    first = random_features(400, 48, seed=2)
    second = random_features(400, 48, seed=3, shift=shift, scale=scale, mix_seed=mix_seed)
    ours = frechet_distance(GaussianStatistics.of(first), GaussianStatistics.of(second))
    assert ours == pytest.approx(reference_fid_eigvals(first, second), rel=1e-7, abs=1e-9)
    theirs = fid_statistics_to_metric(
        {"mu": first.mean(0), "sigma": np.cov(first, rowvar=False)},
        {"mu": second.mean(0), "sigma": np.cov(second, rowvar=False)}, verbose=False)["frechet_inception_distance"]
    assert ours == pytest.approx(theirs, rel=1e-7)
    assert ours > 0


def test_fid_stays_real_and_non_negative_for_rank_deficient_covariances():
    """30 samples in 256 dimensions: covariances of rank 29, where sqrtm-style roots go complex."""
    first, second = random_features(30, 256, seed=4), random_features(30, 256, seed=5, mix_seed=1)
    ours = frechet_distance(GaussianStatistics.of(first), GaussianStatistics.of(second))
    assert np.isfinite(ours) and ours > 0
    assert ours == pytest.approx(reference_fid_eigvals(first, second), rel=1e-6)


def test_fid_grows_with_the_mean_shift():
    base = random_features(300, 16, seed=6)
    distances = [frechet_distance(GaussianStatistics.of(base),
                                  GaussianStatistics.of(random_features(300, 16, seed=7, shift=shift)))
                 for shift in (0.0, 0.5, 1.0, 2.0)]
    assert distances == sorted(distances)


def reference_mmd2(first: np.ndarray, second: np.ndarray) -> float:
    """Unbiased MMD^2 with k(x, y) = (x.y/d + 1)^3, written out with explicit off-diagonal sums."""
    dim = first.shape[1]

    def kernel(a, b):
        return (a @ b / dim + 1) ** 3

    m, n = len(first), len(second)
    xx = sum(kernel(first[i], first[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(kernel(second[i], second[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(kernel(first[i], second[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_an_explicit_reference_and_torch_fidelity():
    first = random_features(40, 8, seed=8)
    second = random_features(40, 8, seed=9, shift=0.4)
    mean, std = kernel_inception_distance(first, second, subsets=1, subset_size=40)
    assert mean == pytest.approx(reference_mmd2(first, second), rel=1e-9)
    assert std is None  # one subset of both whole sets: no spread to report
    theirs = kid_features_to_metric(torch.from_numpy(first), torch.from_numpy(second), kid_subsets=1,
                                    kid_subset_size=40, verbose=False)["kernel_inception_distance_mean"]
    assert mean == pytest.approx(theirs, rel=1e-6)


def test_kid_reports_a_spread_only_where_its_subsets_differ():
    small, large = random_features(50, 8, seed=1), random_features(120, 8, seed=2)
    assert kernel_inception_distance(small, random_features(50, 8, seed=3), subset_size=1000)[1] is None
    mean, std = kernel_inception_distance(large, random_features(120, 8, seed=3), subsets=10, subset_size=60)
    assert std > 0  # subsets of 60 of 120 differ


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    same = kernel_inception_distance(random_features(300, 16, seed=10), random_features(300, 16, seed=10 + 100),
                                     subsets=20, subset_size=100)
    different = kernel_inception_distance(random_features(300, 16, seed=10),
                                          random_features(300, 16, seed=11, shift=0.5), subsets=20, subset_size=100)
    assert abs(same[0]) < 3 * same[1] + 1e-3
    assert different[0] > 10 * max(abs(same[0]), 1e-4)


def test_precision_recall_matches_torch_fidelity_and_detects_mode_collapse():
    real = random_features(200, 8, seed=12)
    fake = random_features(200, 8, seed=13, shift=0.3)
    precision, recall = precision_recall(real, fake, neighbours=3)
    # torch-fidelity's first input is the generated set
    theirs = calculate_precision_recall_full(torch.from_numpy(fake), torch.from_numpy(real), 3, 10000)
    assert (precision, recall) == pytest.approx(tuple(float(value) for value in theirs), abs=1e-6)
    assert 0.2 < precision < 1 and 0.2 < recall < 1
    assert precision_recall(real, real) == (1.0, 1.0)
    collapsed = real[:1].repeat(200, axis=0) + 1e-3 * random_features(200, 8, seed=14)  # one mode of the reals
    precision, recall = precision_recall(real, collapsed)
    assert precision == 1.0 and recall < 0.1
