#!/usr/bin/env bash
# The GPU check for one CUDA machine (an H200 here), in under 8 minutes, from the repo root:
#
#   benchmarks/gpu_check.sh
#
# 1. A venv with the `gpu` extra (vllm 0.33 + its CUDA torch, open_clip). The GPU machine has no
#    network: either a venv is carried/provided ($HAIR_RAY_GPU_VENV, default .cache/venv-gpu,
#    which git ignores), or wheels are (a folder $HAIR_RAY_WHEELS from
#    `pip download -d wheels ".[gpu,dev]"` on a machine with the same Python and platform).
#    If the machine's python3 already has torch (CUDA), vllm, ray and deepspeed, the venv is
#    made on top of it and only this project is added. Otherwise it tries the package index,
#    which works only where there is network.
# 2. benchmarks/gpu_check.py: rollout throughput (bare vLLM vs our RolloutWorker), weight sync
#    seconds (object store and NCCL, with greedy-equality checks), one training step. JSON to
#    $OUT/gpu_check.json when $OUT is set, else benchmarks/results/gpu_check.json.
# 3. The `gpu`-marked tests (tests/gpu), with whatever time is left.
set -uo pipefail  # not -e: the tests run even when a part of the check failed
cd "$(dirname "$0")/.."

TOTAL_S=${HAIR_RAY_GPU_CHECK_S:-470}  # seconds for everything below, set-up included
start=$SECONDS
VENV=${HAIR_RAY_GPU_VENV:-.cache/venv-gpu}

if [[ ! -x "$VENV/bin/python" ]] && python3 -c "import torch, vllm, ray, deepspeed, pytest; assert torch.cuda.is_available()" 2>/dev/null; then
    # The machine's own Python already has the stack: reuse it, add only this project (offline).
    echo "--- creating $VENV on the system site-packages"
    python3 -m venv --system-site-packages "$VENV" || exit 2
    "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e . || exit 2
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "--- creating $VENV with .[gpu,dev]"
    python3 -m venv "$VENV" || exit 2
    pip_args=()
    if [[ -n "${HAIR_RAY_WHEELS:-}" ]]; then
        pip_args=(--no-index --find-links "$HAIR_RAY_WHEELS")
    fi
    # DeepSpeed's ops stay unbuilt: the learner uses a torch optimizer (no JIT kernels needed).
    DS_BUILD_OPS=0 "$VENV/bin/python" -m pip install -q "${pip_args[@]}" -e ".[gpu,dev]" || exit 2
fi
PY="$VENV/bin/python"
"$PY" -c "import torch, vllm; assert torch.cuda.is_available(), 'no CUDA GPU visible'; print('torch', torch.__version__, 'vllm', vllm.__version__, torch.cuda.get_device_name(0))" || exit 2

export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 WANDB_MODE=disabled
# The checks write caches (tiny models, vLLM compile cache) under the repo's ignored .cache.
export HAIR_RAY_CACHE=${HAIR_RAY_CACHE:-$PWD/.cache/hair_ray}

used=$((SECONDS - start))
budget=$((TOTAL_S - used - 90))  # keep ~90 s for the tests
echo "--- gpu_check.py (budget ${budget} s)"
timeout --signal=TERM --kill-after=20 $((budget + 40)) "$PY" benchmarks/gpu_check.py --budget-s "$budget"
check_rc=$?

left=$((TOTAL_S - (SECONDS - start)))
tests_rc=0
if (( left > 45 )); then
    echo "--- tests/gpu (${left} s left)"
    report=()
    [[ -n "${OUT:-}" ]] && report=(--junitxml "$OUT/gpu_tests.xml")
    timeout --signal=TERM --kill-after=15 "$left" "$PY" -m pytest -m gpu tests/gpu -q -x -p no:cacheprovider "${report[@]}"
    tests_rc=$?
else
    echo "--- tests/gpu skipped: ${left} s left"
fi
echo "--- done in $((SECONDS - start)) s: gpu_check.py rc=$check_rc, tests rc=$tests_rc"
exit $(( check_rc != 0 || tests_rc != 0 ))
