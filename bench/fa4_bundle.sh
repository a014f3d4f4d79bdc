#!/usr/bin/env bash
# FlashAttention-4 (the `flash-attn-4` package, CuTe-DSL kernels that PyTorch's registry can put behind its flash
# backend) and what it needs beyond the GPU image (which has torch 2.11 for CUDA 13, cuda-bindings, cuda-pathfinder
# and einops), unpacked, compressed and cut into two parts, the first of 43 MiB: the CuTe-DSL compiler is a 190 MB
# library, ~65 MB compressed, more than one device call carries beside the repo (19 MB on Dec 1, ninth session:
# the first part was 45 MiB until then, and no longer fitted beside it).
#
# usage (from the project root, with PyPI reachable):   bash bench/fa4_bundle.sh [OUTDIR]   (default .fa4bundle)
# on the GPU machine, two calls within its 30 s idle window (bench/gpu_dec01h.sh): the first carries OUTDIR/part-aa
# and copies it to /tmp/fa4parts; the second carries OUTDIR/part-ab, then
#   cat /tmp/fa4parts/part-aa .fa4bundle/part-ab | tar -xJ -C /tmp/fa4pkg
# and puts /tmp/fa4pkg/site and /tmp/fa4pkg/site/nvidia_cutlass_dsl/dsl_packages on PYTHONPATH (what the
# package's .pth file would add in a site-packages folder).
set -euo pipefail
out=${1:-.fa4bundle}
pkgs=(flash-attn-4==4.0.0b36 nvidia-cutlass-dsl==4.8.1 nvidia-cutlass-dsl-libs-base==4.8.1
      nvidia-cutlass-dsl-libs-core==4.8.1 nvidia-cutlass-dsl-libs-cu13==4.8.1 apache-tvm-ffi==0.1.15.post2
      torch-c-dlpack-ext==0.1.5 quack-kernels==0.6.5)
rm -rf "$out"; mkdir -p "$out/whl" "$out/site"
python3 -m pip download -q --pre --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d "$out/whl" "${pkgs[@]}"
python3 - "$out" <<'PY'
import glob, os, sys, zipfile
out = sys.argv[1]
for whl in sorted(glob.glob(f"{out}/whl/*.whl")):
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            path = z.extract(info, f"{out}/site")
            mode = info.external_attr >> 16
            if mode and not info.is_dir():
                os.chmod(path, mode & 0o777)
PY
# the QNX and aarch64 runtime stubs: never loaded on the x86-64 GPU machine
rm -rf "$out"/site/nvidia_cutlass_dsl/cu13/lib/stubs
ls "$out"/whl > "$out/wheels.txt"
XZ_OPT='-9e -T0' tar -C "$out" -cJf "$out/site.tar.xz" site
rm -rf "$out/whl" "$out/site"
split -b 43M "$out/site.tar.xz" "$out/part-"
rm "$out/site.tar.xz"
ls -la "$out"
