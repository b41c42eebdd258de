"""`hair-ray report` on a synthetic metrics.jsonl: a valid PNG and a table with the right numbers."""

from __future__ import annotations

import io
import json
import struct

import pytest
from rich.console import Console
from typer.testing import CliRunner

from hair_ray.categories import CATEGORY_NAMES
from hair_ray.train.report import ReportError, _hardness, build_report, read_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_run(run_dir, steps: int = 10, *, scaling_effect: bool = True) -> None:
    """`scaling_effect=False` writes a run from before the hardness/relative_change metrics."""
    run_dir.mkdir(parents=True)
    lines = []
    for step in range(1, steps + 1):
        x = (step - 1) / (steps - 1)  # 0 … 1
        record = {
            "step": step,
            "time": 1_700_000_000 + 4 * step,
            "reward/mean": 0.1 + 0.8 * x,  # 0.1 → 0.9
            "learner/kl": 0.002 * step,  # 0.002 → 0.02
            "alpha_d/mean": 1.0 + 0.1 * x,
            "alpha_m/mean": 0.95,
            "response_length/mean": 100 - 5 * step,
            "refusal/fraction": 0.25 + 0.5 * x,  # 0.25 → 0.75
            "timing/generate": 3.0,
            "timing/update": 1.0,
            "timing/step": 4.0,
        }
        record.update({f"reward/mean/{c}": 0.05 * i + x for i, c in enumerate(CATEGORY_NAMES)})
        if scaling_effect:
            record["hardness/relative_change"] = 0.05 + 0.1 * x  # 0.05 → 0.15
            record["hardness/alpha_m_active_fraction"] = 0.2 + 0.4 * x  # 0.2 → 0.6
        lines.append(json.dumps(record))
    lines.insert(3, '{"step": oops')  # a broken line is skipped
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_report_writes_a_png_and_a_table(tmp_path):
    run_dir = tmp_path / "run"
    write_run(run_dir)
    console = Console(record=True, width=160, file=io.StringIO())
    png = build_report(run_dir, console=console)
    assert png == run_dir / "report.png"
    width, height = png_size(png)
    assert (width, height) == (1200, 1000)
    assert png.stat().st_size > 20_000  # curves, not an empty canvas
    text = console.export_text()
    reward = next(line for line in text.splitlines() if "reward mean" in line)
    assert "0.1" in reward and "0.9" in reward and "+0.8" in reward
    assert "0.002" in text and "0.02" in text  # KL first and last
    refusal = next(line for line in text.splitlines() if "refusal fraction" in line)
    assert "0.25" in refusal and "0.75" in refusal and "+0.5" in refusal
    assert "steps 1 → 10 (10 logged)" in text
    assert "total step time 40.0 s over 10 steps" in text
    generate = next(line for line in text.splitlines() if "generate" in line)
    assert "30.0" in generate and "75.0%" in generate
    assert "25.0%" in next(line for line in text.splitlines() if "update" in line)
    assert f"reward {CATEGORY_NAMES[-1]}" in text
    change = next(line for line in text.splitlines() if "mean |A−Â|/|Â|" in line)
    assert "0.05" in change and "0.15" in change and "+0.1" in change
    active = next(line for line in text.splitlines() if "groups with α^M ≠ 1" in line)
    assert "0.2" in active and "0.6" in active and "+0.4" in active


def _hardness_lines(records) -> dict[str, list[float]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        _hardness(ax, records)
        return {line.get_label(): list(line.get_ydata()) for line in ax.lines}
    finally:
        plt.close(fig)


def test_hardness_panel_plots_the_scaling_effect(tmp_path):
    write_run(tmp_path / "run", steps=3)
    lines = _hardness_lines(read_metrics(tmp_path / "run" / "metrics.jsonl"))
    # the α means are in the records too, but are no longer drawn
    assert set(lines) == {"mean |A−Â|/|Â|", "share of groups with α^M ≠ 1"}
    assert lines["mean |A−Â|/|Â|"] == pytest.approx([0.05, 0.10, 0.15])
    assert lines["share of groups with α^M ≠ 1"] == pytest.approx([0.2, 0.4, 0.6])


def test_report_of_a_run_without_the_scaling_effect(tmp_path):
    # an older run: the panel falls back to the α means, the table skips the missing rows
    run_dir = tmp_path / "old"
    write_run(run_dir, steps=3, scaling_effect=False)
    records = read_metrics(run_dir / "metrics.jsonl")
    lines = _hardness_lines(records)
    assert set(lines) == {"α^D mean", "α^M mean"}
    assert lines["α^D mean"] == pytest.approx([1.0, 1.05, 1.1])
    console = Console(record=True, width=160, file=io.StringIO())
    png = build_report(run_dir, console=console)
    assert png_size(png) == (1200, 1000)
    text = console.export_text()
    assert "α^D mean" in text and "|A−Â|" not in text and "groups with α^M" not in text
    # a run upgraded mid-way (resumed with the new metrics): only the steps that have them
    records[0].pop("hardness/relative_change", None)
    mixed = _hardness_lines([records[0]] + [dict(r, **{"hardness/relative_change": 0.3}) for r in records[1:]])
    assert mixed == {"mean |A−Â|/|Â|": [0.3, 0.3]}


def test_read_metrics_keeps_the_last_line_of_a_repeated_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "reward/mean": 1}\n{"step": 2, "reward/mean": 2}\n{"step": 2, "reward/mean": 3}\n')
    assert [r["reward/mean"] for r in read_metrics(path)] == [1, 3]
    with pytest.raises(ReportError, match="does not exist"):
        read_metrics(tmp_path / "missing.jsonl")


def test_cli_report(tmp_path):
    from hair_ray.cli import app

    run_dir = tmp_path / "run"
    write_run(run_dir, steps=3)
    out = tmp_path / "plots" / "curves.png"
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert png_size(out)[0] == 1200
    assert "reward mean" in result.output
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert missing.exit_code == 2
