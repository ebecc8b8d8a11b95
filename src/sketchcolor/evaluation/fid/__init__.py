"""FID and KID with the standard Inception network, prepared the way clean-fid prepares images.

One job per module, as clean-fid splits its files:

- :mod:`.locate`: find the installed network file and check its SHA-1 (also used by
  ``sketchcolor.prepare_weights``);
- :mod:`.features`: :class:`InceptionFeatures`, uint8 images -> ``[N, 2048]`` pool features
  (clean-fid's "clean" resize);
- :mod:`.scores`: Fréchet distance, FID and KID from features (public APIs only);
- :mod:`.bootstrap`: resampling intervals and the FID/KID entries of a results row.

Every public name is re-exported here, so ``from sketchcolor.evaluation.fid import ...`` works
as it did when this was one file.
"""

from __future__ import annotations

from sketchcolor.evaluation.fid.bootstrap import Interval, bootstrap_interval, distribution_scores
from sketchcolor.evaluation.fid.features import FEATURE_DIM, RESIZE_MODE, InceptionFeatures, clean_resizer
from sketchcolor.evaluation.fid.locate import (
    INCEPTION_ENV,
    INCEPTION_FILE,
    INCEPTION_PACKAGE,
    INCEPTION_PIP,
    INCEPTION_SHA1,
    declared_sha1,
    inception_package_dir,
    locate_inception,
    verify_inception,
)
from sketchcolor.evaluation.fid.scores import feature_statistics, fid_from_features, frechet_distance, kid_from_features

__all__ = [
    "FEATURE_DIM",
    "INCEPTION_ENV",
    "INCEPTION_FILE",
    "INCEPTION_PACKAGE",
    "INCEPTION_PIP",
    "INCEPTION_SHA1",
    "RESIZE_MODE",
    "InceptionFeatures",
    "Interval",
    "bootstrap_interval",
    "clean_resizer",
    "declared_sha1",
    "distribution_scores",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "inception_package_dir",
    "kid_from_features",
    "locate_inception",
    "verify_inception",
]
