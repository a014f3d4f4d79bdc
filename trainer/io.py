"""Results on disk are never overwritten or half-written: atomic writes (from :mod:`chores.files`, their one
home, shared with search and reports) and fresh run directories."""

from __future__ import annotations

import time
from pathlib import Path

from chores.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from trainer.config import ConfigError

__all__ = ["atomic_write_bytes", "atomic_write_json", "atomic_write_text", "new_run_dir"]


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
