#!/usr/bin/env bash
# The GPU campaign of issue 15, in device calls of at most 10 minutes (nvidia-h200-x2 or nvidia-h200). Each
# argument is a step and its time budget in seconds; a call may chain several:
#   bash bench/gpu_campaign.sh search:470               # the `speedrun` space on speedrun-4.5, 64 trials
#   CLUSTER=1 bash bench/gpu_campaign.sh search:250 promote:200
#   bash bench/gpu_campaign.sh promote:450
# search: starts, or resumes the run directory carried in .carry/campaign.tar.gz. promote: the search's top 3
# x 5 seeds and the control (the current record's settings), every run to all three crossings of 4.5 or
# 12M tokens (STOP=, CAP=); resumes an unfinished promotion, else starts a new one. CLUSTER=1: the steps join a Ray cluster started here with
# `ray start --head` (issue 17: the cluster path on real GPUs) instead of starting Ray themselves.
# carry: .devbundle, .carry/data (wiki shard 0 + val of the offline corpus), .carry/campaign.tar.gz and
# .carry/compile.tar.gz (PyTorch's portable compile cache from the last call) if any and if it fits the 64 MiB
# (one shape's is ~3.5 MB; on Nov 30 a search's three micro-batches made 15 MB).
# $OUT: one log per step, campaign.tar.gz (the run directory without Ray's own state) and compile.tar.gz.
# Keep the budgets' sum at least 90 s under the call's limit: Ray's start, the runs a budget interrupts and the
# final tar come after them (on Nov 30 an outer `timeout` cut the tar and the run directory was lost).
set -uo pipefail
if [ -z "${NO_BUNDLE:-}" ]; then  # NO_BUNDLE=1: this machine has the packages (a CPU try of the script)
  mkdir -p /tmp/s && tar -xJf .devbundle/site.tar.xz -C /tmp/s && export PYTHONPATH=/tmp/s/site:$PWD || exit 9
fi
export BLUEBERRY_DATA=$PWD/.carry/data BLUEBERRY_CACHE=/tmp/bbcache PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; R=${R:-/tmp/campaign}; TRACK=${TRACK:-speedrun-4.5}; TRIALS=${TRIALS:-64}
CAP=${CAP:-12000000}; STOP=${STOP:-all}  # a promotion run stops at the STOP crossing(s) or at CAP tokens
mkdir -p "$OUT" $R /tmp/bbcache
# the carried run directory, unless this machine already has it (a warm machine keeps the newer copy)
[ -f .carry/campaign.tar.gz ] && [ ! -d $R/campaign ] && tar xzf .carry/campaign.tar.gz -C $R
[ -f .carry/compile.tar.gz ] && tar xzf .carry/compile.tar.gz -C /tmp/bbcache
[ -d $R/records ] || cp -r records $R/records  # the control runs the current record's settings
ray_cli() { python -c "from ray.scripts.scripts import main; main()" "$@"; }
ADDRESS=()
if [ "${CLUSTER:-0}" = 1 ]; then
  ray_cli start --head --num-gpus "$(nvidia-smi -L 2>/dev/null | wc -l)" --disable-usage-stats > "$OUT/ray-start.log" 2>&1 \
    && ADDRESS=(--address auto) || echo "ray start failed (see ray-start.log): the steps start Ray themselves"
fi
for step in "$@"; do
  name=${step%%:*}; budget=${step#*:}; t0=$(date +%s)
  case "$name" in
  search)
    if [ -f $R/campaign/settings.json ]; then
      python -m search.run --name campaign --runs-dir $R --resume --time-budget-s "$budget" --quiet "${ADDRESS[@]}"
    else
      python -m search.run --space speedrun --track "$TRACK" --num-trials "$TRIALS" --seed 0 --name campaign \
        --runs-dir $R --max-t 120s --time-budget-s "$budget" --quiet "${ADDRESS[@]}"
    fi > "$OUT/$name-$budget.log" 2>&1 ;;
  promote)
    P=$(ls -d $R/campaign/promote-* 2>/dev/null | tail -1)  # resume it unless it is complete: else a new one
    if [ -n "$P" ] && ! grep -q '"complete": true' "$P/promotion.json" 2>/dev/null; then
      python -m search.promote --resume "$P" --records $R/records --time-budget-s "$budget" "${ADDRESS[@]}"
    else
      python -m search.promote $R/campaign --top 3 --seeds 5 --set max_tokens="$CAP" --set stop_rule="$STOP" --records $R/records \
        --time-budget-s "$budget" "${ADDRESS[@]}"
    fi > "$OUT/$name-$budget.log" 2>&1 ;;
  *) echo "unknown step $step"; continue ;;
  esac
  echo "== $step: exit $?, $(( $(date +%s) - t0 )) s"
  grep -v "^\[\|WARNING\|INFO\|^\s*$" "$OUT/$name-$budget.log" | tail -30
done
[ ${#ADDRESS[@]} -gt 0 ] && ray_cli stop > /dev/null 2>&1
tar czf "$OUT/campaign.tar.gz" --exclude=ray -C $R .
[ -d /tmp/bbcache/compile ] && tar czf "$OUT/compile.tar.gz" -C /tmp/bbcache compile
ls -la "$OUT"
