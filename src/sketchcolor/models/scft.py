"""SCFT: spatially corresponding feature transfer (Eq. 3-5).

    alpha_ij = softmax_j( (W_q v^s_i) . (W_k v^r_j) / sqrt(d) )
    v*_i     = sum_j alpha_ij W_v v^r_j
    c_i      = v^s_i + v*_i

Attention runs over *positions* (tokens are the h*w cells, each a k-vector), computed as one
batched matmul; the attention map, queries and keys are returned for the triplet loss and for
inspection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class SCFTOutput:
    """fused ``[B, k, h, w]``; attention ``[B, hw_s, hw_r]`` (rows sum to 1);
    query ``[B, hw_s, d]``; key ``[B, hw_r, d]``."""

    fused: torch.Tensor
    attention: torch.Tensor
    query: torch.Tensor
    key: torch.Tensor


def to_tokens(v: torch.Tensor) -> torch.Tensor:
    """``[B, k, h, w]`` -> ``[B, h*w, k]`` (row-major positions). The permute matters: a bare
    reshape would turn channel slices into tokens."""
    return v.flatten(2).transpose(1, 2)


# Upper bound of the learned temperature of ``qk_norm`` attention: logits within +-30, a range
# of 60 (a trained paper-style SCFT reaches ranges of ~160, README "The shipped model"); still
# far more than the triplet margin of 12 needs and than a one-hot softmax needs (e^-60).
MAX_TEMPERATURE = 30.0


class SCFT(nn.Module):
    """Attention from sketch features (queries) to reference features (keys, values).

    ``qk_norm`` (not in the paper): queries and keys are L2-normalised and the logits are
    ``t * cos`` with a learned temperature ``t`` (starting at sqrt(d) or half the cap, whichever
    is lower; at most :data:`MAX_TEMPERATURE`, where it stays once it gets there: the cap passes
    no gradient), so they cannot grow with the features, as the attention logits of
    the paper's form do over a long run (the growth that precedes loss spikes in transformers,
    Dehghani et al. 2023, Wortsman et al. 2023). The returned queries and keys carry the scale
    (``q . k / sqrt(d) = t * cos``), so the triplet loss and the attention see the same scores."""

    def __init__(self, channels: int, attention_dim: int | None = None, qk_norm: bool = False) -> None:
        super().__init__()
        d = attention_dim or channels
        self.query = nn.Linear(channels, d)
        self.key = nn.Linear(channels, d)
        self.value = nn.Linear(channels, channels)
        self.scale = 1.0 / math.sqrt(d)
        self.qk_norm = qk_norm
        if qk_norm:
            # the paper's d = 992 would start at 31.5, above the cap, where it could never learn
            start = min(0.5 * math.log(d), math.log(MAX_TEMPERATURE / 2))
            self.log_temperature = nn.Parameter(torch.tensor(start))

    def _normalized(self, x: torch.Tensor) -> torch.Tensor:
        """``qk_norm``: ``[B, N, d]`` -> fp32 unit vectors times sqrt(t * sqrt(d)), so that their scaled
        dot product is t * cos; normalised in fp32 under autocast too (the logits are, see attend)."""
        if not self.qk_norm:
            return x
        t = self.log_temperature.float().clamp(max=math.log(MAX_TEMPERATURE)).exp()
        return nn.functional.normalize(x.float(), dim=-1) * (t / self.scale).sqrt()

    def similarity(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """Scaled dot product S of the attention: ``[B, N, d] x [B, M, d] -> [B, N, M]``. The
        triplet loss (losses/triplet.py) computes the same S, query by query, only for the
        positive and the sampled negative keys instead of the whole matrix."""
        return torch.bmm(query, key.transpose(1, 2)) * self.scale

    def project_reference(self, v_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference's half of the attention, which does not depend on the sketch:
        ``v_r [B, k, h_r, w_r]`` -> keys ``[B, hw_r, d]``, values ``[B, hw_r, k]``. Done once, it
        serves any number of sketches (:meth:`attend`); several references' keys and values
        concatenated along the cell axis make one attention over all their cells."""
        assert v_r.dim() == 4, tuple(v_r.shape)
        tr = to_tokens(v_r)
        return self._normalized(self.key(tr)), self.value(tr)

    def attend(self, v_s: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               bias: torch.Tensor | None = None) -> SCFTOutput:
        """The sketch's half: ``v_s [B, k, h, w]`` attends over ``key [B, M, d]`` / ``value [B, M, k]``.

        ``bias`` (``[B or 1, hw, M]``, optional) raises chosen reference cells for chosen sketch
        cells (a user's correspondence hint, inference/fixes.py). It is in units of each row's
        logit range (max - min): a trained attention is nearly one-hot, its logits tens apart, so
        a fixed amount would do nothing on one row and everything on another; with the range,
        a bias of 1 lifts a cell to at least the row's current best. Zero bias (or None) leaves
        the attention exactly as trained."""
        assert v_s.dim() == 4 and value.shape[-1] == v_s.shape[1] and key.shape[:2] == value.shape[:2], (
            tuple(v_s.shape), tuple(key.shape), tuple(value.shape))
        b, k, h, w = v_s.shape
        ts = to_tokens(v_s)
        q = self._normalized(self.query(ts))
        # Logits and softmax in fp32 even under autocast: a trained attention's logits are over a
        # hundred apart (README, "The shipped model"), where bf16 is only good to about 0.5, which
        # is noise on the softmax. In fp32 this changes nothing (.float() of a float32 tensor is itself).
        with torch.autocast(device_type=q.device.type, enabled=False):
            logits = self.similarity(q.float(), key.float())  # scaled *before* the softmax
            if bias is not None:
                assert bias.shape[-2:] == logits.shape[-2:] and bias.shape[0] in (1, b), (tuple(bias.shape), tuple(logits.shape))
                spread = (logits.amax(-1, keepdim=True) - logits.amin(-1, keepdim=True)).detach()
                logits = logits + bias.to(logits.dtype) * spread
            attn = torch.softmax(logits, dim=-1)
        transferred = torch.bmm(attn.to(value.dtype), value)  # [B, hw_s, k]
        fused = (ts + transferred).transpose(1, 2).reshape(b, k, h, w)
        return SCFTOutput(fused=fused, attention=attn, query=q, key=key)

    def forward(self, v_s: torch.Tensor, v_r: torch.Tensor) -> SCFTOutput:
        assert v_s.dim() == 4 and v_r.dim() == 4 and v_s.shape[1] == v_r.shape[1], (tuple(v_s.shape), tuple(v_r.shape))
        return self.attend(v_s, *self.project_reference(v_r))
