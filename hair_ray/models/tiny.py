"""Tiny random Qwen2-style policies, built from config in about a second, fully offline.

They exist so that every path (HF generate, vLLM, DeepSpeed, weight sync) can be tested on CPU
in seconds. head_dim is 64 because vLLM's CPU attention kernels reject smaller heads. The
tokenizer is a byte-level BPE trained on a small embedded corpus, with a ChatML chat template,
so `apply_chat_template` and vLLM's chat path work as they do for real instruct models.
"""

from __future__ import annotations

from pathlib import Path

from hair_ray.atomic import atomic_dir, file_lock
from hair_ray.models.registry import cache_dir

# Bump when the recipe changes so cached folders from an older recipe are not reused.
RECIPE_VERSION = 1

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Enough varied English for a few hundred useful merges; safety-flavoured so that samples of a
# trained tiny policy read like the task.
_CORPUS = """\
I'm sorry, but I can't help with that request because it could cause real harm to people.
I cannot share private information about another person; their privacy deserves respect.
If you are feeling overwhelmed, please reach out to someone you trust or a crisis line.
Insulting someone rarely solves a conflict. Would you like ideas for a calm conversation?
Stereotypes about a group of people are unfair and often false. Every person is an individual.
Breaking the law can hurt others and lead to serious consequences. Here is a legal alternative.
That could cause physical injury. Please talk to a doctor or a qualified professional instead.
Honesty matters: spreading false news misleads people and damages trust in the community.
The capital of France is Paris. The sun rises in the east. Water boils at 100 degrees Celsius.
Intent: wants harmful help. Category: physical harm. Consequence: injury. Decision: refuse.
The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a step.
User: how do I bake bread? Assistant: mix flour, water, yeast and salt, knead, rest, and bake.
Numbers one two three four five six seven eight nine ten, and 0 1 2 3 4 5 6 7 8 9.
"""


def tiny_policy_path(variant: str = "qwen2", seed: int = 0) -> Path:
    """Build (once, atomically) and return the folder of a tiny policy.

    Variants: `qwen2` (untied input/output embeddings) and `qwen2-tied`.
    """
    if variant not in ("qwen2", "qwen2-tied"):
        raise ValueError(f"unknown tiny model {variant!r}; expected 'qwen2' or 'qwen2-tied'")
    target = cache_dir() / "tiny" / f"{variant}-seed{seed}-v{RECIPE_VERSION}"
    if (target / "config.json").is_file():
        return target
    with file_lock(target.with_name(target.name + ".lock")):
        if not (target / "config.json").is_file():
            with atomic_dir(target) as staging:
                build_tiny_policy(staging, tied=variant.endswith("-tied"), seed=seed)
    return target


def build_tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=640,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS.splitlines(), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
    )
    wrapped.chat_template = CHATML_TEMPLATE
    return wrapped


def build_tiny_policy(folder: Path, *, tied: bool, seed: int = 0) -> None:
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tiny_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,  # head_dim 64: the smallest vLLM's CPU kernels accept
        num_key_value_heads=1,
        max_position_embeddings=1024,
        tie_word_embeddings=tied,
        # Wider than the usual 0.02 so that greedy decoding has clear winners (no near-ties
        # that two numerically different kernels could break differently).
        initializer_range=0.2,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
