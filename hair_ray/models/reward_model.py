"""A shadow reward model r_j(x, y): a backbone plus a scalar head (docs/architecture.md §1, stage B).

Pooling, by backbone kind:
- causal LM (`last_token`): the hidden state of the last non-pad token, found from the
  attention mask (never from pad-token ids, which some tokenizers share with EOS), so left and
  right padding give the same score;
- encoder (`mean_pool`): the mean of the hidden states over the mask.

Position ids are derived from the mask as well, so a left-padded row sees the same positions
as its right-padded twin.

On disk a reward model is one folder: `reward_model.safetensors` (backbone and head),
`reward_model.json` (metadata, checked on load), and the backbone's `config.json` and
tokenizer files, so the folder loads without the original backbone weights.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from hair_ray.atomic import atomic_dir
from hair_ray.config import ModelSpec

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = [
    "FORMAT_VERSION",
    "HeadKind",
    "LoadedRewardModel",
    "RewardModel",
    "RewardModelError",
    "RewardModelMetadata",
    "build_reward_model",
    "encode_pairs",
    "last_token_pool",
    "load_reward_model",
    "mean_pool",
    "read_metadata",
    "resolve_head",
    "save_reward_model",
    "score_pairs",
]

log = logging.getLogger("hair_ray.reward")

HeadKind = Literal["last_token", "mean_pool"]
FORMAT_VERSION = 1
WEIGHTS_FILE = "reward_model.safetensors"
METADATA_FILE = "reward_model.json"

# Bidirectional encoders: mean pooling. Anything whose architecture is *ForCausalLM: last token.
ENCODER_MODEL_TYPES = frozenset(
    {
        "bert",
        "roberta",
        "xlm-roberta",
        "distilbert",
        "albert",
        "electra",
        "mpnet",
        "deberta",
        "deberta-v2",
        "modernbert",
        "camembert",
        "nomic_bert",
    }
)


class RewardModelError(ValueError):
    """A reward-model folder is missing, unreadable, or not the model that was asked for."""


# --------------------------------------------------------------------------------------------
# pooling (pure tensor functions)
# --------------------------------------------------------------------------------------------


def last_token_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """[B, T, H] -> [B, H]: the hidden state at each row's last position whose mask is 1.

    Works for left padding (last valid = T-1), right padding (last valid = length-1) and any
    mix, because it reads the mask, not the pad-token id.
    """
    mask = attention_mask.bool()
    if not bool(mask.any(dim=-1).all()):
        raise ValueError("a row of attention_mask is all zeros: it has no token to pool")
    positions = torch.arange(mask.shape[-1], device=mask.device).expand_as(mask)
    last = torch.where(mask, positions, torch.full_like(positions, -1)).max(dim=-1).values
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """[B, T, H] -> [B, H]: mean over positions whose mask is 1.

    Padding is selected away (torch.where), not multiplied by 0: a padded position can hold
    NaN (a fully masked attention row), and 0 · NaN = NaN.
    """
    mask = attention_mask.bool()
    if not bool(mask.any(dim=-1).all()):
        raise ValueError("a row of attention_mask is all zeros: it has no token to pool")
    kept = torch.where(mask[..., None], hidden, torch.zeros_like(hidden))
    return kept.sum(dim=1) / mask.sum(dim=1, keepdim=True).to(hidden.dtype)


def position_ids_from_mask(attention_mask: Tensor) -> Tensor:
    """0, 1, 2, ... over the valid tokens of each row (pads get 0): padding-side invariant."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------


def resolve_head(backbone_config: Any, requested: str = "auto") -> HeadKind:
    """`auto` picks by backbone: `last_token` for causal LMs, `mean_pool` for encoders."""
    if requested in ("last_token", "mean_pool"):
        return requested  # type: ignore[return-value]
    if requested != "auto":
        raise ValueError(f"reward.head: unknown head {requested!r}; expected auto, last_token or mean_pool")
    architectures = getattr(backbone_config, "architectures", None) or []
    if any(name.endswith("ForCausalLM") for name in architectures):
        return "last_token"
    model_type = getattr(backbone_config, "model_type", "")
    if model_type in ENCODER_MODEL_TYPES:
        return "mean_pool"
    raise ValueError(
        f"reward.head: cannot tell whether backbone model_type {model_type!r} (architectures "
        f"{architectures}) is a causal LM or an encoder; set reward.head to last_token or mean_pool"
    )


class RewardModel(nn.Module):
    """Backbone (a Hugging Face base model, no LM head) plus a linear scalar head."""

    def __init__(self, backbone: PreTrainedModel, head: HeadKind):
        super().__init__()
        self.backbone = backbone
        self.head_kind: HeadKind = head
        hidden = int(backbone.config.hidden_size)
        self.score_head = nn.Linear(hidden, 1)
        # A small head keeps the initial rewards near 0, so the first BT losses sit near log 2
        # instead of being dominated by a random offset between the two texts of a pair.
        nn.init.normal_(self.score_head.weight, std=1.0 / (hidden + 1) ** 0.5)
        nn.init.zeros_(self.score_head.bias)
        self.score_head.to(dtype=next(backbone.parameters()).dtype)
        self._takes_position_ids = "position_ids" in inspect.signature(backbone.forward).parameters

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """[B, T] token ids and mask -> [B] rewards."""
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if self._takes_position_ids:
            kwargs["position_ids"] = position_ids_from_mask(attention_mask)
        hidden = self.backbone(**kwargs).last_hidden_state
        pool = last_token_pool if self.head_kind == "last_token" else mean_pool
        pooled = pool(hidden, attention_mask)
        return self.score_head(pooled.to(self.score_head.weight.dtype)).squeeze(-1)


def encode_pairs(tokenizer, prompts: list[str], responses: list[str], *, head: HeadKind, max_length_tokens: int):
    """Tokenize (prompt, response) pairs the way the backbone reads a conversation.

    Causal LMs get the chat template (user prompt, assistant response) when the tokenizer has
    one, truncated from the left: the last token summarises the sequence, so the response end
    must survive. Encoders get the pair as two segments ([CLS] prompt [SEP] response [SEP]).
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    max_length = min(max_length_tokens, getattr(tokenizer, "model_max_length", max_length_tokens) or max_length_tokens)
    if head == "last_token":
        if getattr(tokenizer, "chat_template", None):
            texts = [
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False
                )
                for p, r in zip(prompts, responses)
            ]
            add_special = False
        else:
            texts = [f"{p}\n{r}" for p, r in zip(prompts, responses)]
            add_special = True
        side = tokenizer.truncation_side
        tokenizer.truncation_side = "left"
        try:
            return tokenizer(
                texts,
                add_special_tokens=add_special,
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
        finally:
            tokenizer.truncation_side = side
    return tokenizer(prompts, responses, truncation="longest_first", max_length=max_length, padding=True, return_tensors="pt")


def _model_inputs(batch, device: torch.device) -> dict[str, Tensor]:
    keys = ("input_ids", "attention_mask", "token_type_ids")
    return {k: batch[k].to(device) for k in keys if k in batch}


@torch.no_grad()
def score_pairs(
    model: RewardModel,
    tokenizer,
    prompts: list[str],
    responses: list[str],
    *,
    max_length_tokens: int,
    batch_size: int = 32,
) -> list[float]:
    """Rewards of (prompt, response) pairs, in input order; batches sorted by length.

    Sorting by length before batching cuts padding (Do-Not-Answer replies range from one line
    to a page); the scores are put back in input order.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + len(responses[i]))
    scores = [0.0] * len(prompts)
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = encode_pairs(
                tokenizer,
                [prompts[i] for i in chunk],
                [responses[i] for i in chunk],
                head=model.head_kind,
                max_length_tokens=max_length_tokens,
            )
            values = model(**_model_inputs(batch, device)).float().cpu().tolist()
            for i, value in zip(chunk, values):
                scores[i] = value
    finally:
        model.train(was_training)
    return scores


# --------------------------------------------------------------------------------------------
# building, saving, loading
# --------------------------------------------------------------------------------------------


def _load_tokenizer(path_or_spec: ModelSpec | str):
    from transformers import AutoTokenizer

    if isinstance(path_or_spec, ModelSpec):
        from hair_ray.models.loading import load_tokenizer

        tokenizer = load_tokenizer(path_or_spec)
    else:
        tokenizer = AutoTokenizer.from_pretrained(path_or_spec)
    if tokenizer.pad_token is None:
        # Llama-style tokenizers have no pad token; any id works because pooling reads the mask.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_reward_model(spec: ModelSpec, head: str = "auto", *, dtype: torch.dtype = torch.float32) -> tuple[RewardModel, Any]:
    """A fresh reward model on the pretrained backbone `spec`, and its tokenizer."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    from hair_ray.models.loading import _from_pretrained  # one place for the offline error text

    # A causal checkpoint loaded as its base model always reports its LM head as "unexpected";
    # that warning is noise here (one per model, seven per run), so it is silenced for the load.
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        backbone = _from_pretrained(AutoModel, spec, use_safetensors=True, dtype=dtype)
    finally:
        hf_logging.set_verbosity(previous)
    kind = resolve_head(backbone.config, head)
    return RewardModel(backbone, kind), _load_tokenizer(spec)


@dataclass
class RewardModelMetadata:
    """What `reward_model.json` records; `load_reward_model` checks it against the request."""

    category: str
    backbone: str  # the configured name_or_path (e.g. builtin:all-minilm-l6-v2)
    backbone_model_type: str
    head: HeadKind
    training_data_hash: str
    hair_ray_version: str
    max_length_tokens: int
    format: int = FORMAT_VERSION
    created_unix_s: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)  # round, pair counts, ... (informative)


def save_reward_model(folder: str | Path, model: RewardModel, tokenizer, metadata: RewardModelMetadata) -> Path:
    """Write the folder atomically: a reader sees the previous model or the new one, never half."""
    from safetensors.torch import save_model

    folder = Path(folder)
    with atomic_dir(folder) as staging:
        # save_model (not save_file) drops the duplicates of tied tensors instead of failing.
        save_model(model, str(staging / WEIGHTS_FILE))
        model.backbone.config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / METADATA_FILE).write_text(json.dumps(asdict(metadata), indent=2) + "\n", encoding="utf-8")
    return folder


def read_metadata(folder: str | Path) -> RewardModelMetadata:
    folder = Path(folder)
    path = folder / METADATA_FILE
    if not path.is_file():
        raise RewardModelError(
            f"{folder}: not a reward model folder ({METADATA_FILE} is missing); train one with `hair-ray reward train`"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return RewardModelMetadata(**raw)
    except (json.JSONDecodeError, TypeError) as exc:
        raise RewardModelError(f"{path}: unreadable reward-model metadata ({exc})") from None


@dataclass
class LoadedRewardModel:
    model: RewardModel
    tokenizer: Any
    metadata: RewardModelMetadata
    folder: Path


def load_reward_model(
    folder: str | Path,
    *,
    category: str | None = None,
    backbone: str | None = None,
    training_data_hash: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> LoadedRewardModel:
    """Load a saved reward model; refuse it when its metadata differs from what is asked.

    `category`, `backbone` and `training_data_hash`, when given, must equal the recorded values;
    a mismatch raises `RewardModelError` naming the folder, the field, expected and found. A
    different hair_ray version only logs a warning (the format version is what must match).
    """
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModel

    from hair_ray import __version__

    folder = Path(folder)
    meta = read_metadata(folder)
    checks = {"format": FORMAT_VERSION, "category": category, "backbone": backbone, "training_data_hash": training_data_hash}
    for name, expected in checks.items():
        found = getattr(meta, name)
        if expected is not None and found != expected:
            raise RewardModelError(
                f"reward model {folder}: {METADATA_FILE} field {name!r} is {found!r}, expected "
                f"{expected!r}; point reward.models_dir at the right models or retrain them"
            )
    if meta.hair_ray_version != __version__:
        log.warning("reward model %s was saved by hair_ray %s, this is %s", folder, meta.hair_ray_version, __version__)
    config = AutoConfig.from_pretrained(folder)
    backbone_module = AutoModel.from_config(config, dtype=dtype)
    model = RewardModel(backbone_module, meta.head)
    missing, unexpected = load_model(model, str(folder / WEIGHTS_FILE), strict=False)
    if missing or unexpected:
        raise RewardModelError(
            f"reward model {folder}: {WEIGHTS_FILE} does not fit its config.json "
            f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
        )
    model.to(device).eval()
    return LoadedRewardModel(model, _load_tokenizer(str(folder)), meta, folder)
