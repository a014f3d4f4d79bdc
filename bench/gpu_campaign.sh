#!/usr/bin/env bash
# The GPU campaign of issue 15, in device calls of at most 10 minutes (nvidia-h200-x2 or nvidia-h200):
#   bash bench/gpu_campaign.sh search     # the `speedrun` space on speedrun-4.5, 64 trials (resumes if a run
#                                         # directory came back from an earlier call in .carry/campaign.tar.gz)
#   bash bench/gpu_campaign.sh promote    # top 3 x 5 seeds + the control, 6.09M tokens each (resumable)
# carry: .devbundle, .carry/data (wiki shard 0 + val of the offline corpus), .carry/campaign.tar.gz if any.
# $OUT gets the logs and campaign.tar.gz (the run directory, without Ray's own state) to carry to the next call.
# Keep BUDGET at least 90 s under the call's limit: Ray's start, the trials a budget interrupts and the final tar
# come after it (on Nov 30 an outer `timeout` cut the tar and the run directory was lost).
set -uo pipefail
mkdir -p /tmp/s && tar -xJf .devbundle/site.tar.xz -C /tmp/s && export PYTHONPATH=/tmp/s/site:$PWD || exit 9
export BLUEBERRY_DATA=$PWD/.carry/data BLUEBERRY_CACHE=/tmp/bbcache PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; R=/tmp/campaign; BUDGET=${BUDGET:-480}; mkdir -p "$OUT" $R
[ -f .carry/campaign.tar.gz ] && tar xzf .carry/campaign.tar.gz -C $R
[ -d $R/records ] || cp -r records $R/records  # the control runs the current record's settings
case "${1:-search}" in
search)
  if [ -f $R/campaign/settings.json ]; then
    python -m search.run --name campaign --runs-dir $R --resume --time-budget-s "$BUDGET" --quiet
  else
    python -m search.run --space speedrun --track speedrun-4.5 --num-trials 64 --seed 0 --name campaign \
      --runs-dir $R --time-budget-s "$BUDGET" --quiet
  fi > "$OUT/campaign-search.log" 2>&1
  grep -v "^\[\|WARNING\|INFO" "$OUT/campaign-search.log" | tail -40 ;;
promote)
  P=$(ls -d $R/campaign/promote-* 2>/dev/null | tail -1)
  if [ -n "$P" ]; then
    python -m search.promote --resume "$P" --records $R/records --time-budget-s "$BUDGET"
  else
    python -m search.promote $R/campaign --top 3 --seeds 5 --set max_tokens=6086656 --records $R/records \
      --time-budget-s "$BUDGET"
  fi > "$OUT/campaign-promote.log" 2>&1
  echo "promote exit: $?"; grep -v "^\[\|WARNING\|INFO" "$OUT/campaign-promote.log" | tail -40 ;;
esac
tar czf "$OUT/campaign.tar.gz" --exclude=ray -C $R .
