"""What changed between consecutive training checkpoints: which of G's and D's weights moved most
(change over norm), and whether D's spectral normalisation still estimates each layer's largest
singular value (its power-iteration vectors u, v against torch.linalg's exact value).

Used on the 250-step windows before a divergence (README, "The shipped model"): a power
iteration that lost track of a layer would let D's effective weights grow unchecked.

    .venv/bin/python bench/checkpoint_drift.py runs/qk_long/checkpoints/step_0000{7250,7500,7750}
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sketchcolor.training.checkpoint import load_trainer_state

SN = ".parametrizations.weight"


def drift(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], top: int) -> list[str]:
    """The ``top`` floating tensors of ``b`` that moved most from ``a``, as ``name rel |a|->|b|``."""
    rows = []
    for k, va in a.items():
        if va.is_floating_point() and "._u" not in k and "._v" not in k:
            na = float(va.float().norm())
            rows.append((float((b[k].float() - va.float()).norm()) / max(na, 1e-12), k, na, float(b[k].float().norm())))
    return [f"  {rel:.3f}  {k}  {na:.3f} -> {nb:.3f}" for rel, k, na, nb in sorted(rows, reverse=True)[:top]]


def spectral(d: dict[str, torch.Tensor]) -> list[str]:
    """Per spectral-normalised layer: estimate u.Wv over the exact sigma_1, and sigma_2 / sigma_1."""
    out = []
    for k in sorted(d):
        if k.endswith(SN + ".original"):
            base = k[: -len(".original")]
            w = d[k].float().flatten(1)
            u, v = d[base + ".0._u"].float(), d[base + ".0._v"].float()
            s = torch.linalg.svdvals(w)
            second = float(s[1] / s[0]) if len(s) > 1 else 0.0
            out.append(f"  {base.split(SN)[0]}: estimate/sigma_1 {float(u @ (w @ v)) / float(s[0]):.3f}, "
                       f"sigma_2/sigma_1 {second:.3f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint folders with trainer_state.pt, in step order")
    ap.add_argument("--top", type=int, default=6)
    args = ap.parse_args()
    loaded = [(c, load_trainer_state(c)) for c in args.checkpoints]
    for (ca, a), (cb, b) in zip(loaded, loaded[1:]):
        print(f"{ca.name} -> {cb.name}")
        for part in ("generator", "discriminator"):
            print(f" {part}, largest relative change:")
            print("\n".join(drift(a[part], b[part], args.top)))
        print(" D's spectral norm at the later checkpoint:")
        print("\n".join(spectral(b["discriminator"])))


if __name__ == "__main__":
    main()
