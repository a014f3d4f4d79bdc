#!/usr/bin/env bash
# Device calls of Dec 1, sixth session (issues 19 and 14). Set-up steps from bench/gpu_common.sh.
#   bash bench/gpu_dec01f.sh verify   one H200; carry .devbundle-lite, .carry/data and .carry/old (`git archive
#                                     ab37952 trainer chores`: the trainer before Shape.optimizers): bench/fp8_gemm.py
#                                     at b32 and b64 (the step's matmuls in bf16 and in FP8, and the casts FP8 adds),
#                                     then b4 speed of the working tree and ab37952 alternated twice and the working
#                                     tree's answer (speed_and_answer), then the b32 kernel table of the working
#                                     tree's step (bench/profile_step.py, which now builds its optimizers with
#                                     Shape.optimizers) if there is time (call 1)
#   bash bench/gpu_dec01f.sh fp8      one H200; carry .devbundle-lite and .carry/data: bench/fp8_gemm.py at b32 and
#                                     b64 with every time taken from CUDA-graph replays (call 1's casts had timed the
#                                     host's calls), then trainer speed at b64 (20 steps, cold) and the b64 kernel
#                                     table, so that the step FP8 would shorten is measured on the same machine
#                                     (call 2)
#   bash bench/gpu_dec01f.sh final    one H200; carry .devbundle-search and .carry/data-small: the final trainer on the
#                                     path a search runs it, a reused worker: bench/warm_workers.py same-answer, then
#                                     the default search for BUDGET s (150) (call 3)
#   bash bench/gpu_dec01f.sh fp8answer  one H200; carry .devbundle-lite and .carry/data: the record's 6,086,656
#                                     tokens eager (compile=false) in bf16, then with the blocks' matmuls in FP8
#                                     (bench/fp8_run.py off, on), each within LIMIT s (230), and their losses compared
#                                     as bench/same_answer.py compares (call 4)
#   bash bench/gpu_dec01f.sh fp8speed  one H200; carry .devbundle-lite and .carry/data: the trainer compiled, at b64
#                                     for 25 steps, with the blocks' matmuls in FP8 (the casts as inductor compiles
#                                     them), then in bf16 (bench/fp8_run.py on, off), each within LIMIT s (150) (calls 5 and 6)
source "$(dirname "$0")/gpu_common.sh"
case "${1:-}" in
verify)  # carry .devbundle-lite, .carry/data and .carry/old
  begin verify old
  echo "== FP8 matmuls from $(elapsed) s"
  python bench/fp8_gemm.py --batch 32 64 --out $P/fp8 > $P/fp8.log 2>&1; echo "exit $?"
  grep -v "^  [a-z]" $P/fp8.log | tail -8; grep -E "^  (gate|down|head) " $P/fp8.log
  tar czf $OUT/verify.tar.gz -C /tmp verify
  speed_and_answer
  if [ $(elapsed) -lt 470 ]; then
    echo "== b32 table from $(elapsed) s"
    profile_tree $REPO new 32; tar czf $OUT/verify.tar.gz -C /tmp verify
  fi
  echo "done at $(elapsed) s" ;;
fp8)  # carry .devbundle-lite and .carry/data
  begin fp8
  echo "== FP8 matmuls from $(elapsed) s"
  python bench/fp8_gemm.py --batch 32 64 --out $P/fp8 > $P/fp8.log 2>&1; echo "exit $?"
  grep -E "^  (step|gate|down|head)" $P/fp8.log; tar czf $OUT/fp8.tar.gz -C /tmp fp8
  echo "== b64 speed from $(elapsed) s"
  speed_tree $REPO b64 --batches 64 --steps 20 --no-warm-run; grep -E '^b64-' $P/speed-b64.log | tr -s ' '
  save_pruned
  echo "== b64 table from $(elapsed) s"
  profile_tree $REPO b64 64; tar czf $OUT/fp8.tar.gz -C /tmp fp8
  echo "done at $(elapsed) s" ;;
final)  # carry .devbundle-search and .carry/data-small
  P=/tmp/final; REPO=$PWD; mkdir -p $P /tmp/runs
  DATA=$PWD/.carry/data-small setup_trainer .devbundle-search
  gpu_info
  export RAY_DEDUP_LOGS=0
  echo "== a reused worker against fresh processes from $(elapsed) s"
  python bench/warm_workers.py same-answer --out $P > $P/same-answer.log 2>&1; echo "exit $?"
  tail -2 $P/same-answer.log; tar czf $OUT/final.tar.gz -C /tmp final
  BUDGET=${BUDGET:-150} search_arm final-1gpu $REPO
  echo "done at $(elapsed) s" ;;
fp8answer)  # carry .devbundle-lite and .carry/data
  begin fp8answer
  for arm in off on; do
    echo "== FP8 $arm from $(elapsed) s"
    fp8_arm $arm ${LIMIT:-230} --set max_tokens=6086656 --set stop_rule=never --set seed=0 \
      --set eval_every_tokens=1000000000 --set compile=false --set cudagraphs=false
    tail -3 $P/$arm.log
    tar czf $OUT/fp8answer.tar.gz --exclude='*.pt' -C /tmp fp8answer
  done
  python - $P <<'PY'
import json, sys
sys.path.insert(0, "bench")
from same_answer import compare
runs = {arm: json.load(open(f"{sys.argv[1]}/{arm}/result.json")) for arm in ("off", "on")}
s = compare(runs["on"]["history"], runs["off"]["history"], [1_000_000, 3_000_000, 6_000_000], 25, 0.05)
for m in s["marks"]:
    print(m)
print("pass", s["pass"], "val", runs["on"]["final_val_loss"], "against", runs["off"]["final_val_loss"],
      "tokens/s", runs["on"]["tokens_per_s"], runs["off"]["tokens_per_s"])
PY
  echo "done at $(elapsed) s" ;;
fp8speed)  # carry .devbundle-lite and .carry/data
  begin fp8speed
  fp8_speed_arms on off
  echo "done at $(elapsed) s" ;;
*) echo "usage: $0 verify|fp8|final|fp8answer|fp8speed"; exit 2 ;;
esac
