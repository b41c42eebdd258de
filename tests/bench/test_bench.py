"""`hair-ray bench` bookkeeping: phases add up to the step, ratios and targets are computed as
stated, the peer gets the workload's settings, the workload is what the trainer runs."""

from __future__ import annotations

import pytest

from hair_ray.bench.phases import summarise_run
from hair_ray.bench.report import Row, comparison, format_table, over_rounds
from hair_ray.bench.run import BenchPlan, parse_variant, run_round
from hair_ray.bench.workload import Workload, workload_of
from hair_ray.config import load_config


def step_row(step: int, generate: float, update: float, sync: float, reward: float = 0.5) -> dict:
    timing = {"timing/generate": generate, "timing/reward": reward, "timing/update": update, "timing/sync": sync}
    return {
        "step": step,
        **timing,
        "timing/step": sum(timing.values()),
        "samples": 16.0,
        "response_length/mean": 40.0,
        "learner/tokens": 1600.0,
        "learner/seconds_frozen": 1.0,
        "learner/seconds_policy": update - 1.5,
        "sync/bytes": 2e9,
    }


METRICS = [step_row(1, 30.0, 40.0, 9.0), step_row(2, 4.0, 10.0, 2.0), step_row(3, 6.0, 12.0, 2.0)]


def test_phase_means_add_up_to_the_mean_step_and_warm_up_is_left_out():
    summary = summarise_run(METRICS, warmup=1)
    assert summary["steps"] == 2
    assert summary["phase_s"] == {"generate": 5.0, "reward": 0.5, "update": 11.0, "sync": 2.0}
    assert sum(summary["phase_s"].values()) == pytest.approx(summary["step_s"]) == pytest.approx(18.5)
    # update = frozen pass + trained passes + what is left over
    assert summary["learner_frozen_s"] == 1.0 and summary["learner_policy_s"] == 9.5
    assert summary["update_overhead_s"] == pytest.approx(0.5)
    # rates are means of each step's rate: 640 tokens in 4 s and in 6 s
    assert summary["rollout_tokens_per_s"] == pytest.approx((640 / 4 + 640 / 6) / 2)
    assert summary["learner_tokens_per_s"] == pytest.approx((1600 / 8.5 + 1600 / 10.5) / 2)
    assert summary["reference_tokens_per_s"] == pytest.approx(1600.0)
    assert summary["sync_gb_per_s"] == pytest.approx(1.0)
    assert summary["completion_tokens"] == 640.0


def test_no_measured_steps_is_an_error_that_says_so():
    with pytest.raises(ValueError, match="the run has 3 steps and the first 3 are warm-up"):
        summarise_run(METRICS, warmup=3)


def test_comparison_ratios_and_targets():
    ours = summarise_run(METRICS, warmup=1)
    bare = {
        "generate": {"tokens_per_s": 200.0},
        "learner": {"tokens_per_s": 200.0},
        "reference": {"tokens_per_s": 3200.0},
        "memcpy": {"gb_per_s": 10.0},
    }
    peer = {"step_s": 20.0, "completion_tokens_per_s": 30.0}
    rows = {row.what: row for row in comparison(ours, bare, peer)}
    rollout = rows["rollout (generate)"]
    assert rollout.ratio == pytest.approx(ours["rollout_tokens_per_s"] / 200.0)
    assert rollout.met is (rollout.ratio >= 0.95)
    assert rows["reference forward"].ratio == pytest.approx(0.5) and rows["reference forward"].met is None
    assert rows["weight sync"].ratio == pytest.approx(0.1)
    share = rows["weight sync share of the step"]
    assert share.hair_ray == pytest.approx(2.0 / 18.5) and share.met is False  # 10.8 % > 5 %
    step = rows["step"]
    assert step.ratio == pytest.approx(18.5 / 20.0) and step.met is False  # 0.925 > 0.8
    assert rows["completion tokens/s"].baseline == 30.0
    table = format_table(list(rows.values()))
    assert "0.93×" in table and "≤0.8 MISSED" in table and "TRL GRPOTrainer" in table


def test_baselines_beside_an_idle_ray_cluster_get_rows_of_their_own():
    ours = summarise_run(METRICS, warmup=1)
    alone = {"generate": {"tokens_per_s": 200.0}, "learner": {"tokens_per_s": 200.0}, "reference": {"tokens_per_s": 3200.0}}
    beside = {**alone, "learner_beside_ray": {"tokens_per_s": 160.0}, "reference_beside_ray": {"tokens_per_s": 2000.0}}
    rows = {row.what: row for row in comparison(ours, beside, None)}
    learner = rows["learner, bare beside idle Ray"]
    assert learner.baseline == 160.0 and learner.ratio == pytest.approx(ours["learner_tokens_per_s"] / 160.0)
    assert learner.target is None  # the target stays on the baseline with the machine to itself
    assert rows["learner forward+backward+step"].ratio == pytest.approx(ours["learner_tokens_per_s"] / 200.0)
    assert rows["reference, bare beside idle Ray"].ratio == pytest.approx(ours["reference_tokens_per_s"] / 2000.0)
    assert not any("beside" in what for what in (row.what for row in comparison(ours, alone, None)))


def test_without_a_peer_the_step_has_no_ratio():
    rows = {row.what: row for row in comparison(summarise_run(METRICS, warmup=1), None, None)}
    assert rows["step"].ratio is None and rows["rollout (generate)"].baseline is None


def test_rounds_give_the_median_ratio_with_its_range():
    def row(ours, base, ratio):
        return Row("learner", ours, "tokens/s", base, "bare", ratio, True, 0.9)

    def share(value):
        return Row("sync share", value, "fraction", None, "", value, False, 0.05)

    tables = [
        [row(90.0, 150.0, 0.6), share(0.03)],
        [row(120.0, 150.0, 0.8), share(0.02)],
        [row(100.0, 110.0, 100 / 110), share(0.04)],
    ]
    learner, sync = over_rounds(tables)
    # the median of each round's own ratio, not the ratio of the medians (100 / 150)
    assert learner.ratio == pytest.approx(0.8) and (learner.ratio_low, learner.ratio_high) == (0.6, 100 / 110)
    assert learner.hair_ray == 100.0 and learner.baseline == 150.0 and learner.met is False
    assert sync.ratio == 0.03 and sync.baseline is None and sync.met is True
    table = format_table([learner, sync])
    assert "rounds range" in table and "0.60×–0.91×" in table and "2.0 %–4.0 %" in table
    # one round: no range, and the table keeps its single-run columns
    (alone, _) = over_rounds(tables[:1])
    assert alone.ratio == 0.6 and alone.ratio_low is None and "rounds range" not in format_table([alone])
    with pytest.raises(ValueError, match="different rows"):
        over_rounds([tables[0], tables[1][:1]])


def test_a_round_alternates_the_order_of_trainer_baselines_and_peer(tmp_path, monkeypatch):
    import hair_ray.bench.run as bench_run

    ran = []
    summary = summarise_run(METRICS, warmup=1)
    bare = {"generate": {"tokens_per_s": 200.0, "tokens": 640.0}, "learner": {"tokens_per_s": 200.0, "tokens": 1600.0}}

    def trainer(config, warmup):
        ran.append(("trainer", config.run_dir.parent.name))
        return {**summary, "step_1": {"completion_tokens": 640.0, "learner_tokens": 1600.0}}

    def module(name, *args):
        ran.append((name.rsplit(".", 1)[-1], None))
        return bare if name.endswith("bare") else {"step_s": 20.0, "completion_tokens_per_s": 30.0}

    monkeypatch.setattr(bench_run, "train_and_summarise", trainer)
    monkeypatch.setattr(bench_run, "run_module", module)
    plan = BenchPlan("jobs/bench_smollm2_cpu.yaml", [], peer="trl", variants={"async": ["rollout.async=true"]})
    first, rows = run_round(plan, tmp_path, tmp_path / "workload.json", 0)
    second, _ = run_round(plan, tmp_path, tmp_path / "workload.json", 1)
    assert [name for name, _ in ran] == ["trainer", "trainer", "bare", "peer_trl", "peer_trl", "bare", "trainer", "trainer"]
    # each round trains in a folder of its own; the variant in one beneath it
    assert [folder for _, folder in ran if folder] == ["round-1", "async", "round-2", "async"]
    assert first["same_shapes_as_step_1"]["equal"] and "async" in second["variants"]
    assert {r.what: r.ratio for r in rows}["step"] == pytest.approx(18.5 / 20.0)


def test_variants_parse_and_bad_ones_name_the_form():
    assert parse_variant("async=rollout.async=true,rollout.cpu_reserved_cores=1") == (
        "async",
        ["rollout.async=true", "rollout.cpu_reserved_cores=1"],
    )
    for bad in ("async", "async=", "=rollout.async=true", "async=rollout.async"):
        with pytest.raises(ValueError, match="NAME=key=value"):
            parse_variant(bad)


def test_a_bench_run_is_the_config_for_warm_up_plus_measured_steps(tmp_path):
    plan = BenchPlan("jobs/bench_smollm2_cpu.yaml", ["algo.group_size=2"], warmup=2, steps=3)
    config = plan.config(tmp_path, ["rollout.async=true"])
    assert config.algo.total_steps == 5 and config.checkpoint.every_steps == 5 and config.eval.every_steps is None
    assert config.algo.group_size == 2 and config.rollout.async_ is True
    assert config.run_dir.parent == tmp_path


class ChatTokenizer:
    """Enough of a tokenizer for `chat_prompt_ids`: one id per character of the prompt."""

    chat_template = "yes"

    def apply_chat_template(self, messages, **_):
        return [1, *(ord(c) % 50 for c in messages[0]["content"]), 2]


def records() -> list[dict]:
    from hair_ray.categories import CATEGORY_NAMES

    return [{"id": f"{c}-{i}", "prompt": f"{c} prompt {i}", "category": c} for c in CATEGORY_NAMES for i in range(3)]


def test_the_workload_is_what_the_trainer_samples_and_runs(tmp_path):
    from hair_ray.train.sampler import CategoryBalancedSampler
    from hair_ray.train.trainer import generation_seed

    config = load_config("jobs/bench_smollm2_cpu.yaml", ["seed=3", "policy.name_or_path=" + str(tmp_path)])
    workload = workload_of(config, records(), ChatTokenizer(), steps=3, threads=2)
    sampler = CategoryBalancedSampler(records(), seed=3)
    for step in range(3):
        batch = sampler.next(config.algo.prompts_per_step)
        assert workload.prompts[step] == [r["prompt"] for r in batch]
        assert workload.categories[step] == [r["category"] for r in batch]
        assert workload.prompt_ids[step][0] == ChatTokenizer().apply_chat_template([{"content": batch[0]["prompt"]}])
    assert workload.first_seed == generation_seed(3, 0)
    assert workload.model_name == str(tmp_path) == workload.model_path
    assert workload.samples_per_step == 16
    assert (workload.max_new_tokens, workload.kl_coef, workload.learning_rate) == (48, 0.04, 1e-6)
    assert workload.engine["cpu_kv_cache_gib"] == 0.5 and "backend" not in workload.engine
    path = tmp_path / "workload.json"
    workload.save(path)
    assert Workload.load(path) == workload


def test_the_peer_runs_the_workload_settings(tmp_path):
    pytest.importorskip("trl")  # the `bench` extra
    from trl import GRPOConfig

    from hair_ray.bench.peer_trl import trl_arguments, trl_dataset

    config = load_config("jobs/bench_smollm2_cpu.yaml", ["policy.name_or_path=" + str(tmp_path)])
    workload = workload_of(config, records(), ChatTokenizer(), steps=2, threads=2)
    args = GRPOConfig(**trl_arguments(workload, str(tmp_path), steps=2))
    assert args.num_generations == workload.group_size == 4
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == workload.samples_per_step
    assert args.generation_batch_size == workload.samples_per_step  # one generation batch per optimizer step
    assert args.max_completion_length == 48 and args.beta == 0.04 and args.learning_rate == 1e-6
    assert (args.epsilon, args.epsilon_high, args.temperature) == (0.2, 0.2, 1.0)
    assert args.loss_type == "dapo" and args.scale_rewards == "group" and args.num_iterations == 1
    assert args.shuffle_dataset is False and args.gradient_checkpointing is False and args.max_steps == 2
    dataset = trl_dataset(workload)
    assert [row["prompt"][0]["content"] for row in dataset] == [p for batch in workload.prompts for p in batch]


def test_the_peer_refuses_a_workload_it_cannot_run_alike(tmp_path):
    from dataclasses import replace

    from hair_ray.bench.peer_trl import trl_arguments, trl_reward

    config = load_config("jobs/bench_smollm2_cpu.yaml", ["policy.name_or_path=" + str(tmp_path)])
    workload = workload_of(config, records(), ChatTokenizer(), steps=1, threads=2)
    with pytest.raises(ValueError, match=r"samples per step \(16\) must be a multiple of learner.samples_per_micro_batch \(5\)"):
        trl_arguments(replace(workload, samples_per_micro_batch=5), str(tmp_path), 1)
    with pytest.raises(ValueError, match="needs a rule reward"):
        trl_reward(replace(workload, reward_function=None))
    reward = trl_reward(workload)  # TRL's conversational shapes in, hair_ray's function called
    scores = reward([[{"role": "user", "content": "q"}]] * 2, [[{"role": "assistant", "content": "a b c d"}], [{"content": ""}]])
    assert scores == [4 / 32, 0.0]
