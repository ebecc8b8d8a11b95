"""FID and KID from feature sets ``[N, D]`` (float64 numpy), public APIs only.

Statistics: means and covariances as clean-fid takes them (``np.mean``, ``np.cov``).

Fréchet distance: written here (numpy, float64) rather than taken from a library: clean-fid's
``frechet_distance`` lives in ``cleanfid.fid``, which cannot be imported without torchvision, and
torchmetrics only has it as a private function (``_compute_fid``). The trace of the matrix square
root is taken from a symmetric eigenvalue problem (see :func:`frechet_distance`).

KID: torchmetrics' public ``poly_kernel`` + ``maximum_mean_discrepancy`` (unbiased MMD^2, cubic
polynomial kernel), averaged over random subsets drawn as clean-fid's ``kernel_distance`` draws
them, but from a seeded generator.
"""

from __future__ import annotations

import numpy as np
import torch

from sketchcolor.errors import SketchColorError


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite ``[D, D]`` matrix (float64);
    eigenvalues below 0 (rounding of a singular covariance) are taken as 0."""
    w, v = np.linalg.eigh((s + s.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64:
    ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``.

    ``mu``: ``[D]``, ``sigma``: ``[D, D]`` (symmetric positive semi-definite).

    ``tr((S1 S2)^(1/2))`` is the sum of the square roots of the eigenvalues of ``S1 S2``. With
    ``R = S1^(1/2)``, ``S1 S2 = R (R S2)`` and ``R S2 R = (R S2) R`` have the same non-zero
    eigenvalues (``AB`` and ``BA`` always do), and ``R S2 R`` is symmetric positive
    semi-definite: so the trace is ``sum(sqrt(eigvalsh(R S2 R)))``, two symmetric
    eigen-decompositions (``numpy.linalg.eigh``) with real, non-negative eigenvalues, where the
    general ``sqrtm(S1 @ S2)`` of clean-fid / ``eigvals`` of torchmetrics work on a non-symmetric
    product and may return complex parts. Eigenvalues below 0 from rounding count as 0.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    assert mu1.shape == mu2.shape and sigma1.shape == sigma2.shape == (mu1.size, mu1.size), (
        mu1.shape, mu2.shape, sigma1.shape, sigma2.shape)
    root1 = _sqrt_psd(sigma1)
    inner = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    trace_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def feature_statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` (``np.cov``, ddof 1) of ``[N, D]`` as clean-fid computes them."""
    return feats.mean(axis=0), np.atleast_2d(np.cov(feats, rowvar=False))


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets ``[N_a, D]`` and ``[N_b, D]`` (N >= 2 each).

    When ``N_a + N_b + 1 < D`` (our small test sets: a few hundred images, D = 2048) both sets
    are first expressed in an orthonormal basis of the span of their centered features and of
    ``mu_a - mu_b``. FID is invariant under this rotation (the covariances, the mean difference
    and ``S_a S_b`` all live in that span, so every term of the formula is unchanged), and the
    eigen-decompositions inside the Fréchet distance then cost ``(N_a + N_b)^3`` instead of
    ``D^3``, which is what makes a bootstrap affordable on 2 cores.
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    assert a.ndim == 2 and b.ndim == 2 and a.shape[1] == b.shape[1], (a.shape, b.shape)
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {a.shape[0]} and {b.shape[0]}")
    d = a.shape[1]
    if a.shape[0] + b.shape[0] + 1 < d:
        span = np.concatenate([a - a.mean(0), b - b.mean(0), (a.mean(0) - b.mean(0))[None]]).T  # [D, n]
        q, _ = np.linalg.qr(span)  # [D, n], orthonormal columns
        a, b = a @ q, b @ q
    mu_a, s_a = feature_statistics(a)
    mu_b, s_b = feature_statistics(b)
    return frechet_distance(mu_a, s_a, mu_b, s_b)


def kid_from_features(
    features_a: np.ndarray,
    features_b: np.ndarray,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> float:
    """KID between ``[N_a, D]`` and ``[N_b, D]``: unbiased MMD^2 with the kernel ``(x . y / D + 1)^3``,
    averaged over ``num_subsets`` pairs of random subsets of size ``min(N_a, N_b, max_subset_size)``
    drawn without replacement, as clean-fid's ``kernel_distance`` draws them (seeded here).

    Kernel and estimator are torchmetrics' ``poly_kernel`` and ``maximum_mean_discrepancy``; the
    kernel matrices are computed once on the whole sets and each subset takes its block (the same
    numbers as ``poly_mmd`` on the subset, without recomputing the products for every subset).
    Two samples of one distribution give about 0 (either sign); the *same* set against itself
    gives ``(2 / m) (mean off-diagonal k - mean diagonal k) < 0``, a property of the estimator.
    """
    try:
        from torchmetrics.image.kid import maximum_mean_discrepancy, poly_kernel
    except ImportError:
        raise SketchColorError("KID needs torchmetrics: run `pip install torchmetrics`") from None
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    assert a.ndim == 2 and b.ndim == 2 and a.shape[1] == b.shape[1], (a.shape, b.shape)
    m = min(a.shape[0], b.shape[0], max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {a.shape[0]} and {b.shape[0]}")
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    k_aa, k_bb, k_ab = poly_kernel(ta, ta), poly_kernel(tb, tb), poly_kernel(ta, tb)
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(num_subsets):
        ib = torch.from_numpy(rng.choice(b.shape[0], m, replace=False))  # clean-fid draws feats2 first
        ia = torch.from_numpy(rng.choice(a.shape[0], m, replace=False))
        total += float(maximum_mean_discrepancy(k_aa[ia][:, ia], k_ab[ia][:, ib], k_bb[ib][:, ib]))
    return total / num_subsets
