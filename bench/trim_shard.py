"""A smaller copy of the offline corpus for a device call whose carry limit it would not fit in whole: the first
``--keep`` share of each training shard's documents (whole lines), the validation file as it is.

    python bench/trim_shard.py .carry/data .carry/data-small --keep 0.55

Used on Dec 1, fourth session (call 5 of ``bench/gpu_dec01d.sh``): the search bundle (32.7 MB) and the repository
(16.7 MB) left no room for wiki shard 0 (17.7 MB) in the 64 MiB a call carries; its first 55% is 9.5 MB.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import zstandard


def trim(src: Path, dst: Path, keep: float) -> None:
    for path in sorted(src.rglob("*.jsonl.zst")):
        out = dst / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.name.startswith("val"):
            shutil.copyfile(path, out)
            continue
        with path.open("rb") as f:
            lines = zstandard.ZstdDecompressor().stream_reader(f).read().splitlines(keepends=True)
        n = round(len(lines) * keep)
        kept = b"".join(lines[:n])
        out.write_bytes(zstandard.ZstdCompressor(level=19).compress(kept))
        print(f"{path.relative_to(src)}: {len(lines):,} -> {n:,} documents, "
              f"{path.stat().st_size:,} -> {out.stat().st_size:,} bytes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--keep", type=float, default=0.55)
    args = ap.parse_args()
    trim(args.src, args.dst, args.keep)


if __name__ == "__main__":
    main()
