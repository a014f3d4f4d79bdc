#!/usr/bin/env bash
# Device calls of Dec 1, eighth session (issue 19: FlashAttention-4's Hopper kernels against cuDNN's attention).
# Set-up steps from bench/gpu_common.sh. FA4 and its CuTe-DSL compiler are ~65 MB compressed (bench/fa4_bundle.sh),
# more than one call carries beside the repo, so they travel in two parts, in two calls on one warm machine:
#   bash bench/gpu_dec01h.sh part1   one H200; carry .fa4bundle/part-aa: the part kept in /tmp/fa4parts for the next
#                                    call (the machine stays this session's for 30 s after a call); what the GPU
#                                    image's torch offers for FA4 (call 1)
#   bash bench/gpu_dec01h.sh fa4     the same machine, within 30 s; carry .fa4bundle/part-ab, .devbundle-lite and
#                                    .carry/data: FA4 unpacked and imported; bench/fa4_attention.py (the model's
#                                    attention alone at b4, b32 and b64: cuDNN, FlashAttention-2, FA4, each checked
#                                    against cuDNN and float32); then the trainer at b64, cuDNN then FA4
#                                    (runtime.attention=fa4, on caches of its own), the same at b32, and the record's
#                                    6,086,656 tokens with FA4 against the saved reference run, while time is left.
#                                    Calls 2 (at 9958c67) and 4 (at 71c09b6, after part1 again as call 3) ran FA4
#                                    through bench/sdpa_run.py cudnn,fa4 and same_answer.py --sdpa-off cudnn,fa4
#                                    instead. Call 2 failed at FA4's first call: torch 2.11's registration unpacks two
#                                    of the five values FA4's forward returns. Call 4 went through bench/fa4_shim.py,
#                                    the adapter now in trainer/fa4.py
#   bash bench/gpu_dec01h.sh verify  the machine of a part1 call, within 30 s; carry .fa4bundle/part-ab, .devbundle-lite,
#                                    .carry/data and .carry/old (`git archive 55df2c5 trainer chores`: the trainer
#                                    before runtime.attention): b4 speed of the working tree and 55df2c5 alternated
#                                    twice and the working tree's answer (speed_and_answer); then with
#                                    runtime.attention=fa4: the answer; b32 and b64 with sdpa then fa4 while time is left (call 6,
#                                    after part1 as call 5)
#   bash bench/gpu_dec01h.sh recheck the machine of a part1 call, within 30 s; carry as verify: the final trainer (after
#                                    check_fa4 moved out of fa4_kernels) against 55df2c5 (speed_and_answer), then
#                                    fresh processes at b4 with runtime.attention=fa4, two by bench/trainer_speed.py
#                                    (a first process, then one on the caches it left) (call 8, after part1 as call 7)
#   bash bench/gpu_dec01h.sh pairs   one H200; carry .devbundle-lite, .carry/data and .carry/old: b4 of the working tree
#                                    and 55df2c5 alternated twice (b4_pairs), a third look at calls 6 and 8 (call 9)
source "$(dirname "$0")/gpu_common.sh"
fa4_answer() {  # fa4_answer END: the record's 6,086,656 tokens with runtime.attention=fa4 against the saved reference
  # run, within END s of the call's start, into $P/same-fa4; its verdict printed, then $OUT/<name of $P>.tar.gz with
  # the run's result.json only (each step's clock, to see where a long run's speed goes; calls 4 and 6 kept none)
  echo "== the answer with attention=fa4 from $(elapsed) s"
  timeout $(( $1 - $(elapsed) )) python bench/same_answer.py --out $P/same-fa4 --set attention=fa4 \
    --reference-from bench/results/same_answer/reference --against bench/results/same_answer/fast \
    > $P/same-fa4.log 2>&1; echo "exit $?"; tail -6 $P/same-fa4.log
  find $P/same-fa4/fast -type f ! -name result.json -delete 2>/dev/null
  tar czf $OUT/$(basename $P).tar.gz -C /tmp $(basename $P)
}
case "${1:-}" in
part1)  # carry .fa4bundle/part-aa
  mkdir -p /tmp/fa4parts && cp .fa4bundle/part-aa /tmp/fa4parts/ && ls -la /tmp/fa4parts || exit 6
  python3 -c "import torch, torch.nn.attention as a; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'impls', a.list_flash_attention_impls(), 'capability', torch.cuda.get_device_capability())"
  grep -n "compute capability\|not supported on SM" "$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')/nn/attention/_fa4.py"
  python3 -m pip list 2>/dev/null | grep -i -E "^(cuda|einops|protobuf|typing)"
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv
  echo "done at $(elapsed) s" ;;
fa4)  # carry .fa4bundle/part-ab, .devbundle-lite and .carry/data; the machine of part1
  begin fa4
  fa4_unpack
  echo "FA4 unpacked at $(elapsed) s"
  python -c "import cutlass, flash_attn.cute; print('cutlass', cutlass.__version__, 'flash_attn.cute imported')" \
    2>&1 | tail -3
  echo "== attention alone from $(elapsed) s"
  timeout 240 python bench/fa4_attention.py --out $P/attention > $P/attention.log 2>&1; echo "exit $?"
  grep -v -i warn $P/attention.log | tail -14 | cut -c1-400
  save_pruned
  for b in 64 32; do
    [ $(elapsed) -lt 400 ] || break
    echo "== trainer at b$b from $(elapsed) s"
    BATCH=$b LIMIT=$(( 540 - $(elapsed) )) batch_arm cudnn-b$b
    (export TORCHINDUCTOR_CACHE_DIR=/tmp/ind-fa4 BLUEBERRY_CACHE=/tmp/bbcache-fa4
     mkdir -p $BLUEBERRY_CACHE && cp -r /tmp/bbcache/tokens $BLUEBERRY_CACHE/ 2>/dev/null
     BATCH=$b LIMIT=$(( 560 - $(elapsed) )) batch_arm fa4-b$b --set attention=fa4)
  done
  if [ $(elapsed) -lt 450 ]; then fa4_answer 585; fi
  echo "done at $(elapsed) s" ;;
verify)  # carry .fa4bundle/part-ab, .devbundle-lite, .carry/data and .carry/old; the machine of part1
  begin verify old
  fa4_unpack
  speed_and_answer
  if [ $(elapsed) -lt 420 ]; then fa4_answer 590; fi
  for b in 32 64; do
    [ $(elapsed) -lt 460 ] || break
    echo "== b$b, attention=sdpa then fa4, from $(elapsed) s"
    BATCH=$b LIMIT=$(( 540 - $(elapsed) )) batch_arm sdpa-b$b
    BATCH=$b LIMIT=$(( 590 - $(elapsed) )) batch_arm fa4-b$b --set attention=fa4
  done
  echo "done at $(elapsed) s" ;;
recheck)  # carry .fa4bundle/part-ab, .devbundle-lite, .carry/data and .carry/old; the machine of part1
  begin recheck old
  fa4_unpack
  speed_and_answer
  for i in 1 2; do
    [ $(elapsed) -lt 480 ] || break
    echo "== b4 with attention=fa4 ($i) from $(elapsed) s"
    python bench/trainer_speed.py --out $P/speed-fa4-$i --batches 4 --steps 20 --set attention=fa4 \
      > $P/speed-fa4-$i.log 2>&1  # not speed_tree: its PYTHONPATH would leave FA4 out
    grep -E '^b4-' $P/speed-fa4-$i.log | tr -s ' ' | sed "s/^/fa4-$i: /"
    save_pruned
  done
  echo "done at $(elapsed) s" ;;
pairs)  # carry .devbundle-lite, .carry/data and .carry/old
  begin pairs old
  b4_pairs 2
  save_pruned
  echo "done at $(elapsed) s" ;;
*) echo "usage: $0 part1|fa4|verify|recheck|pairs"; exit 2 ;;
esac
