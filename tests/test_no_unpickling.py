"""Nothing hair_ray loads can run code.

Each test plants a live payload — a pickle whose `__reduce__` creates a marker file when it is
unpickled — where export, resume or a vLLM engine would read it, and checks the load is refused
with a message naming the file or folder, and that the marker never appears.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import sys
import types
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from hair_ray.config import load_config
from hair_ray.train.checkpoint import (
    UnsafeCheckpointError,
    deepspeed_safe_globals,
    safe_torch_load,
    save_checkpoint,
    weights_only_loads,
)

_original_torch_load = torch.load

# The raw-pickle payload uses pickle's default protocol, which torch's weights-only reader warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Detected pickle protocol")


class Payload:
    """Unpickled without restriction, this creates `marker` (a stand-in for any code)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def plant(file: Path, marker: Path, *, raw_pickle: bool = False, key: str = "module") -> Path:
    """A checkpoint-looking file whose `key` entry is the payload."""
    file.parent.mkdir(parents=True, exist_ok=True)
    content = {key: Payload(marker), "ds_version": "0.19.8"}
    if raw_pickle:  # a plain pickle, not torch's zip format: torch.load reads both
        with open(file, "wb") as handle:
            pickle.dump(content, handle)
    else:
        torch.save(content, file)
    return file


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "payload-ran"


@pytest.mark.parametrize("raw_pickle", [False, True], ids=["torch-zip", "raw-pickle"])
def test_the_planted_payload_is_live(tmp_path, marker, raw_pickle):
    """Control: an unrestricted load (what export and DeepSpeed did) runs the payload, so the
    tests below, where the marker stays absent, show a refusal and not a dud payload."""
    file = plant(tmp_path / "model_states.pt", marker, raw_pickle=raw_pickle)
    # A raw pickle is read as the legacy format's magic number: it runs, then torch gives up.
    with contextlib.suppress(RuntimeError) if raw_pickle else contextlib.nullcontext():
        torch.load(file, weights_only=False)
    assert marker.exists()


# --------------------------------------------------------------------------- export


def run_config(tmp_path):
    return load_config("jobs/tiny_cpu.yaml", [f"output_dir={tmp_path}"])


def checkpoint_with_learner(cfg, step: int, fill) -> Path:
    """A complete RUN/checkpoints/step-N whose learner/learner/ folder `fill` writes, as
    DeepSpeed's `save_checkpoint(learner_dir, "learner")` lays it out."""
    return save_checkpoint(
        cfg.run_dir,
        step,
        config=cfg,
        sampler_state={},
        weights_version=step,
        write_learner=lambda learner_dir: fill(learner_dir / "learner"),
    )


def zero_model_states() -> dict:
    """The parts of a ZeRO model-states file that zero_to_fp32 reads before the optimizer files."""
    return {"buffer_names": [], "module": {}, "param_shapes": [OrderedDict()], "shared_params": {}, "ds_version": "0.19.8"}


MODEL_STATES = "mp_rank_00_model_states.pt"
OPTIM_STATES = "zero_pp_rank_0_mp_rank_00_optim_states.pt"
LAYOUTS = ("zero0", "zero0-raw-pickle", "zero2-model-states", "zero2-optim-states")


def fill_learner(layout: str, folder: Path, marker: Path) -> Path:
    """DeepSpeed's files for `layout`, one of them the payload; returns the planted file's name.

    ZeRO-0: export reads the module weights from the model-states file itself. ZeRO-1/2/3 (an
    optimizer-states file is present): DeepSpeed's zero_to_fp32 reads the files, model states
    first, with its own torch.load(weights_only=False).
    """
    folder.mkdir(parents=True)
    if layout.startswith("zero0"):
        return plant(folder / MODEL_STATES, marker, raw_pickle=layout.endswith("raw-pickle")).name
    if layout == "zero2-model-states":
        torch.save({"optimizer_state_dict": {}}, folder / OPTIM_STATES)
        return plant(folder / MODEL_STATES, marker).name
    torch.save(zero_model_states(), folder / MODEL_STATES)
    return plant(folder / OPTIM_STATES, marker, key="optimizer_state_dict").name


@pytest.mark.parametrize("layout", LAYOUTS)
def test_export_refuses_a_planted_learner_file_and_runs_nothing(tmp_path, marker, layout):
    from hair_ray.train.export import export_checkpoint

    cfg = run_config(tmp_path)
    planted: list[str] = []
    checkpoint_with_learner(cfg, 4, lambda folder: planted.append(fill_learner(layout, folder, marker)))
    # The path as it is after the commit (the staging folder was renamed into place).
    file = cfg.run_dir / "checkpoints" / "step-000004" / "learner" / "learner" / planted[0]
    assert file.is_file()

    with pytest.raises(UnsafeCheckpointError) as info:
        export_checkpoint(cfg, step=4)
    message = str(info.value)
    assert message.startswith(f"refusing to load {file}: it holds objects that only unpickling arbitrary code")
    assert "weights_only=True" in message and "nothing in it was run" in message
    if layout == "zero0-raw-pickle":  # not torch's zip format: torch's reason instead
        assert "(Unsupported operand" in message
    else:  # the unsafe globals, by name
        assert "(builtins.getattr, pathlib.Path, pathlib.PosixPath)" in message
    assert not marker.exists()
    assert not (cfg.run_dir / "export").exists()
    assert torch.load is _original_torch_load  # the weights-only wrapper is gone afterwards


def test_export_cli_reports_the_refusal_with_the_checkpoint_exit_code(tmp_path, marker):
    from typer.testing import CliRunner

    from hair_ray.cli import app

    cfg = run_config(tmp_path)
    checkpoint_with_learner(cfg, 2, lambda folder: fill_learner("zero0", folder, marker))
    result = CliRunner().invoke(app, ["export", "--config", "jobs/tiny_cpu.yaml", f"output_dir={tmp_path}", "--step", "2"])
    assert result.exit_code == 4, result.output  # hair_ray.errors.EXIT_CHECKPOINT
    assert "error: refusing to load" in result.output
    assert "step-000002/learner/learner/mp_rank_00_model_states.pt" in result.output
    assert not marker.exists()


def test_export_still_writes_a_legitimate_zero0_checkpoint(tmp_path):
    """The weights-only path reads what DeepSpeed writes at ZeRO-0 (weights, optimizer state,
    the lr scheduler, DeepSpeed's own classes) and exports the same weights."""
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from transformers import AutoModelForCausalLM

    from hair_ray.models.loading import load_causal_lm
    from hair_ray.train.export import export_checkpoint

    cfg = run_config(tmp_path)
    model = load_causal_lm(cfg.policy, dtype=torch.float32)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.5)  # not the initial policy
    optimizer = torch.optim.AdamW(model.parameters())
    state = {
        "module": model.state_dict(),
        "buffer_names": [],
        "optimizer": optimizer.state_dict(),
        "lr_scheduler": {"last_epoch": 3, "lr_lambdas": [None]},
        "global_steps": 3,
        "ds_version": "0.19.8",
        "loss_scaler": LossScaler(1.0),
    }
    checkpoint_with_learner(cfg, 3, lambda folder: (folder.mkdir(), torch.save(state, folder / MODEL_STATES)))

    folder = export_checkpoint(cfg, step=3)
    exported = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    for name, param in model.state_dict().items():
        assert torch.equal(exported.state_dict()[name], param), name


# --------------------------------------------------------------------------- resume (learner)


class DeepSpeedReads:
    """Stands in for the DeepSpeed engine in `LearnerWorker.load_checkpoint`: reads its file the
    way `engine.load_checkpoint` does, through DeepSpeed's own TorchCheckpointEngine, which
    calls `torch.load(..., weights_only=False)`."""

    def __init__(self):
        self.loaded: dict | None = None

    def load_checkpoint(self, folder: str, tag: str):
        from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine

        self.loaded = TorchCheckpointEngine().load(os.path.join(folder, tag, "mp_rank_00_model_states.pt"), map_location="cpu")
        return os.path.join(folder, tag), {}


def test_learner_resume_refuses_a_planted_model_states_file(tmp_path, marker):
    from hair_ray.workers.learner import LearnerWorker

    file = plant(tmp_path / "learner" / "learner" / "mp_rank_00_model_states.pt", marker)
    worker = LearnerWorker(0, 1)
    worker.engine = DeepSpeedReads()
    with pytest.raises(UnsafeCheckpointError) as info:
        worker.load_checkpoint(str(tmp_path / "learner"), "learner")
    message = str(info.value)
    assert message.startswith(f"refusing to load {file}: ")
    assert "pathlib.Path" in message and "nothing in it was run" in message
    assert worker.engine.loaded is None
    assert not marker.exists()
    assert torch.load is _original_torch_load


def test_learner_resume_reads_what_deepspeed_writes(tmp_path):
    """DeepSpeed's checkpoint classes (ZeRO stage enum, loss scaler, slice mappings) come back
    equal through the weights-only load, tensors bit for bit."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    from hair_ray.workers.learner import LearnerWorker

    def fp16_scaler():
        return DynamicLossScaler(
            init_scale=2.0**16,
            scale_window=1000,
            min_scale=1.0,
            delayed_shift=2,
            consecutive_hysteresis=False,
            dtype=torch.float16,
        )

    weights = torch.randn(4, 3)
    state = {
        "module": OrderedDict(w=weights),
        "optimizer": {
            "zero_stage": ZeroStageEnum.gradients,
            "loss_scaler": LossScaler(1.0),
            "fp16_scaler": fp16_scaler(),
            "param_slice_mappings": [OrderedDict(w=fragment_address(numel=12, start=0))],
        },
        "param_shapes": [OrderedDict(w=torch.Size([4, 3]))],
        "ds_config": {"zero_optimization": {"stage": 2}},
        "global_steps": 7,
    }
    folder = tmp_path / "learner" / "learner"
    folder.mkdir(parents=True)
    torch.save(state, folder / "mp_rank_00_model_states.pt")
    worker = LearnerWorker(0, 1)
    worker.engine = DeepSpeedReads()
    worker.load_checkpoint(str(tmp_path / "learner"), "learner")
    loaded = worker.engine.loaded
    assert torch.equal(loaded["module"]["w"], weights)
    optimizer = loaded["optimizer"]
    assert optimizer["zero_stage"] is ZeroStageEnum.gradients
    assert isinstance(optimizer["loss_scaler"], LossScaler) and vars(optimizer["loss_scaler"]) == vars(LossScaler(1.0))
    assert vars(optimizer["fp16_scaler"]) == vars(fp16_scaler())
    assert optimizer["param_slice_mappings"][0]["w"] == fragment_address(numel=12, start=0)
    assert loaded["param_shapes"] == state["param_shapes"] and loaded["global_steps"] == 7


def test_weights_only_loads_overrides_weights_only_false_and_restores_torch_load(tmp_path, marker):
    file = plant(tmp_path / "x.pt", marker)
    with weights_only_loads(deepspeed_safe_globals()):
        assert torch.load is not _original_torch_load
        with pytest.raises(UnsafeCheckpointError, match="refusing to load"):
            torch.load(file, map_location="cpu", weights_only=False)
    assert torch.load is _original_torch_load
    with pytest.raises(UnsafeCheckpointError):
        safe_torch_load(file)
    assert not marker.exists()


def test_rng_state_refuses_a_planted_file(tmp_path, marker):
    from hair_ray.train.checkpoint import read_rng_state

    file = plant(tmp_path / "rng.pt", marker, key="python")
    with pytest.raises(UnsafeCheckpointError, match=f"refusing to load {file}"):
        read_rng_state(file)
    assert not marker.exists()


# --------------------------------------------------------------------------- vLLM and HF weights


@pytest.fixture
def bin_only_folder(tmp_path, marker) -> Path:
    """A policy folder (config, tokenizer) whose only weights are a pickled .bin with the payload."""
    from hair_ray.models.tiny import tiny_policy_path

    source = tiny_policy_path("qwen2")
    folder = tmp_path / "pickled-policy"
    folder.mkdir()
    for item in source.iterdir():
        if item.is_file() and not item.name.endswith(".safetensors") and not item.name.endswith(".index.json"):
            shutil.copy(item, folder / item.name)
    plant(folder / "pytorch_model.bin", marker)
    return folder


@pytest.fixture
def fake_vllm(monkeypatch):
    """A `vllm` module whose LLM records its arguments instead of starting an engine."""
    calls: list[dict] = []
    module = types.ModuleType("vllm")
    module.LLM = lambda **kwargs: calls.append(kwargs) or "engine"
    monkeypatch.setitem(sys.modules, "vllm", module)
    return calls


def test_vllm_engine_refuses_a_bin_only_folder_before_starting(bin_only_folder, marker, fake_vllm):
    from hair_ray.models.vllm_engine import UnsafeWeightsError, create_llm

    with pytest.raises(UnsafeWeightsError) as info:
        create_llm(str(bin_only_folder))
    message = str(info.value)
    assert message.startswith(f"model folder {bin_only_folder} has no *.safetensors weights (it has pytorch_model.bin)")
    assert "Convert the folder to safetensors" in message and "safe_serialization=True" in message
    assert fake_vllm == []  # vLLM was never asked to build an engine
    assert not marker.exists()


def test_rollout_worker_refuses_a_bin_only_folder(bin_only_folder, marker, fake_vllm):
    from hair_ray.models.vllm_engine import UnsafeWeightsError
    from hair_ray.workers.rollout import RolloutWorker

    with pytest.raises(UnsafeWeightsError, match=f"model folder {bin_only_folder} has no"):
        RolloutWorker(str(bin_only_folder), backend="vllm")
    assert fake_vllm == [] and not marker.exists()


def test_vllm_teacher_refuses_a_bin_only_folder_before_ray_data(bin_only_folder, marker):
    from hair_ray.config import TeacherConfig
    from hair_ray.data.teachers import TeacherUnavailable, VLLMTeacher

    cfg = TeacherConfig(backend="vllm", model={"name_or_path": str(bin_only_folder)})
    with pytest.raises(TeacherUnavailable, match=f"the vLLM teacher cannot start: model folder {bin_only_folder} has no"):
        VLLMTeacher(cfg, seed=0)
    assert not marker.exists()


def test_vllm_engine_loads_safetensors_only(fake_vllm):
    from hair_ray.models.tiny import tiny_policy_path
    from hair_ray.models.vllm_engine import create_llm

    folder = tiny_policy_path("qwen2")
    assert any(folder.glob("*.safetensors"))
    assert create_llm(str(folder)) == "engine"
    [kwargs] = fake_vllm
    assert kwargs["model"] == str(folder) and kwargs["load_format"] == "safetensors"


def test_hf_loading_never_reads_the_bin(bin_only_folder, marker):
    from hair_ray.config import ModelSpec
    from hair_ray.models.loading import load_causal_lm

    with pytest.raises(OSError, match="safetensors"):
        load_causal_lm(ModelSpec(name_or_path=str(bin_only_folder)))
    assert not marker.exists()


# --------------------------------------------------------------------------- a real DeepSpeed engine


@pytest.mark.slow
def test_deepspeed_resume_is_exact_and_refuses_a_planted_optimizer_state(ray_local, tmp_path, marker):
    """ZeRO-2 on gloo: save, train on, load → the saved weights; the next update repeats
    exactly. Then a payload in the optimizer-state file is refused on load."""
    from hair_ray.workers.learner import start_learner_group

    cfg = load_config(
        "jobs/tiny_cpu.yaml",
        [
            "learner.num_workers=1",
            "learner.samples_per_micro_batch=4",
            "learner.learning_rate=1e-3",
            "learner.zero_stage=2",
            "learner.warmup_steps=3",
            "algo.prompts_per_step=2",
            "algo.group_size=4",
        ],
    )
    prompt = [1, 40, 41, 42, 43, 2, 201, 1, 50, 51, 201]
    samples = [
        {"prompt_ids": prompt, "response_ids": [60 + i, 61, 62, 63][: 1 + i % 4], "advantage": (-1.0) ** i} for i in range(8)
    ]
    [actor] = start_learner_group(cfg, optimizer_steps_total=10, num_cpus_per_worker=0.5)

    def computed(metrics: dict[str, float]) -> dict[str, float]:
        """The update's results without its clock (learner/seconds_*), which no resume repeats."""
        return {k: v for k, v in metrics.items() if not k.startswith("learner/seconds_")}

    def weights() -> dict[str, torch.Tensor]:
        buckets = ray_local.get(actor.export_weights.remote(2**20))
        return {name: tensor for bucket in buckets for name, tensor in bucket.items()}

    try:
        ray_local.get(actor.update.remote(samples))
        folder = tmp_path / "learner"
        ray_local.get(actor.save_checkpoint.remote(str(folder), "learner"))
        saved = weights()
        metrics = computed(ray_local.get(actor.update.remote(samples)))
        trained = weights()
        assert any(not torch.equal(trained[n], saved[n]) for n in saved)

        ray_local.get(actor.load_checkpoint.remote(str(folder), "learner"))
        assert all(torch.equal(t, saved[n]) for n, t in weights().items())
        assert computed(ray_local.get(actor.update.remote(samples))) == metrics  # Adam state, lr schedule, steps
        assert all(torch.equal(t, trained[n]) for n, t in weights().items())

        [optim] = (folder / "learner").glob("*optim_states.pt")
        plant(optim, marker, key="optimizer_state_dict")
        with pytest.raises(UnsafeCheckpointError) as info:
            ray_local.get(actor.load_checkpoint.remote(str(folder), "learner"))
        assert f"refusing to load {optim}: " in str(info.value)
        assert not marker.exists()
    finally:
        ray_local.get(actor.shutdown.remote())
        ray_local.kill(actor)
