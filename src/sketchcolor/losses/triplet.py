"""Similarity-based triplet loss (Eq. 6) on SCFT's queries and keys.

    L_tr = max(0, -S(v_q, v_k+) + S(v_q, v_k-) + gamma)

``v_k+`` is the key at the reference position the TPS warp maps the query's sketch position to;
``v_k-`` a key at a randomly sampled *other* position. S is SCFT's scaled dot product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BatchShard:
    """A batch that is rows ``rows`` (long ``[b]``) of a global batch of ``size`` examples whose
    correspondences hold ``valid`` entries >= 0 in all: one process's share under DDP.

    With it the loss draws the negatives of the whole global batch (the same generator state on
    every process gives the draw one process would make) and keeps its rows, and it is scaled so
    that the mean over equal shards, which DDP's gradient averaging takes, is the global batch's
    loss: the valid queries differ in number between shards, so a mean per shard would not be."""

    rows: torch.Tensor
    size: int
    valid: int


def triplet_loss(
    query: torch.Tensor,
    key: torch.Tensor,
    correspondence: torch.Tensor,
    margin: float,
    gen: torch.Generator | None = None,
    num_negatives: int = 1,
    shard: BatchShard | None = None,
) -> torch.Tensor:
    """query ``[B, N, d]``, key ``[B, M, d]``, correspondence ``[B, N]`` long (-1 = no positive).

    Returns the mean hinge over valid queries and ``num_negatives`` negatives each; 0 (with a
    graph) when no query has a positive. With ``shard`` (see :class:`BatchShard`) the share of
    this batch in the global batch's mean, times the number of shards.
    """
    # fp32 similarities under autocast too: the hinge compares scores tens apart (see SCFT.attend)
    query, key = query.float(), key.float()
    b, n, d = query.shape
    m = key.shape[1]
    assert correspondence.shape == (b, n), (tuple(correspondence.shape), (b, n))
    valid = correspondence >= 0
    # a shard without valid queries still draws the global batch's negatives when other shards
    # have some, so that the generator stays in step on every process (its next draws, e.g. the
    # cross term's directions, must agree); its share of the loss is then 0
    if (shard.valid == 0 if shard is not None else not bool(valid.any())) or m < 2:
        return query.sum() * 0.0
    scale = 1.0 / math.sqrt(d)
    pos_idx = correspondence.clamp(min=0)  # [B, N]
    k_pos = torch.gather(key, 1, pos_idx[..., None].expand(b, n, d))
    s_pos = (query * k_pos).sum(-1) * scale  # [B, N]
    # Uniform over the m - 1 positions other than the positive: draw in [0, m-1) and skip it.
    if shard is None:
        neg = torch.randint(0, m - 1, (b, n, num_negatives), generator=gen, device="cpu").to(query.device)
    else:
        neg = torch.randint(0, m - 1, (shard.size, n, num_negatives), generator=gen, device="cpu")[shard.rows.cpu()]
        neg = neg.to(query.device)
    neg = neg + (neg >= pos_idx[..., None]).long()
    k_neg = torch.gather(key, 1, neg.reshape(b, n * num_negatives, 1).expand(b, n * num_negatives, d))
    s_neg = (query.repeat_interleave(num_negatives, dim=1) * k_neg).sum(-1).reshape(b, n, num_negatives) * scale
    hinge = torch.relu(-s_pos[..., None] + s_neg + margin)  # [B, N, K]
    mask = valid[..., None].expand_as(hinge)
    if shard is None:
        return hinge[mask].mean()
    return hinge[mask].sum() * (shard.size / b) / (shard.valid * num_negatives)
