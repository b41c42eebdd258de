"""`hair-ray report RUN_DIR`: curves from metrics.jsonl in a PNG, and a summary table.

The PNG (default RUN_DIR/report.png) has five panels: reward mean (overall, thick, and per
category), KL to the reference, how much the hardness weights changed the advantages (mean
|A − Â| / |Â| and the share of groups with α^M ≠ 1; a run logged before those metrics existed
shows the α^D / α^M means instead), response length, and the step time stacked by phase
(`timing/*`) with the whole step as a dashed line. The table compares the first and last step
for each curve, and gives the total step time and each phase's share of it. Under async
rollout the phases overlap, so shares can add up past 100 %.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hair_ray.train.tracking import (
    ALPHA_D_MEAN,
    ALPHA_M_ACTIVE_FRACTION,
    ALPHA_M_MEAN,
    KL_KEYS,
    METRICS_FILE,
    REFUSAL_FRACTION,
    RELATIVE_CHANGE,
    RESPONSE_LENGTH_KEYS,
    REWARD_MEAN,
    REWARD_MEAN_PREFIX,
    STEP_TIME,
    TIMING_PREFIX,
    first_present,
)

Record = dict[str, Any]


class ReportError(ValueError):
    """No metrics to report on."""


def read_metrics(path: str | Path) -> list[Record]:
    """The records of a metrics.jsonl, by step; unreadable lines are skipped and, when a step
    appears twice (a retried log), its last line wins."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path} does not exist: is this a run folder (RUN_DIR with {METRICS_FILE})?")
    by_step: dict[int, Record] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            by_step[int(record["step"])] = record
        except (ValueError, KeyError, TypeError):
            continue
    if not by_step:
        raise ReportError(f"{path} holds no step records yet")
    return [by_step[step] for step in sorted(by_step)]


def _series(records: list[Record], keys: tuple[str, ...] | str) -> tuple[list[int], list[float]]:
    steps, values = [], []
    for record in records:
        value = first_present(record, keys)
        if value is not None:
            steps.append(int(record["step"]))
            values.append(value)
    return steps, values


def categories(records: list[Record]) -> list[str]:
    """Categories with a `reward/mean/<category>` curve, in first-seen order."""
    seen: dict[str, None] = {}
    for record in records:
        for key in record:
            if key.startswith(REWARD_MEAN_PREFIX):
                seen.setdefault(key[len(REWARD_MEAN_PREFIX) :], None)
    return list(seen)


def phases(records: list[Record]) -> list[str]:
    """`timing/*` keys other than the whole step, in first-seen order."""
    seen: dict[str, None] = {}
    for record in records:
        for key in record:
            if key.startswith(TIMING_PREFIX) and key != STEP_TIME:
                seen.setdefault(key, None)
    return list(seen)


# ---------------------------------------------------------------------------------------------
# The figure


def plot_report(records: list[Record], out: str | Path, *, title: str | None = None) -> Path:
    """Draw the five panels into a PNG at `out`; returns its path."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a cluster node; must precede pyplot
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 10), dpi=100, layout="constrained")
    grid = fig.add_gridspec(3, 2)
    ax_reward, ax_kl = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    ax_alpha, ax_len = fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])
    ax_time = fig.add_subplot(grid[2, :])

    _line(ax_reward, records, REWARD_MEAN, "all", linewidth=2.5, color="black")
    for category in categories(records):
        _line(ax_reward, records, REWARD_MEAN_PREFIX + category, category, linewidth=1, alpha=0.8)
    _finish(ax_reward, "reward mean", legend=True)
    _line(ax_kl, records, KL_KEYS, "KL")
    _finish(ax_kl, "KL(π ‖ π_ref)")
    _hardness(ax_alpha, records)
    _line(ax_len, records, RESPONSE_LENGTH_KEYS, "tokens")
    _finish(ax_len, "response length (tokens)")
    _timing(ax_time, records)

    fig.suptitle(title or "hair_ray run")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    return out


def _line(ax: Any, records: list[Record], keys: tuple[str, ...] | str, label: str, **style: Any) -> None:
    steps, values = _series(records, keys)
    if steps:
        ax.plot(steps, values, label=label, marker="o" if len(steps) < 3 else None, **style)


def _finish(ax: Any, title: str, legend: bool = False) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_title(title)
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    if not ax.lines:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    elif legend:
        ax.legend(fontsize="small", ncol=2)
    ax.grid(alpha=0.3)


def has_scaling_effect(records: list[Record]) -> bool:
    """Whether any step logged how much the scaling changed the advantages (older runs did not)."""
    return any(first_present(r, (RELATIVE_CHANGE, ALPHA_M_ACTIVE_FRACTION)) is not None for r in records)


def _hardness(ax: Any, records: list[Record]) -> None:
    # The α means are ≈ 1 by construction and hide whether the factors did anything, so they are
    # drawn only for runs that logged nothing better.
    if has_scaling_effect(records):
        _line(ax, records, RELATIVE_CHANGE, "mean |A−Â|/|Â|")
        _line(ax, records, ALPHA_M_ACTIVE_FRACTION, "share of groups with α^M ≠ 1")
    else:
        _line(ax, records, ALPHA_D_MEAN, "α^D mean")
        _line(ax, records, ALPHA_M_MEAN, "α^M mean")
    _finish(ax, "hardness weights", legend=True)


def _timing(ax: Any, records: list[Record]) -> None:
    names = phases(records)
    steps = [int(r["step"]) for r in records]
    if names:
        # A phase a step did not report counts as 0 s there, so the stack stays aligned.
        stacks = [[first_present(r, name) or 0.0 for r in records] for name in names]
        ax.stackplot(steps, stacks, labels=[n[len(TIMING_PREFIX) :] for n in names], alpha=0.8)
    _line(ax, records, STEP_TIME, "whole step", color="black", linestyle="--")
    ax.set_ylabel("seconds")
    _finish(ax, "step time by phase", legend=False)
    if names or ax.lines:
        ax.legend(fontsize="small", loc="upper left", ncol=min(4, len(names) + 1))


# ---------------------------------------------------------------------------------------------
# The table


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02.0f} s"
    return f"{secs:.1f} s"


def summary_tables(records: list[Record]) -> tuple[Table, Table]:
    """(first vs last step of each curve, time per phase)."""
    first, last = records[0], records[-1]
    curves = Table(title=f"steps {first['step']} → {last['step']} ({len(records)} logged)")
    for column, justify in (
        ("metric", "left"),
        (f"first (step {first['step']})", "right"),
        (f"last (step {last['step']})", "right"),
        ("Δ", "right"),
    ):
        curves.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    rows: list[tuple[str, tuple[str, ...] | str]] = [("reward mean", REWARD_MEAN)]
    rows += [(f"  reward {c}", REWARD_MEAN_PREFIX + c) for c in categories(records)]
    rows += [
        ("KL", KL_KEYS),
        ("mean |A−Â|/|Â|", RELATIVE_CHANGE),
        ("groups with α^M ≠ 1", ALPHA_M_ACTIVE_FRACTION),
        ("α^D mean", ALPHA_D_MEAN),
        ("α^M mean", ALPHA_M_MEAN),
        ("response length", RESPONSE_LENGTH_KEYS),
        ("refusal fraction", REFUSAL_FRACTION),
        ("step seconds", STEP_TIME),
    ]
    for label, keys in rows:
        _, values = _series(records, keys)
        if not values:
            continue
        a, b = values[0], values[-1]
        curves.add_row(label, _fmt(a), _fmt(b), f"{b - a:+.4g}")

    step_seconds = [v for v in (first_present(r, STEP_TIME) for r in records) if v is not None]
    totals = {name: sum(first_present(r, name) or 0.0 for r in records) for name in phases(records)}
    # Without a whole-step time, the phases' sum stands in for it (no overlap assumed).
    total = sum(step_seconds) if step_seconds else sum(totals.values())
    if not step_seconds and not totals and isinstance(first.get("time"), (int, float)):
        total = float(last["time"]) - float(first["time"])  # wall clock between the first and last line
    timing = Table(title=f"total step time {_duration(total)} over {len(records)} steps")
    timing.add_column("phase")
    timing.add_column("seconds", justify="right")
    timing.add_column("share of step time", justify="right")
    for name, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        share = f"{100 * seconds / total:.1f}%" if total > 0 else "—"
        timing.add_row(name[len(TIMING_PREFIX) :], f"{seconds:.1f}", share)
    return curves, timing


def build_report(run_dir: str | Path, out: str | Path | None = None, *, console: Console | None = None) -> Path:
    """Read RUN_DIR/metrics.jsonl, write the PNG (default RUN_DIR/report.png), print the tables."""
    run_dir = Path(run_dir)
    records = read_metrics(run_dir / METRICS_FILE)
    png = plot_report(records, out or run_dir / "report.png", title=f"hair_ray — {run_dir.name}")
    console = console or Console()
    for table in summary_tables(records):
        console.print(table)
    evals = eval_summaries(run_dir)
    if evals:
        from hair_ray.eval.outputs import FIGURE_FILE, comparison_table, plot_comparison

        shown = dict([next(iter(evals.items())), next(reversed(evals.items()))])  # first vs last
        console.print(comparison_table(shown, title="evaluation during training (95% Wilson intervals)"))
        console.print(f"evaluation: {plot_comparison(shown, run_dir / FIGURE_FILE)} (every step: {run_dir / 'eval'})")
    console.print(f"report: {png}")
    return png


def eval_summaries(run_dir: str | Path) -> dict[str, dict]:
    """{"step N": summary} of the evaluations `train` wrote (eval.every_steps), in step order."""
    from hair_ray.eval.outputs import EVAL_FILE, read_results

    found = {}
    for path in sorted(Path(run_dir).glob(f"eval/step-*/{EVAL_FILE}")):
        try:
            found.update(read_results(path)["results"])
        except (OSError, ValueError, KeyError) as exc:
            raise ReportError(f"{path}: unreadable evaluation ({exc})") from None
    return found
