#!/usr/bin/env bash
# Device calls of Dec 1 (issue 19). Set-up, old-tree, A/B and same-answer steps from bench/gpu_common.sh.
#   bash bench/gpu_dec01.sh gramce   one H200, carry .devbundle-lite, .carry/data (wiki shard 0 + val) and .carry/old
#                                    (`git archive 8d5bc52 trainer chores`, assets left out): Muon's step alone (the
#                                    plain Newton-Schulz against the Gram form for the MLP's matrices,
#                                    bench/muon_step.py); the loss head alone (inductor's compiled formula against the
#                                    Triton cross-entropy kernels, several block x warps configs, bench/loss_variants.py);
#                                    trainer speed at b4 of the working tree and of .carry/old, twice, alternated; the
#                                    working tree's answer; b32 speed of both while the call has time (call 1)
#   bash bench/gpu_dec01.sh final    as gramce after the CE gradient kernel's 2048x4 and the q/k backward's column-major
#                                    partials, against the same .carry/old (8d5bc52, the session's start): the q/k
#                                    path alone (bench/rope_variants.py), trainer speed at b4 twice and b32, the
#                                    answer, the b4 kernel table (call 2)
#   bash bench/gpu_dec01.sh confirm  trainer speed at b4 of the working tree and of .carry/old (8d5bc52), three times,
#                                    alternated, with the GPU's clocks and throttle reasons logged before and after
#                                    (call 2's b4 figures spread 172-234k on one machine) (call 3; call 4 again after
#                                    the forward kernel's 4096x4)
source "$(dirname "$0")/gpu_common.sh"
case "${1:-}" in
gramce)  # carry .devbundle-lite, .carry/data and .carry/old
  P=/tmp/gramce; mkdir -p $P; old_tree
  setup_trainer
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  python bench/muon_step.py --out $P/muon --versions folded trainer > $P/muon.log 2>&1
  grep -E '"version"|gpu_ms' $P/muon.log | tr -s ' ' | paste - - | cut -c1-120
  echo "== loss from $(elapsed) s"
  python bench/loss_variants.py --out $P/loss > $P/loss.log 2>&1; tail -25 $P/loss.log | cut -c1-160
  tar czf $OUT/$1.tar.gz -C /tmp $1
  speed_and_answer
  if [ $(elapsed) -lt ${B32_BEFORE:-450} ]; then
    b32_pair
  fi
  rm -rf $P/speed-*/b*-cold $P/speed-*/b4-warm-cache
  echo "done at $(elapsed) s"; tar czf $OUT/$1.tar.gz -C /tmp $1 ;;
final)  # carry .devbundle-lite, .carry/data and .carry/old
  P=/tmp/final; mkdir -p $P; old_tree
  setup_trainer
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  python bench/rope_variants.py --out $P/rope --batch 4 32 --variants swap_bthd --triton-configs 16x2 \
    > $P/rope.log 2>&1; grep variant $P/rope.log | cut -c1-160
  speed_and_answer
  b32_pair
  rm -rf $P/speed-*/b*-cold $P/speed-*/b4-warm-cache; tar czf $OUT/$1.tar.gz -C /tmp $1
  if [ $(elapsed) -lt ${PROFILE_BEFORE:-480} ]; then
    echo "== kernel table from $(elapsed) s"
    python bench/profile_step.py --batch 4 --out $P/profile > $P/profile.log 2>&1; head -4 $P/profile.log
  fi
  echo "done at $(elapsed) s"; tar czf $OUT/$1.tar.gz -C /tmp $1 ;;
confirm)  # carry .devbundle-lite, .carry/data and .carry/old
  P=/tmp/confirm; mkdir -p $P; old_tree
  setup_trainer
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  nvidia-smi -q -d CLOCK,PERFORMANCE,TEMPERATURE,POWER > $P/smi-before.txt
  b4_pairs 3
  nvidia-smi -q -d CLOCK,PERFORMANCE,TEMPERATURE,POWER > $P/smi-after.txt
  grep -A12 "Clocks Event Reasons" $P/smi-after.txt | grep -v "Not Active" | head -8
  rm -rf $P/speed-*/b*-cold $P/speed-*/b4-warm-cache
  echo "done at $(elapsed) s"; tar czf $OUT/$1.tar.gz -C /tmp $1 ;;
*) echo "usage: $0 gramce|final|confirm"; exit 2 ;;
esac
