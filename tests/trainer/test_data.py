"""trainer.data: sources, tokenizer, the uint16 token cache, errors, and the fixed validation windows."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zstandard
from tokenizers import Tokenizer, models, pre_tokenizers

import trainer.data as data_mod
from trainer.config import ConfigError, DataConfig, make_config
from trainer.data import (
    SOURCES,
    TokenData,
    load_tokenizer,
    load_tokens,
    tokenizer_fingerprint,
    val_windows,
)

# ----------------------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return load_tokenizer("")


def write_docs(path: Path, texts: Iterable[str]) -> Path:
    """JSONL (zstd-compressed when the name ends in .zst), one {"text": ...} per line."""
    lines = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts))
    blob = lines.encode("utf-8")
    if path.name.endswith(".zst"):
        blob = zstandard.ZstdCompressor(level=3).compress(blob)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return path


def read_docs(path: Path) -> list[str]:
    blob = path.read_bytes()
    if path.name.endswith(".zst"):  # streamed frames (trainer.prepare's) do not record their size
        blob = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)).read()
    return [json.loads(line)["text"] for line in blob.splitlines() if line.strip()]


def expected_stream(tok: Tokenizer, texts: Iterable[str], eos: int = 0) -> np.ndarray:
    """What load_tokens must produce: each document's ids (no special tokens), then one EOS."""
    out: list[int] = []
    for text in texts:
        out += tok.encode(text, add_special_tokens=False).ids + [eos]
    return np.asarray(out, dtype=np.uint16)


def split_docs(stream: np.ndarray, eos: int = 0) -> list[tuple[int, ...]]:
    """A token stream cut back into documents at its EOS tokens (which must end it)."""
    assert stream[-1] == eos
    ends = np.flatnonzero(stream == eos)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [tuple(stream[s:e].tolist()) for s, e in zip(starts, ends)]


def is_holdout(text: str) -> bool:
    return int(hashlib.md5(text.encode("utf-8")).hexdigest(), 16) % 100 == 0


def words(rng: random.Random, n: int) -> str:
    vocab = ["blue", "berry", "speed", "run", "token", "model", "loss", "train", "the", "of", "a", "and"]
    return " ".join(rng.choice(vocab) for _ in range(n))


def corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"Document {seed}-{i}. " + words(rng, rng.randint(5, 40)) for i in range(n)]


def cfg(tmp_path: Path, **kwargs: str) -> DataConfig:
    return DataConfig(cache_dir=str(tmp_path / "cache"), **kwargs)


def cache_folder(tmp_path: Path, d: TokenData) -> Path:
    return tmp_path / "cache" / "tokens" / d.fingerprint


# ----------------------------------------------------------------------------------------------------------
# The shipped sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TokenData]:
    tmp = tmp_path_factory.mktemp("sample")
    return tmp, load_tokens(cfg(tmp), progress=False)


def test_sources_names() -> None:
    assert set(SOURCES) == {"sample", "offline"}


def test_shipped_assets_are_small() -> None:
    assets = Path(data_mod.__file__).parent / "assets"
    sizes = {p.name: p.stat().st_size for p in assets.iterdir()}
    assert {"tokenizer.json.zst", "sample-train.jsonl.zst", "sample-val.jsonl.zst", "NOTICE.md"} <= set(sizes)
    assert sum(sizes.values()) < 3_500_000
    assert 2_000_000 <= sizes["sample-train.jsonl.zst"] <= 2_500_000
    assert 150_000 <= sizes["sample-val.jsonl.zst"] <= 250_000


def test_shipped_tokenizer(tok: Tokenizer) -> None:
    assert tok.get_vocab_size(with_added_tokens=True) == 49_152
    assert tok.token_to_id("<|endoftext|>") == 0
    assert len(tokenizer_fingerprint(tok)) == 16


def test_sample_matches_direct_encoding(sample: tuple[Path, TokenData], tok: Tokenizer) -> None:
    _, d = sample
    assets = Path(data_mod.__file__).parent / "assets"
    train_texts = read_docs(assets / "sample-train.jsonl.zst")
    val_texts = read_docs(assets / "sample-val.jsonl.zst")

    assert d.train.dtype == np.uint16 and d.val.dtype == np.uint16
    assert isinstance(d.train, np.memmap) and isinstance(d.val, np.memmap)
    assert (d.vocab_size, d.eos_id) == (49_152, 0)
    assert d.n_train_docs == len(train_texts)
    # The whole val stream, token for token, against one encode() per document.
    np.testing.assert_array_equal(d.val, expected_stream(tok, val_texts))
    # Train: the first documents exactly, token for token, and their EOS positions.
    head_texts = train_texts[:60]
    head = expected_stream(tok, head_texts)
    np.testing.assert_array_equal(d.train[: len(head)], head)
    lengths = np.array([len(tok.encode(t, add_special_tokens=False).ids) for t in head_texts]) + 1
    np.testing.assert_array_equal(np.flatnonzero(d.train[: len(head)] == 0), np.cumsum(lengths) - 1)
    # The whole stream: one EOS per document (id 0 never occurs in the text) and the token count that
    # scripts/make_sample.py measured with its own encode and wrote into NOTICE.md.
    assert int((d.train == 0).sum()) == len(train_texts) and d.train[-1] == 0
    notice = (assets / "NOTICE.md").read_text()
    rows = {m[0]: (int(m[1].replace(",", "")), int(m[2].replace(",", "")))
            for m in re.findall(r"\| `(sample-\w+)\.jsonl\.zst` \| [\d,]+ \| ([\d,]+) \| [\d,]+ \| ([\d,]+) \|",
                                notice)}
    assert rows["sample-train"] == (d.n_train_docs, len(d.train))
    assert rows["sample-val"] == (len(val_texts), len(d.val))


def test_second_load_hits_cache(sample: tuple[Path, TokenData], monkeypatch: pytest.MonkeyPatch) -> None:
    tmp, first = sample
    folder = cache_folder(tmp, first)
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}

    def no_build(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(data_mod, "_build", no_build)
    second = load_tokens(cfg(tmp), progress=False)
    assert second.fingerprint == first.fingerprint
    np.testing.assert_array_equal(second.train, first.train)
    np.testing.assert_array_equal(second.val, first.val)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------------------------------------
# File sources


def test_jsonl_and_zst_give_the_same_tokens(tmp_path: Path, tok: Tokenizer) -> None:
    texts, val = corpus(30), corpus(5, seed=1)
    write_docs(tmp_path / "plain.jsonl", texts)
    write_docs(tmp_path / "packed.jsonl.zst", texts)
    write_docs(tmp_path / "val.jsonl", val)
    a = load_tokens(cfg(tmp_path, train=str(tmp_path / "plain.jsonl"), val=str(tmp_path / "val.jsonl")),
                    progress=False)
    b = load_tokens(cfg(tmp_path, train=str(tmp_path / "packed.jsonl.zst"), val=str(tmp_path / "val.jsonl")),
                    progress=False)
    np.testing.assert_array_equal(a.train, expected_stream(tok, texts))
    np.testing.assert_array_equal(b.train, a.train)
    np.testing.assert_array_equal(a.val, expected_stream(tok, val))
    assert a.n_train_docs == 30
    assert a.fingerprint != b.fingerprint  # different files, different cache entries


def test_json_array_file(tmp_path: Path, tok: Tokenizer) -> None:
    texts = corpus(12)
    (tmp_path / "docs.json").write_text(json.dumps([{"text": t} for t in texts]))
    write_docs(tmp_path / "val.jsonl", ["held out"])
    d = load_tokens(cfg(tmp_path, train=str(tmp_path / "docs.json"), val=str(tmp_path / "val.jsonl")),
                    progress=False)
    np.testing.assert_array_equal(d.train, expected_stream(tok, texts))


def test_comma_separated_and_glob_sources_agree(tmp_path: Path, tok: Tokenizer) -> None:
    parts = {"a.jsonl": corpus(10, seed=2), "b.jsonl.zst": corpus(15, seed=3), "c.jsonl": corpus(8, seed=4)}
    for name, texts in parts.items():
        write_docs(tmp_path / "d" / name, texts)
    write_docs(tmp_path / "val.jsonl", corpus(3, seed=9))
    val = str(tmp_path / "val.jsonl")
    listed = load_tokens(cfg(tmp_path, train=",".join(str(tmp_path / "d" / n) for n in parts), val=val),
                         progress=False)
    globbed = load_tokens(cfg(tmp_path, train=f"{tmp_path}/d/*.jsonl, {tmp_path}/d/*.zst", val=val),
                          progress=False)
    assert listed.fingerprint == globbed.fingerprint  # the same files, sorted: the same cache entry
    np.testing.assert_array_equal(listed.train, globbed.train)
    # Every document of every file is there exactly once (interleaving may reorder them across files).
    expected = sorted(split_docs(expected_stream(tok, [t for ts in parts.values() for t in ts])))
    assert sorted(split_docs(np.asarray(listed.train))) == expected
    assert listed.n_train_docs == 33


def test_files_are_interleaved_in_proportion(tmp_path: Path, tok: Tokenizer, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    # Small read chunks make these small files many chunks long, as the real shards are.
    monkeypatch.setattr(data_mod, "READ_CHUNK", 256)
    first, second = corpus(60, seed=5), corpus(20, seed=6)
    write_docs(tmp_path / "big.jsonl.zst", first)
    write_docs(tmp_path / "small.jsonl.zst", second)
    write_docs(tmp_path / "val.jsonl", ["v"])
    d = load_tokens(cfg(tmp_path, train=f"{tmp_path}/*.jsonl.zst", val=str(tmp_path / "val.jsonl")),
                    progress=False)
    owner = {doc: 0 for doc in split_docs(expected_stream(tok, first))}
    owner |= {doc: 1 for doc in split_docs(expected_stream(tok, second))}
    order = [owner[doc] for doc in split_docs(np.asarray(d.train))]
    assert sorted(order) == [0] * 60 + [1] * 20
    # Concatenation would put all 60 of one file first; interleaving mixes both into each half.
    half = order[:40]
    assert 0 < sum(half) < 20 and 0 < half.count(0) < 40


def test_holdout_rule_without_val(tmp_path: Path, tok: Tokenizer) -> None:
    texts = corpus(400, seed=7)
    held = [t for t in texts if is_holdout(t)]
    assert 0 < len(held) < 20  # ~1%; the corpus is fixed, so this is a property of the test data
    write_docs(tmp_path / "all.jsonl", texts)
    d = load_tokens(cfg(tmp_path, train=str(tmp_path / "all.jsonl")), progress=False)
    np.testing.assert_array_equal(d.val, expected_stream(tok, held))
    np.testing.assert_array_equal(d.train, expected_stream(tok, [t for t in texts if not is_holdout(t)]))
    assert d.n_train_docs == 400 - len(held)
    assert "md5" in d.source


def test_empty_documents_are_skipped(tmp_path: Path, tok: Tokenizer) -> None:
    write_docs(tmp_path / "t.jsonl", ["one", "", "two"])
    write_docs(tmp_path / "v.jsonl", ["three"])
    d = load_tokens(cfg(tmp_path, train=str(tmp_path / "t.jsonl"), val=str(tmp_path / "v.jsonl")), progress=False)
    np.testing.assert_array_equal(d.train, expected_stream(tok, ["one", "two"]))
    assert d.n_train_docs == 2


def test_text_field(tmp_path: Path, tok: Tokenizer) -> None:
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"content": t}) + "\n" for t in ["alpha", "beta"]))
    (tmp_path / "v.jsonl").write_text(json.dumps({"content": "gamma"}) + "\n")
    spec = {"train": str(tmp_path / "t.jsonl"), "val": str(tmp_path / "v.jsonl")}
    d = load_tokens(cfg(tmp_path, text_field="content", **spec), progress=False)
    np.testing.assert_array_equal(d.train, expected_stream(tok, ["alpha", "beta"]))
    with pytest.raises(ConfigError, match=r"t\.jsonl:1: no 'text' field \(fields: content\)"):
        load_tokens(cfg(tmp_path, **spec), progress=False)


# ----------------------------------------------------------------------------------------------------------
# Cache key


def test_cache_key_changes_with_file_tokenizer_and_field(tmp_path: Path, tok: Tokenizer) -> None:
    train, val = tmp_path / "t.jsonl", tmp_path / "v.jsonl"
    write_docs(train, ["a blueberry pie", "second doc"])
    write_docs(val, ["val doc"])
    spec = {"train": str(train), "val": str(val)}
    base = load_tokens(cfg(tmp_path, **spec), progress=False)

    write_docs(train, ["a blueberry pie", "second doc", "a third doc"])  # content, size and mtime change
    changed = load_tokens(cfg(tmp_path, **spec), progress=False)
    assert changed.fingerprint != base.fingerprint
    assert changed.n_train_docs == 3

    other_tok = load_tokenizer("")
    other_tok.add_tokens(["blueberry pie"])
    other_tok.save(str(tmp_path / "tokenizer.json"))
    retok = load_tokens(cfg(tmp_path, tokenizer=str(tmp_path / "tokenizer.json"), **spec), progress=False)
    assert retok.fingerprint != changed.fingerprint
    assert retok.vocab_size == 49_153
    # The added token appears: the stream really was re-tokenized, not served from the old entry.
    assert 49_152 in retok.train and 49_152 not in changed.train

    (tmp_path / "f.jsonl").write_text(json.dumps({"text": "x", "body": "y"}) + "\n")
    keys = {load_tokens(cfg(tmp_path, train=str(tmp_path / "f.jsonl"), val=str(tmp_path / "f.jsonl"),
                            text_field=f), progress=False).fingerprint for f in ("text", "body")}
    assert len(keys) == 2


def test_same_tokenizer_from_another_path_shares_the_cache(tmp_path: Path, tok: Tokenizer) -> None:
    (tmp_path / "tokenizer.json").write_text(tok.to_str())
    assert tokenizer_fingerprint(load_tokenizer(str(tmp_path / "tokenizer.json"))) == tokenizer_fingerprint(tok)
    assert tokenizer_fingerprint(load_tokenizer(str(tmp_path))) == tokenizer_fingerprint(tok)  # a folder


def test_concurrent_builders_share_one_entry(tmp_path: Path, tok: Tokenizer, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    write_docs(tmp_path / "t.jsonl.zst", corpus(200, seed=8))
    write_docs(tmp_path / "v.jsonl", ["val"])
    config = cfg(tmp_path, train=str(tmp_path / "t.jsonl.zst"), val=str(tmp_path / "v.jsonl"))
    builds = []
    real_build = data_mod._build

    def counting_build(*args: Any, **kwargs: Any) -> Any:
        builds.append(threading.get_ident())
        time.sleep(0.3)  # a build that takes a while, so the racers really overlap
        return real_build(*args, **kwargs)

    monkeypatch.setattr(data_mod, "_build", counting_build)

    def race(n: int) -> list[TokenData]:
        results: list[TokenData] = []
        errors: list[BaseException] = []
        start = threading.Barrier(n)

        def same_start(spec: str) -> Tokenizer:
            start.wait()  # every racer looks at the (empty) cache at the same moment
            return tok

        monkeypatch.setattr(data_mod, "load_tokenizer", same_start)

        def one() -> None:
            try:
                results.append(load_tokens(config, progress=False))
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        return results

    locked = race(3)
    assert len(builds) == 1  # the lock makes the others wait and reuse the entry
    expected = expected_stream(tok, corpus(200, seed=8))
    for d in locked:
        np.testing.assert_array_equal(d.train, expected)

    # Without the lock (no flock on this file system), every racer builds; the entry must still be whole.
    folder = cache_folder(tmp_path, locked[0])
    for p in folder.iterdir():
        p.unlink()
    @contextlib.contextmanager
    def no_lock(path, **kw):  # what file_lock does on a file system without flock
        yield False

    monkeypatch.setattr(data_mod, "file_lock", no_lock)
    builds.clear()
    unlocked = race(3)
    assert len(builds) == 3  # they did race: all built, each renaming its own complete files into place
    for d in unlocked:
        np.testing.assert_array_equal(d.train, expected)
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "train.u16", "val.u16"]


# ----------------------------------------------------------------------------------------------------------
# The offline source


def make_fake_offline(root: Path) -> dict[str, list[str]]:
    docs = {"wiki-en-2019/train-0000.jsonl.zst": corpus(20, seed=10),
            "openstax-ccby/train-0000.jsonl.zst": corpus(6, seed=11),
            "val.jsonl.zst": corpus(4, seed=12)}
    for name, texts in docs.items():
        write_docs(root / name, texts)
    return docs


def test_offline_source_via_env(tmp_path: Path, tok: Tokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = make_fake_offline(tmp_path / "corpus")
    monkeypatch.setenv("BLUEBERRY_DATA", str(tmp_path / "corpus"))
    d = load_tokens(cfg(tmp_path, train="offline"), progress=False)
    train_texts = docs["wiki-en-2019/train-0000.jsonl.zst"] + docs["openstax-ccby/train-0000.jsonl.zst"]
    assert sorted(split_docs(np.asarray(d.train))) == sorted(split_docs(expected_stream(tok, train_texts)))
    np.testing.assert_array_equal(d.val, expected_stream(tok, docs["val.jsonl.zst"]))
    assert d.n_train_docs == 26
    assert str(tmp_path / "corpus") in d.source

    # The folder itself as the source (what --data <folder> passes) is the same data and cache entry.
    direct = load_tokens(cfg(tmp_path, train=str(tmp_path / "corpus")), progress=False)
    assert direct.fingerprint == d.fingerprint
    # And "offline" as the val of another source means its val file.
    write_docs(tmp_path / "t.jsonl", ["some training text"])
    mixed = load_tokens(cfg(tmp_path, train=str(tmp_path / "t.jsonl"), val="offline"), progress=False)
    np.testing.assert_array_equal(mixed.val, d.val)


def test_offline_root_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BLUEBERRY_DATA", raising=False)
    monkeypatch.setattr(data_mod, "REPO_ROOT", tmp_path / "elsewhere" / "repo")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="offline corpus not found") as err:
        data_mod.find_offline_root()
    assert "--data" in str(err.value) and "BLUEBERRY_DATA" in str(err.value)
    assert str(tmp_path / "shared" / "data") in str(err.value)

    (tmp_path / "data" / "offline").mkdir(parents=True)
    assert data_mod.find_offline_root() == (tmp_path / "data" / "offline").resolve()
    (tmp_path / "shared" / "data").mkdir(parents=True)  # earlier in the search order
    assert data_mod.find_offline_root() == (tmp_path / "shared" / "data").resolve()

    monkeypatch.setenv("BLUEBERRY_DATA", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="BLUEBERRY_DATA"):
        data_mod.find_offline_root()


# ----------------------------------------------------------------------------------------------------------
# Hugging Face datasets (offline: local folders, and a mocked hub name)


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def test_local_hf_dataset_folder_with_validation_split(tmp_path: Path, tok: Tokenizer, hf_cache: None) -> None:
    train, val = corpus(25, seed=13), corpus(4, seed=14)
    write_docs(tmp_path / "ds" / "train.jsonl", train)
    write_docs(tmp_path / "ds" / "validation.jsonl", val)
    d = load_tokens(cfg(tmp_path, train=str(tmp_path / "ds")), progress=False)
    np.testing.assert_array_equal(d.train, expected_stream(tok, train))
    np.testing.assert_array_equal(d.val, expected_stream(tok, val))
    assert "validation split" in d.source


def test_hf_name_without_validation_split_holds_out_its_first_documents(
        tmp_path: Path, tok: Tokenizer, hf_cache: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    texts = corpus(400, seed=7)
    write_docs(tmp_path / "hub" / "data.jsonl", texts)
    calls: list[tuple[str, dict[str, Any]]] = []
    real_load = datasets.load_dataset

    def fake_hub(name: str, **kwargs: Any) -> Any:
        calls.append((name, kwargs))
        assert name == "someone/blueberry-docs"
        return real_load(str(tmp_path / "hub"), **kwargs)  # the real loader, on a local copy

    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    monkeypatch.setattr(data_mod, "hub_unreachable", lambda: "")
    monkeypatch.setattr(data_mod, "HEAD_VAL_DOCS", 30)
    d = load_tokens(cfg(tmp_path, train="someone/blueberry-docs"), progress=False)
    assert ("someone/blueberry-docs", {"split": "train", "streaming": True}) in calls  # streamed, never whole
    # no validation split: the first 30 documents are val, and train skips them
    np.testing.assert_array_equal(d.val, expected_stream(tok, texts[:30]))
    np.testing.assert_array_equal(d.train, expected_stream(tok, texts[30:]))
    assert "first 30 documents of its train split" in d.source

    calls.clear()
    again = load_tokens(cfg(tmp_path, train="someone/blueberry-docs"), progress=False)
    assert again.fingerprint == d.fingerprint and calls == []  # a cache hit does not touch the hub

    monkeypatch.setattr(datasets, "load_dataset", lambda name, **kw: (_ for _ in ()).throw(
        ConnectionError("no network")))
    with pytest.raises(ConfigError, match="someone/other.*no network"):
        load_tokens(cfg(tmp_path, train="someone/other"), progress=False)


def hub_layout(root: Path, texts: list[str], shards: int = 3) -> Path:
    """A dataset folder laid out as on the hub: data/train-0000i-of-0000n.parquet, one text column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "data").mkdir(parents=True)
    per = -(-len(texts) // shards)
    for i in range(shards):
        table = pa.table({"text": texts[i * per:(i + 1) * per], "source": ["fake"] * len(texts[i * per:(i + 1) * per])})
        pq.write_table(table, root / "data" / f"train-{i:05d}-of-{shards:05d}.parquet")
    return root


def counting_loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wrap the streamed datasets so that the rows they hand out are counted (one counter per load)."""
    counts: list[int] = []
    real = data_mod._hf_load

    class Counted:
        def __init__(self, ds: Any, i: int) -> None:
            self.ds, self.i, self.column_names = ds, i, ds.column_names

        def select_columns(self, cols: list[str]) -> Counted:
            return Counted(self.ds.select_columns(cols), self.i)

        def iter(self, batch_size: int) -> Any:
            for batch in self.ds.iter(batch_size=batch_size):
                counts[self.i] += len(next(iter(batch.values())))
                yield batch

    def load(name: str, split: str) -> Any:
        counts.append(0)
        return Counted(real(name, split), len(counts) - 1)

    monkeypatch.setattr(data_mod, "_hf_load", load)
    return counts


def test_streamed_dataset_stops_at_the_token_cap(tmp_path: Path, tok: Tokenizer, hf_cache: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    texts = corpus(3000, seed=31)
    root = hub_layout(tmp_path / "hub", texts)
    monkeypatch.setattr(data_mod, "HEAD_VAL_DOCS", 25)
    monkeypatch.setattr(data_mod, "BATCH_DOCS", 20)
    counts = counting_loads(monkeypatch)
    full = expected_stream(tok, texts[25:])
    cap = 5_000  # ~200 of the 2,975 train documents
    d = load_tokens(cfg(tmp_path, train=str(root), stream_tokens=cap), progress=False)
    assert len(d.train) == cap  # exactly the cap: the last document is cut
    np.testing.assert_array_equal(d.train, full[:cap])
    np.testing.assert_array_equal(d.val, expected_stream(tok, texts[:25]))
    n_docs = int((full[:cap] == 0).sum()) + int(full[cap - 1] != 0)
    assert d.n_train_docs == n_docs
    assert "first 5,000 train tokens" in d.source and "first 25 documents of its train split" in d.source
    # the stream stopped at the cap (a few batches of read-ahead), long before the end of the data
    train_rows = counts[0]  # the train split's load; the second is the validation split it does not have
    # (read-ahead: the prefetch queues hold up to ~7 batches of 20)
    assert 25 + n_docs <= train_rows <= 25 + n_docs + 8 * 20 < len(texts) / 5, (train_rows, n_docs)
    assert len(counts) == 2

    # A smaller cap is the larger entry's prefix: no second stream, the same tokens as its own build would be.
    def no_build(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("built again")

    monkeypatch.setattr(data_mod, "_build", no_build)
    small = load_tokens(cfg(tmp_path, train=str(root), stream_tokens=2_000), progress=False)
    assert len(small.train) == 2_000 and small.fingerprint != d.fingerprint
    np.testing.assert_array_equal(small.train, full[:2_000])
    np.testing.assert_array_equal(small.val, d.val)
    assert "first 2,000 train tokens" in small.source and len(counts) == 2
    monkeypatch.undo()
    monkeypatch.setattr(data_mod, "HEAD_VAL_DOCS", 25)
    monkeypatch.setattr(data_mod, "BATCH_DOCS", 20)
    fresh = load_tokens(cfg(tmp_path / "other", train=str(root), stream_tokens=2_000), progress=False)
    assert fresh.fingerprint == small.fingerprint and fresh.n_train_docs == small.n_train_docs
    np.testing.assert_array_equal(fresh.train, small.train)

    # A cap beyond the data: the whole stream.
    whole = load_tokens(cfg(tmp_path, train=str(root), stream_tokens=10 * len(full)), progress=False)
    np.testing.assert_array_equal(whole.train, full)


def test_streamed_validation_split_gives_its_first_documents(tmp_path: Path, tok: Tokenizer, hf_cache: None,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    train, val = corpus(60, seed=32), corpus(40, seed=33)
    write_docs(tmp_path / "ds" / "train.jsonl", train)
    write_docs(tmp_path / "ds" / "validation.jsonl", val)
    monkeypatch.setattr(data_mod, "HEAD_VAL_DOCS", 15)
    d = load_tokens(cfg(tmp_path, train=str(tmp_path / "ds")), progress=False)
    np.testing.assert_array_equal(d.train, expected_stream(tok, train))
    np.testing.assert_array_equal(d.val, expected_stream(tok, val[:15]))
    assert "first 15 documents of its validation split" in d.source


def test_no_offline_corpus_streams_the_hub(tmp_path: Path, tok: Tokenizer, hf_cache: None,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    texts = corpus(400, seed=34)
    root = hub_layout(tmp_path / "hub", texts, shards=2)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("BLUEBERRY_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(data_mod, "HUB_DATASET", str(root))  # the hub's name, served from a local copy
    monkeypatch.setattr(data_mod, "HEAD_VAL_DOCS", 10)
    d = load_tokens(cfg(tmp_path, train="offline", stream_tokens=1_000), progress=False)
    assert len(d.train) == 1_000
    np.testing.assert_array_equal(d.train, expected_stream(tok, texts[10:])[:1_000])
    np.testing.assert_array_equal(d.val, expected_stream(tok, texts[:10]))
    assert "no offline corpus" in d.source and str(root) in d.source
    # Uncapped, the stand-in takes what the offline corpus holds.
    assert data_mod._plan(cfg(tmp_path, train="offline")).cap == data_mod.OFFLINE_TRAIN_TOKENS == 79_434_684


def test_no_offline_corpus_and_no_hub_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("BLUEBERRY_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        load_tokens(cfg(tmp_path, train="offline", stream_tokens=1_000), progress=False)
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "\n" not in message
    for part in ("no offline corpus", "BLUEBERRY_DATA", "--data", "network", "python -m trainer.prepare",
                 data_mod.HUB_DATASET, "HF_HUB_OFFLINE=1"):
        assert part in message, part


def test_hub_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert data_mod.hub_unreachable() == "HF_DATASETS_OFFLINE=1"
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setattr(data_mod, "HUB_PROBE_TIMEOUT_S", 2.0)
    assert "cannot reach 127.0.0.1:9" in data_mod.hub_unreachable()


def test_tracks_cap_their_streams() -> None:
    assert make_config("speedrun-4.5").data.stream_tokens == 40_000_000
    assert make_config("marathon").data.stream_tokens == 79_434_684
    # a quick run keeps the track's cap (and cache entry); a longer one takes more; an explicit cap wins
    assert make_config("speedrun-4.5", overrides={"max_tokens": "1000000"}).data.stream_tokens == 40_000_000
    assert make_config("speedrun-4.5", overrides={"max_tokens": "50000000"}).data.stream_tokens == 50_000_000
    assert make_config("speedrun-4.5", overrides={"data.stream_tokens": "7"}).data.stream_tokens == 7
    with pytest.raises(ConfigError, match="stream_tokens"):
        DataConfig(stream_tokens=-1)


def test_hf_dataset_without_text_column(tmp_path: Path, hf_cache: None) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "train.jsonl").write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(ConfigError, match="no 'text' column"):
        load_tokens(cfg(tmp_path, train=str(tmp_path / "ds")), progress=False)


def test_hf_tokenizer_name(monkeypatch: pytest.MonkeyPatch, tok: Tokenizer) -> None:
    names: list[str] = []

    class FakeTokenizer:
        @staticmethod
        def from_pretrained(name: str) -> Tokenizer:
            names.append(name)
            return Tokenizer.from_str(tok.to_str())

    monkeypatch.setattr(data_mod, "Tokenizer", FakeTokenizer)
    loaded = load_tokenizer("HuggingFaceTB/SmolLM2-135M")
    assert names == ["HuggingFaceTB/SmolLM2-135M"]
    assert tokenizer_fingerprint(loaded) == tokenizer_fingerprint(tok)


# ----------------------------------------------------------------------------------------------------------
# Tokenizer checks


def test_truncating_tokenizer_is_not_allowed_to_cut_documents(tmp_path: Path, tok: Tokenizer) -> None:
    truncating = Tokenizer.from_str(tok.to_str())
    truncating.enable_truncation(4)
    truncating.save(str(tmp_path / "tokenizer.json"))
    loaded = load_tokenizer(str(tmp_path / "tokenizer.json"))
    assert loaded.truncation is None
    assert len(loaded.encode("a sentence that is clearly longer than four tokens").ids) > 4


def word_level(tmp_path: Path, vocab: dict[str, int]) -> Path:
    wl = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    wl.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "wl-tokenizer.json"
    wl.save(str(path))
    return path


def test_tokenizer_without_eos_falls_back_to_id_0(tmp_path: Path) -> None:
    path = word_level(tmp_path, {"[UNK]": 0, "hello": 1, "world": 2})
    write_docs(tmp_path / "t.jsonl", ["hello world", "world"])
    write_docs(tmp_path / "v.jsonl", ["hello"])
    d = load_tokens(cfg(tmp_path, train=str(tmp_path / "t.jsonl"), val=str(tmp_path / "v.jsonl"),
                        tokenizer=str(path)), progress=False)
    assert d.eos_id == 0 and d.vocab_size == 3
    np.testing.assert_array_equal(d.train, [1, 2, 0, 2, 0])


def test_vocab_too_large_for_uint16(tmp_path: Path) -> None:
    path = word_level(tmp_path, {"[UNK]": 0, **{f"w{i}": i for i in range(1, 70_000)}})
    write_docs(tmp_path / "t.jsonl", ["w1"])
    with pytest.raises(ConfigError, match="uint16"):
        load_tokens(cfg(tmp_path, train=str(tmp_path / "t.jsonl"), tokenizer=str(path)), progress=False)


def test_bad_tokenizer_specs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tokenizer not found"):
        load_tokenizer(str(tmp_path / "nope" / "tokenizer.json"))
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ConfigError, match="broken.json"):
        load_tokenizer(str(tmp_path / "broken.json"))


# ----------------------------------------------------------------------------------------------------------
# Errors: one ConfigError line naming the file


def assert_clean_cache(tmp_path: Path) -> None:
    """A failed build leaves no temporary or partial files behind."""
    leftovers = [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.name != ".lock"]
    assert leftovers == []


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data file not found: .*missing\.jsonl"):
        load_tokens(cfg(tmp_path, train=str(tmp_path / "missing.jsonl")), progress=False)


def test_unknown_name_is_not_taken_for_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data file not found: smaple.*sample, offline"):
        load_tokens(cfg(tmp_path, train="smaple"), progress=False)


def test_empty_glob(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no files match .*\*\.jsonl"):
        load_tokens(cfg(tmp_path, train=f"{tmp_path}/nothing/*.jsonl"), progress=False)


def test_unsupported_extension(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ConfigError, match=r"notes\.txt: unsupported file type"):
        load_tokens(cfg(tmp_path, train=str(tmp_path / "notes.txt")), progress=False)


def test_corrupt_zst(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl.zst").write_bytes(b"this is not zstd at all" * 10)
    with pytest.raises(ConfigError, match=r"bad\.jsonl\.zst: corrupt zstd"):
        load_tokens(cfg(tmp_path, train=str(tmp_path / "bad.jsonl.zst")), progress=False)
    assert_clean_cache(tmp_path)


def test_truncated_zst(tmp_path: Path) -> None:
    good = write_docs(tmp_path / "good.jsonl.zst", corpus(50))
    (tmp_path / "cut.jsonl.zst").write_bytes(good.read_bytes()[:-40])
    with pytest.raises(ConfigError, match=r"cut\.jsonl\.zst: (truncated|corrupt)"):
        load_tokens(cfg(tmp_path, train=str(tmp_path / "cut.jsonl.zst")), progress=False)
    assert_clean_cache(tmp_path)


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.zst"])
def test_bad_json_line_names_file_and_line(tmp_path: Path, suffix: str) -> None:
    lines = [json.dumps({"text": "fine"}), json.dumps({"text": "also fine"}), '{"text": "broken', "{}"]
    blob = ("\n".join(lines) + "\n").encode()
    if suffix.endswith(".zst"):
        blob = zstandard.ZstdCompressor().compress(blob)
    (tmp_path / f"docs{suffix}").write_bytes(blob)
    with pytest.raises(ConfigError, match=rf"docs{suffix.replace('.', '[.]')}:3: invalid JSON") as err:
        load_tokens(cfg(tmp_path, train=str(tmp_path / f"docs{suffix}")), progress=False)
    assert "\n" not in str(err.value)
    assert_clean_cache(tmp_path)


def test_missing_text_field_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "docs.jsonl").write_text(json.dumps({"text": "ok"}) + "\n" + json.dumps({"body": "no"}) + "\n")
    with pytest.raises(ConfigError, match=r"docs\.jsonl:2: no 'text' field"):
        load_tokens(cfg(tmp_path, train=str(tmp_path / "docs.jsonl")), progress=False)


def test_non_string_text(tmp_path: Path) -> None:
    (tmp_path / "docs.jsonl").write_text(json.dumps({"text": 12}) + "\n")
    with pytest.raises(ConfigError, match=r"docs\.jsonl:1: field 'text' is int"):
        load_tokens(cfg(tmp_path, train=str(tmp_path / "docs.jsonl")), progress=False)


def test_empty_dataset(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n\n")
    write_docs(tmp_path / "v.jsonl", ["val"])
    with pytest.raises(ConfigError, match="empty train set"):
        load_tokens(cfg(tmp_path, train=str(tmp_path / "empty.jsonl"), val=str(tmp_path / "v.jsonl")),
                    progress=False)
    assert_clean_cache(tmp_path)


def test_holdout_that_selects_nothing(tmp_path: Path) -> None:
    texts = [t for t in corpus(30, seed=20) if not is_holdout(t)]
    write_docs(tmp_path / "t.jsonl", texts)
    with pytest.raises(ConfigError, match="empty val set.*data.val"):
        load_tokens(cfg(tmp_path, train=str(tmp_path / "t.jsonl")), progress=False)


# ----------------------------------------------------------------------------------------------------------
# Validation windows


def test_val_windows_are_fixed_whatever_the_budget(sample: tuple[Path, TokenData]) -> None:
    _, d = sample
    long = make_config("tiny-speedrun")
    short = make_config("tiny-speedrun", overrides={"max_tokens": long.horizon_tokens // 2})
    assert short.horizon_tokens < long.horizon_tokens  # two runs of one track with different budgets
    seq_len, n_tokens = long.hp.seq_len, long.track.val_tokens
    a = val_windows(d.val, short.hp.seq_len, short.track.val_tokens)
    b = val_windows(d.val, seq_len, n_tokens)
    np.testing.assert_array_equal(a, b)
    n_windows = max(1, n_tokens // seq_len)
    assert a.dtype == np.int64 and a.shape == (n_windows, seq_len)
    np.testing.assert_array_equal(a.reshape(-1), np.asarray(d.val[: n_windows * seq_len], dtype=np.int64))


def test_val_windows_edges(caplog: pytest.LogCaptureFixture) -> None:
    val = np.arange(1000, dtype=np.uint16)
    np.testing.assert_array_equal(val_windows(val, 100, 50), val[:100].reshape(1, 100))  # at least one window
    np.testing.assert_array_equal(val_windows(val, 100, 299), val[:200].reshape(2, 100))  # whole windows only
    np.testing.assert_array_equal(val_windows(val, 100, 10_000), val[:1000].reshape(10, 100))  # capped
    assert "holds 10" in caplog.text
    np.testing.assert_array_equal(val_windows(val, 100, 400)[:2], val_windows(val, 100, 200))
    with pytest.raises(ConfigError, match="fewer than one window"):
        val_windows(val, 1001, 5000)


# ----------------------------------------------------------------------------------------------------------
# The full offline corpus (minutes on 2 cores)


@pytest.mark.slow
def test_full_offline_corpus_counts(tmp_path: Path) -> None:
    try:
        data_mod.find_offline_root()
    except ConfigError:
        pytest.skip("offline corpus not present")
    d = load_tokens(cfg(tmp_path, train="offline"), progress=False)
    # shared/data/README.md: 79,397,085 text tokens in 37,600 docs (one, Oscar_Wilde, has empty text and
    # is skipped), one EOS each; val 868,544 tokens in 419 docs.
    assert d.n_train_docs == 37_599
    assert len(d.train) == 79_397_085 + 37_599
    assert len(d.val) == 868_544 + 419
