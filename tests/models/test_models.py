"""Shapes and behaviour of the encoders, SCFT, the colorizer G and the discriminator D."""

from __future__ import annotations

import math

import pytest
import torch

from sketchcolor.models import Colorizer, PatchDiscriminator
from sketchcolor.models.encoders import Encoder, concat_levels
from sketchcolor.losses.triplet import triplet_loss
from sketchcolor.models.scft import MAX_TEMPERATURE, SCFT, to_tokens


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---------------------------------------------------------------- encoders


@pytest.mark.parametrize("size", [32, 64])
def test_encoder_levels_and_concat(tiny_model_cfg, size):
    torch.manual_seed(0)
    enc = Encoder(3, tiny_model_cfg)
    feats = enc(_rand(2, 3, size, size))
    assert len(feats) == len(tiny_model_cfg.encoder_channels)
    # strides at layers 3 and 5 (1-based)
    expected_sides = [size, size, size // 2, size // 2, size // 4, size // 4]
    for f, c, s in zip(feats, tiny_model_cfg.encoder_channels, expected_sides):
        assert f.shape == (2, c, s, s)
    v = concat_levels(feats)
    h = size // tiny_model_cfg.feature_stride
    assert v.shape == (2, tiny_model_cfg.feature_channels, h, h)
    # first block of V is layer 1 average-pooled to the last level; last block is the last level
    assert torch.allclose(v[:, :4], torch.nn.functional.avg_pool2d(feats[0], 4), atol=1e-6)
    assert torch.equal(v[:, -16:], feats[-1])


def test_encoder_rejects_wrong_channels(tiny_model_cfg):
    with pytest.raises(AssertionError):
        Encoder(1, tiny_model_cfg)(torch.zeros(1, 3, 32, 32))


# ---------------------------------------------------------------- SCFT


@pytest.fixture
def scft_and_inputs():
    torch.manual_seed(0)
    k, d = 12, 6
    scft = SCFT(k, d)
    v_s = _rand(2, k, 3, 4, seed=1)
    v_r = _rand(2, k, 5, 2, seed=2)  # another grid size than the sketch
    return scft, v_s, v_r


def test_to_tokens_is_position_major():
    v = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    t = to_tokens(v)
    assert t.shape == (2, 4, 3)
    # token (y, x) holds the channel vector at that position
    assert torch.equal(t[1, 1 * 2 + 0], v[1, :, 1, 0])
    assert torch.equal(t[0, 3], v[0, :, 1, 1])


def test_scft_shapes_and_attention_rows(scft_and_inputs):
    scft, v_s, v_r = scft_and_inputs
    out = scft(v_s, v_r)
    assert out.fused.shape == v_s.shape
    assert out.attention.shape == (2, 12, 10)
    assert out.query.shape == (2, 12, 6)
    assert out.key.shape == (2, 10, 6)
    assert torch.all(out.attention >= 0)
    assert torch.allclose(out.attention.sum(-1), torch.ones(2, 12), atol=1e-6)


def test_scft_matches_manual_computation(scft_and_inputs):
    scft, v_s, v_r = scft_and_inputs
    out = scft(v_s, v_r)
    b, k, h, w = v_s.shape
    ts = v_s.permute(0, 2, 3, 1).reshape(b, h * w, k)
    tr = v_r.permute(0, 2, 3, 1).reshape(b, -1, k)
    q = ts @ scft.query.weight.T + scft.query.bias
    key = tr @ scft.key.weight.T + scft.key.bias
    val = tr @ scft.value.weight.T + scft.value.bias
    d = q.shape[-1]
    attn = torch.softmax(q @ key.transpose(1, 2) / math.sqrt(d), dim=-1)
    assert torch.allclose(out.query, q, atol=1e-5)
    assert torch.allclose(out.key, key, atol=1e-5)
    assert torch.allclose(out.attention, attn, atol=1e-5)
    # not the unscaled softmax
    assert not torch.allclose(out.attention, torch.softmax(q @ key.transpose(1, 2), dim=-1), atol=1e-3)
    fused = (ts + attn @ val).reshape(b, h, w, k).permute(0, 3, 1, 2)
    assert torch.allclose(out.fused, fused, atol=1e-5)
    # similarity() is the scaled score used by the triplet loss
    assert torch.allclose(scft.similarity(q, key), q @ key.transpose(1, 2) / math.sqrt(d), atol=1e-5)


def test_scft_logits_stay_fp32_under_bf16_autocast(scft_and_inputs):
    # trained logits are ~100 apart, where bf16 is good to ~0.5: SCFT takes them and the softmax
    # in fp32 from the (bf16) queries and keys, so the attention rows are exact fp32 softmaxes
    scft, v_s, v_r = scft_and_inputs
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = scft(v_s * 12, v_r * 12)  # large features: logits tens apart
    assert out.query.dtype == torch.bfloat16 and out.attention.dtype == torch.float32
    exact = torch.softmax(out.query.float() @ out.key.float().transpose(1, 2) / math.sqrt(out.query.shape[-1]), -1)
    assert torch.allclose(out.attention, exact, atol=1e-6)
    low = torch.softmax((out.query @ out.key.transpose(1, 2) / math.sqrt(out.query.shape[-1])).float(), -1)
    assert not torch.allclose(out.attention, low, atol=1e-3)  # what a bf16 bmm would have given


def test_qk_norm_scft_logits_are_temperature_times_cosine():
    # qk_norm: however large the features, a logit is t * cos(q, k) with t = sqrt(d) at the start,
    # and the returned queries/keys give the same score through similarity() (the triplet loss's S)
    torch.manual_seed(0)
    scft = SCFT(12, 6, qk_norm=True)
    v_s, v_r = _rand(2, 12, 3, 4, seed=1) * 1000, _rand(2, 12, 5, 2, seed=2) * 1000
    out = scft(v_s, v_r)
    q_raw = to_tokens(v_s) @ scft.query.weight.T + scft.query.bias
    k_raw = to_tokens(v_r) @ scft.key.weight.T + scft.key.bias
    cos = torch.nn.functional.normalize(q_raw, dim=-1) @ torch.nn.functional.normalize(k_raw, dim=-1).transpose(1, 2)
    logits = scft.similarity(out.query, out.key)
    assert torch.allclose(logits, math.sqrt(6) * cos, atol=1e-4)
    assert torch.allclose(out.attention, torch.softmax(logits, -1), atol=1e-6)
    # the triplet loss scores the returned queries/keys the same way: its hinge uses t * cos
    corr = torch.zeros(2, 12, dtype=torch.long)  # every sketch cell's positive is reference cell 0
    neg = torch.randint(0, 9, (2, 12, 1), generator=torch.Generator().manual_seed(3)) + 1
    want = torch.relu(-logits[..., :1] + torch.gather(logits, 2, neg) + 12.0).mean()
    got = triplet_loss(out.query, out.key, corr, 12.0, torch.Generator().manual_seed(3))
    assert torch.allclose(got, want, atol=1e-5)
    # under bf16 autocast the normalisation and the logits stay fp32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = scft(v_s, v_r)
    assert low.query.dtype == torch.float32 and torch.allclose(low.attention, out.attention, atol=2e-2)
    # the temperature is learned but capped: logits stay within +-MAX_TEMPERATURE
    with torch.no_grad():
        scft.log_temperature.fill_(10.0)  # e^10: far above the cap
    capped = scft(v_s, v_r)
    assert scft.similarity(capped.query, capped.key).abs().max() <= MAX_TEMPERATURE + 1e-3
    with torch.no_grad():
        scft.log_temperature.fill_(1.0)  # below the cap the temperature gets a gradient
    scft(v_s, v_r).fused.square().mean().backward()
    assert scft.log_temperature.grad is not None and scft.log_temperature.grad.abs() > 0


def test_paper_scft_has_no_temperature(scft_and_inputs):
    scft, _, _ = scft_and_inputs
    assert not scft.qk_norm and "log_temperature" not in dict(scft.named_parameters())


def test_scft_attends_over_reference_positions(scft_and_inputs):
    scft, v_s, v_r = scft_and_inputs
    b, k, hr, wr = v_r.shape
    perm = torch.randperm(hr * wr, generator=torch.Generator().manual_seed(5))
    v_r_perm = v_r.flatten(2)[:, :, perm].reshape(b, k, hr, wr)
    out = scft(v_s, v_r)
    out_p = scft(v_s, v_r_perm)
    assert torch.allclose(out_p.attention, out.attention[:, :, perm], atol=1e-6)
    assert torch.allclose(out_p.key, out.key[:, perm], atol=1e-6)
    assert torch.allclose(out_p.fused, out.fused, atol=1e-5)


def test_scft_sketch_positions_are_independent(scft_and_inputs):
    # Permuting the sketch positions permutes the outputs the same way (per-position queries).
    scft, v_s, v_r = scft_and_inputs
    b, k, h, w = v_s.shape
    perm = torch.randperm(h * w, generator=torch.Generator().manual_seed(6))
    v_s_perm = v_s.flatten(2)[:, :, perm].reshape(b, k, h, w)
    out = scft(v_s, v_r)
    out_p = scft(v_s_perm, v_r)
    assert torch.allclose(out_p.attention, out.attention[:, perm], atol=1e-6)
    assert torch.allclose(out_p.fused.flatten(2), out.fused.flatten(2)[:, :, perm], atol=1e-5)


def test_scft_batch_items_are_independent(scft_and_inputs):
    scft, v_s, v_r = scft_and_inputs
    out = scft(v_s, v_r)
    one = scft(v_s[1:], v_r[1:])
    assert torch.allclose(one.fused[0], out.fused[1], atol=1e-5)
    assert torch.allclose(one.attention[0], out.attention[1], atol=1e-6)


# ---------------------------------------------------------------- Colorizer


@pytest.mark.parametrize("size,ref_size", [(32, 32), (64, 64), (32, 48)])
def test_colorizer_shapes(tiny_model_cfg, size, ref_size):
    torch.manual_seed(0)
    g = Colorizer(tiny_model_cfg)
    out = g(_rand(2, 1, size, size, seed=1), _rand(2, 3, ref_size, ref_size, seed=2))
    hw = (size // 4) ** 2
    hw_r = (ref_size // 4) ** 2
    assert out.image.shape == (2, 3, size, size)
    assert out.image.min() >= -1 and out.image.max() <= 1
    assert out.attention.shape == (2, hw, hw_r)
    assert out.query.shape == (2, hw, tiny_model_cfg.attention_dim)
    assert out.key.shape == (2, hw_r, tiny_model_cfg.attention_dim)
    assert torch.allclose(out.attention.sum(-1), torch.ones(2, hw), atol=1e-5)


def test_colorizer_non_square(tiny_model_cfg):
    torch.manual_seed(0)
    out = Colorizer(tiny_model_cfg)(_rand(1, 1, 32, 48), _rand(1, 3, 32, 32))
    assert out.image.shape == (1, 3, 32, 48)
    assert out.attention.shape == (1, 8 * 12, 64)


def test_colorizer_rejects_bad_sizes(tiny_model_cfg):
    torch.manual_seed(0)
    g = Colorizer(tiny_model_cfg)
    with pytest.raises(AssertionError):
        g(torch.zeros(1, 1, 30, 32), torch.zeros(1, 3, 32, 32))
    with pytest.raises(AssertionError):
        g(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32))


def test_colorizer_reference_changes_output(tiny_model_cfg):
    torch.manual_seed(0)
    g = Colorizer(tiny_model_cfg).eval()
    sketch = _rand(1, 1, 32, 32, seed=1)
    with torch.no_grad():
        a = g(sketch, _rand(1, 3, 32, 32, seed=2)).image
        b = g(sketch, _rand(1, 3, 32, 32, seed=3)).image
        c = g(sketch, _rand(1, 3, 32, 32, seed=2)).image
    assert torch.equal(a, c)
    assert (a - b).abs().max() > 1e-6


def test_colorizer_same_seed_same_weights_and_output(tiny_model_cfg):
    torch.manual_seed(123)
    g1 = Colorizer(tiny_model_cfg)
    torch.manual_seed(123)
    g2 = Colorizer(tiny_model_cfg)
    torch.manual_seed(124)
    g3 = Colorizer(tiny_model_cfg)
    s1, s2, s3 = g1.state_dict(), g2.state_dict(), g3.state_dict()
    assert s1.keys() == s2.keys()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)
    sketch, ref = _rand(1, 1, 32, 32, seed=1), _rand(1, 3, 32, 32, seed=2)
    with torch.no_grad():
        assert torch.equal(g1(sketch, ref).image, g2(sketch, ref).image)


def test_reference_encoder_gets_gradients(tiny_model_cfg):
    torch.manual_seed(0)
    g = Colorizer(tiny_model_cfg)
    out = g(_rand(2, 1, 32, 32, seed=1), _rand(2, 3, 32, 32, seed=2))
    out.image.mean().backward()
    for part in ("reference_encoder", "scft", "sketch_encoder"):
        for name, p in getattr(g, part).named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{part}.{name}"


def test_colorizer_without_bottleneck(tiny_model_cfg):
    from dataclasses import replace

    cfg = replace(tiny_model_cfg, bottleneck_channels=None, attention_dim=None)
    torch.manual_seed(0)
    g = Colorizer(cfg)
    out = g(_rand(1, 1, 32, 32), _rand(1, 3, 32, 32))
    assert out.image.shape == (1, 3, 32, 32)
    assert out.query.shape == (1, 64, cfg.feature_channels)


# ---------------------------------------------------------------- discriminator


@pytest.mark.parametrize("size", [32, 64])
def test_discriminator_shapes(tiny_model_cfg, size):
    torch.manual_seed(0)
    d = PatchDiscriminator(tiny_model_cfg)
    logits = d(_rand(2, 3, size, size), _rand(2, 1, size, size))
    # two stride-2 4x4 convs, then two stride-1 4x4 convs with padding 1 (-1 each)
    assert logits.shape == (2, 1, size // 4 - 2, size // 4 - 2)
    assert torch.isfinite(logits).all()


def test_discriminator_uses_the_sketch(tiny_model_cfg):
    torch.manual_seed(0)
    d = PatchDiscriminator(tiny_model_cfg).eval()  # eval: no power-iteration update between calls
    img = _rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(d(img, _rand(1, 1, 32, 32, seed=1)), d(img, _rand(1, 1, 32, 32, seed=1)))
    with torch.no_grad():
        a = d(img, _rand(1, 1, 32, 32, seed=1))
        b = d(img, _rand(1, 1, 32, 32, seed=2))
    assert not torch.allclose(a, b)


def test_discriminator_rejects_mismatch(tiny_model_cfg):
    d = PatchDiscriminator(tiny_model_cfg)
    with pytest.raises(AssertionError):
        d(torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 16, 16))


def test_concat_fusion_baseline_has_no_attention_but_uses_the_reference(tiny_model_cfg):
    import dataclasses

    from sketchcolor.config import LossConfig
    from sketchcolor.losses.objective import generator_terms
    from sketchcolor.models import Colorizer, PatchDiscriminator

    cfg = dataclasses.replace(tiny_model_cfg, fusion="concat")
    torch.manual_seed(0)
    g = Colorizer(cfg)
    s = torch.rand(2, 1, 32, 32) * 2 - 1
    out1, out2 = g(s, torch.rand(2, 3, 32, 32) * 2 - 1), g(s, torch.rand(2, 3, 32, 32) * 2 - 1)
    assert out1.image.shape == (2, 3, 32, 32) and out1.attention is None
    assert not torch.allclose(out1.image, out2.image)
    terms = generator_terms(out1, s, torch.zeros(2, 3, 32, 32), torch.zeros(2, 16, dtype=torch.long),
                            PatchDiscriminator(cfg), LossConfig(lambda_perc=0, lambda_style=0), None)
    assert "tr" not in terms and torch.isfinite(terms["total"])


def test_color_path_moves_reference_colors_with_the_attention(tiny_model_cfg):
    from dataclasses import replace

    from sketchcolor.models.generator import warp_colors

    cfg = replace(tiny_model_cfg, color_path=True)
    torch.manual_seed(0)
    g = Colorizer(cfg).eval()
    s, r = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 3, 48, 48) * 2 - 1
    with torch.no_grad():
        out = g(s, r)
    assert out.warped_colors.shape == (2, 3, 8, 8)
    # exactly the attention applied to the reference's cell colors (reference grid 12 x 12)
    cells = torch.nn.functional.adaptive_avg_pool2d(r, (12, 12)).flatten(2).transpose(1, 2)
    manual = torch.bmm(out.attention, cells).transpose(1, 2).reshape(2, 3, 8, 8)
    assert torch.allclose(out.warped_colors, manual, atol=1e-6)
    assert torch.allclose(warp_colors(out.attention, r, (8, 8), (12, 12)), manual, atol=1e-6)
    # an attention that picks one cell moves exactly that cell's color
    one_hot = torch.zeros(1, 64, 144)
    one_hot[:, :, 5] = 1.0
    assert torch.allclose(warp_colors(one_hot, r[:1], (8, 8), (12, 12)), cells[:1, 5].reshape(1, 3, 1, 1).expand(1, 3, 8, 8))


def test_color_path_needs_scft(tiny_model_cfg):
    from dataclasses import replace

    from sketchcolor.errors import ConfigError

    with pytest.raises(ConfigError):
        replace(tiny_model_cfg, color_path=True, fusion="concat").validate()


def test_without_color_path_no_warped_colors(tiny_model_cfg):
    g = Colorizer(tiny_model_cfg).eval()
    with torch.no_grad():
        assert g(torch.zeros(1, 1, 32, 32), torch.zeros(1, 3, 32, 32)).warped_colors is None
