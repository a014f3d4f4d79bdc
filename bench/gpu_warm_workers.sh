#!/usr/bin/env bash
# One device call on nvidia-h200-x2: warm trial workers against a process per trial, on 2 GPUs and on 1.
#   carry: .devbundle (../shared/device/make-bundle.sh) and .carry/data (wiki shard 0 + val.jsonl.zst of the
#   offline corpus). Writes logs and JSON under $OUT.
#   1. the default GPU search (lr_sched, speedrun-4.5) for BUDGET seconds with a process per trial
#      (--fresh-workers), then the same with warm workers, both on 2 GPUs;
#   2. the same warm search on GPU 0 alone, while GPU 1 runs bench/warm_workers.py (same answer, memory over
#      20 trials, fresh-process start-up).
set -uo pipefail
mkdir -p /tmp/s && tar -xJf .devbundle/site.tar.xz -C /tmp/s && export PYTHONPATH=/tmp/s/site:$PWD || exit 9
export BLUEBERRY_DATA=$PWD/.carry/data BLUEBERRY_CACHE=/tmp/bbcache PYTHONUNBUFFERED=1 RAY_DEDUP_LOGS=0
OUT=${OUT:-/tmp/out}; BUDGET=${BUDGET:-90}; R=/tmp/runs; rm -rf $R; mkdir -p "$OUT" $R
nvidia-smi --query-gpu=index,name,memory.total --format=csv > "$OUT/gpu.txt"
python -c "from trainer.config import make_config; from trainer.data import load_tokens; load_tokens(make_config('speedrun-4.5').data, progress=False)" || exit 8
# smoke test (and the inductor cache warm, as on any machine that has run once): stop here if it fails
python -m trainer --quiet --out /tmp/smoke --set max_tokens=524288 --set stop_rule=never > "$OUT/smoke.log" 2>&1 \
  || { tail -30 "$OUT/smoke.log"; exit 7; }
grep -E '"(startup_s|tokens_per_s)"' /tmp/smoke/result.json
S="python -m search.run --space lr_sched --track speedrun-4.5 --num-trials 400 --time-budget-s $BUDGET --runs-dir $R --quiet"
$S --name fresh-2gpu --fresh-workers > "$OUT/search.log" 2>&1
$S --name warm-2gpu >> "$OUT/search.log" 2>&1
CUDA_VISIBLE_DEVICES=1 python bench/warm_workers.py same-answer --out "$R/bench" > "$OUT/bench.log" 2>&1 &
CUDA_VISIBLE_DEVICES=0 $S --name warm-1gpu >> "$OUT/search.log" 2>&1
wait
if [ -z "${SKIP_MEMORY_STARTUP:-}" ]; then
  CUDA_VISIBLE_DEVICES=1 python bench/warm_workers.py memory --out "$R/bench" >> "$OUT/bench.log" 2>&1 &
  CUDA_VISIBLE_DEVICES=0 python bench/warm_workers.py startup --out "$R/bench" >> "$OUT/bench.log" 2>&1
  wait
fi
grep -v "^\[\|WARNING\|INFO" "$OUT/search.log" | tail -60
cat "$OUT/bench.log" | grep -v "^\[\|WARNING\|INFO" | tail -12
tar czf "$OUT/runs.tar.gz" --exclude=ray -C /tmp runs
