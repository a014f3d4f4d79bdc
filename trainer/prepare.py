"""``python -m trainer.prepare``: get a track's data ready ahead of time.

    python -m trainer.prepare --track speedrun-4.5          # fill the token cache (streams the hub's data
                                                            # when there is no offline corpus)
    python -m trainer.prepare --track marathon --export DIR # write the hub's data as an offline corpus folder
                                                            # (for a machine without the network)

Without ``--export`` it fills the token cache that ``python -m trainer`` and searches read: the track's data
(``--data`` to name another source), tokenized once. Where there is no offline corpus that is the upstream's
hub data, streamed up to the track's token cap (40M tokens for speedrun-4.5, 60M for speedrun-3.5, 79.4M for
the marathon; a larger entry also serves the smaller caps).

With ``--export DIR`` it streams the hub's data (or ``--data``) and writes it in the offline corpus's layout:
``DIR/val.jsonl.zst`` (the held-out documents), ``DIR/<dataset>/train-0000.jsonl.zst`` ... (about 15M tokens
a shard, whole documents up to the track's cap), ``DIR/tokenizer.json`` and ``DIR/prepare.json`` (what was
written, from where). Copy DIR to the other machine and point ``BLUEBERRY_DATA`` (or ``--data``) at it.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import zstandard

from trainer.config import TRACKS, ConfigError, DataConfig, make_config, parse_set
from trainer.data import (
    ASSETS,
    HUB_DATASET,
    _Head,
    _HFDataset,
    _plan,
    _reader,
    cache_root,
    load_tokenizer,
    load_tokens,
)

SHARD_TOKENS = 15_000_000  # train tokens per shard, as in the offline corpus
ZSTD_LEVEL = 10  # the offline corpus used 19; 10 is several times faster and ~10% larger

log = logging.getLogger("trainer.prepare")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer.prepare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--track", default="speedrun-4.5", help=f"one of {', '.join(TRACKS)}: its data and token cap "
                                                           f"(default speedrun-4.5)")
    p.add_argument("--data", default=None, help="data source (default: the track's; with --export, the hub's "
                                                f"{HUB_DATASET})")
    p.add_argument("--tokens", type=int, default=None,
                   help="train tokens to take from a streamed dataset (default: the track's max_tokens)")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="a data setting, e.g. --set cache_dir=/big/disk --set text_field=content")
    p.add_argument("--export", metavar="DIR", default=None,
                   help="write the data as an offline corpus folder instead of filling the cache")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _data_config(args: argparse.Namespace) -> DataConfig:
    overrides = parse_set(args.overrides)
    if args.tokens is not None:
        overrides["stream_tokens"] = str(args.tokens)
    data = args.data or (HUB_DATASET if args.export else None)
    return make_config(args.track, data=data, overrides=overrides).data


def _tokenizer_json(data: DataConfig) -> bytes:
    if not data.tokenizer:  # the shipped file, byte for byte (its sha256 is in trainer/assets/NOTICE.md)
        return zstandard.ZstdDecompressor().decompress((ASSETS / "tokenizer.json.zst").read_bytes())
    return load_tokenizer(data.tokenizer).to_str().encode("utf-8")


class _ZstLines:
    """A ``.jsonl.zst`` file written one JSON line at a time."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._raw = path.open("wb")
        self._writer = zstandard.ZstdCompressor(level=ZSTD_LEVEL).stream_writer(self._raw, closefd=False)
        self._text = io.TextIOWrapper(self._writer, encoding="utf-8", write_through=True)
        self.docs = 0

    def write(self, doc: dict[str, Any]) -> None:
        self._text.write(json.dumps(doc, ensure_ascii=False) + "\n")
        self.docs += 1

    def close(self) -> None:
        self._text.flush()
        self._text.detach()
        self._writer.close()
        self._raw.close()


def export(data: DataConfig, out: Path, *, progress: bool = True) -> dict[str, Any]:
    """Write ``data`` (a streamed dataset, up to its ``stream_tokens``) as an offline corpus folder ``out``.

    The split is the one the token cache uses: the held-out documents go to ``val.jsonl.zst``, and train
    documents, whole, until the train token count reaches the cap. Returns what ``prepare.json`` records.
    """
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; --export writes a new folder")
    plan = _plan(data)
    tok = load_tokenizer(data.tokenizer)
    enough = threading.Event()
    reader = _reader(plan, data.text_field, enough)
    name = plan.train.name.rstrip("/").rsplit("/", 1)[-1] if isinstance(plan.train, _HFDataset) else "data"
    source = plan.train.name if isinstance(plan.train, _HFDataset) else plan.description
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    val = _ZstLines(out / "val.jsonl.zst")
    shards: list[_ZstLines] = []
    shard_tokens = 0
    tokens = {"train": 0, "val": 0}
    counters = {"train": 0, "val": 0}
    from tqdm.auto import tqdm

    bar = tqdm(total=plan.cap or None, unit="tok", unit_scale=True, desc=f"exporting {plan.description}",
               disable=not progress or not sys.stderr.isatty(), leave=False)
    try:
        for batch in reader.batches:
            encodings = tok.encode_batch_fast(batch.texts, add_special_tokens=False)
            for text, enc, to_val in zip(batch.texts, encodings, batch.to_val):
                split = "val" if to_val else "train"
                if split == "train" and plan.cap and tokens["train"] >= plan.cap:
                    continue
                doc = {"id": f"{name}/{split}/{counters[split]}", "source": source, "text": text}
                counters[split] += 1
                n = len(enc.ids) + 1  # one EOS per document, as the token cache counts them
                tokens[split] += n
                if to_val:
                    val.write(doc)
                    continue
                if not shards or shard_tokens >= SHARD_TOKENS:
                    if shards:
                        shards[-1].close()
                    shards.append(_ZstLines(out / name / f"train-{len(shards):04d}.jsonl.zst"))
                    shard_tokens = 0
                shards[-1].write(doc)
                shard_tokens += n
            if plan.cap and tokens["train"] >= plan.cap:
                enough.set()
            bar.update(min(tokens["train"], plan.cap or tokens["train"]) - bar.n)
    finally:
        bar.close()
        val.close()
        if shards:
            shards[-1].close()
    if not shards or not val.docs:
        raise ConfigError(f"{plan.description} gave {counters['train']} train and {val.docs} val documents; "
                          f"nothing to export")
    (out / "tokenizer.json").write_bytes(_tokenizer_json(data))
    val_rule = reader.val_description
    meta = {
        "source": source,
        "description": plan.description,
        "validation": val_rule,
        "train_docs": counters["train"],
        "train_tokens": tokens["train"],
        "val_docs": counters["val"],
        "val_tokens": tokens["val"],
        "token_cap": plan.cap,
        "shards": [str(s.path.relative_to(out)) for s in shards],
        "tokens_count": "text tokens + one EOS per document, with tokenizer.json",
        "head_val_docs": plan.val.n_docs if isinstance(plan.val, _Head) else None,
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out / "prepare.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return meta


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    progress = not args.quiet and sys.stderr.isatty()
    try:
        data = _data_config(args)
        if args.export:
            out = Path(args.export).expanduser()
            meta = export(data, out, progress=progress)
            print(f"wrote {out}: {meta['train_docs']:,} train documents ({meta['train_tokens']:,} tokens) in "
                  f"{len(meta['shards'])} shard(s), {meta['val_docs']:,} val documents ({meta['val_tokens']:,} tokens)")
            print(f"use it with: BLUEBERRY_DATA={out} python -m trainer --track {args.track}   (or --data {out})")
            return 0
        tokens = load_tokens(data, progress=progress)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.track}: {len(tokens.train):,} train tokens ({tokens.n_train_docs:,} docs), {len(tokens.val):,} "
          f"val tokens from {tokens.source}")
    print(f"cache: {cache_root(data) / 'tokens'} (entry {tokens.fingerprint})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
