"""Results on disk are never overwritten or half-written: atomic writes and fresh run directories."""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from trainer.config import ConfigError


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_clean(obj), indent=2, default=str) + "\n")


def new_run_dir(root: Path, prefix: str | None, *, exact: bool = False) -> Path:
    """Create a fresh run directory. ``exact``: ``root`` itself, which must not exist yet (or be empty);
    otherwise ``root/<prefix>-<YYYYmmdd-HHMMSS>[-n]``, never an existing one."""
    if exact:
        if root.exists() and any(root.iterdir()):
            raise ConfigError(f"{root} already exists and is not empty: results are never overwritten; "
                              "choose another --out")
        root.mkdir(parents=True, exist_ok=True)
        return root
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        path = root / (f"{prefix}-{stamp}" + (f"-{n}" if n else ""))
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise ConfigError(f"could not create a fresh run directory under {root}")
