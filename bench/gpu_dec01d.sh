#!/usr/bin/env bash
# Device calls of Dec 1, fourth session (issues 19 and 14). Set-up, speed and same-answer steps from bench/gpu_common.sh.
#   bash bench/gpu_dec01d.sh verify   one H200, carry .devbundle-lite and .carry/data (wiki shard 0 + val): the working
#                                     tree's answer at 6,086,656 tokens against the saved reference run (and its time on
#                                     the clock); trainer speed at b32 and b64; then, on the caches those runs left, a
#                                     fresh process split by bench/startup_split.py, one `python -m trainer` under
#                                     cProfile (its 45 largest cumulative times kept as text) and two warm starts at b4
#                                     (call 1)
#   bash bench/gpu_dec01d.sh resid    with .carry/mid too (`git archive 2926ce7 trainer chores`: the residual stream in
#                                     fp32): trainer speed at b4 (60 steps) of the working tree (new: the residual
#                                     stream in bf16) and mid, alternated, two rounds; new's answer; b32 of both (call 2)
#   bash bench/gpu_dec01d.sh survey   b4 and b32 kernel tables with CUDA graphs (bench/profile_step.py --cudagraphs) of
#                                     the working tree; its speed at b64 and b48 (call 3)
#   bash bench/gpu_dec01d.sh final    the kernel tables of call 3 again, with the residual stream in bf16 as the trainer
#                                     runs it (call 3's bench/profile_step.py built the model with an fp32 residual);
#                                     warm starts at b4, twice; a new machine's first run with only <cache> (call 4)
#   bash bench/gpu_dec01d.sh search1  carry .devbundle-search (make-bundle.sh --only: Ray, Optuna and their dependencies,
#                                     zstandard) and .carry/data-small (`python bench/trim_shard.py .carry/data
#                                     .carry/data-small`: the first 55% of wiki shard 0's documents and val, as the full
#                                     shard does not fit beside the bundle): one `python -m trainer` to
#                                     warm the compile caches, then the default search on the one GPU for BUDGET s
#                                     (100) with a process per trial (--fresh-workers), then with warm workers (call 5)
#   bash bench/gpu_dec01d.sh tables   the b4 and b32 kernel tables once more, bench/profile_step.py now building the step
#                                     with trainer.train.build_shape (so at b32 with the chunked loss, as the trainer)
#                                     (call 6)
source "$(dirname "$0")/gpu_common.sh"
warm_profile() {  # warm_profile NAME: `python -m trainer` at b4 (20 steps) under cProfile into $P/NAME.prof, its
  # start-up phases printed and its largest cumulative times written to $P/NAME-top.txt
  local name=$1
  python -m cProfile -o $P/$name.prof -m trainer --quiet --track speedrun-4.5 --out /tmp/runs-$name \
    --set micro_batch_size=4 --set max_tokens=163840 --set stop_rule=never --set eval_every_tokens=1000000000 \
    > $P/$name.log 2>&1
  cp /tmp/runs-$name/result.json $P/$name-result.json
  python -c "import json; r = json.load(open('$P/$name-result.json')); print('$name', round(r['startup_s'], 2), r['startup_phases'], r.get('compile_cache'))"
  python -c "import pstats, sys; pstats.Stats('$P/$name.prof', stream=sys.stdout).sort_stats('cumulative').print_stats(45)" \
    > $P/$name-top.txt
}
tables() {  # tables NAME: the working tree's kernel tables at b4 and b32 (profile_tree), $OUT/NAME.tar.gz after each
  local batch
  for batch in 4 32; do
    echo "== profile b$batch from $(elapsed) s"
    profile_tree $REPO new-b$batch $batch
    tar czf $OUT/$1.tar.gz -C /tmp $1
  done
}
case "${1:-}" in
verify)  # carry .devbundle-lite and .carry/data
  begin verify
  answer_saved
  echo "== best batch from $(elapsed) s"
  speed_tree $REPO big --batches 32 64 --steps 20
  grep -E '^b[0-9]+-' $P/speed-big.log | tr -s ' ' | sed "s/^/new: /"
  save_pruned
  echo "== start-up from $(elapsed) s"
  python bench/startup_split.py --out $P/split.json > $P/split.log 2>&1; tail -12 $P/split.log
  warm_profile warm-prof
  tar czf $OUT/$1.tar.gz -C /tmp $1
  for i in 1 2; do b4_arm $REPO start-$i 20; done
  echo "done at $(elapsed) s" ;;
resid)  # carry .devbundle-lite, .carry/data and .carry/mid
  begin resid mid
  echo "== speed from $(elapsed) s"
  for i in 1 2; do b4_arm $REPO new-$i; b4_arm $MID mid-$i; done
  answer_saved
  if [ $(elapsed) -lt ${B32_BEFORE:-400} ]; then
    echo "== b32 from $(elapsed) s"
    for arm in new mid; do
      case $arm in new) dir=$REPO ;; *) dir=$MID ;; esac
      speed_tree $dir $arm-b32 --batches 32 --steps 20
      grep -E '^b32-' $P/speed-$arm-b32.log | tr -s ' ' | sed "s/^/$arm: /"
    done
    save_pruned
  fi
  echo "done at $(elapsed) s" ;;
survey)  # carry .devbundle-lite and .carry/data
  begin survey
  tables $1
  echo "== speed from $(elapsed) s"
  speed_tree $REPO new --batches 64 48 --steps 20
  grep -E '^b[0-9]+-' $P/speed-new.log | tr -s ' ' | sed "s/^/new: /"
  save_pruned
  echo "done at $(elapsed) s" ;;
final)  # carry .devbundle-lite and .carry/data
  begin final
  tables $1
  echo "== warm starts from $(elapsed) s"
  for i in 1 2; do b4_arm $REPO start-$i 20; done
  new_machine
  echo "done at $(elapsed) s" ;;
search1)  # carry .devbundle-search and .carry/data-small
  P=/tmp/search1; REPO=$PWD; mkdir -p $P
  DATA=$PWD/.carry/data-small setup_trainer .devbundle-search
  gpu_info
  export RAY_DEDUP_LOGS=0
  python -m trainer --quiet --out /tmp/warm-run --set max_tokens=524288 --set stop_rule=never > $P/warm-run.log 2>&1 \
    || { tail -20 $P/warm-run.log; exit 7; }
  for arm in fresh warm; do
    echo "== $arm workers from $(elapsed) s"
    flag=(); [ $arm = fresh ] && flag=(--fresh-workers)
    python -m search.run --space lr_sched --track speedrun-4.5 --num-trials 400 --time-budget-s ${BUDGET:-100} \
      --runs-dir /tmp/runs --quiet --name $arm-1gpu "${flag[@]}" > $P/search-$arm.log 2>&1
    grep -v "^\[\|WARNING\|INFO" $P/search-$arm.log | tail -14
    tar czf $OUT/search1.tar.gz --exclude=ray --exclude='*.pt' -C /tmp search1 runs
  done
  echo "done at $(elapsed) s" ;;
tables)  # carry .devbundle-lite and .carry/data
  begin tables
  tables $1
  echo "done at $(elapsed) s" ;;
*) echo "usage: $0 verify|resid|survey|final|search1|tables"; exit 2 ;;
esac
