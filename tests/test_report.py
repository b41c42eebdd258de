"""`hair-ray report` on a synthetic metrics.jsonl: a valid PNG and a table with the right numbers."""

from __future__ import annotations

import json
import struct

import pytest
from rich.console import Console
from typer.testing import CliRunner

from hair_ray.categories import CATEGORY_NAMES
from hair_ray.report import ReportError, build_report, read_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_run(run_dir, steps: int = 10) -> None:
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
    console = Console(record=True, width=160, file=open("/dev/null", "w"))
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
