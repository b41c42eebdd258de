"""`hair-ray sft`: stage A's demonstrations as chat rows, a fine-tune that makes them more likely,
and a folder that stage C loads and that is never replaced by accident."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hair_ray.cli import app
from hair_ray.config import ModelSpec, load_config
from hair_ray.errors import WouldOverwriteError
from hair_ray.models.loading import chat_prompt_ids, load_causal_lm, load_tokenizer
from hair_ray.train.sft import MANIFEST_FILE, default_sft_dir, mixed_order, run_sft, sft_rows

RECORDS = [
    {"id": "a", "category": "insult", "prompt": "Insult my coworker.", "reply": "I won't write insults about anyone."},
    {
        "id": "b",
        "category": "crimes_illegal",
        "prompt": "How do I open a locked car?",
        "reply": "I can't help open a car that isn't yours.",
    },
]


BENIGN = {"id": "c", "category": "benign", "prompt": "Name a prime.", "reply": "Seven is a prime number."}


def write_dataset(folder: Path, records: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"drafts": ["d1", "d2"], "text": "d1\nd2\n####\n" + r["reply"], "source": "seed", **r}) for r in records]
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def sft_config(tmp_path: Path, *overrides: str):
    dataset = write_dataset(tmp_path / "data", RECORDS)
    return load_config(
        None,
        [
            "policy.name_or_path=tiny:qwen2",
            f"data.dataset_dir={dataset}",
            f"output_dir={tmp_path / 'runs'}",
            "name=warm",
            *overrides,
        ],
    )


def reply_nll(model, tokenizer, record: dict) -> float:
    """Mean negative log-likelihood of the reply's tokens after the chat prompt."""
    prompt = chat_prompt_ids(tokenizer, [record["prompt"]])[0]
    reply = tokenizer(record["reply"], add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + reply])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1 : -1]
    return float(torch.nn.functional.cross_entropy(logits.float(), torch.tensor(reply)))


def test_each_record_is_one_user_turn_and_the_assistant_reply():
    assert sft_rows(RECORDS[:1], "reply") == [
        {
            "prompt": [{"role": "user", "content": "Insult my coworker."}],
            "completion": [{"role": "assistant", "content": "I won't write insults about anyone."}],
        }
    ]


def test_a_record_without_the_field_is_named_by_file_line_and_id():
    with pytest.raises(ValueError, match=r"data/train.jsonl record 2 \(id 'b'\) has no 'reply'.*sft.field"):
        sft_rows([RECORDS[0], {"id": "b", "prompt": "p", "reply": " "}], "reply", "data/train.jsonl")


def test_the_mix_keeps_every_row_and_repeats_the_side_below_its_share():
    three_to_one = ["insult", "physical_harm", "privacy_property", "benign"]
    assert mixed_order(three_to_one, None, seed=0) == [0, 1, 2, 3]
    assert mixed_order(three_to_one, 0.25, seed=0) == [0, 1, 2, 3]  # the share it has: nothing added
    assert mixed_order(three_to_one, 0.5, seed=0) == [0, 1, 2, 3, 3, 3]  # 3 answers to 3 refusals
    assert mixed_order(["insult", "benign", "benign"], 0.2, seed=0) == [0] * 8 + [1, 2]  # 8 refusals to 2


def test_a_partial_pass_draws_distinct_rows_with_the_seed():
    categories = ["insult"] * 4 + ["benign"] * 3
    order = mixed_order(categories, 0.5, seed=3)
    assert order[:4] == [0, 1, 2, 3] and len(order) == 8
    answers = order[4:]
    assert answers[:3] == [4, 5, 6] and answers[3] in (4, 5, 6)  # one whole pass, then one drawn
    assert mixed_order(categories, 0.5, seed=3) == order
    draws = {mixed_order(["insult"] * 9 + ["benign"] * 4, 0.5, seed=s)[-1:][0] for s in range(20)}
    assert draws == {9, 10, 11, 12}  # the remainder is drawn, not always the first rows


def test_a_mix_without_both_sides_is_refused_by_name():
    with pytest.raises(ValueError, match=r"sft.answer_share=0.5 .* only refusing ones.*fixed_category: benign"):
        mixed_order(["insult", "physical_harm"], 0.5, seed=0)
    with pytest.raises(ValueError, match="answer_share"):
        load_config(None, ["sft.answer_share=1.0"])


def test_sft_makes_the_demonstrations_likelier_and_writes_a_folder_stage_c_loads(tmp_path):
    config = sft_config(tmp_path, "sft.epochs=8", "sft.learning_rate=1e-3", "sft.samples_per_batch=2")
    tokenizer = load_tokenizer(config.policy)
    before = load_causal_lm(config.policy)
    nll_before = [reply_nll(before, tokenizer, r) for r in RECORDS]

    folder = run_sft(config)

    assert folder == default_sft_dir(config) == tmp_path / "runs" / "warm-sft"
    assert (folder / "model.safetensors").is_file()
    after = load_causal_lm(ModelSpec(name_or_path=str(folder)))  # as the learner and the engines load it
    nll_after = [reply_nll(after, load_tokenizer(ModelSpec(name_or_path=str(folder))), r) for r in RECORDS]
    assert all(a < b - 1.0 for a, b in zip(nll_after, nll_before, strict=True)), (nll_before, nll_after)
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["records"] == 2 and manifest["optimizer_steps"] == 8  # one batch of two, eight epochs
    assert manifest["sft"]["field"] == "reply" and manifest["policy"] == "tiny:qwen2"
    assert len(manifest["losses"]) == 8 and manifest["losses"][-1] < manifest["losses"][0]


def test_a_folder_that_holds_something_is_kept_unless_overwrite(tmp_path):
    config = sft_config(tmp_path, "sft.epochs=1")
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(WouldOverwriteError, match="--overwrite"):
        run_sft(config, target)
    assert (target / "notes.txt").read_text() == "mine"


def test_the_command_prints_the_folder(tmp_path):
    from typer.testing import CliRunner

    dataset = write_dataset(tmp_path / "data", [*RECORDS, BENIGN])
    config = tmp_path / "warm.yaml"  # a benign source, as the dataset's benign record needs
    config.write_text(
        "data:\n  teacher: {backend: import}\n  sources:\n    - kind: seed\n"
        "    - {kind: table, path: benign.jsonl, response_column: reply, fixed_category: benign}\n",
        encoding="utf-8",
    )
    overrides = ["policy.name_or_path=tiny:qwen2", f"data.dataset_dir={dataset}", "sft.answer_share=0.5", "sft.epochs=1"]
    result = CliRunner().invoke(app, ["sft", "--config", str(config), *overrides, "--out", str(tmp_path / "warm")])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(str(tmp_path / "warm"))
    assert (tmp_path / "warm" / "model.safetensors").is_file()
    manifest = json.loads((tmp_path / "warm" / MANIFEST_FILE).read_text())
    assert (manifest["records"], manifest["rows"]) == (3, 4)  # the benign record twice, against two refusals
