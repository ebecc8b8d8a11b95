"""The recipe the robustness tests train and save: tiny.yaml shrunk further (as tests/training)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.yaml"
# Smaller than tiny (as tests/training): 32 px, 8 x 8 feature grid, each step a few ms.
SMALL_MODEL = ["model.image_size=32", "model.encoder_channels=[4,4,8,8,16,16]", "model.downsample_layers=[3,5]",
               "model.attention_dim=16", "model.bottleneck_channels=16", "model.num_res_blocks=1",
               "model.disc_channels=8"]
SMALL_TRAIN = ["train.batch_size=2", "train.log_every=1", "train.image_every=1000", "train.threads=1",
               "train.keep_checkpoints=0"]
