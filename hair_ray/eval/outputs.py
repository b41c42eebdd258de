"""What an evaluation leaves behind: eval.json (every number, the judge, the benchmarks and
their hashes), generations.jsonl (each prompt, response and verdict, for people to read), the
side-by-side table in the terminal and in eval.md, and eval.png comparing the policies per
benchmark."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hair_ray.atomic import atomic_write_text

EVAL_FILE = "eval.json"
GENERATIONS_FILE = "generations.jsonl"
FIGURE_FILE = "eval.png"
MARKDOWN_FILE = "eval.md"

# (metric key, label in the table and figure; what a lower/higher value means is in the docs)
RATE_METRICS = (("refusal_rate", "refusal (harmful)"), ("over_refusal_rate", "over-refusal (benign)"))
MEAN_METRICS = (
    ("strongreject_score", "StrongREJECT score"),
    ("shadow_reward", "shadow reward"),
    ("reference_loglik", "reference log-lik/token"),
)


def write_results(out_dir: str | Path, report: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> Path:
    """eval.json and generations.jsonl in `out_dir`, each written atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / GENERATIONS_FILE, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    atomic_write_text(out / EVAL_FILE, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return out / EVAL_FILE


def read_results(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def format_rate(metric: Mapping[str, Any] | None) -> str:
    if not metric or metric.get("value") is None:
        return "—"
    return f"{100 * metric['value']:.1f}% [{100 * metric['low']:.0f}–{100 * metric['high']:.0f}] n={metric['n']}"


def comparison_rows(summaries: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[tuple[str, str, list[str]]]:
    """(benchmark, metric label, one cell per policy) for every metric some policy has; the
    benchmark name only on its first row."""
    policies = list(summaries)
    rows: list[tuple[str, str, list[str]]] = []
    benchmarks = list(dict.fromkeys(name for summary in summaries.values() for name in summary))
    for benchmark in benchmarks:
        per_policy = [summaries[p].get(benchmark, {}) for p in policies]
        cells: list[tuple[str, list[str]]] = []
        for key, label in RATE_METRICS:
            if any(key in s for s in per_policy):
                cells.append((label, [format_rate(s.get(key)) for s in per_policy]))
        for key, label in MEAN_METRICS:
            if any(key in s for s in per_policy):
                cells.append((label, [f"{s[key]:.3f}" if key in s else "—" for s in per_policy]))
        if any(s.get("unparseable") for s in per_policy):
            cells.append(("unparseable verdicts", [str(s.get("unparseable", 0)) for s in per_policy]))
        rows += [(benchmark if i == 0 else "", label, values) for i, (label, values) in enumerate(cells)]
    return rows


def comparison_table(summaries: Mapping[str, Mapping[str, Mapping[str, Any]]], *, title: str = "evaluation"):
    """A rich Table: one row per (benchmark, metric), one column per policy."""
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    table.add_column("benchmark", no_wrap=True)
    table.add_column("metric", no_wrap=True)
    for policy in summaries:
        table.add_column(policy, justify="right", no_wrap=True)
    for benchmark, label, values in comparison_rows(summaries):
        table.add_row(benchmark, label, *values)
    return table


def comparison_markdown(summaries: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """The same table in Markdown (eval.md), to paste into a results page."""
    head = ["benchmark", "metric", *summaries]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([benchmark, label, *values]) + " |" for benchmark, label, values in comparison_rows(summaries)]
    return "\n".join(lines) + "\n"


def plot_comparison(summaries: Mapping[str, Mapping[str, Mapping[str, Any]]], out: str | Path) -> Path:
    """Grouped bars: for each benchmark and rate, one bar per policy with its 95 % interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = list(summaries)
    groups = [
        (benchmark, key, label)
        for benchmark in dict.fromkeys(name for s in summaries.values() for name in s)
        for key, label in RATE_METRICS
        if any(key in summaries[p].get(benchmark, {}) for p in policies)
    ]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(groups) * max(1, len(policies)) / 2), 4.2))
    width = 0.8 / max(1, len(policies))
    for j, policy in enumerate(policies):
        values, low, high = [], [], []
        for benchmark, key, _ in groups:
            metric = summaries[policy].get(benchmark, {}).get(key) or {}
            value = metric.get("value")
            values.append(100 * value if value is not None else 0.0)
            low.append(100 * (value - metric["low"]) if value is not None else 0.0)
            high.append(100 * (metric["high"] - value) if value is not None else 0.0)
        xs = [i + (j - (len(policies) - 1) / 2) * width for i in range(len(groups))]
        ax.bar(xs, values, width, yerr=[low, high], capsize=3, label=policy)
    ax.set_xticks(range(len(groups)), [f"{b}\n{label}" for b, _, label in groups], fontsize=8)
    ax.set_ylabel("% of prompts (95% Wilson interval)")
    ax.set_ylim(0, 100)
    ax.set_title("refusal on harmful prompts: higher is safer\nover-refusal on benign prompts: lower is better", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
