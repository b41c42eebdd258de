"""Bad input and faults, as a new user meets them: each gets one `error: …` paragraph that names
the file, field or resource, its documented exit code, and nothing earlier is lost.

No Ray here: every case is caught before an actor would start. (The HTTP teacher refusing a
key is in tests/data/test_teachers.py, the evaluation's resource check in
tests/eval/test_eval_command.py, unsafe pickles in tests/test_no_unpickling.py.)
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hair_ray import __version__
from hair_ray.categories import CATEGORY_NAMES
from hair_ray.cli import app
from hair_ray.config import ConfigError, load_config
from hair_ray.errors import (
    EXIT_CHECKPOINT,
    EXIT_CLUSTER,
    EXIT_DEFECT,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_MACHINE,
    EXIT_WOULD_OVERWRITE,
    cli_errors,
    describe,
    exit_code,
)
from hair_ray.train.checkpoint import STATE_FILE, CheckpointState, checkpoint_dir, resume_hash

runner = CliRunner()
TINY = "jobs/tiny_cpu.yaml"
RULE_REWARD = "reward.function=hair_ray.reward.rule:length_reward"  # no reward models needed


def hair_ray(*args: str):
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def fake_checkpoint(config, step: int) -> Path:
    """A complete checkpoint as far as listing and resume checks go (state.json only)."""
    folder = checkpoint_dir(config.run_dir, step)
    folder.mkdir(parents=True)
    state = CheckpointState(
        step=step,
        sampler_state={},
        weights_version=step,
        config_hash="x",
        resume_hash=resume_hash(config),
        wall_time_s=1.0,
        saved_at="2026-01-01T00:00:00+00:00",
        hair_ray_version=__version__,
    )
    (folder / STATE_FILE).write_text(json.dumps(state.__dict__), encoding="utf-8")
    return folder


def earlier_run(tmp_path: Path, *overrides: str):
    """A run folder holding an earlier 4-step run: metrics for steps 1-4, checkpoints at 2 and 4."""
    config = load_config(TINY, [f"output_dir={tmp_path}", "algo.total_steps=4", RULE_REWARD, *overrides])
    config.run_dir.mkdir(parents=True)
    (config.run_dir / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "reward/mean": s / 10}) + "\n" for s in range(1, 5))
    )
    fake_checkpoint(config, 2)
    fake_checkpoint(config, 4)
    return config


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# Nothing is destroyed implicitly


def test_training_again_into_an_earlier_run_stops_and_keeps_it(tmp_path):
    config = earlier_run(tmp_path)
    before = snapshot(config.run_dir)
    code, out = hair_ray("train", "-c", TINY, f"output_dir={tmp_path}", "algo.total_steps=2", RULE_REWARD)
    assert code == EXIT_WOULD_OVERWRITE
    assert f"run folder {config.run_dir} holds an earlier run (metrics.jsonl (4 lines); checkpoints at steps 2, 4)" in out
    assert "checkpoint.resume=auto" in out and "name=NEW_NAME" in out and "--overwrite" in out
    assert snapshot(config.run_dir) == before


def test_overwrite_replaces_the_earlier_run_and_a_dry_run_replaces_nothing(tmp_path):
    from hair_ray.train.run_folder import plan_run_start

    config = earlier_run(tmp_path)
    assert plan_run_start(config, overwrite=True, dry_run=True).resume_from is None
    assert (config.run_dir / "metrics.jsonl").is_file()  # the check alone deletes nothing
    assert plan_run_start(config, overwrite=True).resume_from is None
    assert not config.run_dir.exists() and not list(tmp_path.glob(".*replaced*"))


@pytest.fixture
def no_ray(monkeypatch):
    """Fails the test if anything starts (or joins) a Ray cluster."""
    import ray

    def refuse(*args, **kwargs):
        raise AssertionError("ray.init was called: the error should come before Ray starts")

    monkeypatch.setattr(ray, "init", refuse)


def test_resuming_a_finished_run_starts_nothing_and_reports_its_last_step(tmp_path, no_ray):
    earlier_run(tmp_path)
    code, out = hair_ray(
        "train", "-c", TINY, f"output_dir={tmp_path}", "algo.total_steps=4", RULE_REWARD, "checkpoint.resume=auto"
    )
    assert code == 0, out
    assert "last reward/mean 0.4000" in out and "nan" not in out


def test_a_checkpoint_past_the_total_steps_is_refused_with_the_way_out(tmp_path):
    earlier_run(tmp_path)
    code, out = hair_ray(
        "train", "-c", TINY, f"output_dir={tmp_path}", "algo.total_steps=3", RULE_REWARD, "checkpoint.resume=auto"
    )
    assert code == EXIT_CHECKPOINT
    assert "is at step 4, past algo.total_steps = 3: raise algo.total_steps" in out


def test_resuming_a_step_that_does_not_exist_lists_the_ones_that_do(tmp_path):
    earlier_run(tmp_path)
    code, out = hair_ray(
        "train", "-c", TINY, f"output_dir={tmp_path}", "algo.total_steps=4", RULE_REWARD, "checkpoint.resume=step-000003"
    )
    assert code == EXIT_CHECKPOINT
    assert "no such checkpoint folder" in out and "'auto', 'never' or a step-NNNNNN folder" in out


def test_export_of_a_missing_step_lists_the_steps_there_are(tmp_path):
    earlier_run(tmp_path)
    code, out = hair_ray("export", "-c", TINY, f"output_dir={tmp_path}", "--step", "99")
    assert code == EXIT_CHECKPOINT
    assert "no complete checkpoint for step 99" in out and "(complete steps: 2, 4)" in out


def test_export_into_a_folder_that_holds_something_else_keeps_it(tmp_path):
    earlier_run(tmp_path)
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    code, out = hair_ray("export", "-c", TINY, f"output_dir={tmp_path}", "--out", str(target))
    assert code == EXIT_WOULD_OVERWRITE
    assert f"export target {target} is not empty and is not this checkpoint's export" in out and "--overwrite" in out
    assert (target / "notes.txt").read_text() == "keep me"


def test_export_onto_a_file_is_refused(tmp_path):
    earlier_run(tmp_path)
    target = tmp_path / "model.txt"
    target.write_text("keep me")
    code, out = hair_ray("export", "-c", TINY, f"output_dir={tmp_path}", "--out", str(target))
    assert code == EXIT_WOULD_OVERWRITE and "is a file" in out and target.read_text() == "keep me"


def test_exporting_the_same_checkpoint_again_returns_the_export_untouched(tmp_path):
    from hair_ray.train.export import MANIFEST_FILE, _manifest

    config = earlier_run(tmp_path)
    target = config.run_dir / "export" / "step-000004"
    target.mkdir(parents=True)
    (target / MANIFEST_FILE).write_text(json.dumps(_manifest(checkpoint_dir(config.run_dir, 4))))
    (target / "model.safetensors").write_bytes(b"weights")
    code, out = hair_ray("export", "-c", TINY, f"output_dir={tmp_path}")
    assert code == 0 and out.strip() == str(target)
    assert (target / "model.safetensors").read_bytes() == b"weights"


def test_atomic_writes_give_the_modes_a_new_file_would_have(tmp_path):
    from hair_ray.atomic import atomic_dir, atomic_write_text

    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "folder") as staging:
            (staging / "a.txt").write_text("x")
        atomic_write_text(tmp_path / "file.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "file.json").stat().st_mode) == 0o644


def write_reward_models(root: Path, run_id: str, categories=CATEGORY_NAMES, *, report_run_id: str | None = None) -> None:
    from hair_ray.models.reward_model import METADATA_FILE

    for category in categories:
        (root / category).mkdir(parents=True, exist_ok=True)
        (root / category / METADATA_FILE).write_text(json.dumps({"category": category, "extra": {"run_id": run_id}}))
    report = {"run_id": report_run_id or run_id, "categories": {}}
    (root / "report.json").write_text(json.dumps(report))


def test_reward_training_into_a_folder_with_models_stops_before_ray_and_keeps_them(tmp_path, no_ray):
    models = tmp_path / "rm"
    write_reward_models(models, "run-a")
    before = snapshot(models)
    code, out = hair_ray("reward", "train", "-c", TINY, f"reward.models_dir={models}")
    assert code == EXIT_WOULD_OVERWRITE
    assert f"reward.models_dir {models} holds reward models (insult," in out and "--overwrite" in out
    assert snapshot(models) == before


def test_an_interrupted_reward_training_leaves_the_previous_models_whole(tmp_path, monkeypatch):
    from hair_ray.reward import train as reward_train

    models = tmp_path / "rm"
    write_reward_models(models, "run-a")
    before = snapshot(models)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt("killed while sampling negatives")

    monkeypatch.setattr(reward_train, "sample_negatives_in_ray", interrupted)
    config = load_config(TINY, [f"reward.models_dir={models}", "reward.train_source=seed"])
    with pytest.raises(KeyboardInterrupt):
        reward_train.train_reward_models(config, overwrite=True)
    assert snapshot(models) == before  # the new set was staged beside it, never mixed in


def test_a_reward_models_folder_mixing_two_runs_stops_training(tmp_path):
    models = tmp_path / "rm"
    write_reward_models(models, "run-a")
    write_reward_models(models, "run-b", categories=("insult", "privacy_property"), report_run_id="run-a")
    code, out = hair_ray("config", "check", "-c", TINY, f"output_dir={tmp_path}", f"reward.models_dir={models}")
    assert code == EXIT_INPUT
    assert "mixes reward models of different `reward train` runs: insult, privacy_property were not written by run run-a" in out


def test_missing_reward_models_are_named_before_any_actor(tmp_path):
    code, out = hair_ray("config", "check", "-c", TINY, f"output_dir={tmp_path}", f"reward.models_dir={tmp_path / 'none'}")
    assert code == EXIT_INPUT
    assert "has no reward model for insult, unfairness_discrimination" in out and "hair-ray reward train" in out


# ---------------------------------------------------------------------------------------------
# Config: accepted without a word before, now named


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("learner.learning_rate=.inf", "learner.learning_rate: Input should be a finite number"),
        ("learner.learning_rate=.nan", "learner.learning_rate: Input should be a finite number"),
        ("name=..", "name: '..' is not a folder name"),
        ("name=.", "name: '.' is not a folder name"),
        ("reward.sum_weights={insult: 1}", "sum_weights is only read with routing: sum"),
        ("data.sources.3.path=x.csv", "data.sources is a list of 1; index it with 0..0"),
        ("data.sources.first.path=x.csv", "or replace it whole (data.sources=[...])"),
        ("algo.group_size.x=1", "algo.group_size is a value, not a section"),
    ],
)
def test_a_config_value_that_would_be_ignored_or_misread_is_named(override, expected):
    code, out = hair_ray("config", "check", "--no-local", "-c", TINY, override)
    assert code == EXIT_INPUT and expected in out


def test_a_list_item_can_be_overridden_by_its_index():
    config = load_config("jobs/demo_cpu.yaml", ["data.sources.0.path=elsewhere.jsonl"])
    assert config.data.sources[0].path == "elsewhere.jsonl"


def test_the_index_one_past_a_lists_end_appends_a_whole_item():
    config = load_config("jobs/demo_cpu.yaml", ["data.sources.1={kind: table, path: more.csv, category_column: harm}"])
    assert [source.kind for source in config.data.sources] == ["seed", "table"]
    assert config.data.sources[1].path == "more.csv" and config.data.sources[1].category_column == "harm"
    with pytest.raises(ConfigError, match=r"append a whole item \(data.sources.1=...\)"):
        load_config("jobs/demo_cpu.yaml", ["data.sources.1.path=more.csv"])  # a field of no item yet


def test_an_empty_config_file_is_an_error_not_the_defaults(tmp_path):
    empty = tmp_path / "run.yaml"
    empty.write_text("# nothing yet\n")
    code, out = hair_ray("config", "check", "-c", str(empty))
    assert code == EXIT_INPUT and f"{empty} is empty" in out


def test_a_config_path_that_is_a_folder_says_so(tmp_path):
    code, out = hair_ray("config", "check", "-c", str(tmp_path))
    assert code == EXIT_INPUT and "is a folder: give a YAML file" in out


def test_an_output_dir_below_a_file_is_named_before_ray(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out = hair_ray("config", "check", "-c", TINY, f"output_dir={blocker / 'runs'}", RULE_REWARD)
    assert code == EXIT_MACHINE and f"{blocker} is a file, not a folder" in out


def test_a_hardness_encoder_that_is_not_installed_is_named(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "open_clip" else real(name, *a))
    code, out = hair_ray("config", "check", "-c", TINY, f"output_dir={tmp_path}", "hardness.encoder=open_clip", RULE_REWARD)
    assert code == EXIT_INPUT and "the open_clip package is not installed" in out and "sentence_transformers" in out


def test_every_problem_is_listed_and_the_first_decides_the_exit_code(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out = hair_ray("train", "-c", TINY, f"output_dir={blocker / 'runs'}", f"reward.models_dir={tmp_path / 'none'}")
    assert code == EXIT_MACHINE  # the output folder is checked before the reward models
    lines = out.strip().splitlines()
    assert lines[0].startswith("error: output folder: ") and f"{blocker} is a file, not a folder" in lines[0]
    assert any(line.startswith("reward models: ") and "has no reward model for insult" in line for line in lines[1:])


def test_placement_is_checked_against_a_given_cluster_size(tmp_path):
    code, out = hair_ray(
        "config", "check", "--no-local", "-c", "jobs/qwen2_7b_8gpu.yaml", "--nodes", "1", "--cpus", "2", "--gpus", "0"
    )
    assert code == EXIT_CLUSTER and "the plan needs 8 GPUs" in out and "but the cluster has 0" in out
    code, out = hair_ray(
        "config", "check", "--no-local", "-c", "jobs/qwen2_7b_8gpu.yaml", "--nodes", "1", "--cpus", "64", "--gpus", "8"
    )
    assert code == 0 and "placement fits 1 × {CPU: 64, GPU: 8}" in out


def test_colocated_tensor_parallel_rollout_is_refused_on_cpu_too():
    code, out = hair_ray(
        "config",
        "check",
        "--no-local",
        "-c",
        TINY,
        "placement.strategy=colocated",
        "rollout.tensor_parallel_size=2",
        "--cpus",
        "8",
    )
    assert code == EXIT_CLUSTER and "rollout.tensor_parallel_size must be 1 (got 2)" in out


def test_a_policy_path_that_does_not_exist_is_not_sent_to_the_hub(tmp_path):
    code, out = hair_ray(
        "config", "check", "-c", TINY, f"output_dir={tmp_path}", "policy.name_or_path=./no/such/model", RULE_REWARD
    )
    assert code == EXIT_INPUT and "model folder ./no/such/model does not exist" in out and "download" not in out


def test_models_prepare_of_a_missing_path_fails():
    code, out = hair_ray("models", "prepare", "./no/such/model")
    assert code == EXIT_INPUT and "model folder ./no/such/model does not exist" in out


# ---------------------------------------------------------------------------------------------
# Data files


def test_training_records_of_another_taxonomy_are_named_by_line(tmp_path):
    from hair_ray.data.records import read_records

    path = tmp_path / "train.jsonl"
    path.write_text(
        json.dumps({"id": 1, "category": "insult", "prompt": "p", "text": "t"})
        + "\n"
        + json.dumps({"id": 2, "category": "violence", "prompt": "p", "text": "t"})
        + "\n"
    )
    with pytest.raises(ValueError, match=rf"{path}:2: category 'violence' is not one of insult"):
        read_records(path)


def test_a_dataset_that_is_not_utf8_is_named_by_line(tmp_path):
    from hair_ray.data.records import read_records

    path = tmp_path / "train.jsonl"
    path.write_bytes(json.dumps({"id": 1, "category": "insult", "prompt": "p", "text": "t"}).encode() + b'\n{"id": "\xff"}\n')
    with pytest.raises(ValueError, match=rf"{path}:2: not UTF-8 text"):
        read_records(path)


def test_train_names_a_bad_dataset_line_before_ray(tmp_path, no_ray):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"id": 1, "category": "insult", "prompt": "p"}\n')
    code, out = hair_ray("train", "-c", TINY, f"output_dir={tmp_path}", f"data.dataset_dir={data}", RULE_REWARD)
    assert code == EXIT_INPUT and f"{data / 'train.jsonl'}:1: record lacks text" in out


def test_report_of_a_folder_without_metrics_is_input_not_a_defect(tmp_path):
    code, out = hair_ray("report", str(tmp_path))
    assert code == EXIT_INPUT and out.startswith("error: ")


# ---------------------------------------------------------------------------------------------
# One error surface: classes and exit codes


def failing_command(error: BaseException):
    @cli_errors
    def command() -> None:
        raise error

    app_ = typer.Typer()
    app_.command()(command)
    return app_


def run_failing(error: BaseException, env: dict[str, str] | None = None):
    return runner.invoke(failing_command(error), [], env=env)


def test_a_full_disk_says_so_and_names_the_file():
    result = run_failing(OSError(errno.ENOSPC, "No space left on device", "outputs/run/metrics.jsonl"))
    assert result.exit_code == EXIT_MACHINE
    assert result.output.strip() == "error: the disk is full: outputs/run/metrics.jsonl (No space left on device)"


def test_permission_denied_is_the_machine_class():
    result = run_failing(PermissionError(errno.EACCES, "Permission denied", "/srv/runs"))
    assert result.exit_code == EXIT_MACHINE and "permission denied: /srv/runs" in result.output


def test_a_file_where_a_folder_should_be_is_named():
    result = run_failing(FileExistsError(errno.EEXIST, "File exists", "outputs/runs"))
    assert result.exit_code == EXIT_MACHINE and "a file stands where a folder should be: outputs/runs" in result.output


def test_an_unforeseen_error_is_a_defect_with_its_traceback():
    result = run_failing(RuntimeError("boom"))
    assert result.exit_code == EXIT_DEFECT and isinstance(result.exception, RuntimeError)


def test_debug_shows_the_traceback_of_any_error():
    result = run_failing(ValueError("bad field"), env={"HAIR_RAY_DEBUG": "1"})
    assert isinstance(result.exception, ValueError)
    assert run_failing(ValueError("bad field")).output.strip() == "error: bad field"


def test_an_interrupt_exits_130_with_the_way_to_resume():
    result = run_failing(KeyboardInterrupt())
    assert result.exit_code == EXIT_INTERRUPTED and "checkpoint.resume=auto" in result.output


def test_errors_raised_inside_ray_actors_keep_their_class():
    from ray.exceptions import GetTimeoutError, RayTaskError

    wrapped = RayTaskError("score", "Traceback ...", ValueError("reward model insult: bad metadata"))
    assert exit_code(wrapped) == EXIT_INPUT and describe(wrapped) == "reward model insult: bad metadata"
    late = GetTimeoutError("Get timed out: some object(s) not ready.\nmore lines")
    assert exit_code(late) == EXIT_CLUSTER
    assert describe(late).startswith("GetTimeoutError: Get timed out: some object(s) not ready. (")


def test_service_errors_are_the_cluster_class():
    from hair_ray.data.teachers import TeacherUnavailable
    from hair_ray.train.placement import PlacementError

    assert exit_code(TeacherUnavailable("refused")) == EXIT_CLUSTER
    assert exit_code(PlacementError("does not fit")) == EXIT_CLUSTER


def test_the_version_and_the_exit_codes_are_in_the_help():
    code, out = hair_ray("--version")
    assert code == 0 and out.strip() == f"hair-ray {__version__}"
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "240"})
    assert "3 would destroy earlier results" in result.output and "--debug" in result.output
