"""`hair-ray bench` end to end on the tiny policy: the real trainer, the bare baselines and TRL,
one after the other for two rounds, and the bookkeeping of what they wrote."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_bench_runs_trainer_baselines_and_peer_on_the_same_work(tmp_path):
    pytest.importorskip("trl")
    from typer.testing import CliRunner

    from hair_ray.cli import app

    out = tmp_path / "bench"
    overrides = [
        "policy.name_or_path=tiny:qwen2",
        f"data.dataset_dir={tmp_path / 'data'}",
        "algo.prompts_per_step=2",
        "rollout.max_new_tokens=16",
        "learner.samples_per_micro_batch=4",
        "rollout.cpu_kv_cache_gib=0.25",
    ]
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "-c",
            "jobs/bench_smollm2_cpu.yaml",
            *overrides,
            "--warmup",
            "1",
            "--steps",
            "1",
            "--peer",
            "trl",
            "--repeats",
            "1",
            "--rounds",
            "2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    bench = json.loads((out / "bench.json").read_text())
    ours = bench["hair_ray"]
    # the phases of the measured step add up to it
    assert sum(ours["phase_s"].values()) == pytest.approx(ours["step_s"], rel=1e-9)
    assert ours["update_overhead_s"] == pytest.approx(
        ours["phase_s"]["update"] - ours["learner_frozen_s"] - ours["learner_policy_s"]
    )
    # the bare baselines reran step 1's exact work: the same samples, the same learner batch
    assert bench["same_shapes_as_step_1"]["equal"], bench["same_shapes_as_step_1"]
    assert bench["bare"]["generate"]["samples"] == 2 * 4
    assert bench["bare"]["memcpy"]["bytes"] == ours["sync_bytes"]  # the weights a sync moves
    # and the learner's loops once more beside an idle Ray cluster, on the same batch
    assert bench["bare"]["learner_beside_ray"]["tokens"] == bench["bare"]["learner"]["tokens"]
    # the peer ran the same number of steps on the same workload
    workload = json.loads((out / "workload.json").read_text())
    assert len(bench["peer"]["step_seconds"]) == 2 == len(workload["prompts"])
    assert workload["group_size"] == 4 and workload["max_new_tokens"] == 16
    assert workload["model_path"] == workload["model_name"] == "tiny:qwen2"  # no machine path beside the results
    # two rounds, each its own trainer, baselines and peer on the same work; the table's ratio is
    # the median of the rounds' (of two: their mean), with their range
    assert len(bench["rounds"]) == 2 and all(r["same_shapes_as_step_1"]["equal"] for r in bench["rounds"])
    assert bench["rounds"][0]["hair_ray"] == ours and bench["rounds"][0]["peer"] == bench["peer"]
    ratios = [r["hair_ray"]["step_s"] / r["peer"]["step_s"] for r in bench["rounds"]]
    rows = {row["what"]: row for row in bench["table"]}
    assert rows["step"]["ratio"] == pytest.approx(sum(ratios) / 2)
    beside = [r["hair_ray"]["learner_tokens_per_s"] / r["bare"]["learner_beside_ray"]["tokens_per_s"] for r in bench["rounds"]]
    assert rows["learner, bare beside idle Ray"]["ratio"] == pytest.approx(sum(beside) / 2)
    assert (rows["step"]["ratio_low"], rows["step"]["ratio_high"]) == pytest.approx((min(ratios), max(ratios)))
    assert (out / "bench.png").stat().st_size > 0
    assert "TRL GRPOTrainer" in result.output and "identical" in result.output
