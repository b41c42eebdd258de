#!/usr/bin/env bash
# Submit a hair_ray training run to a Ray cluster as a Ray job.
#
#   RAY_ADDRESS=http://HEAD:8265 RAY_AUTH_TOKEN_PATH=~/.ray/auth_token \
#       jobs/submit.sh jobs/qwen2_7b_8gpu.yaml algo.total_steps=200 tracking.wandb_mode=online
#
# runs, from the repo root:
#
#   ray job submit --address $RAY_ADDRESS --working-dir . \
#       --runtime-env-json '<cluster/runtime_env.yaml as JSON>' \
#       -- hair-ray train --config CONFIG [overrides]
#
# Environment:
#   RAY_ADDRESS           the head's dashboard URL (job submission goes through the dashboard)
#   RAY_AUTH_MODE         default token; the token comes from RAY_AUTH_TOKEN_PATH (a file, preferred),
#                         RAY_AUTH_TOKEN, or ~/.ray/auth_token. It is never printed or uploaded.
#   HAIR_RAY_RUNTIME_ENV  the runtime_env file (default cluster/runtime_env.yaml)
#   HAIR_RAY_FORWARD_ENV  names of variables to copy from this shell into the job's env_vars
#                         (e.g. "HF_TOKEN"); they are stored with the job, so prefer setting
#                         secrets on the nodes (see cluster/runtime_env.yaml)
#   HAIR_RAY_SUBMIT_ARGS  extra `ray job submit` flags, e.g. "--no-wait --submission-id run-7"
#   HAIR_RAY_CLUSTER_SHAPE  the cluster's size for the placement check before upload,
#                         e.g. "--nodes 2 --cpus 32 --gpus 8"
set -euo pipefail

if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
    sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"  # --working-dir . uploads the checkout; config paths are relative to it
CONFIG=$1
shift
[[ -f "$CONFIG" ]] || { echo "error: config $CONFIG not found (paths are relative to the repo root)" >&2; exit 2; }
[[ -n "${RAY_ADDRESS:-}" ]] || { echo "error: set RAY_ADDRESS to the head's dashboard URL, e.g. http://127.0.0.1:8265" >&2; exit 2; }

if [[ -z "${VIRTUAL_ENV:-}" && -x "$ROOT/.venv/bin/ray" ]]; then
    export PATH="$ROOT/.venv/bin:$PATH"
fi

export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
if [[ "$RAY_AUTH_MODE" == token && -z "${RAY_AUTH_TOKEN:-}" ]]; then
    token_file=${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}
    if [[ ! -s "$token_file" ]]; then
        echo "error: token auth is on but there is no token: set RAY_AUTH_TOKEN_PATH to the cluster's token file" >&2
        echo "       (cluster/local_head.sh prints it; KubeRay keeps it in a Secret)" >&2
        exit 2
    fi
fi

# Fail here, in seconds, rather than on the cluster after the upload. The folders and packages
# are the cluster's (train checks them there before its actors start); HAIR_RAY_CLUSTER_SHAPE,
# e.g. "--nodes 2 --cpus 32 --gpus 8", also checks the placement against the cluster's size.
python -m hair_ray.cli config check --no-local ${HAIR_RAY_CLUSTER_SHAPE:-} --config "$CONFIG" "$@" >/dev/null

RUNTIME_ENV=${HAIR_RAY_RUNTIME_ENV:-cluster/runtime_env.yaml}
runtime_env_json=$(python - "$RUNTIME_ENV" ${HAIR_RAY_FORWARD_ENV:-} <<'EOF'
import json, os, sys
import yaml
env = yaml.safe_load(open(sys.argv[1])) or {}
env.pop("working_dir", None)  # --working-dir . below says it
missing = [name for name in sys.argv[2:] if name not in os.environ]
if missing:
    sys.exit(f"error: HAIR_RAY_FORWARD_ENV names unset variables: {' '.join(missing)}")
env.setdefault("env_vars", {}).update({name: os.environ[name] for name in sys.argv[2:]})
print(json.dumps(env))
EOF
)

# Forwarded values must not appear in the process list: they go through a private file then.
runtime_args=(--runtime-env-json "$runtime_env_json")
if [[ -n "${HAIR_RAY_FORWARD_ENV:-}" ]]; then
    env_file=$(mktemp)
    trap 'rm -f "$env_file"' EXIT
    chmod 600 "$env_file"
    printf '%s\n' "$runtime_env_json" >"$env_file"
    runtime_args=(--runtime-env "$env_file")
fi

echo "+ ray job submit --address $RAY_ADDRESS --working-dir . ${runtime_args[0]} <$RUNTIME_ENV${HAIR_RAY_FORWARD_ENV:+ + $HAIR_RAY_FORWARD_ENV}> ${HAIR_RAY_SUBMIT_ARGS:+$HAIR_RAY_SUBMIT_ARGS }-- hair-ray train --config $CONFIG $*" >&2
# shellcheck disable=SC2086  # HAIR_RAY_SUBMIT_ARGS is a list of flags
ray job submit --address "$RAY_ADDRESS" --working-dir . "${runtime_args[@]}" ${HAIR_RAY_SUBMIT_ARGS:-} \
    -- hair-ray train --config "$CONFIG" "$@"
