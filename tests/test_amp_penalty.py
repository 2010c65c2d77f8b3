"""The gradient penalty under fp16 autocast with a GradScaler: overflowing
scales are skipped (never applied), and once the scale has settled the fp16
penalty matches fp32 and is finite."""
import pytest
import torch
from torch import nn

from helpers import DEVICES
from wgan_fast import losses


def critic(device):
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(1, 16, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(16, 32, 4, 2, 1), nn.LeakyReLU(0.2),
                         nn.Flatten(), nn.Linear(32 * 8 * 8, 1)).to(device)


@pytest.mark.parametrize("device", DEVICES)
def test_fp16_penalty_matches_fp32_and_never_applies_nan(device):
    device = torch.device(device)
    D = critic(device)
    before = [p.detach().clone() for p in D.parameters()]
    real = torch.rand(16, 1, 32, 32, device=device) * 2 - 1
    fake = torch.rand(16, 1, 32, 32, device=device) * 2 - 1
    alpha = torch.rand(16, device=device)
    ref, ref_norms = losses.gradient_penalty(D, real, fake, alpha=alpha)
    scaler = torch.amp.GradScaler(device.type, init_scale=2.0 ** 16)
    opt = torch.optim.SGD(D.parameters(), lr=0.0)  # lr 0: only skip/apply matters
    for attempt in range(30):
        try:
            with torch.autocast(device.type, dtype=torch.float16):
                pen, norms = losses.gradient_penalty(D, real, fake, alpha=alpha, scaler=scaler)
        except RuntimeError as exc:  # an op without an fp16 kernel on this device
            pytest.skip(f"fp16 autocast unsupported here: {exc}")
        opt.zero_grad()
        scaler.scale(pen).backward()
        scaler.step(opt)  # skipped when the scaled gradients overflowed
        scaler.update()
        for p, b in zip(D.parameters(), before):
            assert torch.isfinite(p).all() and torch.equal(p, b)
        if torch.isfinite(pen):
            break
    else:
        pytest.fail("the fp16 penalty never became finite")
    torch.testing.assert_close(norms.float(), ref_norms, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(pen.float(), ref, rtol=5e-2, atol=5e-2)
