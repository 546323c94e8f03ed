"""deeptune's optimiser and schedules: L-BFGS's weight decay, the two-stage and warm-up curves."""

import pytest
import torch
from torch import nn

from deeptune.optim.lbfgs import LBFGS
from deeptune.optim.schedulers import two_stage_exponential, warmup


def test_two_stage_schedule_is_continuous():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = two_stage_exponential(opt, gamma=0.9, gamma_after=0.5, switch_epoch=3)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1, 0.9, 0.81, 0.729, 0.3645, 0.18225])


def test_warmup_then_cosine():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup(opt, warmup_epochs=2, start_factor=0.1, max_epochs=6)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[2] == pytest.approx(1.0)
    assert lrs[2] > lrs[3] > lrs[4] > lrs[5]


def test_lbfgs_weight_decay_is_l2():
    """With weight decay the minimiser of (w - 1)^2 moves to 1 / (1 + wd / 2)."""
    for wd, expected in [(0.0, 1.0), (1.0, 2 / 3)]:
        w = nn.Parameter(torch.zeros(1))
        opt = LBFGS([w], lr=1.0, weight_decay=wd, line_search_fn="strong_wolfe")

        def closure(w=w, opt=opt):
            opt.zero_grad()
            loss = (w - 1).pow(2).sum()
            loss.backward()
            return loss

        for _ in range(5):
            opt.step(closure)
        assert w.item() == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    ("overrides", "fused"),
    [
        (["optimizer=adam"], True),
        (["optimizer=momentum"], True),
        (["optimizer=adam", "optimizer.fused=false"], False),
        (["optimizer=adam", "+optimizer.foreach=true"], None),  # torch: not both
        (["optimizer=rmsprop"], None),  # no fused kernel: torch's default
    ],
)
def test_fused_auto_picks_torchs_fused_step_where_it_has_one(train_cfg, overrides, fused):
    import torch

    from deeptune import builders

    cfg = train_cfg(*overrides)
    factory = builders.optimizer_factory(cfg.optimizer)
    optimizer = factory([torch.nn.Parameter(torch.zeros(3))])
    assert optimizer.defaults.get("fused") == fused
