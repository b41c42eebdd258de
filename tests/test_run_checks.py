"""Checks `hair-ray train` makes on a config before it starts any actor."""

from __future__ import annotations

import logging

from hair_ray.config import load_config
from hair_ray.train.launcher import warn_if_alpha_m_is_constant


def test_a_group_too_small_for_tau_is_warned_about(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="hair_ray.train.launcher"):
        warn_if_alpha_m_is_constant(load_config(None, ["algo.group_size=4", "hardness.tau=4"]))
    assert "hardness.tau=4 >= algo.group_size - 1 = 3" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hair_ray.train.launcher"):
        warn_if_alpha_m_is_constant(load_config(None, ["algo.group_size=8", "hardness.tau=4"]))
        warn_if_alpha_m_is_constant(load_config(None, ["algo.group_size=4", "hardness.model_responsiveness=false"]))
    assert caplog.text == ""
