# sourced at the start of each device command (from the repo root)
B=${BUNDLE:-.devbundle-slim}
if [ ! -d /tmp/s/site ]; then
  [ -f "$B/site.tar.xz" ] || { echo "NO BUNDLE $B and /tmp/s/site missing (cold machine?)"; exit 9; }
  mkdir -p /tmp/s && tar -xJf "$B/site.tar.xz" -C /tmp/s
fi
export PYTHONPATH=/tmp/s/site:$PWD BLUEBERRY_CACHE=/tmp/bbcache PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled
# data sets: d0 = wiki shard 0 (+ val, tokenizer); dcal = d0 + OpenStax; dmar = wiki 0-3 + OpenStax
mk() { local d=$1; shift; mkdir -p $d/wiki-en-2019 $d/openstax-ccby
  for f in val.jsonl.zst tokenizer.json README.md; do [ -e /tmp/keep/$f ] && ln -sf /tmp/keep/$f $d/$f; done
  for f in "$@"; do [ -e "$f" ] && ln -sf "$f" $d/$(basename $(dirname $f))/$(basename $f); done; }
mkdir -p /tmp/keep/wiki-en-2019 /tmp/keep/openstax-ccby
for f in .carry/val/*.* ; do [ -f "$f" ] && cp -n "$f" /tmp/keep/; done
for f in .carry/*/wiki-en-2019/*.zst; do [ -f "$f" ] && cp -n "$f" /tmp/keep/wiki-en-2019/; done
for f in .carry/*/openstax-ccby/*.zst; do [ -f "$f" ] && cp -n "$f" /tmp/keep/openstax-ccby/; done
mk /tmp/d0 /tmp/keep/wiki-en-2019/train-0000.jsonl.zst
mk /tmp/dcal /tmp/keep/wiki-en-2019/train-0000.jsonl.zst /tmp/keep/openstax-ccby/train-0000.jsonl.zst
mk /tmp/dmar /tmp/keep/wiki-en-2019/train-000[0-3].jsonl.zst /tmp/keep/openstax-ccby/train-0000.jsonl.zst
rmdir /tmp/d0/openstax-ccby 2>/dev/null; true
ls -la /tmp/keep /tmp/keep/* | head -20
nvidia-smi --query-gpu=name,memory.used --format=csv
