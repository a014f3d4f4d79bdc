#!/usr/bin/env bash
# Device calls of Nov 30, fourth and fifth sessions.
#   carry: .devbundle-lite (`../shared/device/make-bundle.sh .devbundle-lite --only datasets dill multiprocess
#   zstandard`: enough for the trainer) or .devbundle (the full one, for searches), and .carry/data (wiki shard 0
#   + val of the offline corpus). Everything comes back as a few files in $OUT.
#
#   bash bench/gpu_nov30d.sh start    one H200: Muon's step alone (bench/muon_step.py); fresh `python -m trainer`
#                                     processes at the record settings: the first on the machine (empty caches),
#                                     two more with the caches it left, one of them under cProfile (issue 14);
#                                     trainer speed at b4; the b4 kernel table; 6,086,656 tokens against the saved
#                                     reference path (issue 19)
#   bash bench/gpu_nov30d.sh scale1   nvidia-h200-x2, GPU 0 (issues 14 and 17): bench/startup_split.py in a first
#                                     and a second fresh process (the second with the caches the first left: the
#                                     machine's warm state, snapshotted), then from copies of that snapshot the
#                                     default search on one GPU for SCALE_BUDGET s and the promotion of its top 2
#                                     x 2 seeds (+ the control) on one GPU
#   bash bench/gpu_nov30d.sh scale2   the same machine kept warm: the same search on both GPUs, then the same
#                                     promotion (of the one-GPU search's run) on both GPUs
#   bash bench/gpu_nov30d.sh diag     a new nvidia-h200-x2: warm the caches, then the two-GPU search with Tune's
#                                     controller at DEBUG and BLUEBERRY_WORKER_TRACE=1
#   bash bench/gpu_nov30d.sh transfer nvidia-h200-x2: the same transfer on one GPU, then on two (issue 17; fifth
#                                     session)
# Fifth session (same day):
#   bash bench/gpu_nov30d.sh index    one H200 (issue 14): a first process on a new machine, then one with
#                                     OMP_NUM_THREADS=1 and one plain on its caches; then fresh processes alternating
#                                     torch's CUDA graph alias walks (BLUEBERRY_GRAPH_INDEX=0) and the indexed checks
#                                     (=1, trainer/graph_index.py), one process checking both against each other
#                                     (=check), and bench/startup_split.py with each
#   bash bench/gpu_nov30d.sh final    one H200 (issues 14, 19): with the plain loss compiled without inductor's
#                                     half-block variant (trainer/loss.py): bench/startup_split.py on a new machine and again warm,
#                                     three fresh `python -m trainer`, trainer speed at b4, 6,086,656 tokens against
#                                     the saved reference path
#   bash bench/gpu_nov30d.sh scale12  nvidia-h200-x2 (issue 17): the default search for SCALE_BUDGET s on GPU 0
#                                     and then on both GPUs in one call, each from its own copy of one warm snapshot;
#                                     with AB=1 (sixth session), first fresh starts of the working tree and .carry/old
#                                     alternated on GPU 0, on the warm caches; SCALE_GPUS=1 runs only the one-GPU
#                                     search (on nvidia-h200)
# Sixth session (same day): .carry/old holds the trainer at ee65970 (`git archive ee65970 trainer chores | tar -x -C
# .carry/old; rm -r .carry/old/trainer/assets`: 0.2 MB, the assets are copied in on the machine), run beside the
# working tree's for A/B in one call:
#   bash bench/gpu_nov30d.sh sixth    one H200 (issues 14, 19): Muon's step alone; fresh `python -m trainer` with
#                                     the new code (first on empty caches) and the old, then three of each
#                                     alternated, and bench/startup_split.py; trainer speed at b4, new and old;
#                                     6,086,656 tokens against the saved reference path; the b4 kernel table
#                                     (call 1 ran it at bbfac74, with BLUEBERRY_PREWARM=0 runs in place of old's)
#   bash bench/gpu_nov30d.sh firstwarm one H200 (issue 14): a first process on empty caches, then three under
#                                     cProfile and one plain on the caches it left, with the cache files each wrote
#   bash bench/gpu_nov30d.sh autotune  one H200 (issue 19): trainer speed at b4 with the blocks compiled by default and
#                                     with max-autotune (BLUEBERRY_BLOCK_AUTOTUNE=1, a hook that existed at a72033b only),
#                                     then that one's answer (call 5 ran out of device time before it)
set -uo pipefail
t_call=$(date +%s)
BUNDLE=${BUNDLE:-.devbundle-lite}
mkdir -p /tmp/s && { [ -d /tmp/s/site ] || tar -xJf $BUNDLE/site.tar.xz -C /tmp/s; } && export PYTHONPATH=/tmp/s/site:$PWD || exit 9
export BLUEBERRY_DATA=$PWD/.carry/data BLUEBERRY_CACHE=/tmp/bbcache PYTHONUNBUFFERED=1 RAY_DEDUP_LOGS=0
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/bbcache
REPO=$PWD
elapsed() { echo $(( $(date +%s) - t_call )); }
python -c "from trainer.config import make_config; from trainer.data import load_tokens; load_tokens(make_config('speedrun-4.5').data, progress=False)" || exit 8
echo "tokens loaded at $(elapsed) s"

# a fresh `python -m trainer` at the record settings, 0.5M tokens; prints its start-up and compile-cache counters
fresh() {  # fresh NAME [python options...]
  local name=$1; shift
  python "$@" -m trainer --track speedrun-4.5 --quiet --out /tmp/fresh/$name --set max_tokens=524288 \
    --set stop_rule=never > /tmp/fresh/$name.log 2>&1 || { tail -20 /tmp/fresh/$name.log; return 1; }
  python - /tmp/fresh/$name/result.json $name <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]}: {r['startup_s']:.2f} s to the first clocked step; {r['startup_phases']}; compile cache {r.get('compile_cache')}")
PY
}

# each named fresh run's result.json as DIR/fresh-NAME.json, without its history and config (missing ones skipped)
keep_fresh() {  # keep_fresh DIR NAME...
  python - "$@" <<'PY'
import json, sys
from pathlib import Path
for name in sys.argv[2:]:
    src = Path("/tmp/fresh") / name / "result.json"
    if src.exists():
        r = json.loads(src.read_text()); r.pop("history", None); r.pop("config", None)
        (Path(sys.argv[1]) / f"fresh-{name}.json").write_text(json.dumps(r, indent=1))
PY
}

# issue 17: the default search and a promotion of its run, each started from its own copy of one warm snapshot
# (inductor, Triton and <cache>: what a machine holds after one trainer process), so neither run gains from the
# other; the runs dir lives on the machine between the calls
S=/tmp/runs; mkdir -p $S; SCALE_BUDGET=${SCALE_BUDGET:-200}; UNTIL=${UNTIL:-560}
SEARCH="python -m search.run --space lr_sched --track speedrun-4.5 --num-trials 400 --seed 0 --time-budget-s $SCALE_BUDGET --runs-dir $S --quiet"
PROMOTE="python -m search.promote $S/one-gpu --top 2 --seeds 2 --set stop_rule=first_step --set max_tokens=6000000"
snapshot() { rm -rf /tmp/warm-snapshot; mkdir -p /tmp/warm-snapshot; cp -r /tmp/warm/inductor /tmp/warm/triton /tmp/warm-snapshot/; cp -r /tmp/bbcache /tmp/warm-snapshot/bb; }
from_snapshot() {  # prints the env of a private copy of the snapshot
  local c=/tmp/copy-$1; rm -rf $c; cp -r /tmp/warm-snapshot $c
  echo "TORCHINDUCTOR_CACHE_DIR=$c/inductor TRITON_CACHE_DIR=$c/triton BLUEBERRY_CACHE=$c/bb"
}

case "${1:-}" in
start)
  P=/tmp/start; mkdir -p $P /tmp/fresh
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  python bench/muon_step.py --out $P/muon > $P/muon.log 2>&1; grep -E '"version"|gpu_ms|speedup|mean_abs' $P/muon.log
  echo "== fresh processes from $(elapsed) s"
  fresh first && fresh warm-1 && fresh warm-2 && fresh warm-cprofile -m cProfile -o $P/warm-cprofile.prof
  fresh warm-3
  keep_fresh $P first warm-1 warm-2 warm-3 warm-cprofile
  echo "== trainer speed from $(elapsed) s"
  python bench/trainer_speed.py --out $P/speed --batches 4 --steps 60 > $P/speed.log 2>&1; tail -4 $P/speed.log
  echo "== kernel table from $(elapsed) s"
  python bench/profile_step.py --batch 4 --out $P/profile > $P/profile.log 2>&1; head -6 $P/profile.log
  echo "== same answer from $(elapsed) s"
  python bench/same_answer.py --out $P/same --reference-from bench/results/same_answer/reference \
    --against bench/results/same_answer/fast > $P/same.log 2>&1; tail -8 $P/same.log
  echo "done at $(elapsed) s"
  tar czf "$OUT/start.tar.gz" -C /tmp start ;;
scale1)
  P=/tmp/scale; mkdir -p $P/split
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  export TORCHINDUCTOR_CACHE_DIR=/tmp/warm/inductor TRITON_CACHE_DIR=/tmp/warm/triton
  for n in first second; do
    CUDA_VISIBLE_DEVICES=0 python bench/startup_split.py --out $P/split/$n.json > $P/split/$n.log 2>&1; cat $P/split/$n.log | tail -9
  done
  snapshot
  echo "== one-GPU search from $(elapsed) s"
  env $(from_snapshot s1) CUDA_VISIBLE_DEVICES=0 $SEARCH --name one-gpu > $P/search-1gpu.log 2>&1
  grep -v "^\[\|WARNING\|INFO" $P/search-1gpu.log | tail -12
  tar czf "$OUT/scale1.tar.gz" --exclude=ray -C /tmp scale runs  # in case the promotion runs out of time
  budget=$(( UNTIL - $(elapsed) )); echo "== one-GPU promotion from $(elapsed) s, budget $budget s"
  env $(from_snapshot p1) CUDA_VISIBLE_DEVICES=0 $PROMOTE --records /tmp/records-1gpu --time-budget-s $budget > $P/promote-1gpu.log 2>&1
  tail -15 $P/promote-1gpu.log
  tar czf "$OUT/scale1.tar.gz" --exclude=ray -C /tmp scale runs ;;
scale2)
  P=/tmp/scale; [ -d /tmp/warm-snapshot ] || { echo "no warm snapshot: a new machine"; exit 7; }
  echo "== two-GPU search from $(elapsed) s"
  env $(from_snapshot s2) $SEARCH --name two-gpu > $P/search-2gpu.log 2>&1
  grep -v "^\[\|WARNING\|INFO" $P/search-2gpu.log | tail -12
  budget=$(( UNTIL - $(elapsed) )); echo "== two-GPU promotion from $(elapsed) s, budget $budget s"
  env $(from_snapshot p2) $PROMOTE --records /tmp/records-2gpu --time-budget-s $budget > $P/promote-2gpu.log 2>&1
  tail -15 $P/promote-2gpu.log
  tar czf "$OUT/scale2.tar.gz" --exclude=ray -C /tmp scale runs ;;
diag)  # a new machine: warm the caches as scale1 does, then the two-GPU search with Tune's controller at DEBUG
  # and the workers tracing their resets and first reports (where did a GPU's idle minute go?)
  P=/tmp/scale; mkdir -p $P/split
  export TORCHINDUCTOR_CACHE_DIR=/tmp/warm/inductor TRITON_CACHE_DIR=/tmp/warm/triton
  CUDA_VISIBLE_DEVICES=0 python bench/startup_split.py --out $P/split/diag-first.json > $P/split/diag-first.log 2>&1; tail -9 $P/split/diag-first.log
  snapshot
  echo "== two-GPU search (traced) from $(elapsed) s"
  env $(from_snapshot d2) BLUEBERRY_WORKER_TRACE=1 python - > $P/search-2gpu-diag.log 2>&1 <<PY
import logging, sys
logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
logging.getLogger("ray.tune.execution.tune_controller").setLevel(logging.DEBUG)
from search.run import main
sys.exit(main("${SEARCH#python -m search.run }".split() + ["--name", "two-gpu-diag"]))
PY
  grep -v "DEBUG\|^\[\|WARNING\|INFO" $P/search-2gpu-diag.log | tail -6
  grep -h "^\[worker " /tmp/ray/session_latest/logs/*.err | sort -k3 -n > $P/worker-trace.txt; tail -30 $P/worker-trace.txt
  grep -h "Not caching\|Could not cache\|Cleaning up cached\|Could not re-use\|Trying to schedule new ACTOR\|Actor STARTED\|Reusing ACTOR" $P/search-2gpu-diag.log | tail -30
  tar czf "$OUT/diag.tar.gz" --exclude=ray -C /tmp scale runs ;;
transfer)  # issue 17's last point: the same transfer (the repo's speedrun-4.5 records to marathon,
  # TRANSFER_TOKENS a run, 2 seeds, 3 candidates: 6 runs) on one GPU, then on two, each from a copy of one warm cache
  P=/tmp/scale; mkdir -p $P/split; T=${TRANSFER_TOKENS:-4000000}
  export TORCHINDUCTOR_CACHE_DIR=/tmp/warm/inductor TRITON_CACHE_DIR=/tmp/warm/triton
  CUDA_VISIBLE_DEVICES=0 python bench/startup_split.py --track marathon --out $P/split/transfer-first.json > /dev/null 2>&1
  # a second fresh process on the caches the first left: what a warm process still autotunes (issue 14)
  CUDA_VISIBLE_DEVICES=0 python bench/startup_split.py --track marathon --out $P/split/transfer-second.json 2>&1 | tail -10
  snapshot
  TR="python -m search.transfer records --track marathon --seeds 2 --include-not-significant --max-combine 1 --max-candidates 3 --budget-tokens $T --runs-dir $S"
  for g in 1 2; do
    t0=$(date +%s); devs=0; [ $g = 2 ] && devs=0,1
    env $(from_snapshot t$g) CUDA_VISIBLE_DEVICES=$devs $TR --name transfer-${g}gpu > $P/transfer-${g}gpu.log 2>&1
    rc=$?; echo "transfer on $g GPU(s): $(( $(date +%s) - t0 )) s (exit $rc)" | tee -a $P/transfer-walls.txt
    tail -12 $P/transfer-${g}gpu.log
    tar czf "$OUT/transfer.tar.gz" --exclude=ray --exclude='*.pt' -C /tmp scale runs  # in case the next runs out of time
  done ;;
index)  # issue 14, fifth session: the thread pin on the GPU, then recording with torch's alias walks
  # against the indexed checks, alternated, on the caches the first process left
  P=/tmp/index; mkdir -p $P /tmp/fresh
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  export TORCHINDUCTOR_CACHE_DIR=/tmp/th/inductor TRITON_CACHE_DIR=/tmp/th/triton
  fresh th-first; OMP_NUM_THREADS=1 fresh th-omp1; fresh th-default
  for i in 1 2 3; do BLUEBERRY_GRAPH_INDEX=0 fresh walk-$i; BLUEBERRY_GRAPH_INDEX=1 fresh index-$i; done
  BLUEBERRY_GRAPH_INDEX=check fresh check
  for v in 0 1; do
    BLUEBERRY_GRAPH_INDEX=$v python bench/startup_split.py --out $P/split-index$v.json > $P/split-index$v.log 2>&1
    echo "startup_split, BLUEBERRY_GRAPH_INDEX=$v:"; tail -9 $P/split-index$v.log
  done
  keep_fresh $P th-first th-omp1 th-default walk-1 index-1 walk-2 index-2 walk-3 index-3 check
  echo "done at $(elapsed) s"; tar czf "$OUT/index.tar.gz" -C /tmp index ;;
final)
  P=/tmp/final; mkdir -p $P /tmp/fresh
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  export TORCHINDUCTOR_CACHE_DIR=/tmp/fi/inductor TRITON_CACHE_DIR=/tmp/fi/triton
  for n in first warm; do
    python bench/startup_split.py --out $P/split-$n.json > $P/split-$n.log 2>&1; echo "startup_split, $n:"; tail -10 $P/split-$n.log
  done
  for i in 1 2 3; do fresh fi-warm-$i; done
  keep_fresh $P fi-warm-1 fi-warm-2 fi-warm-3
  tar czf "$OUT/final.tar.gz" -C /tmp final
  echo "== trainer speed from $(elapsed) s"
  python bench/trainer_speed.py --out $P/speed --batches 4 --steps 60 > $P/speed.log 2>&1; tail -4 $P/speed.log
  echo "== same answer from $(elapsed) s"
  python bench/same_answer.py --out $P/same --reference-from bench/results/same_answer/reference \
    --against bench/results/same_answer/fast > $P/same.log 2>&1; tail -8 $P/same.log
  echo "done at $(elapsed) s"; tar czf "$OUT/final.tar.gz" -C /tmp final ;;
scale12)
  P=/tmp/scale; mkdir -p $P/split
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  export TORCHINDUCTOR_CACHE_DIR=/tmp/warm/inductor TRITON_CACHE_DIR=/tmp/warm/triton
  CUDA_VISIBLE_DEVICES=0 python bench/startup_split.py --out $P/split/s12-first.json > /dev/null 2>&1
  snapshot
  if [ -n "${AB:-}" ]; then  # sixth session: fresh starts, the working tree's and .carry/old's, alternated on GPU 0
    OLD=$PWD/.carry/old; mkdir -p /tmp/fresh $P/fresh; [ -d $OLD/trainer/assets ] || cp -r trainer/assets $OLD/trainer/
    for i in 1 2 3; do
      CUDA_VISIBLE_DEVICES=0 fresh new-$i; (cd $OLD && CUDA_VISIBLE_DEVICES=0 PYTHONPATH=/tmp/s/site:$OLD fresh old-$i)
    done
    keep_fresh $P/fresh new-1 old-1 new-2 old-2 new-3 old-3
  fi
  for g in ${SCALE_GPUS:-1 2}; do
    devs=0; [ $g = 2 ] && devs=0,1
    echo "== $g-GPU search from $(elapsed) s"
    env $(from_snapshot a$g) CUDA_VISIBLE_DEVICES=$devs $SEARCH --name s12-${g}gpu > $P/search-s12-${g}gpu.log 2>&1
    grep -v "^\[\|WARNING\|INFO" $P/search-s12-${g}gpu.log | tail -8
    tar czf "$OUT/scale12.tar.gz" --exclude=ray --exclude='*.pt' -C /tmp scale runs
  done
  echo "done at $(elapsed) s" ;;
sixth)
  P=/tmp/sixth; mkdir -p $P /tmp/fresh; OLD=$PWD/.carry/old
  [ -d $OLD/trainer ] || { echo "no $OLD/trainer"; exit 7; }
  [ -d $OLD/trainer/assets ] || cp -r trainer/assets $OLD/trainer/
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  export TORCHINDUCTOR_CACHE_DIR=/tmp/six/inductor TRITON_CACHE_DIR=/tmp/six/triton
  python bench/muon_step.py --out $P/muon > $P/muon.log 2>&1; grep -E '"version"|gpu_ms|speedup|mean_abs' $P/muon.log
  echo "== fresh processes from $(elapsed) s"
  fresh new-first; (cd $OLD && PYTHONPATH=/tmp/s/site:$OLD fresh old-first)
  for i in 1 2 3; do
    fresh new-$i; (cd $OLD && PYTHONPATH=/tmp/s/site:$OLD fresh old-$i)
  done
  keep_fresh $P new-first old-first new-1 old-1 new-2 old-2 new-3 old-3
  python bench/startup_split.py --out $P/split-new.json > $P/split-new.log 2>&1; tail -12 $P/split-new.log
  tar czf "$OUT/sixth.tar.gz" -C /tmp sixth
  echo "== trainer speed from $(elapsed) s"
  python bench/trainer_speed.py --out $P/speed-new --batches 4 --steps 60 > $P/speed-new.log 2>&1; tail -3 $P/speed-new.log
  (cd $OLD && PYTHONPATH=/tmp/s/site:$OLD python $REPO/bench/trainer_speed.py --out $P/speed-old --batches 4 --steps 60 > $P/speed-old.log 2>&1)
  tail -3 $P/speed-old.log
  echo "== same answer from $(elapsed) s"
  python bench/same_answer.py --out $P/same --reference-from bench/results/same_answer/reference \
    --against bench/results/same_answer/fast > $P/same.log 2>&1; tail -8 $P/same.log
  tar czf "$OUT/sixth.tar.gz" -C /tmp sixth
  echo "== kernel table from $(elapsed) s"
  python bench/profile_step.py --batch 4 --out $P/profile > $P/profile.log 2>&1; head -6 $P/profile.log
  echo "done at $(elapsed) s"; tar czf "$OUT/sixth.tar.gz" -C /tmp sixth ;;
firstwarm)  # sixth session, issue 14: why the first warm process of a code started slower than the next ones
  # (11.25-11.99 s against 8.9-9.7 s in calls 2 and 3): each process's cProfile, and the cache files each one wrote
  P=/tmp/fw; mkdir -p $P /tmp/fresh; C=/tmp/fwc
  export TORCHINDUCTOR_CACHE_DIR=$C/inductor TRITON_CACHE_DIR=$C/triton BLUEBERRY_CACHE=$C/bb
  mkdir -p $C/bb; cp -r /tmp/bbcache/. $C/bb/ 2>/dev/null
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  fresh cold
  for n in warm-1 warm-2 warm-3; do
    touch $P/mark; sleep 1
    fresh $n -m cProfile -o $P/$n.prof
    (cd $C && find . -type f -newer $P/mark -printf '%s %p\n' | sort -k2) > $P/written-by-$n.txt
    echo "$n wrote $(wc -l < $P/written-by-$n.txt) cache files"
  done
  fresh warm-4
  keep_fresh $P cold warm-1 warm-2 warm-3 warm-4
  echo "done at $(elapsed) s"; tar czf "$OUT/firstwarm.tar.gz" -C /tmp fw ;;
autotune)  # sixth session, issue 19: the blocks compiled with inductor's max-autotune (GEMM templates with fused
  # epilogues, benchmarked against cuBLAS) against the default, trainer speed at b4, then the answer if time is left
  P=/tmp/at; mkdir -p $P
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  export TORCHINDUCTOR_CACHE_DIR=/tmp/atc/inductor TRITON_CACHE_DIR=/tmp/atc/triton
  python bench/trainer_speed.py --out $P/speed-default --batches 4 --steps 60 > $P/speed-default.log 2>&1; tail -3 $P/speed-default.log
  echo "== autotuned from $(elapsed) s"
  BLUEBERRY_BLOCK_AUTOTUNE=1 timeout 380 python bench/trainer_speed.py --out $P/speed-autotune --batches 4 --steps 60 \
    > $P/speed-autotune.log 2>&1; tail -3 $P/speed-autotune.log
  tar czf "$OUT/autotune.tar.gz" -C /tmp at
  if [ $(elapsed) -lt 430 ]; then
    echo "== same answer (autotuned) from $(elapsed) s"
    BLUEBERRY_BLOCK_AUTOTUNE=1 timeout $(( 560 - $(elapsed) )) python bench/same_answer.py --out $P/same \
      --reference-from bench/results/same_answer/reference --against bench/results/same_answer/fast > $P/same.log 2>&1
    tail -8 $P/same.log
  fi
  echo "done at $(elapsed) s"; tar czf "$OUT/autotune.tar.gz" -C /tmp at ;;
*) echo "usage: bash bench/gpu_nov30d.sh start|scale1|scale2|diag|transfer|index|final|scale12|sixth|firstwarm|autotune" >&2; exit 2 ;;
esac
