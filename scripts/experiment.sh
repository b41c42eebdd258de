#!/usr/bin/env bash
# The alignment recipe (jobs/align_smollm2_cpu.yaml): does HAIR make SmolLM2-135M-Instruct safer
# than plain GRPO does, without making it useless? About an hour on a 2-core CPU machine.
#   A. stage-A dataset from Do-Not-Answer
#   B. the shadow reward models (seven, and benign), then the seven's agreement with Do-Not-Answer's human labels
#      (REWARD_DIR/eval_do_not_answer.json: stage C refuses models at chance)
#   C. two arms from the same seed and budget: GRPO (hardness.enabled=false) and HAIR
#   D. base, GRPO and HAIR side by side on held-out StrongREJECT, XSTest, the Do-Not-Answer test
#      split and AlpacaEval: OUT/eval.json, OUT/eval.png, the table on the console
#
#   make experiment DATA=/path/to/data [SEED=1] [ARGS="algo.total_steps=20"]
#
# DATA holds do-not-answer/data_en.csv, strongreject/, xstest/ and alpaca-eval/ (docs/evaluation.md
# names the files). Stages A and B are skipped when their outputs exist (delete outputs/align to
# redo them); a crashed arm resumes from its last checkpoint when run again.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:?set DATA=/path/to/data, the folder holding do-not-answer/, strongreject/, xstest/, alpaca-eval/}
SEED=${SEED:-0}
CONFIG=${CONFIG:-jobs/align_smollm2_cpu.yaml}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} WANDB_MODE=${WANDB_MODE:-offline} TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export VLLM_LOGGING_LEVEL=${VLLM_LOGGING_LEVEL:-ERROR}
HAIR=.venv/bin/hair-ray
COMMON=(--config "$CONFIG" "data.data_root=$DATA" "eval.data_root=$DATA" "seed=$SEED" "$@")
setting() { .venv/bin/python -c "import sys; from hair_ray.config import load_config; print(eval('c.' + sys.argv[1], {'c': load_config(sys.argv[2], sys.argv[3:])}))" "$1" "${COMMON[@]:1}"; }
stage() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }
DATASET=$(setting data.dataset_dir)
REWARD_DIR=$(setting reward.models_dir)
OUTPUT=$(setting output_dir)
NAME=$(setting name)
OUT=$(dirname "$OUTPUT")/eval-seed$SEED

SECONDS=0
stage "A. dataset ($DATASET)"
if [[ -f $DATASET/train.jsonl ]]; then echo "kept: $DATASET/train.jsonl"; else $HAIR data build "${COMMON[@]}"; fi
stage "B. shadow reward models, one a category ($REWARD_DIR)"
if [[ -f $REWARD_DIR/report.json ]]; then echo "kept: $REWARD_DIR/report.json"; else $HAIR reward train "${COMMON[@]}"; fi
if [[ ! -f $REWARD_DIR/eval_do_not_answer.json ]]; then
    $HAIR reward eval "${COMMON[@]}" --data-en "$DATA/do-not-answer/data_en.csv" --exclude-ids-from "$DATASET/train.jsonl"
fi
declare -A ARM_S
for arm in grpo hair; do
    stage "C. $arm arm"
    start=$SECONDS
    extra=(); [[ $arm == grpo ]] && extra=(hardness.enabled=false)
    $HAIR train "${COMMON[@]}" "name=$NAME-$arm-seed$SEED" checkpoint.resume=auto "${extra[@]}"
    $HAIR export "${COMMON[@]}" "name=$NAME-$arm-seed$SEED"
    ARM_S[$arm]=$((SECONDS - start))
done
stage "D. base vs GRPO vs HAIR"
EVAL_SETS=(); for override in "${COMMON[@]:2}"; do EVAL_SETS+=(--set "$override"); done
$HAIR eval "${COMMON[@]:0:2}" "${EVAL_SETS[@]}" \
    --policy base="$(setting policy.name_or_path)" \
    --policy grpo="$OUTPUT/$NAME-grpo-seed$SEED" \
    --policy hair="$OUTPUT/$NAME-hair-seed$SEED" \
    --reward-models "$REWARD_DIR" --out "$OUT"
for arm in grpo hair; do $HAIR report "$OUTPUT/$NAME-$arm-seed$SEED" > "$OUTPUT/$NAME-$arm-seed$SEED/report.txt"; done
echo "arm wall s: grpo ${ARM_S[grpo]} hair ${ARM_S[hair]}; experiment finished in ${SECONDS}s; results: $OUT"
