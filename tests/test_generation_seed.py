"""Sampling seeds: one per (step, prompt), the same on every run and after a resume."""

from hair_ray.train.trainer import PROMPTS_PER_STEP_SEED_STRIDE, generation_seed


def test_no_two_step_prompt_pairs_share_a_seed():
    # Prompt i of a step draws from generation_seed(...) + i (hair_ray.models.vllm_engine).
    seeds = {generation_seed(3, step) + i for step in range(200) for i in range(64)}
    assert len(seeds) == 200 * 64


def test_the_seed_is_a_function_of_run_seed_and_step():
    assert generation_seed(0, 0) == 0
    assert generation_seed(0, 5) == 5 * PROMPTS_PER_STEP_SEED_STRIDE
    assert generation_seed(1, 2) == (1_000_003 + 2) * PROMPTS_PER_STEP_SEED_STRIDE
    assert generation_seed(7, 11) == generation_seed(7, 11) != generation_seed(8, 11)
    assert 0 <= generation_seed(2**40, 10**9) < 2**62
