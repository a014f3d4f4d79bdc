"""bench/trim_shard.py: the first share of a shard's documents, whole lines, validation untouched."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import zstandard

_spec = importlib.util.spec_from_file_location("trim_shard", Path(__file__).parents[2] / "bench" / "trim_shard.py")
trim_shard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trim_shard)


def _write(path: Path, docs: list[dict]) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = b"".join(json.dumps(d).encode() + b"\n" for d in docs)
    path.write_bytes(zstandard.ZstdCompressor().compress(raw))
    return raw


def test_keeps_the_first_share_of_whole_documents_and_the_validation_file(tmp_path):
    src, dst = tmp_path / "data", tmp_path / "small"
    raw = _write(src / "wiki" / "train-0000.jsonl.zst", [{"text": f"document {i}\nwith a newline"} for i in range(10)])
    _write(src / "val.jsonl.zst", [{"text": "held out"}])
    trim_shard.trim(src, dst, keep=0.3)
    kept = zstandard.ZstdDecompressor().stream_reader((dst / "wiki" / "train-0000.jsonl.zst").open("rb")).read()
    assert kept == b"".join(raw.splitlines(keepends=True)[:3])
    assert [json.loads(line)["text"] for line in kept.splitlines()][-1] == "document 2\nwith a newline"
    assert (dst / "val.jsonl.zst").read_bytes() == (src / "val.jsonl.zst").read_bytes()
