#!/usr/bin/env bash
# Device calls of Dec 1, seventh session (issue 14, with the trainer check every trainer change gets).
# Set-up steps from bench/gpu_common.sh.
#   bash bench/gpu_dec01g.sh verify   one H200; carry .devbundle-lite, .carry/data and .carry/old (`git archive
#                                     f17f8ae trainer chores`: the trainer before runtime.deterministic): b4 speed of
#                                     the working tree and f17f8ae alternated twice, then the working tree's answer
#                                     against the saved reference run (speed_and_answer) (call 2)
#   bash bench/gpu_dec01g.sh same     one H200; carry .devbundle-lite and .carry/data: bench/warm_workers.py
#                                     same-answer with runtime.deterministic (the record's settings after two other
#                                     trials in one worker against two fresh processes, every run deterministic),
#                                     then the same in the default mode if there is time, on the same machine (call 1)
#   bash bench/gpu_dec01g.sh startup  one H200; carry .devbundle-lite and .carry/data: where a fresh process's start-up
#                                     goes on a warm compile cache. One run fills the caches, then two plain fresh
#                                     `python -m trainer` runs and two under bench/sample_stacks.py (every thread's
#                                     stack every 5 ms), the record's settings, 262,144 tokens each (call 3; call 4
#                                     again with the samples' times, to split the start-up from the rest)
#   bash bench/gpu_dec01g.sh fp8fd    one H200; carry .devbundle-lite and .carry/data: the trainer compiled at b64 for
#                                     25 steps with the blocks' forward and input-gradient matmuls in FP8 and their
#                                     weight gradients in bf16, then all in bf16 (bench/fp8_run.py fwd-dgrad, off),
#                                     each within LIMIT s (150) (call 5)
source "$(dirname "$0")/gpu_common.sh"
same_mode() {  # same_mode [--deterministic]: bench/warm_workers.py same-answer into $P, its verdict printed, then
  # $OUT/<name of $P>.tar.gz rewritten
  local log=$P/same-answer${1:+-deterministic}.log
  echo "== same answer ${1:-default} from $(elapsed) s"
  python bench/warm_workers.py same-answer "$@" --out $P > $log 2>&1; echo "exit $?"
  grep -v Warning $log | tail -2; tar czf $OUT/$(basename $P).tar.gz -C /tmp $(basename $P)
}
case "${1:-}" in
verify)  # carry .devbundle-lite, .carry/data and .carry/old
  begin verify old
  speed_and_answer
  echo "done at $(elapsed) s" ;;
same)  # carry .devbundle-lite and .carry/data
  begin same
  same_mode --deterministic
  if [ $(elapsed) -lt 400 ]; then same_mode; fi
  echo "done at $(elapsed) s" ;;
startup)  # carry .devbundle-lite and .carry/data
  begin startup
  run_args="--track speedrun-4.5 --quiet --set max_tokens=262144 --set stop_rule=never"
  echo "== caches filled from $(elapsed) s"
  python -m trainer $run_args --out $P/fill > $P/fill.log 2>&1; echo "exit $?"
  for i in 1 2; do
    echo "== fresh process $i from $(elapsed) s"
    python -m trainer $run_args --out $P/plain-$i > $P/plain-$i.log 2>&1; echo "exit $?"
    python bench/sample_stacks.py --out $P/stacks-$i -- -m trainer $run_args --out $P/sampled-$i \
      > $P/sampled-$i.log 2>&1; echo "exit $?"
    tar czf $OUT/startup.tar.gz --exclude='*.pt' -C /tmp startup
  done
  for r in fill plain-1 sampled-1 plain-2 sampled-2; do
    python -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], round(r['startup_s'], 2), r['startup_phases'], r['compile_cache'])" $P/$r/result.json $r
  done
  until=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['clock_started_at'] - json.load(open(sys.argv[2]))['started_at'])" $P/sampled-2/result.json $P/stacks-2/meta.json)
  python bench/sample_stacks.py --report $P/stacks-2 --under "train.py:_run" --until $until --top 30 | grep -A40 "^MainThread"
  echo "done at $(elapsed) s" ;;
fp8fd)  # carry .devbundle-lite and .carry/data
  begin fp8fd
  fp8_speed_arms fwd-dgrad off
  echo "done at $(elapsed) s" ;;
*) echo "usage: $0 verify|same|startup|fp8fd"; exit 2 ;;
esac
