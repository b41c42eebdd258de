"""Evaluation inside `train`: when it runs, and which judge the refusal metric uses."""

from __future__ import annotations

import pytest

from hair_ray.config import ConfigError, load_config
from hair_ray.eval.training import TrainingEvaluation, training_judge


def test_evaluates_the_base_policy_every_n_steps_and_the_last_step():
    config = load_config(None, ["algo.total_steps=7", "eval.every_steps=3", "eval.benchmarks=[benign_smoke]"])
    evaluation = TrainingEvaluation(config, judge=training_judge(load_config(None, ["eval.judge.kind=keyword"])))
    assert [step for step in range(8) if evaluation.due(step)] == [0, 3, 6, 7]


def test_an_llm_judge_is_kept_out_of_the_training_step():
    config = load_config(None, ["eval.judge={kind: llm, base_url: 'http://127.0.0.1:9/v1', model: judge}"])
    assert training_judge(config).name == "keyword"
    assert training_judge(load_config(None, ["eval.judge.kind=classifier"])).name == "classifier"


def test_every_steps_needs_benchmarks_and_an_llm_judge_needs_an_endpoint():
    with pytest.raises(ConfigError, match="every_steps needs `benchmarks`"):
        load_config(None, ["eval.every_steps=2"])
    with pytest.raises(ConfigError, match="kind 'llm' needs `base_url`"):
        load_config(None, ["eval.judge.kind=llm"])


def test_a_bad_benchmark_stops_the_run_before_any_actor(tmp_path):
    from hair_ray.eval.benchmarks import BenchmarkError
    from hair_ray.train.launcher import train

    config = load_config(
        None,
        [
            f"output_dir={tmp_path}",
            "eval.every_steps=1",
            "eval.benchmarks=[strongreject]",
            f"eval.data_root={tmp_path}",
            "eval.judge.kind=keyword",
        ],
    )
    with pytest.raises(BenchmarkError, match="strongreject_dataset.csv does not exist"):
        train(config)
