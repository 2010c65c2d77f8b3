"""The conditional critic's auxiliary classifier (config ac_weight, ac_weight_g; AC-GAN on top of the
projection critic): the models' class head, the losses the steps add, training and refusals."""
import json
import os
from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F

from wgan_fast import config, models, train
from wgan_fast import step as step_mod

from helpers import TinyImages, tiny_cfg

KINDS = [("mlp", 28), ("dcgan", 28), ("dcgan", 32), ("resnet", 32)]


@pytest.mark.parametrize("kind,res", KINDS)
def test_class_head_gives_logits_beside_the_same_score(kind, res):
    torch.manual_seed(0)
    _, D = models.build(kind, resolution=res, channels=1, z_dim=8, num_classes=5, g_base=8, d_base=8,
                        class_head=True)
    x, y = torch.randn(3, 1, res, res), torch.tensor([0, 4, 2])
    score, logits = D(x, y, return_logits=True)
    assert score.shape == (3,) and logits.shape == (3, 5)
    torch.testing.assert_close(score, D(x, y))
    # the logits do not depend on the asked-for label (a classifier of x alone)
    torch.testing.assert_close(D(x, torch.tensor([1, 1, 1]), return_logits=True)[1], logits)
    _, plain = models.build(kind, resolution=res, channels=1, z_dim=8, num_classes=5, g_base=8, d_base=8)
    assert not any("class_head" in k for k in plain.state_dict())
    with pytest.raises(ValueError, match="no class head"):
        plain(x, y, return_logits=True)


def _parts(cfg, D, G, lr=0.1):
    opt = torch.optim.SGD(D.parameters(), lr=lr)
    opt_g = torch.optim.SGD(G.parameters(), lr=lr)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return step_mod.Parts(cfg, G, D, opt_g, opt, scaler, scaler, nullcontext, lambda m: None, step_mod.Metrics("cpu"))


@pytest.mark.parametrize("critic_norm,algorithm", [("none", "wgan-gp"), ("batch", "gan")])
def test_critic_step_adds_the_weighted_cross_entropy_of_real_images(critic_norm, algorithm):
    """One critic step equals, by hand: the step without the head plus ac_weight x CE(head(real), labels)."""
    cfg = config.resolve(dict(algorithm=algorithm, conditional="true", num_classes="4", ac_weight="0.7",
                              model="mlp"))
    torch.manual_seed(0)
    G, D = models.build("mlp", resolution=4, channels=1, z_dim=6, num_classes=4, critic_norm="none",
                        class_head=True)
    if critic_norm == "batch":  # a BatchNorm critic: real and fake go through it separately
        D.features.insert(1, torch.nn.BatchNorm1d(D.features[0].out_features))
    G.eval()
    real, labels = torch.randn(6, 1, 4, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    z, alpha = torch.randn(6, 6), torch.rand(6)
    ref = {k: v.clone() for k, v in D.state_dict().items()}
    parts = _parts(cfg, D, G)
    step_mod.critic_step(parts, real, labels, z, alpha, critic_iter=1)  # iteration 1: no penalty (lazy_reg 1 -> yes)
    m = parts.metrics.fetch_and_reset()

    D_ref = models.build("mlp", resolution=4, channels=1, z_dim=6, num_classes=4, class_head=True)[1]
    if critic_norm == "batch":
        D_ref.features.insert(1, torch.nn.BatchNorm1d(D_ref.features[0].out_features))
    D_ref.load_state_dict(ref)
    with torch.no_grad():
        fake = G(z, labels)
    if critic_norm == "batch":
        (d_real, logits), d_fake = D_ref(real, labels, return_logits=True), D_ref(fake, labels)
        loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    else:
        scores, logits = D_ref(torch.cat([real, fake]), torch.cat([labels, labels]), return_logits=True)
        d_real, d_fake, logits = scores[:6], scores[6:], logits[:6]
        x_hat = (alpha.view(-1, 1, 1, 1) * real + (1 - alpha.view(-1, 1, 1, 1)) * fake).requires_grad_()
        (g,) = torch.autograd.grad(D_ref(x_hat, labels).sum(), x_hat, create_graph=True)
        loss = d_fake.mean() - d_real.mean() + 10 * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
    ce = F.cross_entropy(logits, labels)
    (loss + 0.7 * ce).backward()
    with torch.no_grad():
        for p in D_ref.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    for (name, a), b in zip(D.named_parameters(), D_ref.parameters()):
        torch.testing.assert_close(a, b, msg=name)
    assert abs(m["ac_real"] - ce.item()) < 1e-5 and abs(m["ac_fake"]) == 0.0
    assert any(D.class_head.linear.weight.ne(ref["class_head.linear.weight"]).flatten())


def test_generator_step_adds_the_weighted_cross_entropy_of_its_samples():
    cfg = config.resolve(dict(conditional="true", num_classes="4", ac_weight="1", ac_weight_g="0.3", model="mlp"))
    torch.manual_seed(1)
    G, D = models.build("mlp", resolution=4, channels=1, z_dim=6, num_classes=4, class_head=True)
    G_ref = models.build("mlp", resolution=4, channels=1, z_dim=6, num_classes=4)[0]
    G_ref.load_state_dict(G.state_dict())
    z, labels = torch.randn(5, 6), torch.tensor([3, 2, 1, 0, 3])
    parts = _parts(cfg, D, G)
    step_mod.generator_step(parts, z, labels)
    m = parts.metrics.fetch_and_reset()
    assert all(p.grad is None for p in D.parameters())  # the generator step leaves the critic's gradients alone
    score, logits = D(G_ref(z, labels), labels, return_logits=True)
    ce = F.cross_entropy(logits, labels)
    (-score.mean() + 0.3 * ce).backward()
    with torch.no_grad():
        for p in G_ref.parameters():
            p -= 0.1 * p.grad
    for (name, a), b in zip(G.named_parameters(), G_ref.parameters()):
        torch.testing.assert_close(a, b, msg=name)
    assert abs(m["ac_fake"] - ce.item()) < 1e-5 and abs(m["loss_g"] - (-score.mean() + 0.3 * ce).item()) < 1e-5


def test_training_with_the_class_head_logs_and_saves_it(tmp_path):
    cfg = tiny_cfg(tmp_path, conditional=True, ac_weight=1.0, ac_weight_g=0.1)
    run_dir = train.train(cfg, data=TinyImages()).run_dir
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    assert all(r["ac_real"] > 0 and r["ac_fake"] > 0 for r in rows), rows
    from wgan_fast import checkpoint

    state, _ = checkpoint.load_latest(run_dir)
    assert "class_head.linear.weight" in state["D"] and state["config"]["ac_weight"] == 1.0
    # a run without it logs no such columns
    plain = train.train(tiny_cfg(tmp_path, conditional=True, name="plain"), data=TinyImages()).run_dir
    assert not any("ac_real" in json.loads(line) for line in open(os.path.join(plain, "metrics.jsonl")))


@pytest.mark.parametrize("keys,match", [
    (dict(ac_weight="1"), "ac_weight: the auxiliary classifier needs class labels"),
    (dict(conditional="true", ac_weight_g="0.1"), "ac_weight: must be > 0 when ac_weight_g is"),
    (dict(conditional="true", ac_weight="-1"), "ac_weight"),
])
def test_bad_class_head_configs_are_refused(keys, match):
    with pytest.raises(config.ConfigError, match=match):
        config.resolve(keys)
