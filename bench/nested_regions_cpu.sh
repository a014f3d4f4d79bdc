#!/usr/bin/env bash
# The CPU side of bench/nested_regions.py: the tiny track compiled with 32 layers (4-block regions, as the 151M
# model's), each arm on inductor and token caches of its own: one process on cold caches each, then three rounds
# alternated on the warm ones. Prints each process's start-up, warm-up, cache counters, first losses and final val.
#   bash bench/nested_regions_cpu.sh > bench/results/dec02c/cpu-nested.txt
set -uo pipefail
args=(--track tiny-speedrun --set compile=true --set n_layers=32 --set max_tokens=8192 --quiet)
run() {  # run ARM NAME
  local arm=$1 name=$2 prog=(-m trainer)
  [ $arm = nested ] && prog=(bench/nested_regions.py)
  rm -rf /tmp/nr-out
  TORCHINDUCTOR_CACHE_DIR=/tmp/nr-ind-$arm BLUEBERRY_CACHE=/tmp/nr-bb-$arm python "${prog[@]}" "${args[@]}" \
    --out /tmp/nr-out > /tmp/nr-$name.log 2>&1 || { echo "$name failed"; tail -3 /tmp/nr-$name.log; return; }
  python - /tmp/nr-out/result.json $name <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]}: start-up {r['startup_s']:.2f} s, warm-up {r['startup_phases']['warmup']:.2f} s, "
      f"{r['compile_cache']}, first losses {[round(h['train_loss'], 6) for h in r['history'][:4]]}, "
      f"final val {r['final_val_loss']:.6f}")
PY
}
echo "torch $(python -c 'import torch; print(torch.__version__)'), $(nproc) cores, $(date -u +%FT%TZ)"
rm -rf /tmp/nr-ind-* /tmp/nr-bb-*
for arm in plain nested; do run $arm $arm-cold; done
for i in 1 2 3; do for arm in nested plain; do run $arm $arm-warm-$i; done; done
