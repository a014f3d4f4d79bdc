"""Training and validation tokens: data sources, the tokenizer, and a tokenize-once uint16 cache.

A data source (``DataConfig.train``) is one of

* a name from :data:`SOURCES`: ``sample`` (the small corpus shipped in ``trainer/assets``) or ``offline``
  (the full offline corpus, found as described in :func:`find_offline_root`; where there is none, the
  upstream's hub data :data:`HUB_DATASET` is streamed in its place);
* a file, a glob, or several of either separated by commas (``.jsonl``, ``.jsonl.zst``, ``.json``,
  ``.json.zst``; one JSON object per document with a ``text`` field, or for ``.json`` a JSON array of such
  objects);
* a folder laid out like the offline corpus (``val.jsonl.zst`` plus ``*/train-*.jsonl.zst``), read like
  ``offline``; any other folder is handed to ``datasets.load_dataset`` (a local Hugging Face dataset);
* a Hugging Face dataset name (``owner/name``).

Hugging Face datasets (hub names and local folders) are streamed (``load_dataset(..., streaming=True)``), in
the dataset's order, and the stream stops after ``DataConfig.stream_tokens`` train tokens (the track's
``max_tokens``): a speedrun never downloads more than it can train on.

The validation set (``DataConfig.val``) is the source's own when empty: the sample's and the offline
corpus's held-out files; for a Hugging Face dataset the first :data:`HEAD_VAL_DOCS` documents of its
``validation`` split, or, when it has none (the upstream's hub data has only ``train``), the first
:data:`HEAD_VAL_DOCS` documents of its train split, which training then skips (a fixed set, whatever the
track's cap, disjoint from train); for files the documents whose ``md5(text) % 100 == 0``, which are then left
out of training. It can also be named like a train source.

:func:`load_tokens` encodes every document with ``add_special_tokens=False`` and appends one EOS
(``<|endoftext|>``, id 0 for SmolLM2), so documents are separated, and stores the train and val streams as
flat uint16 files under the cache folder. Later calls memory-map them.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import heapq
import json
import logging
import os
import queue
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import zstandard
from tokenizers import Tokenizer

from chores.files import file_lock
from trainer.config import ConfigError, DataConfig
from trainer.io import atomic_write_text

logger = logging.getLogger(__name__)

# Bump when the token layout or the document rules change, so old caches are not reused.
FORMAT_VERSION = 1

ASSETS = Path(__file__).resolve().parent / "assets"
REPO_ROOT = Path(__file__).resolve().parents[1]

SOURCES: dict[str, str] = {
    "sample": "the corpus sample shipped in trainer/assets (about 1.76M train and 138k val tokens)",
    "offline": "the full offline corpus ($BLUEBERRY_DATA or shared/data: */train-*.jsonl.zst, val.jsonl.zst)",
}

# The upstream's data (70% FineWeb-Edu dedup, 30% Cosmopedia-v2 from HuggingFaceTB/smollm-corpus), streamed
# when there is no offline corpus. Its tokenizer, HuggingFaceTB/SmolLM2-135M, is the shipped one: same
# vocabulary and merges (trainer/assets/NOTICE.md).
HUB_DATASET = "vukrosic/blueberry-1B-pretrain"
HUB_TOKENIZER = "HuggingFaceTB/SmolLM2-135M"
# Validation of a streamed dataset: its first documents (of the validation split, else of train, which
# training then skips). ~2M tokens on the hub data (~2,000 tokens a document), 4x the tracks' val_tokens.
HEAD_VAL_DOCS = 1_000
# The offline corpus's train tokens (one EOS per document): what the hub stand-in takes when uncapped.
OFFLINE_TRAIN_TOKENS = 79_434_684
HUB_PROBE_TIMEOUT_S = 5.0  # a hub that does not answer within this is taken as unreachable

EOS_TOKEN = "<|endoftext|>"
DATA_SUFFIXES = (".jsonl", ".jsonl.zst", ".json", ".json.zst")
HOLDOUT_MODULUS = 100  # md5(text) % 100 == 0 goes to validation: a stable 1%, whatever the file order

# Documents per encode_batch call: at most 1000 documents or 4 MB of text (~1M tokens, ~450 Wikipedia
# articles), enough to keep 16 cores busy. The byte cap bounds memory: the tokenizer's Encoding objects
# take ~100 bytes per token, and up to three batches are in flight.
BATCH_DOCS = 1000
BATCH_BYTES = 4 << 20
# Compressed bytes read from a file at a time. Small, because interleaving several files switches files on
# these boundaries: 16 KB of zstd input is ~60 KB of text, a handful of documents.
READ_CHUNK = 1 << 14
MAX_INTERLEAVED_FILES = 256  # beyond this many files, read them one after another (bounded open files)

_HOLDOUT_DESCRIPTION = f"md5(text) % {HOLDOUT_MODULUS} == 0 held out of train"

_HF_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class TokenData:
    train: np.ndarray  # uint16, memory-mapped, whole train stream
    val: np.ndarray  # uint16, memory-mapped
    vocab_size: int
    eos_id: int  # 0 for SmolLM2
    fingerprint: str  # cache key
    source: str  # human description
    n_train_docs: int


# ----------------------------------------------------------------------------------------------------------
# Tokenizer


def _looks_like_hf_name(spec: str) -> bool:
    return bool(_HF_NAME.match(spec)) and not spec.endswith(DATA_SUFFIXES + (".zst", ".txt"))


def load_tokenizer(spec: str = "") -> Tokenizer:
    """The tokenizer: empty = the shipped SmolLM2 ``tokenizer.json.zst``; a path to a ``tokenizer.json``
    (optionally ``.zst``, or a folder holding one); else a Hugging Face name (``Tokenizer.from_pretrained``).

    Truncation and padding are switched off: a tokenizer that truncates would silently cut documents.
    """
    path = ASSETS / "tokenizer.json.zst" if not spec else Path(spec).expanduser()
    if path.is_dir():
        path = next((path / n for n in ("tokenizer.json", "tokenizer.json.zst") if (path / n).is_file()),
                    path / "tokenizer.json")
    if path.is_file():
        try:
            blob = path.read_bytes()
            if path.name.endswith(".zst"):
                blob = zstandard.ZstdDecompressor().decompress(blob)
            tok = Tokenizer.from_str(blob.decode("utf-8"))
        except Exception as e:  # zstd, UTF-8 and tokenizer parse errors all mean "not a tokenizer file"
            raise ConfigError(f"{path}: not a valid tokenizer.json ({_first_line(e)})") from None
    elif spec and _looks_like_hf_name(spec):
        try:
            tok = Tokenizer.from_pretrained(spec)
        except Exception as e:
            raise ConfigError(f"could not load tokenizer {spec!r} from the Hugging Face hub ({_first_line(e)}); "
                              f"pass a tokenizer.json path in data.tokenizer instead") from None
    else:
        raise ConfigError(f"tokenizer not found: {path} (data.tokenizer takes a tokenizer.json path, "
                          f"optionally .zst, or a Hugging Face name)")
    if tok.truncation is not None:
        tok.no_truncation()
    if tok.padding is not None:
        tok.no_padding()
    return tok


def tokenizer_fingerprint(tok: Tokenizer) -> str:
    """Short sha256 of the tokenizer's canonical JSON: equal for equal tokenizers wherever they came from."""
    return hashlib.sha256(tok.to_str().encode("utf-8")).hexdigest()[:16]


def _eos_id(tok: Tokenizer) -> int:
    eos = tok.token_to_id(EOS_TOKEN)
    if eos is None:
        logger.warning("tokenizer has no %s token; separating documents with id 0 (%r)", EOS_TOKEN,
                       tok.id_to_token(0))
        return 0
    return eos


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


# ----------------------------------------------------------------------------------------------------------
# Sources


@dataclass(frozen=True)
class _Files:
    """Local data files, read by this module (streamed, interleaved)."""

    paths: tuple[Path, ...]


@dataclass(frozen=True)
class _HFDataset:
    """A Hugging Face dataset: a hub name or a local folder that ``datasets.load_dataset`` understands."""

    name: str
    split: str
    optional: bool = False  # a missing split means "hold documents out of train instead"


_Source = _Files | _HFDataset


@dataclass(frozen=True)
class _Head:
    """Validation = the first ``n_docs`` documents of the train source, which training skips."""

    n_docs: int


@dataclass(frozen=True)
class _Plan:
    train: _Source
    val: _Source | _Head | None  # None: hold documents out of train by the md5 rule
    description: str
    val_description: str
    cap: int = 0  # train tokens at most (streamed datasets); 0: all
    fallback: str = ""  # why the hub stands in for the offline corpus ("" when it does not)


def _head_description(n_docs: int, split: str) -> str:
    return f"the first {n_docs:,} documents of its {split} split" + (", skipped by train" if split == "train" else "")


def find_offline_root() -> Path:
    """The offline corpus folder: ``$BLUEBERRY_DATA`` if set, else the first existing of
    ``<repo root>/../shared/data``, ``<cwd>/../shared/data``, ``<cwd>/shared/data``, ``<cwd>/data/offline``."""
    env = os.environ.get("BLUEBERRY_DATA")
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise ConfigError(f"BLUEBERRY_DATA={env} is not a folder; point it at the offline corpus "
                              f"(the folder with val.jsonl.zst and */train-*.jsonl.zst)")
        return root.resolve()
    cwd = Path.cwd()
    candidates = [REPO_ROOT.parent / "shared" / "data", cwd.parent / "shared" / "data", cwd / "shared" / "data",
                  cwd / "data" / "offline"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    raise ConfigError(f"offline corpus not found; looked in {', '.join(str(c) for c in candidates)}; "
                      f"set it with --data <folder> or BLUEBERRY_DATA=<folder>")


def _is_offline_layout(root: Path) -> bool:
    return (root / "val.jsonl.zst").is_file() and any(root.glob("*/train-*.jsonl.zst"))


def _offline(root: Path) -> tuple[_Files, _Files]:
    train = tuple(sorted(p.resolve() for p in root.glob("*/train-*.jsonl.zst")))
    if not train:
        raise ConfigError(f"offline corpus {root} has no */train-*.jsonl.zst files")
    val = root / "val.jsonl.zst"
    if not val.is_file():
        raise ConfigError(f"offline corpus {root} has no val.jsonl.zst")
    return _Files(train), _Files((val.resolve(),))


def _sample() -> tuple[_Files, _Files]:
    train, val = ASSETS / "sample-train.jsonl.zst", ASSETS / "sample-val.jsonl.zst"
    for path in (train, val):
        if not path.is_file():
            raise ConfigError(f"shipped sample file missing: {path} (regenerate it with scripts/make_sample.py)")
    return _Files((train,)), _Files((val,))


def _expand_files(spec: str) -> tuple[Path, ...]:
    """Files named by a comma-separated list of paths and globs: sorted, without duplicates."""
    found: set[Path] = set()
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        expanded = os.path.expanduser(item)
        if glob.has_magic(expanded):
            matches = [Path(m) for m in glob.glob(expanded, recursive=True) if Path(m).is_file()]
            if not matches:
                raise ConfigError(f"no files match {item!r}")
        else:
            path = Path(expanded)
            if not path.exists():
                raise ConfigError(f"data file not found: {item} (a data source is one of {', '.join(SOURCES)}, "
                                  f"files or globs, a folder, or a Hugging Face dataset name)")
            if path.is_dir():
                raise ConfigError(f"{item} is a folder; list it on its own (a folder is read as a dataset) "
                                  f"or name its files with a glob such as {item}/*.jsonl")
            matches = [path]
        for match in matches:
            if not match.name.endswith(DATA_SUFFIXES):
                raise ConfigError(f"{match}: unsupported file type; data files must end in "
                                  f"{', '.join(DATA_SUFFIXES)}")
            found.add(match.resolve())
    if not found:
        raise ConfigError(f"no data files in {spec!r}")
    return tuple(sorted(found))


@dataclass(frozen=True)
class _Resolved:
    source: _Source
    own_val: _Source | None  # its own validation files, or None
    description: str
    fallback: str = ""  # the offline corpus was asked for and not found: why (the hub stands in)


def _resolve(spec: str, *, split: str) -> _Resolved:
    """A source spec as its documents, its own validation files (or None) and a description.

    ``split`` is the Hugging Face split to read: ``train`` for training, ``validation`` for DataConfig.val.
    """
    spec = spec.strip()
    if spec == "sample":
        train, val = _sample()
        return _Resolved(train, val, "sample (trainer/assets)")
    if spec == "offline":
        try:
            root = find_offline_root()
            train, val = _offline(root)
        except ConfigError as e:
            if split != "train":  # the hub's data has no validation files to stand in for the corpus's
                raise
            return _Resolved(_HFDataset(HUB_DATASET, split), None,
                             f"Hugging Face dataset {HUB_DATASET} (streamed: no offline corpus)", _first_line(e))
        return _Resolved(train, val, f"offline ({root})")
    single = "," not in spec
    path = Path(spec).expanduser()
    if single and path.is_dir():
        if _is_offline_layout(path):
            train, val = _offline(path)
            return _Resolved(train, val, f"offline layout ({path.resolve()})")
        return _Resolved(_HFDataset(str(path.resolve()), split), None, f"local dataset {path.resolve()} (streamed)")
    if single and not glob.has_magic(spec) and not path.exists() and _looks_like_hf_name(spec):
        return _Resolved(_HFDataset(spec, split), None, f"Hugging Face dataset {spec} (streamed)")
    files = _expand_files(spec)
    names = ", ".join(p.name for p in files[:3]) + (f", ... ({len(files)} files)" if len(files) > 3 else "")
    return _Resolved(_Files(files), None, names)


def _plan(data: DataConfig) -> _Plan:
    train = _resolve(data.train, split="train")
    cap = 0
    if isinstance(train.source, _HFDataset):
        cap = data.stream_tokens or (OFFLINE_TRAIN_TOKENS if train.fallback else 0)
    description = train.description + (f", first {cap:,} train tokens" if cap else "")
    if data.val.strip():
        val = _resolve(data.val, split="validation")
        # A source with its own validation files (sample, offline) given as val means those files.
        val_description = val.description + (f", {_head_description(HEAD_VAL_DOCS, 'validation')}"
                                              if isinstance(val.source, _HFDataset) and val.own_val is None else "")
        return _Plan(train.source, val.own_val or val.source, description, val_description, cap, train.fallback)
    if train.own_val is not None:
        return _Plan(train.source, train.own_val, description, "its held-out file", cap, train.fallback)
    if isinstance(train.source, _HFDataset):
        # Whether the dataset has a validation split is only found out when it is streamed, i.e. when the cache
        # is built: checking here would reach the hub on every cache hit too.
        return _Plan(train.source, _HFDataset(train.source.name, "validation", optional=True), description,
                     f"{_head_description(HEAD_VAL_DOCS, 'validation')}, else of train (skipped by train)", cap,
                     train.fallback)
    return _Plan(train.source, None, description, _HOLDOUT_DESCRIPTION, cap, train.fallback)


def _source_key(source: _Source | _Head | None) -> Any:
    """What identifies a source's content for the cache: files by path, size and mtime."""
    if source is None:
        return ["holdout-md5", HOLDOUT_MODULUS]
    if isinstance(source, _Head):
        return ["head", source.n_docs]
    if isinstance(source, _Files):
        return [["file", str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in source.paths]
    # streamed: the first HEAD_VAL_DOCS documents of a validation split, else of train
    key: list[Any] = ["hf", source.name, source.split, source.optional, "stream"]
    if source.split != "train" or source.optional:
        key.append(["head", HEAD_VAL_DOCS])
    local = Path(source.name)
    if local.is_dir():  # a local dataset changes when its files do; hub datasets are keyed by name only
        key.append([[str(p.relative_to(local)), p.stat().st_size, p.stat().st_mtime_ns]
                    for p in sorted(local.rglob("*")) if p.is_file()])
    return key


def _cache_key(plan: _Plan, tok_fingerprint: str, text_field: str, *, cap: bool = True) -> str:
    """The cache entry's key; with ``cap=False`` the key of its family, the same data at any token cap (the
    train stream of a smaller cap is a prefix of a larger one's)."""
    payload = {
        "format": FORMAT_VERSION,
        "train": _source_key(plan.train),
        "val": _source_key(plan.val),
        "tokenizer": tok_fingerprint,
        "text_field": text_field,
    }
    if cap and plan.cap:  # uncapped keys stay as they were before streams had caps
        payload["cap"] = plan.cap
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()[:24]


# ----------------------------------------------------------------------------------------------------------
# Reading documents


class _DocFile:
    """One data file, read document by document; ``consumed`` is how many bytes of the file were read."""

    def __init__(self, path: Path, text_field: str) -> None:
        self.path = path
        self.text_field = text_field
        self.size = path.stat().st_size
        self.consumed = 0

    @property
    def fraction(self) -> float:
        return self.consumed / self.size if self.size else 1.0

    def _chunks(self) -> Iterator[bytes]:
        """The file's (decompressed) bytes in chunks. zstd files may hold several frames."""
        compressed = self.path.name.endswith(".zst")
        try:
            with self.path.open("rb") as fh:
                dobj = zstandard.ZstdDecompressor().decompressobj() if compressed else None
                in_frame = False  # bytes of an unfinished frame were fed
                while raw := fh.read(READ_CHUNK):
                    self.consumed = fh.tell()
                    if dobj is None:
                        yield raw
                        continue
                    while raw:
                        out = dobj.decompress(raw)
                        in_frame = True
                        if out:
                            yield out
                        if dobj.eof:  # frame finished; what follows it is the next frame
                            raw = dobj.unused_data
                            dobj = zstandard.ZstdDecompressor().decompressobj()
                            in_frame = False
                        else:
                            raw = b""
                if in_frame:
                    raise ConfigError(f"{self.path}: truncated zstd file (it ends inside a frame)")
        except zstandard.ZstdError as e:
            raise ConfigError(f"{self.path}: corrupt zstd data ({_first_line(e)})") from None
        except OSError as e:
            raise ConfigError(f"{self.path}: cannot read ({e.strerror or e})") from None

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        parts: list[bytes] = []  # the unfinished line, in pieces: a long line is joined once, not per chunk
        lineno = 0
        for chunk in self._chunks():
            parts.append(chunk)
            if b"\n" not in chunk:
                continue
            *lines, rest = b"".join(parts).split(b"\n")
            parts = [rest]
            for line in lines:
                lineno += 1
                yield lineno, line
        if rest := b"".join(parts):
            yield lineno + 1, rest

    def _text(self, doc: Any, where: str) -> str | None:
        if not isinstance(doc, dict):
            raise ConfigError(f"{where}: expected a JSON object with a {self.text_field!r} field, "
                              f"got {type(doc).__name__}")
        if self.text_field not in doc:
            fields = ", ".join(map(str, list(doc)[:8])) or "none"
            raise ConfigError(f"{where}: no {self.text_field!r} field (fields: {fields}); "
                              f"set data.text_field to the field that holds the text")
        text = doc[self.text_field]
        if not isinstance(text, str):
            raise ConfigError(f"{where}: field {self.text_field!r} is {type(text).__name__}, not a string")
        return text or None  # empty documents would only add a lone EOS

    def texts(self) -> Iterator[str]:
        if self.path.name.endswith((".json", ".json.zst")):
            # A .json file is either one JSON array of documents or JSON lines; tell them apart by the first
            # character. Arrays cannot be streamed, so a .json file is read whole.
            blob = b"".join(self._chunks())
            if blob.lstrip()[:1] == b"[":
                try:
                    docs = json.loads(blob)
                except ValueError as e:
                    raise ConfigError(f"{self.path}: invalid JSON ({_first_line(e)})") from None
                for i, doc in enumerate(docs):
                    if (text := self._text(doc, f"{self.path}: item {i}")) is not None:
                        yield text
                return
            lines: Iterable[tuple[int, bytes]] = enumerate(blob.split(b"\n"), start=1)
        else:
            lines = self._lines()
        for lineno, line in lines:
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
                raise ConfigError(f"{self.path}:{lineno}: invalid JSON ({_first_line(e)})") from None
            if (text := self._text(doc, f"{self.path}:{lineno}")) is not None:
                yield text


class _FileStream:
    """Documents of several files, interleaved in proportion to file size.

    The next document always comes from the file that is least far through (by bytes read), so every
    stretch of the stream mixes the files as the whole does. Concatenating them instead would make the start
    of the offline train stream 4.5M tokens of textbooks and then only Wikipedia.
    """

    def __init__(self, files: _Files, text_field: str) -> None:
        self.files = [_DocFile(p, text_field) for p in files.paths]
        self.total = sum(f.size for f in self.files)

    @property
    def consumed(self) -> int:
        return sum(f.consumed for f in self.files)

    def __iter__(self) -> Iterator[str]:
        if len(self.files) > MAX_INTERLEAVED_FILES:
            logger.info("%d files: reading them one after another instead of interleaving", len(self.files))
            for f in self.files:
                yield from f.texts()
            return
        streams = [f.texts() for f in self.files]
        # Only the file just read from moves, so a heap of (fraction read, file index) finds the next one.
        heap = [(0.0, i) for i in range(len(self.files))]
        try:
            while heap:
                _, i = heapq.heappop(heap)
                text = next(streams[i], None)
                if text is None:
                    continue
                heapq.heappush(heap, (self.files[i].fraction, i))
                yield text
        finally:
            for stream in streams:
                stream.close()


class _UnknownSplit(ConfigError):
    pass


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_unreachable() -> str:
    """Why the Hugging Face hub cannot be used now ("" if it may be): offline mode is set, or its host does not
    take a TCP connection within HUB_PROBE_TIMEOUT_S. Without this, ``datasets`` retries for ~25 s on a
    machine without the network. Behind a proxy (``HTTPS_PROXY``) the probe is left to ``datasets``."""
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if _env_true(name):
            return f"{name}={os.environ[name]}"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return ""
    url = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT_S).close()
    except OSError as e:
        return f"cannot reach {host}:{port} ({e.strerror or type(e).__name__})"
    return ""


def _hf_load(name: str, split: str) -> Any:
    """The split as a streamed ``datasets.IterableDataset``: nothing is downloaded beyond what is read."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise ConfigError(f"{name!r} looks like a Hugging Face dataset but `datasets` is not installed") from None
    if not Path(name).is_dir() and (why := hub_unreachable()):
        raise ConfigError(f"could not load dataset {name!r} from the Hugging Face hub: {why}")
    try:
        return datasets.load_dataset(name, split=split, streaming=True)
    except ValueError as e:
        if "Unknown split" in str(e) or "Bad split" in str(e):
            raise _UnknownSplit(f"dataset {name!r} has no {split!r} split ({_first_line(e)})") from None
        raise ConfigError(f"could not load dataset {name!r} split {split!r}: {_first_line(e)}") from None
    except Exception as e:
        raise ConfigError(f"could not load dataset {name!r} split {split!r}: {_first_line(e)}") from None


class _HFStream:
    """The text column of a Hugging Face dataset split, streamed in batches; ``consumed`` counts rows read."""

    def __init__(self, source: _HFDataset, text_field: str) -> None:
        self.source = source
        self.text_field = text_field
        dataset = _hf_load(source.name, source.split)
        columns = getattr(dataset, "column_names", None)  # None when a stream does not know its features
        if columns is not None and text_field not in columns:
            raise ConfigError(f"dataset {source.name!r} split {source.split!r} has no {text_field!r} column "
                              f"(columns: {', '.join(columns)}); set data.text_field")
        if columns is not None and len(columns) > 1:
            dataset = dataset.select_columns([text_field])  # read only the text
        self.dataset = dataset
        self.total = 0  # unknown for a stream
        self.consumed = 0

    def __iter__(self) -> Iterator[str]:
        where = f"dataset {self.source.name!r} split {self.source.split!r}"
        try:
            for batch in self.dataset.iter(batch_size=BATCH_DOCS):
                if self.text_field not in batch:
                    raise ConfigError(f"{where} has no {self.text_field!r} column (columns: "
                                      f"{', '.join(batch)}); set data.text_field")
                for text in batch[self.text_field]:
                    self.consumed += 1
                    if not isinstance(text, str):
                        raise ConfigError(f"{where} row {self.consumed - 1}: "
                                          f"{self.text_field!r} is {type(text).__name__}, not a string")
                    if text:
                        yield text
        except ConfigError:
            raise
        except Exception as e:  # a dropped connection, a corrupt shard: one line, not a stack from the prefetch
            raise ConfigError(f"reading {where} failed after {self.consumed:,} rows: {_first_line(e)}") from None


def _open(source: _Source, text_field: str) -> _FileStream | _HFStream:
    return _FileStream(source, text_field) if isinstance(source, _Files) else _HFStream(source, text_field)


def _is_holdout(text: str) -> bool:
    digest = hashlib.md5(text.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest, "big") % HOLDOUT_MODULUS == 0


@dataclass
class _Batch:
    texts: list[str]
    to_val: list[bool]
    progress: int  # input read so far, in the progress bar's unit


@dataclass
class _Reader:
    batches: Iterator[_Batch]
    total: int  # for the progress bar; 0 when unknown
    unit: str  # "B" (bytes of files) or "doc"
    val_description: str  # what the validation set turned out to be


def no_data_message(fallback: str, error: BaseException) -> str:
    """One line: no offline corpus, no hub, and both ways to get data."""
    return (f"no training data: no offline corpus ({fallback}) and the upstream's data {HUB_DATASET} could not be "
            f"streamed ({_first_line(error)}). Either set BLUEBERRY_DATA (or --data) to an offline corpus folder "
            f"(val.jsonl.zst, */train-*.jsonl.zst), or run with the network: the token cache is filled on first use, "
            f"or ahead of time with `python -m trainer.prepare --track <track>` (and `--export DIR` writes an offline "
            f"corpus for machines without the network)")


def _reader(plan: _Plan, text_field: str, enough: threading.Event | None = None) -> _Reader:
    """Batches of documents over the whole plan, each document marked for train or val.

    Once ``enough`` is set (the train cap is reached) the train stream is left; the val stream is still read.
    """
    try:
        train = _open(plan.train, text_field)
    except ConfigError as e:
        if plan.fallback:
            raise ConfigError(no_data_message(plan.fallback, e)) from None
        raise
    if plan.fallback:
        logger.warning("no offline corpus (%s): streaming %s instead (the first %s train tokens)", plan.fallback,
                       HUB_DATASET, f"{plan.cap:,}")
    val: _FileStream | _HFStream | None = None
    head = plan.val if isinstance(plan.val, _Head) else None
    val_description = plan.val_description
    if plan.val is not None and head is None:
        try:
            val = _open(plan.val, text_field)
        except _UnknownSplit:
            if not (isinstance(plan.val, _HFDataset) and plan.val.optional):
                raise
            head = _Head(HEAD_VAL_DOCS)
            val_description = _head_description(HEAD_VAL_DOCS, "train")
        else:
            if isinstance(plan.val, _HFDataset) and plan.val.optional:
                val_description = _head_description(HEAD_VAL_DOCS, plan.val.split)
    holdout = val is None and head is None
    streams = [(train, False)] + ([(val, True)] if val is not None else [])
    # Files report bytes read, datasets rows: show a byte bar when all inputs are files, else count docs.
    by_bytes = all(isinstance(s, _FileStream) for s, _ in streams)
    total = sum(s.total for s, _ in streams) if by_bytes else 0

    def generate() -> Iterator[_Batch]:
        done = 0  # progress of the streams already finished
        n_docs = 0
        for stream, to_val in streams:
            texts: list[str] = []
            flags: list[bool] = []
            size = 0
            # a streamed validation split: its first HEAD_VAL_DOCS documents
            limit = HEAD_VAL_DOCS if to_val and isinstance(stream, _HFStream) else 0
            for index, text in enumerate(stream):
                if limit and index >= limit:
                    break
                if not to_val and enough is not None and enough.is_set() and (head is None or index >= head.n_docs):
                    break
                if head is not None and not to_val:
                    flags.append(index < head.n_docs)
                else:
                    flags.append(_is_holdout(text) if holdout else to_val)
                texts.append(text)
                size += len(text)
                if len(texts) >= BATCH_DOCS or size >= BATCH_BYTES:
                    n_docs += len(texts)
                    yield _Batch(texts, flags, done + stream.consumed if by_bytes else n_docs)
                    texts, flags, size = [], [], 0
            if texts:
                n_docs += len(texts)
                yield _Batch(texts, flags, done + stream.consumed if by_bytes else n_docs)
            done += stream.consumed

    return _Reader(generate(), total, "B" if by_bytes else "doc", val_description)


_END = object()


def _prefetch(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Run ``items`` in a background thread, ``depth`` items ahead.

    The tokenizer releases the GIL while encoding, so reading and parsing the next batch, encoding one and
    writing the previous one overlap. Exceptions are re-raised in the consumer; closing the consumer stops the
    producer.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            with contextlib.closing(items) if hasattr(items, "close") else contextlib.nullcontext():
                for item in items:
                    if not put(item):
                        return
            put(_END)
        except BaseException as e:  # handed to the consumer, which re-raises it
            put(_Failure(e))

    thread = threading.Thread(target=work, name="blueberry-data-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


@dataclass
class _Failure:
    error: BaseException


# ----------------------------------------------------------------------------------------------------------
# The cache


def cache_root(data: DataConfig) -> Path:
    """``DataConfig.cache_dir``, else ``$BLUEBERRY_CACHE``, else ``~/.cache/blueberry-tune``."""
    root = data.cache_dir or os.environ.get("BLUEBERRY_CACHE") or "~/.cache/blueberry-tune"
    return Path(root).expanduser()


def _read_meta(folder: Path, key: str) -> dict[str, Any] | None:
    """The sidecar of a complete cache entry, or None. The token files must have the recorded sizes."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        complete = (meta.get("key") == key
                    and (folder / "train.u16").stat().st_size == 2 * meta["train_tokens"]
                    and (folder / "val.u16").stat().st_size == 2 * meta["val_tokens"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return meta if complete else None


def _token_data(folder: Path, meta: dict[str, Any], *, key: str = "", cap: int = 0,
                description: str = "") -> TokenData:
    """The memmaps of a cache entry; with ``cap``, the first ``cap`` train tokens of a larger entry of the same
    family, named by the smaller entry's ``key`` and ``description`` (the same tokens a build at that cap gives)."""
    train = np.memmap(folder / "train.u16", dtype=np.uint16, mode="r")
    if cap and cap < len(train):
        train = train[:cap]
    n_docs = meta["train_docs"] if not cap else int((train == meta["eos_id"]).sum()) + int(train[-1] != meta["eos_id"])
    source = meta["source"]
    if description:
        source = description + "; val: " + source.partition("; val: ")[2]
    return TokenData(
        train=train,
        val=np.memmap(folder / "val.u16", dtype=np.uint16, mode="r"),
        vocab_size=meta["vocab_size"],
        eos_id=meta["eos_id"],
        fingerprint=key or meta["key"],
        source=source,
        n_train_docs=n_docs,
    )


def _larger_entry(root: Path, family: str, cap: int) -> tuple[Path, dict[str, Any]] | None:
    """A complete cache entry of the same data with at least ``cap`` train tokens (or the whole stream)."""
    best: tuple[Path, dict[str, Any]] | None = None
    for meta_path in sorted(root.glob("*/meta.json")):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict) or meta.get("family") != family:
            continue
        whole = meta.get("train_tokens", 0) < meta.get("train_cap", 0)  # the stream ended before its cap
        if not (meta.get("train_tokens", 0) >= cap or whole):
            continue
        if (_read_meta(meta_path.parent, meta.get("key", "")) is not None
                and (best is None or meta["train_tokens"] < best[1]["train_tokens"])):
            best = meta_path.parent, meta
    return best


def _build(plan: _Plan, tok: Tokenizer, eos: int, text_field: str, folder: Path, key: str,
           progress: bool, family: str = "") -> dict[str, Any]:
    """Tokenize the plan into folder/train.u16 and folder/val.u16; return the sidecar's contents.

    Tokens go to uniquely named temporary files that are renamed into place only when complete, and the
    sidecar is written last: a reader sees a whole cache entry or none, even with several builders at once.
    With a cap (``plan.cap``) the train stream is cut at exactly that many tokens and reading stops there.
    """
    start = time.perf_counter()
    enough = threading.Event()
    reader = _reader(plan, text_field, enough)
    description = f"{plan.description}; val: {reader.val_description}"
    encode: Callable[..., list[Any]] = getattr(tok, "encode_batch_fast", tok.encode_batch)  # no offsets: faster
    suffix = f"{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    tmp = {"train": folder / f"train.u16.{suffix}", "val": folder / f"val.u16.{suffix}"}
    tokens = {"train": 0, "val": 0}
    docs = {"train": 0, "val": 0}
    # Imported here: tqdm is only needed when building.
    from tqdm.auto import tqdm

    if plan.cap:  # a capped stream: the bar counts train tokens up to the cap
        bar = tqdm(total=plan.cap, unit="tok", unit_scale=True, desc=f"streaming {plan.description}",
                   disable=not progress or not sys.stderr.isatty(), leave=False)
    else:
        bar = tqdm(total=reader.total or None, unit=reader.unit, unit_scale=reader.unit == "B", desc="tokenizing",
                   disable=not progress or not sys.stderr.isatty(), leave=False)
    # Three stages in three threads: read + parse, encode (in Rust, all cores), flatten + write (here).
    read = _prefetch(reader.batches)
    encoded = _prefetch(((b, encode(b.texts, add_special_tokens=False)) for b in read), depth=1)
    try:
        with tmp["train"].open("wb") as f_train, tmp["val"].open("wb") as f_val:
            out = {"train": f_train, "val": f_val}
            for batch, encodings in encoded:
                flat: dict[str, list[int]] = {"train": [], "val": []}
                for enc, to_val in zip(encodings, batch.to_val):
                    split = "val" if to_val else "train"
                    if split == "train" and plan.cap:
                        room = plan.cap - tokens["train"] - len(flat["train"])
                        if room <= 0:  # read ahead of the cap: dropped
                            continue
                        flat["train"].extend((enc.ids + [eos])[:room])
                    else:
                        flat[split].extend(enc.ids)
                        flat[split].append(eos)
                    docs[split] += 1
                for split, ids in flat.items():
                    if ids:
                        np.asarray(ids, dtype=np.uint16).tofile(out[split])
                        tokens[split] += len(ids)
                if plan.cap:
                    if tokens["train"] >= plan.cap:
                        enough.set()
                    bar.update(tokens["train"] - bar.n)
                else:
                    bar.update(batch.progress - bar.n)
                bar.set_postfix_str(f"{docs['train'] + docs['val']:,} docs, {tokens['train'] + tokens['val']:,} tokens",
                                    refresh=False)
            for fh in out.values():  # durable before the rename makes them visible
                fh.flush()
                os.fsync(fh.fileno())
        for split in ("train", "val"):
            if tokens[split] == 0:
                hint = (" (the md5 hold-out picked no documents; name a validation set with data.val)"
                        if split == "val" and plan.val is None else "")
                raise ConfigError(f"empty {split} set: {description} has no {split} documents{hint}")
        os.replace(tmp["train"], folder / "train.u16")
        os.replace(tmp["val"], folder / "val.u16")
    finally:
        encoded.close()  # stops and joins the encoding thread first: it is the one reading from `read`
        read.close()
        bar.close()
        for path in tmp.values():
            path.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    n_tokens = tokens["train"] + tokens["val"]
    logger.info("tokenized %s: %s train docs / %s tokens, %s val docs / %s tokens in %.1f s (%.2fM tokens/s)",
                description, f"{docs['train']:,}", f"{tokens['train']:,}", f"{docs['val']:,}",
                f"{tokens['val']:,}", seconds, n_tokens / max(seconds, 1e-9) / 1e6)
    meta = {
        "format": FORMAT_VERSION,
        "key": key,
        "family": family or key,
        "train_cap": plan.cap,
        "source": description,
        "train_tokens": tokens["train"],
        "val_tokens": tokens["val"],
        "train_docs": docs["train"],
        "val_docs": docs["val"],
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "eos_id": eos,
        "text_field": text_field,
        "tokenizer": tokenizer_fingerprint(tok),
        "seconds": round(seconds, 3),
        "tokens_per_second": round(n_tokens / max(seconds, 1e-9)),
    }
    atomic_write_text(folder / "meta.json", json.dumps(meta, indent=1))
    return meta


def load_tokens(data: DataConfig, *, progress: bool = True) -> TokenData:
    """The train and val token streams of ``data``, tokenized once and memory-mapped from the cache.

    The cache entry is keyed by the source files (paths, sizes, mtimes) or dataset name, the tokenizer's
    fingerprint, the text field and the format version; a hit only opens the memmaps.
    """
    tok = load_tokenizer(data.tokenizer)
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    if vocab_size > np.iinfo(np.uint16).max + 1:
        raise ConfigError(f"tokenizer vocabulary has {vocab_size:,} tokens; token ids are cached as uint16, "
                          f"so at most 65,536 are supported")
    plan = _plan(data)
    key = _cache_key(plan, tokenizer_fingerprint(tok), data.text_field)
    family = _cache_key(plan, tokenizer_fingerprint(tok), data.text_field, cap=False)
    folder = cache_root(data) / "tokens" / key
    if (meta := _read_meta(folder, key)) is not None:
        return _token_data(folder, meta)
    if plan.cap and (larger := _larger_entry(cache_root(data) / "tokens", family, plan.cap)) is not None:
        # e.g. speedrun-4.5's 40M tokens are the first 40M of a marathon's 79M
        return _token_data(*larger, key=key, cap=plan.cap, description=plan.description)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the token cache {folder} ({e.strerror or e}); "
                          f"set data.cache_dir or BLUEBERRY_CACHE to a writable folder") from None
    # one builder per cache entry: parallel trials on one host tokenize once, not N times
    with file_lock(folder / ".lock", on_wait=lambda: logger.info("another process is tokenizing into %s; waiting", folder)):
        meta = _read_meta(folder, key)  # another process may have built it while we waited for the lock
        if meta is None:
            meta = _build(plan, tok, _eos_id(tok), data.text_field, folder, key, progress, family)
    return _token_data(folder, meta)


# ----------------------------------------------------------------------------------------------------------
# Validation windows


def val_windows(val: np.ndarray, seq_len: int, n_tokens: int) -> np.ndarray:
    """The fixed validation set: the first ``max(1, n_tokens // seq_len)`` non-overlapping ``seq_len``-token
    windows of the val stream, as int64 ``[n_windows, seq_len]``.

    It depends only on the val stream, ``seq_len`` and ``n_tokens`` (never on a run's budget), so every run
    of a track is scored on the same tokens. If the stream holds fewer windows, all it holds are used.
    """
    if seq_len < 1:
        raise ConfigError(f"seq_len must be >= 1, got {seq_len}")
    available = len(val) // seq_len
    if available == 0:
        raise ConfigError(f"the validation stream has {len(val):,} tokens, fewer than one window of "
                          f"seq_len={seq_len}; use a larger validation set or a shorter seq_len")
    n_windows = max(1, n_tokens // seq_len)
    if n_windows > available:
        logger.warning("validation set: asked for %d windows of %d tokens, the stream holds %d; using %d",
                       n_windows, seq_len, available, available)
        n_windows = available
    return np.asarray(val[: n_windows * seq_len], dtype=np.int64).reshape(n_windows, seq_len)
