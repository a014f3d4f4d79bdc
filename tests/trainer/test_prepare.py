"""``python -m trainer.prepare``: the token cache filled ahead of time, and the offline-corpus export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zstandard
from test_data import corpus, expected_stream, hub_layout, read_docs

import trainer.data as data_mod
from trainer.config import DataConfig
from trainer.data import load_tokenizer, load_tokens
from trainer.prepare import main


@pytest.fixture(autouse=True)
def small(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setattr(data_mod, "HEAD_VAL_DOCS", 12)


def test_prepare_fills_the_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = corpus(500, seed=40)
    root = hub_layout(tmp_path / "hub", texts, shards=2)
    cache = tmp_path / "cache"
    assert main(["--track", "speedrun-4.5", "--data", str(root), "--tokens", "3000", "--quiet",
                 "--set", f"cache_dir={cache}"]) == 0
    out = capsys.readouterr().out
    assert "3,000 train tokens" in out and str(cache / "tokens") in out
    # a run of the track finds it there
    tok = load_tokenizer("")
    d = load_tokens(DataConfig(train=str(root), stream_tokens=3000, cache_dir=str(cache)), progress=False)
    np.testing.assert_array_equal(d.train, expected_stream(tok, texts[12:])[:3000])
    assert d.fingerprint in out


def test_prepare_exports_the_offline_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    texts = corpus(600, seed=41)
    root = hub_layout(tmp_path / "hub", texts, shards=3)
    monkeypatch.setattr("trainer.prepare.SHARD_TOKENS", 1_000)
    out = tmp_path / "corpus"
    assert main(["--track", "speedrun-4.5", "--data", str(root), "--tokens", "2500", "--export", str(out),
                 "--quiet"]) == 0
    assert f"BLUEBERRY_DATA={out}" in capsys.readouterr().out
    meta = json.loads((out / "prepare.json").read_text())
    tok = load_tokenizer("")
    # val: the same first documents the token cache holds out; train: whole documents up to the cap
    assert read_docs(out / "val.jsonl.zst") == texts[:12]
    shards = sorted((out / "hub").glob("train-*.jsonl.zst"))
    assert len(shards) >= 2 and [str(p.relative_to(out)) for p in shards] == meta["shards"]
    train = [t for p in shards for t in read_docs(p)]
    assert train == texts[12:12 + len(train)]
    n = len(expected_stream(tok, train))
    assert n == meta["train_tokens"] >= 2500 > len(expected_stream(tok, train[:-1]))
    assert meta["val_docs"] == 12 and meta["train_docs"] == len(train)
    raw = zstandard.ZstdDecompressor().decompress((data_mod.ASSETS / "tokenizer.json.zst").read_bytes())
    assert (out / "tokenizer.json").read_bytes() == raw
    # the folder reads as an offline corpus
    d = load_tokens(DataConfig(train=str(out), cache_dir=str(tmp_path / "cache")), progress=False)
    assert "offline layout" in d.source and len(d.train) == n
    np.testing.assert_array_equal(d.val, expected_stream(tok, texts[:12]))
    # and it is never written over
    assert main(["--data", str(root), "--export", str(out), "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
