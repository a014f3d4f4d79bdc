#!/usr/bin/env bash
# Device calls of Nov 30, third session, on nvidia-h200-x2 (one machine kept warm across the calls).
#   carry: .devbundle (../shared/device/make-bundle.sh), .carry (wiki shard 0 + val of the offline corpus, and
#   campaign.tar.gz: the issue-15 campaign's run directory). Everything comes back as a few archives in $OUT.
#
#   bash bench/gpu_nov30c.sh speed      GPU 0: Muon's step alone (bench/muon_step.py), trainer speed at b4 (cold,
#                                       then warm compile cache), the b4 kernel table, the start-up split, the
#                                       record settings to 6,086,656 tokens against the saved reference path,
#                                       then the campaign's last trial; GPU 1 (once b4 has compiled): the default
#                                       search on one GPU (issue 17), SCALE_BUDGET seconds
#   bash bench/gpu_nov30c.sh scale2     the same search on both GPUs (issue 17), the campaign's 64th trial (it
#                                       failed in call 1: a resume rejoined the gone cluster), then the campaign's
#                                       promotion (issue 15) until UNTIL seconds into the call
#   bash bench/gpu_nov30c.sh promote    fresh-process start-up with warm caches (issue 14), then the promotion,
#                                       resumed, until UNTIL seconds into the call
set -uo pipefail
t_call=$(date +%s)
mkdir -p /tmp/s && { [ -d /tmp/s/site ] || tar -xJf .devbundle/site.tar.xz -C /tmp/s; } && export PYTHONPATH=/tmp/s/site:$PWD || exit 9
export BLUEBERRY_DATA=$PWD/.carry/data BLUEBERRY_CACHE=/tmp/bbcache PYTHONUNBUFFERED=1 RAY_DEDUP_LOGS=0
OUT=${OUT:-/tmp/out}; SCALE_BUDGET=${SCALE_BUDGET:-200}; UNTIL=${UNTIL:-540}  # promote until UNTIL s into the call
S=/tmp/scale; mkdir -p "$OUT" $S /tmp/bbcache
# the search whose scaling issue 17 measures: the default space, same seed, trials and budget on 1 and 2 GPUs
SEARCH="python -m search.run --space lr_sched --track speedrun-4.5 --num-trials 400 --seed 0 --time-budget-s $SCALE_BUDGET --runs-dir $S --quiet"
elapsed() { echo $(( $(date +%s) - t_call )); }
python -c "from trainer.config import make_config; from trainer.data import load_tokens; load_tokens(make_config('speedrun-4.5').data, progress=False)" || exit 8
# Both scaling searches start from the same cold compile caches (inductor, Triton, the portable artifacts), each
# its own, so neither gains from what ran before it on this machine: only the token cache is copied in.
cold() {
  local c=/tmp/cold-$1; rm -rf $c; mkdir -p $c/inductor $c/triton; cp -r /tmp/bbcache $c/bb; rm -rf $c/bb/compile
  # BLUEBERRY_PYCACHE=off: bytecode compiled in every process, as in call 1 (before chores/bytecode.py)
  echo "TORCHINDUCTOR_CACHE_DIR=$c/inductor TRITON_CACHE_DIR=$c/triton BLUEBERRY_CACHE=$c/bb BLUEBERRY_PYCACHE=off"
}

case "${1:-}" in
speed)
  P=/tmp/speed; mkdir -p $P
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  # issue 14: is the compile stack's import slow because its bytecode is compiled at every start?
  python - > $P/env.txt <<'PY'
import os, sys, torch
d = os.path.dirname(torch.__file__)
print("python", sys.version.split()[0], "torch", torch.__version__, "at", d)
print("torch dir writable:", os.access(d, os.W_OK), "| torch/__pycache__ exists:", os.path.isdir(os.path.join(d, "__pycache__")),
      "| _inductor/__pycache__ exists:", os.path.isdir(os.path.join(d, "_inductor", "__pycache__")))
print("PYTHONDONTWRITEBYTECODE:", os.environ.get("PYTHONDONTWRITEBYTECODE"), "| sys.dont_write_bytecode:", sys.dont_write_bytecode,
      "| pycache_prefix:", sys.pycache_prefix)
PY
  for i in 1 2; do  # twice: the second shows what a bytecode cache written by the first would save
    t0=$EPOCHREALTIME; python -X importtime -c "import torch, torch._dynamo, torch._inductor.compile_fx" 2> $P/importtime-$i.txt
    echo "import torch + compile stack, run $i: $(awk "BEGIN{print $EPOCHREALTIME - $t0}") s" | tee -a $P/env.txt
  done
  # GPU 1: the one-GPU search (issue 17), then the campaign's 64th trial (issue 15: 63 finished)
  ( env $(cold one-gpu) CUDA_VISIBLE_DEVICES=1 $SEARCH --name one-gpu > $P/scale1.log 2>&1
    echo "one-GPU search done at $(elapsed) s"
    CUDA_VISIBLE_DEVICES=1 OUT=$P/campaign R=/tmp/campaign NO_BUNDLE=1 bash bench/gpu_campaign.sh search:170 > $P/campaign.log 2>&1
    echo "campaign trial done at $(elapsed) s" ) &
  CUDA_VISIBLE_DEVICES=0 python bench/muon_step.py --out $P > $P/muon.log 2>&1; tail -12 $P/muon.log
  CUDA_VISIBLE_DEVICES=0 python bench/trainer_speed.py --out $P/speed --batches 4 --steps 60 > $P/speed.log 2>&1
  tail -8 $P/speed.log
  CUDA_VISIBLE_DEVICES=0 python bench/profile_step.py --batch 4 --out $P/profile > $P/profile.log 2>&1
  head -8 $P/profile.log
  CUDA_VISIBLE_DEVICES=0 python bench/profile_startup.py --out $P/startup-warm.json > $P/startup.log 2>&1; head -14 $P/startup.log
  CUDA_VISIBLE_DEVICES=0 python bench/same_answer.py --out $P/same --reference-from bench/results/same_answer/reference \
    --against bench/results/same_answer/fast > $P/same.log 2>&1; tail -6 $P/same.log
  echo "GPU 0 done at $(elapsed) s"
  tar czf "$OUT/speed.tar.gz" -C /tmp speed  # what GPU 0 made, in case the rest runs out of time
  wait
  grep -v "^\[\|WARNING\|INFO" $P/scale1.log | tail -25; tail -25 $P/campaign.log
  mv $P/campaign/campaign.tar.gz "$OUT/campaign.tar.gz"
  tar czf "$OUT/speed.tar.gz" --exclude=campaign.tar.gz --exclude=compile.tar.gz -C /tmp speed
  tar czf "$OUT/scale1.tar.gz" --exclude=ray -C $S one-gpu ;;
scale2)
  env $(cold two-gpu) $SEARCH --name two-gpu > "$OUT/scale2.log" 2>&1
  grep -v "^\[\|WARNING\|INFO" "$OUT/scale2.log" | tail -25
  tar czf "$OUT/scale2.tar.gz" --exclude=ray -C $S two-gpu
  echo "== the campaign's 64th trial from $(elapsed) s"
  OUT=/tmp/promo R=/tmp/campaign NO_BUNDLE=1 bash bench/gpu_campaign.sh search:170 > "$OUT/campaign-search.log" 2>&1
  tail -25 "$OUT/campaign-search.log"
  budget=$(( UNTIL - $(elapsed) )); echo "== promotion from $(elapsed) s, budget $budget s"
  [ $budget -ge 60 ] && OUT=/tmp/promo R=/tmp/campaign NO_BUNDLE=1 bash bench/gpu_campaign.sh promote:$budget > "$OUT/promote.log" 2>&1
  tail -30 "$OUT/promote.log"; cp /tmp/promo/campaign.tar.gz "$OUT/" ;;
promote)
  # issue 14 first, on the idle machine: fresh-process start-up with warm caches (compile and bytecode)
  mkdir -p /tmp/startup
  CUDA_VISIBLE_DEVICES=0 python bench/trainer_speed.py --out /tmp/startup --batches 4 --steps 30 > /tmp/startup/speed.log 2>&1
  tail -6 /tmp/startup/speed.log; CUDA_VISIBLE_DEVICES=0 python bench/profile_startup.py --out /tmp/startup/startup-warm.json > /tmp/startup/profile.log 2>&1
  head -14 /tmp/startup/profile.log; tar czf "$OUT/startup.tar.gz" -C /tmp startup
  budget=$(( UNTIL - $(elapsed) )); echo "== promotion from $(elapsed) s, budget $budget s"
  OUT=/tmp/promo R=/tmp/campaign NO_BUNDLE=1 bash bench/gpu_campaign.sh promote:$budget > "$OUT/promote.log" 2>&1
  tail -30 "$OUT/promote.log"; cp /tmp/promo/campaign.tar.gz "$OUT/" ;;
*) echo "usage: bash bench/gpu_nov30c.sh speed|scale2|promote"; exit 2 ;;
esac
echo "call done at $(elapsed) s"
