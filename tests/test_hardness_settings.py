"""The demo's and the recipe's hardness settings make both factors act (issue: with G = 4 and the
relative τ = 4 the gap filter can drop nothing, so α^M was exactly 1 and HAIR was plain GRPO)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from hair_ray.algo.hardness import scaling_effect
from hair_ray.config import load_config
from hair_ray.train.trainer import Trainer

JOBS = ["jobs/demo_cpu.yaml", "jobs/align_smollm2_cpu.yaml"]

# Two groups of G = 4 on the shadow reward models' scale (held-out margins of a few units).
# Group 0: one sample beats the demonstration by far (gaps 1.8, 1.5, 1.6, −1.0); group 1 is tight.
REWARDS = [0.2, 0.5, 0.4, 3.0, 1.0, 1.2, 0.9, 1.1]
DEMO_REWARD = 2.0


def advantages(config, rewards=REWARDS):
    """The advantages as the driver computes them from `config` (Trainer._advantages)."""
    group = config.algo.group_size
    group_ids = [i // group for i in range(len(rewards))]
    # α^D as the scorer gives it: a ratio to the group mean of σ(δ), here δ = 0.2 ... 0.5.
    delta = torch.tensor([0.2, 0.3, 0.4, 0.5] * (len(rewards) // group))
    sig = torch.sigmoid(delta)
    alpha_d = sig / sig.view(-1, group).mean(dim=1).repeat_interleave(group)
    driver = SimpleNamespace(config=config)
    out = Trainer._advantages(driver, list(rewards), group_ids, {"alpha": alpha_d.tolist()}, [DEMO_REWARD] * len(rewards))
    return out, torch.tensor(group_ids)


@pytest.mark.parametrize("job", JOBS)
def test_both_factors_act_under_the_jobs_settings(job):
    config = load_config(job, [])
    assert config.algo.group_size == 4 and config.hardness.enabled
    out, ids = advantages(config)
    # Absolute τ = 1: group 0 drops its outlier (gap −1.0 lies 1.975 from the mean 0.975), so
    # α^M = σ(mean of 1.8, 1.5, 1.6) / σ(0.975) = σ(1.6333) / σ(0.975); group 1 keeps all: 1.
    expected = math.exp(math.log(1 / (1 + math.exp(-49 / 30))) - math.log(1 / (1 + math.exp(-0.975))))
    assert out.alpha_m[:4].tolist() == pytest.approx([expected] * 4)
    assert out.alpha_m[4:].tolist() == [1.0] * 4
    effect = scaling_effect(out, ids)
    assert effect.alpha_m_active_fraction == 0.5
    # α^M moves group 0 by 15 %; α^D (0.94 ... 1.06) moves every sample a few per cent more.
    assert effect.relative_change > 0.05 and effect.alpha_d_max - effect.alpha_d_min > 0.1


def test_the_relative_tau_of_the_defaults_filters_nothing_at_this_group_size():
    config = load_config("jobs/align_smollm2_cpu.yaml", ["hardness.tau_mode=relative", "hardness.tau=4"])
    out, ids = advantages(config)
    assert out.alpha_m.tolist() == [1.0] * 8  # no gap lies further than (G − 1)·var: α^M ≡ 1
    assert scaling_effect(out, ids).alpha_m_active_fraction == 0.0


def test_the_trainer_applies_hardness_strength():
    # strength 2 squares the weight, so |A − Â| / |Â| = |α² − 1| per sample where the paper's
    # has |α − 1|.
    paper, _ = advantages(load_config("jobs/align_smollm2_cpu.yaml", []))
    strong, _ = advantages(load_config("jobs/align_smollm2_cpu.yaml", ["hardness.strength=2"]))
    alpha = paper.advantages / paper.base_advantages
    torch.testing.assert_close(strong.advantages, alpha**2 * paper.base_advantages)
    assert not torch.allclose(strong.advantages, paper.advantages)
