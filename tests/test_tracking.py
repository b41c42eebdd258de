"""Tracking: metrics.jsonl consistency across resumes, the wandb mode, the progress line, and
that the wandb key never lands in the run folder or the logs."""

from __future__ import annotations

import io
import json
import logging
import math

import numpy as np
import pytest
import torch
from rich.console import Console

from hair_ray.config import load_config
from hair_ray.train.tracking import (
    METRICS_FILE,
    ProgressLine,
    Tracker,
    clean_metrics,
    format_progress,
    resolve_wandb_mode,
    truncate_metrics,
)

FAKE_KEY = "fake-key-1234567890abcdef1234567890abcdef1234"


def config(tmp_path, *overrides: str):
    return load_config(None, [f"output_dir={tmp_path}", "algo.total_steps=5", *overrides])


@pytest.mark.parametrize(
    ("mode", "env", "expected"),
    [
        ("auto", {}, "offline"),
        ("auto", {"WANDB_API_KEY": "k"}, "online"),
        ("auto", {"WANDB_API_KEY": "k", "WANDB_MODE": "offline"}, "offline"),
        ("auto", {"WANDB_MODE": "disabled"}, "disabled"),
        ("disabled", {"WANDB_API_KEY": "k"}, "disabled"),
        ("online", {}, "online"),
    ],
)
def test_resolve_wandb_mode(mode, env, expected):
    assert resolve_wandb_mode(mode, env) == expected


def test_format_progress_is_one_line_with_the_headline_numbers():
    line = format_progress(
        12,
        100,
        {
            "reward/mean": 0.41234,
            "learner/kl": 0.0031,
            "alpha_d/mean": 1.02,
            "hardness/relative_change": 0.051,
            "timing/step": 4.31,
            "reward/mean/insult": 9.0,
        },
    )
    # The α means are ≈ 1 by construction; the line shows how much the scaling changed A.
    assert line == "step 12/100 · reward 0.4123 · kl 0.0031 · |ΔA|/|Â| 0.051 · 4.31 s/step"
    assert format_progress(3, None, {}) == "step 3"


def test_clean_metrics_makes_json_safe_flat_values():
    cleaned = clean_metrics(
        {"a": torch.tensor(1.5), "b": np.float32(2.0), "c": float("nan"), "timing": {"generate": 3}, "flag": True}
    )
    assert cleaned == {"a": 1.5, "b": 2.0, "c": None, "timing/generate": 3, "flag": 1}
    json.dumps(cleaned, allow_nan=False)


def test_metrics_lines_and_resume_truncation(tmp_path):
    cfg = config(tmp_path, "tracking.wandb_mode=disabled", "tracking.progress=false")
    with Tracker(cfg.run_dir, cfg) as tracker:
        for step in range(1, 6):
            tracker.log(step, {"reward/mean": step / 10, "loss": float("inf")})
    path = cfg.run_dir / METRICS_FILE
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert records[2]["reward/mean"] == 0.3 and records[2]["loss"] is None and records[2]["time"] > 0
    # A crash cut the last line short; the run resumes from the checkpoint at step 3.
    with open(path, "a") as handle:
        handle.write('{"step": 6, "rew')
    with Tracker(cfg.run_dir, cfg, start_step=3) as tracker:
        tracker.log(4, {"reward/mean": 0.45})
    steps = [json.loads(line)["step"] for line in path.read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert json.loads(path.read_text().splitlines()[-1])["reward/mean"] == 0.45
    assert truncate_metrics(path, 10) == 0


def test_progress_line_prints_plain_lines_off_a_terminal(tmp_path):
    buffer = io.StringIO()
    cfg = config(tmp_path, "tracking.wandb_mode=disabled", "tracking.log_every_steps=2")
    tracker = Tracker(cfg.run_dir, cfg, console=Console(file=buffer, force_terminal=False, width=200))
    for step in range(1, 6):
        tracker.log(step, {"reward/mean": 0.5, "timing/step": 2.0})
    tracker.close()
    lines = buffer.getvalue().splitlines()
    # Every second step, and the last one.
    assert [line.split(" · ")[0] for line in lines] == ["step 2/5", "step 4/5", "step 5/5"]
    assert lines[0] == "step 2/5 · reward 0.5 · 2 s/step"
    ProgressLine(Console(file=io.StringIO(), force_terminal=True)).close()  # the live variant starts and stops


def test_wandb_offline_never_writes_the_api_key(tmp_path, monkeypatch, capfd, caplog):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_MODE", "offline")  # no network, whatever the key says
    monkeypatch.delenv("WANDB_DIR", raising=False)
    caplog.set_level(logging.DEBUG)
    cfg = config(tmp_path, "tracking.wandb_mode=auto", "tracking.progress=false")
    tracker = Tracker(cfg.run_dir, cfg)
    assert tracker.wandb_mode == "offline"
    for step in range(1, 4):
        tracker.log(step, {"reward/mean": 0.1 * step, "reward/mean/insult": math.pi, "timing/generate": 1.0})
    tracker.close()
    captured = capfd.readouterr()

    files = [p for p in cfg.run_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files), "wandb wrote its offline run into the run dir"
    assert (cfg.run_dir / "wandb_run_id.txt").exists()
    needle = FAKE_KEY.encode()
    leaked = [str(p) for p in files if needle in p.read_bytes()]
    assert leaked == []
    for text in (captured.out, captured.err, caplog.text):
        assert FAKE_KEY not in text
