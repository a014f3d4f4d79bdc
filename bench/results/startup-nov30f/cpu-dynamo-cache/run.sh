#!/usr/bin/env bash
# CPU (2 cores, torch 2.13), sixth session: the tiny model compiled without and with dynamo's cache of traced
# frames (TORCH_CACHING_PRECOMPILE), each in a first process (compiles, saves the portable artifacts) and a second
# one (loads them): the second's warm-up and losses; then retrace.py. Output: output.txt.  Run from the repository root.
set -euo pipefail
d=$(dirname "$0"); w=$(mktemp -d)
for env in 0 1; do
  echo "== TORCH_CACHING_PRECOMPILE=$env"
  for mode in save load; do
    TORCH_CACHING_PRECOMPILE=$env TORCHINDUCTOR_CACHE_DIR=$w/ind$env ARTIFACTS=$w/art$env.bin \
      python "$d/exp.py" $mode 2>/dev/null | cut -c1-240
  done
done
echo "== a guard miss after loading (retrace.py)"
for mode in save load; do
  TORCH_CACHING_PRECOMPILE=1 TORCHINDUCTOR_CACHE_DIR=$w/indr ARTIFACTS=$w/r.bin python "$d/retrace.py" $mode 2>/dev/null
done
rm -rf "$w"
