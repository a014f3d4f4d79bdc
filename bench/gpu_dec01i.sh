#!/usr/bin/env bash
# Device calls of Dec 1, ninth session (issue 19: FP8 with fixed scales, so that inductor can fuse each cast into the
# kernel that makes the tensor). Set-up steps from bench/gpu_common.sh.
#   bash bench/gpu_dec01i.sh fixed   one H200; carry .devbundle-lite and .carry/data: the trainer compiled at b64 for
#                                    25 steps in bf16, with the blocks' matmuls in FP8 at fixed scales, and with the
#                                    chunked loss's matmuls too (bench/fp8_run.py off, fixed, fixed-head); then at b4
#                                    for 60 steps in bf16 and with fixed (the b4 loss is not chunked), each within
#                                    LIMIT s (150) (call 1)
#   bash bench/gpu_dec01i.sh fp8     one H200; carry .devbundle-lite and .carry/data: runtime.fp8 in the trainer. b64
#                                    and b32 speed in bf16 then with fp8=true (batch_arm, 20 steps); the record's
#                                    6,086,656 tokens at b4 with fp8=true against the saved reference run; then b64
#                                    to 12,189,696 tokens, seed 0, in bf16 and with fp8=true, their losses compared
#                                    as bench/same_answer.py compares (big_answer) (call 2)
#   bash bench/gpu_dec01i.sh part1   one H200; carry .fa4bundle/part-aa: the part kept in /tmp/fa4parts for the next
#                                    call, as bench/gpu_dec01h.sh part1 (call 3)
#   bash bench/gpu_dec01i.sh final   the machine of part1, within 30 s; carry .fa4bundle/part-ab, .devbundle-lite and
#                                    .carry/data: b64 with fp8=true and attention=fa4; the b64 kernel table with
#                                    fp8=true; b96 with fp8=true and attention=fa4, while time is left (call 4)
#   bash bench/gpu_dec01i.sh final2  the machine of part1, within 30 s; carry .fa4bundle/part-ab, .devbundle-lite and
#                                    .carry/data: with the loss kernel writing the head's gradient in e5m2: b64 and b96
#                                    with fp8=true and attention=fa4, b64 with fp8=true; b64 to 12,189,696 tokens with
#                                    fp8=true against call 2's bf16 run (big_run, big_compare); the b64 kernel table
#                                    with fp8=true and attention=fa4 while time is left (call 7, after part1 as call 6)
#   bash bench/gpu_dec01i.sh verify  one H200; carry .devbundle-lite, .carry/data and .carry/old (`git archive 5fd7861
#                                    trainer chores`, the session's start): b4 speed of the working tree and 5fd7861
#                                    alternated twice and the working tree's answer (speed_and_answer) (call 5, at
#                                    b488aab)
source "$(dirname "$0")/gpu_common.sh"
fp8_run_as() {  # fp8_run_as NAME ARM SETTINGS...: bench/fp8_run.py ARM on the record's track with SETTINGS into
  # $P/NAME within LIMIT s (150); its exit status and bench/dec01i_summary.py's line for it (speed from step 5 on
  # and over the whole clock, memory, the last train loss) printed, then $OUT/<name of $P>.tar.gz rewritten. (Call 1,
  # at 153c6c5, printed its own such line, with the warm-up too.)
  local name=$1 arm=$2; shift 2
  echo "== $name (bench/fp8_run.py $arm) from $(elapsed) s"
  timeout ${LIMIT:-150} python bench/fp8_run.py $arm --quiet --track speedrun-4.5 --out $P/$name "$@" \
    --set stop_rule=never --set eval_every_tokens=1000000000 > $P/$name.log 2>&1
  echo "exit $?"
  python -c "import sys; sys.path.insert(0, 'bench'); from pathlib import Path; from dec01i_summary import run_line
print('  ' + run_line(Path(sys.argv[1])))" $P/$name/result.json || echo "  no result"
  tar czf $OUT/$(basename $P).tar.gz --exclude='*.pt' -C /tmp $(basename $P)
}
big_run() {  # big_run ARM END [SETTINGS...]: b64 to 12,189,696 tokens, seed 0, with SETTINGS into $P/big-ARM (its
  # result.json kept), ending by END s of the call
  local arm=$1 end=$2; shift 2
  echo "== b64 answer, $arm, from $(elapsed) s"
  timeout $(( end - $(elapsed) )) python -m trainer --quiet --track speedrun-4.5 --out $P/big-$arm "$@" \
    --set micro_batch_size=64 --set max_tokens=12189696 --set stop_rule=never --set seed=0 > $P/big-$arm.log 2>&1
  echo "exit $?"
  find $P/big-$arm -type f ! -name result.json -delete 2>/dev/null
}
big_compare() {  # big_compare FP8_RESULT BF16_RESULT: their step losses compared at 3M, 6M and 12M tokens as
  # bench/same_answer.py compares, and their final val losses, printed; then $OUT/<name of $P>.tar.gz rewritten
  python - "$@" <<'PY'
import json, sys
sys.path.insert(0, "bench")
from same_answer import compare
try:
    fp8, bf16 = (json.load(open(path)) for path in sys.argv[1:3])
except OSError as e:
    sys.exit(f"  no result: {e}")
s = compare(fp8["history"], bf16["history"], [3_000_000, 6_000_000, 12_000_000], 10, 0.05)
for m in s["marks"]:
    print(" ", m)
print(f"  pass {s['pass']}; val {fp8['final_val_loss']:.4f} (fp8) against {bf16['final_val_loss']:.4f} (bf16); "
      f"tokens/s {fp8['tokens_per_s']:,.0f} against {bf16['tokens_per_s']:,.0f}")
PY
  tar czf $OUT/$(basename $P).tar.gz -C /tmp $(basename $P)
}
big_answer() {  # big_answer END: big_run in bf16 then with fp8=true, then big_compare
  big_run bf16 $1
  big_run fp8 $1 --set fp8=true
  big_compare $P/big-fp8/result.json $P/big-bf16/result.json
}
case "${1:-}" in
fixed)  # carry .devbundle-lite and .carry/data
  begin fixed
  for arm in off fixed fixed-head; do
    fp8_run_as b64-$arm $arm --set micro_batch_size=64 --set max_tokens=3276800
  done
  for arm in off fixed; do
    fp8_run_as b4-$arm $arm --set micro_batch_size=4 --set max_tokens=491520
  done
  echo "done at $(elapsed) s" ;;
fp8)  # carry .devbundle-lite and .carry/data
  begin fp8
  for b in 64 32; do
    LIMIT=150 BATCH=$b batch_arm bf16-b$b
    LIMIT=150 BATCH=$b batch_arm fp8-b$b --set fp8=true
  done
  fp8_answer 150
  big_answer 585
  echo "done at $(elapsed) s" ;;
part1)  # carry .fa4bundle/part-aa
  fa4_part1
  echo "done at $(elapsed) s" ;;
final)  # carry .fa4bundle/part-ab, .devbundle-lite, .carry/data and .carry/old; the machine of part1
  begin final
  fa4_unpack
  LIMIT=150 BATCH=64 batch_arm fa4-fp8-b64 --set fp8=true --set attention=fa4
  if [ $(elapsed) -lt 440 ]; then
    echo "== b64 table with fp8=true from $(elapsed) s"
    timeout 100 python bench/profile_step.py --batch 64 --cudagraphs --fp8 --out $P/profile-fp8-b64 \
      > $P/profile-fp8-b64.log 2>&1; echo "exit $?"
    python -c "import json, sys; s = json.load(open(sys.argv[1])); print(' ', s['gpu_ms_per_step_by_kind'])" \
      $P/profile-fp8-b64/phases-b64.json
    tar czf $OUT/final.tar.gz -C /tmp final
  fi
  if [ $(elapsed) -lt 480 ]; then
    LIMIT=$(( 585 - $(elapsed) )) BATCH=96 batch_arm fa4-fp8-b96 --set fp8=true --set attention=fa4
  fi
  echo "done at $(elapsed) s" ;;
final2)  # carry .fa4bundle/part-ab, .devbundle-lite and .carry/data; the machine of part1
  begin final2
  fa4_unpack
  LIMIT=150 BATCH=64 batch_arm fa4-fp8-b64 --set fp8=true --set attention=fa4
  LIMIT=150 BATCH=96 batch_arm fa4-fp8-b96 --set fp8=true --set attention=fa4
  LIMIT=120 BATCH=64 batch_arm fp8-b64 --set fp8=true
  big_run fp8 $(( $(elapsed) + 120 )) --set fp8=true
  big_compare $P/big-fp8/result.json bench/results/dec01i/call2-fp8/big-bf16/result.json
  if [ $(elapsed) -lt 320 ]; then
    echo "== b64 table with fp8=true and attention=fa4 from $(elapsed) s"
    timeout 100 python bench/profile_step.py --batch 64 --cudagraphs --fp8 --attention fa4 \
      --out $P/profile-fa4-fp8-b64 > $P/profile-fa4-fp8-b64.log 2>&1; echo "exit $?"
    python -c "import json, sys; s = json.load(open(sys.argv[1])); print(' ', s['gpu_ms_per_step_by_kind'])" \
      $P/profile-fa4-fp8-b64/phases-b64.json
    tar czf $OUT/final2.tar.gz -C /tmp final2
  fi
  echo "done at $(elapsed) s" ;;
verify)  # carry .devbundle-lite, .carry/data and .carry/old
  begin verify old
  speed_and_answer
  echo "done at $(elapsed) s" ;;
*) echo "usage: $0 fixed|fp8|part1|final|final2|verify"; exit 2 ;;
esac
