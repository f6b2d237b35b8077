#!/bin/bash
# The GPU checks of issues 14 and 19 as one prepared run, under 10 minutes on one H100/H200-class GPU:
#   1. decode tokens/s and memory-bandwidth utilisation, ours vs nanochat's Engine, depth 12 and 20, batch 1 and 32
#      (bench/engine_ab.py, random-init models, bf16);
#   2. pretraining at depth 12, sequence 2048, 2^18 tokens a step, ours vs nanochat's current code on the same
#      shards, each with its own tokenizer and defaults, both compiled: tok/s, MFU, val bpb at equal steps
#      (bench/recipe.py);
#   3. if time is left: our --fp8 path for a few steps.
#
#   bash bench/gpu.sh NANOCHAT_CHECKOUT WORK [OUT]
#
# WORK is bench/recipe.py's folder with the shards and both tokenizers already made (e.g. on a CPU machine:
# `python -m bench.recipe --prepare-only --vocab-size 32768 --corpus ...`), so the GPU's minutes go to the GPU.
# Logs go to OUT (default /tmp/gpu_check). Prints numbers; asserts nothing.
set -u
NANOCHAT="$1"; WORK="$2"; OUT="${3:-/tmp/gpu_check}"; DEADLINE="${DEADLINE:-560}"
PY="${PY:-python3}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
left() { echo $((DEADLINE - SECONDS)); }

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"

echo "== 1. engine, ours vs nanochat ($(left)s left)"
timeout 150 "$PY" -m bench.engine_ab --nanochat "$NANOCHAT" --device-type cuda --depths 12 20 --vocab-size 32768 \
    --seq-len 2048 --batch-sizes 1 32 --repeats 5 2>&1 | tee "$OUT/engine_ab.log"

echo "== 2. pretraining d12, ours vs nanochat, bf16 ($(left)s left)"
timeout $(($(left) - 60)) "$PY" -m bench.recipe --nanochat "$NANOCHAT" --work "$WORK" --depths 12 --steps 60 \
    --eval-every 20 --eval-tokens 1048576 --max-seq-len 2048 --device-batch-size 32 --total-batch-size 262144 \
    --vocab-size 32768 2>&1 | tee "$OUT/recipe.log"

if [ "$(left)" -gt 90 ]; then
    echo "== 3. our --fp8 path, 20 steps ($(left)s left)"
    timeout $(($(left) - 10)) "$PY" -m bench.recipe --only ours --work "$WORK" --depths 12 --steps 20 \
        --eval-every 20 --eval-tokens 1048576 --max-seq-len 2048 --device-batch-size 32 --total-batch-size 262144 \
        --vocab-size 32768 --fp8 --tag fp8 2>&1 | tee "$OUT/recipe_fp8.log"
fi
tar czf "$OUT/logs.tar.gz" -C "$WORK" $(cd "$WORK" && ls ./*.log) 2>/dev/null
echo "== done in ${SECONDS}s"
