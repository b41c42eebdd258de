"""Checkpoints: atomic commit, pruning, choosing what to resume, RNG round trip, config hash."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
import yaml

from hair_ray.config import RunConfig, load_config
from hair_ray.train.checkpoint import (
    CheckpointError,
    capture_rng_state,
    checkpoint_dir,
    find_resume_checkpoint,
    list_checkpoints,
    load_checkpoint,
    read_rng_state,
    restore_rng_state,
    resume_hash,
    save_checkpoint,
    stage_checkpoint,
)


@pytest.fixture
def cfg(tmp_path):
    return load_config(None, [f"output_dir={tmp_path}", "checkpoint.keep_last=2"])


def save(cfg: RunConfig, step: int, payload: str = "weights") -> None:
    def write_learner(folder):
        (folder / "model.bin").write_text(f"{payload}-{step}")

    save_checkpoint(
        cfg.run_dir,
        step,
        config=cfg,
        sampler_state={"cursor": step * 8},
        weights_version=step,
        write_learner=write_learner,
        wall_time_s=1.5 * step,
    )


def test_checkpoint_layout_and_state(cfg):
    with stage_checkpoint(cfg.run_dir, 10, config=cfg, sampler_state={"cursor": 80, "epoch": 1}, weights_version=10) as staging:
        # The learner writes while the folder is still hidden.
        assert staging.name.startswith(".step-000010.")
        assert list_checkpoints(cfg.run_dir) == []
        (staging / "learner" / "latest").write_text("learner")
    path = checkpoint_dir(cfg.run_dir, 10)
    assert sorted(p.name for p in path.iterdir()) == ["config.yaml", "learner", "rng.pt", "state.json"]
    state = json.loads((path / "state.json").read_text())
    assert state["step"] == 10 and state["sampler_state"] == {"cursor": 80, "epoch": 1}
    assert state["weights_version"] == 10 and state["resume_hash"] == resume_hash(cfg)
    assert state["hair_ray_version"] and state["saved_at"]
    assert (path / "learner" / "latest").read_text() == "learner"


def test_exception_while_writing_leaves_no_folder_and_the_previous_intact(cfg):
    save(cfg, 10)
    with (
        pytest.raises(RuntimeError, match="learner died"),
        stage_checkpoint(cfg.run_dir, 20, config=cfg, sampler_state={}, weights_version=20) as staging,
    ):
        (staging / "learner" / "model.bin").write_text("half")
        raise RuntimeError("learner died")
    names = sorted(p.name for p in (cfg.run_dir / "checkpoints").iterdir())
    assert names == ["step-000010"]
    assert (checkpoint_dir(cfg.run_dir, 10) / "learner" / "model.bin").read_text() == "weights-10"
    assert load_checkpoint(checkpoint_dir(cfg.run_dir, 10), cfg).state.sampler_state == {"cursor": 80}


def test_sampler_state_that_is_not_json_fails_before_staging(cfg):
    with (
        pytest.raises(TypeError),
        stage_checkpoint(cfg.run_dir, 5, config=cfg, sampler_state={"rng": object()}, weights_version=0),
    ):
        pytest.fail("the block must not run")
    root = cfg.run_dir / "checkpoints"
    assert not root.exists() or not any(root.iterdir())


def test_pruning_keeps_the_last_and_drops_an_abandoned_future(cfg):
    for step in (10, 20, 30, 40):
        save(cfg, step)
    assert [p.name for p in list_checkpoints(cfg.run_dir)] == ["step-000030", "step-000040"]
    # Resumed from 30 and saved 35: 40 is from the abandoned timeline.
    save(cfg, 35)
    assert [p.name for p in list_checkpoints(cfg.run_dir)] == ["step-000030", "step-000035"]


def test_auto_resume_picks_the_newest_complete_one(cfg):
    run_dir = cfg.run_dir
    assert find_resume_checkpoint(run_dir, "auto") is None
    save(cfg, 10)
    save(cfg, 20)
    root = run_dir / "checkpoints"
    (root / ".step-000030.k2j4").mkdir()  # a save interrupted by a crash
    (root / ".step-000030.k2j4" / "state.json").write_text("{}")
    (root / "step-000040").mkdir()  # a folder without state.json (copied by hand, say)
    assert find_resume_checkpoint(run_dir, "never") is None
    assert find_resume_checkpoint(run_dir, "auto") == checkpoint_dir(run_dir, 20)
    assert find_resume_checkpoint(run_dir, str(checkpoint_dir(run_dir, 10))) == checkpoint_dir(run_dir, 10)
    assert find_resume_checkpoint(run_dir, "step-000010") == checkpoint_dir(run_dir, 10)
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        find_resume_checkpoint(run_dir, str(run_dir / "nope"))
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        find_resume_checkpoint(run_dir, str(root / "step-000040"))
    # The next save clears the interrupted staging folder.
    save(cfg, 30)
    assert not (root / ".step-000030.k2j4").exists()


def draw() -> tuple:
    return (
        random.random(),
        random.randint(0, 10**9),
        np.random.rand(3).tolist(),
        np.random.randn(),
        torch.rand(3).tolist(),
        torch.randint(0, 10**6, (2,)).tolist(),
    )


def test_rng_round_trip_repeats_the_same_numbers(cfg, tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # leave a cached gaussian in numpy's state
    state = capture_rng_state()
    expected = draw()
    draw()  # move on
    restore_rng_state(state)
    assert draw() == expected
    # Through a checkpoint file (read back with weights_only=True).
    restore_rng_state(state)
    save(cfg, 10)
    restore_rng_state(read_rng_state(checkpoint_dir(cfg.run_dir, 10) / "rng.pt"))
    assert draw() == expected


def test_config_mismatch_is_refused_with_both_hashes(cfg):
    save(cfg, 10)
    changed = cfg.model_copy(update={"learner": cfg.learner.model_copy(update={"learning_rate": 5e-6})})
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(checkpoint_dir(cfg.run_dir, 10), changed)
    message = str(err.value)
    assert resume_hash(cfg) in message and resume_hash(changed) in message
    assert "learner.learning_rate: 1e-06 -> 5e-06" in message
    assert "checkpoint.allow_config_change=true" in message
    # The override accepts it; settings that do not shape training never trip the check.
    assert load_checkpoint(checkpoint_dir(cfg.run_dir, 10), changed, allow_config_change=True).step == 10
    harmless = load_config(
        None, [f"output_dir={cfg.output_dir}", "checkpoint.resume=auto", "tracking.wandb_mode=disabled", "checkpoint.keep_last=2"]
    )
    assert load_checkpoint(checkpoint_dir(cfg.run_dir, 10), harmless).state.weights_version == 10


def test_how_weights_travel_and_how_long_to_wait_do_not_shape_the_resume_hash(cfg):
    save(cfg, 10)
    operational = load_config(
        None,
        [
            f"output_dir={cfg.output_dir}",
            "checkpoint.keep_last=2",
            "rollout.weight_sync=object_store",
            "rollout.timeout_s=1200",
            "learner.timeout_s=7200",
            "reward.score_timeout_s=30",
            "reward.max_restarts=-1",
        ],
    )
    assert resume_hash(operational) == resume_hash(cfg)
    assert load_checkpoint(checkpoint_dir(cfg.run_dir, 10), operational).step == 10
    # The sampling temperature does shape training: still refused, and named.
    hotter = load_config(None, [f"output_dir={cfg.output_dir}", "rollout.temperature=0.5"])
    with pytest.raises(CheckpointError, match=r"rollout\.temperature"):
        load_checkpoint(checkpoint_dir(cfg.run_dir, 10), hotter)


def test_a_checkpoint_hashed_before_a_field_was_ignored_resumes_when_its_config_agrees(cfg):
    save(cfg, 10)
    folder = checkpoint_dir(cfg.run_dir, 10)
    state = json.loads((folder / "state.json").read_text())
    state["resume_hash"] = "0123456789abcdef"  # what an older hair_ray, hashing rollout.timeout_s, wrote
    (folder / "state.json").write_text(json.dumps(state))
    assert load_checkpoint(folder, cfg).step == 10
    # Without a readable saved config, the hash alone decides: refused.
    (folder / "config.yaml").write_text("{unclosed: [")
    with pytest.raises(CheckpointError, match="config.yaml unreadable"):
        load_checkpoint(folder, cfg)


def test_a_checkpoint_written_before_a_field_existed_resumes_while_the_field_keeps_its_default(cfg):
    save(cfg, 10)
    folder = checkpoint_dir(cfg.run_dir, 10)
    state = json.loads((folder / "state.json").read_text())
    state["resume_hash"] = "0123456789abcdef"  # an older hair_ray's hash, over a tree without the field
    (folder / "state.json").write_text(json.dumps(state))
    saved = yaml.safe_load((folder / "config.yaml").read_text())
    del saved["algo"]["benign_prompts_per_step"]
    (folder / "config.yaml").write_text(yaml.safe_dump(saved))
    assert load_checkpoint(folder, cfg).step == 10
    changed = cfg.model_copy(update={"algo": cfg.algo.model_copy(update={"benign_prompts_per_step": 2})})
    with pytest.raises(CheckpointError, match=r"algo.benign_prompts_per_step: None -> 2"):
        load_checkpoint(folder, changed)
