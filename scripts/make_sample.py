"""Build the small corpus sample shipped in ``trainer/assets/`` (the ``sample`` data source).

One-off and deterministic: given the same offline corpus it writes byte-identical files. Run it from the
repository root::

    python scripts/make_sample.py                      # reads ../shared/data (or $BLUEBERRY_DATA)
    python scripts/make_sample.py --data /path/to/data --out trainer/assets

It writes

* ``tokenizer.json.zst``: the SmolLM2 ``tokenizer.json``, byte for byte, zstd-compressed;
* ``sample-train.jsonl.zst``: documents from the *start* of ``wiki-en-2019/train-0000.jsonl.zst`` (about
  80% of the text) and ``openstax-ccby/train-0000.jsonl.zst`` (about 20%), interleaved deterministically,
  every line copied unchanged (all fields kept);
* ``sample-val.jsonl.zst``: documents from the start of ``val.jsonl.zst``, which the offline corpus holds out
  from every training file, so the sample's train and val are disjoint by construction;
* ``NOTICE.md``: sources, licences, how the sample was made and its exact document and token counts.

The source files are shuffled with a fixed seed, so "the start of a file" is already a random draw.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard
from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
LEVEL = 19  # same level as the offline corpus; the sample is written once, so compression time is irrelevant

WIKI = "wiki-en-2019/train-0000.jsonl.zst"
OPENSTAX = "openstax-ccby/train-0000.jsonl.zst"
VAL = "val.jsonl.zst"

# Raw (uncompressed) JSONL bytes to take. Chosen so that the compressed files land at about 2.2 MB and
# 200 KB (the corpus compresses about 3.7x at level 19).
TRAIN_RAW_BYTES = 7_900_000
VAL_RAW_BYTES = 600_000
TRAIN_MIX = ((WIKI, 0.8), (OPENSTAX, 0.2))  # share of the sample's raw bytes taken from each file


@dataclass
class Split:
    lines: list[bytes]
    docs: int
    tokens: int  # text tokens, add_special_tokens=False, no EOS

    @property
    def raw(self) -> bytes:
        return b"".join(self.lines)


def iter_lines(path: Path) -> Iterator[bytes]:
    """The lines of a zstd JSONL file, newline included, in file order."""
    with path.open("rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh) as reader:
        pending = b""
        while chunk := reader.read(1 << 20):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line + b"\n"
        if pending:
            yield pending + b"\n"


def take_interleaved(sources: list[tuple[Path, float]], raw_bytes: int) -> list[bytes]:
    """Take whole lines from the start of each source until ``raw_bytes`` are reached.

    The next line always comes from the source that is furthest below its share (bytes taken / weight is
    smallest; ties go to the earlier source), so the mix holds at every prefix of the sample, not only at
    its end, and the result is deterministic.
    """
    streams = [iter_lines(path) for path, _ in sources]
    taken = [0] * len(sources)
    out: list[bytes] = []
    total = 0
    while total < raw_bytes:
        i = min(range(len(sources)), key=lambda k: (taken[k] / sources[k][1], k))
        line = next(streams[i], None)
        if line is None:
            raise SystemExit(f"{sources[i][0]} ran out before {raw_bytes:,} bytes were taken")
        out.append(line)
        taken[i] += len(line)
        total += len(line)
    return out


def take_prefix(path: Path, raw_bytes: int) -> list[bytes]:
    out: list[bytes] = []
    total = 0
    for line in iter_lines(path):
        if total >= raw_bytes:
            break
        out.append(line)
        total += len(line)
    return out


def count(lines: list[bytes], tok: Tokenizer) -> Split:
    texts = [json.loads(line)["text"] for line in lines]
    tokens = sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
    return Split(lines=lines, docs=len(lines), tokens=tokens)


def per_source(lines: list[bytes]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in lines:
        doc = json.loads(line)
        key = f"{doc.get('source', '?')} ({doc.get('license', '?')})"
        counts[key] = counts.get(key, 0) + 1
    return counts


def write_zst(path: Path, data: bytes) -> int:
    blob = zstandard.ZstdCompressor(level=LEVEL).compress(data)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)
    return len(blob)


def notice(*, train: Split, val: Split, sizes: dict[str, int], tok_sha: str) -> str:
    # The offline val file mixes in held-out CC BY-NC-SA textbook sections; say so only if any were taken.
    nc = any("NC" in src for split in (train, val) for src in per_source(split.lines))
    nc_note = ("\nSome documents above come from CC BY-NC-SA 4.0 OpenStax books (NonCommercial; attribution: "
               "content by OpenStax, Rice University, openstax.org).\n") if nc else ""

    def table(split: Split) -> str:
        rows = "\n".join(f"| {src} | {n:,} |" for src, n in sorted(per_source(split.lines).items()))
        return f"| source (licence) | docs |\n|---|---:|\n{rows}"

    return f"""# Shipped data sample: sources and licences

These files make the `sample` data source of `trainer/data.py`. They were made by
`scripts/make_sample.py` (deterministic; rerun it to reproduce them) from the offline corpus, the
folder `shared/data/` whose `README.md` describes the sources and their cleaning in full.

| file | bytes | docs | tokens (text) | tokens (text + one EOS per doc) |
|---|---:|---:|---:|---:|
| `tokenizer.json.zst` | {sizes['tokenizer.json.zst']:,} | – | – | vocab 49,152 |
| `sample-train.jsonl.zst` | {sizes['sample-train.jsonl.zst']:,} | {train.docs:,} | {train.tokens:,} | {train.tokens + train.docs:,} |
| `sample-val.jsonl.zst` | {sizes['sample-val.jsonl.zst']:,} | {val.docs:,} | {val.tokens:,} | {val.tokens + val.docs:,} |

Token counts use the tokenizer below with `add_special_tokens=False`; `trainer/data.py` appends one
`<|endoftext|>` (id 0) after every document, which gives the last column.

## How the sample was made

- **Train** (`sample-train.jsonl.zst`, {len(train.raw):,} raw bytes): whole JSONL lines, copied unchanged
  (all fields kept), from the *start* of `{WIKI}` and `{OPENSTAX}`. They are interleaved
  deterministically so that at every point about 80% of the raw bytes come from Wikipedia and 20% from
  OpenStax: the next line always comes from the source furthest below its share. Taking stopped at
  {TRAIN_RAW_BYTES:,} raw bytes. The source files are shuffled with a fixed seed, so their starts are
  random draws.
- **Validation** (`sample-val.jsonl.zst`, {len(val.raw):,} raw bytes): whole lines from the start of
  `val.jsonl.zst`, up to {VAL_RAW_BYTES:,} raw bytes. The offline corpus holds these documents out of
  every training file (`md5(id) % 100 == 0`), so train and validation are disjoint.
- Compression: zstd level {LEVEL}, one frame per file.

Train documents by source:

{table(train)}

Validation documents by source:

{table(val)}

## Sources and licences

- **English Wikipedia** (2019-07-20 dump, via GitHub `chinapedia/wikipedia.abstract.en`, converted to
  plain text and cleaned): licensed under **CC BY-SA 3.0** and the **GFDL**. Article titles and ids are
  kept in every line, so each text can be traced to its Wikipedia article and its history of authors.
  https://creativecommons.org/licenses/by-sa/3.0/ , https://www.gnu.org/licenses/fdl-1.3.html
- **OpenStax textbooks**, CC BY 4.0 books only (the `openstax-ccby` folder; sections of College Success,
  Principles of Economics, Microbiology, World History and others): licensed under **CC BY 4.0**.
  Attribution: content by OpenStax, Rice University, openstax.org. The texts were cleaned (tables,
  exercises and math removed); each line keeps its book (`source`) and module id.
  https://creativecommons.org/licenses/by/4.0/
- **Tokenizer** (`tokenizer.json.zst`): the SmolLM2 tokenizer (`HuggingFaceTB/SmolLM2-135M-Instruct`,
  same vocabulary and merges as the base model), **Apache-2.0**. The decompressed file is unchanged, sha256
  `{tok_sha}`. https://www.apache.org/licenses/LICENSE-2.0
{nc_note}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = os.environ.get("BLUEBERRY_DATA") or str(REPO.parent / "shared" / "data")
    parser.add_argument("--data", type=Path, default=Path(default_data), help="offline corpus folder")
    parser.add_argument("--out", type=Path, default=REPO / "trainer" / "assets", help="output folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    data: Path = args.data
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    tok_bytes = (data / "tokenizer.json").read_bytes()
    tok = Tokenizer.from_str(tok_bytes.decode("utf-8"))

    train = count(take_interleaved([(data / p, w) for p, w in TRAIN_MIX], TRAIN_RAW_BYTES), tok)
    val = count(take_prefix(data / VAL, VAL_RAW_BYTES), tok)

    sizes = {
        "tokenizer.json.zst": write_zst(out / "tokenizer.json.zst", tok_bytes),
        "sample-train.jsonl.zst": write_zst(out / "sample-train.jsonl.zst", train.raw),
        "sample-val.jsonl.zst": write_zst(out / "sample-val.jsonl.zst", val.raw),
    }
    text = notice(train=train, val=val, sizes=sizes, tok_sha=hashlib.sha256(tok_bytes).hexdigest())
    (out / "NOTICE.md").write_text(text, encoding="utf-8")

    for name, size in sizes.items():
        logger.info("%-24s %10s bytes", name, f"{size:,}")
    logger.info("train: %s docs, %s tokens (+%s EOS)  by source: %s", f"{train.docs:,}", f"{train.tokens:,}",
                f"{train.docs:,}", per_source(train.lines))
    logger.info("val:   %s docs, %s tokens (+%s EOS)  by source: %s", f"{val.docs:,}", f"{val.tokens:,}",
                f"{val.docs:,}", per_source(val.lines))
    logger.info("total assets: %s bytes", f"{sum(p.stat().st_size for p in out.iterdir() if p.is_file()):,}")


if __name__ == "__main__":
    main()
