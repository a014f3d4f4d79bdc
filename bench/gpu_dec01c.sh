#!/usr/bin/env bash
# Device calls of Dec 1, third session (issue 19). Set-up, old-tree and same-answer steps from bench/gpu_common.sh.
#   bash bench/gpu_dec01c.sh survey   one H200, carry .devbundle-lite, .carry/data (wiki shard 0 + val) and .carry/old
#                                     (`git archive aea989e trainer chores`, assets left out): b4 kernel tables with CUDA
#                                     graphs and where the GPU waits (bench/profile_step.py's gaps) for the working
#                                     tree (new) and .carry/old (old); the b32 kernel table (new); trainer speed of new
#                                     at b4, b64 and b48, and of old at b4 (call 1)
source "$(dirname "$0")/gpu_common.sh"
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
case "${1:-}" in
survey)  # carry .devbundle-lite, .carry/data and .carry/old
  P=/tmp/survey; mkdir -p $P; old_tree
  setup_trainer
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv > $P/gpu.txt
  for arm in new-b4 old-b4 new-b32; do
    echo "== profile $arm from $(elapsed) s"
    case $arm in new*) dir=$REPO ;; *) dir=$OLD ;; esac
    profile_tree $dir $arm ${arm#*-b}
    tar czf $OUT/$1.tar.gz -C /tmp $1
  done
  echo "== speed from $(elapsed) s"
  speed_tree $REPO new --batches 4 64 48 --steps 30
  grep -E '^b[0-9]+-' $P/speed-new.log | tr -s ' ' | sed "s/^/new: /"
  rm -rf $P/speed-*/b*-cold $P/speed-*/b4-warm-cache; tar czf $OUT/$1.tar.gz -C /tmp $1
  if [ $(elapsed) -lt ${OLD_BEFORE:-480} ]; then
    speed_tree $OLD old --batches 4 --steps 60
    grep -E '^b4-' $P/speed-old.log | tr -s ' ' | sed "s/^/old: /"
  fi
  echo "done at $(elapsed) s"; rm -rf $P/speed-*/b*-cold $P/speed-*/b4-warm-cache; tar czf $OUT/$1.tar.gz -C /tmp $1 ;;
*) echo "usage: $0 survey"; exit 2 ;;
esac
