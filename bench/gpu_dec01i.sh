#!/usr/bin/env bash
# Device calls of Dec 1, ninth session (issue 19: FP8 with fixed scales, so that inductor can fuse each cast into the
# kernel that makes the tensor). Set-up steps from bench/gpu_common.sh.
#   bash bench/gpu_dec01i.sh fixed   one H200; carry .devbundle-lite and .carry/data: the trainer compiled at b64 for
#                                    25 steps in bf16, with the blocks' matmuls in FP8 at fixed scales, and with the
#                                    chunked loss's matmuls too (bench/fp8_run.py off, fixed, fixed-head); then at b4
#                                    for 60 steps in bf16 and with fixed (the b4 loss is not chunked), each within
#                                    LIMIT s (150) (call 1)
source "$(dirname "$0")/gpu_common.sh"
fp8_run_as() {  # fp8_run_as NAME ARM SETTINGS...: bench/fp8_run.py ARM on the record's track with SETTINGS into
  # $P/NAME within LIMIT s (150); its exit status, speed (whole clock, and from step 5 on), memory, warm-up and last
  # train loss printed, then $OUT/<name of $P>.tar.gz rewritten
  local name=$1 arm=$2; shift 2
  echo "== $name (bench/fp8_run.py $arm) from $(elapsed) s"
  timeout ${LIMIT:-150} python bench/fp8_run.py $arm --quiet --track speedrun-4.5 --out $P/$name "$@" \
    --set stop_rule=never --set eval_every_tokens=1000000000 > $P/$name.log 2>&1
  echo "exit $?"
  python - $P/$name/result.json <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except OSError as e:
    sys.exit(f"  no result: {e}")
h = r["history"]
a, b = h[4], h[-1]
steady = (b["tokens"] - a["tokens"]) / (b["clock_s"] - a["clock_s"])
print(f"  {r['tokens_per_s']:,.0f} tokens/s on the clock, {steady:,.0f} from step {a['step']} to {b['step']}, "
      f"peak {r['peak_memory_bytes'] / 2**30:.1f} GiB, warm-up {r['warmup_s']:.0f} s, train loss at step "
      f"{b['step']} {b['train_loss']:.4f}")
PY
  tar czf $OUT/$(basename $P).tar.gz --exclude='*.pt' -C /tmp $(basename $P)
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
*) echo "usage: $0 fixed"; exit 2 ;;
esac
