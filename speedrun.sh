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
# Overrides (environment): NANOCHAT_PROFILE=full|tiny, DEPTH, NPROC (GPUs to use), WANDB_RUN, FP8=1,
# NANOCHAT_BASE_DIR (where artifacts go, default ~/.cache/nanochat).
#
#   bash speedrun.sh --plan [--gpus 8xH100]  # (or NANOCHAT_PLAN=1, NANOCHAT_GPUS=8xH100) print the plan, run nothing
#
# The plan (scripts/plan.py) is every stage's shape, batch, steps, tokens, FLOPs, estimated memory per GPU, time
# and cost, on this machine's hardware or the one --gpus names; every real run prints it first and keeps it in
# the report.
#
# Re-running after an interruption skips finished stages (each leaves a marker in
# $NANOCHAT_BASE_DIR/speedrun/) and resumes the interrupted one from its checkpoint. A failing
# stage stops the run and names the stage and its log file.
# The script body is one { ... } block: bash reads all of it before running any of it, so editing this
# file while a run is in progress cannot change what that run does.
{
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

plan_only="${NANOCHAT_PLAN:-0}"
plan_gpus="${NANOCHAT_GPUS:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --plan) plan_only=1;;
        --gpus) [ $# -ge 2 ] || { echo "speedrun.sh: --gpus needs a value, e.g. --gpus 8xH100" >&2; exit 2; }
                plan_gpus="$2"; shift;;
        --gpus=*) plan_gpus="${1#--gpus=}";;
        *) echo "speedrun.sh: unknown argument '$1'; it takes --plan and --gpus COUNTxNAME (e.g. --gpus 8xH100)" >&2
           exit 2;;
    esac
    shift
done

source runs/setup_env.sh
export NANOCHAT_BASE_DIR="${NANOCHAT_BASE_DIR:-$HOME/.cache/nanochat}"

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
    # Sizes for one 8xH100 node. Time and cost are ESTIMATES until measured on real hardware (README,
    # "Compute to GPT-2 grade"): depth 24 has 730M parameters in matmuls; 8 tokens per parameter (the
    # horizon at which nanochat's run of this architecture passed GPT-2's CORE) is 5.8B tokens, ~2.8e19
    # FLOPs, and ~170 ClimbMix shards cover it in one epoch. Vocab 32,768: measured 3% fewer bytes per
    # token than 65,536 but half the lm_head and logits (docs/LOG.md). FP8=1 adds --fp8 (H100 and newer).
    # Cautious weight decay summing to 4.3 over the run (lr x decay per step): nanochat's value at its record.
    DEPTH="${DEPTH:-24}"
    NPROC="${NPROC:-$gpus}"
    VOCAB=32768; TOK_CHARS=2000000000; NUM_SHARDS=170
    SEQ=2048; DEVICE_BATCH="${DEVICE_BATCH:-32}"   # lowered automatically on GPUs with less memory
    BASE_ARGS="--data-param-ratio=8 --decay-per-run=4.3${FP8:+ --fp8}"
    BASE_EVAL_ARGS=""
    MID_ARGS="--mixture=full --device-batch-size=$DEVICE_BATCH"
    SFT_ARGS="--mixture=full"
    RL_ARGS="--task=gsm8k"
    CHAT_TASKS="ARC-Easy,ARC-Challenge,MMLU,GSM8K,HumanEval,SpellingBee"
    RL_EVAL_TASKS="GSM8K"
    EVAL_ARGS=""
else
    # Toy sizes: every stage runs on a 2-core CPU in minutes (figures in the README).
    # NANOCHAT_SMOKE=1 cuts every stage to a handful of steps: CI's end-to-end check.
    # 200 base steps: the recipe passes the late-2025 model's 250-step val bpb by then (README, tiny run).
    smoke="${NANOCHAT_SMOKE:-0}"
    DEPTH="${DEPTH:-4}"
    NPROC="${NPROC:-1}"
    VOCAB=4096; TOK_CHARS=20000000
    SEQ=256; DEVICE_BATCH="${DEVICE_BATCH:-16}"
    if [ "$smoke" = 1 ]; then
        VOCAB=1024; TOK_CHARS=2000000; base_steps=12; mid_steps=6; sft_steps=6; rl_steps=2; rl_prompts=8; problems=8; save_every=4
    else
        base_steps=200; mid_steps=80; sft_steps=120; rl_steps=20; rl_prompts=16; problems=100; save_every=25
    fi
    BASE_ARGS="--aspect-ratio=64 --head-dim=64 --total-batch-size=4096 --num-iterations=${TINY_BASE_STEPS:-$base_steps} \
--eval-every=100 --eval-tokens=65536 --sample-every=$base_steps --save-every=$save_every --core-every=0"
    BASE_EVAL_ARGS="--skip-core --eval-tokens=65536 --device-batch-size=16"
    MID_ARGS="--mixture=synthetic --synthetic-size=2000 --device-batch-size=16 --total-batch-size=4096 \
--num-iterations=$mid_steps --eval-every=40 --eval-tokens=16384 --save-every=20"
    # SFT at 0.2 of pretraining's learning rates: the default 0.02 barely moves a model this small
    SFT_ARGS="--mixture=synthetic --synthetic-size=2000 --init-lr-frac=0.2 --device-batch-size=8 \
--examples-per-step=16 --num-iterations=$sft_steps --eval-every=40 --eval-examples=64 --eval-every-chatcore=-1 \
--save-every=20"
    # RL at 0.1 of the lrs with 16 problems x 8 samples a step. Measured from this profile's SFT model on 128
    # held-out problems x 8 samples, paired: 0.1 -> +0.033 +- 0.010 reward; 0.2 with 8 problems (noisier
    # steps) -> -0.024 +- 0.015; 0.5 collapses to 0.36.
    RL_ARGS="--task=synthetic --num-steps=$rl_steps --examples-per-step=$rl_prompts --num-samples=8 \
--device-batch-size=32 --max-new-tokens=128 --eval-every=$rl_steps --eval-examples=64 --eval-samples=4 \
--init-lr-frac=0.1 --save-every=5"
    CHAT_TASKS="SyntheticMathChoice,SyntheticMath,SpellingBee"
    RL_EVAL_TASKS="SyntheticMath"
    EVAL_ARGS="--max-problems=$problems --max-new-tokens=64"
fi
export WANDB_RUN="${WANDB_RUN:-}"

# ---------------------------------------------------------------- the plan
# Each stage's argument string, parsed by that stage's own parse_args (scripts/plan.py): what it plans is what runs.
run_plan() {
    "$NANOCHAT_PY" -m scripts.plan ${plan_gpus:+--gpus="$plan_gpus"} --nproc="$NPROC" --depth="$DEPTH" \
        --vocab-size="$VOCAB" --seq-len="$SEQ" --base="--device-batch-size=$DEVICE_BATCH $BASE_ARGS" \
        --base-eval="$BASE_EVAL_ARGS" --mid="$MID_ARGS" --sft="$SFT_ARGS" --rl="$RL_ARGS" --eval="$EVAL_ARGS" \
        --chat-tasks="$CHAT_TASKS" --rl-tasks="$RL_EVAL_TASKS" "$@"
}
if [ "$plan_only" = 1 ]; then
    run_plan
    exit 0
fi
mkdir -p "$NANOCHAT_BASE_DIR/speedrun/logs"

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

# torchrun when more than one process is asked for, plain python otherwise. Several processes on one
# machine would fight over cores with torch's default thread count, so each then gets one thread
# (GPU runs do not care); a single process keeps torch's default and uses every core.
launch() {
    if [ "$NPROC" -gt 1 ]; then
        OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" torchrun --standalone --nproc_per_node="$NPROC" -m "$1" -- "${@:2}"
    else
        "$NANOCHAT_PY" -m "$@"
    fi
}

# ---------------------------------------------------------------- the pipeline
stage report_reset "$NANOCHAT_PY" -m scripts.report reset
run_plan --report   # every run, resumed ones too: printed first, kept in the report beside the measured cost

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
# shellcheck disable=SC2086
stage base_eval launch scripts.base_eval $BASE_EVAL_ARGS

# shellcheck disable=SC2086
stage mid_train launch scripts.mid_train --run="${WANDB_RUN:+$WANDB_RUN-mid}" --resume $MID_ARGS
# shellcheck disable=SC2086
stage mid_eval launch scripts.chat_eval -i mid -a "$CHAT_TASKS" $EVAL_ARGS

# shellcheck disable=SC2086
stage sft_train launch scripts.chat_sft --run="${WANDB_RUN:+$WANDB_RUN-sft}" --resume $SFT_ARGS
# shellcheck disable=SC2086
stage sft_eval launch scripts.chat_eval -i sft -a "$CHAT_TASKS" $EVAL_ARGS

# shellcheck disable=SC2086
stage rl_train launch scripts.chat_rl --run="${WANDB_RUN:+$WANDB_RUN-rl}" --resume $RL_ARGS
# shellcheck disable=SC2086
stage rl_eval launch scripts.chat_eval -i rl -a "$RL_EVAL_TASKS" $EVAL_ARGS

# the report is assembled every time, so it is there even after a partial re-run
"$NANOCHAT_PY" -m scripts.report generate
total=0
for marker in "$NANOCHAT_BASE_DIR"/speedrun/*.done; do total=$((total + $(cat "$marker"))); done

cat <<MSG

speedrun: finished ($profile profile, $((total / 60)) min of stage time). Artifacts: $NANOCHAT_BASE_DIR
  report card:   $NANOCHAT_BASE_DIR/report/report.md
  chat (web):    $NANOCHAT_PY -m scripts.chat_web --source rl   then open http://127.0.0.1:8000
  chat (term):   $NANOCHAT_PY -m scripts.chat_cli --source rl
MSG
exit 0
}
