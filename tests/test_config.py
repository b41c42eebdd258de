"""The run config: YAML, dotted overrides, and the exact messages bad input produces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hair_ray.config import ConfigError, RunConfig, config_hash, dump_config, load_config

JOBS = Path(__file__).resolve().parents[1] / "jobs"


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides))
    return str(info.value)


def test_defaults_follow_the_paper():
    cfg = load_config()
    assert (cfg.algo.group_size, cfg.algo.clip_low, cfg.algo.kl_coef) == (8, 0.2, 0.04)
    assert cfg.algo.kl_kind == "k3" and cfg.algo.loss_agg == "token-mean"
    assert cfg.rollout.temperature == 1.0
    assert cfg.hardness.tau == 4.0 and cfg.hardness.combine == "product"
    assert cfg.reward.routing == "category" and cfg.reward.irl.negatives_per_prompt == 2
    assert cfg.reward.irl.rounds == 1
    assert cfg.policy.trust_remote_code is False


def test_yaml_file_and_overrides(tmp_path):
    path = write(tmp_path, "name: mine\nalgo:\n  group_size: 4\n  kl_coef: 0.1\n")
    cfg = load_config(path, ["algo.group_size=16", "rollout.async=true", "hardness.alpha_clip=null"])
    assert cfg.name == "mine"
    assert cfg.algo.group_size == 16  # the override wins over the file
    assert cfg.algo.kl_coef == 0.1  # the file wins over the default
    assert cfg.rollout.async_ is True
    assert cfg.hardness.alpha_clip is None
    assert cfg.run_dir == Path("runs/mine")


def test_override_creates_missing_sections_and_parses_yaml_values(tmp_path):
    cfg = load_config(None, ["reward.routing=sum", "reward.sum_weights={insult: 2.0}", "data.sources=[{kind: seed}]"])
    assert cfg.reward.sum_weights == {"insult": 2.0}
    assert cfg.data.sources[0].kind == "seed"


def test_every_shipped_job_config_is_valid():
    configs = sorted(JOBS.glob("*.yaml"))
    assert configs, "jobs/ should hold at least one run config"
    for path in configs:
        assert isinstance(load_config(path), RunConfig), path


def test_dump_round_trips_and_hash_is_stable(tmp_path):
    cfg = load_config(JOBS / "tiny_cpu.yaml")
    again = load_config(write(tmp_path, dump_config(cfg)))
    assert again == cfg
    assert config_hash(again) == config_hash(cfg)
    assert config_hash(load_config(JOBS / "tiny_cpu.yaml", ["seed=1"])) != config_hash(cfg)


# --- bad input: the exact text the user sees --------------------------------------------------


def test_value_out_of_range(tmp_path):
    path = write(tmp_path, "algo:\n  group_size: 1\n")
    assert error_of(path) == (
        f"invalid configuration in {path}:\n  algo.group_size: Input should be greater than or equal to 2 (got 1)"
    )


def test_unknown_key_suggests_the_closest_and_lists_allowed(tmp_path):
    path = write(tmp_path, "algo:\n  gruop_size: 4\n")
    assert error_of(path) == (
        f"invalid configuration in {path}:\n"
        "  algo.gruop_size: unknown key; did you mean 'group_size'? allowed keys: group_size, "
        "prompts_per_step, benign_prompts_per_step, total_steps, clip_low, clip_high, kl_coef, kl_kind, loss_agg, "
        "epochs_per_step, samples_per_mini_batch, advantage_eps"
    )


def test_unknown_section(tmp_path):
    path = write(tmp_path, "algorithm:\n  group_size: 4\n")
    assert (
        error_of(path)
        .splitlines()[1]
        .startswith("  algorithm: unknown key; did you mean 'algo'? allowed keys: name, seed, output_dir, policy,")
    )


def test_unknown_key_inside_a_list_of_sections(tmp_path):
    path = write(tmp_path, "data:\n  sources:\n    - kind: seed\n      pth: x.csv\n")
    assert "  data.sources.0.pth: unknown key; did you mean 'path'?" in error_of(path)


def test_wrong_choice_names_the_allowed_values(tmp_path):
    path = write(tmp_path, "algo:\n  loss_agg: mean\n")
    assert error_of(path) == (
        f"invalid configuration in {path}:\n  algo.loss_agg: Input should be 'token-mean' or 'seq-mean-token-mean' (got 'mean')"
    )


def test_wrong_type(tmp_path):
    path = write(tmp_path, "algo:\n  group_size: eight\n")
    assert error_of(path) == (
        f"invalid configuration in {path}:\n"
        "  algo.group_size: Input should be a valid integer, unable to parse string as an integer "
        "(got 'eight')"
    )


def test_broken_yaml_names_line_and_column(tmp_path):
    path = write(tmp_path, "algo: [1, 2\n")
    assert error_of(path) == f"{path}: invalid YAML at line 2, column 1: expected ',' or ']', but got '<stream end>'"


def test_top_level_must_be_a_mapping(tmp_path):
    path = write(tmp_path, "- 1\n- 2\n")
    assert error_of(path) == f"{path}: the top level must be a mapping of sections, got list"


def test_missing_file():
    assert error_of("no/such/run.yaml") == "config file no/such/run.yaml does not exist"


def test_inconsistent_sections():
    message = error_of(None, ["learner.num_workers=3"])
    assert message == (
        "invalid configuration in the default config:\n"
        "  config: algo.prompts_per_step × algo.group_size = 64 samples per step must divide "
        "evenly across learner.num_workers = 3"
    )


def test_unknown_category_in_sum_weights():
    message = error_of(None, ["reward.routing=sum", "reward.sum_weights={violence: 1.0}"])
    assert "reward: sum_weights has unknown category 'violence'; allowed: insult, " in message


def test_round_policies_need_one_round_each():
    message = error_of(None, ["reward.irl.round_policies=[runs/a/export/step-000024]"])
    assert message == (
        "invalid configuration in the default config:\n"
        "  reward.irl: round_policies names 1 policies for rounds 2..; set rounds: 2 (it is 1)"
    )


def test_bad_override_syntax():
    assert error_of(None, ["algo.group_size"]) == "override 'algo.group_size' is not of the form section.field=value"
    assert error_of(None, ["algo..x=1"]) == "override 'algo..x=1' has an empty name in its dotted path"
    assert error_of(JOBS / "tiny_cpu.yaml", ["seed.x=1"]) == "override seed.x: seed is a value, not a section"


def test_cli_exits_2_with_the_message_on_stderr(tmp_path):
    path = write(tmp_path, "algo:\n  kl_kind: k4\n")
    result = subprocess.run(
        [sys.executable, "-m", "hair_ray.cli", "config", "check", "--config", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "algo.kl_kind: Input should be 'k1', 'k2' or 'k3' (got 'k4')" in result.stderr
    assert result.stdout == ""


def test_cli_prints_its_version():
    from hair_ray import __version__

    result = subprocess.run([sys.executable, "-m", "hair_ray.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == f"hair-ray {__version__}\n"
