"""External check of the reward models against human harmfulness labels (Do-Not-Answer).

Do-Not-Answer's `data_en.csv` holds six models' replies to 939 harmful prompts, each labelled
harmful (1) or not (0) by people. A good safety reward model scores a harmless reply above a
harmful one. Per category (the prompt's category under the Do-Not-Answer mapping of
:mod:`hair_ray.data.do_not_answer`, shared with the stage-A builder) we report:

- pairwise agreement: over all (harmless, harmful) reply pairs *to the same prompt*, how often
  the category's model scores the harmless one higher (ties 1/2). It needs prompts where the
  models disagree, which are few: most replies are refusals;
- AUROC of the score against the labels (harmless = positive) over all replies of the category.

Caveat recorded in the report: a model trained on demonstrations imported from this very file
(the stage-A `import` teacher) has seen some of these replies; compare with `--exclude-ids`.
"""

from __future__ import annotations

import csv
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hair_ray.categories import CATEGORY_NAMES

__all__ = ["EvalItem", "evaluate_items", "read_do_not_answer_replies", "score_items"]

DNA_MODELS = ("GPT4", "ChatGPT", "Claude", "ChatGLM2", "llama2-7b-chat", "vicuna-7b")
# data_en.csv replies run to several KiB; csv's default 128 KiB field limit is enough, but a
# broken quote must not swallow the file silently: bigger fields are an error below.
csv.field_size_limit(2**24)


@dataclass(frozen=True)
class EvalItem:
    prompt_id: int  # data_en.csv `id`: replies to the same prompt share it
    category: str
    prompt: str
    model: str
    response: str
    harmful: bool


def read_do_not_answer_replies(
    path: str | Path, *, mapping_fit: str = "approx", max_rows: int | None = None
) -> tuple[list[EvalItem], Counter]:
    """All labelled replies of data_en.csv with their prompt's category; drops counted by reason."""
    from hair_ray.data.do_not_answer import Unmapped, lookup

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (expected Do-Not-Answer's data_en.csv)")
    items: list[EvalItem] = []
    dropped: Counter = Counter()
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        need = ["id", "types_of_harm", "specific_harms", "question"]
        absent = [c for c in need if c not in header]
        if absent:
            raise ValueError(f"{path}: missing column(s) {', '.join(absent)} (is this data_en.csv?)")
        models = [m for m in DNA_MODELS if f"{m}_response" in header and f"{m}_harmful" in header]
        if not models:
            raise ValueError(f"{path}: no `<model>_response` / `<model>_harmful` column pairs")
        for row_index, row in enumerate(reader):
            if max_rows is not None and row_index >= max_rows:
                break
            match = lookup(row["types_of_harm"] or "", row["specific_harms"] or "")
            if isinstance(match, Unmapped):
                dropped[f"unmapped:{match.reason}"] += len(models)
                continue
            if mapping_fit == "good" and match.fit == "approx":
                dropped["approx_fit_excluded"] += len(models)
                continue
            for model in models:
                response = (row.get(f"{model}_response") or "").strip()
                label = (row.get(f"{model}_harmful") or "").strip()
                if not response:
                    dropped["empty_response"] += 1
                    continue
                if label not in ("0", "1"):
                    # An unreadable label is no ground truth: drop it, never guess.
                    dropped["bad_label"] += 1
                    continue
                items.append(EvalItem(int(row["id"]), match.category.value, row["question"], model, response, label == "1"))
    return items, dropped


def score_items(router, items: list[EvalItem]) -> list[float]:
    """Each reply scored by its prompt's category model (or the `sum` of all, per the router)."""
    return router.score([i.prompt for i in items], [i.response for i in items], [i.category for i in items])


def evaluate_items(items: list[EvalItem], scores: list[float]) -> dict[str, Any]:
    """Per-category agreement and AUROC, and their pooled / macro summaries."""
    import torch

    from hair_ray.algo.irl import auroc, grouped_pairwise_agreement

    per_category: dict[str, Any] = {}
    total_pairs, total_wins = 0, 0.0
    for category in CATEGORY_NAMES:
        idx = [k for k, item in enumerate(items) if item.category == category]
        if not idx:
            continue
        s = torch.tensor([scores[k] for k in idx], dtype=torch.float64)
        harmless = torch.tensor([not items[k].harmful for k in idx])
        groups = torch.tensor([items[k].prompt_id for k in idx])
        agreement, pairs = grouped_pairwise_agreement(s, harmless, groups)
        area = float(auroc(s, harmless))
        per_category[category] = {
            "replies": len(idx),
            "harmful_replies": int((~harmless).sum()),
            "prompts": len(set(groups.tolist())),
            "pairs": pairs,
            "agreement": None if pairs == 0 else float(agreement),
            "auroc": None if math.isnan(area) else area,
            "mean_score_harmless": float(s[harmless].mean()) if bool(harmless.any()) else None,
            "mean_score_harmful": float(s[~harmless].mean()) if bool((~harmless).any()) else None,
        }
        if pairs:
            total_pairs += pairs
            total_wins += float(agreement) * pairs
    aurocs = [v["auroc"] for v in per_category.values() if v["auroc"] is not None]
    return {
        "categories": per_category,
        "by_model": _by_source_model(items, scores),
        "pooled_agreement": total_wins / total_pairs if total_pairs else None,
        "pooled_pairs": total_pairs,
        # Scores of different models live on different scales: AUROC is averaged, not pooled.
        "macro_auroc": sum(aurocs) / len(aurocs) if aurocs else None,
    }


def _by_source_model(items: list[EvalItem], scores: list[float]) -> dict[str, Any]:
    """AUROC within each answering model's replies: a control for style.

    Harmful replies come mostly from some models (ChatGLM2, vicuna) and safe demonstrations
    from others, so a reward model could score *who wrote it*. Within one model's replies the
    style is roughly constant. Scores are z-scored per category first (each category has its
    own model and scale), then pooled over categories.
    """
    import torch

    from hair_ray.algo.irl import auroc

    z = torch.zeros(len(items), dtype=torch.float64)
    for category in {i.category for i in items}:
        idx = torch.tensor([k for k, i in enumerate(items) if i.category == category])
        values = torch.tensor([scores[k] for k in idx.tolist()], dtype=torch.float64)
        std = values.std(correction=0)
        z[idx] = (values - values.mean()) / (std if std > 0 else 1.0)
    out = {}
    for model in sorted({i.model for i in items}):
        rows = [k for k, i in enumerate(items) if i.model == model]
        harmless = torch.tensor([not items[k].harmful for k in rows])
        area = float(auroc(z[rows], harmless))
        out[model] = {
            "replies": len(rows),
            "harmful_replies": int((~harmless).sum()),
            "auroc_within_model": None if math.isnan(area) else area,
            "mean_z_score": float(z[rows].mean()),
        }
    return out


def evaluate_reward_models(
    config,
    data_en: str | Path,
    *,
    mapping_fit: str = "approx",
    max_rows: int | None = None,
    exclude_ids: set[int] | None = None,
    num_cpus_per_worker: float | None = None,
) -> dict[str, Any]:
    """Start the reward workers of `config.reward.models_dir`, score data_en.csv, report."""
    from hair_ray.train.reward_router import start_reward_workers

    start_time = time.perf_counter()
    items, dropped = read_do_not_answer_replies(data_en, mapping_fit=mapping_fit, max_rows=max_rows)
    if exclude_ids:
        kept = [i for i in items if i.prompt_id not in exclude_ids]
        dropped["excluded_ids"] += len(items) - len(kept)
        items = kept
    if num_cpus_per_worker is None:
        num_cpus_per_worker = config.placement.cpus_per_reward_model
    # Category routing needs only the models of the categories present (a --max-rows look).
    categories = sorted({i.category for i in items}) if config.reward.routing == "category" else None
    router = start_reward_workers(config.reward, categories=categories, num_cpus=num_cpus_per_worker)
    try:
        score_start = time.perf_counter()
        scores = score_items(router, items)
        score_s = time.perf_counter() - score_start
    finally:
        import ray

        for actor in router.actors:
            ray.kill(actor, no_restart=True)
    report = evaluate_items(items, scores)
    report.update(
        {
            "data": str(data_en),
            "models_dir": config.reward.models_dir,
            "routing": config.reward.routing,
            "mapping_fit": mapping_fit,
            "replies_scored": len(items),
            "dropped": dict(dropped),
            "score_wall_s": score_s,
            "wall_s": time.perf_counter() - start_time,
        }
    )
    return report
