#!/usr/bin/env bash
# Device calls of Nov 30, eighth session (issue 19). Set-up, old-tree and A/B functions as in gpu_nov30g.sh.
#   bash bench/gpu_nov30h.sh qk       one H200, carry .devbundle-lite, .carry/data and .carry/old (`git archive HEAD
#                                     trainer chores` before the change, assets left out): the q/k path alone
#                                     (bench/rope_variants.py: the compiled formula against the Triton kernel in
#                                     several rows x warps configs) at b4 and b32; trainer speed at b4 of the working
#                                     tree and of .carry/old, twice, alternated; the working tree's answer; b32 speed
#                                     of both while the call has time (call 1)
#   bash bench/gpu_nov30h.sh qk2      as qk, after the kernel's rewrite (whole rows, the pair swap in registers): the
#                                     q/k path alone, trainer speed at b4 and b32 of both (call 2)
#   bash bench/gpu_nov30h.sh qk3      the kernel with 16 rows, 2 warps and 8 row blocks a backward program: the q/k
#                                     path alone (1, 8, 32 blocks); trainer speed at b4 of both, twice, alternated;
#                                     the answer; b32 speed of both; the b4 kernel table (call 3). (The backward
#                                     looped over BLOCKS row blocks a program then, 8 by default; `16x2x8` in the
#                                     configs set that number. Not kept: the kernel has one block a program since.)
#   bash bench/gpu_nov30h.sh final    as qk3 with the kernel kept (16 rows, 2 warps, one block a program): the q/k
#                                     path alone, trainer speed at b4 twice and b32, the answer (call 4)
#   bash bench/gpu_nov30h.sh start    start-up with Triton imported on the kernels' first call (not with the model):
#                                     bench/trainer_speed.py at b4, 20 steps, the working tree then .carry/old, three
#                                     times (one cold process each, then five on warm caches) (call 5)
source "$(dirname "$0")/gpu_common.sh"
case "${1:-}" in
qk)  # carry .devbundle-lite, .carry/data and .carry/old
  P=/tmp/qk; mkdir -p $P; old_tree
  setup_trainer
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  python bench/rope_variants.py --out $P/rope --batch 4 32 --variants now swap_bthd \
    --triton-configs 16x2 16x4 32x4 64x4 64x8 128x8 > $P/rope.log 2>&1; grep variant $P/rope.log | cut -c1-160
  echo "== speed from $(elapsed) s"
  speed_pair -1 --batches 4 --steps 60
  for f in $P/speed-*-1.log; do echo "$(basename $f): $(grep -E '^b4-' $f | tr -s ' ' | tr '\n' ';')"; done
  tar czf $OUT/qk.tar.gz -C /tmp qk
  echo "== same answer from $(elapsed) s"
  same_answer; tail -6 $P/same.log
  rm -rf $P/same/fast; tar czf $OUT/qk.tar.gz -C /tmp qk
  speed_pair -2 --batches 4 --steps 60
  for f in $P/speed-*-2.log; do echo "$(basename $f): $(grep -E '^b4-' $f | tr -s ' ' | tr '\n' ';')"; done
  if [ $(elapsed) -lt 430 ]; then
    speed_pair -b32 --batches 32 --steps 20
    for f in $P/speed-*-b32.log; do echo "$(basename $f): $(grep -E '^b32-' $f | tr -s ' ' | tr '\n' ';')"; done
  fi
  rm -rf $P/speed-*/b*-cold $P/speed-*/b4-warm-cache $P/same/fast
  echo "done at $(elapsed) s"; tar czf $OUT/qk.tar.gz -C /tmp qk ;;
qk2)  # carry .devbundle-lite, .carry/data and .carry/old
  P=/tmp/qk2; mkdir -p $P; old_tree
  setup_trainer
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  python bench/rope_variants.py --out $P/rope --batch 4 32 --variants swap_bthd \
    --triton-configs 8x2 16x2 16x4 32x4 64x4 64x8 > $P/rope.log 2>&1; grep variant $P/rope.log | cut -c1-160
  tar czf $OUT/qk2.tar.gz -C /tmp qk2
  echo "== speed from $(elapsed) s"
  speed_pair -1 --batches 4 32 --steps 30
  for f in $P/speed-*-1.log; do echo "$(basename $f): $(grep -E '^b(4|32)-' $f | tr -s ' ' | tr '\n' ';')"; done
  rm -rf $P/speed-*/b*-cold $P/speed-*/b4-warm-cache
  echo "done at $(elapsed) s"; tar czf $OUT/qk2.tar.gz -C /tmp qk2 ;;
qk3|final)  # carry .devbundle-lite, .carry/data and .carry/old
  P=/tmp/$1; mkdir -p $P; old_tree
  configs="16x2 16x2x8 16x2x32"; [ $1 = final ] && configs="16x2"
  setup_trainer
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  python bench/rope_variants.py --out $P/rope --batch 4 32 --variants swap_bthd \
    --triton-configs $configs > $P/rope.log 2>&1; grep variant $P/rope.log | cut -c1-160
  echo "== speed from $(elapsed) s"
  for i in 1 2; do
    speed_pair -$i --batches 4 --steps 60
    for f in $P/speed-*-$i.log; do echo "$(basename $f): $(grep -E '^b4-' $f | tr -s ' ' | tr '\n' ';')"; done
  done
  rm -rf $P/speed-*/b*-cold $P/speed-*/b4-warm-cache; tar czf $OUT/$1.tar.gz -C /tmp $1
  echo "== same answer from $(elapsed) s"
  same_answer; tail -6 $P/same.log
  rm -rf $P/same/fast; tar czf $OUT/$1.tar.gz -C /tmp $1
  speed_pair -b32 --batches 32 --steps 20
  for f in $P/speed-*-b32.log; do echo "$(basename $f): $(grep -E '^b32-' $f | tr -s ' ' | tr '\n' ';')"; done
  rm -rf $P/speed-*/b*-cold $P/speed-*/b4-warm-cache; tar czf $OUT/$1.tar.gz -C /tmp $1
  if [ $(elapsed) -lt ${PROFILE_BEFORE:-500} ]; then
    echo "== kernel table from $(elapsed) s"
    python bench/profile_step.py --batch 4 --out $P/profile > $P/profile.log 2>&1; head -4 $P/profile.log
  fi
  echo "done at $(elapsed) s"; tar czf $OUT/$1.tar.gz -C /tmp $1 ;;
start)  # carry .devbundle-lite, .carry/data and .carry/old
  P=/tmp/start; mkdir -p $P; old_tree
  setup_trainer
  for i in 1 2 3; do speed_pair -$i --batches 4 --steps 20; done
  for f in $P/speed-*.log; do echo "$(basename $f): $(grep -E '^b4-' $f | tr -s ' ' | tr '\n' ';')"; done
  rm -rf $P/speed-*/b*-cold $P/speed-*/b4-warm-cache
  echo "done at $(elapsed) s"; tar czf $OUT/start.tar.gz -C /tmp start ;;
*) echo "usage: $0 qk|qk2|qk3|final|start"; exit 2 ;;
esac
