"""`hair-ray sft`: a supervised warm start on stage A's demonstrations, before stage C.

An extension beyond the paper, which starts GRPO from the instruct model. GRPO learns only from
groups whose samples differ in reward. SmolLM2-135M-Instruct refuses in few of its samples on
harmful prompts, so with G = 4 most harmful groups hold four answers and teach nothing, whatever
the reward (docs/results.md, the oracle-reward control). One pass of supervised fine-tuning on
the demonstrations (refusals for the seven harm categories, answers for `benign`) puts both
behaviours among the policy's samples. Stage C then starts from the folder
(`policy.name_or_path=FOLDER`), which also makes it the KL reference, as an SFT model is in
OpenRLHF and verl.

TRL's `SFTTrainer` trains: one prompt-completion row a record (`sft.answer_share` repeats the
benign or the refusing ones to a chosen mix), in the chat format that stage C prompts with, the
loss on the completion's tokens only, a linear decay of the learning rate.
The folder is written atomically: the weights as safetensors, the tokenizer, and `sft.json`
(the settings, the dataset's fingerprint, the loss of every optimizer step).
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from pathlib import Path
from typing import Any

from hair_ray.atomic import atomic_dir
from hair_ray.config import RunConfig
from hair_ray.data.build import must_refuse
from hair_ray.errors import WouldOverwriteError
from hair_ray.fingerprint import json_fingerprint

MANIFEST_FILE = "sft.json"


def sft_rows(records: list[dict[str, Any]], field: str, source: str = "train.jsonl") -> list[dict[str, Any]]:
    """Prompt-completion rows in the conversational format (a user turn, the assistant's answer)."""
    rows = []
    for line, record in enumerate(records, start=1):
        answer = record.get(field)
        if not isinstance(answer, str) or not answer.strip():
            raise ValueError(f"{source} record {line} (id {record.get('id')!r}) has no {field!r} to train on (sft.field)")
        rows.append(
            {
                "prompt": [{"role": "user", "content": record["prompt"]}],
                "completion": [{"role": "assistant", "content": answer}],
            }
        )
    return rows


def mixed_order(categories: list[str], answer_share: float | None, seed: int) -> list[int]:
    """Indices of the rows to train on, `answer_share` of them answering (benign): every row once,
    and the side below its share repeated (whole passes, then a seeded draw without repetition
    for the remainder) until it has it. None: every row once, in order."""
    if answer_share is None:
        return list(range(len(categories)))
    answering = [i for i, category in enumerate(categories) if not must_refuse(category)]
    refusing = [i for i, category in enumerate(categories) if must_refuse(category)]
    if not answering or not refusing:
        have = "answering (benign)" if answering else "refusing"
        raise ValueError(
            f"sft.answer_share={answer_share} mixes refusing and answering demonstrations, and the dataset has only "
            f"{have} ones: add a benign source (data.sources, fixed_category: benign) or leave sft.answer_share unset"
        )
    # Rounded before the ceiling, so that a share the rows already have adds none.
    answers = max(len(answering), math.ceil(round(len(refusing) * answer_share / (1 - answer_share), 6)))
    refusals = max(len(refusing), math.ceil(round(len(answering) * (1 - answer_share) / answer_share, 6)))
    rng = random.Random(seed)
    return _repeated(refusing, refusals, rng) + _repeated(answering, answers, rng)


def _repeated(indices: list[int], count: int, rng: random.Random) -> list[int]:
    whole, remainder = divmod(count, len(indices))
    return indices * whole + rng.sample(indices, remainder)


def default_sft_dir(config: RunConfig) -> Path:
    return Path(config.output_dir) / f"{config.name}-sft"


def run_sft(config: RunConfig, out: str | Path | None = None, *, overwrite: bool = False) -> Path:
    """Fine-tune `policy` on `data.dataset_dir/train.jsonl`; returns the folder (default
    OUTPUT_DIR/NAME-sft). A non-empty folder is replaced only with `overwrite`."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from hair_ray.models.loading import load_causal_lm, load_tokenizer
    from hair_ray.train.launcher import load_train_records

    target = Path(out) if out is not None else default_sft_dir(config)
    if target.exists() and not overwrite:
        if not target.is_dir():
            raise WouldOverwriteError(f"{target} is a file: give a folder with --out, or pass --overwrite to replace it")
        if any(target.iterdir()):
            raise WouldOverwriteError(f"{target} is not empty: choose another --out, or pass --overwrite to replace it")
    settings = config.sft
    dataset = str(Path(config.data.dataset_dir) / "train.jsonl")  # the file load_train_records reads
    records = load_train_records(config)
    rows = sft_rows(records, settings.field, dataset)
    rows = [rows[i] for i in mixed_order([r["category"] for r in records], settings.answer_share, config.seed)]
    torch.manual_seed(config.seed)
    model = load_causal_lm(config.policy, on_gpu=torch.cuda.is_available())
    tokenizer = load_tokenizer(config.policy)
    with tempfile.TemporaryDirectory(prefix="hair_ray_sft_") as scratch:
        args = SFTConfig(
            output_dir=scratch,  # TRL's own files; nothing in it is kept
            num_train_epochs=settings.epochs,
            learning_rate=settings.learning_rate,
            lr_scheduler_type="linear",
            per_device_train_batch_size=settings.samples_per_batch,
            max_length=settings.max_length_tokens,
            completion_only_loss=True,
            seed=config.seed,
            data_seed=config.seed,
            use_cpu=not torch.cuda.is_available(),
            save_strategy="no",
            report_to="none",
            logging_steps=1,
            disable_tqdm=True,
        )
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
        trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    manifest = {
        "policy": config.policy.name_or_path,
        "dataset": dataset,
        "dataset_fingerprint": json_fingerprint(records),
        "records": len(records),
        "rows": len(rows),  # after sft.answer_share's repeats
        "seed": config.seed,
        "sft": settings.model_dump(mode="json"),
        "optimizer_steps": trainer.state.global_step,
        "losses": losses,
    }
    with atomic_dir(target) as staging:
        model.save_pretrained(staging, safe_serialization=True)  # trained in place (no adapter)
        tokenizer.save_pretrained(staging)
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return target
