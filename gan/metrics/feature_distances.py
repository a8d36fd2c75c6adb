"""Distances between two sets of feature vectors: FID, KID and improved precision/recall.

All three take (N, D) arrays of features (Inception-v3 pool features for the
numbers papers report) and are computed in float64. FID's matrix square root goes
through symmetric eigen-decompositions, which stay real and stable for the
rank-deficient covariances of small sample sets (where `scipy.linalg.sqrtm` of the
non-symmetric product can return complex noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class GaussianStatistics:
    """Mean and covariance of a feature set: all FID needs of it."""

    mean: np.ndarray  # (D,)
    covariance: np.ndarray  # (D, D)

    @classmethod
    def of(cls, features: np.ndarray) -> "GaussianStatistics":
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[0] < 2:
            raise ValueError(f"need at least 2 feature vectors of shape (N, D), got {features.shape}")
        return cls(features.mean(axis=0), np.cov(features, rowvar=False))


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative round-off eigenvalues clamped)."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def frechet_distance(first: GaussianStatistics, second: GaussianStatistics) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2).

    tr((S1 S2)^1/2) = tr((A S2 A)^1/2) with A = S1^1/2, whose argument is symmetric
    PSD, so both roots come from `eigh` and the result is real by construction.
    """
    if first.mean.shape != second.mean.shape:
        raise ValueError(f"feature sizes differ: {first.mean.shape[0]} vs {second.mean.shape[0]}")
    root_first = _symmetric_sqrt(first.covariance)
    middle = root_first @ second.covariance @ root_first
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    difference = first.mean - second.mean
    distance = difference @ difference + np.trace(first.covariance) + np.trace(second.covariance) - 2 * trace_root
    return float(max(distance, 0.0))


def _polynomial_mmd2(first: np.ndarray, second: np.ndarray) -> float:
    """Unbiased MMD^2 with the kernel k(x, y) = (x.y / D + 1)^3 (Binkowski et al. 2018)."""
    dim = first.shape[1]
    k_xx = (first @ first.T / dim + 1) ** 3
    k_yy = (second @ second.T / dim + 1) ** 3
    k_xy = (first @ second.T / dim + 1) ** 3
    m, n = len(first), len(second)
    return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
                 - 2 * k_xy.mean())


def kernel_inception_distance(first: np.ndarray, second: np.ndarray, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float | None]:
    """(mean, std) of the unbiased polynomial-kernel MMD^2 over random subsets, as torch-fidelity
    and the KID paper compute it; `subset_size` shrinks to the smaller set when that has fewer.
    When both sets are of one size, no larger than a subset, every subset is both whole sets, so the MMD^2 is
    computed once and the std is None: a spread of 0 would claim a certainty there is not."""
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    size = min(subset_size, len(first), len(second))
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(first)} and {len(second)}")
    if size == len(first) == len(second):
        return float(_polynomial_mmd2(first, second)), None
    rng = np.random.default_rng(seed)
    values = [_polynomial_mmd2(first[rng.choice(len(first), size, replace=False)],
                               second[rng.choice(len(second), size, replace=False)]) for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


def _kth_neighbour_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each vector to its k-th nearest other vector in the same set."""
    return torch.cat([torch.cdist(chunk, features).kthvalue(k + 1, dim=1).values for chunk in features.split(1024)])


def _fraction_inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    """Fraction of `points` inside at least one ball (centre, radius): the k-NN manifold estimate."""
    inside = [(torch.cdist(chunk, centres) <= radii).any(dim=1) for chunk in points.split(1024)]
    return float(torch.cat(inside).double().mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, neighbours: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019): precision is the share of
    fakes inside the real manifold, recall the share of reals inside the fake one."""
    real_t, fake_t = torch.as_tensor(real, dtype=torch.float64), torch.as_tensor(fake, dtype=torch.float64)
    if min(len(real_t), len(fake_t)) <= neighbours:
        raise ValueError(f"precision/recall with k={neighbours} needs more than {neighbours} samples per set")
    precision = _fraction_inside(fake_t, real_t, _kth_neighbour_radii(real_t, neighbours))
    recall = _fraction_inside(real_t, fake_t, _kth_neighbour_radii(fake_t, neighbours))
    return precision, recall
