#!/usr/bin/env bash
# Device calls of Dec 1, tenth session (issue 19: the SwiGLU MLP as one FP8 function, bench/fp8_swiglu.py). Set-up
# steps from bench/gpu_common.sh and bench/gpu_dec01i.sh's fp8_run_as (sourced).
#   bash bench/gpu_dec01j.sh swiglu  one H200; carry .devbundle-lite and .carry/data: at b64, 3,276,800 tokens each,
#                                    runtime.fp8 (bench/fp8_run.py off --set fp8=true) and the swiglu arm alternated,
#                                    then the b64 kernel table of the swiglu arm, then a second pair while time is left
#                                    (call 1, at 028d45a: the swiglu arm diverged at step 2, NaN)
#   bash bench/gpu_dec01j.sh tune    one H200; carry .devbundle-lite and .carry/data: bench/fp8_swiglu_tune.py (the
#                                    kernel's tiles timed and checked, the MLP eager and compiled against bf16); with
#                                    the best tile, the swiglu arm and runtime.fp8 at b64 alternated (call 2)
source "$(dirname "$0")/gpu_common.sh"
eval "$(sed -n '/^fp8_run_as()/,/^}/p' "$(dirname "$0")/gpu_dec01i.sh")"
b64() {  # b64 NAME ARM [SETTINGS...]: fp8_run_as at b64 for 3,276,800 tokens (25 steps)
  local name=$1 arm=$2; shift 2
  fp8_run_as $name $arm --set micro_batch_size=64 --set max_tokens=3276800 "$@"
}
table() {  # table NAME ARGS...: bench/profile_step.py at b64 with CUDA graphs and ARGS into $P/profile-NAME, its
  # kernel kinds printed
  local name=$1; shift
  echo "== b64 table, $name, from $(elapsed) s"
  timeout 100 python bench/profile_step.py --batch 64 --cudagraphs --out $P/profile-$name "$@" \
    > $P/profile-$name.log 2>&1; echo "exit $?"
  python -c "import json, sys; s = json.load(open(sys.argv[1])); print(' ', s['gpu_ms_per_step_by_kind'])" \
    $P/profile-$name/phases-b64.json
  tar czf $OUT/$(basename $P).tar.gz --exclude='*.pt' -C /tmp $(basename $P)
}
case "${1:-}" in
swiglu)  # carry .devbundle-lite and .carry/data
  begin swiglu
  b64 b64-fp8 off --set fp8=true
  b64 b64-swiglu swiglu
  table swiglu --fp8 --swiglu
  if [ $(elapsed) -lt 400 ]; then
    b64 b64-fp8-2 off --set fp8=true
    b64 b64-swiglu-2 swiglu
  fi
  echo "done at $(elapsed) s" ;;
tune)  # carry .devbundle-lite and .carry/data
  begin tune
  echo "== bench/fp8_swiglu_tune.py from $(elapsed) s"
  (cd bench && timeout 200 python fp8_swiglu_tune.py --out $P/tune > $P/tune.log 2>&1); echo "exit $?"
  grep -v Warning $P/tune.log | grep -E "^\{'mlp|inductor|best|Error" | head -8
  tar czf $OUT/tune.tar.gz -C /tmp tune
  [ -f $P/tune/best.json ] || { echo "no tile passed"; exit 0; }
  export BLUEBERRY_SWIGLU_TILE=$(cat $P/tune/best.json)
  b64 b64-swiglu swiglu
  b64 b64-fp8 off --set fp8=true
  if [ $(elapsed) -lt 420 ]; then
    b64 b64-swiglu-2 swiglu
    b64 b64-fp8-2 off --set fp8=true
  fi
  echo "done at $(elapsed) s" ;;
*) echo "usage: $0 swiglu|tune"; exit 2 ;;
esac
