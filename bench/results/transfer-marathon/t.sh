# one marathon transfer candidate per call: 10x the speedrun-4.5 tokens on wiki 0-3 + OpenStax
source .carry/jobs/env.sh >/dev/null 2>&1
export BLUEBERRY_DATA=/tmp/dmar
n=$(ls /tmp/dmar/*/train-*.jsonl.zst 2>/dev/null | wc -l); [ "$n" = 5 ] || { echo "dmar has $n shards, not 5"; ls -la /tmp/keep/*; exit 8; }
N=${TNAME:-marathon-10x}
[ -d /tmp/tr/$N ] || { [ -d .carry/tr/$N ] && mkdir -p /tmp/tr && cp -r .carry/tr/$N /tmp/tr/; }
R=""; [ -d /tmp/tr/$N ] && R="--resume"
t0=$(date +%s)
python -m search.transfer records --track marathon --budget-tokens ${BUDGET:-60866560} --max-combine 1 \
  --name $N --runs-dir /tmp/tr --max-runs ${MAXRUNS:-1} $R ${EXTRA:-} > $OUT/$N-$(date +%H%M%S).log 2>&1
echo "transfer rc=$? $(( $(date +%s)-t0 )) s"
tail -25 $OUT/$N-*.log
tar -czf $OUT/tr-$N.tgz -C /tmp/tr $N; ls -la $OUT
