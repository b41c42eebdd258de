"""The benchmark's table: each phase of hair_ray's step beside its bare baseline (or the peer),
as a ratio, with the targets of the throughput work; and its figure."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from statistics import median
from typing import Any


@dataclass(frozen=True)
class Row:
    what: str
    hair_ray: float
    unit: str
    baseline: float | None  # the bare phase or the peer, same run, same machine
    baseline_name: str
    ratio: float | None  # hair_ray / baseline, for rates and times alike
    higher_is_better: bool  # rates: yes; times and shares: no
    target: float | None  # the ratio to reach (≥ when higher is better, ≤ otherwise)
    # Over several rounds (`--rounds`): the lowest and highest of the rounds' ratios; `ratio` is
    # then their median.
    ratio_low: float | None = None
    ratio_high: float | None = None

    @property
    def met(self) -> bool | None:
        if self.target is None or self.ratio is None:
            return None
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target


def _row(what, ours, unit, base, base_name, *, higher_is_better=True, target=None) -> Row:
    ratio = ours / base if base else None
    return Row(what, ours, unit, base, base_name, ratio, higher_is_better, target)


def comparison(ours: dict[str, Any], bare: dict[str, Any] | None, peer: dict[str, Any] | None) -> list[Row]:
    """The rows of the table (pure: the tests check its bookkeeping)."""
    bare = bare or {}

    def bare_of(key: str, field: str) -> float | None:
        return bare[key][field] if key in bare else None

    sync_share = ours["phase_s"].get("sync", 0.0) / ours["step_s"]
    rows = [
        _row(
            "rollout (generate)",
            ours["rollout_tokens_per_s"],
            "tokens/s",
            bare_of("generate", "tokens_per_s"),
            "bare vLLM generate",
            target=0.95,
        ),
        _row(
            "learner forward+backward+step",
            ours["learner_tokens_per_s"],
            "tokens/s",
            bare_of("learner", "tokens_per_s"),
            "bare HF fwd+bwd+AdamW",
            target=0.9,
        ),
        _row(
            "reference forward",
            ours["reference_tokens_per_s"],
            "tokens/s",
            bare_of("reference", "tokens_per_s"),
            "bare HF forward",
        ),
    ]
    # The same loops beside an idle Ray cluster (`--beside-ray`): a second baseline, in the
    # company the actors keep. No target: they run after the alone ones, and on a small machine
    # that order can weigh as much as the company (benchmarks/README.md).
    rows += [
        _row(
            f"{key}, bare beside idle Ray",
            ours[f"{key}_tokens_per_s"],
            "tokens/s",
            bare[f"{key}_beside_ray"]["tokens_per_s"],
            f"{name} beside an idle Ray cluster",
        )
        for key, name in (("learner", "bare HF fwd+bwd+AdamW"), ("reference", "bare HF forward"))
        if f"{key}_beside_ray" in bare
    ]
    rows += [
        _row("weight sync", ours["sync_gb_per_s"], "GB/s", bare_of("memcpy", "gb_per_s"), "memcpy of the weights"),
        # A share is its own ratio: the sync's seconds over the step's.
        Row(
            "weight sync share of the step",
            sync_share,
            "fraction",
            None,
            "(of the step itself)",
            sync_share,
            False,
            0.05,
        ),
        _row("reward", ours["reward_samples_per_s"], "samples/s", None, "(rule or reward-model actors)"),
        _row("update overhead (Ray, collate)", ours["update_overhead_s"], "s/step", None, ""),
    ]
    if peer:
        rows += [
            _row("step", ours["step_s"], "s/step", peer["step_s"], "TRL GRPOTrainer", higher_is_better=False, target=0.8),
            _row(
                "completion tokens/s",
                ours["completion_tokens_per_s"],
                "tokens/s",
                peer["completion_tokens_per_s"],
                "TRL GRPOTrainer",
            ),
        ]
    else:
        rows.append(_row("step", ours["step_s"], "s/step", None, "(no peer: --peer trl)", higher_is_better=False))
    return rows


def _median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return median(present) if present else None


def over_rounds(tables: list[list[Row]]) -> list[Row]:
    """One table from several rounds' tables (pure). Each round pairs hair_ray with baselines
    measured minutes apart, so a round's ratio is the figure that drift on a shared machine
    disturbs least: the table gives the median of the rounds' ratios with their range, beside
    the median of each side's own figures."""
    if not tables:
        raise ValueError("no rounds to summarise")
    if len({tuple(row.what for row in table) for table in tables}) != 1:
        raise ValueError("the rounds' tables have different rows")
    rows = []
    for versions in zip(*tables):
        ratios = [row.ratio for row in versions if row.ratio is not None]
        spread = len(tables) > 1 and bool(ratios)
        rows.append(
            replace(
                versions[0],
                hair_ray=median(row.hair_ray for row in versions),
                baseline=_median_or_none([row.baseline for row in versions]),
                ratio=_median_or_none(ratios),
                ratio_low=min(ratios) if spread else None,
                ratio_high=max(ratios) if spread else None,
            )
        )
    return rows


def format_table(rows: list[Row]) -> str:
    def number(value: float | None, unit: str = "") -> str:
        if value is None:
            return "—"
        if unit == "fraction":
            return f"{100 * value:.1f} %"
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"

    def ratio_text(value: float | None, unit: str) -> str:
        if value is None:
            return "—"
        return number(value, "fraction") if unit == "fraction" else f"{value:.2f}×"

    spread = any(row.ratio_low is not None for row in rows)
    lines = [
        f"{'phase':34} {'hair_ray':>12} {'unit':>9}  {'baseline':>12}  {'ratio':>7}  "
        + (f"{'rounds range':>15}  " if spread else "")
        + f"{'target':>8}  baseline is",
    ]
    for row in rows:
        target = "" if row.target is None else f"{'≥' if row.higher_is_better else '≤'}{row.target:g}"
        verdict = {True: " met", False: " MISSED", None: ""}[row.met]
        span = ""
        if spread:
            span = (
                "—" if row.ratio_low is None else f"{ratio_text(row.ratio_low, row.unit)}–{ratio_text(row.ratio_high, row.unit)}"
            )
            span = f"{span:>15}  "
        lines.append(
            f"{row.what:34} {number(row.hair_ray, row.unit):>12} {row.unit:>9}  "
            f"{number(row.baseline, row.unit):>12}  {ratio_text(row.ratio, row.unit):>7}  {span}{target + verdict:>8}  {row.baseline_name}"
        )
    return "\n".join(lines)


def rows_json(rows: list[Row]) -> list[dict[str, Any]]:
    return [{**asdict(row), "met": row.met} for row in rows]


def plot(ours: dict[str, Any], peer: dict[str, Any] | None, path: Path) -> None:
    """hair_ray's step as stacked phases, beside the peer's step (one bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    bottom = 0.0
    for phase, seconds in ours["phase_s"].items():
        if phase == "update":
            for part, value in (
                ("reference fwd", ours["learner_frozen_s"]),
                ("fwd+bwd+step", ours["learner_policy_s"]),
                ("update overhead", ours["update_overhead_s"]),
            ):
                ax.bar("hair_ray", value, bottom=bottom, label=part)
                bottom += value
            continue
        ax.bar("hair_ray", seconds, bottom=bottom, label=phase)
        bottom += seconds
    if peer:
        ax.bar("TRL GRPOTrainer", peer["step_s"], color="grey", label="TRL step")
    ax.set_ylabel("seconds per step (mean of the measured steps)")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
