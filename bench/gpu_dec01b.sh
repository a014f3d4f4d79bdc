#!/usr/bin/env bash
# Device calls of Dec 1, second session (issue 19). Set-up, old-tree and same-answer steps from bench/gpu_common.sh.
#   bash bench/gpu_dec01b.sh working   one H200, carry .devbundle-lite, .carry/data (wiki shard 0 + val) and .carry/old
#                                      (`git archive b1a4116 trainer chores`, assets left out): trainer speed at b4 of
#                                      the working tree with the bf16 working copies (on), without them
#                                      (`--set working_copies=false`, off) and of .carry/old (old), alternated, N rounds
#                                      (ROUNDS, default 2); the working tree's answer; b4 kernel tables and the GPU's
#                                      busy share with CUDA graphs, working copies on and off (call 1)
#   bash bench/gpu_dec01b.sh static    as working, with .carry/mid too (`git archive dc83144 trainer chores`, the
#                                      working copies without the static RoPE tables): trainer speed at b4 of the
#                                      working tree (new), .carry/mid (mid) and .carry/old (old, b1a4116), alternated,
#                                      ROUNDS rounds (default 2); b32 of new and old; the answer; the b4 kernel table
#                                      with CUDA graphs (call 2)
#   bash bench/gpu_dec01b.sh host      the working tree (new) with each step's host time (host_step_ms) against .carry/old
#                                      (b1a4116): b4 new, old, new, old, new; b32 new; the b4 kernel table with CUDA
#                                      graphs and the host's time to issue a step (call 3)
#   bash bench/gpu_dec01b.sh regions   the working tree at b4 with 1, 4 and 2 blocks per compiled region
#                                      (runtime.blocks_per_region), alternated, two rounds while the call has time; the
#                                      answer with 4 (call 4)
#   bash bench/gpu_dec01b.sh final     the working tree (new, 4 blocks a region) against .carry/old (b1a4116) at b4:
#                                      new, old, new, each a cold-compile and a warm-cache process (call 5)
source "$(dirname "$0")/gpu_common.sh"
b4_three() {  # b4_three ROUND: b4 (60 steps) on, off, old
  local i=$1 f
  speed_tree $REPO on-$i --batches 4 --steps 60
  speed_tree $REPO off-$i --batches 4 --steps 60 --set working_copies=false
  speed_tree $OLD old-$i --batches 4 --steps 60
  for f in $P/speed-*-$i.log; do echo "$(basename $f): $(grep -E '^b4-' $f | tr -s ' ' | tr '\n' ';')"; done
}
case "${1:-}" in
working)  # carry .devbundle-lite, .carry/data and .carry/old
  begin working old
  echo "== speed from $(elapsed) s"
  for i in $(seq 1 ${ROUNDS:-2}); do b4_three $i; done
  save_pruned
  answer_saved
  echo "== kernel tables from $(elapsed) s"
  python bench/profile_step.py --batch 4 --cudagraphs --out $P/profile-on > $P/profile-on.log 2>&1
  python bench/profile_step.py --batch 4 --cudagraphs --no-working-copies --out $P/profile-off \
    > $P/profile-off.log 2>&1
  grep -hE '"(gpu_busy_ms_per_step|gpu_span_ms_per_step|gpu_idle_share|gpu_ms_per_step|step_ms_unsynced)"' \
    $P/profile-on.log $P/profile-off.log
  echo "done at $(elapsed) s"; tar czf $OUT/$1.tar.gz -C /tmp $1 ;;
static)  # carry .devbundle-lite, .carry/data, .carry/old and .carry/mid
  begin static old mid
  echo "== speed from $(elapsed) s"
  for i in $(seq 1 ${ROUNDS:-2}); do
    speed_tree $REPO new-$i --batches 4 --steps 60
    speed_tree $MID mid-$i --batches 4 --steps 60
    speed_tree $OLD old-$i --batches 4 --steps 60
    for f in $P/speed-*-$i.log; do echo "$(basename $f): $(grep -E '^b4-' $f | tr -s ' ' | tr '\n' ';')"; done
  done
  save_pruned
  echo "== b32 from $(elapsed) s"
  speed_tree $REPO new-b32 --batches 32 --steps 20
  speed_tree $OLD old-b32 --batches 32 --steps 20
  for f in $P/speed-*-b32.log; do echo "$(basename $f): $(grep -E '^b32-' $f | tr -s ' ' | tr '\n' ';')"; done
  save_pruned
  answer_saved
  echo "== kernel table from $(elapsed) s"
  python bench/profile_step.py --batch 4 --cudagraphs --out $P/profile > $P/profile.log 2>&1
  grep -hE '"(gpu_busy_ms_per_step|gpu_idle_share|gpu_ms_per_step|step_ms_unsynced)"' $P/profile.log
  grep -E "foreach_copy" $P/profile/kernels-b4.txt | cut -c1-95,175-250
  echo "done at $(elapsed) s"; tar czf $OUT/$1.tar.gz -C /tmp $1 ;;
host)  # carry .devbundle-lite, .carry/data and .carry/old
  begin host old
  echo "== speed from $(elapsed) s"
  for i in 1 2 3; do
    speed_tree $REPO new-$i --batches 4 --steps 60
    grep -E '^b4-' $P/speed-new-$i.log | tr -s ' ' | sed "s/^/new-$i: /"
    if [ $i -lt 3 ]; then
      speed_tree $OLD old-$i --batches 4 --steps 60
      grep -E '^b4-' $P/speed-old-$i.log | tr -s ' ' | sed "s/^/old-$i: /"
    fi
  done
  save_pruned
  echo "== b32 from $(elapsed) s"
  speed_tree $REPO new-b32 --batches 32 --steps 20
  grep -E '^b32-' $P/speed-new-b32.log | tr -s ' '
  save_pruned
  echo "== kernel table from $(elapsed) s"
  python bench/profile_step.py --batch 4 --cudagraphs --out $P/profile > $P/profile.log 2>&1
  grep -hE '"(gpu_busy_ms_per_step|gpu_idle_share|host_ms_per_step_unsynced|step_ms_unsynced)"' $P/profile.log
  echo "done at $(elapsed) s"; tar czf $OUT/$1.tar.gz -C /tmp $1 ;;
regions)  # carry .devbundle-lite and .carry/data
  begin regions
  echo "== speed from $(elapsed) s"
  for i in 1 2; do
    [ $i -eq 2 ] && [ $(elapsed) -gt ${ROUND2_BEFORE:-300} ] && break
    for k in 1 4 2; do
      speed_tree $REPO k$k-$i --batches 4 --steps 60 --set blocks_per_region=$k
      grep -E '^b4-' $P/speed-k$k-$i.log | tr -s ' ' | sed "s/^/k$k-$i: /"
    done
    save_pruned
  done
  if [ $(elapsed) -lt ${ANSWER_BEFORE:-450} ]; then
    echo "== same answer (4 blocks a region) from $(elapsed) s"
    python bench/same_answer.py --out $P/same --reference-from bench/results/same_answer/reference \
      --against bench/results/same_answer/fast --set blocks_per_region=4 > $P/same.log 2>&1
    tail -6 $P/same.log; rm -rf $P/same/fast
  fi
  echo "done at $(elapsed) s"; tar czf $OUT/$1.tar.gz -C /tmp $1 ;;
final)  # carry .devbundle-lite, .carry/data and .carry/old
  begin final old
  for arm in new-1 old-1 new-2; do
    case $arm in new*) dir=$REPO ;; *) dir=$OLD ;; esac
    b4_arm $dir $arm
  done
  echo "done at $(elapsed) s" ;;
*) echo "usage: $0 working|static|host|regions|final"; exit 2 ;;
esac
