#!/usr/bin/env bash
# Device calls of Dec 1, second session (issue 19). Set-up, old-tree and same-answer steps from bench/gpu_common.sh.
#   bash bench/gpu_dec01b.sh working   one H200, carry .devbundle-lite, .carry/data (wiki shard 0 + val) and .carry/old
#                                      (`git archive b1a4116 trainer chores`, assets left out): trainer speed at b4 of
#                                      the working tree with the bf16 working copies (on), without them
#                                      (`--set working_copies=false`, off) and of .carry/old (old), alternated, N rounds
#                                      (ROUNDS, default 2); the working tree's answer; b4 kernel tables and the GPU's
#                                      busy share with CUDA graphs, working copies on and off
source "$(dirname "$0")/gpu_common.sh"
b4_three() {  # b4_three ROUND: b4 (60 steps) on, off, old
  local i=$1 f
  python bench/trainer_speed.py --out $P/speed-on-$i --batches 4 --steps 60 > $P/speed-on-$i.log 2>&1
  python bench/trainer_speed.py --out $P/speed-off-$i --batches 4 --steps 60 --set working_copies=false \
    > $P/speed-off-$i.log 2>&1
  (cd $OLD && PYTHONPATH=/tmp/s/site:$OLD python $REPO/bench/trainer_speed.py --out $P/speed-old-$i --batches 4 \
    --steps 60 > $P/speed-old-$i.log 2>&1)
  for f in $P/speed-*-$i.log; do echo "$(basename $f): $(grep -E '^b4-' $f | tr -s ' ' | tr '\n' ';')"; done
}
case "${1:-}" in
working)  # carry .devbundle-lite, .carry/data and .carry/old
  P=/tmp/working; mkdir -p $P; old_tree
  setup_trainer
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  echo "== speed from $(elapsed) s"
  for i in $(seq 1 ${ROUNDS:-2}); do b4_three $i; done
  rm -rf $P/speed-*/b*-cold $P/speed-*/b4-warm-cache; tar czf $OUT/$1.tar.gz -C /tmp $1
  echo "== same answer from $(elapsed) s"
  same_answer; tail -6 $P/same.log
  rm -rf $P/same/fast; tar czf $OUT/$1.tar.gz -C /tmp $1
  echo "== kernel tables from $(elapsed) s"
  python bench/profile_step.py --batch 4 --cudagraphs --out $P/profile-on > $P/profile-on.log 2>&1
  python bench/profile_step.py --batch 4 --cudagraphs --no-working-copies --out $P/profile-off \
    > $P/profile-off.log 2>&1
  grep -hE '"(gpu_busy_ms_per_step|gpu_span_ms_per_step|gpu_idle_share|gpu_ms_per_step|step_ms_unsynced)"' \
    $P/profile-on.log $P/profile-off.log
  echo "done at $(elapsed) s"; tar czf $OUT/$1.tar.gz -C /tmp $1 ;;
*) echo "usage: $0 working"; exit 2 ;;
esac
