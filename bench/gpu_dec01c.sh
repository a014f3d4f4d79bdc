#!/usr/bin/env bash
# Device calls of Dec 1, third session (issue 19). Set-up, old-tree and same-answer steps from bench/gpu_common.sh.
#   bash bench/gpu_dec01c.sh survey   one H200, carry .devbundle-lite, .carry/data (wiki shard 0 + val) and .carry/old
#                                     (`git archive aea989e trainer chores`, assets left out): b4 kernel tables with CUDA
#                                     graphs and where the GPU waits (bench/profile_step.py's gaps) for the working
#                                     tree (new) and .carry/old (old); the b32 kernel table (new); trainer speed of new
#                                     at b4, b64 and b48, and of old at b4 (call 1)
#   bash bench/gpu_dec01c.sh fused    as survey, with .carry/mid too (`git archive c7bcd55 trainer chores`: the compile
#                                     caches keyed on the code, the qk weight-gradient sum compiled): trainer speed at b4
#                                     of the working tree (new: q and k from one GEMM), mid and old (aea989e),
#                                     alternated, two rounds; the answer; the b4 kernel table of new (call 2)
#   bash bench/gpu_dec01c.sh final    as survey: trainer speed of the working tree (new) at b32 and b64 and of old at b32;
#                                     start-up of fresh processes with warm caches, new and old alternated, two rounds
#                                     (two processes each); then a new machine's first run: the inductor and Triton
#                                     caches emptied, only a copy of <cache> (tokens and the portable compile
#                                     artifacts) kept, new at b4 (call 3)
#   bash bench/gpu_dec01c.sh startprof  with .carry/mid: for the working tree (new) and .carry/mid (c7bcd55), a
#                                     `python -m trainer` at b4 (20 steps) that fills the compile caches, then one on
#                                     those caches under cProfile (its .prof and result.json kept): where new's
#                                     ~1 s longer warm-up goes (call 4)
#   bash bench/gpu_dec01c.sh tagenv   the compile-cache tag in the environment too: on a new machine, the working tree
#                                     (new) at b4, 20 steps, twice (a cold process, then three on its caches), then
#                                     .carry/old (aea989e) twice the same way: warm starts side by side (call 5)
#   bash bench/gpu_dec01c.sh split    with .carry/mid (the commit before: qk kernels with queries and keys mixed in a
#                                     program): the q/k path alone (bench/rope_variants.py, the kernels' GPU time and
#                                     their difference from the compiled formula) at b4 and b32, then the trainer at b4
#                                     (60 steps), new then mid (call 6)
source "$(dirname "$0")/gpu_common.sh"
case "${1:-}" in
survey)  # carry .devbundle-lite, .carry/data and .carry/old
  begin survey old
  for arm in new-b4 old-b4 new-b32; do
    echo "== profile $arm from $(elapsed) s"
    case $arm in new*) dir=$REPO ;; *) dir=$OLD ;; esac
    profile_tree $dir $arm ${arm#*-b}
    tar czf $OUT/$1.tar.gz -C /tmp $1
  done
  echo "== speed from $(elapsed) s"
  speed_tree $REPO new --batches 4 64 48 --steps 30
  grep -E '^b[0-9]+-' $P/speed-new.log | tr -s ' ' | sed "s/^/new: /"
  save_pruned
  [ $(elapsed) -lt ${OLD_BEFORE:-480} ] && b4_arm $OLD old
  echo "done at $(elapsed) s" ;;
fused)  # carry .devbundle-lite, .carry/data, .carry/old and .carry/mid
  begin fused old mid
  echo "== speed from $(elapsed) s"
  for i in 1 2; do
    for arm in new mid old; do
      case $arm in new) dir=$REPO ;; mid) dir=$MID ;; *) dir=$OLD ;; esac
      b4_arm $dir $arm-$i
    done
  done
  answer_saved
  if [ $(elapsed) -lt ${PROFILE_BEFORE:-500} ]; then
    echo "== profile new-b4 from $(elapsed) s"
    profile_tree $REPO new-b4 4
  fi
  echo "done at $(elapsed) s"; tar czf $OUT/$1.tar.gz -C /tmp $1 ;;
final)  # carry .devbundle-lite, .carry/data and .carry/old
  begin final old
  echo "== best batch from $(elapsed) s"
  speed_tree $REPO new-big --batches 32 64 --steps 20
  grep -E '^b[0-9]+-' $P/speed-new-big.log | tr -s ' ' | sed "s/^/new: /"
  speed_tree $OLD old-big --batches 32 --steps 20
  grep -E '^b[0-9]+-' $P/speed-old-big.log | tr -s ' ' | sed "s/^/old: /"
  save_pruned
  echo "== warm starts from $(elapsed) s"
  for i in 1 2; do
    for arm in new old; do
      case $arm in new) dir=$REPO ;; *) dir=$OLD ;; esac
      b4_arm $dir start-$arm-$i 20
    done
  done
  new_machine
  echo "done at $(elapsed) s" ;;
startprof)  # carry .devbundle-lite, .carry/data and .carry/mid
  begin startprof mid
  for arm in new mid; do
    case $arm in new) dir=$REPO ;; *) dir=$MID ;; esac
    for run in fill prof; do
      prof=(); [ $run = prof ] && prof=(-m cProfile -o $P/$arm.prof)
      (cd $dir && PYTHONPATH=/tmp/s/site:$dir python "${prof[@]}" -m trainer --quiet --track speedrun-4.5 \
        --out /tmp/runs-$arm-$run --set micro_batch_size=4 --set max_tokens=163840 --set stop_rule=never \
        --set eval_every_tokens=1000000000 > $P/$arm-$run.log 2>&1)
      python -c "import json; r = json.load(open('/tmp/runs-$arm-$run/result.json')); print('$arm $run', round(r['startup_s'], 2), r['startup_phases'], r.get('compile_cache'))"
      [ $run = prof ] && cp /tmp/runs-$arm-$run/result.json $P/$arm-result.json
    done
    tar czf $OUT/$1.tar.gz -C /tmp $1
  done
  echo "done at $(elapsed) s" ;;
tagenv)  # carry .devbundle-lite, .carry/data and .carry/old
  begin tagenv old
  for arm in new-1 new-2 old-1 old-2; do
    case $arm in new*) dir=$REPO ;; *) dir=$OLD ;; esac
    b4_arm $dir $arm 20
  done
  echo "done at $(elapsed) s" ;;
split)  # carry .devbundle-lite, .carry/data and .carry/mid
  begin split mid
  python bench/rope_variants.py --out $P/rope --batch 4 32 --variants swap_bthd --triton-configs 16x2 \
    > $P/rope.log 2>&1
  python - $P/rope/rope_variants.json <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    qk = {k: round(v, 1) for k, v in r["kernels_us"].items() if k.startswith("qk_")}
    print(r["variant"], "b%d" % r["batch"], "max diff %.4f" % r["max_abs_diff"], qk)
PY
  tar czf $OUT/$1.tar.gz -C /tmp $1
  for arm in new mid; do
    case $arm in new) dir=$REPO ;; *) dir=$MID ;; esac
    b4_arm $dir $arm
  done
  echo "done at $(elapsed) s" ;;
*) echo "usage: $0 survey|fused|final|startprof|tagenv|split"; exit 2 ;;
esac
