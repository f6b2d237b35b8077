#!/usr/bin/env bash
# The whole pipeline, raw text to a model you can chat with, in one command:
#
#   bash speedrun.sh                         # picks the profile from the hardware
#   NANOCHAT_PROFILE=tiny bash speedrun.sh   # force the CPU/offline toy run
#
# Profiles
#   full  an 8xH100 node with internet: real data, depth-24 model, torchrun on every GPU.
#   tiny  any machine, no GPU or no network: the embedded corpus, toy sizes, every stage still runs.
#
# Overrides (environment): NANOCHAT_PROFILE=full|tiny, DEPTH, NPROC (GPUs to use), WANDB_RUN,
# NANOCHAT_BASE_DIR (where artifacts go, default ~/.cache/nanochat).
#
# Re-running after an interruption skips finished stages (each leaves a marker in
# $NANOCHAT_BASE_DIR/speedrun/) and resumes the interrupted one from its checkpoint. A failing
# stage stops the run and names the stage and its log file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

source scripts/setup_env.sh
export NANOCHAT_BASE_DIR="${NANOCHAT_BASE_DIR:-$HOME/.cache/nanochat}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
mkdir -p "$NANOCHAT_BASE_DIR/speedrun/logs"

# ---------------------------------------------------------------- profile
gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then
    gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | wc -l || echo 0)
fi
if [ -n "${NANOCHAT_PROFILE:-}" ]; then
    profile="$NANOCHAT_PROFILE"; why="NANOCHAT_PROFILE=$profile"
elif [ "$gpus" -ge 1 ]; then
    profile=full; why="$gpus GPU(s) found by nvidia-smi"
else
    profile=tiny; why="no GPU found"
fi
case "$profile" in full|tiny) ;; *) echo "NANOCHAT_PROFILE must be 'full' or 'tiny', got '$profile'" >&2; exit 2;; esac
echo "speedrun: profile '$profile' ($why); artifacts in $NANOCHAT_BASE_DIR"

if [ "$profile" = full ]; then
    # Sizes for one 8xH100 node. Time and cost are ESTIMATES until measured on real hardware:
    # depth 24 (~880M params incl. embeddings), ~16B tokens, roughly 3-4 hours, ~$100 at $3/GPU/hour.
    DEPTH="${DEPTH:-24}"
    NPROC="${NPROC:-$gpus}"
    VOCAB=65536; TOK_CHARS=2000000000; NUM_SHARDS=240
    SEQ=2048; DEVICE_BATCH="${DEVICE_BATCH:-32}"
    BASE_ARGS=""
else
    DEPTH="${DEPTH:-4}"
    NPROC="${NPROC:-1}"
    VOCAB=4096; TOK_CHARS=20000000
    SEQ=256; DEVICE_BATCH="${DEVICE_BATCH:-16}"
    BASE_ARGS="--aspect-ratio=64 --head-dim=64 --total-batch-size=4096 --num-iterations=${TINY_BASE_STEPS:-300} \
--eval-every=100 --eval-tokens=65536 --sample-every=300 --save-every=50"
fi
export WANDB_RUN="${WANDB_RUN:-}"

# ---------------------------------------------------------------- stage runner
# stage NAME CMD...: runs CMD unless NAME already finished; logs to speedrun/logs/NAME.log
stage() {
    local name="$1"; shift
    local marker="$NANOCHAT_BASE_DIR/speedrun/$name.done"
    local log="$NANOCHAT_BASE_DIR/speedrun/logs/$name.log"
    if [ -f "$marker" ]; then
        echo "== $name: already done, skipping"
        return 0
    fi
    echo "== $name: $*"
    local t0=$SECONDS
    if ! "$@" 2>&1 | tee -a "$log"; then
        echo "speedrun: stage '$name' FAILED; its log is $log" >&2
        echo "speedrun: fix the cause and re-run 'bash speedrun.sh': finished stages are skipped" >&2
        exit 1
    fi
    echo "$((SECONDS - t0))" > "$marker"
    echo "== $name: done in $((SECONDS - t0))s"
}

# torchrun when more than one process is asked for, plain python otherwise
launch() {
    if [ "$NPROC" -gt 1 ]; then
        torchrun --standalone --nproc_per_node="$NPROC" -m "$1" -- "${@:2}"
    else
        "$NANOCHAT_PY" -m "$@"
    fi
}

# ---------------------------------------------------------------- the pipeline
if [ "$profile" = full ]; then
    stage data_first "$NANOCHAT_PY" -m nanochat.dataset -n 8
    # the rest of the shards download in the background while the tokenizer trains
    "$NANOCHAT_PY" -m nanochat.dataset -n "$NUM_SHARDS" > "$NANOCHAT_BASE_DIR/speedrun/logs/data_rest.log" 2>&1 &
    data_pid=$!
else
    stage data "$NANOCHAT_PY" -m nanochat.dataset --embedded
fi

stage tok_train "$NANOCHAT_PY" -m scripts.tok_train --vocab-size="$VOCAB" --max-chars="$TOK_CHARS"
stage tok_eval "$NANOCHAT_PY" -m scripts.tok_eval

if [ "$profile" = full ]; then
    echo "== waiting for the data download to finish"
    wait "$data_pid" || { echo "speedrun: data download failed; see $NANOCHAT_BASE_DIR/speedrun/logs/data_rest.log" >&2; exit 1; }
fi

# shellcheck disable=SC2086
stage base_train launch scripts.base_train --depth="$DEPTH" --max-seq-len="$SEQ" \
    --device-batch-size="$DEVICE_BATCH" --run="$WANDB_RUN" --resume $BASE_ARGS

echo
echo "speedrun: finished. Artifacts are in $NANOCHAT_BASE_DIR"
