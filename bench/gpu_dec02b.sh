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
#   bash bench/gpu_dec02b.sh startup one H200; carry .devbundle-lite, .carry/data, .carry/old (febee52: the MLP's op
#                                    registered at import) and .carry/mid (288944e: before the FP8 MLP), each `git
#                                    archive COMMIT trainer chores` with trainer/assets removed: fresh processes at b4
#                                    (20 steps), the working tree (the op registered on first use), febee52 and
#                                    288944e, first each on its cold cache, then ROUNDS (2) rounds alternated, each a
#                                    process on the warm cache and a second one; then the answer with fp8=true and the
#                                    default path's answer while time is left
#   bash bench/gpu_dec02b.sh best    the machine of a part1 call, within 30 s; carry .fa4bundle/part-ab,
#                                    .devbundle-lite and .carry/data: the working tree at b128, then b96, with
#                                    fp8=true and attention=fa4 (20 steps each), the second while time is left
#   bash bench/gpu_dec02b.sh fp8check one H200; carry .devbundle-lite and .carry/data: after trainer/fp8.py's two
#                                    backwards took their output gradient's cast from one helper, the answer with
#                                    fp8=true, then b64 with fp8=true (SDPA, 20 steps)
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
startup)  # carry .devbundle-lite, .carry/data, .carry/old (febee52) and .carry/mid (288944e)
  begin startup old mid
  declare -A dir=([new]=$REPO [old]=$OLD [mid]=$MID)
  for i in $(seq 0 ${ROUNDS:-2}); do
    for t in new old mid; do
      [ $(elapsed) -lt 380 ] || break 2
      speed_tree ${dir[$t]} $t-$i --batches 4 --steps 20 $([ $i = 0 ] && echo --no-warm-run)
      start_rows $t-$i  # (gpu_common.sh; call 4 printed these rows without the compile-cache counters)
    done
  done
  save_pruned
  fp8_answer 120
  [ $(elapsed) -lt 500 ] && answer_saved
  echo "done at $(elapsed) s" ;;
best)  # carry .fa4bundle/part-ab, .devbundle-lite and .carry/data; the machine of part1
  begin best
  fa4_unpack
  LIMIT=110 BATCH=128 batch_arm b128-fp8-fa4 --set fp8=true --set attention=fa4
  [ $(elapsed) -lt 130 ] && LIMIT=100 BATCH=96 batch_arm b96-fp8-fa4 --set fp8=true --set attention=fa4
  echo "done at $(elapsed) s" ;;
fp8check)  # carry .devbundle-lite and .carry/data
  begin fp8check
  fp8_answer 110
  [ $(elapsed) -lt 150 ] && LIMIT=90 BATCH=64 batch_arm b64-fp8 --set fp8=true
  echo "done at $(elapsed) s" ;;
*) echo "usage: bash bench/gpu_dec02b.sh verify | part1 | side | startup | best | fp8check"; exit 2 ;;
esac
