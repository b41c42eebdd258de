"""Stage C's check of the reward models: a category at chance stops the run before any actor."""

from __future__ import annotations

import json
import logging

import pytest
from typer.testing import CliRunner

from hair_ray.categories import CATEGORY_NAMES
from hair_ray.config import load_config
from hair_ray.reward.quality import RewardQualityError, check_reward_models, stored_checks


def write_reports(models_dir, heldout: dict[str, tuple[float, int]], human: dict[str, tuple[float, int]] | None = None):
    """report.json (and eval_do_not_answer.json) as `reward train` / `reward eval` write them."""
    models_dir.mkdir(parents=True, exist_ok=True)
    categories = {c: {"pairs_heldout": n, "heldout": {"accuracy": acc, "loss": 0.6}} for c, (acc, n) in heldout.items()}
    (models_dir / "report.json").write_text(json.dumps({"categories": categories}))
    if human is not None:
        per = {c: {"agreement": acc, "pairs": n} for c, (acc, n) in human.items()}
        (models_dir / "eval_do_not_answer.json").write_text(json.dumps({"categories": per, "pooled_agreement": 0.6}))


def good(accuracy: float = 0.9, pairs: int = 8) -> dict[str, tuple[float, int]]:
    return {c: (accuracy, pairs) for c in CATEGORY_NAMES}


def reward_config(tmp_path, *overrides: str):
    return load_config(None, [f"reward.models_dir={tmp_path / 'rm'}", *overrides]).reward


def test_models_above_chance_pass_and_every_number_is_read(tmp_path):
    write_reports(tmp_path / "rm", good(), human={"insult": (0.8, 40), "privacy_property": (0.7, 3)})
    checks = check_reward_models(reward_config(tmp_path))
    assert len(checks) == 7 + 1  # privacy_property: 3 human-label pairs are too few to count
    assert {c.metric for c in checks if c.category == "insult"} == {"held-out accuracy", "Do-Not-Answer agreement"}


def test_a_category_at_chance_on_held_out_pairs_stops_with_its_name(tmp_path):
    heldout = good()
    heldout["privacy_property"] = (0.5, 12)
    write_reports(tmp_path / "rm", heldout)
    with pytest.raises(RewardQualityError) as error:
        check_reward_models(reward_config(tmp_path))
    message = str(error.value)
    assert "privacy_property: held-out accuracy 0.500 on 12 pairs" in message
    assert "insult" not in message
    assert "reward.allow_chance_level=true" in message and "demonstration_field=reply" in message


def test_human_label_agreement_at_chance_stops_even_when_held_out_pairs_pass(tmp_path):
    # A model trained on the CoD text wins its held-out pairs by the format alone (1.0) and
    # ranks Do-Not-Answer's human-judged replies at chance: the external check catches it.
    write_reports(tmp_path / "rm", good(1.0), human={c: (0.53, 50) for c in CATEGORY_NAMES})
    with pytest.raises(RewardQualityError, match="Do-Not-Answer agreement 0.530 on 50 pairs"):
        check_reward_models(reward_config(tmp_path))


def test_the_threshold_and_the_override_are_config_fields(tmp_path, caplog):
    write_reports(tmp_path / "rm", good(0.6))
    with pytest.raises(RewardQualityError, match="min_heldout_accuracy=0.6"):
        check_reward_models(reward_config(tmp_path, "reward.min_heldout_accuracy=0.6"))
    with caplog.at_level(logging.WARNING, logger="hair_ray.reward.quality"):
        checks = check_reward_models(reward_config(tmp_path, "reward.min_heldout_accuracy=0.6", "reward.allow_chance_level=true"))
    assert len(checks) == 7 and "at chance" in caplog.text


def test_unchecked_models_are_warned_about_not_stopped(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="hair_ray.reward.quality"):
        assert check_reward_models(reward_config(tmp_path)) == []
    assert "report.json (written by `hair-ray reward train`)" in caplog.text
    write_reports(tmp_path / "rm", {"insult": (None, 0)})
    checks, missing = stored_checks(tmp_path / "rm")
    assert checks == [] and "insult: no held-out pairs" in missing[0]


def test_a_broken_report_names_the_file(tmp_path):
    (tmp_path / "rm").mkdir()
    (tmp_path / "rm" / "report.json").write_text("{not json")
    with pytest.raises(RewardQualityError, match=r"rm/report.json: not valid JSON"):
        check_reward_models(reward_config(tmp_path))


def test_hair_ray_train_stops_on_models_at_chance_before_any_actor(tmp_path):
    from hair_ray.cli import app

    heldout = good()
    heldout["physical_harm"] = (0.25, 4)
    write_reports(tmp_path / "rm", heldout)
    # The encoder this venv has, so the reward models are the one problem and decide the exit code.
    result = CliRunner().invoke(
        app,
        [
            "train",
            f"reward.models_dir={tmp_path / 'rm'}",
            f"output_dir={tmp_path / 'runs'}",
            "hardness.encoder=sentence_transformers",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "physical_harm: held-out accuracy 0.250 on 4 pairs" in result.output
    assert not (tmp_path / "runs").exists()  # nothing started, nothing written
