"""Train the seven shadow reward models by IRL (docs/architecture.md §1, stage B), as Ray tasks.

Reads top to bottom like the stage:

    records   = read_training_records(config)          # stage A's train.jsonl, or the seed set
    split     = split_heldout(records)                 # per category, by prompt
    for round in 1..irl.rounds:
        negatives = sample ỹ ~ π_round for every prompt  (one Ray task, the rollout backend)
        models    = train_category × 7                   (Ray tasks sharing the cluster)
    write DIR/<category>/ and DIR/report.json

Each training task is plain torch (small backbones; a DeepSpeed / Ray Train TorchTrainer path
for 7B backbones is a follow-up, see docs/reward_models.md). Tasks reserve
`reward.train_cpus_per_model` CPUs and `reward.num_gpus_per_model` (fractional) GPUs, so on a CPU
machine they queue within the cores and on a GPU machine several share one GPU.

The folders are written by the tasks themselves, so on a multi-node cluster `reward.models_dir`
must be shared storage (as Ray Train's storage_path would be). All of a run's files go to a
staging folder beside `reward.models_dir` (`.NAME.staging`) and replace it in one rename when
the seven are done: an interrupted run leaves the previous models whole, never a mix. A
`models_dir` holding models is replaced only with `overwrite` (`--overwrite`). `report.json`
is the manifest: its `run_id` is in every model's metadata, and stage C checks they agree.

Rounds (`irl.rounds > 1`, the bilevel variant): each round re-samples the negatives from the
policy returned by `policy_for_round` and continues training from the previous round's models.
The default (`round_policy`) samples round 1 from π_ref and rounds 2.. from
`irl.round_policies`, e.g. a policy exported (hair_ray/train/export.py) after GRPO-S against
round 1's models; without them, π_ref every round (fresh samples, same policy). No GRPO runs
inside stage B: the user alternates the stages (docs/reward_models.md).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hair_ray.categories import ALL_CATEGORY_NAMES, CATEGORY_NAMES
from hair_ray.config import ModelSpec, RewardConfig, RunConfig, config_hash
from hair_ray.errors import WouldOverwriteError
from hair_ray.fingerprint import json_fingerprint
from hair_ray.reward.negatives import NegativeSet, Pair, read_negatives_file, sample_negatives_in_ray

__all__ = [
    "TrainingDataError",
    "evaluate_pairs",
    "largest_first",
    "read_training_records",
    "split_heldout",
    "train_category",
    "train_reward_models",
    "training_data_hash",
]

log = logging.getLogger("hair_ray.reward")
REPORT_FILE = "report.json"


class TrainingDataError(ValueError):
    """The training records are missing or unusable; the message names the file."""


def trained_categories(models_dir: str | Path) -> list[str]:
    """The categories whose model folder `models_dir` holds, in the categories' order."""
    root = Path(models_dir)
    return [c for c in ALL_CATEGORY_NAMES if (root / c).is_dir()]


def held_models(models_dir: str | Path) -> list[str]:
    """What of a `reward train` output `models_dir` holds (empty: nothing to lose)."""
    report = [REPORT_FILE] if (Path(models_dir) / REPORT_FILE).is_file() else []
    return trained_categories(models_dir) + report


def check_models_dir_free(models_dir: str | Path, *, overwrite: bool) -> None:
    """Stop before training when `models_dir` holds reward models and `overwrite` is off."""
    held = held_models(models_dir)
    if held and not overwrite:
        raise WouldOverwriteError(
            f"reward.models_dir {models_dir} holds reward models ({', '.join(held)}): pass --overwrite to replace "
            "them, or train into another folder with reward.models_dir=NEW_DIR"
        )


def _staging_dir(out_dir: Path) -> Path:
    staging = out_dir.with_name(f".{out_dir.name}.staging")
    if staging.exists():
        shutil.rmtree(staging)  # an interrupted run's: incomplete by construction
    staging.mkdir(parents=True)
    return staging


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def read_jsonl_records(path: Path) -> list[dict[str, Any]]:
    """Stage A records ({id, source, category, prompt, drafts, reply, text}), one per line."""
    from hair_ray.data.records import read_records

    if not path.is_file():
        raise TrainingDataError(
            f"{path} does not exist; build the dataset first (`hair-ray data build`) or set "
            f"reward.train_source=seed to train on the embedded seed demonstrations"
        )
    try:
        return read_records(path)  # categories normalised, checked
    except ValueError as exc:  # names file:line already
        raise TrainingDataError(str(exc)) from None


def read_training_records(config: RunConfig) -> tuple[list[dict[str, Any]], str]:
    """The demonstrations to train on, and where they came from (for the report)."""
    if config.reward.train_source == "seed":
        from hair_ray.data.seed_data import load_seed_records

        return load_seed_records(), "seed"
    path = Path(config.reward.dataset_dir or config.data.dataset_dir) / "train.jsonl"
    return read_jsonl_records(path), str(path)


def split_heldout(records: list[dict[str, Any]], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Per category, hold out `fraction` of the prompts (not pairs: no prompt in both sides).

    Deterministic in (ids, seed). At least one prompt is held out when fraction > 0 and the
    category has two or more, and at least one always stays for training.
    """
    by_category: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_category[record["category"]].append(record)
    train, heldout = [], []
    for category in sorted(by_category):
        group = sorted(by_category[category], key=lambda r: str(r["id"]))
        random.Random(f"{seed}:{category}").shuffle(group)
        n_out = round(fraction * len(group))
        if fraction > 0 and len(group) >= 2:
            n_out = max(n_out, 1)
        n_out = min(n_out, len(group) - 1)
        heldout.extend(group[:n_out])
        train.extend(group[n_out:])
    return train, heldout


def training_data_hash(pairs: list[Pair]) -> str:
    """A short hash of exactly what a model was trained on (recorded in its metadata)."""
    return json_fingerprint(sorted((p.record_id, p.sample_index, p.demonstration, p.negative) for p in pairs))


# --------------------------------------------------------------------------------------------
# one category (runs inside a Ray task)
# --------------------------------------------------------------------------------------------


def _batch_rewards(model, tokenizer, pairs: list[Pair], max_length_tokens: int, device):
    """One forward over demonstrations and samples together; returns (r_demo, r_sample)."""
    from hair_ray.models.reward_model import encode_pairs

    prompts = [p.prompt for p in pairs] * 2
    responses = [p.demonstration for p in pairs] + [p.negative for p in pairs]
    batch = encode_pairs(tokenizer, prompts, responses, head=model.head_kind, max_length_tokens=max_length_tokens)
    rewards = model(**{k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
    return rewards[: len(pairs)], rewards[len(pairs) :]


def evaluate_pairs(
    model, tokenizer, pairs: list[Pair], *, max_length_tokens: int, pairs_per_batch: int = 16
) -> dict[str, float] | None:
    """Loss, pairwise accuracy and margin statistics over `pairs` (None when there are none)."""
    import torch

    from hair_ray.algo.irl import bradley_terry_loss, margin_stats, pairwise_accuracy

    if not pairs:
        return None
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    demo, sample = [], []
    with torch.no_grad():
        for start in range(0, len(pairs), pairs_per_batch):
            d, s = _batch_rewards(model, tokenizer, pairs[start : start + pairs_per_batch], max_length_tokens, device)
            demo.append(d.float().cpu())
            sample.append(s.float().cpu())
    model.train(was_training)
    r_demo, r_sample = torch.cat(demo), torch.cat(sample)
    margins = margin_stats(r_demo, r_sample)
    return {
        "pairs": len(pairs),
        "loss": float(bradley_terry_loss(r_demo, r_sample)),
        "accuracy": float(pairwise_accuracy(r_demo, r_sample)),
        "margin_mean": float(margins.mean),
        "margin_std": float(margins.std),
        "margin_min": float(margins.min),
    }


def train_category(
    category: str,
    train_pairs: list[Pair],
    heldout_pairs: list[Pair],
    reward: RewardConfig,
    *,
    folder: str,
    seed: int,
    init_folder: str | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one category's reward model on its pairs, save it to `folder`, return its metrics.

    `init_folder`: continue from that saved model (the previous IRL round) instead of a fresh
    head on the pretrained backbone.
    """
    import torch

    from hair_ray import __version__
    from hair_ray.algo.irl import bradley_terry_loss, pairwise_accuracy
    from hair_ray.models.reward_model import (
        RewardModelMetadata,
        build_reward_model,
        load_reward_model,
        save_reward_model,
    )

    if not train_pairs:
        raise TrainingDataError(f"category {category!r} has no training pairs")
    start_time = time.perf_counter()
    irl = reward.irl
    torch.manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if init_folder is not None:
        loaded = load_reward_model(init_folder, category=category, backbone=reward.backbone.name_or_path, device=device)
        model, tokenizer = loaded.model, loaded.tokenizer
    else:
        model, tokenizer = build_reward_model(reward.backbone, reward.head)
        model.to(device)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=irl.learning_rate, weight_decay=irl.weight_decay
    )
    evaluate = lambda: evaluate_pairs(  # noqa: E731
        model, tokenizer, heldout_pairs, max_length_tokens=irl.max_length_tokens, pairs_per_batch=irl.pairs_per_batch
    )
    heldout_before = evaluate()
    loss_curve: list[float] = []
    heldout_curve: list[float] = []
    train_accuracy: list[float] = []
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _epoch in range(irl.epochs):
        order = torch.randperm(len(train_pairs), generator=generator).tolist()
        wins = 0.0
        for begin in range(0, len(order), irl.pairs_per_batch):
            batch = [train_pairs[i] for i in order[begin : begin + irl.pairs_per_batch]]
            r_demo, r_sample = _batch_rewards(model, tokenizer, batch, irl.max_length_tokens, device)
            loss = bradley_terry_loss(r_demo.float(), r_sample.float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), irl.grad_clip)
            optimizer.step()
            loss_curve.append(loss.item())
            wins += float(pairwise_accuracy(r_demo.detach(), r_sample.detach())) * len(batch)
        train_accuracy.append(wins / len(train_pairs))
        after_epoch = evaluate()
        if after_epoch is not None:
            heldout_curve.append(after_epoch["loss"])
    heldout_after = evaluate()

    data_hash = training_data_hash(train_pairs)
    metadata = RewardModelMetadata(
        category=category,
        backbone=reward.backbone.name_or_path,
        backbone_model_type=str(model.backbone.config.model_type),
        head=model.head_kind,
        training_data_hash=data_hash,
        hair_ray_version=__version__,
        max_length_tokens=irl.max_length_tokens,
        extra=dict(extra_metadata or {}, pairs_train=len(train_pairs), pairs_heldout=len(heldout_pairs)),
    )
    model.to("cpu")
    save_reward_model(folder, model, tokenizer, metadata)
    return {
        "category": category,
        "folder": folder,
        "training_data_hash": data_hash,
        "pairs_train": len(train_pairs),
        "pairs_heldout": len(heldout_pairs),
        "prompts_train": len({p.record_id for p in train_pairs}),
        "prompts_heldout": len({p.record_id for p in heldout_pairs}),
        "heldout_before": heldout_before,
        "heldout": heldout_after,
        "train_loss_curve": loss_curve,
        "train_accuracy_per_epoch": train_accuracy,
        "heldout_loss_per_epoch": heldout_curve,
        "wall_s": time.perf_counter() - start_time,
    }


# --------------------------------------------------------------------------------------------
# the seven, on the cluster
# --------------------------------------------------------------------------------------------


def largest_first(by_category: dict[str, tuple[list[Pair], list[Pair]]]) -> list[str]:
    """Categories by training pairs, most first (ties in category order).

    Ray starts queued tasks of one shape about in the order they were submitted, so the longest
    goes first: a benign category with several times the pairs of the others, started last, would
    run alone with the other cores idle (longest-processing-time scheduling).
    """
    return sorted(by_category, key=lambda category: -len(by_category[category][0]))


def _write_negatives(path: Path, negatives: NegativeSet) -> None:
    """Keep the sampled negatives next to the models: the numbers can then be inspected."""
    from hair_ray.atomic import atomic_write_text

    lines = [json.dumps(asdict(pair), ensure_ascii=False) for pair in negatives.pairs]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def round_policy(config: RunConfig, round_index: int) -> ModelSpec:
    """The policy whose samples are the negatives of round `round_index` (0-based): `policy` for
    round 1, then `reward.irl.round_policies` in order (or `policy` again when none are named)."""
    named = config.reward.irl.round_policies
    if round_index == 0 or not named:
        return config.policy
    return config.policy.model_copy(update={"name_or_path": named[round_index - 1]})


def train_reward_models(
    config: RunConfig,
    *,
    records: list[dict[str, Any]] | None = None,
    policy_for_round: Callable[[int], ModelSpec] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train one reward model per category on the Ray cluster; write the folders and report.json.

    Needs `ray.init()` done by the caller (the CLI, a test fixture, a Ray job). `records`
    overrides what the config points at; `policy_for_round(r)` (r = 0, 1, ...) gives the policy
    that samples the negatives of round r (default: `round_policy`).
    """
    import ray

    from hair_ray.atomic import atomic_write_text, replace_folder

    start_time = time.perf_counter()
    reward = config.reward
    out_dir = Path(reward.models_dir)
    source = "given"
    if records is None:
        records, source = read_training_records(config)
    counts = Counter(r["category"] for r in records)
    missing = [c for c in CATEGORY_NAMES if counts[c] == 0]
    if missing:
        raise TrainingDataError(f"{source}: no demonstrations for {', '.join(missing)} (each of the seven needs some)")
    # The seven always; `benign` when stage A had a benign source.
    categories = [c for c in ALL_CATEGORY_NAMES if counts[c]]
    check_models_dir_free(out_dir, overwrite=overwrite)
    train_records, heldout_records = split_heldout(records, reward.irl.heldout_fraction, config.seed)
    heldout_ids = {str(r["id"]) for r in heldout_records}
    policy_for_round = policy_for_round or (lambda round_index: round_policy(config, round_index))
    options: dict[str, Any] = {"num_cpus": reward.train_cpus_per_model, "num_gpus": reward.num_gpus_per_model}
    if reward.num_gpus_per_model > 0:
        options["max_calls"] = 1  # the worker exits after its task: its CUDA memory is freed
    # max_calls is not allowed in .options(). Ray's stubs type a remote function's positional
    # parameters only, and none fits train_category's keyword-only ones.
    train_task: Any = ray.remote(**options)(train_category)  # type: ignore[arg-type]

    run_id = uuid.uuid4().hex[:12]
    staging = _staging_dir(out_dir)
    rounds: list[dict[str, Any]] = []
    results: dict[str, dict[str, Any]] = {}
    for round_index in range(reward.irl.rounds):
        policy = policy_for_round(round_index)
        reused = reward.irl.negatives_file if round_index == 0 else None
        log.info(
            "round %d: %d negatives per prompt from %s",
            round_index + 1,
            reward.irl.negatives_per_prompt,
            reused or policy.name_or_path,
        )
        if reused:
            negatives = read_negatives_file(reused, records, reward.irl.demonstration_field, reward.irl.benign_refusal_negatives)
        else:
            negatives = sample_negatives_in_ray(
                records,
                policy,
                reward,
                config.rollout,
                seed=config.seed + 1000 * round_index,
                num_cpus=config.placement.cpus_per_rollout_worker,
                num_gpus=config.placement.gpus_per_rollout_worker,
            )
        _write_negatives(staging / f"negatives_round{round_index + 1}.jsonl", negatives)
        by_category: dict[str, tuple[list[Pair], list[Pair]]] = {c: ([], []) for c in categories}
        for pair in negatives.pairs:
            by_category[pair.category][1 if pair.record_id in heldout_ids else 0].append(pair)
        submitted = {
            category: train_task.remote(
                category,
                *by_category[category],
                reward,
                folder=str(staging / category),
                seed=config.seed + ALL_CATEGORY_NAMES.index(category),
                init_folder=str(staging / category) if round_index > 0 else None,
                extra_metadata={"round": round_index + 1, "policy": policy.name_or_path, "run_id": run_id},
            )
            for category in largest_first(by_category)
        }
        futures = {category: submitted[category] for category in categories}
        results = {}
        for category, ref in futures.items():
            results[category] = ray.get(ref)
            # Tasks finish in any order; reporting in category order keeps the log readable.
            log.info(
                "round %d: %s done (%d/%d), held-out accuracy %s",
                round_index + 1,
                category,
                len(results),
                len(futures),
                (results[category]["heldout"] or {}).get("accuracy"),
            )
        for category, result in results.items():
            result["dropped_equal_to_demo"] = negatives.dropped_equal[category]
        rounds.append(
            {
                "round": round_index + 1,
                "policy": negatives.policy or policy.name_or_path,  # a negatives_file: its path
                "negatives_backend": negatives.backend,
                "samples": negatives.samples,
                "pairs": len(negatives.pairs),
                "dropped_equal_to_demo": dict(negatives.dropped_equal),
                "negatives_wall_s": negatives.wall_s,
                "heldout_accuracy": {c: (r["heldout"] or {}).get("accuracy") for c, r in results.items()},
            }
        )

    report = {
        "run_id": run_id,  # in every model's metadata: stage C checks the folder holds one run
        "config_hash": config_hash(config),
        "source": source,
        "backbone": reward.backbone.name_or_path,
        "policy": config.policy.name_or_path,
        "records": len(records),
        "prompts_train": len(train_records),
        "prompts_heldout": len(heldout_records),
        "rounds": rounds,
        "categories": results,
        "wall_s": time.perf_counter() - start_time,
    }
    for result in results.values():
        result["folder"] = str(out_dir / result["category"])  # where it lives after the swap
    atomic_write_text(staging / REPORT_FILE, json.dumps(report, indent=2) + "\n")
    replace_folder(staging, out_dir)
    return report
