"""Benchmarks as data: a prompt file (or hub dataset) read through a column map.

A benchmark is a `BenchmarkSpec` (hair_ray.config): where the rows are, which column holds the
prompt (and optionally an id, a category, a label, a reference answer), and what each row wants
from a safe, useful model: `refuse` (a harmful request) or `comply` (a benign one). Shipped
definitions cover the sets the HAIR paper reports; a run config (`eval.definitions`) or the
command line (`--benchmark-file`) adds any other without code.

Offline, `path` resolves against a data root (the folder holding the public datasets, as
stage A's `data.data_root`); online, `hf_id` is loaded with `datasets` when the file is absent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hair_ray.config import BenchmarkSpec, Expectation
from hair_ray.data.sources import DropLog, SourceError, load_hub, read_table, require_columns
from hair_ray.data.subset import evenly_spaced

__all__ = ["SHIPPED", "Benchmark", "BenchmarkError", "EvalPrompt", "load_benchmark", "resolve_benchmarks"]


class BenchmarkError(ValueError):
    """A benchmark that cannot be loaded: the message names the file, row or field."""


# Shipped definitions. Paths are the files' names in their upstream repositories, under one
# folder per dataset (the layout `--data-root` expects; docs/evaluation.md lists the sources).
SHIPPED: dict[str, BenchmarkSpec] = {
    "strongreject": BenchmarkSpec(
        path="strongreject/strongreject_dataset.csv",
        prompt_column="forbidden_prompt",
        category_column="category",
        expect="refuse",
        description="StrongREJECT: 313 forbidden prompts in 6 categories (refusal wanted)",
    ),
    "strongreject_small": BenchmarkSpec(
        path="strongreject/strongreject_small_dataset.csv",
        prompt_column="forbidden_prompt",
        category_column="category",
        expect="refuse",
        description="StrongREJECT small: 60 forbidden prompts, 10 per category (refusal wanted)",
    ),
    "xstest": BenchmarkSpec(
        path="xstest/xstest_prompts.csv",
        hf_id="walledai/XSTest",
        hf_split="test",
        prompt_column="prompt",
        id_column="id",
        category_column="type",
        label_column="label",
        label_expect={"safe": "comply", "unsafe": "refuse"},
        description="XSTest: 250 safe prompts that look unsafe (over-refusal) and 200 unsafe ones (refusal)",
    ),
    "dna_test": BenchmarkSpec(
        path="{dataset_dir}/test.jsonl",
        prompt_column="prompt",
        id_column="id",
        category_column="category",
        expect="refuse",
        only_sources=["do_not_answer"],
        description="Do-Not-Answer prompts of the stage-A test split (held out from training)",
    ),
    "stage_a_test": BenchmarkSpec(
        path="{dataset_dir}/test.jsonl",
        prompt_column="prompt",
        id_column="id",
        category_column="category",
        expect="refuse",
        description="every prompt of the stage-A test split (held out from training)",
    ),
    "alpaca": BenchmarkSpec(
        path="alpaca-eval/gpt4_1106_preview_model_outputs.json",
        prompt_column="instruction",
        category_column="dataset",
        reference_column="output",
        expect="comply",
        description="AlpacaEval: 805 benign instructions (over-refusal; log-likelihood of GPT-4's answers)",
    ),
    "benign_smoke": BenchmarkSpec(
        path="{package}/benign_smoke.jsonl",
        prompt_column="prompt",
        id_column="id",
        category_column="category",
        reference_column="reference",
        expect="comply",
        description="24 everyday requests written for hair_ray (over-refusal; ships in the package)",
    ),
}

PACKAGE_DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class EvalPrompt:
    id: str
    prompt: str
    expect: Expectation
    category: str | None = None
    reference: str | None = None


@dataclass(frozen=True)
class Benchmark:
    name: str
    spec: BenchmarkSpec
    prompts: tuple[EvalPrompt, ...]
    location: str  # the file or hub id the rows came from
    sha256: str  # of the file's bytes (hub: of the rows read), recorded in eval.json
    drops: dict[str, int]  # rows skipped, by reason (empty prompt, malformed row, ...)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "location": self.location,
            "sha256": self.sha256,
            "prompts": len(self.prompts),
            "refuse": sum(p.expect == "refuse" for p in self.prompts),
            "comply": sum(p.expect == "comply" for p in self.prompts),
            "drops": self.drops,
            "spec": self.spec.model_dump(mode="json", exclude_defaults=True),
        }


def resolve_benchmarks(names: list[str], definitions: dict[str, BenchmarkSpec] | None = None) -> dict[str, BenchmarkSpec]:
    """Names -> specs: the run's own `definitions` first, then the shipped ones."""
    known = {**SHIPPED, **(definitions or {})}
    if not names:
        raise BenchmarkError(f"no benchmarks named; known: {', '.join(sorted(known))}")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise BenchmarkError(
            f"unknown benchmark {', '.join(repr(n) for n in unknown)}; known: {', '.join(sorted(known))} "
            "(or define one by column map under eval.definitions, or pass --benchmark-file)"
        )
    return {name: known[name] for name in names}


def _local_path(spec: BenchmarkSpec, data_root: str | None, dataset_dir: str | None) -> Path | None:
    if not spec.path:
        return None
    text = spec.path
    if "{dataset_dir}" in text:
        if dataset_dir is None:
            raise BenchmarkError(f"{spec.path}: needs the stage-A dataset folder (--dataset-dir, or data.dataset_dir)")
        return Path(text.replace("{dataset_dir}", dataset_dir))
    if "{package}" in text:
        return PACKAGE_DATA / text.replace("{package}/", "")
    path = Path(text)
    return path if path.is_absolute() or data_root is None else Path(data_root) / path


def _rows(
    name: str, spec: BenchmarkSpec, path: Path | None, drops: DropLog
) -> tuple[str, str, list[str] | None, list[tuple[str, dict]]]:
    """(location, sha256, header, rows) from the local file, else from the hub."""
    if path is not None and path.is_file():
        try:
            header, row_iter = read_table(path, spec.format, drops)
            listed = list(row_iter)
        except SourceError as err:
            raise BenchmarkError(f"benchmark {name!r}: {err}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise BenchmarkError(f"benchmark {name!r}: cannot read {path}: {err}") from None
        return str(path), hashlib.sha256(path.read_bytes()).hexdigest(), header, listed
    if spec.hf_id is None:
        where = path if path is not None else spec.path
        raise BenchmarkError(
            f"benchmark {name!r}: file {where} does not exist (set --data-root to the folder holding "
            "the datasets, or give the benchmark an `hf_id`)"
        )
    try:
        dataset = load_hub(spec.hf_id, split=spec.hf_split, data_files=spec.hf_data_files)
    except SourceError as err:
        missing = f"file {path} does not exist and " if path is not None else ""
        raise BenchmarkError(f"benchmark {name!r}: {missing}{err}") from None
    rows = [(f"{spec.hf_id}[{spec.hf_split}] row {i}", dict(row)) for i, row in enumerate(dataset)]
    digest = hashlib.sha256(repr([row for _, row in rows]).encode()).hexdigest()
    return f"hub:{spec.hf_id}", digest, list(dataset.column_names), rows


def load_benchmark(
    name: str,
    spec: BenchmarkSpec,
    *,
    data_root: str | None = None,
    dataset_dir: str | None = None,
    max_prompts: int | None = None,
) -> Benchmark:
    """Read a benchmark's rows through its column map; `max_prompts` keeps an evenly spaced
    subset (the same rows every time, spread over the file's categories)."""
    drops = DropLog()
    location, digest, header, rows = _rows(name, spec, _local_path(spec, data_root, dataset_dir), drops)
    columns = [
        c for c in (spec.prompt_column, spec.id_column, spec.category_column, spec.label_column, spec.reference_column) if c
    ]
    if header is not None:
        try:
            require_columns(location, header, columns)
        except SourceError as err:
            raise BenchmarkError(f"benchmark {name!r}: {err} (map yours with prompt_column=..., etc.)") from None
    prompts: list[EvalPrompt] = []
    for index, (where, row) in enumerate(rows):
        missing = [c for c in columns if c not in row]
        if missing:
            raise BenchmarkError(
                f"benchmark {name!r}: {where} has no column {', '.join(repr(c) for c in missing)}; "
                f"its columns are: {', '.join(map(str, row))}"
            )
        if spec.only_sources is not None and row.get("source") not in spec.only_sources:
            drops.add("other_source", where)
            continue
        prompt = row[spec.prompt_column]
        if not isinstance(prompt, str) or not prompt.strip():
            drops.add("empty_prompt", where)
            continue
        expect = spec.expect
        if spec.label_column is not None:
            label = str(row[spec.label_column]).strip()
            expect = spec.label_expect.get(label)
            if expect is None:
                raise BenchmarkError(
                    f"benchmark {name!r}: {where}: label {label!r} in column {spec.label_column!r} is not in "
                    f"label_expect ({', '.join(sorted(spec.label_expect))})"
                )
        category = row.get(spec.category_column) if spec.category_column else None
        reference = row.get(spec.reference_column) if spec.reference_column else None
        prompts.append(
            EvalPrompt(
                id=str(row[spec.id_column]) if spec.id_column else str(index),
                prompt=prompt.strip(),
                expect=expect,  # type: ignore[arg-type]
                category=str(category) if category not in (None, "") else None,
                reference=reference if isinstance(reference, str) and reference.strip() else None,
            )
        )
    if not prompts:
        raise BenchmarkError(f"benchmark {name!r}: {location} holds no usable prompt ({drops.summary() or 'no rows'})")
    prompts = evenly_spaced(prompts, max_prompts)
    return Benchmark(name, spec, tuple(prompts), location, digest, dict(drops.counts))
