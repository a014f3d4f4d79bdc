# Shared by the device scripts (bench/gpu_nov30g.sh, bench/gpu_nov30h.sh, bench/gpu_dec01.sh, bench/gpu_dec01b.sh,
# bench/gpu_dec01c.sh, bench/gpu_dec01d.sh, bench/gpu_dec01e.sh, bench/gpu_dec01f.sh, bench/gpu_dec01g.sh,
# bench/gpu_dec01h.sh, bench/gpu_dec01i.sh, bench/gpu_dec01j.sh, bench/gpu_dec02a.sh, bench/gpu_dec02b.sh,
# bench/gpu_dec02c.sh), sourced at their top: the call's clock, $OUT, and the set-up, old- and mid-tree, GPU info, speed
# A/B (one pair, b4 pairs, a b32 pair), one batch size's speed (with attention backends chosen), start-up rows,
# kernel-table, same-answer (the FP8 one too), default-search, FA4 part-1 and unpack, and FP8-arm steps.
set -uo pipefail
t_call=$(date +%s)
elapsed() { echo $(( $(date +%s) - t_call )); }
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
setup_trainer() {  # setup_trainer [BUNDLE]: the bundle (default the lite one: zstandard for the corpus), the
  # carried data ($DATA, default .carry/data), the token cache
  mkdir -p /tmp/s && { [ -d /tmp/s/site ] || tar -xJf ${1:-.devbundle-lite}/site.tar.xz -C /tmp/s; } || exit 9
  export PYTHONPATH=/tmp/s/site:$PWD BLUEBERRY_DATA=${DATA:-$PWD/.carry/data} BLUEBERRY_CACHE=/tmp/bbcache
  python -c "from trainer.config import make_config; from trainer.data import load_tokens; load_tokens(make_config('speedrun-4.5').data, progress=False)" || exit 8
  echo "tokens loaded at $(elapsed) s"
}
old_tree() {  # OLD: the carried trainer to compare with (.carry/old), its assets copied in
  OLD=$PWD/.carry/old; REPO=$PWD
  [ -d $OLD/trainer ] || { echo "no $OLD/trainer"; exit 7; }
  [ -d $OLD/trainer/assets ] || cp -r trainer/assets $OLD/trainer/
}
mid_tree() {  # MID: a second carried trainer to compare with (.carry/mid), its assets copied in
  MID=$PWD/.carry/mid; REPO=$PWD
  [ -d $MID/trainer ] || { echo "no $MID/trainer"; exit 7; }
  [ -d $MID/trainer/assets ] || cp -r trainer/assets $MID/trainer/
}
gpu_info() {  # the GPU the call got, into $P/gpu.txt
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
}
begin() {  # begin NAME [old] [mid]: P=/tmp/NAME, the carried trees named (old_tree, mid_tree), the set-up, the GPU
  P=/tmp/$1; REPO=$PWD; mkdir -p $P; shift
  local tree
  for tree in "$@"; do ${tree}_tree; done
  setup_trainer
  gpu_info
}
speed_tree() {  # speed_tree DIR NAME ARGS...: bench/trainer_speed.py with the trainer of DIR into $P/speed-NAME
  local dir=$1 name=$2; shift 2
  (cd $dir && PYTHONPATH=/tmp/s/site:$dir${FA4PATH:+:$FA4PATH} python $REPO/bench/trainer_speed.py \
    --out $P/speed-$name "$@" > $P/speed-$name.log 2>&1)
}
start_rows() {  # start_rows NAME: from $P/speed-NAME.log, each process's start-up, its phases, its compile-cache
  # counters and steady tokens/s
  python - $P/speed-$1.log $1 <<'PY'
import json, sys
for line in open(sys.argv[1]):
    if line.startswith('{"name"'):
        r = json.loads(line)
        print(f"{sys.argv[2]} {r['name']}: start {r['startup_s']:.2f} s {r['startup_phases']} {r['compile_cache']}, "
              f"steady {r['steady_tokens_per_s']:,.0f}")
PY
}
save_pruned() {  # the speed runs' trainer run folders removed from $P (their results are in summary.json), then
  # $OUT/<name of $P>.tar.gz rewritten
  local name; name=$(basename $P)
  rm -rf $P/speed-*/b*-cold $P/speed-*/b4-warm-cache; tar czf $OUT/$name.tar.gz -C /tmp $name
}
b4_arm() {  # b4_arm DIR ARM [STEPS]: speed_tree DIR at b4 (STEPS, default 60), its rows printed after "ARM: ", then
  # save_pruned
  local dir=$1 arm=$2
  speed_tree $dir $arm --batches 4 --steps ${3:-60}
  grep -E '^b4-' $P/speed-$arm.log | tr -s ' ' | sed "s/^/$arm: /"
  save_pruned
}
speed_pair() {  # speed_pair SUFFIX ARGS...: bench/trainer_speed.py with ARGS, the working tree then $OLD, into
  # $P/speed-new$SUFFIX and $P/speed-old$SUFFIX (each with its .log)
  local sfx=$1; shift
  speed_tree $REPO new$sfx "$@"
  speed_tree $OLD old$sfx "$@"
}
same_answer() {  # the working tree's 6,086,656 tokens against the saved reference run, into $P/same
  python bench/same_answer.py --out $P/same --reference-from bench/results/same_answer/reference \
    --against bench/results/same_answer/fast > $P/same.log 2>&1
}
b4_pairs() {  # b4_pairs N: speed_pair at b4 (60 steps) N times, alternated, printing each pair's rows
  local i f
  for i in $(seq 1 $1); do
    speed_pair -$i --batches 4 --steps 60
    for f in $P/speed-*-$i.log; do echo "$(basename $f): $(grep -E '^b4-' $f | tr -s ' ' | tr '\n' ';')"; done
  done
}
b32_pair() {  # speed_pair at b32 (20 steps), printing its rows
  local f
  speed_pair -b32 --batches 32 --steps 20
  for f in $P/speed-*-b32.log; do echo "$(basename $f): $(grep -E '^b32-' $f | tr -s ' ' | tr '\n' ';')"; done
}
answer_saved() {  # same_answer, its verdict printed, the fast run's folder removed (its result is in summary.json),
  # then $OUT/<name of $P>.tar.gz rewritten
  local name; name=$(basename $P)
  echo "== same answer from $(elapsed) s"
  same_answer; tail -6 $P/same.log
  rm -rf $P/same/fast; tar czf $OUT/$name.tar.gz -C /tmp $name
}
fp8_answer() {  # fp8_answer LIMIT: the record's 6,086,656 tokens with fp8=true against the saved reference run into
  # $P/same-fp8 within LIMIT s, its verdict printed, the fast run's files but result.json removed, then
  # $OUT/<name of $P>.tar.gz rewritten
  echo "== the answer with fp8=true from $(elapsed) s"
  timeout $1 python bench/same_answer.py --out $P/same-fp8 --set fp8=true \
    --reference-from bench/results/same_answer/reference --against bench/results/same_answer/fast \
    > $P/same-fp8.log 2>&1; echo "exit $?"; tail -6 $P/same-fp8.log
  find $P/same-fp8/fast -type f ! -name result.json -delete 2>/dev/null
  tar czf $OUT/$(basename $P).tar.gz -C /tmp $(basename $P)
}
speed_and_answer() {  # b4_pairs 2, then the working tree's answer, saving $OUT/NAME.tar.gz of /tmp/NAME ($P) after each
  echo "== speed from $(elapsed) s"
  b4_pairs 2
  save_pruned
  answer_saved
}
profile_tree() {  # profile_tree DIR NAME BATCH: bench/profile_step.py --cudagraphs with the trainer of DIR into $P/profile-NAME
  local dir=$1 name=$2 batch=$3
  (cd $dir && PYTHONPATH=/tmp/s/site:$dir python $REPO/bench/profile_step.py --batch $batch --cudagraphs \
    --out $P/profile-$name > $P/profile-$name.log 2>&1)
  python - $P/profile-$name/phases-b$batch.json <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"  busy {s['gpu_busy_ms_per_step']} ms, unsynced step {s['step_ms_unsynced']:.2f} ms, host {s['host_ms_per_step_unsynced']:.2f} ms, idle by gap size {s['gaps']['idle_ms_per_step_by_gap_size']}")
print("  by kind", s["gpu_ms_per_step_by_kind"])
for g in s["gaps"]["largest_gaps"][:6]:
    print(f"    {g['ms_per_step']:.3f} ms ({g['gaps_per_step']}/step) after {g['after']} before {g['before']}")
PY
}
new_machine() {  # a new machine's first run: the inductor and Triton caches emptied, only a copy of <cache> (tokens,
  # portable compile artifacts, bytecode) kept; b4_arm of the working tree (20 steps) as speed-newmachine
  echo "== a new machine's first run from $(elapsed) s"
  rm -rf /tmp/bbcache-new; cp -r /tmp/bbcache /tmp/bbcache-new
  rm -rf /tmp/torchinductor_$(whoami) ~/.triton/cache
  du -sh /tmp/bbcache-new/* | tee $P/carried-cache.txt
  BLUEBERRY_CACHE=/tmp/bbcache-new b4_arm $REPO newmachine 20
}
search_arm() {  # search_arm NAME DIR: the default search of the tree in DIR for BUDGET s into /tmp/runs/NAME, the
  # seconds since the epoch at its start and end in $P/NAME-window.txt, its summary's tail printed
  local name=$1 dir=$2 start
  echo "== $name from $(elapsed) s"
  start=$(date +%s.%N)
  (cd $dir && PYTHONPATH=/tmp/s/site:$dir timeout $(( ${BUDGET:-180} + 90 )) python -m search.run --space lr_sched \
    --track speedrun-4.5 --num-trials 400 --time-budget-s ${BUDGET:-180} --runs-dir /tmp/runs --quiet --name $name \
    > $P/search-$name.log 2>&1)
  echo "$start $(date +%s.%N)" > $P/$name-window.txt
  grep -v "^\[\|WARNING\|INFO\|^(" $P/search-$name.log | tail -8
  tar czf $OUT/$(basename $P).tar.gz --exclude=ray --exclude='*.pt' -C /tmp $(basename $P) runs
}
batch_arm() {  # batch_arm ARM [ARGS...]: bench/trainer_speed.py at b$BATCH (default 32; 20 steps, no second run at
  # b4) with ARGS into $P/speed-ARM, within LIMIT s (600); its exit status, its rows and the attention kernels
  # bench/sdpa_run.py names printed after "ARM: ", then save_pruned
  local arm=$1 b=${BATCH:-32}; shift
  timeout ${LIMIT:-600} python bench/trainer_speed.py --out $P/speed-$arm --batches $b --steps 20 --no-warm-run "$@" \
    > $P/speed-$arm.log 2>&1
  echo "$arm: exit $?"
  grep -hE "^attention|^b$b-" $P/speed-$arm.log $P/speed-$arm/b$b-cold.log 2>/dev/null | tr -s ' ' |
    sed "s/^/$arm: /"
  save_pruned
}
sdpa_arm() {  # sdpa_arm ARM BACKENDS: batch_arm ARM through bench/sdpa_run.py BACKENDS, on compile and token caches of
  # its own (inductor picks the attention backend when it traces, so no graph cached with another may be replayed)
  local arm=$1 backends=$2
  (export TORCHINDUCTOR_CACHE_DIR=/tmp/ind-$arm BLUEBERRY_CACHE=/tmp/bbcache-$arm
   mkdir -p $BLUEBERRY_CACHE && cp -r /tmp/bbcache/tokens $BLUEBERRY_CACHE/ 2>/dev/null
   batch_arm $arm --sdpa-off $backends)
}
fa4_part1() {  # the first part of the FA4 bundle (carried .fa4bundle/part-aa) kept in /tmp/fa4parts for the next
  # call on this machine (fa4_unpack), and the GPU named
  mkdir -p /tmp/fa4parts && cp .fa4bundle/part-aa /tmp/fa4parts/ && ls -la /tmp/fa4parts || exit 6
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv
}
fa4_unpack() {  # FA4 from the part the part1 call left in /tmp/fa4parts and the carried one, on PYTHONPATH
  [ -f /tmp/fa4parts/part-aa ] || { echo "no /tmp/fa4parts/part-aa: this is not part1's machine"; exit 6; }
  mkdir -p /tmp/fa4pkg && cat /tmp/fa4parts/part-aa .fa4bundle/part-ab | tar -xJ -C /tmp/fa4pkg || exit 6
  FA4PATH=/tmp/fa4pkg/site:/tmp/fa4pkg/site/nvidia_cutlass_dsl/dsl_packages  # speed_tree adds it too
  export PYTHONPATH=$PYTHONPATH:$FA4PATH
}
fp8_arm() {  # fp8_arm ARM LIMIT SETTINGS...: bench/fp8_run.py ARM (on, off, fwd-dgrad, ...) on the record's track with
  # SETTINGS into $P/ARM and $P/ARM.log, within LIMIT s; its exit status printed
  local arm=$1 limit=$2; shift 2
  timeout $limit python bench/fp8_run.py $arm --quiet --track speedrun-4.5 --out $P/$arm "$@" > $P/$arm.log 2>&1
  echo "exit $?"
}
fp8_speed_arms() {  # fp8_speed_arms ARM...: each fp8_arm compiled at b64 for 25 steps within LIMIT s (150), its
  # speed, memory and warm-up printed, then $OUT/<name of $P>.tar.gz rewritten
  local arm name; name=$(basename $P)
  for arm in "$@"; do
    echo "== FP8 $arm, compiled, b64, from $(elapsed) s"
    fp8_arm $arm ${LIMIT:-150} --set micro_batch_size=64 --set max_tokens=3276800 --set stop_rule=never \
      --set eval_every_tokens=1000000000
    grep -v Warning $P/$arm.log | grep -E "Error|\"tokens_per_s\"|\"peak_memory_bytes\"|\"warmup_s\"" | head -6
    tar czf $OUT/$name.tar.gz --exclude='*.pt' -C /tmp $name
  done
}
