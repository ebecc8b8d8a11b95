"""The colorizer G: E_s + E_r -> SCFT -> residual blocks -> U-Net decoder with skips from E_s."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sketchcolor.config import ModelConfig
from sketchcolor.models.blocks import ConvAct, ResBlock, UpBlock
from sketchcolor.models.encoders import Encoder, concat_levels
from sketchcolor.models.scft import SCFT


@dataclass
class ColorizerOutput:
    """image ``[B, 3, H, W]`` in [-1, 1]; attention ``[B, hw, hw_r]``; query ``[B, hw, d]``;
    key ``[B, hw_r, d]`` (the last three from SCFT; None for the concatenation baseline);
    warped_colors ``[B, 3, h, w]``: the reference's cell colors moved by the attention onto the
    sketch's feature grid (None without ``ModelConfig.color_path``)."""

    image: torch.Tensor
    attention: torch.Tensor | None
    query: torch.Tensor | None
    key: torch.Tensor | None
    warped_colors: torch.Tensor | None = None


def reference_cells(reference: torch.Tensor, grid_r: tuple[int, int]) -> torch.Tensor:
    """The reference's colors per feature cell: ``[B, 3, H', W']`` average-pooled to ``grid_r`` ->
    ``[B, hw_r, 3]`` (row-major cells, in the order of SCFT's keys)."""
    return F.adaptive_avg_pool2d(reference, grid_r).flatten(2).transpose(1, 2)


def move_cells(attention: torch.Tensor, cells: torch.Tensor, grid_s: tuple[int, int]) -> torch.Tensor:
    """``[B, hw_s, M] x [B, M, 3]`` -> ``[B, 3, *grid_s]``: each sketch cell's attention-weighted color."""
    moved = torch.bmm(attention, cells)  # [B, hw_s, 3]
    return moved.transpose(1, 2).reshape(attention.shape[0], 3, *grid_s)


def warp_colors(attention: torch.Tensor, reference: torch.Tensor, grid_s: tuple[int, int],
                grid_r: tuple[int, int]) -> torch.Tensor:
    """Move the reference's colors with the attention: reference ``[B, 3, H', W']`` average-pooled
    to ``grid_r`` cells, then ``[B, hw_s, hw_r] x [B, hw_r, 3]`` -> ``[B, 3, *grid_s]``."""
    return move_cells(attention, reference_cells(reference, grid_r), grid_s)


@dataclass
class ReferenceFeatures:
    """The reference side of :class:`Colorizer`, computed once by :meth:`Colorizer.encode_reference`
    and reused for any number of sketches (the frames of a sequence).

    With SCFT: ``key`` ``[B_r, M, d]`` and ``value`` ``[B_r, M, k]``, the projections of all the
    references' cells (M = the sum of their ``h_r * w_r``, concatenated along the cell axis in
    the references' order); ``cells`` ``[B_r, M, 3]`` their colors (the color path's values).
    With concatenation fusion: ``features`` ``[B_r, k, h_r, w_r]``, the mean of the references' V.
    ``count``: how many references; ``cell_counts``: each one's number of cells. ``B_r`` is 1
    (one set for every sketch, broadcast) or the sketches' batch size."""

    count: int
    cell_counts: tuple[int, ...]
    key: torch.Tensor | None = None
    value: torch.Tensor | None = None
    cells: torch.Tensor | None = None
    features: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        t = self.key if self.key is not None else self.features
        return t.shape[0]


def concat_features(parts: Sequence[ReferenceFeatures]) -> ReferenceFeatures:
    """Several :class:`ReferenceFeatures` as one (their cells concatenated in order, as
    :meth:`Colorizer.encode_reference` does for several references at once): e.g. a sequence's
    references encoded once plus the previous frame encoded anew."""
    parts = list(parts)
    if len(parts) == 1:
        return parts[0]
    b = max(p.batch for p in parts)
    assert all(p.batch in (1, b) for p in parts), [p.batch for p in parts]

    def cat(ts: list[torch.Tensor | None], dim: int) -> torch.Tensor | None:
        return None if ts[0] is None else torch.cat([_broadcast(t, b) for t in ts], dim=dim)

    count = sum(p.count for p in parts)
    counts = tuple(c for p in parts for c in p.cell_counts)
    if parts[0].features is not None:  # concatenation fusion: the mean over all references
        feats = sum(_broadcast(p.features, b) * p.count for p in parts) / count
        return ReferenceFeatures(count=count, cell_counts=counts, features=feats)
    return ReferenceFeatures(count=count, cell_counts=counts, key=cat([p.key for p in parts], 1),
                             value=cat([p.value for p in parts], 1), cells=cat([p.cells for p in parts], 1))


def _broadcast(t: torch.Tensor | None, b: int) -> torch.Tensor | None:
    """``t`` ``[1, ...]`` expanded (no copy) to ``[b, ...]``; ``t`` as it is when it already has ``b``."""
    return t if t is None or t.shape[0] == b else t.expand(b, *t.shape[1:])


class Colorizer(nn.Module):
    """G(I_s, I_r): sketch ``[B, 1, H, W]`` + reference ``[B, 3, H', W']`` -> ``ColorizerOutput``.

    The residual blocks, decoder and output activation follow ``cfg``; the image is in [-1, 1].

    H and W must be multiples of ``cfg.feature_stride``; the reference may have another size.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        k = cfg.feature_channels
        self.sketch_encoder = Encoder(1, cfg)
        self.reference_encoder = Encoder(3, cfg)
        if cfg.fusion == "scft":
            self.scft = SCFT(k, cfg.attention_dim, qk_norm=cfg.attention_norm == "qk")
        else:  # the no-attention baseline: same residual form, reference mixed in place
            self.concat = nn.Conv2d(2 * k, k, 1)
        width = cfg.bottleneck_channels or k
        self.bottleneck = nn.Conv2d(k, width, 1) if cfg.bottleneck_channels else nn.Identity()
        self.res_blocks = nn.Sequential(*[ResBlock(width, cfg.norm) for _ in range(cfg.num_res_blocks)])
        # One up-block per downsampling layer, deepest first; its skip is the E_s activation just
        # before that downsampling (the last layer at the finer resolution).
        self.skip_layers = [d - 2 for d in reversed(cfg.downsample_layers)]  # 0-based indices
        ups, cin = [], width
        for idx in self.skip_layers:
            cskip = cfg.encoder_channels[idx]
            ups.append(UpBlock(cin, cskip, cfg.norm))
            cin = cskip
        self.decoder = nn.ModuleList(ups)
        if cfg.color_path:
            self.color_fuse = ConvAct(cin + 3, cin, norm=cfg.norm)
        self.to_rgb = nn.Conv2d(cin, 3, 3, padding=1)

    def activate(self, x: torch.Tensor) -> torch.Tensor:
        """Map the decoder's last layer to [-1, 1] (see ``ModelConfig.output``)."""
        if self.cfg.output == "tanh":
            return torch.tanh(x)
        # clamp forward, identity backward: out-of-range pixels still get pulled back by the losses
        return x + (x.clamp(-1.0, 1.0) - x).detach()

    def encode_reference(self, reference: torch.Tensor | Sequence[torch.Tensor]) -> ReferenceFeatures:
        """E_r and SCFT's key/value projections of one reference ``[B, 3, H', W']`` or several (a
        sequence of such, same B): the work :meth:`forward` does for the reference, done once.
        Several references make one attention over all their cells (keys, values and the color
        path's cell colors concatenated along the cell axis)."""
        refs = [reference] if isinstance(reference, torch.Tensor) else list(reference)
        assert len(refs) > 0, "encode_reference needs at least one reference"
        for r in refs:
            assert r.dim() == 4 and r.shape[1] == 3 and r.shape[0] == refs[0].shape[0], (
                f"references must be [B, 3, H, W] with one B, got {[tuple(x.shape) for x in refs]}")
        levels = [concat_levels(self.reference_encoder(r)) for r in refs]
        counts = tuple(v.shape[-2] * v.shape[-1] for v in levels)
        if self.cfg.fusion != "scft":
            # no attention to run over several references' cells: their features are averaged
            same = all(v.shape == levels[0].shape for v in levels)
            assert same, "with model.fusion=concat the references must have one size"
            feats = levels[0] if len(levels) == 1 else torch.stack(levels).mean(0)
            return ReferenceFeatures(count=len(refs), cell_counts=counts, features=feats)
        kv = [self.scft.project_reference(v) for v in levels]
        cells = [reference_cells(r, tuple(v.shape[-2:])) for r, v in zip(refs, levels)] if self.cfg.color_path else None
        if len(refs) == 1:
            return ReferenceFeatures(count=1, cell_counts=counts, key=kv[0][0], value=kv[0][1],
                                     cells=cells[0] if cells else None)
        return ReferenceFeatures(count=len(refs), cell_counts=counts, key=torch.cat([k for k, _ in kv], dim=1),
                                 value=torch.cat([v for _, v in kv], dim=1),
                                 cells=torch.cat(cells, dim=1) if cells else None)

    def forward(self, sketch: torch.Tensor, reference: torch.Tensor | Sequence[torch.Tensor] | None = None,
                cached: ReferenceFeatures | None = None, attention_bias: torch.Tensor | None = None) -> ColorizerOutput:
        """Colorize ``sketch`` ``[B, 1, H, W]`` in the colors of ``reference`` (``[B, 3, H', W']``,
        or a sequence of several) or of ``cached`` (:meth:`encode_reference`'s result, batch 1 or
        B): exactly one of the two. ``attention_bias`` ``[B or 1, hw, M]`` is added to SCFT's
        logits (correspondence hints, :func:`sketchcolor.inference.fixes.hint_bias`); SCFT models only."""
        s = self.cfg.feature_stride
        assert sketch.dim() == 4 and sketch.shape[1] == 1, f"sketch must be [B, 1, H, W], got {tuple(sketch.shape)}"
        assert sketch.shape[-1] % s == 0 and sketch.shape[-2] % s == 0, f"sketch size must be a multiple of {s}"
        assert (reference is None) != (cached is None), "give a reference or cached reference features, not both"
        if cached is None:
            if isinstance(reference, torch.Tensor):
                assert reference.dim() == 4 and reference.shape[1] == 3, f"reference must be [B, 3, H, W], got {tuple(reference.shape)}"
            cached = self.encode_reference(reference)
        b = sketch.shape[0]
        assert cached.batch in (1, b), f"reference features of batch {cached.batch} for {b} sketches"
        feats_s = self.sketch_encoder(sketch)
        v_s = concat_levels(feats_s)
        assert attention_bias is None or self.cfg.fusion == "scft", "attention_bias needs model.fusion=scft"
        if self.cfg.fusion == "scft":
            scft = self.scft.attend(v_s, _broadcast(cached.key, b), _broadcast(cached.value, b), attention_bias)
            fused, attention, query, key = scft.fused, scft.attention, scft.query, scft.key
        else:
            v_r = _broadcast(cached.features, b)
            if v_r.shape[-2:] != v_s.shape[-2:]:
                v_r = F.adaptive_avg_pool2d(v_r, v_s.shape[-2:])
            fused, attention, query, key = v_s + self.concat(torch.cat([v_s, v_r], dim=1)), None, None, None
        x = self.res_blocks(self.bottleneck(fused))
        for up, idx in zip(self.decoder, self.skip_layers):
            x = up(x, feats_s[idx])
        if not self.cfg.color_path:
            return ColorizerOutput(image=self.activate(self.to_rgb(x)), attention=attention, query=query, key=key)
        warped = move_cells(attention, _broadcast(cached.cells, b), tuple(v_s.shape[-2:]))
        up = F.interpolate(warped, size=sketch.shape[-2:], mode="bilinear", align_corners=False)
        x = self.color_fuse(torch.cat([x, up], dim=1))
        # a residual around the moved colors: the decoder adds lines, paper and sharp edges
        image = self.activate(self.to_rgb(x) + up)
        return ColorizerOutput(image=image, attention=attention, query=query, key=key, warped_colors=warped)
