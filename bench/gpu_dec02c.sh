#!/usr/bin/env bash
# Device calls of Dec 2, thirteenth session (issue 14: a fresh process's start-up). Set-up steps from
# bench/gpu_common.sh (sourced).
#   bash bench/gpu_dec02c.sh nested  one H200; carry .devbundle-lite, .carry/data and .carry/old (`git archive 111afa1
#                                    trainer chores`, trainer/assets removed): each block of a compiled Region as a
#                                    nested compile region (the working tree, `new`: trainer/model.py's Region.forward
#                                    changed as bench/nested_regions.py patches it, never committed) against 111afa1
#                                    (`old`). Each tree on inductor and Triton caches of its own: a process on its cold
#                                    caches (old first), then ROUNDS (2) rounds alternated of two fresh processes on
#                                    the warm caches at b4 (60 steps); then the working tree's answer and, while time
#                                    is left, the answer with fp8=true
#   bash bench/gpu_dec02c.sh regress one H200; carry .devbundle-lite, .carry/data and .carry/mid (`git archive 7ea2144
#                                    trainer chores`, trainer/assets removed: the trainer whose warm processes started in
#                                    a median of 8.65 s on Dec 1, bench/results/dec01e-summary.txt): fresh processes at
#                                    b4 (20 steps) of the working tree (new) and 7ea2144 (mid), each on inductor and
#                                    Triton caches of its own: a process on its cold caches (mid first), then ROUNDS (3)
#                                    rounds alternated of two processes on the warm caches
#   bash bench/gpu_dec02c.sh threads one H200; carry .devbundle-lite and .carry/data: fresh processes at b4 (20 steps) of
#                                    the working tree on one warm cache, with inductor's compile worker pool (`pool`, the
#                                    default: a process pool as wide as the machine's cores) and without it
#                                    (`one`, TORCHINDUCTOR_COMPILE_THREADS=1), after one cold process; ROUNDS (4) rounds
#                                    alternated (the order swapped each round) of two processes each; the compile
#                                    workers alive sampled every 0.5 s (workers.txt)
#   bash bench/gpu_dec02c.sh pool    one H200; carry .devbundle-lite, .carry/data and .carry/old (`git archive 111afa1
#                                    trainer chores`, trainer/assets removed): the working tree at 0645d10 (new: no compile
#                                    worker pool when a shape's portable compile artifacts were loaded, trainer.train.
#                                    compile_in_process) against 111afa1 (old), each on inductor and Triton caches of its
#                                    own: a process on its cold caches (old first), then ROUNDS (4) rounds alternated (the
#                                    order swapped each round) of two processes at b4 (20 steps); the compile workers
#                                    alive sampled every 0.5 s (workers.txt)
#   bash bench/gpu_dec02c.sh newmachine one H200; carry .devbundle-lite and .carry/data: the working tree (96e9038, the
#                                    trainer of 111afa1): a process on cold caches, then a new machine's first run
#                                    (gpu_common.sh new_machine: the inductor and Triton caches emptied, only <cache>
#                                    carried) and a second process on the caches it left, then, while time is left, two
#                                    more fresh processes
#   bash bench/gpu_dec02c.sh oldpath one H200, or two (nvidia-h200-x2; not run this session); carry .devbundle-search,
#                                    .carry/data-small (`python bench/trim_shard.py .carry/data .carry/data-small`)
#                                    and .carry/p669 (`git archive 669ccbb trainer search spaces`, trainer/assets left
#                                    out: the code when issue 14 was filed, a process per trial): bench/gpu_dec01e.sh
#                                    oldpath on every GPU the machine has: one `python -m trainer` of each tree to warm
#                                    its compile cache, then the default search for BUDGET s (180) of 669ccbb and then
#                                    of the working tree's warm workers
source "$(dirname "$0")/gpu_common.sh"
tree_run() {  # tree_run TREE NAME ARGS...: speed_tree of TREE (new, old or mid) with its own inductor and Triton caches
  local t=$1; shift
  declare -A dir=([new]=$REPO [old]=${OLD:-} [mid]=${MID:-})
  (export TORCHINDUCTOR_CACHE_DIR=/tmp/ind-$t TRITON_CACHE_DIR=/tmp/tri-$t; speed_tree ${dir[$t]} "$@")
}
cold_then_rounds() {  # cold_then_rounds A B ROUNDS STEPS LIMIT: a process of tree A then of tree B on their cold
  # caches (b4, 20 steps), then ROUNDS rounds, each two processes of B then two of A at b4 (STEPS steps; with SWAP=1
  # the order swaps every other round), while fewer than LIMIT s have passed; when each arm began in $P/arms.txt
  local a=$1 b=$2 rounds=$3 steps=$4 limit=$5 i t order
  for t in $a $b; do tree_run $t $t-0 --batches 4 --steps 20 --no-warm-run; start_rows $t-0; done
  for i in $(seq 1 $rounds); do
    order="$b $a"; [ "${SWAP:-0}" = 1 ] && [ $((i % 2)) = 0 ] && order="$a $b"
    for t in $order; do
      [ $(elapsed) -lt $limit ] || return 0
      echo "$t-$i from $(date +%s.%N)" >> $P/arms.txt
      tree_run $t $t-$i --batches 4 --steps $steps; start_rows $t-$i
    done
  done
}
case "${1:-}" in
nested)  # carry .devbundle-lite, .carry/data and .carry/old (111afa1)
  begin nested old
  cold_then_rounds old new ${ROUNDS:-2} 60 330
  save_pruned
  export TORCHINDUCTOR_CACHE_DIR=/tmp/ind-new TRITON_CACHE_DIR=/tmp/tri-new
  answer_saved
  [ $(elapsed) -lt 470 ] && fp8_answer 110
  echo "done at $(elapsed) s" ;;
regress)  # carry .devbundle-lite, .carry/data and .carry/mid (7ea2144)
  begin regress mid
  cold_then_rounds mid new ${ROUNDS:-3} 20 480
  save_pruned
  echo "done at $(elapsed) s" ;;
threads)  # carry .devbundle-lite and .carry/data
  begin threads
  (while sleep 0.5; do echo "$(date +%s.%N) $(pgrep -fc compile_worker)"; done > $P/workers.txt) &
  sampler=$!
  speed_tree $REPO cold --batches 4 --steps 20 --no-warm-run; start_rows cold
  for i in $(seq 1 ${ROUNDS:-4}); do
    [ $(elapsed) -lt 470 ] || break
    arms="one pool"; [ $((i % 2)) = 0 ] && arms="pool one"  # the order alternates from round to round
    for arm in $arms; do
      if [ $arm = one ]; then (export TORCHINDUCTOR_COMPILE_THREADS=1; speed_tree $REPO one-$i --batches 4 --steps 20)
      else speed_tree $REPO pool-$i --batches 4 --steps 20; fi
      start_rows $arm-$i
    done
  done
  kill $sampler
  save_pruned
  echo "done at $(elapsed) s" ;;
pool)  # carry .devbundle-lite, .carry/data and .carry/old (111afa1)
  begin pool old
  (while sleep 0.5; do echo "$(date +%s.%N) $(pgrep -fc compile_worker)"; done > $P/workers.txt) &
  sampler=$!
  SWAP=1 cold_then_rounds old new ${ROUNDS:-4} 20 450
  kill $sampler
  save_pruned
  echo "done at $(elapsed) s" ;;
newmachine)  # carry .devbundle-lite and .carry/data
  begin newmachine
  speed_tree $REPO cold --batches 4 --steps 20 --no-warm-run; start_rows cold
  new_machine; start_rows newmachine
  [ $(elapsed) -lt 150 ] && { BLUEBERRY_CACHE=/tmp/bbcache-new speed_tree $REPO warm --batches 4 --steps 20; start_rows warm; }
  save_pruned
  echo "done at $(elapsed) s" ;;
oldpath)  # one or two H200s; carry .devbundle-search, .carry/data-small and .carry/p669
  [ -d .carry/p669/trainer ] || { echo "no .carry/p669/trainer"; exit 7; }
  rm -rf .carry/old && cp -r .carry/p669 .carry/old  # gpu_dec01e.sh oldpath runs the tree in .carry/old
  nvidia-smi -L
  bash bench/gpu_dec01e.sh oldpath ;;
*) echo "usage: bash bench/gpu_dec02c.sh nested | regress | threads | pool | newmachine | oldpath"; exit 2 ;;
esac
