#!/usr/bin/env bash
# Device calls of Dec 2, twelfth session (issue 19: what the eleventh session's call 6 had no time for, and the side by
# side with upstream in one call). Set-up steps from bench/gpu_common.sh (sourced).
#   bash bench/gpu_dec02b.sh verify  one H200; carry .devbundle-lite, .carry/data and .carry/old (`git archive 288944e
#                                    trainer chores`, trainer/assets removed): the default path at b4, the working
#                                    tree then 288944e, twice alternated; its answer (the record's 6,086,656 tokens
#                                    against the saved reference run, on the clock); the same with fp8=true (the MLP as
#                                    one function, trainer.fp8.mlp)
#   bash bench/gpu_dec02b.sh part1   one H200; carry .fa4bundle/part-aa: kept in /tmp/fa4parts for the next call
#   bash bench/gpu_dec02b.sh side    the machine of part1, within 30 s; carry .fa4bundle/part-ab, .devbundle-lite,
#                                    .carry/data and bench/upstream (bench/upstream_setup.sh): ours at b128 with
#                                    fp8=true and attention=fa4 (20 steps), ours at b4 on the default path (60 steps),
#                                    then upstream eager at b4 and compiled at b16 (bench/upstream_vs_ours.py --only
#                                    upstream) in the time left
source "$(dirname "$0")/gpu_common.sh"
case "${1:-}" in
verify)  # carry .devbundle-lite, .carry/data and .carry/old
  begin verify old
  speed_and_answer
  fp8_answer ${FP8_LIMIT:-150}
  echo "done at $(elapsed) s" ;;
part1)  # carry .fa4bundle/part-aa
  fa4_part1 ;;
side)  # carry .fa4bundle/part-ab, .devbundle-lite, .carry/data and bench/upstream; the machine of part1
  [ -f bench/upstream/models/llm.py ] || { echo "no bench/upstream: run bench/upstream_setup.sh and carry it"; exit 7; }
  begin side
  fa4_unpack
  LIMIT=110 BATCH=128 batch_arm ours-b128-fp8-fa4 --set fp8=true --set attention=fa4
  LIMIT=120 BATCH=4 batch_arm ours-b4 --steps 60
  left=$(( ${SIDE_END:-575} - $(elapsed) ))
  echo "== upstream from $(elapsed) s, $left s left"
  timeout $left python bench/upstream_vs_ours.py --only upstream --out $P/upstream --budget-s $(( left - 5 )) \
    --upstream-compiled-b4 no --timeout-upstream-compiled 240 > $P/upstream.log 2>&1; echo "exit $?"
  grep -E "^\[|^upstream-" $P/upstream.log | cut -c1-150
  tar czf $OUT/side.tar.gz -C /tmp side
  echo "done at $(elapsed) s" ;;
*) echo "usage: bash bench/gpu_dec02b.sh verify | part1 | side"; exit 2 ;;
esac
