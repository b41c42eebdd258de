#!/usr/bin/env bash
# Runs the whole test suite on this machine: the main venv, then (on CPU machines) the open_clip
# encoder tests in .venv-clip. GPU-only tests (marker `gpu`) run through benchmarks/gpu_check.sh.
# `--fast` (make test-fast) leaves out the `slow` tests and the open_clip ones.
set -euo pipefail
cd "$(dirname "$0")/.."

# No test may reach the hub or the wandb servers.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

if [[ ${1:-} == --fast ]]; then  # `make test-fast`: no `slow` tests, no open_clip side venv (~5 min)
    shift
    exec .venv/bin/python -m pytest -m "not slow and not gpu and not clip" "$@"
fi
if [[ -x .venv-clip/bin/python ]]; then
    .venv/bin/python -m pytest -m "not gpu and not clip" --durations=15 "$@"
    echo "--- open_clip encoder tests (.venv-clip: torch 2.14.1 + torchvision) ---"
    PYTHONPATH=. .venv-clip/bin/python -m pytest -m clip -p no:cacheprovider tests/clip
else
    .venv/bin/python -m pytest -m "not gpu" --durations=15 "$@"
fi
