#!/usr/bin/env bash
# Device calls of Dec 2, eleventh session (issue 19: bench/fp8_mlp.py's kernel against Triton's FP8 transposed-store
# miscompile, triton-lang/triton#11111; then the MLP in the trainer). Set-up steps from bench/gpu_common.sh,
# bench/gpu_dec01i.sh's fp8_run_as, big_run and big_compare, and bench/gpu_dec01j.sh's b64 and b64_pair (sourced).
#   bash bench/gpu_dec02a.sh tune    one H200; carry .devbundle-lite and .carry/data: bench/fp8_mlp_tune.py (tiles x
#                                    clamps x packed stores, each checked on two inputs); with its best choice, the
#                                    trainer at b64 with the kernel checked against its formula on every call (no
#                                    CUDA graphs, 6 steps), the same with the tenth session's choice; then b64 speed,
#                                    bench/fp8_run.py mlp against runtime.fp8 alone (now fp8-linears), alternated,
#                                    twice while time is left (call 1, at 6f5e01a)
#   bash bench/gpu_dec02a.sh diag    one H200; carry .devbundle-lite and .carry/data: at b64 with CUDA graphs for 6
#                                    steps, call 1's best kernel checked against its formula inside the graphs
#                                    (BLUEBERRY_MLP_CHECK), the op as its PyTorch formula (BLUEBERRY_MLP_FORMULA), the
#                                    packed kernel checked; then b64 without CUDA graphs, the MLP and runtime.fp8
#                                    (call 2, at 6687ac9)
#   bash bench/gpu_dec02a.sh diag2   one H200; carry .devbundle-lite and .carry/data: at b64, call 1's best kernel
#                                    with CUDA graphs, checked outside capture, each launch context printed (thread,
#                                    streams); without CUDA graphs, the device synchronised around the kernel
#                                    (BLUEBERRY_MLP_SYNC); the op as a triton_op (BLUEBERRY_MLP_TRACED) with CUDA
#                                    graphs, 25 steps, twice, and runtime.fp8 alone, while time is left (call 3, at
#                                    06967b5)
#   Calls 1-3 ran the MLP from bench/fp8_mlp.py (its arm "mlp" of bench/fp8_run.py then); it is in the trainer now
#   (runtime.fp8), and bench/fp8_run.py's mlp-custom-op arm runs the launch that failed.
#   bash bench/gpu_dec02a.sh part1   one H200; carry .fa4bundle/part-aa: kept in /tmp/fa4parts for the next call
#   bash bench/gpu_dec02a.sh final   the machine of part1, within 30 s; carry .fa4bundle/part-ab, .devbundle-lite,
#                                    .carry/data and .carry/old (`git archive 288944e trainer chores`, the session's
#                                    start, trainer/assets removed): b64 with fp8=true and attention=fa4, the
#                                    working tree then 288944e (20 steps); b96 with both, the working tree; b64 to
#                                    12,189,696 tokens with fp8=true against the ninth session's bf16 run; b128 with
#                                    both, the working tree, and the default path at b4, the working tree then
#                                    288944e, while time is left (call 6, at cafad89)
#   What call 6 had no time for (the default path at b4 against 288944e, its answer, the answer with fp8=true) ran in
#   the next session as `bash bench/gpu_dec02b.sh verify`.
source "$(dirname "$0")/gpu_common.sh"
for f in fp8_run_as big_run big_compare; do eval "$(sed -n "/^$f()/,/^}/p" "$(dirname "$0")/gpu_dec01i.sh")"; done
for f in b64 b64_pair; do eval "$(sed -n "/^$f()/,/^}/p" "$(dirname "$0")/gpu_dec01j.sh")"; done
checked() {  # checked NAME TILE: bench/fp8_run.py mlp-custom-op at b64 for 6 steps without CUDA graphs, TILE's
  # kernel checked against its formula on every call (BLUEBERRY_MLP_CHECK), the check's lines counted
  local name=$1
  BLUEBERRY_MLP_TILE=$2 BLUEBERRY_MLP_CHECK=1 LIMIT=120 fp8_run_as $name mlp-custom-op --set micro_batch_size=64 \
    --set max_tokens=786432 --set cudagraphs=false
  grep -h "^fp8_mlp check" $P/$name.log | sed 's/M [0-9]*, //' | sort | uniq -c | head -6
}
g6() {  # g6 NAME ARM [SETTINGS...]: fp8_run_as at b64 for 6 steps with CUDA graphs, the lines of fp8_mlp's check
  # printed
  local name=$1 arm=$2; shift 2
  LIMIT=120 fp8_run_as $name $arm --set micro_batch_size=64 --set max_tokens=786432 "$@"
  grep -h "^fp8_mlp check\|diverged" $P/$name.log | head -8
}
case "${1:-}" in
tune)  # carry .devbundle-lite and .carry/data
  begin tune
  echo "== bench/fp8_mlp_tune.py from $(elapsed) s"
  timeout 240 python bench/fp8_mlp_tune.py --out $P/tune > $P/tune.log 2>&1; echo "exit $?"
  python - $P/tune/tune.json <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
for r in t["kernels"]:
    bad = r.get("error") or (r["not_finite"] or not r["transposes_equal"] or r["share_unequal"] >= 0.01)
    print(f"  {'BAD ' if bad else 'ok  '}{ {k: r.get(k) for k in ('bm', 'bh', 'warps', 'clamp', 'pack', 'us', 'not_finite', 'share_unequal')} }")
print("  mlp", t["mlp_tile"], t["mlp"][1:])
PY
  grep -E "^best|^tile in use|Error" $P/tune.log | head -4
  tar czf $OUT/tune.tar.gz -C /tmp tune
  [ -f $P/tune/best.json ] || { echo "no tile passed"; exit 0; }
  checked b64-check-best "$(cat $P/tune/best.json)"
  checked b64-check-dec01j '{"bm": 64, "bh": 128, "warps": 8, "clamp": "minmax", "pack": false}'
  export BLUEBERRY_MLP_TILE=$(cat $P/tune/best.json)
  for i in 1 2; do
    [ $(elapsed) -lt 420 ] || break
    b64 b64-mlp-$i mlp-custom-op
    b64 b64-fp8-$i fp8-linears
  done
  ;;
diag)  # carry .devbundle-lite and .carry/data
  begin diag
  export BLUEBERRY_MLP_TILE='{"bm": 32, "bh": 128, "warps": 8, "clamp": "none", "pack": false}'  # call 1's best
  BLUEBERRY_MLP_CHECK=1 g6 g-check-best mlp-custom-op
  BLUEBERRY_MLP_FORMULA=1 g6 g-formula mlp-custom-op
  BLUEBERRY_MLP_CHECK=1 BLUEBERRY_MLP_TILE='{"bm": 32, "bh": 128, "warps": 8, "clamp": "none", "pack": true}' \
    g6 g-check-pack mlp-custom-op
  b64 b64-nographs-mlp mlp-custom-op --set cudagraphs=false
  b64 b64-nographs-fp8 fp8-linears --set cudagraphs=false
  ;;
diag2)  # carry .devbundle-lite and .carry/data
  begin diag2
  export BLUEBERRY_MLP_TILE='{"bm": 32, "bh": 128, "warps": 8, "clamp": "none", "pack": false}'  # call 1's best
  BLUEBERRY_MLP_CHECK=1 g6 g-check-streams mlp-custom-op
  BLUEBERRY_MLP_SYNC=1 g6 nographs-sync mlp-custom-op --set cudagraphs=false
  b64 b64-traced off --set fp8=true  # the trainer's own op now (BLUEBERRY_MLP_TRACED in call 3)
  grep -h "^fp8_mlp\|diverged\|Error" $P/b64-traced.log | head -4
  if [ $(elapsed) -lt 330 ]; then
    b64 b64-traced-2 off --set fp8=true
    b64 b64-fp8 fp8-linears
  fi
  ;;
part1)  # carry .fa4bundle/part-aa
  fa4_part1 ;;
final)  # carry .fa4bundle/part-ab, .devbundle-lite, .carry/data and .carry/old; the machine of part1
  begin final old
  fa4_unpack
  b64_pair fa4-fp8 --set fp8=true --set attention=fa4
  LIMIT=100 BATCH=96 batch_arm new-fa4-fp8-b96 --set fp8=true --set attention=fa4
  big_run fp8 $(( $(elapsed) + 100 )) --set fp8=true
  big_compare $P/big-fp8/result.json bench/results/dec01i/call2-fp8/big-bf16/result.json
  if [ $(elapsed) -lt 330 ]; then
    LIMIT=100 BATCH=128 batch_arm new-fa4-fp8-b128 --set fp8=true --set attention=fa4
  fi
  if [ $(elapsed) -lt 360 ]; then
    b4_pairs 1; save_pruned
  fi
  echo "done at $(elapsed) s" ;;
*) echo "usage: bash bench/gpu_dec02a.sh tune | diag | diag2 | part1 | final"; exit 2 ;;
esac
