"""How large SCFT's attention logits are in trained weights, and what bf16 autocast does to them.

For each weights folder (an artifact or a checkpoint folder), on the first ``--n`` validation
self-reference triplets (seeded as training validates): the mean norm of the queries and keys,
the mean logit range per sketch cell (max - min over the reference cells), the attention's
entropy, and, under bf16 autocast on the CPU, the attention's total-variation distance and argmax
agreement to the fp32 attention, with the logits in fp32 (as SCFT.attend computes them) and in
bf16 (a plain bf16 bmm + softmax). Logits that grow over training make the softmax nearly one-hot
and put them where bf16 is only good to about 0.5 (README, "The shipped model").

    .venv/bin/python bench/attention_scale.py runs/abl_a_new/best weights/default --data data/drawings
"""

from __future__ import annotations

import argparse

import torch

from sketchcolor.data.datasets import TripletStream, open_images
from sketchcolor.models.serialization import load_artifact


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+", help="artifact or checkpoint folders")
    ap.add_argument("--data", default="data/drawings", help="prepared data folder (its val split is used)")
    ap.add_argument("--n", type=int, default=32, help="validation triplets")
    args = ap.parse_args()
    torch.manual_seed(0)
    print("| weights | step | mean query norm | mean key norm | logit range | entropy (nats) "
          "| bf16: TV to fp32, fp32 logits | argmax agreement | bf16: TV, bf16 logits | argmax agreement |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for folder in args.weights:
        g, cfg, meta = load_artifact(folder)
        g.eval()
        grid = (cfg.model.image_size // g.cfg.feature_stride,) * 2
        images = open_images(args.data, cfg.model.image_size, cfg.data, "val")  # as training validates
        stream = TripletStream(images, grid, seed=cfg.train.seed + 1, length=min(args.n, len(images)))
        batch = [stream[i] for i in range(len(stream))]
        sketch = torch.stack([x["sketch"] for x in batch])
        reference = torch.stack([x["reference"] for x in batch])
        with torch.no_grad():
            out = g(sketch, reference)
            q, k = out.query, out.key
            logits = g.scft.similarity(q, k)  # the attention's own scores (qk models' q/k carry the scale)
            a32 = torch.softmax(logits, -1)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = g(sketch, reference)
                a_bf16 = torch.softmax(g.scft.similarity(low.query, low.key), -1).float()  # a bf16 bmm
        p = a32.clamp_min(1e-12)
        entropy = float(-(p * p.log()).sum(-1).mean())
        spread = float((logits.amax(-1) - logits.amin(-1)).mean())

        def compare(a: torch.Tensor) -> str:
            tv = float(0.5 * (a32 - a).abs().sum(-1).mean())
            agree = float((a32.argmax(-1) == a.argmax(-1)).float().mean())
            return f"{tv:.3f} | {agree:.3f}"

        print(f"| {folder} | {meta.get('step')} | {float(q.norm(dim=-1).mean()):.1f} | {float(k.norm(dim=-1).mean()):.1f} "
              f"| {spread:.1f} | {entropy:.2f} | {compare(low.attention.float())} | {compare(a_bf16)} |")


if __name__ == "__main__":
    main()
