#!/usr/bin/env bash
# Device calls of Dec 1, fifth session (issues 14 and 19). Set-up steps from bench/gpu_common.sh.
#   bash bench/gpu_dec01e.sh oldpath  one H200; carry .devbundle-search (make-bundle.sh --only: Ray, Optuna and their
#                                     dependencies, zstandard), .carry/data-small (`python bench/trim_shard.py
#                                     .carry/data .carry/data-small`) and .carry/old (`git archive 669ccbb trainer
#                                     search spaces`, trainer/assets left out: the code when issue 14 was filed, with
#                                     a process per trial and nothing else): one `python -m trainer` of each tree to
#                                     warm its compile cache, then the default search for BUDGET s (180) with the old
#                                     code, then with the working tree's warm workers, each bracketed by the times
#                                     it began and ended (window.txt) so that both are counted by one rule
#                                     (bench/dec01e_summary.py) (call 1)
#   bash bench/gpu_dec01e.sh autotune32  one H200 (issue 19); carry .devbundle-lite and .carry/data: trainer speed at
#                                     b32 (20 steps) with the default compile, then with inductor's GEMM autotuning
#                                     (TORCHINDUCTOR_MAX_AUTOTUNE_GEMM=1: Triton GEMM templates, whose epilogues can
#                                     take the SiLU-multiply and the adds, benchmarked against cuBLAS), cold, within
#                                     what is left of 560 s (call 2)
#   bash bench/gpu_dec01e.sh sdpa32   one H200 (issue 19); carry .devbundle-lite and .carry/data: trainer speed at b32
#                                     (20 steps) with the default attention (cuDNN), then with cuDNN turned off
#                                     (FlashAttention-2), then with cuDNN and flash off (memory-efficient), each on
#                                     compile and token caches of its own (bench/sdpa_run.py) (call 3)
#   bash bench/gpu_dec01e.sh gcstart  one H200 (issue 14); carry .devbundle-lite, .carry/data and .carry/mid (`git
#                                     archive 7ea2144 trainer chores`: the collector running through start-up): each
#                                     tree's first process (cold), then fresh processes at b4 (20 steps) on the caches
#                                     they left, the working tree (new: at 91315d6, the collector paused until the
#                                     clock, chores/collector.py, reverted after this call) and mid alternated, three
#                                     rounds of two processes (call 4)
#   bash bench/gpu_dec01e.sh workers  one H200 (issue 14); carry .devbundle-lite and .carry/data: bench/warm_workers.py
#                                     same-answer (the record's settings after two other trials in one worker against
#                                     a fresh process, and a second fresh process for the GPU's own spread), then
#                                     memory (20 trials in one worker: memory reserved after the 2nd and the 20th)
#                                     (call 5)
source "$(dirname "$0")/gpu_common.sh"
case "${1:-}" in
oldpath)  # carry .devbundle-search, .carry/data-small and .carry/old
  P=/tmp/oldpath; REPO=$PWD; mkdir -p $P /tmp/runs
  old_tree
  DATA=$PWD/.carry/data-small setup_trainer .devbundle-search
  gpu_info
  export RAY_DEDUP_LOGS=0
  for tree in old new; do
    dir=$REPO; [ $tree = old ] && dir=$OLD
    echo "== warm the $tree tree's compile cache from $(elapsed) s"
    (cd $dir && PYTHONPATH=/tmp/s/site:$dir python -m trainer --quiet --track speedrun-4.5 --out /tmp/warm-$tree \
      --set max_tokens=524288 --set stop_rule=never > $P/warm-$tree.log 2>&1) || { tail -20 $P/warm-$tree.log; exit 7; }
    cp /tmp/warm-$tree/result.json $P/warm-$tree-result.json
  done
  search_arm old-1gpu $OLD
  search_arm warm-1gpu $REPO
  echo "done at $(elapsed) s" ;;
autotune32)  # carry .devbundle-lite and .carry/data
  begin autotune32
  batch_arm default
  echo "== GEMM autotuning from $(elapsed) s"
  TORCHINDUCTOR_MAX_AUTOTUNE_GEMM=1 LIMIT=$(( 560 - $(elapsed) )) batch_arm autotune
  echo "done at $(elapsed) s" ;;
sdpa32)  # carry .devbundle-lite and .carry/data
  begin sdpa32
  batch_arm default
  for off in cudnn cudnn,flash; do
    echo "== $off off from $(elapsed) s"
    sdpa_arm ${off/,/-}-off $off
  done
  echo "done at $(elapsed) s" ;;
gcstart)  # carry .devbundle-lite, .carry/data and .carry/mid
  begin gcstart mid
  for tree in new mid; do
    dir=$REPO; [ $tree = mid ] && dir=$MID
    echo "== $tree's first process from $(elapsed) s"
    speed_tree $dir cold-$tree --batches 4 --steps 20 --no-warm-run
    save_pruned
  done
  for i in 1 2 3; do b4_arm $REPO new-$i 20; b4_arm $MID mid-$i 20; done
  echo "done at $(elapsed) s" ;;
workers)  # carry .devbundle-lite and .carry/data
  begin workers
  for what in same-answer memory; do
    echo "== $what from $(elapsed) s"
    python bench/warm_workers.py $what --out $P > $P/$what.log 2>&1; echo "exit $?"; tail -2 $P/$what.log
    tar czf $OUT/workers.tar.gz -C /tmp workers
  done
  echo "done at $(elapsed) s" ;;
*) echo "usage: $0 oldpath|autotune32|sdpa32|gcstart|workers"; exit 2 ;;
esac
