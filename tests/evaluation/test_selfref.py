"""The self-reference test set is the same for every model, whatever a() it was trained with."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from sketchcolor.evaluation.selfref import PROTOCOL, self_reference_cases


def _drawings(n: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        color = np.full((32, 32, 3), 255, np.uint8)
        color[4:28, 4:16] = rng.integers(0, 256, 3)
        color[4:28, 16:28] = rng.integers(0, 256, 3)
        line = np.full((32, 32), 255, np.uint8)
        line[4, 4:28] = line[27, 4:28] = line[4:28, 4] = line[4:28, 27] = line[4:28, 16] = 0
        out.append((line, color))
    return out


def test_cases_follow_the_protocol_not_the_models_recipe(small_config) -> None:
    default = small_config()
    old_a = small_config("data.appearance=shift", "data.color_shift=0.35", "data.region_recolor=0")
    assert old_a.data != PROTOCOL and default.data == PROTOCOL
    drawings = _drawings()
    a = self_reference_cases(drawings, SimpleNamespace(config=default, size=32), seed=3)
    b = self_reference_cases(drawings, SimpleNamespace(config=old_a, size=32), seed=3)
    for x, y in zip(a, b, strict=True):
        for field in ("sketch", "reference", "target", "correspondence"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field))
    # the targets are recolored (a() changed them) and the references differ from the targets (TPS)
    assert any(np.abs(c.target.astype(int) - d[1].astype(int)).max() > 10 for c, d in zip(a, drawings))
    assert all(not np.array_equal(c.reference, c.target) for c in a)
