#!/usr/bin/env bash
# Device calls of Nov 30, seventh session (issue 19, then 14).
#   bash bench/gpu_nov30g.sh variants   one H200, nothing carried: bench/block_variants.py at b4 (all variants) and
#                                       b32 (the layouts and FlexAttention)
#   bash bench/gpu_nov30g.sh rope       one H200, nothing carried: bench/rope_variants.py at b4 and b32, and inductor's
#                                       code for the current q/k path at b4
#   bash bench/gpu_nov30g.sh ropeab     one H200, carry .devbundle-lite and .carry/data: trainer speed at b4 with the
#                                       q/k path as it was (BLUEBERRY_ROPE=stack), rotate_pairs in [B, T, H, D]
#                                       (swap_bthd) and in [B, H, T, D] (swap); same answer of swap_bthd; b32 speed
#                                       of stack and swap_bthd (call 3). BLUEBERRY_ROPE was a switch in that call's
#                                       working tree only (1589b6e with `ROPE = os.environ.get("BLUEBERRY_ROPE")`
#                                       choosing the q/k path in Attention.forward; `stack` was its parent's path)
#   bash bench/gpu_nov30g.sh muon       one H200, carry .devbundle-lite, .carry/data and .carry/old (`git archive
#                                       HEAD~ trainer chores`, assets left out): Muon's step alone (bench/muon_step.py),
#                                       trainer speed at b4 of the working tree and of .carry/old, twice, alternated;
#                                       same answer; the b4 kernel table (call 4)
#   bash bench/gpu_nov30g.sh x2         nvidia-h200-x2, carry .devbundle-search (make-bundle.sh --only: Ray, Optuna and
#                                       their dependencies, no datasets), .carry/data and .carry/old: on GPU 1 trainer
#                                       speed at b4 of the working tree and .carry/old, twice, alternated, then the
#                                       working tree's answer; meanwhile on GPU 0 `gpu_nov30d.sh scale12` with
#                                       SCALE_GPUS=1 (a first process, then the default search for SCALE_BUDGET s
#                                       from a copy of its caches); then the same search on both GPUs (call 5)
#   bash bench/gpu_nov30g.sh session    one H200, carry .devbundle-lite, .carry/data and .carry/old (`git archive b201b22
#                                       trainer chores`: the session's start): trainer speed at b4 and b32, the
#                                       working tree then .carry/old (call 6)
source "$(dirname "$0")/gpu_common.sh"
case "${1:-}" in
variants)
  P=$OUT/block_variants; mkdir -p $P
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  python -c "import torch; print('torch', torch.__version__)" | tee $P/torch.txt
  python bench/block_variants.py --out $P/b4 --batch 4 2>&1 | grep -v Warning | tail -20
  echo "b32 from $(elapsed) s"
  python bench/block_variants.py --out $P/b32 --batch 32 --iters 10 --variants now bthd bthd_qkv_gu flex 2>&1 | grep -v Warning | tail -8
  echo "done at $(elapsed) s" ;;
rope)
  P=$OUT/rope; mkdir -p $P
  python bench/rope_variants.py --out $P --batch 4 32 2>&1 | grep variant
  TORCH_LOGS=output_code python - > $P/now-b4-code.txt 2>&1 <<'PY'
import sys; sys.argv = ["x", "--out", "/tmp/rope-code", "--batch", "4"]
sys.path.insert(0, "bench")
import rope_variants as rv
rv.VARIANTS = {"now": rv.now}
rv.main()
PY
  grep -c "def triton" $P/now-b4-code.txt; gzip $P/now-b4-code.txt
  echo "done at $(elapsed) s" ;;
ropeab)  # carry .devbundle-lite and .carry/data
  P=$OUT/ropeab; mkdir -p $P
  setup_trainer
  for r in stack swap_bthd swap; do
    BLUEBERRY_ROPE=$r python bench/trainer_speed.py --out $P/speed-b4-$r --batches 4 --steps 60 > $P/speed-b4-$r.log 2>&1
    echo "$r: $(grep -E '^b4-' $P/speed-b4-$r.log | tr -s ' ' | tr '\n' ';')"
  done
  echo "== same answer (swap_bthd) from $(elapsed) s"
  BLUEBERRY_ROPE=swap_bthd same_answer; tail -6 $P/same.log
  for r in stack swap_bthd; do
    [ $(elapsed) -lt 470 ] || break
    BLUEBERRY_ROPE=$r python bench/trainer_speed.py --out $P/speed-b32-$r --batches 32 --steps 20 > $P/speed-b32-$r.log 2>&1
    echo "$r: $(grep -E '^b32-|^b4-' $P/speed-b32-$r.log | tr -s ' ' | tr '\n' ';')"
  done
  rm -rf $P/*/b*-cold $P/*/b4-warm-cache # run directories: the summaries and logs are kept
  echo "done at $(elapsed) s" ;;
muon)  # carry .devbundle-lite, .carry/data and .carry/old (the trainer at the commit before the change)
  P=/tmp/muon; mkdir -p $P; old_tree
  setup_trainer
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  python bench/muon_step.py --out $P/muon_step > $P/muon_step.log 2>&1; grep -E '"version"|gpu_ms|max_abs' $P/muon_step.log
  for i in 1 2; do
    speed_pair -$i --batches 4 --steps 60
    echo "new-$i: $(grep -E '^b4-' $P/speed-new-$i.log | tr -s ' ' | tr '\n' ';')"
    echo "old-$i: $(grep -E '^b4-' $P/speed-old-$i.log | tr -s ' ' | tr '\n' ';')"
  done
  rm -rf $P/speed-*/b4-cold $P/speed-*/b4-warm-cache; tar czf $OUT/muon.tar.gz -C /tmp muon
  echo "== same answer from $(elapsed) s"
  same_answer; tail -6 $P/same.log
  rm -rf $P/same/fast; tar czf $OUT/muon.tar.gz -C /tmp muon
  if [ $(elapsed) -lt 480 ]; then
    echo "== kernel table from $(elapsed) s"
    python bench/profile_step.py --batch 4 --out $P/profile > $P/profile.log 2>&1; head -4 $P/profile.log
  fi
  echo "done at $(elapsed) s"; tar czf $OUT/muon.tar.gz -C /tmp muon ;;
x2)  # nvidia-h200-x2; carry .devbundle-search, .carry/data and .carry/old (the commit before the change)
  P=/tmp/x2; mkdir -p $P; old_tree
  setup_trainer .devbundle-search
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  (  # GPU 1: trainer speed at b4, the working tree against .carry/old, alternated; then the working tree's answer
    export CUDA_VISIBLE_DEVICES=1 TORCHINDUCTOR_CACHE_DIR=/tmp/ab/inductor TRITON_CACHE_DIR=/tmp/ab/triton
    for i in 1 2; do speed_pair -$i --batches 4 --steps 60; done
    same_answer
  ) &
  ab=$!
  BUNDLE=.devbundle-search SCALE_BUDGET=${SCALE_BUDGET:-150} SCALE_GPUS=1 bash bench/gpu_nov30d.sh scale12
  wait $ab
  for f in $P/speed-*.log; do echo "$(basename $f): $(grep -E '^b4-' $f | tr -s ' ' | tr '\n' ';')"; done
  tail -5 $P/same.log
  rm -rf $P/speed-*/b4-cold $P/speed-*/b4-warm-cache $P/same/fast; tar czf $OUT/x2.tar.gz -C /tmp x2
  BUNDLE=.devbundle-search SCALE_BUDGET=${SCALE_BUDGET:-150} SCALE_GPUS=2 bash bench/gpu_nov30d.sh scale12
  echo "done at $(elapsed) s" ;;
session)  # one H200; carry .devbundle-lite, .carry/data and .carry/old (the trainer at the session's start, b201b22)
  P=/tmp/session; mkdir -p $P; old_tree
  setup_trainer
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  speed_pair "" --batches 4 32 --steps 40
  for f in $P/speed-*.log; do echo "$(basename $f): $(grep -E '^b(4|32)-' $f | tr -s ' ' | tr '\n' ';')"; done
  rm -rf $P/speed-*/b*-cold $P/speed-*/b4-warm-cache
  echo "done at $(elapsed) s"; tar czf $OUT/session.tar.gz -C /tmp session ;;
*) echo "usage: $0 variants|rope|ropeab|muon|x2|session"; exit 2 ;;
esac
