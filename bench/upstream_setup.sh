#!/usr/bin/env bash
# Upstream's trainer for bench/upstream_vs_ours.py, into the git-ignored bench/upstream: the folders it imports from
# a local copy of github.com/vukrosic/deep-delta-learning-research at 496192d (the `fetch` tool's mirror, or any
# clone), and a `torchtune.modules` stand-in with the one class upstream imports from torchtune (not on the GPU
# machine), bench/torchtune_rope.py, written for this project.
#   bash bench/upstream_setup.sh /work/.mirror/vukrosic+deep-delta-learning-research/repo
set -euo pipefail
src=${1:?usage: bash bench/upstream_setup.sh <clone or git dir of deep-delta-learning-research>}
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$here/upstream"; mkdir -p "$here/upstream/torchtune/modules"
git -C "$src" archive 496192d models optimizers configs training | tar -x -C "$here/upstream"
: > "$here/upstream/torchtune/__init__.py"
cp "$here/torchtune_rope.py" "$here/upstream/torchtune/modules/__init__.py"
echo "upstream 496192d in $here/upstream ($(du -sh "$here/upstream" | cut -f1))"
