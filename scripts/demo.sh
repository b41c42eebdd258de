#!/usr/bin/env bash
# The main job on the embedded default. Grows with the pipeline: today it validates the demo
# config and prepares the offline models; the trainer issue makes it run all of HAIR.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 WANDB_MODE=${WANDB_MODE:-offline} TOKENIZERS_PARALLELISM=false

.venv/bin/hair-ray config check --config jobs/tiny_cpu.yaml
.venv/bin/hair-ray models prepare tiny:qwen2 builtin:smollm2-135m-instruct builtin:all-minilm-l6-v2
