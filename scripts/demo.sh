#!/usr/bin/env bash
# The main job: all of HAIR on the embedded seed dataset, offline, on CPU (jobs/demo_cpu.yaml).
#   A. build the balanced seven-category Chain-of-Draft dataset
#   B. train the seven shadow reward models by inverse RL (MiniLM backbone)
#   C. align SmolLM2-135M-Instruct with GRPO-S (vLLM rollout, DeepSpeed learner)
# then export the policy as a Hugging Face folder and print the run's report.
# Extra arguments are config overrides, e.g. `make demo ARGS="algo.total_steps=4"`; with
# DATA=/path/to/data (holding do-not-answer/data_en.csv) stage B is also checked against human labels.
# Each run replaces the demo's own outputs (outputs/demo): its reward models, run and export.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 WANDB_MODE=${WANDB_MODE:-offline} TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
# vLLM logs every engine setting at INFO and CPU-backend advice at WARNING; the demo shows its
# own progress instead (errors still print).
export VLLM_LOGGING_LEVEL=${VLLM_LOGGING_LEVEL:-ERROR}
CONFIG=${CONFIG:-jobs/demo_cpu.yaml}
HAIR=.venv/bin/hair-ray
stage() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }

SECONDS=0
stage "A. dataset"
$HAIR data build --config "$CONFIG" "$@"
stage "B. seven shadow reward models"
$HAIR reward train --overwrite --config "$CONFIG" "$@"
if [[ -n ${DATA:-} ]]; then
    # Optional (DATA=/path/to/data, a few minutes more): the models' agreement with Do-Not-Answer's
    # human labels, written next to them, where stage C's check reads it.
    $HAIR reward eval --config "$CONFIG" "$@" --data-en "$DATA/do-not-answer/data_en.csv"
fi
stage "C. GRPO-S"
$HAIR train --overwrite --config "$CONFIG" "$@"
stage "export"
$HAIR export --overwrite --config "$CONFIG" "$@"
stage "report"
RUN_DIR=$(.venv/bin/python -c "import sys; from hair_ray.config import load_config; print(load_config(sys.argv[1], sys.argv[2:]).run_dir)" "$CONFIG" "$@")
$HAIR report "$RUN_DIR"
echo "demo finished in ${SECONDS}s"
