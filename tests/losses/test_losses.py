"""Triplet, Gram/perceptual/style, adversarial losses and the weighted objective (Eq. 6-11)."""

from __future__ import annotations

import math

import pytest
import torch

from sketchcolor.config import LossConfig
from sketchcolor.errors import CheckpointError, MissingWeightsError
from sketchcolor.losses.adversarial import discriminator_loss, generator_loss, r1_penalty
from sketchcolor.losses.objective import discriminator_terms, generator_terms
from sketchcolor.losses.perceptual import gram, perceptual_and_style
from sketchcolor.losses.reconstruction import l1_loss
from sketchcolor.losses.triplet import triplet_loss
from sketchcolor.models import Colorizer, PatchDiscriminator
from sketchcolor.models.vgg import VGG_ENV, VGGFeatures, load_vgg19, resolve_vgg_path


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _S(q: torch.Tensor, k: torch.Tensor) -> float:
    return float((q * k).sum()) / math.sqrt(q.shape[-1])


# ---------------------------------------------------------------- triplet


def _separated(n: int, strength: float):
    """Queries/keys (d = n) where S(q_i, k_i) = strength / sqrt(n) and S(q_i, k_j) = 0 for j != i."""
    query = (torch.eye(n) * strength)[None]  # [1, n, d]
    key = torch.eye(n)[None]
    return query, key


def test_triplet_zero_when_positives_beat_all_negatives():
    n = 16
    query, key = _separated(n, strength=8.0)  # S(pos) = 2, S(neg) = 0
    corr = torch.arange(n)[None]
    # many sampled negatives: if any negative were the positive, its hinge would be the margin
    loss = triplet_loss(query, key, corr, margin=1.0, gen=_gen(0), num_negatives=8)
    assert loss.item() == 0.0


def test_triplet_positive_and_hand_value_when_margin_not_met():
    n = 16
    query, key = _separated(n, strength=8.0)
    corr = torch.arange(n)[None]
    loss = triplet_loss(query, key, corr, margin=12.0, gen=_gen(0), num_negatives=3)
    # every hinge is -2 + 0 + 12 = 10, whatever negatives are drawn
    assert loss.item() == pytest.approx(10.0)


def test_triplet_wrong_correspondence_is_penalised():
    n = 16
    query, key = _separated(n, strength=8.0)  # S(true match) = 2, S(other) = 0
    # positives point at the wrong keys: S(pos) = 0, and some sampled negatives are the true match
    corr = torch.roll(torch.arange(n), 1)[None]
    negs = 8
    loss = triplet_loss(query, key, corr, margin=1.0, gen=_gen(0), num_negatives=negs)
    # each hinge is 1 (a plain negative) or 1 + 2 (the true match drawn as negative)
    hits = (loss.item() - 1.0) / 2.0 * n * negs
    assert hits == pytest.approx(round(hits), abs=1e-3)
    assert 1 <= round(hits) <= n * negs // 3  # drawn about 1/15 of the time


def test_triplet_two_positions_hand_computation():
    g = _gen(1)
    query = torch.randn(2, 3, 4, generator=g)
    key = torch.randn(2, 2, 4, generator=g)
    corr = torch.tensor([[0, 1, 1], [1, 0, 0]])
    margin = 0.7
    for num_neg in (1, 3):
        loss = triplet_loss(query, key, corr, margin, gen=_gen(2), num_negatives=num_neg)
        hinges = []
        for b in range(2):
            for i in range(3):
                pos = int(corr[b, i])
                neg = 1 - pos  # the only other position
                hinges.append(max(0.0, -_S(query[b, i], key[b, pos]) + _S(query[b, i], key[b, neg]) + margin))
        assert loss.item() == pytest.approx(sum(hinges) / len(hinges), abs=1e-6)


def test_triplet_ignores_invalid_entries():
    g = _gen(3)
    query = torch.randn(1, 3, 4, generator=g)
    key = torch.randn(1, 2, 4, generator=g)
    margin = 5.0
    corr = torch.tensor([[1, -1, 0]])
    loss = triplet_loss(query, key, corr, margin, gen=_gen(0))
    hand = [max(0.0, -_S(query[0, i], key[0, p]) + _S(query[0, i], key[0, 1 - p]) + margin) for i, p in ((0, 1), (2, 0))]
    assert loss.item() == pytest.approx(sum(hand) / 2, abs=1e-6)
    # the invalid query does not matter at all
    query2 = query.clone()
    query2[0, 1] = 100.0
    assert triplet_loss(query2, key, corr, margin, gen=_gen(0)).item() == pytest.approx(loss.item(), abs=1e-6)


def test_triplet_all_invalid_is_zero_with_graph():
    query = torch.randn(1, 4, 3, requires_grad=True)
    key = torch.randn(1, 4, 3)
    loss = triplet_loss(query, key, torch.full((1, 4), -1), 1.0)
    assert loss.item() == 0.0
    loss.backward()
    assert query.grad is not None and torch.all(query.grad == 0)


def test_triplet_is_differentiable():
    g = _gen(4)
    query = torch.randn(2, 6, 4, generator=g, requires_grad=True)
    key = torch.randn(2, 6, 4, generator=g, requires_grad=True)
    corr = torch.arange(6).repeat(2, 1)
    loss = triplet_loss(query, key, corr, margin=12.0, gen=_gen(0))
    assert loss.item() > 0
    loss.backward()
    assert query.grad is not None and query.grad.abs().sum() > 0
    assert key.grad is not None and key.grad.abs().sum() > 0


def test_triplet_scores_in_fp32_for_bf16_inputs():
    # bf16 queries/keys (autocast) are scored in fp32: the same value as their fp32 copies give
    g = torch.Generator().manual_seed(0)
    q = (torch.randn(2, 6, 8, generator=g) * 20).bfloat16()
    k = (torch.randn(2, 5, 8, generator=g) * 20).bfloat16()
    corr = torch.tensor([[0, 1, 2, 3, 4, -1], [4, 3, 2, 1, 0, 0]])
    low = triplet_loss(q, k, corr, 12.0, torch.Generator().manual_seed(1))
    full = triplet_loss(q.float(), k.float(), corr, 12.0, torch.Generator().manual_seed(1))
    assert low.dtype == torch.float32 and torch.equal(low, full)


def test_triplet_is_seeded():
    g = _gen(5)
    query = torch.randn(1, 10, 4, generator=g)
    key = torch.randn(1, 10, 4, generator=g)
    corr = torch.arange(10)[None]
    a = triplet_loss(query, key, corr, 1.0, gen=_gen(9))
    b = triplet_loss(query, key, corr, 1.0, gen=_gen(9))
    assert torch.equal(a, b)


# ---------------------------------------------------------------- gram / perceptual / style


def test_gram_hand_computed():
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # [1, 2, 1, 2]
    g = gram(f)
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4.0  # / (C*H*W) = 4
    assert g.shape == (1, 2, 2)
    assert torch.allclose(g, expected)


@pytest.fixture
def seeded_small_vgg_for_tests() -> VGGFeatures:
    torch.manual_seed(0)
    return VGGFeatures(layers=("relu1_1", "relu2_1"), plan=(4, "M", 8, "M"))


def test_small_vgg_outputs(seeded_small_vgg_for_tests):
    vgg = seeded_small_vgg_for_tests
    feats = vgg(torch.zeros(1, 3, 16, 16))
    assert set(feats) == {"relu1_1", "relu2_1"}
    assert feats["relu1_1"].shape == (1, 4, 16, 16)
    assert feats["relu2_1"].shape == (1, 8, 8, 8)
    assert not vgg.training
    vgg.train()
    assert not vgg.training  # always eval


def test_perceptual_and_style_zero_for_identical(seeded_small_vgg_for_tests):
    img = torch.rand(2, 3, 16, 16, generator=_gen(0)) * 2 - 1
    perc, style = perceptual_and_style(seeded_small_vgg_for_tests, img, img.clone())
    assert perc.item() == 0.0 and style.item() == 0.0


def test_perceptual_and_style_positive_and_vgg_frozen(seeded_small_vgg_for_tests):
    vgg = seeded_small_vgg_for_tests
    target = torch.rand(2, 3, 16, 16, generator=_gen(0)) * 2 - 1
    output = (torch.rand(2, 3, 16, 16, generator=_gen(1)) * 2 - 1).requires_grad_(True)
    perc, style = perceptual_and_style(vgg, output, target)
    assert perc.item() > 0 and style.item() > 0
    (perc + style).backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    for name, p in vgg.named_parameters():
        assert not p.requires_grad, name
        assert p.grad is None, name
    # hand check of the perceptual term
    with torch.no_grad():
        fo, ft = vgg(output), vgg(target)
    hand = sum((fo[n] - ft[n]).abs().mean() for n in vgg.layers)
    assert perc.item() == pytest.approx(float(hand), rel=1e-5)
    hand_style = sum((gram(fo[n]) - gram(ft[n])).abs().mean() for n in vgg.layers)
    assert style.item() == pytest.approx(float(hand_style), rel=1e-5)


def test_perceptual_without_style(seeded_small_vgg_for_tests):
    a = torch.zeros(1, 3, 16, 16)
    b = torch.ones(1, 3, 16, 16) * 0.5
    perc, style = perceptual_and_style(seeded_small_vgg_for_tests, a, b, want_style=False)
    assert perc.item() > 0 and style.item() == 0.0


def test_vgg_unknown_layer():
    with pytest.raises(ValueError):
        VGGFeatures(layers=("relu3_1",), plan=(4, "M", 8, "M"))


def test_load_vgg19_missing(tmp_path, monkeypatch):
    monkeypatch.delenv(VGG_ENV, raising=False)
    assert resolve_vgg_path(None) is None
    with pytest.raises(MissingWeightsError, match="SKETCHCOLOR_VGG19"):
        load_vgg19(("relu1_1",), resolve_vgg_path(None))
    missing = tmp_path / "vgg19-missing.pth"
    with pytest.raises(MissingWeightsError, match="vgg19-missing.pth"):
        load_vgg19(("relu1_1",), missing)
    monkeypatch.setenv(VGG_ENV, str(missing))
    assert resolve_vgg_path(None) == missing
    assert resolve_vgg_path(str(tmp_path / "configured.pth")) == tmp_path / "configured.pth"


def test_load_vgg19_file_without_keys(tmp_path):
    p = tmp_path / "not_vgg.pth"
    torch.save({"foo": torch.zeros(1)}, p)
    with pytest.raises(CheckpointError, match="not_vgg.pth"):
        load_vgg19(("relu1_1",), p)


def test_load_vgg19_unreadable_and_wrong_shapes(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"definitely not a torch file")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_vgg19(("relu1_1",), junk)
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 5, 5), "features.0.bias": torch.zeros(64)}, wrong)
    with pytest.raises(CheckpointError, match="wrong.pth"):
        load_vgg19(("relu1_1",), wrong)


def test_load_vgg19_good_file(tmp_path):
    w = torch.randn(64, 3, 3, 3, generator=_gen(0))
    p = tmp_path / "vgg_first_layer.pth"
    torch.save({"features.0.weight": w, "features.0.bias": torch.zeros(64), "classifier.0.weight": torch.zeros(1)}, p)
    vgg = load_vgg19(("relu1_1",), p)
    assert torch.equal(vgg.features[0].weight, w)
    assert not any(q.requires_grad for q in vgg.parameters())


# ---------------------------------------------------------------- adversarial


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_adversarial_vanilla_hand_values():
    real = torch.full((2, 1, 3, 3), 2.0)
    fake = torch.full((2, 1, 3, 3), -1.0)
    # -log sigmoid(r) - log(1 - sigmoid(f)) = softplus(-r) + softplus(f)
    assert discriminator_loss(real, fake, "vanilla").item() == pytest.approx(_softplus(-2.0) + _softplus(-1.0), rel=1e-6)
    assert generator_loss(fake, "vanilla").item() == pytest.approx(_softplus(1.0), rel=1e-6)
    zeros = torch.zeros(1, 1, 2, 2)
    assert discriminator_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2), rel=1e-6)  # default vanilla


def test_adversarial_lsgan_hand_values():
    real = torch.full((2, 1, 3, 3), 2.0)
    fake = torch.full((2, 1, 3, 3), -1.0)
    assert discriminator_loss(real, fake, "lsgan").item() == pytest.approx((2 - 1) ** 2 + (-1) ** 2)
    assert generator_loss(fake, "lsgan").item() == pytest.approx((-1 - 1) ** 2)
    assert generator_loss(torch.ones(1, 1, 2, 2), "lsgan").item() == 0.0


def test_adversarial_unknown_mode():
    with pytest.raises(ValueError):
        generator_loss(torch.zeros(1), "hinge")


# ---------------------------------------------------------------- objective


@pytest.fixture
def tiny_batch(tiny_model_cfg):
    torch.manual_seed(0)
    g = Colorizer(tiny_model_cfg)
    d = PatchDiscriminator(tiny_model_cfg).eval()
    sketch = torch.rand(2, 1, 32, 32, generator=_gen(1)) * 2 - 1
    ref = torch.rand(2, 3, 32, 32, generator=_gen(2)) * 2 - 1
    target = torch.rand(2, 3, 32, 32, generator=_gen(3)) * 2 - 1
    corr = torch.arange(64).repeat(2, 1)
    corr[0, :5] = -1
    out = g(sketch, ref)
    return g, d, out, sketch, target, corr


def test_generator_terms_weighted_total(tiny_batch):
    g, d, out, sketch, target, corr = tiny_batch
    cfg = LossConfig(lambda_perc=0.0, lambda_style=0.0)
    terms = generator_terms(out, sketch, target, corr, d, cfg, vgg=None, gen=_gen(7))
    assert set(terms) == {"rec", "tr", "adv", "total"}
    assert terms["rec"].item() == pytest.approx(l1_loss(out.image, target).item())
    tr = triplet_loss(out.query, out.key, corr, cfg.triplet_margin, _gen(7), cfg.triplet_negatives)
    assert terms["tr"].item() == pytest.approx(tr.item())
    with torch.no_grad():
        adv = generator_loss(d(out.image, sketch), cfg.gan_mode)
    assert terms["adv"].item() == pytest.approx(adv.item(), rel=1e-5)
    expected = cfg.lambda_rec * terms["rec"] + cfg.lambda_tr * terms["tr"] + cfg.lambda_adv * terms["adv"]
    assert (cfg.lambda_rec, cfg.lambda_tr, cfg.lambda_adv) == (30.0, 1.0, 1.0)
    assert terms["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["total"].item() == pytest.approx(
        (30 * terms["rec"] + terms["tr"] + terms["adv"]).item(), rel=1e-6)
    terms["total"].backward()
    assert all(p.grad is not None for p in g.reference_encoder.parameters())


def test_generator_terms_follow_config_weights(tiny_batch):
    g, d, out, sketch, target, corr = tiny_batch
    cfg = LossConfig(lambda_rec=2.0, lambda_tr=0.0, lambda_adv=0.5, lambda_perc=0.0, lambda_style=0.0,
                     gan_mode="lsgan")
    with torch.no_grad():
        terms = generator_terms(out, sketch, target, corr, d, cfg, vgg=None)
        assert set(terms) == {"rec", "adv", "total"}
        assert terms["adv"].item() == pytest.approx(generator_loss(d(out.image, sketch), "lsgan").item(), rel=1e-5)
    assert terms["total"].item() == pytest.approx(2.0 * terms["rec"].item() + 0.5 * terms["adv"].item(), rel=1e-6)


def test_generator_terms_need_vgg_when_weighted(tiny_batch):
    g, d, out, sketch, target, corr = tiny_batch
    with pytest.raises(ValueError):
        generator_terms(out, sketch, target, corr, d, LossConfig(), vgg=None)


def test_generator_terms_with_small_vgg(tiny_batch, seeded_small_vgg_for_tests):
    g, d, out, sketch, target, corr = tiny_batch
    cfg = LossConfig(lambda_rec=0.0, lambda_tr=0.0, lambda_adv=0.0, lambda_perc=0.01, lambda_style=50.0)
    with torch.no_grad():
        terms = generator_terms(out, sketch, target, corr, d, cfg, vgg=seeded_small_vgg_for_tests)
    assert set(terms) == {"perc", "style", "total"}
    assert terms["perc"].item() > 0 and terms["style"].item() > 0
    assert terms["total"].item() == pytest.approx(0.01 * terms["perc"].item() + 50.0 * terms["style"].item(), rel=1e-5)


def test_discriminator_terms(tiny_batch):
    g, d, out, sketch, target, corr = tiny_batch
    cfg = LossConfig()
    terms = discriminator_terms(target, out.image, sketch, d, cfg)
    with torch.no_grad():
        hand = discriminator_loss(d(target, sketch), d(out.image, sketch), "vanilla")
    assert terms["d"].item() == pytest.approx(hand.item(), rel=1e-5)
    terms["d"].backward()
    # the fake is detached: G gets no gradient from D's loss
    assert all(p.grad is None for p in g.parameters())


def test_r1_penalty_of_a_linear_discriminator_is_its_squared_weight_over_the_area():
    # D(x) = sum_c w_c x_c per pixel: the score (mean over the h*w patches) has the gradient w_c / (h*w)
    # at every pixel, so ||grad||^2 = h*w * |w|^2 / (h*w)^2 = |w|^2 / (h*w), whatever x is.
    w = torch.tensor([0.5, -2.0, 1.5], requires_grad=True)
    real = (torch.rand(3, 3, 8, 6, generator=_gen(4)) * 2 - 1).requires_grad_(True)
    logits = (real * w.view(1, 3, 1, 1)).sum(1, keepdim=True)
    penalty = r1_penalty(logits, real)
    assert penalty.item() == pytest.approx(float(w.detach().square().sum()) / 48, rel=1e-6)
    (grad,) = torch.autograd.grad(penalty, w)  # it keeps its graph: the penalty trains D
    assert torch.allclose(grad, 2 * w.detach() / 48)


def test_discriminator_terms_add_the_weighted_r1_penalty_and_it_trains_d(tiny_batch):
    g, d, out, sketch, target, corr = tiny_batch
    plain = discriminator_terms(target, out.image, sketch, d, LossConfig())
    terms = discriminator_terms(target, out.image, sketch, d, LossConfig(r1_gamma=4.0))
    assert set(plain) == {"d"} and set(terms) == {"d", "r1"}
    assert terms["r1"].item() > 0
    assert terms["d"].item() == pytest.approx(plain["d"].item() + 2.0 * terms["r1"].item(), rel=1e-5)
    (grad,) = torch.autograd.grad(terms["r1"], d.layers[0].parametrizations.weight.original)
    assert grad.abs().sum() > 0  # the penalty reaches D's weights (double backward through spectral norm)
    assert target.grad is None and not target.requires_grad  # the caller's tensor is left alone


def test_the_training_steps_d_pair_gives_the_same_r1_terms_as_the_objective(tiny_batch):
    # training/step.py takes the penalty inside DiscriminatorPair's one forward (for DDP); it must
    # equal losses/objective.py's, D in training mode (spectral norm's power iteration running)
    from sketchcolor.training.step import DiscriminatorPair, discriminator_terms as pair_terms

    g, d, out, sketch, target, corr = tiny_batch
    d.train()
    cfg = LossConfig(r1_gamma=3.0)
    state = {k: v.clone() for k, v in d.state_dict().items()}
    ours = pair_terms(target, out.image, sketch, DiscriminatorPair(d), cfg)
    d.load_state_dict(state)  # the same power-iteration vectors for the second call
    theirs = discriminator_terms(target, out.image, sketch, d, cfg)
    assert set(ours) == set(theirs) == {"d", "r1"}
    for k in ours:
        assert ours[k].item() == pytest.approx(theirs[k].item(), rel=1e-5)
