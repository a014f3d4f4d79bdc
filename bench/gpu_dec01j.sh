#!/usr/bin/env bash
# Device calls of Dec 1, tenth session (issue 19: the SwiGLU MLP as one FP8 function). Set-up steps from
# bench/gpu_common.sh and bench/gpu_dec01i.sh's fp8_run_as, big_run and big_compare (sourced). A record of what ran:
# - swiglu and tune ran bench/fp8_swiglu.py, bench/fp8_swiglu_tune.py and profile_step.py --swiglu, all gone since;
#   they run only in the tree of their commits;
# - calls 3, 5 and 7 ran with the one-function MLP in the trainer (trainer.fp8.mlp, trainer.kernels.MLP_TILE). It
#   went back to the bench after this session, and came back into the trainer's runtime.fp8 on Dec 2 as a
#   triton_op (bench/gpu_dec02a.sh): run again, mlp and final measure that, with MLP_TILE's Dec 2 value; final2
#   runs only at its commit (its sed writes the tune's best.json, JSON now with true/false, into trainer/kernels.py).
#   bash bench/gpu_dec01j.sh swiglu  one H200; carry .devbundle-lite and .carry/data: at b64, 3,276,800 tokens each,
#                                    runtime.fp8 (bench/fp8_run.py off --set fp8=true) and the swiglu arm alternated,
#                                    then the b64 kernel table of the swiglu arm, then a second pair while time is left
#                                    (call 1, at 028d45a: the swiglu arm diverged at step 2, NaN)
#   bash bench/gpu_dec01j.sh tune    one H200; carry .devbundle-lite and .carry/data: bench/fp8_swiglu_tune.py (the
#                                    kernel's tiles timed and checked, the MLP eager and compiled against bf16); with
#                                    the best tile, the swiglu arm and runtime.fp8 at b64 alternated (call 2, at
#                                    8c108c7: no tile passed, as the MLP check gave NaN with the default tile)
#   bash bench/gpu_dec01j.sh mlp     one H200; carry .devbundle-lite, .carry/data and .carry/old (`git archive 9aa9e68
#                                    trainer chores`, the session's start): runtime.fp8's MLP as one function
#                                    (trainer.fp8.mlp): bench/fp8_mlp_tune.py; b64 with fp8=true, the working tree then
#                                    9aa9e68 (batch speed, 20 steps); b64 to 12,189,696 tokens with fp8=true against
#                                    the ninth session's bf16 run (call 2 there); the default path at b4, the working
#                                    tree then 9aa9e68, while time is left (call 3, at 633545e: the kernel's tile in
#                                    use transposed wrong in FP8, so the working tree's b64 run diverged)
#   bash bench/gpu_dec01j.sh part1   one H200; carry .fa4bundle/part-aa: kept in /tmp/fa4parts for the next call
#                                    (call 4)
#   bash bench/gpu_dec01j.sh final   the machine of part1, within 30 s; carry .fa4bundle/part-ab, .devbundle-lite,
#                                    .carry/data and .carry/old (9aa9e68): the MLP check and the tile in use
#                                    (bench/fp8_mlp_tune.py --in-use-only); b64 with fp8=true and attention=fa4, the
#                                    working tree then 9aa9e68; b96 with both, the working tree; b64 to 12,189,696
#                                    tokens with fp8=true against the ninth session's bf16 run; the record's 6,086,656
#                                    tokens at b4 with fp8=true against the saved reference; b128 while time is left
#                                    (call 5, at bc99ad9: the tile in use transposed wrong in fp32 this time, so every
#                                    run of the working tree diverged; speed_tree did not yet put FA4 on the path)
#   bash bench/gpu_dec01j.sh final2  as final (call 6 part1, call 7 this), the kernel without tl.trans: the tune's 8
#                                    tiles; the fastest correct one written into this copy's trainer/kernels.py
#                                    (MLP_TILE, printed; committed after) or nothing more runs; b64 with fp8=true and
#                                    attention=fa4, the working tree then 9aa9e68; b64 to 12,189,696 tokens with
#                                    fp8=true against the ninth session's bf16 run; b96 with fp8=true and
#                                    attention=fa4, the working tree, while time is left (call 7, within 410 s: the
#                                    session's device time)
source "$(dirname "$0")/gpu_common.sh"
for f in fp8_run_as big_run big_compare; do eval "$(sed -n "/^$f()/,/^}/p" "$(dirname "$0")/gpu_dec01i.sh")"; done
b64() {  # b64 NAME ARM [SETTINGS...]: fp8_run_as at b64 for 3,276,800 tokens (25 steps)
  local name=$1 arm=$2; shift 2
  fp8_run_as $name $arm --set micro_batch_size=64 --set max_tokens=3276800 "$@"
}
b64_pair() {  # b64_pair NAME SETTINGS...: bench/trainer_speed.py at b64 (20 steps) with SETTINGS, the working tree then
  # $OLD, into $P/speed-new-NAME-b64 and $P/speed-old-NAME-b64; each one's exit status and row printed, then save_pruned
  local name=$1 tree dir; shift
  for tree in new old; do
    dir=$REPO; [ $tree = old ] && dir=$OLD
    echo "== b64 $*, $tree, from $(elapsed) s"
    speed_tree $dir $tree-$name-b64 --batches 64 --steps 20 --no-warm-run "$@"; echo "exit $?"
    grep -hE "^b64-" $P/speed-$tree-$name-b64.log | tr -s ' ' | sed "s/^/$tree: /"
    save_pruned
  done
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
mlp)  # carry .devbundle-lite, .carry/data and .carry/old
  begin mlp old
  echo "== bench/fp8_mlp_tune.py from $(elapsed) s"
  timeout 150 python bench/fp8_mlp_tune.py --out $P/tune > $P/tune.log 2>&1; echo "exit $?"
  grep -v Warning $P/tune.log | grep -E "^\{'mlp|inductor|best|in use|Error" | head -8
  tar czf $OUT/mlp.tar.gz -C /tmp mlp
  b64_pair fp8 --set fp8=true
  big_run fp8 $(( $(elapsed) + 130 )) --set fp8=true
  big_compare $P/big-fp8/result.json bench/results/dec01i/call2-fp8/big-bf16/result.json
  if [ $(elapsed) -lt 440 ]; then
    echo "== the default path at b4 from $(elapsed) s"
    b4_arm $REPO new-b4 40
    b4_arm $OLD old-b4 40
  fi
  echo "done at $(elapsed) s" ;;
part1)  # carry .fa4bundle/part-aa
  fa4_part1
  echo "done at $(elapsed) s" ;;
final)  # carry .fa4bundle/part-ab, .devbundle-lite, .carry/data and .carry/old; the machine of part1
  begin final old
  fa4_unpack
  echo "== bench/fp8_mlp_tune.py --in-use-only from $(elapsed) s"
  timeout 100 python bench/fp8_mlp_tune.py --in-use-only --out $P/tune > $P/tune.log 2>&1; echo "exit $?"
  grep -v Warning $P/tune.log | grep -E "^\{'mlp|inductor|in use|Error" | head -6
  b64_pair fa4-fp8 --set fp8=true --set attention=fa4
  LIMIT=130 BATCH=96 batch_arm new-fa4-fp8-b96 --set fp8=true --set attention=fa4
  big_run fp8 $(( $(elapsed) + 120 )) --set fp8=true
  big_compare $P/big-fp8/result.json bench/results/dec01i/call2-fp8/big-bf16/result.json
  fp8_answer 100
  if [ $(elapsed) -lt 470 ]; then
    LIMIT=$(( 585 - $(elapsed) )) BATCH=128 batch_arm new-fa4-fp8-b128 --set fp8=true --set attention=fa4
  fi
  echo "done at $(elapsed) s" ;;
final2)  # carry .fa4bundle/part-ab, .devbundle-lite, .carry/data and .carry/old; the machine of part1
  begin final2 old
  fa4_unpack
  echo "== bench/fp8_mlp_tune.py from $(elapsed) s"
  timeout 100 python bench/fp8_mlp_tune.py --out $P/tune > $P/tune.log 2>&1; echo "exit $?"
  grep -v Warning $P/tune.log | grep -E "^\{'mlp|inductor|best|in use|Error" | head -8
  tar czf $OUT/final2.tar.gz -C /tmp final2
  [ -f $P/tune/best.json ] || { echo "no tile passed"; exit 0; }
  sed -i "s/^MLP_TILE = .*/MLP_TILE = $(cat $P/tune/best.json)/" trainer/kernels.py
  grep -n "^MLP_TILE" trainer/kernels.py
  b64_pair fa4-fp8 --set fp8=true --set attention=fa4
  big_run fp8 $(( $(elapsed) + 110 )) --set fp8=true
  big_compare $P/big-fp8/result.json bench/results/dec01i/call2-fp8/big-bf16/result.json
  if [ $(elapsed) -lt 320 ]; then
    LIMIT=$(( 405 - $(elapsed) )) BATCH=96 batch_arm new-fa4-fp8-b96 --set fp8=true --set attention=fa4
  fi
  echo "done at $(elapsed) s" ;;
*) echo "usage: $0 swiglu|tune|mlp|part1|final|final2"; exit 2 ;;
esac
