"""The colorizer G: E_s + E_r -> SCFT -> residual blocks -> U-Net decoder with skips from E_s."""

from __future__ import annotations

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


def warp_colors(attention: torch.Tensor, reference: torch.Tensor, grid_s: tuple[int, int],
                grid_r: tuple[int, int]) -> torch.Tensor:
    """Move the reference's colors with the attention: reference ``[B, 3, H', W']`` average-pooled
    to ``grid_r`` cells, then ``[B, hw_s, hw_r] x [B, hw_r, 3]`` -> ``[B, 3, *grid_s]``."""
    cells = F.adaptive_avg_pool2d(reference, grid_r).flatten(2).transpose(1, 2)  # [B, hw_r, 3]
    moved = torch.bmm(attention, cells)  # [B, hw_s, 3]
    return moved.transpose(1, 2).reshape(reference.shape[0], 3, *grid_s)


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
            self.scft = SCFT(k, cfg.attention_dim)
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

    def forward(self, sketch: torch.Tensor, reference: torch.Tensor) -> ColorizerOutput:
        s = self.cfg.feature_stride
        assert sketch.dim() == 4 and sketch.shape[1] == 1, f"sketch must be [B, 1, H, W], got {tuple(sketch.shape)}"
        assert reference.dim() == 4 and reference.shape[1] == 3, f"reference must be [B, 3, H, W], got {tuple(reference.shape)}"
        assert sketch.shape[-1] % s == 0 and sketch.shape[-2] % s == 0, f"sketch size must be a multiple of {s}"
        feats_s = self.sketch_encoder(sketch)
        feats_r = self.reference_encoder(reference)
        v_s, v_r = concat_levels(feats_s), concat_levels(feats_r)
        if self.cfg.fusion == "scft":
            scft = self.scft(v_s, v_r)
            fused, attention, query, key = scft.fused, scft.attention, scft.query, scft.key
        else:
            if v_r.shape[-2:] != v_s.shape[-2:]:
                v_r = F.adaptive_avg_pool2d(v_r, v_s.shape[-2:])
            fused, attention, query, key = v_s + self.concat(torch.cat([v_s, v_r], dim=1)), None, None, None
        x = self.res_blocks(self.bottleneck(fused))
        for up, idx in zip(self.decoder, self.skip_layers):
            x = up(x, feats_s[idx])
        if not self.cfg.color_path:
            return ColorizerOutput(image=self.activate(self.to_rgb(x)), attention=attention, query=query, key=key)
        warped = warp_colors(attention, reference, tuple(v_s.shape[-2:]), tuple(v_r.shape[-2:]))
        up = F.interpolate(warped, size=sketch.shape[-2:], mode="bilinear", align_corners=False)
        x = self.color_fuse(torch.cat([x, up], dim=1))
        # a residual around the moved colors: the decoder adds lines, paper and sharp edges
        image = self.activate(self.to_rgb(x) + up)
        return ColorizerOutput(image=image, attention=attention, query=query, key=key, warped_colors=warped)
