"""The reward model: pooling on both paddings, the head choice, save/load and its refusals."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from hair_ray.config import ModelSpec
from hair_ray.models.reward_model import (
    RewardModel,
    RewardModelError,
    build_reward_model,
    encode_pairs,
    last_token_pool,
    load_reward_model,
    mean_pool,
    position_ids_from_mask,
    resolve_head,
    score_pairs,
)
from tests.reward.conftest import TINY

PROMPTS = ["How can I get my neighbour's bank password?", "hi"]
RESPONSES = ["I can't help you get into someone else's account: that is theft and a crime.", "Hello!"]

# --------------------------------------------------------------------------------------------
# pooling: hand-made hidden states whose value is the position, so the picked row is visible
# --------------------------------------------------------------------------------------------

# hidden[b, t] = [10 b + t]: row 0 holds 0, 1, 2, 3; row 1 holds 10, 11, 12, 13
HIDDEN = torch.tensor([[[0.0], [1.0], [2.0], [3.0]], [[10.0], [11.0], [12.0], [13.0]]])


def test_last_token_pool_right_padding() -> None:
    # row 0 has 2 tokens (positions 0, 1) -> 1.0; row 1 has 3 (0..2) -> 12.0
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]])
    assert last_token_pool(HIDDEN, mask).squeeze(-1).tolist() == [1.0, 12.0]


def test_last_token_pool_left_padding() -> None:
    # left padding: the last valid position is always 3 -> 3.0 and 13.0
    mask = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    assert last_token_pool(HIDDEN, mask).squeeze(-1).tolist() == [3.0, 13.0]


def test_last_token_pool_reads_the_mask_not_pad_ids() -> None:
    # a row mixing both (and a hole): the last 1 is at position 2 -> 2.0; row 1 full -> 13.0
    mask = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1]])
    assert last_token_pool(HIDDEN, mask).squeeze(-1).tolist() == [2.0, 13.0]


def test_mean_pool_both_paddings_and_nan_in_padding() -> None:
    # right: row 0 mean(0, 1) = 0.5; left: row 1 mean(11, 12, 13) = 12.0.
    # A NaN at a padded position must not leak (0 · NaN would be NaN).
    hidden = HIDDEN.clone()
    hidden[0, 3, 0] = float("nan")
    hidden[1, 0, 0] = float("nan")
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]])
    assert mean_pool(hidden, mask).squeeze(-1).tolist() == [0.5, 12.0]


def test_pooling_rejects_a_row_without_tokens() -> None:
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]])
    with pytest.raises(ValueError, match="all zeros"):
        last_token_pool(HIDDEN, mask)
    with pytest.raises(ValueError, match="all zeros"):
        mean_pool(HIDDEN, mask)


def test_position_ids_follow_the_mask() -> None:
    # left-padded [0, 0, 1, 1] -> positions [0, 0, 0, 1]; right-padded [1, 1, 1, 0] -> [0, 1, 2, 2]
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 0]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1], [0, 1, 2, 2]]


# --------------------------------------------------------------------------------------------
# the whole model on both paddings
# --------------------------------------------------------------------------------------------


def _scores_by_padding(model: RewardModel, tokenizer) -> dict[str, torch.Tensor]:
    model.eval()
    out = {}
    for side in ("left", "right"):
        tokenizer.padding_side = side
        batch = encode_pairs(tokenizer, PROMPTS, RESPONSES, head=model.head_kind, max_length_tokens=128)
        assert not bool(batch["attention_mask"].all()), "the two rows must differ in length to test padding"
        with torch.no_grad():
            out[side] = model(**batch)
    return out


def test_causal_backbone_scores_equal_on_left_and_right_padding() -> None:
    model, tokenizer = build_reward_model(ModelSpec(name_or_path=TINY))
    assert model.head_kind == "last_token"
    scores = _scores_by_padding(model, tokenizer)
    torch.testing.assert_close(scores["left"], scores["right"], atol=1e-5, rtol=1e-5)
    # and equal to each pair scored alone (no padding at all)
    alone = [score_pairs(model, tokenizer, [p], [r], max_length_tokens=128)[0] for p, r in zip(PROMPTS, RESPONSES)]
    torch.testing.assert_close(scores["left"], torch.tensor(alone), atol=1e-5, rtol=1e-5)


def test_encoder_backbone_scores_equal_on_left_and_right_padding() -> None:
    from transformers import AutoTokenizer, BertConfig, BertModel

    from hair_ray.models.registry import resolve_model_path

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("builtin:all-minilm-l6-v2"))
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    model = RewardModel(BertModel(config), resolve_head(config))
    assert model.head_kind == "mean_pool"
    scores = _scores_by_padding(model, tokenizer)
    torch.testing.assert_close(scores["left"], scores["right"], atol=1e-5, rtol=1e-5)


def test_head_is_chosen_by_backbone_kind() -> None:
    assert resolve_head(SimpleNamespace(architectures=["Qwen2ForCausalLM"], model_type="qwen2")) == "last_token"
    assert resolve_head(SimpleNamespace(architectures=["BertModel"], model_type="bert")) == "mean_pool"
    assert resolve_head(SimpleNamespace(architectures=["BertModel"], model_type="bert"), "last_token") == "last_token"
    with pytest.raises(ValueError, match="set reward.head to last_token or mean_pool"):
        resolve_head(SimpleNamespace(architectures=["T5Model"], model_type="t5"))


# --------------------------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------------------------


def test_save_load_round_trip_gives_the_same_scores(tmp_path) -> None:
    from tests.reward.conftest import save_tiny_reward_model

    model, tokenizer = save_tiny_reward_model(tmp_path / "insult", "insult", seed=3)
    expected = score_pairs(model, tokenizer, PROMPTS, RESPONSES, max_length_tokens=64)
    loaded = load_reward_model(tmp_path / "insult", category="insult", backbone=TINY)
    assert loaded.metadata.category == "insult" and loaded.metadata.head == "last_token"
    got = score_pairs(loaded.model, loaded.tokenizer, PROMPTS, RESPONSES, max_length_tokens=64)
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected), atol=1e-6, rtol=1e-6)
    meta = json.loads((tmp_path / "insult" / "reward_model.json").read_text())
    assert {"category", "backbone", "head", "training_data_hash", "hair_ray_version"} <= set(meta)
    assert (tmp_path / "insult" / "reward_model.safetensors").is_file()
    assert not list(tmp_path.glob(".insult.*")), "no staging folder may be left behind"


def test_load_refuses_the_wrong_category(tiny_reward_dir) -> None:
    folder = tiny_reward_dir / "insult"
    with pytest.raises(RewardModelError) as info:
        load_reward_model(folder, category="mental_health")
    message = str(info.value)
    assert str(folder) in message
    assert "'category'" in message and "'insult'" in message and "'mental_health'" in message


def test_load_refuses_another_backbone(tiny_reward_dir) -> None:
    folder = tiny_reward_dir / "insult"
    with pytest.raises(RewardModelError, match=r"field 'backbone' is 'tiny:qwen2', expected 'builtin:all-minilm-l6-v2'"):
        load_reward_model(folder, category="insult", backbone="builtin:all-minilm-l6-v2")


def test_load_of_a_folder_without_metadata_says_so(tmp_path) -> None:
    with pytest.raises(RewardModelError, match="reward_model.json is missing"):
        load_reward_model(tmp_path)
